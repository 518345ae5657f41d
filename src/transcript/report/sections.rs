//! The report's tables as plain text, shared by the Markdown and HTML layouts so that both say
//! the same thing: each cell is raw transcript text plus a hint for how HTML may dress it, and
//! every layout escapes every cell itself.

use jiff::SignedDuration;

use super::incident::Incident;
use super::model::{Containment, Decision, decided_by, human_duration, human_time};

/// How the HTML layout may dress a cell (Markdown shows the text alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dress {
    Plain,
    /// Digests: monospace, broken anywhere.
    Mono,
    /// Timestamps and file names: monospace, kept on one line.
    Code,
    /// A status word: a swatch in its colour before it.
    Status(String),
    /// Emphasised (an INVALID verdict).
    Strong,
}

/// One cell.
#[derive(Debug, Clone)]
pub(super) struct Cell {
    pub(super) text: String,
    pub(super) dress: Dress,
}

fn plain(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        dress: Dress::Plain,
    }
}

fn mono(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        dress: Dress::Mono,
    }
}

fn code(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        dress: Dress::Code,
    }
}

fn status(word: &str, text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        dress: Dress::Status(word.to_string()),
    }
}

/// A table with its heading.
pub(super) struct Table {
    pub(super) title: &'static str,
    pub(super) headers: &'static [&'static str],
    pub(super) rows: Vec<Vec<Cell>>,
    /// What to say instead of an empty table.
    pub(super) empty: &'static str,
}

fn ms(ms: i64) -> String {
    human_duration(SignedDuration::from_millis(ms))
}

/// "+14.921 s" from the incident's start, or "—".
fn plus(inc: &Incident, ts: &str) -> String {
    inc.offset_ms(ts)
        .map_or_else(|| "—".to_string(), |m| format!("+{}", ms(m.max(0))))
}

/// Distinct values, in order of first appearance, joined.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for v in values.filter(|v| !v.is_empty()) {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join(", ")
}

