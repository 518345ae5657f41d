//! The facts a post-mortem asks for, read from a transcript's records.
//!
//! "Time to containment" is defined here: from the run's start to the finish of the last
//! destructive step (per the plan) that finished `ok`; none such means containment was not reached.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::transcript::record::Record;

/// The run as a post-mortem reads it.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Runbook name.
    pub runbook_name: String,
    /// SHA-256 of the runbook.
    pub runbook_sha256: String,
    /// Operator identity.
    pub operator: String,
    /// Host the run ran on.
    pub host: String,
    /// ESUS base URL.
    pub base_url: String,
    /// live, dry-run or drill.
    pub mode: String,
    /// esus-ir version that wrote the transcript.
    pub tool_version: String,
    /// The transcript this run resumed, if any (its head hash).
    pub resumes: Option<String>,
    /// Inputs as recorded (secret ones as `[secret]`), rendered as JSON text.
    pub inputs: Vec<(String, String)>,
    /// When the run started.
    pub started: String,
    /// When the run finished, if it did.
    pub finished: Option<String>,
    /// Run duration, if it finished.
    pub duration: Option<SignedDuration>,
    /// run-finished outcome and exit code.
    pub outcome: Option<(String, u64)>,
    /// Time from start to containment, and the step that achieved it.
    pub containment: Option<(SignedDuration, String)>,
    /// Steps in the order they started.
    pub steps: Vec<StepRow>,
    /// Evidence files referenced by responses.
    pub evidence: Vec<EvidenceRow>,
    /// Every record, one line each.
    pub events: Vec<EventRow>,
}

/// One step of the run.
#[derive(Debug, Clone, Default)]
pub struct StepRow {
    /// Step id.
    pub step: String,
    /// When it started.
    pub started: String,
    /// Whether the plan marked it destructive.
    pub destructive: bool,
    /// How it was approved: e.g. `approved (interactive)`, `declined (interactive)`, or empty.
    pub approval: String,
    /// Final status, or `unknown` if it never finished.
    pub status: String,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// Duration recorded by the executor.
    pub duration_ms: Option<u64>,
    /// Requests sent (attempts included).
    pub requests: usize,
}

/// An evidence file.
#[derive(Debug, Clone)]
pub struct EvidenceRow {
    /// The step whose response it holds.
    pub step: String,
    /// Path relative to the evidence folder.
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
}

/// One record, summarized.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Sequence number.
    pub seq: u64,
    /// Timestamp.
    pub ts: String,
    /// Event type.
    pub kind: String,
    /// A one-line description.
    pub summary: String,
}

impl Timeline {
    /// Reads the timeline from records (which should have passed the chain check).
    pub fn from_records(records: &[Record]) -> Self {
        let mut t = Timeline::default();
        let mut destructive: Vec<String> = Vec::new();
        for r in records {
            t.events.push(EventRow {
                seq: r.seq,
                ts: r.ts.clone(),
                kind: r.kind.clone(),
                summary: describe(r),
            });
            match r.kind.as_str() {
                "run-started" => t.read_start(r),
                "plan" => destructive = strings(r.data.get("destructive")),
                "step-started" => t.steps.push(StepRow {
                    step: field(r, "step"),
                    started: r.ts.clone(),
                    destructive: destructive.contains(&field(r, "step")),
                    status: "unknown".into(),
                    ..StepRow::default()
                }),
                "confirmation" => {
                    let approved = r.data.get("approved") == Some(&Value::Bool(true));
                    let how = match field(r, "how").as_str() {
                        "assume-yes" => "--yes".to_string(),
                        "approve" => "--approve".to_string(),
                        other => other.to_string(),
                    };
                    let word = if approved { "approved" } else { "declined" };
                    t.step_mut(r).approval = format!("{word} ({how})");
                }
                "request" => t.step_mut(r).requests += 1,
                "response" => t.read_evidence(r),
                "step-finished" => t.read_step_finished(r, &destructive),
                "run-finished" => t.read_finish(r),
                _ => {}
            }
        }
        t
    }

