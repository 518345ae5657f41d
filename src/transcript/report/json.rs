//! The report as one JSON document, for tools that file the post-mortem somewhere: the same facts
//! as the Markdown and HTML layouts, times both as recorded (RFC 3339) and as milliseconds from
//! the incident's start — the axis the picture draws.

use serde::Serialize;
use serde_json::Value;

use super::incident::{EvidenceStatus, Incident};
use super::model::{Containment, Decision, decided_by};
use crate::transcript::findings::Problem;

/// The document's version: bumped when a field changes meaning or goes away.
const VERSION: u32 = 1;

#[derive(Serialize)]
struct Doc<'a> {
    report_version: u32,
    runbook: &'a str,
    runbook_sha256: &'a str,
    incident_id: Option<&'a str>,
    started: &'a str,
    axis: Axis,
    outcome: Option<&'a str>,
    exit_code: Option<u64>,
    summary: String,
    time: Time,
    containment: Option<ContainmentDoc<'a>>,
    legs: Vec<LegDoc<'a>>,
    decisions: Vec<DecisionDoc<'a>>,
    steps: Vec<StepDoc<'a>>,
    evidence: Vec<EvidenceDoc<'a>>,
    /// The breach's scope (`esus-ir scope --format json`), when there is audit evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a crate::scope::model::Scope>,
    inputs: Vec<(&'a str, &'a str)>,
    verification: VerificationDoc<'a>,
}

#[derive(Serialize)]
struct Axis {
    /// Always 0: the incident's start.
    start_ms: i64,
    end_ms: i64,
}

#[derive(Serialize)]
struct Time {
    working_ms: i64,
    waiting_for_a_person_ms: i64,
    between_legs_ms: i64,
}

#[derive(Serialize)]
struct ContainmentDoc<'a> {
    state: &'a str,
    /// `recorded` (the leg's `containment` record) or `estimate` (an older transcript).
    source: &'static str,
    leg: usize,
    summary: &'a str,
    /// From the incident's start.
    time_to_containment_ms: Option<i64>,
    at: Option<&'a str>,
    /// Where the picture draws the containment line, from the incident's start.
    at_ms: Option<i64>,
    checks: Vec<CheckDoc<'a>>,
}

#[derive(Serialize)]
struct CheckDoc<'a> {
    step: &'a str,
    status: &'a str,
    detail: &'a str,
}

#[derive(Serialize)]
struct LegDoc<'a> {
    number: usize,
    file: &'a str,
    operator: &'a str,
    host: &'a str,
    mode: &'a str,
    tool_version: &'a str,
    started: &'a str,
    finished: Option<&'a str>,
    start_ms: i64,
    end_ms: i64,
    outcome: Option<&'a str>,
    exit_code: Option<u64>,
    resumes_file: Option<&'a str>,
    resumes: Option<&'a str>,
    acting_as: Option<&'a str>,
    /// Whose approval the leg ran on: a signed plan's approvers, a signed policy's signer.
    approved_by: Option<&'a str>,
    valid: bool,
    problems: &'a [Problem],
    warnings: &'a [String],
}

#[derive(Serialize)]
struct DecisionDoc<'a> {
    leg: usize,
    step: &'a str,
    decision: Decision,
    how: &'a str,
    by: String,
    asked: Option<&'a str>,
    asked_ms: Option<i64>,
    at: &'a str,
    at_ms: Option<i64>,
    approval: Option<u64>,
    request_sha256: Option<&'a str>,
    record_seq: u64,
}

#[derive(Serialize)]
struct StepDoc<'a> {
    leg: usize,
    step: &'a str,
    status: &'a str,
    reason: Option<&'a str>,
    destructive: bool,
    approval: &'a str,
    started: &'a str,
    start_ms: Option<i64>,
    finished: Option<&'a str>,
    end_ms: Option<i64>,
    duration_ms: Option<u64>,
    requests: usize,
    items: Option<u64>,
    outputs: serde_json::Map<String, Value>,
}

#[derive(Serialize)]
struct EvidenceDoc<'a> {
    leg: usize,
    step: &'a str,
    file: &'a str,
    sha256: &'a str,
    rows: Option<u64>,
    check: EvidenceStatus,
    record_seq: u64,
}

#[derive(Serialize)]
struct VerificationDoc<'a> {
    ok: bool,
    chain_problems: &'a [Problem],
    chain_warnings: &'a [String],
}

