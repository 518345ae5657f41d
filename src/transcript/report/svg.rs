//! The report's picture of the run: one bar per step from its start to its finish on a time axis,
//! coloured by status, destructive steps outlined and marked, and a line at containment. Plain
//! inline SVG — no script, no external font or stylesheet — and every text goes through [`esc`].

use std::fmt::Write;

use super::escape::esc;
use super::model::{Containment, StepRow, Timeline, human_duration};

const WIDTH: i64 = 960;
const LABEL: i64 = 210;
const RIGHT: i64 = 130;
const TOP: i64 = 34;
const ROW: i64 = 26;
const BAR: i64 = 16;
const LEGEND: i64 = 44;

/// Status colours, shared with the HTML legend.
pub(super) fn status_colour(status: &str) -> &'static str {
    match status {
        "ok" => "#2e7d32",
        "failed" => "#c62828",
        "declined" => "#ef6c00",
        "skipped" => "#9e9e9e",
        "interrupted" => "#6a1b9a",
        _ => "#bdbdbd",
    }
}

/// A step's bar in milliseconds from the run's start: (start, end, finished).
fn span(t: &Timeline, s: &StepRow) -> Option<(i64, i64, bool)> {
    let start = t.offset_ms(&s.started)?;
    let (end, finished) = match &s.finished {
        Some(f) => (t.offset_ms(f)?, true),
        None => (
            t.finished
                .as_deref()
                .and_then(|f| t.offset_ms(f))
                .or_else(|| t.offset_ms(&t.last_ts))
                .unwrap_or(start),
            false,
        ),
    };
    Some((start.max(0), end.max(start).max(0), finished))
}

