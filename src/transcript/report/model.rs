//! The facts a post-mortem asks for, read from a transcript's records.
//!
//! Containment facts come from the run's `containment` record when it has one (the executor's
//! own verdict: state, summary, checks, time to containment). Older transcripts have none; for
//! them "time to containment" is *estimated* here: from the run's start to the finish of the last
//! destructive step (per the plan) that finished `ok`; none such means containment was not
//! reached. Renderers label the estimate as such.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::decisions::Prompts;
pub use super::decisions::{Decision, DecisionRow, decided_by};
use super::describe::describe;
pub(super) use super::fields::{field, or_unknown, strings};
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
    /// The file name of the transcript this run resumed, if any.
    pub resumes_file: Option<String>,
    /// When the incident's first leg started, as a resumed leg records it.
    pub chain_started_at: Option<String>,
    /// What the preflight found: "acting as … on …", or why it stopped the run.
    pub preflight: Option<String>,
    /// Whose approval the leg ran on besides the operator's: a signed plan's approvers, or a
    /// signed policy's signer.
    pub approved_by: Option<String>,
    /// The incident id given to the run, if any.
    pub incident_id: Option<String>,
    /// Who the leg's evidence is encrypted to (none: in clear).
    pub evidence_recipients: Vec<String>,
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
    /// The estimate for transcripts without a `containment` record: time from start to the
    /// finish of the last destructive step that finished ok, and that step.
    pub containment: Option<(SignedDuration, String)>,
    /// The run's `containment` record, when it wrote one.
    pub containment_record: Option<ContainmentRecord>,
    /// The timestamp of the last record (where an unfinished step's bar ends).
    pub last_ts: String,
    /// Steps in the order they started.
    pub steps: Vec<StepRow>,
    /// Evidence files the records name (responses, audit pulls, finished and carried steps), each
    /// (file, digest) once.
    pub evidence: Vec<EvidenceRow>,
    /// Approvals, declines and prompts left unanswered, in the order they were recorded.
    pub decisions: Vec<DecisionRow>,
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
    /// Requests sent (attempts included), a check's "before" taken ahead of its start too.
    pub requests: usize,
    /// Whether it started in this transcript (`step-started`); a step the run stopped before
    /// it started has only its `step-finished`.
    pub ran: bool,
    /// When it finished (its `step-finished` record), if it did.
    pub finished: Option<String>,
    /// A `foreach` step's item count.
    pub items: Option<u64>,
    /// Its outputs as recorded (secret ones are the string `[secret]`), in recorded order.
    pub outputs: Vec<(String, Value)>,
}

/// The run's own verdict on containment (a `containment` record).
#[derive(Debug, Clone, Default)]
pub struct ContainmentRecord {
    /// `contained`, `not-contained` or `not-applicable` (other words are shown as they are).
    pub state: String,
    /// One line for people.
    pub summary: String,
    /// The checks behind the verdict.
    pub checks: Vec<ContainmentCheck>,
    /// From the run's start to containment, when it was reached.
    pub time_to_containment: Option<SignedDuration>,
    /// When containment was reached (RFC 3339), when it was.
    pub at: Option<String>,
}

/// One check of a containment record.
#[derive(Debug, Clone, Default)]
pub struct ContainmentCheck {
    /// The step that checked.
    pub step: String,
    /// `ok`, `failed`, `skipped`, …
    pub status: String,
    /// What it found.
    pub detail: String,
}

