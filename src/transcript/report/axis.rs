//! The report picture's time axis: milliseconds from the incident's start to x. Legs are drawn
//! to scale; a long pause with nobody running esus-ir (a resume the next morning) is drawn as a
//! break of fixed width, so that hours between legs do not squash every bar into a sliver.

/// Width of a break, in px.
pub(super) const BREAK_PX: i64 = 72;
/// A pause is broken only when it is at least this long…
const BREAK_MIN_MS: i64 = 10_000;
/// …and at least this share (percent) of the whole incident.
const BREAK_MIN_SHARE: i64 = 30;

/// A stretch of the axis: to scale, or a break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece {
    pub(super) from_ms: i64,
    pub(super) to_ms: i64,
    pub(super) x_from: i64,
    pub(super) x_to: i64,
    pub(super) broken: bool,
}

/// The mapping from time to x, monotonic, from `x0` (the incident's start) to `x1` (its end).
#[derive(Debug, Clone)]
pub(super) struct Axis {
    pub(super) x0: i64,
    pub(super) x1: i64,
    pub(super) end_ms: i64,
    pieces: Vec<Piece>,
    step_ms: i64,
}

impl Axis {
    /// An axis over `0..=end_ms` drawn from `x0` to `x1`; `pauses` are the spans nobody was
    /// running esus-ir (between legs), candidates for a break.
    pub(super) fn new(x0: i64, x1: i64, end_ms: i64, pauses: &[(i64, i64)]) -> Axis {
        let end_ms = end_ms.max(1);
        let plot = (x1 - x0).max(1);
        let mut breaks: Vec<(i64, i64)> = pauses
            .iter()
            .map(|&(a, b)| (a.clamp(0, end_ms), b.clamp(0, end_ms)))
            .filter(|&(a, b)| b - a >= BREAK_MIN_MS && (b - a) * 100 >= end_ms * BREAK_MIN_SHARE)
            .collect();
        breaks.sort_unstable();
        breaks.dedup_by(|b, a| b.0 < a.1);
        // Breaks must leave room for the rest: at most half the width.
        while breaks.len() as i64 * BREAK_PX * 2 > plot {
            breaks.pop();
        }
        let broken: i64 = breaks.iter().map(|(a, b)| b - a).sum();
        let linear_ms = (end_ms - broken).max(1);
        let linear_px = plot - breaks.len() as i64 * BREAK_PX;
        let scale =
            |ms: i64| (i128::from(ms) * i128::from(linear_px) / i128::from(linear_ms)) as i64;
        let mut pieces = Vec::new();
        let (mut t, mut x) = (0, x0);
        for &(a, b) in &breaks {
            let w = scale(a - t);
            pieces.push(Piece {
                from_ms: t,
                to_ms: a,
                x_from: x,
                x_to: x + w,
                broken: false,
            });
            x += w;
            pieces.push(Piece {
                from_ms: a,
                to_ms: b,
                x_from: x,
                x_to: x + BREAK_PX,
                broken: true,
            });
            x += BREAK_PX;
            t = b;
        }
        pieces.push(Piece {
            from_ms: t,
            to_ms: end_ms,
            x_from: x,
            x_to: x1,
            broken: false,
        });
        Axis {
            x0,
            x1,
            end_ms,
            pieces,
            step_ms: tick_step(linear_ms),
        }
    }

    /// The x of `ms`, clamped to the axis: nothing is ever drawn past its ends.
    pub(super) fn x(&self, ms: i64) -> i64 {
        let ms = ms.clamp(0, self.end_ms);
        let Some(p) = self.pieces.iter().find(|p| ms <= p.to_ms) else {
            return self.x1;
        };
        let span = (p.to_ms - p.from_ms).max(1);
        let x = p.x_from
            + (i128::from(ms - p.from_ms) * i128::from(p.x_to - p.x_from) / i128::from(span))
                as i64;
        x.clamp(self.x0, self.x1)
    }

    /// The breaks: (from ms, to ms, x from, x to).
    pub(super) fn breaks(&self) -> impl Iterator<Item = &Piece> {
        self.pieces.iter().filter(|p| p.broken)
    }

