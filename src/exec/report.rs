//! The run's result as the operator (or a paging tool) reads it: a human summary on stdout, or
//! one JSON document.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Map, Value};

use super::event::{ContainmentState, EvidenceRef, RunOutcome, StepStatus};
use crate::error::ExitCode;

/// One step in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Step id.
    pub id: String,
    /// Step name (rendered).
    pub name: String,
    /// What became of it.
    pub status: StepStatus,
    /// Why, when not ok.
    pub reason: Option<String>,
    /// Milliseconds.
    pub duration_ms: u64,
    /// Non-secret outputs.
    pub outputs: Map<String, Value>,
    /// Evidence files.
    pub evidence: Vec<EvidenceRef>,
    /// Files holding secret outputs (0600).
    pub secret_files: Vec<PathBuf>,
    /// What a containment check found.
    pub finding: Option<String>,
    /// The non-2xx answer the runbook expected.
    pub expected: Option<u16>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Unique id of this run.
    pub run_id: String,
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
}

impl RunOutcome {
    /// The exit code of this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            RunOutcome::Success => ExitCode::Success,
            RunOutcome::Failed => ExitCode::StepFailed,
            RunOutcome::Declined => ExitCode::Declined,
            RunOutcome::AuthFailed => ExitCode::Auth,
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
                format!("CONTAINED{at}{ttc}: {}", c.summary)
            }
            ContainmentState::NotContained => format!("NOT CONTAINED: {}", c.summary),
            ContainmentState::NotApplicable => {
                format!("containment: not applicable — {}", c.summary)
            }
        }
    }

    /// The human summary: containment first, then every step, then what to do next.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n{}", self.containment_line());
        let _ = writeln!(out, "\n{} — {}", self.runbook, outcome_words(self.outcome));
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

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

fn duration(ms: u64) -> String {
    if ms >= 10_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A word for a step status.
pub fn status_words(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Ok => "ok",
        StepStatus::Skipped => "skipped",
        StepStatus::Failed => "FAILED",
        StepStatus::Declined => "declined",
        StepStatus::Interrupted => "interrupted",
    }
}

fn outcome_words(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Success => "completed",
        RunOutcome::Failed => "FAILED",
        RunOutcome::Declined => "stopped: declined or approval missing",
        RunOutcome::AuthFailed => "stopped: authentication failed",
        RunOutcome::Interrupted => "interrupted",
    }
}
