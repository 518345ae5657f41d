//! The report's picture of the incident: every leg on one time axis from the incident's start —
//! a bar per leg, then a bar per step of each leg, coloured by status, the time a prompt was open
//! drawn apart (light, dashed) from the time working, each approval, decline and Ctrl-C marked
//! where it happened, and a line at containment. Plain inline SVG — no script, no external font
//! or stylesheet — and every text goes through [`esc`]. Nothing is drawn past the axis, and a
//! label that would run off the right edge is anchored on its other side.

use std::fmt::Write;

use jiff::SignedDuration;

use super::axis::{Axis, label_px};
use super::escape::esc;
use super::incident::{Incident, Leg};
use super::model::{Decision, StepRow, decided_by, human_duration};

/// The picture's width; the axis runs from `LABEL` to `WIDTH - RIGHT`.
pub(super) const WIDTH: i64 = 1000;
const LABEL: i64 = 200;
const RIGHT: i64 = 40;
const TOP: i64 = 40;
const ROW: i64 = 24;
const BAR: i64 = 14;
const WAIT_FILL: &str = "#ffe0b2";
const WAIT_STROKE: &str = "#e65100";

/// Status colours, shared with the HTML legend.
pub(super) fn status_colour(status: &str) -> &'static str {
    match status {
        "ok" | "success" => "#2e7d32",
        "failed" => "#c62828",
        "declined" => "#ef6c00",
        "skipped" => "#9e9e9e",
        "interrupted" => "#6a1b9a",
        _ => "#bdbdbd",
    }
}

fn ms_text(ms: i64) -> String {
    human_duration(SignedDuration::from_millis(ms))
}

/// A step's bar on the axis: (start, end, finished).
fn span(inc: &Incident, leg: &Leg, s: &StepRow) -> Option<(i64, i64, bool)> {
    let start = inc.offset_ms(&s.started)?;
    let (end, finished) = match &s.finished {
        Some(f) => (inc.offset_ms(f)?, true),
        None => (leg.end_ms, false),
    };
    Some((start.max(0), end.max(start).max(0), finished))
}

/// Where a label of `width` px goes beside a mark spanning `x0..x1`: after it when it fits
/// before the right edge, else before it (anchored at its end), else at the right edge.
fn beside(x0: i64, x1: i64, width: i64) -> (i64, &'static str) {
    if x1 + 6 + width <= WIDTH - 4 {
        (x1 + 6, "start")
    } else if x0 - 6 - width >= LABEL {
        (x0 - 6, "end")
    } else {
        (WIDTH - 4, "end")
    }
}

/// The SVG element, or `None` when no leg has a readable time.
pub(super) fn timeline(inc: &Incident) -> Option<String> {
    let rows: Vec<(&Leg, &StepRow, (i64, i64, bool))> = inc
        .legs
        .iter()
        .flat_map(|leg| {
            leg.timeline
                .steps
                .iter()
                .filter(|s| s.ran)
                .filter_map(move |s| span(inc, leg, s).map(|sp| (leg, s, sp)))
        })
        .collect();
    if inc.legs.is_empty() || inc.offset_ms(&inc.started).is_none() {
        return None;
    }
    let pauses: Vec<(i64, i64)> = std::iter::once((0, inc.legs[0].start_ms))
        .chain(inc.legs.windows(2).map(|w| (w[0].end_ms, w[1].start_ms)))
        .filter(|(a, b)| b > a)
        .collect();
    let axis = Axis::new(LABEL, WIDTH - RIGHT, inc.end_ms, &pauses);
    let bottom = TOP + (rows.len() as i64 + 1) * ROW;
    let legend_y = bottom + 44;
    let height = legend_y + 2 * 20;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" role=\"img\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">\n\
         <title>The incident over time: every leg, and each step's bar from its start to its finish, on one axis from the incident's start</title>\n"
    );
    pauses_and_breaks(&mut out, &axis, &pauses, bottom);
    ticks(&mut out, &axis, bottom);
    legs_row(&mut out, inc, &axis);
    let mut leg_of_row = 0;
    for (i, (leg, s, sp)) in rows.iter().enumerate() {
        let y = TOP + (i as i64 + 1) * ROW;
        if leg.number != leg_of_row {
            leg_of_row = leg.number;
            let _ = writeln!(
                out,
                "<line x1=\"4\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ccc\"/>",
                WIDTH - 4
            );
        }
        step_row(&mut out, inc, &axis, leg, s, *sp, y + (ROW - BAR) / 2);
    }
    containment(&mut out, inc, &axis, bottom);
    legend(&mut out, legend_y);
    out.push_str("</svg>\n");
    Some(out)
}

