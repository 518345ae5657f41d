//! The run's result as the operator (or a paging tool) reads it: a human summary on stdout, or
//! one JSON document (`--output json`) whose JSON Schema ships with the tool
//! (`esus-ir schema --result`, docs/result.schema.json).

use std::fmt::Write as _;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::error::ExitCode;
use crate::event::{ContainmentState, RunOutcome, StepStatus};

/// The version of the JSON documents (`--output json`); it changes only when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

pub use super::step_report::{MissingApproval, StepReport, status_words};

/// The whole run: the `--output json` document of a live run or drill.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunReport {
    /// Version of this document format (1); it changes only when a field changes meaning or goes away.
    pub schema_version: u32,
    /// Always `result` (a dry-run writes a `plan`, a failure before the run an `error`).
    #[schemars(extend("const" = "result"))]
    pub kind: String,
    /// Unique id of this run.
    pub run_id: String,
    /// `--incident-id`, when given.
    pub incident_id: Option<String>,
    /// Who ran it (`--operator`, else the OS user); the signer identity of the transcript.
    pub operator: String,
    /// `live` or `drill`.
    pub mode: crate::event::RunMode,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// contained, not-contained or not-applicable: the containment checks' verdict.
    pub contained: ContainmentState,
    /// Milliseconds from the start to the moment containment was proven, when it was.
    pub time_to_containment_ms: Option<u64>,
    /// The runbook's name.
    pub runbook: String,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The process exit code.
    pub exit_code: u8,
    /// A sentence for the operator.
    pub message: String,
    /// Every step, in plan order.
    pub steps: Vec<StepReport>,
    /// The run's folder (transcript, evidence, secrets).
    pub run_dir: Option<PathBuf>,
    /// The transcript file.
    pub transcript: Option<PathBuf>,
    /// The evidence folder.
    pub evidence_dir: Option<PathBuf>,
    /// What the run proved about containment.
    pub containment: Option<super::containment::Containment>,
    /// Who the operator's token is, as ESUS said at the preflight (`GET /auth/me`).
    pub acting_as: Option<Value>,
    /// Steps an unattended run could not approve, each with what would approve it.
    pub missing_approvals: Vec<MissingApproval>,
    /// The exact command that continues this run, when it stopped before the end.
    pub resume_command: Option<String>,
    /// Where the refresh token ESUS rotated during the run was written (0600): the next run
    /// must use it (`--refresh-token-file`), the old one is dead.
    pub refresh_token_file: Option<PathBuf>,
    /// The OS keyring entry (service `esus-ir`) the rotated refresh token was written to, with
    /// `--refresh-token-keyring`.
    pub refresh_token_keyring: Option<String>,
    /// What was not done, and why (an optional input nobody gave): "no `session_token` given:
    /// `logout` (Log out the compromised session) will NOT run".
    pub not_done: Vec<String>,
    /// What is left to do by hand, when every step ended and no resume can change the answer of
    /// the checks that failed (the stolen credential was already dead): then there is no
    /// `resume_command`.
    pub by_hand: Vec<String>,
    /// Once containment is proven: what to run next — the breach's scope from this run's audit
    /// evidence, the sweep for what the credential's holder left behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_steps: Vec<String>,
}

impl RunOutcome {
    /// The exit code of this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            RunOutcome::Success => ExitCode::Success,
            RunOutcome::Failed | RunOutcome::CompletedWithFailures => ExitCode::StepFailed,
            RunOutcome::Refused => ExitCode::Usage,
            RunOutcome::Declined => ExitCode::Declined,
            RunOutcome::AuthFailed => ExitCode::Auth,
            RunOutcome::Unreachable => ExitCode::Unreachable,
            RunOutcome::Interrupted => ExitCode::Interrupted,
        }
    }
}

