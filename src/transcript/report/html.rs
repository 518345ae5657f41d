//! The HTML layout of the report: one self-contained file (inline CSS, no scripts, no external
//! assets). Every transcript value goes through [`esc`].

use std::fmt::Write;

use serde_json::Value;

use super::escape::esc;
use super::incident::Incident;
use super::model::{Containment, human_duration};
use super::sections::{self, Cell, Dress, Table};
use super::svg;
use crate::event::REDACTED;

const CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.mono,span.mono{font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}td.ts,span.ts{white-space:nowrap;word-break:normal}\
.ok{color:#176117;font-weight:bold}.bad{color:#a11;font-weight:bold}\
.summary{border:1px solid #ccc;border-left:6px solid #888;border-radius:4px;padding:.8rem 1rem;margin:1rem 0;background:#fafafa;font-size:16px}\
.summary.contained{border-left-color:#2e7d32}.summary.not-contained{border-left-color:#c62828}.summary.estimate{border-left-color:#ef6c00}\
.pill{display:inline-block;padding:0 .5rem;margin-right:.5rem;border-radius:1rem;color:#fff;font-size:13px;font-weight:bold;background:#757575;vertical-align:1px}\
.pill.contained{background:#2e7d32}.pill.not-contained{background:#c62828}.pill.estimate{background:#ef6c00}\
.secret{font-family:ui-monospace,monospace;font-size:13px;background:#eee;border-radius:3px;padding:0 .3rem;color:#555}\
.status{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}\
figure{margin:1rem 0;overflow-x:auto}svg.timeline{max-width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:4px}";

/// Longest output value shown in full; longer ones are cut (the transcript has them all).
const MAX_VALUE_CHARS: usize = 400;

pub(super) fn render(inc: &Incident) -> String {
    let mut out = String::new();
    let name = inc
        .last()
        .map(|l| l.timeline.runbook_name.as_str())
        .unwrap_or_default();
    let title = format!("Incident response report: {}", esc(name));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{title}</title><style>{CSS}</style></head><body>\n<h1>{title}</h1>\n"
    );
    summary(&mut out, inc);
    out.push_str("<h2>The incident over time</h2>\n");
    match svg::timeline(inc) {
        Some(svg) => {
            out.push_str("<figure>\n");
            out.push_str(&svg);
            out.push_str("</figure>\n");
        }
        None => out.push_str("<p>No step started.</p>\n"),
    }
    out.push_str("<table>\n");
    for (k, cell) in sections::overview(inc) {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", cell_html(&cell));
    }
    out.push_str("</table>\n");
    table(&mut out, &sections::legs(inc));
    containment(&mut out, inc);
    table(&mut out, &sections::decisions(inc));
    table(&mut out, &sections::evidence(inc));
    if let Some(t) = sections::scope_patients(inc) {
        table(&mut out, &t);
        for line in sections::scope_lines(inc) {
            let _ = writeln!(out, "<p>{}</p>", esc(&line));
        }
    }
    table(&mut out, &sections::steps(inc));
    inputs(&mut out, inc);
    outputs(&mut out, inc);
    table(&mut out, &sections::events(inc));
    out.push_str("<h2>Verification</h2>\n<ul>\n");
    for (bad, line) in sections::verification(inc) {
        let class = if bad { " class=\"bad\"" } else { "" };
        let _ = writeln!(out, "<li{class}>{}</li>", esc(&line));
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

fn cell_html(c: &Cell) -> String {
    match &c.dress {
        Dress::Plain => esc(&c.text),
        Dress::Mono => format!("<span class=\"mono\">{}</span>", esc(&c.text)),
        Dress::Code => format!("<span class=\"mono ts\">{}</span>", esc(&c.text)),
        Dress::Status(word) => format!("{}{}", swatch(word), esc(&c.text)),
        Dress::Strong => format!("<span class=\"bad\">{}</span>", esc(&c.text)),
    }
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "<h2>{}</h2>", esc(t.title));
    if t.rows.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", esc(t.empty));
        return;
    }
    out.push_str("<table><tr>");
    for h in t.headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for c in row {
            let _ = write!(out, "<td>{}</td>", cell_html(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The paragraph on top, with a badge for the containment state.
fn summary(out: &mut String, inc: &Incident) {
    let Some(leg) = inc.containment_leg() else {
        return;
    };
    let (class, badge) = match leg.timeline.containment_facts() {
        Containment::Recorded(c) => match c.state.as_str() {
            "contained" => ("contained", "CONTAINED".to_string()),
            "not-contained" => ("not-contained", "NOT CONTAINED".to_string()),
            "not-applicable" => ("", "CONTAINMENT N/A".to_string()),
            other => ("", other.to_uppercase()),
        },
        Containment::Estimated(Some(_)) => ("estimate", "CONTAINED? (ESTIMATE)".to_string()),
        Containment::Estimated(None) => ("not-contained", "NOT CONTAINED (ESTIMATE)".to_string()),
        Containment::DryRun => ("", "DRY RUN".to_string()),
    };
    let _ = writeln!(
        out,
        "<p class=\"summary {class}\"><span class=\"pill {class}\">{}</span>{}</p>",
        esc(&badge),
        esc(&inc.summary())
    );
}

fn containment(out: &mut String, inc: &Incident) {
    out.push_str("<h2>Containment</h2>\n");
    let Some(leg) = inc.containment_leg() else {
        return;
    };
    let c = match leg.timeline.containment_facts() {
        Containment::Recorded(c) => c,
        Containment::DryRun => {
            out.push_str("<p>A dry run sends no change, so nothing was contained.</p>\n");
            return;
        }
        Containment::Estimated(e) => {
            let _ = writeln!(
                out,
                "<p>This transcript has no containment record (it predates them, or the run ended before writing one). Estimate: {}.</p>",
                match e {
                    Some((d, step)) => format!(
                        "contained {} after its leg&#39;s start, when the last destructive step, {}, finished ok",
                        human_duration(*d),
                        esc(step)
                    ),
                    None => "not reached: no destructive step finished ok".into(),
                }
            );
            return;
        }
    };
    out.push_str("<table>\n");
    if inc.legs.len() > 1 {
        let _ = writeln!(
            out,
            "<tr><th>Recorded by</th><td>leg {} (<span class=\"mono\">{}</span>)</td></tr>",
            leg.number,
            esc(&leg.file)
        );
    }
    let _ = writeln!(
        out,
        "<tr><th>State</th><td><strong>{}</strong></td></tr>",
        esc(&c.state)
    );
    if !c.summary.is_empty() {
        let _ = writeln!(out, "<tr><th>Summary</th><td>{}</td></tr>", esc(&c.summary));
    }
    let _ = writeln!(
        out,
        "<tr><th>Time to containment</th><td>{}</td></tr>",
        c.time_to_containment.map_or("—".into(), |d| format!(
            "{} after the incident&#39;s start",
            human_duration(d)
        ))
    );
    let _ = writeln!(
        out,
        "<tr><th>Contained at</th><td class=\"mono\">{}</td></tr>",
        c.at.as_deref().map_or("—".into(), esc)
    );
    out.push_str("</table>\n");
    if !c.checks.is_empty() {
        out.push_str("<table><tr><th>Check (step)</th><th>Status</th><th>Detail</th></tr>\n");
        for check in &c.checks {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td></tr>",
                esc(&check.step),
                swatch(&check.status),
                esc(&check.status),
                esc(&check.detail)
            );
        }
        out.push_str("</table>\n");
    }
}

fn inputs(out: &mut String, inc: &Incident) {
    let Some(t) = inc
        .last()
        .map(|l| &l.timeline)
        .filter(|t| !t.inputs.is_empty())
    else {
        return;
    };
    out.push_str("<h2>Inputs</h2>\n<table><tr><th>Input</th><th>Value</th></tr>\n");
    for (k, val) in &t.inputs {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(k),
            value_cell(&Value::String(val.clone()))
        );
    }
    out.push_str("</table>\n");
}

/// The outputs each step recorded. Secret outputs were recorded as `[secret]` and are shown as
/// exactly that.
fn outputs(out: &mut String, inc: &Incident) {
    out.push_str("<h2>Step outputs</h2>\n");
    let steps = || {
        inc.legs
            .iter()
            .flat_map(|l| l.timeline.steps.iter().map(move |s| (l.number, s)))
    };
    if steps().all(|(_, s)| s.outputs.is_empty()) {
        out.push_str("<p>No step recorded outputs.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>Leg</th><th>Step</th><th>Output</th><th>Value</th></tr>\n");
    for (leg, s) in steps() {
        for (name, value) in &s.outputs {
            let _ = writeln!(
                out,
                "<tr><td>{leg}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
                esc(&s.step),
                esc(name),
                value_cell(value)
            );
        }
    }
    out.push_str("</table>\n");
}

/// A recorded value: `[secret]` as a marker, text as text, anything else as compact JSON; long
/// values cut.
fn value_cell(value: &Value) -> String {
    match value {
        Value::String(s) if s == REDACTED => {
            format!("<span class=\"secret\">{}</span>", esc(REDACTED))
        }
        Value::String(s) => esc(&cut(s)),
        Value::Null => "<span class=\"mono\">null</span>".into(),
        other => format!(
            "<span class=\"mono\">{}</span>",
            esc(&cut(&other.to_string()))
        ),
    }
}

fn cut(s: &str) -> String {
    let count = s.chars().count();
    if count <= MAX_VALUE_CHARS {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_VALUE_CHARS).collect();
    t.push_str(&format!(
        "… ({} more characters in the transcript)",
        count - MAX_VALUE_CHARS
    ));
    t
}

/// A small square in the status's colour (the same as the timeline's bars).
fn swatch(status: &str) -> String {
    format!(
        "<span class=\"status\" style=\"background:{}\"></span>",
        svg::status_colour(status)
    )
}