pub(super) fn render(inc: &Incident) -> String {
    let last = inc.last().map(|l| &l.timeline);
    let doc = Doc {
        report_version: VERSION,
        runbook: last.map_or("", |t| t.runbook_name.as_str()),
        runbook_sha256: last.map_or("", |t| t.runbook_sha256.as_str()),
        incident_id: inc
            .legs
            .iter()
            .find_map(|l| l.timeline.incident_id.as_deref()),
        started: &inc.started,
        axis: Axis {
            start_ms: 0,
            end_ms: inc.end_ms,
        },
        outcome: last.and_then(|t| t.outcome.as_ref().map(|(o, _)| o.as_str())),
        exit_code: last.and_then(|t| t.outcome.as_ref().map(|(_, c)| *c)),
        summary: inc.summary(),
        time: Time {
            working_ms: inc.working_ms(),
            waiting_for_a_person_ms: inc.waiting_ms(),
            between_legs_ms: inc.between_legs_ms(),
        },
        containment: containment(inc),
        legs: inc
            .legs
            .iter()
            .map(|l| {
                let t = &l.timeline;
                LegDoc {
                    number: l.number,
                    file: &l.file,
                    operator: &t.operator,
                    host: &t.host,
                    mode: &t.mode,
                    tool_version: &t.tool_version,
                    started: &t.started,
                    finished: t.finished.as_deref(),
                    start_ms: l.start_ms,
                    end_ms: l.end_ms,
                    outcome: t.outcome.as_ref().map(|(o, _)| o.as_str()),
                    exit_code: t.outcome.as_ref().map(|(_, c)| *c),
                    resumes_file: t.resumes_file.as_deref(),
                    resumes: t.resumes.as_deref(),
                    acting_as: t.preflight.as_deref(),
                    approved_by: t.approved_by.as_deref(),
                    valid: l.verification.ok,
                    problems: &l.verification.problems,
                    warnings: &l.verification.warnings,
                }
            })
            .collect(),
        decisions: inc
            .legs
            .iter()
            .flat_map(|l| {
                l.timeline.decisions.iter().map(move |d| DecisionDoc {
                    leg: l.number,
                    step: &d.step,
                    decision: d.decision,
                    how: &d.how,
                    by: decided_by(&l.timeline.operator, &d.how),
                    asked: d.asked.as_deref(),
                    asked_ms: d.asked.as_deref().and_then(|a| inc.offset_ms(a)),
                    at: &d.ts,
                    at_ms: inc.offset_ms(&d.ts),
                    approval: d.approval,
                    request_sha256: d.request_sha256.as_deref(),
                    record_seq: d.seq,
                })
            })
            .collect(),
        steps: inc
            .legs
            .iter()
            .flat_map(|l| {
                l.timeline.steps.iter().map(move |s| StepDoc {
                    leg: l.number,
                    step: &s.step,
                    status: &s.status,
                    reason: s.reason.as_deref(),
                    destructive: s.destructive,
                    approval: &s.approval,
                    started: &s.started,
                    start_ms: inc.offset_ms(&s.started),
                    finished: s.finished.as_deref(),
                    end_ms: s.finished.as_deref().and_then(|f| inc.offset_ms(f)),
                    duration_ms: s.duration_ms,
                    requests: s.requests,
                    items: s.items,
                    outputs: s.outputs.iter().cloned().collect(),
                })
            })
            .collect(),
        evidence: inc
            .evidence
            .iter()
            .map(|e| EvidenceDoc {
                leg: e.leg,
                step: &e.row.step,
                file: &e.row.file,
                sha256: &e.row.sha256,
                rows: e.row.rows,
                check: e.status,
                record_seq: e.row.seq,
            })
            .collect(),
        scope: inc.scope.as_ref(),
        inputs: last.map_or_else(Vec::new, |t| {
            t.inputs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }),
        verification: VerificationDoc {
            ok: inc.ok,
            chain_problems: &inc.chain_problems,
            chain_warnings: &inc.chain_warnings,
        },
    };
    // Every field is a plain value, so serializing cannot fail; say so rather than panic.
    let mut text = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"error\": \"rendering the report: {e}\"}}"));
    text.push('\n');
    text
}

fn containment(inc: &Incident) -> Option<ContainmentDoc<'_>> {
    let leg = inc.containment_leg()?;
    let mark = inc.containment_mark();
    let at_ms = mark.as_ref().map(|m| m.at_ms);
    Some(match leg.timeline.containment_facts() {
        Containment::Recorded(c) => ContainmentDoc {
            state: &c.state,
            source: "recorded",
            leg: leg.number,
            summary: &c.summary,
            time_to_containment_ms: c
                .time_to_containment
                .and_then(|d| i64::try_from(d.as_millis()).ok()),
            at: c.at.as_deref(),
            at_ms,
            checks: c
                .checks
                .iter()
                .map(|k| CheckDoc {
                    step: &k.step,
                    status: &k.status,
                    detail: &k.detail,
                })
                .collect(),
        },
        Containment::Estimated(e) => ContainmentDoc {
            state: if e.is_some() {
                "contained"
            } else {
                "not-contained"
            },
            source: "estimate",
            leg: leg.number,
            summary: "",
            time_to_containment_ms: at_ms,
            at: None,
            at_ms,
            checks: Vec::new(),
        },
        Containment::DryRun => ContainmentDoc {
            state: "not-applicable",
            source: "dry-run",
            leg: leg.number,
            summary: "a dry run changes nothing",
            time_to_containment_ms: None,
            at: None,
            at_ms: None,
            checks: Vec::new(),
        },
    })
}
