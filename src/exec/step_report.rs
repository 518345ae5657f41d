//! How one step ended, as the result and the containment verdict read it — below both, so the
//! verdict (which reads steps) and the result (which holds the verdict) need not import each other.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::{EvidenceRef, StepStatus};

/// One step in the summary.
#[derive(Debug, Clone, Serialize, JsonSchema)]
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
    /// The non-2xx answer the runbook expected (`expect:`): an expected refusal, not a failure.
    pub expected: Option<u16>,
}

/// A step an unattended run could not approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MissingApproval {
    /// The step id.
    pub step: String,
    /// Whether it is `confirm: typed` (only `--approve STEP` approves it, never `--yes`).
    pub typed: bool,
    /// The flag(s) that would approve it.
    pub approve_with: String,
}

impl std::fmt::Display for MissingApproval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (needs {})", self.step, self.approve_with)
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