/// Pauses between legs as grey bands across every row; a broken one with its length.
fn pauses_and_breaks(out: &mut String, axis: &Axis, pauses: &[(i64, i64)], bottom: i64) {
    for &(a, b) in pauses {
        let (xa, xb) = (axis.x(a), axis.x(b));
        let what = if a == 0 {
            format!("{}: before the first leg in this folder", ms_text(b - a))
        } else {
            format!(
                "{} between legs: nobody was running esus-ir",
                ms_text(b - a)
            )
        };
        let _ = writeln!(
            out,
            "<rect class=\"pause\" x=\"{xa}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f1f1f1\"><title>{}</title></rect>",
            TOP - 8,
            (xb - xa).max(1),
            bottom - TOP + 8,
            esc(&what)
        );
    }
    for p in axis.breaks() {
        let mid = (p.x_from + p.x_to) / 2;
        let _ = writeln!(
            out,
            "<g class=\"break\"><title>{}</title><path d=\"M{} {} l6 -6 l6 12 l6 -6\" fill=\"none\" stroke=\"#888\"/><text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" fill=\"#777\" font-size=\"10\">{}</text></g>",
            esc(&format!(
                "{} not to scale (between legs)",
                ms_text(p.to_ms - p.from_ms)
            )),
            mid - 9,
            TOP - 8,
            bottom + 14,
            esc(&format!("⋯ {} ⋯", ms_text(p.to_ms - p.from_ms)))
        );
    }
}

fn ticks(out: &mut String, axis: &Axis, bottom: i64) {
    for (_, tx, label) in axis.ticks() {
        let _ = writeln!(
            out,
            "<line x1=\"{tx}\" y1=\"{}\" x2=\"{tx}\" y2=\"{bottom}\" stroke=\"#e0e0e0\"/><text x=\"{tx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            TOP - 8,
            TOP - 14,
            esc(&label)
        );
    }
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/><text x=\"4\" y=\"{}\" fill=\"#555\">from the incident&#39;s start</text>",
        axis.x0,
        TOP - 8,
        axis.x1,
        TOP - 8,
        TOP - 14
    );
}

/// One bar per leg, coloured by its outcome.
fn legs_row(out: &mut String, inc: &Incident, axis: &Axis) {
    let y = TOP + (ROW - BAR) / 2;
    let _ = writeln!(
        out,
        "<text x=\"4\" y=\"{}\" fill=\"#222\" font-weight=\"bold\">Legs</text>",
        y + BAR - 3
    );
    for leg in &inc.legs {
        let t = &leg.timeline;
        let (outcome, code) = t
            .outcome
            .as_ref()
            .map_or(("unfinished", None), |(o, c)| (o.as_str(), Some(*c)));
        let (x0, x1) = (axis.x(leg.start_ms), axis.x(leg.end_ms));
        let w = (x1 - x0).max(2);
        let label = format!("leg {}: {outcome}", leg.number);
        let tooltip = format!(
            "leg {} ({}){}: {outcome}{}, {} — from {} to {} after the incident's start",
            leg.number,
            leg.file,
            if t.operator.is_empty() {
                String::new()
            } else {
                format!(" by {}", t.operator)
            },
            code.map(|c| format!(" (exit {c})")).unwrap_or_default(),
            ms_text(leg.end_ms - leg.start_ms),
            ms_text(leg.start_ms),
            ms_text(leg.end_ms)
        );
        let _ = write!(
            out,
            "<g class=\"leg\"><title>{}</title><rect x=\"{x0}\" y=\"{y}\" width=\"{w}\" height=\"{BAR}\" rx=\"3\" fill=\"{}\" fill-opacity=\"0.35\" stroke=\"{}\"/>",
            esc(&tooltip),
            status_colour(outcome),
            status_colour(outcome)
        );
        let text_w = label_px(&label);
        let (tx, anchor) = if text_w + 8 <= w {
            (x0 + 4, "start")
        } else {
            beside(x0, x0 + w, text_w)
        };
        let _ = writeln!(
            out,
            "<text x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#222\" font-size=\"11\">{}</text></g>",
            y + BAR - 3,
            esc(&label)
        );
    }
}

