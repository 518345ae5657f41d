//! The HTML layout of the report: one self-contained file (inline CSS, no scripts, no external
//! assets). Every transcript value goes through [`esc`].

use std::fmt::Write;

use super::model::{Timeline, human_duration};
use crate::transcript::verify::Verification;

const CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.mono,span.mono{font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}\
.ok{color:#176117;font-weight:bold}.bad{color:#a11;font-weight:bold}";

pub(super) fn render(t: &Timeline, v: &Verification) -> String {
    let mut out = String::new();
    let title = format!("Incident response report: {}", esc(&t.runbook_name));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{title}</title><style>{CSS}</style></head><body>\n<h1>{title}</h1>\n"
    );
    let verdict = if v.ok {
        "<span class=\"ok\">VALID</span>"
    } else {
        "<span class=\"bad\">INVALID</span>"
    };
    let rows: Vec<(&str, String)> = vec![
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
            t.containment.as_ref().map_or(
                "not reached (no destructive step succeeded)".into(),
                |(d, s)| format!("{} (step {})", human_duration(*d), esc(s)),
            ),
        ),
        (
            "Verification",
            format!("{verdict} — {}", esc(&v.signature.detail)),
        ),
    ];
    out.push_str("<table>\n");
    for (k, val) in rows {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{val}</td></tr>");
    }
    out.push_str("</table>\n");
    steps(&mut out, t);
    evidence(&mut out, t);
    out.push_str("<h2>Timeline</h2>\n<table><tr><th>Seq</th><th>Time</th><th>Event</th><th>Details</th></tr>\n");
    for e in &t.events {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
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

fn steps(out: &mut String, t: &Timeline) {
    out.push_str("<h2>Steps</h2>\n<table><tr><th>Step</th><th>Started</th><th>Destructive</th><th>Approval</th><th>Result</th><th>Duration</th><th>Requests</th></tr>\n");
    for s in &t.steps {
        let result = match &s.reason {
            Some(r) => format!("{}: {}", esc(&s.status), esc(r)),
            None => esc(&s.status),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.step),
            esc(&s.started),
            if s.destructive { "yes" } else { "no" },
            if s.approval.is_empty() {
                "—".into()
            } else {
                esc(&s.approval)
            },
            result,
            s.duration_ms.map_or("—".into(), |ms| format!("{ms} ms")),
            s.requests
        );
    }
    out.push_str("</table>\n");
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

/// Escapes text for HTML element content and quoted attributes.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<script>\"'&"), "&lt;script&gt;&quot;&#39;&amp;");
    }
}