    /// Round ticks inside the pieces drawn to scale, far enough apart that their labels do not
    /// overlap: (ms, x, label).
    pub(super) fn ticks(&self) -> Vec<(i64, i64, String)> {
        let mut out: Vec<(i64, i64, String)> = Vec::new();
        for p in self.pieces.iter().filter(|p| !p.broken) {
            let mut ms = (p.from_ms + self.step_ms - 1) / self.step_ms * self.step_ms;
            while ms <= p.to_ms {
                let x = self.x(ms);
                let label = tick_label(ms);
                let clear = out
                    .last()
                    .is_none_or(|(_, px, pl)| x - px >= (label_px(pl) + label_px(&label)) / 2 + 10);
                if clear {
                    out.push((ms, x, label));
                }
                ms += self.step_ms;
            }
        }
        out
    }
}

/// About how wide a 12 px label is.
pub(super) fn label_px(text: &str) -> i64 {
    text.chars().count() as i64 * 7
}

/// A tick spacing of 1, 2 or 5 × 10^k ms giving at most 10 ticks.
pub(super) fn tick_step(total: i64) -> i64 {
    let mut unit = 1;
    loop {
        for m in [1, 2, 5] {
            let step = m * unit;
            if total / step <= 10 {
                return step;
            }
        }
        unit *= 10;
    }
}

/// `0`, `250 ms`, `1.5 s`, `90 s`, `2 min`, `3 min 20 s`, `2 h 5 min`.
pub(super) fn tick_label(ms: i64) -> String {
    if ms == 0 {
        "0".into()
    } else if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        if ms % 1000 == 0 {
            format!("{} s", ms / 1000)
        } else {
            format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
        }
    } else if ms < 7_200_000 {
        match (ms / 60_000, (ms % 60_000) / 1000) {
            (m, 0) => format!("{m} min"),
            (m, s) => format!("{m} min {s} s"),
        }
    } else {
        match (ms / 3_600_000, (ms % 3_600_000) / 60_000) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(3750), 500);
        assert_eq!(tick_step(42_000), 5000);
        assert_eq!(tick_step(600_000), 100_000);
        assert_eq!(tick_label(0), "0");
        assert_eq!(tick_label(500), "500 ms");
        assert_eq!(tick_label(1500), "1.5 s");
        assert_eq!(tick_label(120_000), "2 min");
        assert_eq!(tick_label(90_000), "90 s");
        assert_eq!(tick_label(200_000), "3 min 20 s");
        assert_eq!(tick_label(7_500_000), "2 h 5 min");
    }

    #[test]
    fn a_short_pause_is_to_scale() {
        let a = Axis::new(100, 1100, 10_000, &[(4000, 6000)]);
        assert_eq!(a.breaks().count(), 0);
        assert_eq!(a.x(0), 100);
        assert_eq!(a.x(5000), 600);
        assert_eq!(a.x(10_000), 1100);
    }

    #[test]
    fn a_long_pause_is_a_break_and_the_rest_keeps_the_width() {
        // Two 10 s legs an hour apart.
        let a = Axis::new(0, 1000, 3_620_000, &[(10_000, 3_610_000)]);
        let b: Vec<&Piece> = a.breaks().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].x_to - b[0].x_from, BREAK_PX);
        let half = (1000 - BREAK_PX) / 2;
        assert_eq!(a.x(10_000), half);
        assert_eq!(a.x(3_610_000), half + BREAK_PX);
        assert_eq!(a.x(3_620_000), 1000);
        // Monotonic everywhere, and never past either end.
        assert_eq!(a.x(-3_620_000), 0, "nothing before the start");
        assert_eq!(a.x(i64::MAX / 4), 1000, "nothing past the end");
        let mut last = a.x(0);
        assert_eq!(last, 0);
        for ms in (0..3_700_000).step_by(1000) {
            let x = a.x(ms);
            assert!(x >= last && x <= 1000, "{ms}: {x}");
            last = x;
        }
        // No tick inside the break, none closer than its labels allow.
        let ticks = a.ticks();
        assert!(
            ticks
                .iter()
                .all(|(ms, _, _)| *ms <= 10_000 || *ms >= 3_610_000)
        );
        assert!(ticks.windows(2).all(|w| w[1].1 > w[0].1));
    }
}