/// The SVG element, or `None` when no step has a readable time.
pub(super) fn timeline(t: &Timeline) -> Option<String> {
    let bars: Vec<(&StepRow, (i64, i64, bool))> = t
        .steps
        .iter()
        .filter_map(|s| span(t, s).map(|sp| (s, sp)))
        .collect();
    if bars.is_empty() {
        return None;
    }
    let contained = match t.containment_facts() {
        Containment::Recorded(c) => c
            .time_to_containment
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .map(|ms| (ms, "contained")),
        Containment::Estimated(e) => e
            .and_then(|(d, _)| i64::try_from(d.as_millis()).ok())
            .map(|ms| (ms, "contained (estimate)")),
        Containment::DryRun => None,
    };
    let run_end = t
        .finished
        .as_deref()
        .and_then(|f| t.offset_ms(f))
        .unwrap_or(0);
    let total = bars
        .iter()
        .map(|(_, (_, e, _))| *e)
        .chain([run_end, contained.map_or(0, |(ms, _)| ms)])
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = WIDTH - LABEL - RIGHT;
    let x = |ms: i64| LABEL + (i128::from(ms) * i128::from(plot) / i128::from(total)) as i64;
    let rows = bars.len() as i64;
    let height = TOP + rows * ROW + LEGEND;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" role=\"img\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">\n\
         <title>Steps over time: one bar per step from its start to its finish</title>\n"
    );
    // Axis and grid.
    let step = tick_step(total);
    let mut tick = 0;
    while tick <= total {
        let tx = x(tick);
        let _ = writeln!(
            out,
            "<line x1=\"{tx}\" y1=\"{}\" x2=\"{tx}\" y2=\"{}\" stroke=\"#e0e0e0\"/><text x=\"{tx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            TOP - 8,
            TOP + rows * ROW,
            TOP - 14,
            esc(&tick_label(tick))
        );
        tick += step;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LABEL}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>",
        TOP - 8,
        LABEL + plot,
        TOP - 8
    );
    for (row, (s, (start, end, finished))) in bars.iter().enumerate() {
        let y = TOP + row as i64 * ROW + (ROW - BAR) / 2;
        let (x0, x1) = (x(*start), x(*end));
        let w = (x1 - x0).max(2);
        let mut name = truncate(&s.step, 26);
        if let Some(n) = s.items {
            name.push_str(&format!(" ×{n}"));
        }
        let duration = s
            .duration_ms
            .map(|ms| {
                human_duration(jiff::SignedDuration::from_millis(
                    i64::try_from(ms).unwrap_or(i64::MAX),
                ))
            })
            .unwrap_or_else(|| human_duration(jiff::SignedDuration::from_millis(end - start)));
        let status = if *finished {
            s.status.as_str()
        } else {
            "unfinished"
        };
        let tooltip = format!(
            "{}: {status}, {duration}{}{}",
            s.step,
            if s.destructive { ", destructive" } else { "" },
            s.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        let _ = write!(out, "<g><title>{}</title>", esc(&tooltip));
        if s.destructive {
            let (mx, my) = (8, y + BAR / 2);
            let _ = write!(
                out,
                "<polygon points=\"{mx},{} {},{} {},{}\" fill=\"#c62828\"/>",
                my - 6,
                mx + 6,
                my + 5,
                mx - 6,
                my + 5
            );
        }
        let _ = write!(
            out,
            "<text x=\"20\" y=\"{}\" fill=\"#222\">{}</text>",
            y + BAR - 3,
            esc(&name)
        );
        let stroke = if s.destructive {
            " stroke=\"#111\" stroke-width=\"2\""
        } else {
            ""
        };
        let dash = if *finished {
            ""
        } else {
            " stroke-dasharray=\"4 3\""
        };
        let _ = write!(
            out,
            "<rect x=\"{x0}\" y=\"{y}\" width=\"{w}\" height=\"{BAR}\" rx=\"3\" fill=\"{}\"{stroke}{dash}/>",
            status_colour(status)
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"#444\" font-size=\"11\">{} {}</text></g>",
            x0 + w + 6,
            y + BAR - 3,
            esc(status),
            esc(&duration)
        );
    }
    if let Some((ms, label)) = contained {
        let cx = x(ms);
        let _ = writeln!(
            out,
            "<g><title>{}</title><line x1=\"{cx}\" y1=\"{}\" x2=\"{cx}\" y2=\"{}\" stroke=\"#1565c0\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/><text x=\"{}\" y=\"{}\" fill=\"#1565c0\" font-weight=\"bold\">{} {}</text></g>",
            esc(&format!(
                "{label} after {}",
                human_duration(jiff::SignedDuration::from_millis(ms))
            )),
            TOP - 8,
            TOP + rows * ROW,
            cx + 4,
            TOP + rows * ROW + 14,
            esc(label),
            esc(&human_duration(jiff::SignedDuration::from_millis(ms)))
        );
    }
    legend(&mut out, TOP + rows * ROW + 34);
    out.push_str("</svg>\n");
    Some(out)
}

fn legend(out: &mut String, y: i64) {
    let mut lx = LABEL;
    for (status, label) in [
        ("ok", "ok"),
        ("failed", "failed"),
        ("declined", "declined"),
        ("skipped", "skipped"),
        ("interrupted", "interrupted"),
        ("unfinished", "unfinished"),
    ] {
        let _ = write!(
            out,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{}\"/><text x=\"{}\" y=\"{y}\" fill=\"#444\">{label}</text>",
            y - 10,
            status_colour(status),
            lx + 16
        );
        lx += 24 + 8 * label.len() as i64;
    }
    let _ = writeln!(
        out,
        "<polygon points=\"{},{} {},{} {},{}\" fill=\"#c62828\"/><text x=\"{}\" y=\"{y}\" fill=\"#444\">destructive (outlined)</text>",
        lx + 6,
        y - 10,
        lx + 12,
        y + 1,
        lx,
        y + 1,
        lx + 18
    );
}

/// A tick spacing of 1, 2 or 5 × 10^k ms giving at most 10 ticks.
fn tick_step(total: i64) -> i64 {
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

/// `0`, `250 ms`, `1.5 s`, `90 s`, `2 min`.
fn tick_label(ms: i64) -> String {
    if ms == 0 {
        "0".into()
    } else if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 || ms % 60_000 != 0 {
        if ms % 1000 == 0 {
            format!("{} s", ms / 1000)
        } else {
            format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
        }
    } else {
        format!("{} min", ms / 60_000)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
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
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