fn step_row(
    out: &mut String,
    inc: &Incident,
    axis: &Axis,
    leg: &Leg,
    s: &StepRow,
    (start, end, finished): (i64, i64, bool),
    y: i64,
) {
    let (x0, x1) = (axis.x(start), axis.x(end));
    let w = (x1 - x0).max(2);
    let mut name = format!("{} · {}", leg.number, truncate(&s.step, 24));
    if let Some(n) = s.items {
        name.push_str(&format!(" ×{n}"));
    }
    // The executor's own duration leaves out the time its prompt was open, which is drawn apart.
    let duration = ms_text(
        s.duration_ms
            .and_then(|d| i64::try_from(d).ok())
            .unwrap_or(end - start),
    );
    let status = if finished {
        s.status.as_str()
    } else {
        "unfinished"
    };
    let waited: i64 = waits_of(inc, leg, &s.step).map(|(a, b, _)| b - a).sum();
    let waited_text = if waited > 0 {
        format!(" + {} waiting for a person", ms_text(waited))
    } else {
        String::new()
    };
    let tooltip = format!(
        "leg {}, {}: {status}, {duration}{waited_text}{}{}",
        leg.number,
        s.step,
        if s.destructive { ", destructive" } else { "" },
        s.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let _ = write!(out, "<g class=\"step\"><title>{}</title>", esc(&tooltip));
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
    let dash = if finished {
        ""
    } else {
        " stroke-dasharray=\"4 3\""
    };
    let _ = write!(
        out,
        "<rect x=\"{x0}\" y=\"{y}\" width=\"{w}\" height=\"{BAR}\" rx=\"3\" fill=\"{}\"{stroke}{dash}/>",
        status_colour(status)
    );
    // The time a prompt was open, drawn over the bar: not working, waiting for a person.
    for (a, b, _) in waits_of(inc, leg, &s.step) {
        let (wa, wb) = (axis.x(a), axis.x(b));
        let _ = write!(
            out,
            "<rect class=\"wait\" x=\"{wa}\" y=\"{y}\" width=\"{}\" height=\"{BAR}\" fill=\"{WAIT_FILL}\" stroke=\"{WAIT_STROKE}\" stroke-dasharray=\"3 2\"/>",
            (wb - wa).max(2)
        );
    }
    let label = format!("{status} {duration}{waited_text}");
    let (tx, anchor) = beside(x0, x0 + w, label_px(&label));
    let _ = writeln!(
        out,
        "<text x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#444\" font-size=\"11\">{}</text></g>",
        y + BAR - 3,
        esc(&label)
    );
    decisions(out, inc, axis, leg, &s.step, y);
}

/// The prompts of `step` in `leg`: (opened, answered, decision), ms on the axis.
fn waits_of<'a>(
    inc: &'a Incident,
    leg: &'a Leg,
    step: &'a str,
) -> impl Iterator<Item = (i64, i64, Decision)> + 'a {
    inc.waits.iter().filter_map(move |w| {
        let d = inc.decision(w)?;
        (inc.legs.get(w.leg)?.number == leg.number && d.step == step)
            .then_some((w.from_ms, w.to_ms, d.decision))
    })
}

