//! The Markdown layout of the report. Every transcript value goes through [`md`], which escapes
//! Markdown and HTML syntax so a hostile value cannot add links, markup or table cells.

use std::fmt::Write;

use super::incident::Incident;
use super::model::{Containment, human_duration};
use super::sections::{self, Table};

pub(super) fn render(inc: &Incident) -> String {
    let mut out = String::new();
    let name = inc
        .last()
        .map(|l| l.timeline.runbook_name.as_str())
        .unwrap_or_default();
    let _ = writeln!(out, "# Incident response report: {}\n", md(name));
    let _ = writeln!(out, "{}\n", md(&inc.summary()));
    out.push_str("| | |\n|---|---|\n");
    for (k, cell) in sections::overview(inc) {
        let text = match cell.dress {
            sections::Dress::Strong => format!("**{}**", md(&cell.text)),
            _ => md(&cell.text),
        };
        let _ = writeln!(out, "| {k} | {text} |");
    }
    table(&mut out, &sections::legs(inc));
    containment(&mut out, inc);
    table(&mut out, &sections::decisions(inc));
    table(&mut out, &sections::evidence(inc));
    if let Some(t) = sections::scope_patients(inc) {
        table(&mut out, &t);
        for line in sections::scope_lines(inc) {
            let _ = writeln!(out, "\n{}", md(&line));
        }
    }
    table(&mut out, &sections::steps(inc));
    if let Some(last) = inc.last().filter(|l| !l.timeline.inputs.is_empty()) {
        out.push_str("\n## Inputs\n\n| Input | Value |\n|---|---|\n");
        for (k, val) in &last.timeline.inputs {
            let _ = writeln!(out, "| {} | {} |", md(k), md(val));
        }
    }
    table(&mut out, &sections::events(inc));
    out.push_str("\n## Verification\n\n");
    for (_, line) in sections::verification(inc) {
        let _ = writeln!(out, "- {}", md(&line));
    }
    out
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "\n## {}\n", t.title);
    if t.rows.is_empty() {
        let _ = writeln!(out, "{}", t.empty);
        return;
    }
    let _ = writeln!(out, "| {} |", t.headers.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(t.headers.len()));
    for row in &t.rows {
        let cells: Vec<String> = row.iter().map(|c| md(&c.text)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn containment(out: &mut String, inc: &Incident) {
    let Some(leg) = inc.containment_leg() else {
        return;
    };
    let Containment::Recorded(c) = leg.timeline.containment_facts() else {
        return;
    };
    out.push_str("\n## Containment\n\n");
    if inc.legs.len() > 1 {
        let _ = writeln!(out, "- Recorded by: leg {} ({})", leg.number, md(&leg.file));
    }
    let _ = writeln!(out, "- State: **{}**", md(&c.state));
    if !c.summary.is_empty() {
        let _ = writeln!(out, "- Summary: {}", md(&c.summary));
    }
    if let Some(d) = c.time_to_containment {
        let _ = writeln!(
            out,
            "- Time to containment: {} after the incident's start",
            human_duration(d)
        );
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
