//! The Markdown layout of the report. Every transcript value goes through [`md`], which escapes
//! Markdown and HTML syntax so a hostile value cannot add links, markup or table cells.

use std::fmt::Write;

use super::model::{Containment, Timeline, human_duration};
use crate::transcript::findings::Verification;

pub(super) fn render(t: &Timeline, v: &Verification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Incident response report: {}\n", md(&t.runbook_name));
    let _ = writeln!(out, "{}\n", md(&t.summary()));
    overview(&mut out, t, v);
    containment(&mut out, t);
    if !t.inputs.is_empty() {
        out.push_str("\n## Inputs\n\n| Input | Value |\n|---|---|\n");
        for (k, val) in &t.inputs {
            let _ = writeln!(out, "| {} | {} |", md(k), md(val));
        }
    }
    out.push_str("\n## Steps\n\n| Step | Started | Destructive | Approval | Result | Duration | Requests |\n|---|---|---|---|---|---|---|\n");
    for s in &t.steps {
        let result = match &s.reason {
            Some(reason) => format!("{}: {}", md(&s.status), md(reason)),
            None => md(&s.status),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md(&s.step),
            md(&s.started),
            if s.destructive { "yes" } else { "no" },
            if s.approval.is_empty() {
                "—".to_string()
            } else {
                md(&s.approval)
            },
            result,
            s.duration_ms.map_or("—".into(), |ms| format!("{ms} ms")),
            s.requests
        );
    }
    out.push_str("\n## Evidence\n\n");
    if t.evidence.is_empty() {
        out.push_str("No evidence files.\n");
    } else {
        out.push_str("| Step | File | SHA-256 |\n|---|---|---|\n");
        for e in &t.evidence {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                md(&e.step),
                md(&e.file),
                md(&e.sha256)
            );
        }
    }
    out.push_str("\n## Timeline\n\n| Seq | Time | Event | Details |\n|---|---|---|---|\n");
    for e in &t.events {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            e.seq,
            md(&e.ts),
            md(&e.kind),
            md(&e.summary)
        );
    }
    verification(&mut out, v);
    out
}

fn overview(out: &mut String, t: &Timeline, v: &Verification) {
    out.push_str("| | |\n|---|---|\n");
    let mut row = |k: &str, val: String| {
        let _ = writeln!(out, "| {k} | {val} |");
    };
    if let Some(id) = &t.incident_id {
        row("Incident", md(id));
    }
    row("Operator", md(&t.operator));
    row("Host", md(&t.host));
    row("Mode", md(&t.mode));
    row("ESUS", md(&t.base_url));
    row(
        "Runbook",
        format!(
            "{} (SHA-256 {})",
            md(&t.runbook_name),
            md(&t.runbook_sha256)
        ),
    );
    row("esus-ir", md(&t.tool_version));
    if let Some(p) = &t.preflight {
        row("Acting as", md(p));
    }
    if let Some(r) = &t.resumes {
        row("Resumes", md(r));
    }
    row("Started", md(&t.started));
    row(
        "Finished",
        t.finished
            .as_deref()
            .map_or("never (the run did not finish)".into(), md),
    );
    row("Duration", t.duration.map_or("—".into(), human_duration));
    row(
        "Outcome",
        t.outcome.as_ref().map_or("unknown".into(), |(o, code)| {
            format!("{} (exit {code})", md(o))
        }),
    );
    row("Time to containment", time_to_containment(t, md));
    row(
        "Verification",
        if v.ok {
            "VALID".into()
        } else {
            "**INVALID**".into()
        },
    );
}

/// The "Time to containment" cell: recorded, or labelled as an estimate. `escape` is the
/// format's escaping function.
pub(super) fn time_to_containment(t: &Timeline, escape: fn(&str) -> String) -> String {
    match t.containment_facts() {
        Containment::Recorded(c) => match (c.time_to_containment, c.state.as_str()) {
            (Some(d), _) => format!("{} (recorded)", human_duration(d)),
            (None, "not-applicable") => "not applicable (recorded)".into(),
            (None, state) => format!("not reached (recorded: {})", escape(state)),
        },
        Containment::Estimated(Some((d, step))) => format!(
            "{} (estimate: when the last destructive step, {}, finished ok; this transcript has no containment record)",
            human_duration(*d),
            escape(step)
        ),
        Containment::DryRun => "not applicable (dry run: nothing was changed)".into(),
        Containment::Estimated(None) => {
            "not reached (estimate: no destructive step succeeded; this transcript has no containment record)".into()
        }
    }
}

fn containment(out: &mut String, t: &Timeline) {
    let Containment::Recorded(c) = t.containment_facts() else {
        return;
    };
    out.push_str("\n## Containment\n\n");
    let _ = writeln!(out, "- State: **{}**", md(&c.state));
    if !c.summary.is_empty() {
        let _ = writeln!(out, "- Summary: {}", md(&c.summary));
    }
    if let Some(d) = c.time_to_containment {
        let _ = writeln!(out, "- Time to containment: {}", human_duration(d));
    }
    if let Some(at) = &c.at {
        let _ = writeln!(out, "- Contained at: {}", md(at));
    }
    if !c.checks.is_empty() {
        out.push_str("\n| Check (step) | Status | Detail |\n|---|---|---|\n");
        for check in &c.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                md(&check.step),
                md(&check.status),
                md(&check.detail)
            );
        }
    }
}

fn verification(out: &mut String, v: &Verification) {
    out.push_str("\n## Verification\n\n");
    let _ = writeln!(out, "- Result: {}", if v.ok { "VALID" } else { "INVALID" });
    let _ = writeln!(out, "- Signature: {}", md(&v.signature.detail));
    let _ = writeln!(
        out,
        "- Records: {} ({})",
        v.events,
        if v.complete { "complete" } else { "incomplete" }
    );
    for p in &v.problems {
        let place = p.seq.map(|s| format!("seq {s}: ")).unwrap_or_default();
        let _ = writeln!(out, "- Problem: {place}{}", md(&p.what));
    }
    for w in &v.warnings {
        let _ = writeln!(out, "- Warning: {}", md(w));
    }
}

/// Escapes a value for a Markdown table cell: Markdown punctuation backslash-escaped, `<`, `>`
/// and `&` as entities, line breaks as spaces.
pub(super) fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}