/// A mark where each approval, decline or Ctrl-C of `step` happened, with who, how and the
/// digest it signs in its tooltip.
fn decisions(out: &mut String, inc: &Incident, axis: &Axis, leg: &Leg, step: &str, y: i64) {
    for d in leg.timeline.decisions.iter().filter(|d| d.step == step) {
        let Some(at) = inc.offset_ms(&d.ts) else {
            continue;
        };
        let x = axis.x(at);
        let (glyph, colour, word) = match d.decision {
            Decision::Approved => ("✓", "#1b5e20", "approved"),
            Decision::Declined => ("✗", "#b71c1c", "declined"),
            Decision::Interrupted => ("■", "#4a148c", "interrupted (Ctrl-C) at the prompt"),
        };
        let who = decided_by(&leg.timeline.operator, &d.how);
        let tooltip = format!(
            "{step}: {word} — {who} — at {} after the incident's start{}",
            ms_text(at),
            d.request_sha256
                .as_deref()
                .map(|h| format!("; request SHA-256 {h}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "<g class=\"decision {}\"><title>{}</title><line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"{colour}\" font-weight=\"bold\" font-size=\"14\">{glyph}</text></g>",
            match d.decision {
                Decision::Approved => "approved",
                Decision::Declined => "declined",
                Decision::Interrupted => "interrupted",
            },
            esc(&tooltip),
            y - 3,
            y + BAR + 3,
            y + 1
        );
    }
}

/// The dashed line where containment was proven, its label kept inside the picture.
fn containment(out: &mut String, inc: &Incident, axis: &Axis, bottom: i64) {
    let Some(mark) = inc.containment_mark() else {
        return;
    };
    let cx = axis.x(mark.at_ms);
    let label = format!(
        "{} {} after the incident's start",
        if mark.estimate {
            "contained (estimate)"
        } else {
            "contained"
        },
        ms_text(mark.at_ms)
    );
    let width = label_px(&label) + label_px(&label) / 8;
    let (tx, anchor) = if cx + 4 + width <= WIDTH - 4 {
        (cx + 4, "start")
    } else {
        ((cx - 4).max(width + 4), "end")
    };
    let _ = writeln!(
        out,
        "<g class=\"containment\"><title>{}</title><line x1=\"{cx}\" y1=\"{}\" x2=\"{cx}\" y2=\"{}\" stroke=\"#1565c0\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/><text x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#1565c0\" font-weight=\"bold\">{}</text></g>",
        esc(&format!("{label} (leg {})", mark.leg)),
        TOP - 8,
        bottom,
        bottom + 28,
        esc(&label)
    );
}

/// A legend entry's mark, drawn in the 12 px square at (x, y).
type Swatch = Box<dyn Fn(i64, i64) -> String>;

fn legend(out: &mut String, y: i64) {
    let square = |fill: &'static str, extra: &'static str| -> Swatch {
        Box::new(move |x, y| {
            format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{fill}\"{extra}/>"
            )
        })
    };
    let glyph = |glyph: &'static str, fill: &'static str| -> Swatch {
        Box::new(move |x, y| {
            format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{fill}\" font-weight=\"bold\">{glyph}</text>",
                x + 6,
                y + 11
            )
        })
    };
    let mut items: Vec<(Swatch, &str)> = [
        "ok",
        "failed",
        "declined",
        "skipped",
        "interrupted",
        "unfinished",
    ]
    .into_iter()
    .map(|st| (square(status_colour(st), ""), st))
    .collect();
    items.extend([
        (
            square(WAIT_FILL, " stroke=\"#e65100\" stroke-dasharray=\"3 2\""),
            "waiting for a person (prompt open)",
        ),
        (glyph("✓", "#1b5e20"), "approved"),
        (glyph("✗", "#b71c1c"), "declined"),
        (glyph("■", "#4a148c"), "Ctrl-C at a prompt"),
        (square("#f1f1f1", ""), "between legs"),
        (
            Box::new(|x: i64, y: i64| {
                format!(
                    "<polygon points=\"{},{y} {},{} {x},{}\" fill=\"#c62828\"/>",
                    x + 6,
                    x + 12,
                    y + 11,
                    y + 11
                )
            }) as Swatch,
            "destructive (outlined)",
        ),
    ]);
    let (mut lx, mut ly) = (20, y);
    for (swatch, label) in items {
        let w = 20 + label_px(label);
        if lx + w > WIDTH - 4 {
            lx = 20;
            ly += 20;
        }
        let _ = write!(
            out,
            "{}<text x=\"{}\" y=\"{ly}\" fill=\"#444\">{}</text>",
            swatch(lx, ly - 10),
            lx + 16,
            esc(label)
        );
        lx += w + 12;
    }
    out.push('\n');
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
    fn long_names_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn a_label_near_the_right_edge_goes_before_its_mark() {
        assert_eq!(beside(300, 400, 100), (406, "start"));
        assert_eq!(beside(800, WIDTH - 20, 100), (794, "end"));
        // No room on either side: kept inside the picture.
        assert_eq!(beside(LABEL + 10, WIDTH - 20, 100), (WIDTH - 4, "end"));
    }
}
