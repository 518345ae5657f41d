//! The HTML layout of the report: one self-contained file (inline CSS, no scripts, no external
//! assets). Every transcript value goes through [`esc`].

use std::fmt::Write;

use serde_json::Value;

use super::escape::esc;
use super::model::{Containment, Timeline, human_duration};
use super::svg;
use crate::event::REDACTED;
use crate::transcript::findings::Verification;

const CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.mono,span.mono{font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}td.ts{white-space:nowrap;word-break:normal}\
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

pub(super) fn render(t: &Timeline, v: &Verification) -> String {
    let mut out = String::new();
    let title = format!("Incident response report: {}", esc(&t.runbook_name));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{title}</title><style>{CSS}</style></head><body>\n<h1>{title}</h1>\n"
    );
    summary(&mut out, t);
    out.push_str("<h2>Steps over time</h2>\n");
    match svg::timeline(t) {
        Some(svg) => {
            out.push_str("<figure>\n");
            out.push_str(&svg);
            out.push_str("</figure>\n");
        }
        None => out.push_str("<p>No step started.</p>\n"),
    }
    overview(&mut out, t, v);
    containment(&mut out, t);
    inputs(&mut out, t);
    steps(&mut out, t);
    outputs(&mut out, t);
    evidence(&mut out, t);
    out.push_str("<h2>Timeline</h2>\n<table><tr><th>Seq</th><th>Time</th><th>Event</th><th>Details</th></tr>\n");
    for e in &t.events {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"mono ts\">{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            esc(&e.ts),
            esc(&e.kind),
            esc(&e.summary)
        );
    }
    out.push_str("</table>\n<h2>Verification</h2>\n<ul>\n");
    for p in &v.problems {
        let place = p.seq.map(|s| format!("seq {s}: ")).unwrap_or_default();
        let _ = writeln!(out, "<li class=\"bad\">{place}{}</li>", esc(&p.what));
    }
    for w in &v.warnings {
        let _ = writeln!(out, "<li>warning: {}</li>", esc(w));
    }
    let _ = writeln!(
        out,
        "<li>{} records, {}</li>",
        v.events,
        if v.complete { "complete" } else { "incomplete" }
    );
    out.push_str("</ul>\n</body></html>\n");
    out
}

/// The paragraph on top, with a badge for the containment state.
fn summary(out: &mut String, t: &Timeline) {
    let (class, badge) = match t.containment_facts() {
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
        esc(&t.summary())
    );
}

fn overview(out: &mut String, t: &Timeline, v: &Verification) {
    let verdict = if v.ok {
        "<span class=\"ok\">VALID</span>"
    } else {
        "<span class=\"bad\">INVALID</span>"
    };
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(id) = &t.incident_id {
        rows.push(("Incident", esc(id)));
    }
    rows.extend([
        ("Operator", esc(&t.operator)),
        ("Host", esc(&t.host)),
        ("Mode", esc(&t.mode)),
        ("ESUS", esc(&t.base_url)),
        (
            "Runbook",
            format!(
                "{} <span class=\"mono\">{}</span>",
                esc(&t.runbook_name),
                esc(&t.runbook_sha256)
            ),
        ),
        ("esus-ir", esc(&t.tool_version)),
    ]);
    if let Some(p) = &t.preflight {
        rows.push(("Acting as", esc(p)));
    }
    if let Some(r) = &t.resumes {
        rows.push(("Resumes", format!("<span class=\"mono\">{}</span>", esc(r))));
    }
    rows.extend([
        ("Started", esc(&t.started)),
        (
            "Finished",
            t.finished
                .as_deref()
                .map_or("never (the run did not finish)".into(), esc),
        ),
        ("Duration", t.duration.map_or("—".into(), human_duration)),
        (
            "Outcome",
            t.outcome
                .as_ref()
                .map_or("unknown".into(), |(o, c)| format!("{} (exit {c})", esc(o))),
        ),
        (
            "Time to containment",
            super::markdown::time_to_containment(t, esc),
        ),
        (
            "Verification",
            format!("{verdict} — {}", esc(&v.signature.detail)),
        ),
    ]);
    out.push_str("<table>\n");
    for (k, val) in rows {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{val}</td></tr>");
    }
    out.push_str("</table>\n");
}

fn containment(out: &mut String, t: &Timeline) {
    out.push_str("<h2>Containment</h2>\n");
    let c = match t.containment_facts() {
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
                        "contained {} after the start, when the last destructive step, {}, finished ok",
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
        c.time_to_containment.map_or("—".into(), human_duration)
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

fn inputs(out: &mut String, t: &Timeline) {
    if t.inputs.is_empty() {
        return;
    }
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

fn steps(out: &mut String, t: &Timeline) {
    out.push_str("<h2>Steps</h2>\n<table><tr><th>Step</th><th>Started</th><th>Destructive</th><th>Approval</th><th>Result</th><th>Duration</th><th>Requests</th></tr>\n");
    for s in &t.steps {
        let result = match &s.reason {
            Some(r) => format!("{}: {}", esc(&s.status), esc(r)),
            None => esc(&s.status),
        };
        let items = s.items.map(|n| format!(" ({n} items)")).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}{items}</td><td class=\"mono ts\">{}</td><td>{}</td><td>{}</td><td>{}{result}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.step),
            esc(&s.started),
            if s.destructive {
                "<strong>yes</strong>"
            } else {
                "no"
            },
            if s.approval.is_empty() {
                "—".into()
            } else {
                esc(&s.approval)
            },
            swatch(&s.status),
            s.duration_ms.map_or("—".into(), |ms| format!("{ms} ms")),
            s.requests
        );
    }
    out.push_str("</table>\n");
}

/// The outputs each step recorded. Secret outputs were recorded as `[secret]` and are shown as
/// exactly that.
fn outputs(out: &mut String, t: &Timeline) {
    out.push_str("<h2>Step outputs</h2>\n");
    if t.steps.iter().all(|s| s.outputs.is_empty()) {
        out.push_str("<p>No step recorded outputs.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>Step</th><th>Output</th><th>Value</th></tr>\n");
    for s in &t.steps {
        for (name, value) in &s.outputs {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
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

fn evidence(out: &mut String, t: &Timeline) {
    out.push_str("<h2>Evidence</h2>\n");
    if t.evidence.is_empty() {
        out.push_str("<p>No evidence files.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>Step</th><th>File</th><th>SHA-256</th></tr>\n");
    for e in &t.evidence {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&e.step),
            esc(&e.file),
            esc(&e.sha256)
        );
    }
    out.push_str("</table>\n");
}
