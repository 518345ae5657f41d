//! What a transcript says about a run, in the shape resume needs.
//!
//! Resume must know which steps finished (and their non-secret outputs), which runbook ran (by
//! digest), where the chain ends (the new transcript links to it), and which requests went out
//! with no recorded answer — those have an unknown outcome and must not be blindly re-sent.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::record::Record;

/// A summary of a transcript's records, for resume and report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TranscriptSummary {
    /// The runbook's name, from run-started.
    pub runbook_name: Option<String>,
    /// SHA-256 of the runbook bytes, from run-started.
    pub runbook_sha256: Option<String>,
    /// The operator, from run-started.
    pub operator: Option<String>,
    /// The hash of the last record: what a resumed run records as `resumes`.
    pub last_hash: Option<String>,
    /// The run-finished outcome, when the run finished.
    pub outcome: Option<String>,
    /// Per step id, its last `step-finished` record.
    pub steps: BTreeMap<String, FinishedStep>,
    /// Requests that went out with neither a response nor a later step-finished of their step.
    pub unknown_outcome: Vec<PendingRequest>,
}

/// A step's last `step-finished` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishedStep {
    /// `ok`, `skipped`, `failed`, `declined` or `interrupted`.
    pub status: String,
    /// The step's outputs (secret ones as `[secret]`).
    pub outputs: Map<String, Value>,
    /// The record's sequence number.
    pub seq: u64,
}

/// A request whose outcome the transcript does not know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingRequest {
    /// The step id.
    pub step: String,
    /// The `foreach` item index, if any.
    pub item: Option<u64>,
    /// The attempt number.
    pub attempt: u64,
    /// The `X-Request-Id` sent.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// The URL.
    pub url: String,
    /// Whether an approving confirmation of this step came before the request.
    pub confirmed: bool,
    /// The request record's sequence number.
    pub seq: u64,
}

/// Summarizes records read with [`read_transcript`](super::read_transcript).
pub fn summarize(records: &[Record]) -> TranscriptSummary {
    let mut summary = TranscriptSummary {
        last_hash: records.last().map(|r| r.hash.clone()),
        ..TranscriptSummary::default()
    };
    if let Some(first) = records.first().filter(|r| r.kind == "run-started") {
        let field = |name| first.str_field(name).map(str::to_string);
        summary.runbook_name = field("runbook_name");
        summary.runbook_sha256 = field("runbook_sha256");
        summary.operator = field("operator");
    }
    for (i, record) in records.iter().enumerate() {
        match record.kind.as_str() {
            "step-finished" => {
                if let Some(step) = record.step() {
                    summary
                        .steps
                        .insert(step.to_string(), finished_step(record));
                }
            }
            "run-finished" => summary.outcome = record.str_field("outcome").map(str::to_string),
            "request" => {
                if let Some(pending) = pending_request(records, i) {
                    summary.unknown_outcome.push(pending);
                }
            }
            _ => {}
        }
    }
    summary
}

fn finished_step(record: &Record) -> FinishedStep {
    FinishedStep {
        status: record.str_field("status").unwrap_or("unknown").to_string(),
        outputs: record
            .data
            .get("outputs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        seq: record.seq,
    }
}

fn pending_request(records: &[Record], index: usize) -> Option<PendingRequest> {
    let request = &records[index];
    let step = request.step()?;
    let request_id = request.str_field("request_id").unwrap_or_default();
    let answered = records[index + 1..].iter().any(|r| {
        (r.kind == "response" && r.str_field("request_id") == Some(request_id))
            || (r.kind == "step-finished" && r.step() == Some(step))
    });
    if answered {
        return None;
    }
    let confirmed = records[..index].iter().any(|r| {
        r.kind == "confirmation"
            && r.step() == Some(step)
            && r.data.get("approved") == Some(&Value::Bool(true))
    });
    let view = request.data.get("request");
    let view_str = |name| {
        view.and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some(PendingRequest {
        step: step.to_string(),
        item: request.data.get("item").and_then(Value::as_u64),
        attempt: request
            .data
            .get("attempt")
            .and_then(Value::as_u64)
            .unwrap_or(1),
        request_id: request_id.to_string(),
        method: view_str("method"),
        url: view_str("url"),
        confirmed,
        seq: request.seq,
    })
}