    fn read_start(&mut self, r: &Record) {
        self.runbook_name = field(r, "runbook_name");
        self.runbook_sha256 = field(r, "runbook_sha256");
        self.operator = field(r, "operator");
        self.host = field(r, "host");
        self.base_url = field(r, "base_url");
        self.mode = field(r, "mode");
        self.tool_version = field(r, "tool_version");
        self.resumes = r.str_field("resumes").map(str::to_string);
        self.started = r.ts.clone();
        if let Some(Value::Object(inputs)) = r.data.get("inputs") {
            self.inputs = inputs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect();
        }
    }

    fn read_evidence(&mut self, r: &Record) {
        if let Some(ev) = r.data.get("evidence").filter(|v| v.is_object()) {
            let get = |k| {
                ev.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            self.evidence.push(EvidenceRow {
                step: field(r, "step"),
                file: get("file"),
                sha256: get("sha256"),
            });
        }
    }

    fn read_step_finished(&mut self, r: &Record, destructive: &[String]) {
        let status = field(r, "status");
        let row = self.step_mut(r);
        row.status = status.clone();
        row.reason = r.str_field("reason").map(str::to_string);
        row.duration_ms = r.data.get("duration_ms").and_then(Value::as_u64);
        let step = field(r, "step");
        if status == "ok"
            && destructive.contains(&step)
            && let Some(d) = between(&self.started, &r.ts)
        {
            self.containment = Some((d, step));
        }
    }

    fn read_finish(&mut self, r: &Record) {
        self.finished = Some(r.ts.clone());
        self.duration = between(&self.started, &r.ts);
        let code = r.data.get("exit_code").and_then(Value::as_u64).unwrap_or(0);
        self.outcome = Some((field(r, "outcome"), code));
    }

    /// The row of the record's step, created if the step never announced its start.
    fn step_mut(&mut self, r: &Record) -> &mut StepRow {
        let step = field(r, "step");
        let index = match self.steps.iter().rposition(|s| s.step == step) {
            Some(i) => i,
            None => {
                self.steps.push(StepRow {
                    step,
                    started: r.ts.clone(),
                    status: "unknown".into(),
                    ..StepRow::default()
                });
                self.steps.len() - 1
            }
        };
        &mut self.steps[index]
    }
}

/// A one-line description of a record.
fn describe(r: &Record) -> String {
    let step = field(r, "step");
    match r.kind.as_str() {
        "run-started" => format!(
            "{} started by {} ({})",
            field(r, "runbook_name"),
            field(r, "operator"),
            field(r, "mode")
        ),
        "plan" => format!("plan: {} steps", strings(r.data.get("order")).len()),
        "step-started" => format!("{step} started"),
        "confirmation" => format!(
            "{step}: {} ({})",
            if r.data.get("approved") == Some(&Value::Bool(true)) {
                "approved"
            } else {
                "declined"
            },
            field(r, "how")
        ),
        "request" => {
            let view = r.data.get("request");
            let get = |k| {
                view.and_then(|v| v.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            format!(
                "{step}: {} {} (attempt {})",
                get("method"),
                get("url"),
                r.data.get("attempt").map_or("?".into(), Value::to_string)
            )
        }
        "response" => match r.data.get("status").and_then(Value::as_u64) {
            Some(status) => format!(
                "{step}: HTTP {status} in {} ms",
                r.data
                    .get("duration_ms")
                    .map_or("?".into(), Value::to_string)
            ),
            None => format!("{step}: no response: {}", field(r, "error")),
        },
        "step-finished" => format!("{step}: {}", field(r, "status")),
        "run-finished" => format!("run finished: {}", field(r, "outcome")),
        other => other.to_string(),
    }
}

fn field(r: &Record, name: &str) -> String {
    r.str_field(name).unwrap_or_default().to_string()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn between(start: &str, end: &str) -> Option<SignedDuration> {
    let a: Timestamp = start.parse().ok()?;
    let b: Timestamp = end.parse().ok()?;
    Some(b.duration_since(a))
}

/// `850 ms`, `12.345 s`, `3 min 04.5 s`.
pub fn human_duration(d: SignedDuration) -> String {
    let ms = d.as_millis().max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{}.{:03} s", ms / 1000, ms % 1000)
    } else {
        format!(
            "{} min {:02}.{:03} s",
            ms / 60_000,
            (ms % 60_000) / 1000,
            ms % 1000
        )
    }
}