/// The overview: (row name, cell).
pub(super) fn overview(inc: &Incident) -> Vec<(&'static str, Cell)> {
    let Some(last) = inc.last() else {
        return Vec::new();
    };
    let t = &last.timeline;
    let all = || inc.legs.iter().map(|l| &l.timeline);
    let mut rows: Vec<(&'static str, Cell)> = Vec::new();
    if let Some(id) = all().find_map(|t| t.incident_id.clone()) {
        rows.push(("Incident", plain(id)));
    }
    rows.extend([
        (
            "Operator",
            plain(distinct(all().map(|t| t.operator.as_str()))),
        ),
        ("Host", plain(distinct(all().map(|t| t.host.as_str())))),
        ("Mode", plain(t.mode.clone())),
        ("ESUS", plain(t.base_url.clone())),
        (
            "Runbook",
            plain(format!("{} (SHA-256 {})", t.runbook_name, t.runbook_sha256)),
        ),
        (
            "esus-ir",
            plain(distinct(all().map(|t| t.tool_version.as_str()))),
        ),
    ]);
    if let Some(p) = &t.preflight {
        rows.push(("Acting as", plain(p.clone())));
    }
    let approved: Vec<String> = all().filter_map(|t| t.approved_by.clone()).collect();
    if !approved.is_empty() {
        rows.push((
            "Approved by",
            plain(distinct(approved.iter().map(String::as_str))),
        ));
    }
    if let Some(r) = inc.legs.first().and_then(|l| l.timeline.resumes.clone()) {
        rows.push(("Resumes", mono(r)));
    }
    rows.push((
        "Legs",
        plain(format!(
            "{} ({})",
            inc.legs.len(),
            inc.legs
                .iter()
                .map(|l| l.file.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    ));
    rows.extend([
        ("Started", code(inc.started.clone())),
        (
            "Finished",
            t.finished
                .clone()
                .map_or_else(|| plain("never (the last leg did not finish)"), code),
        ),
        ("Duration", plain(ms(inc.end_ms))),
        (
            "Outcome",
            t.outcome.as_ref().map_or_else(
                || plain("unknown"),
                |(o, c)| status(o, format!("{o} (exit {c})")),
            ),
        ),
        ("Time to containment", plain(time_to_containment(inc))),
        ("Time", plain(inc.time_split())),
        (
            "Verification",
            if inc.ok {
                plain("VALID")
            } else {
                Cell {
                    text: "INVALID".into(),
                    dress: Dress::Strong,
                }
            },
        ),
    ]);
    rows
}

/// The "Time to containment" cell: recorded (from the incident's start), or labelled as an
/// estimate.
pub(super) fn time_to_containment(inc: &Incident) -> String {
    let Some(leg) = inc.containment_leg() else {
        return "—".into();
    };
    let t = &leg.timeline;
    let which = if inc.legs.len() > 1 {
        format!(", leg {}", leg.number)
    } else {
        String::new()
    };
    match t.containment_facts() {
        Containment::Recorded(c) => match (c.time_to_containment, c.state.as_str()) {
            (Some(d), _) => format!(
                "{} after the incident's start (recorded{which})",
                human_duration(d)
            ),
            (None, "not-applicable") => format!("not applicable (recorded{which})"),
            (None, state) => format!("not reached (recorded{which}: {state})"),
        },
        Containment::Estimated(Some((_, step))) => format!(
            "{} after the incident's start (estimate: when the last destructive step, {step}, finished ok; this transcript has no containment record)",
            inc.containment_mark().map_or_else(|| "—".into(), |m| ms(m.at_ms))
        ),
        Containment::DryRun => "not applicable (dry run: nothing was changed)".into(),
        Containment::Estimated(None) => {
            "not reached (estimate: no destructive step succeeded; this transcript has no containment record)".into()
        }
    }
}

/// One row per leg.
pub(super) fn legs(inc: &Incident) -> Table {
    let rows = inc
        .legs
        .iter()
        .map(|leg| {
            let t = &leg.timeline;
            let outcome = t.outcome.as_ref().map_or_else(
                || status("unfinished", "did not finish"),
                |(o, c)| status(o, format!("{o} (exit {c})")),
            );
            let waited: i64 = inc
                .waits
                .iter()
                .filter(|w| w.leg + 1 == leg.number)
                .map(|w| w.to_ms - w.from_ms)
                .sum();
            vec![
                plain(leg.number.to_string()),
                code(leg.file.clone()),
                plain(t.operator.clone()),
                plain(format!(
                    "{} (+{})",
                    human_time(&t.started),
                    ms(leg.start_ms)
                )),
                plain(ms(leg.end_ms - leg.start_ms)),
                plain(ms(waited)),
                outcome,
                code(t.resumes_file.clone().unwrap_or_else(|| "—".into())),
                if leg.verification.ok {
                    plain("valid")
                } else if leg.verification.is_intact_prefix() && leg.number < inc.legs.len() {
                    plain("a stopped run's intact prefix")
                } else {
                    Cell {
                        text: "INVALID".into(),
                        dress: Dress::Strong,
                    }
                },
            ]
        })
        .collect();
    Table {
        title: "Legs",
        headers: &[
            "Leg",
            "Transcript",
            "Operator",
            "Started (after the incident's start)",
            "Duration",
            "Waiting for a person",
            "Outcome",
            "Resumes",
            "Verification",
        ],
        rows,
        empty: "No leg.",
    }
}

/// Every approval, decline and prompt left open, in time order.
pub(super) fn decisions(inc: &Incident) -> Table {
    let mut rows: Vec<(i64, Vec<Cell>)> = Vec::new();
    for leg in &inc.legs {
        for d in &leg.timeline.decisions {
            let at = inc.offset_ms(&d.ts).unwrap_or(0);
            let (word, colour) = match d.decision {
                Decision::Approved => ("approved", "ok"),
                Decision::Declined => ("declined", "declined"),
                Decision::Interrupted => ("interrupted (Ctrl-C at the prompt)", "interrupted"),
            };
            let waited = d
                .asked
                .as_deref()
                .and_then(|a| inc.offset_ms(a))
                .map_or_else(|| "—".to_string(), |from| ms((at - from).max(0)));
            rows.push((
                at,
                vec![
                    plain(leg.number.to_string()),
                    plain(format!("+{} ({})", ms(at), human_time(&d.ts))),
                    plain(d.step.clone()),
                    status(colour, word),
                    plain(decided_by(&leg.timeline.operator, &d.how)),
                    plain(waited),
                    plain(d.approval.map_or("—".into(), |n| n.to_string())),
                    mono(d.request_sha256.clone().unwrap_or_else(|| "—".into())),
                ],
            ));
        }
    }
    rows.sort_by_key(|(at, _)| *at);
    Table {
        title: "Approvals, declines and interruptions",
        headers: &[
            "Leg",
            "When (after the incident's start)",
            "Step",
            "Decision",
            "By",
            "Prompt open",
            "Approval",
            "Request SHA-256",
        ],
        rows: rows.into_iter().map(|(_, r)| r).collect(),
        empty: "No confirmation was asked or recorded.",
    }
}

/// Each step of each leg.
pub(super) fn steps(inc: &Incident) -> Table {
    let rows = inc
        .legs
        .iter()
        .flat_map(|leg| {
            leg.timeline.steps.iter().map(move |s| {
                let result = match &s.reason {
                    Some(r) => format!("{}: {r}", s.status),
                    None => s.status.clone(),
                };
                let items = s.items.map(|n| format!(" ({n} items)")).unwrap_or_default();
                vec![
                    plain(leg.number.to_string()),
                    plain(format!("{}{items}", s.step)),
                    plain(if s.ran {
                        plus(inc, &s.started)
                    } else {
                        "never started".to_string()
                    }),
                    plain(if s.destructive { "yes" } else { "no" }),
                    plain(if s.approval.is_empty() {
                        "—".to_string()
                    } else {
                        s.approval.clone()
                    }),
                    status(&s.status, result),
                    plain(s.duration_ms.map_or("—".into(), |ms| format!("{ms} ms"))),
                    plain(s.requests.to_string()),
                ]
            })
        })
        .collect();
    Table {
        title: "Steps",
        headers: &[
            "Leg",
            "Step",
            "Started",
            "Destructive",
            "Approval",
            "Result",
            "Duration",
            "Requests",
        ],
        rows,
        empty: "No step started.",
    }
}

/// Every evidence file the records name, checked against the file on disk.
pub(super) fn evidence(inc: &Incident) -> Table {
    let rows = inc
        .evidence
        .iter()
        .map(|e| {
            let colour = if e.status == super::incident::EvidenceStatus::Ok {
                "ok"
            } else {
                "failed"
            };
            let rows = e
                .row
                .rows
                .map(|n| format!(" ({n} rows)"))
                .unwrap_or_default();
            vec![
                plain(e.leg.to_string()),
                plain(e.row.step.clone()),
                mono(format!("{}{rows}", e.row.file)),
                mono(e.row.sha256.clone()),
                status(colour, e.status.word()),
            ]
        })
        .collect();
    Table {
        title: "Evidence",
        headers: &["Leg", "Step", "File", "SHA-256 (recorded)", "Check"],
        rows,
        empty: "No evidence files.",
    }
}

/// Every record of every leg.
pub(super) fn events(inc: &Incident) -> Table {
    let rows = inc
        .legs
        .iter()
        .flat_map(|leg| {
            leg.timeline.events.iter().map(move |e| {
                vec![
                    plain(leg.number.to_string()),
                    plain(e.seq.to_string()),
                    code(e.ts.clone()),
                    plain(plus(inc, &e.ts)),
                    plain(e.kind.clone()),
                    plain(e.summary.clone()),
                ]
            })
        })
        .collect();
    Table {
        title: "Timeline",
        headers: &["Leg", "Seq", "Time", "After the start", "Event", "Details"],
        rows,
        empty: "No record.",
    }
}

/// The lines of the Verification section, as (is a problem, text).
pub(super) fn verification(inc: &Incident) -> Vec<(bool, String)> {
    let mut out = vec![(
        !inc.ok,
        format!(
            "Result: {} — {}",
            if inc.ok { "VALID" } else { "INVALID" },
            if inc.legs.len() > 1 {
                "every leg, each resuming where the one before it ended"
            } else {
                "the transcript and every earlier leg it names"
            }
        ),
    )];
    for leg in &inc.legs {
        let v = &leg.verification;
        out.push((
            false,
            format!(
                "Leg {} ({}): {} records, {}; signature: {}",
                leg.number,
                leg.file,
                v.events,
                if v.complete { "complete" } else { "incomplete" },
                v.signature.detail
            ),
        ));
        for p in &v.problems {
            let place = p.seq.map(|s| format!("seq {s}: ")).unwrap_or_default();
            out.push((
                true,
                format!("Leg {} problem: {place}{}", leg.number, p.what),
            ));
        }
        for w in &v.warnings {
            out.push((false, format!("Leg {} warning: {w}", leg.number)));
        }
    }
    for p in &inc.chain_problems {
        out.push((true, format!("Chain problem: {}", p.what)));
    }
    for w in &inc.chain_warnings {
        out.push((false, format!("Chain warning: {w}")));
    }
    out
}

/// The breach's scope in one paragraph: the window, what it holds, and anything after
/// containment first.
pub(super) fn scope_lines(inc: &Incident) -> Vec<String> {
    let Some(s) = &inc.scope else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    if let Some(c) = s
        .source_chain
        .as_ref()
        .filter(|c| !c.ok || !c.breaks.is_empty())
    {
        lines.push(format!(
            "ESUS'S AUDIT CHAIN IS BROKEN: {} break(s), first at row {} — rows at the source were altered",
            c.breaks.len(),
            c.breaks.first().map_or("?", |b| b.id.as_str())
        ));
    }
    if !s.after_containment.is_empty() {
        lines.push(format!(
            "AFTER CONTAINMENT: {} row(s) of user {} — the credential still acted",
            s.after_containment.len(),
            s.user_id
        ));
    }
    lines.push(format!(
        "User {}, {} → {} ({}), {} rows in the window: {} patient(s), {} record(s), {} bulk export(s), {} emergency override(s), {} failed attempt(s), {} source(s)",
        s.user_id,
        s.window.from.as_deref().unwrap_or("no access found"),
        s.window.to.as_deref().unwrap_or("?"),
        if s.window.to_source == "containment" {
            "to the proven containment"
        } else {
            "to the end of the evidence"
        },
        s.rows_in_window,
        s.patients.len(),
        s.records.len(),
        s.exports.len(),
        s.emergency_overrides.len(),
        s.failures.len(),
        s.sources.len()
    ));
    if !s.searches_without_patient.is_empty() {
        lines.push(format!(
            "{} search(es) name no patient: which patients they returned is not in the audit log, so the patient count may be short",
            s.searches_without_patient.len()
        ));
    }
    if let Some(gap) = &s.window.not_covered {
        lines.push(format!("NOT COVERED by the evidence: {gap}"));
    }
    lines
}

/// The patients the compromised user's rows touched (`esus-ir scope` for the details).
pub(super) fn scope_patients(inc: &Incident) -> Option<Table> {
    let s = inc.scope.as_ref()?;
    let rows = s
        .patients
        .iter()
        .map(|p| {
            vec![
                mono(p.patient_id.clone()),
                plain(p.resource_types.join(", ")),
                plain(p.counts.reads.to_string()),
                plain(p.counts.writes.to_string()),
                plain(p.counts.exports.to_string()),
                plain(p.counts.emergency_overrides.to_string()),
                plain(p.counts.failed.to_string()),
                mono(p.counts.first.clone()),
                mono(p.counts.last.clone()),
            ]
        })
        .collect();
    Some(Table {
        title: "Breach scope",
        headers: &[
            "Patient",
            "Resource types",
            "Read",
            "Written",
            "Exported",
            "Emergency override",
            "Failed",
            "First",
            "Last",
        ],
        rows,
        empty: "No patient record touched in the window.",
    })
}