/// Where a report's containment facts come from.
#[derive(Debug, Clone, Copy)]
pub enum Containment<'a> {
    /// The run's `containment` record.
    Recorded(&'a ContainmentRecord),
    /// No record (an older transcript): the last-destructive-step estimate, if any step counts.
    Estimated(Option<&'a (SignedDuration, String)>),
    /// No record, and a dry run: nothing was changed, so nothing was contained.
    DryRun,
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
    /// The first record naming it.
    pub seq: u64,
    /// For an audit pull: the distinct rows it holds.
    pub rows: Option<u64>,
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
        let mut prompts = Prompts::default();
        // Requests of a step not yet started: a containment check takes its "before" ahead of
        // the step that removes access, long before the check itself starts.
        let mut early: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        // Checkpoints are the writer's signatures, not events of the run.
        for r in records
            .iter()
            .filter(|r| r.kind != crate::transcript::checkpoint::KIND)
        {
            t.events.push(EventRow {
                seq: r.seq,
                ts: r.ts.clone(),
                kind: r.kind.clone(),
                summary: describe(r),
            });
            match r.kind.as_str() {
                "run-started" => t.read_start(r),
                "plan" => destructive = strings(r.data.get("destructive")),
                "step-started" => {
                    prompts.started(r);
                    t.steps.push(StepRow {
                        step: field(r, "step"),
                        started: r.ts.clone(),
                        destructive: destructive.contains(&field(r, "step")),
                        status: "unknown".into(),
                        items: r.data.get("items").and_then(Value::as_u64),
                        requests: early.remove(&field(r, "step")).unwrap_or(0),
                        ran: true,
                        ..StepRow::default()
                    });
                }
                "confirmation" => {
                    t.decisions.push(prompts.answered(r));
                    let approved = r.data.get("approved") == Some(&Value::Bool(true));
                    let how = match field(r, "how").as_str() {
                        "assume-yes" => "--yes".to_string(),
                        "approve" => "--approve".to_string(),
                        "plan" => "the signed plan".to_string(),
                        "policy" => "the signed policy".to_string(),
                        other => other.to_string(),
                    };
                    let word = if approved { "approved" } else { "declined" };
                    t.step_mut(r).approval = format!("{word} ({how})");
                }
                "plan-approved" => {
                    let who: Vec<&str> = r
                        .data
                        .get("approvers")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    t.approved_by = Some(format!(
                        "the signed plan sha256 {}, approved by {}",
                        field(r, "plan_sha256"),
                        who.join(", ")
                    ));
                }
                "policy-applied" => {
                    t.approved_by = Some(format!(
                        "the signed policy sha256 {}, signed by {}",
                        field(r, "policy_sha256"),
                        field(r, "signer")
                    ));
                }
                // The preflight is the run's, not a step's: it is shown as who acted.
                "preflight" => {
                    t.preflight = r
                        .str_field("summary")
                        .map(|s| s.strip_prefix("acting as ").unwrap_or(s).to_string());
                }
                "request" | "response" if r.step() == Some("preflight") => {}
                "request" => {
                    prompts.sent(r);
                    let step = field(r, "step");
                    match t.steps.iter_mut().rev().find(|s| s.step == step) {
                        Some(row) => row.requests += 1,
                        None => *early.entry(step).or_default() += 1,
                    }
                }
                "response" => t.read_evidence(r, r.data.get("evidence")),
                "audit-evidence" => t.read_evidence(r, Some(&Value::Object(r.data.clone()))),
                "carried" => t.read_evidence_list(r),
                "step-finished" => {
                    if let Some(d) = prompts.abandoned(r, &destructive) {
                        t.decisions.push(d);
                    }
                    t.read_evidence_list(r);
                    t.read_step_finished(r, &destructive);
                }
                "run-finished" => t.read_finish(r),
                "containment" => t.containment_record = Some(containment_record(r)),
                _ => {}
            }
            t.last_ts = r.ts.clone();
        }
        t
    }

    /// Where the containment facts come from: the record when there is one, else the estimate.
    pub fn containment_facts(&self) -> Containment<'_> {
        match &self.containment_record {
            Some(c) => Containment::Recorded(c),
            None if self.mode == "dry-run" => Containment::DryRun,
            None => Containment::Estimated(self.containment.as_ref()),
        }
    }

    /// Time to containment: recorded when the run recorded it, else the estimate.
    pub fn time_to_containment(&self) -> Option<SignedDuration> {
        match self.containment_facts() {
            Containment::Recorded(c) => c.time_to_containment,
            Containment::Estimated(e) => e.map(|(d, _)| *d),
            Containment::DryRun => None,
        }
    }

    /// Milliseconds from the run's start to `ts`, if both parse.
    pub fn offset_ms(&self, ts: &str) -> Option<i64> {
        between(&self.started, ts).and_then(|d| i64::try_from(d.as_millis()).ok())
    }

    /// The one-paragraph summary on top of a report, as plain text (renderers escape it): who ran
    /// what, for which incident, how, how it ended, and what was contained when.
    pub fn summary(&self) -> String {
        let mut s = self.summary_opening();
        match &self.outcome {
            Some((outcome, code)) => {
                let words = match outcome.as_str() {
                    "success" => "succeeded".to_string(),
                    "failed" => "failed".to_string(),
                    "declined" => "stopped at a declined confirmation".to_string(),
                    "auth-failed" => "stopped: authentication with ESUS failed".to_string(),
                    "interrupted" => "was interrupted".to_string(),
                    other => format!("ended with outcome {}", or_unknown(other)),
                };
                let after = self
                    .duration
                    .map(|d| format!(" after {}", human_duration(d)))
                    .unwrap_or_default();
                s.push_str(&format!(" The run {words}{after} (exit {code})."));
            }
            None => s.push_str(
                " The transcript ends without a run-finished record: the run did not finish.",
            ),
        }
        s.push(' ');
        s.push_str(&self.containment_sentence());
        s
    }

    /// Who ran which runbook, for which incident, how, from where and when.
    pub fn summary_opening(&self) -> String {
        let mut s = String::new();
        let operator = or_unknown(&self.operator);
        let runbook = or_unknown(&self.runbook_name);
        s.push_str(&format!("{operator} ran the runbook {runbook}"));
        if let Some(id) = &self.incident_id {
            s.push_str(&format!(" for incident {id}"));
        }
        let target = or_unknown(&self.base_url);
        s.push_str(&match self.mode.as_str() {
            "live" => format!(" live against {target}"),
            "drill" => {
                " as a drill against the embedded simulator (no real credential was touched)"
                    .to_string()
            }
            "dry-run" => format!(" as a dry run against {target} (no change was sent)"),
            other => format!(" in mode {} against {target}", or_unknown(other)),
        });
        if !self.host.is_empty() {
            s.push_str(&format!(" from {}", self.host));
        }
        s.push_str(&format!(", starting {}.", human_time(&self.started)));
        s
    }

    /// What was contained when. A recorded time counts from the incident's start (the first
    /// leg's), which the sentence says: a resumed leg's own start is not the incident's.
    pub fn containment_sentence(&self) -> String {
        match self.containment_facts() {
            Containment::Recorded(c) => {
                let summary = if c.summary.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.summary.trim_end_matches('.'))
                };
                match c.state.as_str() {
                    "contained" => {
                        let when = match (c.time_to_containment, &c.at) {
                            (Some(d), Some(at)) => format!(" {} after the incident's start, at {}", human_duration(d), human_time(at)),
                            (Some(d), None) => format!(" {} after the incident's start", human_duration(d)),
                            (None, Some(at)) => format!(" at {}", human_time(at)),
                            (None, None) => String::new(),
                        };
                        format!("Contained{when}{summary}.")
                    }
                    "not-contained" => format!("NOT contained{summary}."),
                    "not-applicable" => format!("Containment does not apply to this run{summary}."),
                    other => format!("Containment: {}{summary}.", or_unknown(other)),
                }
            }
            Containment::Estimated(Some((d, step))) => format!(
                "Estimated time to containment: {} after this run's start (this transcript has no containment record; the estimate is when the last destructive step, {step}, finished ok).",
                human_duration(*d)
            ),
            Containment::Estimated(None) => "Containment was not reached (estimate: no destructive step finished ok; this transcript has no containment record).".to_string(),
            Containment::DryRun => "A dry run changes nothing, so nothing was contained.".to_string(),
        }
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
        self.resumes_file = r.str_field("resumes_file").map(str::to_string);
        self.chain_started_at = r.str_field("chain_started_at").map(str::to_string);
        self.incident_id = r
            .str_field("incident_id")
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string);
        self.evidence_recipients = r
            .data
            .get("evidence_recipients")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
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

    /// Records the evidence file `ev` names (`{"file", "sha256"}`), once per file and digest.
    fn read_evidence(&mut self, r: &Record, ev: Option<&Value>) {
        let Some(ev) = ev.filter(|v| v.is_object()) else {
            return;
        };
        let get = |k| {
            ev.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (file, sha256) = (get("file"), get("sha256"));
        if self
            .evidence
            .iter()
            .any(|e| e.file == file && e.sha256 == sha256)
        {
            return;
        }
        self.evidence.push(EvidenceRow {
            step: field(r, "step"),
            file,
            sha256,
            seq: r.seq,
            rows: (r.kind == "audit-evidence")
                .then(|| ev.get("rows").and_then(Value::as_u64))
                .flatten(),
        });
    }

    /// The `evidence` list of a finished or carried step.
    fn read_evidence_list(&mut self, r: &Record) {
        if let Some(list) = r.data.get("evidence").and_then(Value::as_array) {
            for ev in list {
                self.read_evidence(r, Some(ev));
            }
        }
    }

    fn read_step_finished(&mut self, r: &Record, destructive: &[String]) {
        let status = field(r, "status");
        let row = self.step_mut(r);
        row.status = status.clone();
        row.reason = r.str_field("reason").map(str::to_string);
        row.duration_ms = r.data.get("duration_ms").and_then(Value::as_u64);
        row.finished = Some(r.ts.clone());
        row.outputs = r
            .data
            .get("outputs")
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
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

/// Reads a `containment` record leniently: a missing or mistyped field is left empty.
fn containment_record(r: &Record) -> ContainmentRecord {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let checks = r
        .data
        .get("checks")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| ContainmentCheck {
                    step: text(c.get("step")),
                    status: text(c.get("status")),
                    detail: text(c.get("detail")),
                })
                .collect()
        })
        .unwrap_or_default();
    ContainmentRecord {
        state: field(r, "state"),
        summary: field(r, "summary"),
        checks,
        time_to_containment: r
            .data
            .get("time_to_containment_ms")
            .and_then(Value::as_u64)
            .and_then(|ms| i64::try_from(ms).ok())
            .map(SignedDuration::from_millis),
        at: r
            .str_field("at")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    }
}

/// `2026-01-02 03:04:05 UTC` for an RFC 3339 timestamp; other text as it is.
pub fn human_time(ts: &str) -> String {
    match ts.parse::<Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => or_unknown(ts).to_string(),
    }
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