impl RunReport {
    /// The containment line that leads every summary: what is proven, or what is at risk.
    pub fn containment_line(&self) -> String {
        let Some(c) = &self.containment else {
            return "NOT CONTAINED: nothing was checked".into();
        };
        match c.state {
            ContainmentState::Contained => {
                let at =
                    c.at.as_deref()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map(|t| format!(" at {}", t.strftime("%H:%M:%S")))
                        .unwrap_or_default();
                let ttc = c
                    .time_to_containment_ms
                    .map(|ms| format!(" (time to containment {:.1} s)", ms as f64 / 1000.0))
                    .unwrap_or_default();
                let gaps = if c.not_covered.is_empty() {
                    String::new()
                } else {
                    format!(" — NOT covered: {}", c.not_covered.join("; "))
                };
                format!("CONTAINED{at}{ttc}: {}{gaps}", c.summary)
            }
            ContainmentState::NotContained if !c.not_covered.is_empty() => format!(
                "NOT CONTAINED: {} — also NOT covered: {}",
                c.summary,
                c.not_covered.join("; ")
            ),
            ContainmentState::NotContained => format!("NOT CONTAINED: {}", c.summary),
            ContainmentState::NotApplicable => {
                format!("containment: not applicable — {}", c.summary)
            }
        }
    }

    /// The human summary after the containment line: every step, the transcript, the outcome.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n{} — {}", self.runbook, outcome_words(self.outcome));
        for gap in &self.not_done {
            let _ = writeln!(out, "  NOT done — {gap}");
        }
        if self.outcome == RunOutcome::CompletedWithFailures {
            let _ = writeln!(out, "  {}", self.message);
        }
        for s in &self.steps {
            let _ = writeln!(
                out,
                "  {:<11} {:<22} {:>7}  {}",
                status_words(s.status),
                s.id,
                duration(s.duration_ms),
                s.name
            );
            if let Some(r) = &s.reason {
                let _ = writeln!(out, "              {r}");
            }
            if let (Some(f), StepStatus::Ok) = (&s.finding, s.status) {
                let _ = writeln!(out, "              proven: {f}");
            }
            for (k, v) in &s.outputs {
                if let Some(lines) = sentences(v) {
                    let _ = writeln!(out, "              {k}:");
                    for line in lines.iter().take(SENTENCES_SHOWN) {
                        let _ = writeln!(out, "                - {}", cut(line, 300));
                    }
                    if lines.len() > SENTENCES_SHOWN {
                        let more = lines.len() - SENTENCES_SHOWN;
                        let _ = writeln!(
                            out,
                            "                … and {more} more (all of them: --format json, or the transcript)"
                        );
                    }
                    continue;
                }
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => short_json(other),
                };
                let _ = writeln!(out, "              {k} = {text}");
            }
            for e in &s.evidence {
                let _ = writeln!(
                    out,
                    "              evidence: {} (sha256 {}…)",
                    e.file,
                    &e.sha256[..12.min(e.sha256.len())]
                );
            }
            for f in &s.secret_files {
                let _ = writeln!(
                    out,
                    "              secret written to {} (mode 0600; not shown)",
                    f.display()
                );
            }
        }
        if let Some(t) = &self.transcript {
            let _ = writeln!(out, "\ntranscript: {}", t.display());
        }
        let _ = writeln!(out, "{}", self.message);
        out
    }
}

/// How many lines of a list of sentences the summary shows.
const SENTENCES_SHOWN: usize = 25;

/// A list of texts too long for one line (findings, one sentence each; a fan-out's lists are
/// flattened), to show one per line instead of cut off mid-sentence.
fn sentences(v: &Value) -> Option<Vec<&str>> {
    let items = v.as_array()?;
    let mut lines = Vec::new();
    for item in items {
        match item {
            Value::String(s) => lines.push(s.as_str()),
            Value::Array(inner) => {
                for s in inner {
                    lines.push(s.as_str()?);
                }
            }
            _ => return None,
        }
    }
    (v.to_string().chars().count() > 120).then_some(lines)
}

fn short_json(v: &Value) -> String {
    cut(&v.to_string(), 120)
}

fn cut(s: &str, at: usize) -> String {
    if s.chars().count() > at {
        format!("{}…", s.chars().take(at).collect::<String>())
    } else {
        s.to_string()
    }
}

fn duration(ms: u64) -> String {
    if ms >= 10_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn outcome_words(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Success => "completed",
        RunOutcome::CompletedWithFailures => "completed WITH FAILURES",
        RunOutcome::Failed => "FAILED",
        RunOutcome::Refused => "refused before anything was sent",
        RunOutcome::Declined => "stopped: declined or approval missing",
        RunOutcome::AuthFailed => "stopped: ESUS refused the operator's credentials",
        RunOutcome::Unreachable => "stopped: ESUS could not be reached (nothing was sent)",
        RunOutcome::Interrupted => "interrupted",
    }
}
