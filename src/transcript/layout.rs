//! Where a run's files live, so the executor, `verify` and `report` agree without configuration.
//!
//! ```text
//! <run-dir>/transcript.jsonl       the transcript
//! <run-dir>/transcript.jsonl.sig   its SSHSIG signature
//! <run-dir>/evidence/…             PHI-bearing bodies, referenced from the transcript by name and SHA-256
//! <run-dir>/secrets/…              secret outputs (0600); never referenced by digest in the transcript
//! ```

use std::path::{Path, PathBuf};

/// File name of the transcript inside a run folder.
pub const TRANSCRIPT_FILE: &str = "transcript.jsonl";

/// Folder of evidence files inside a run folder.
pub const EVIDENCE_DIR: &str = "evidence";

/// Folder of secret outputs inside a run folder.
pub const SECRETS_DIR: &str = "secrets";

/// The plan a `run --require-approvals` without `--plan` writes into its folder (its approvals
/// are the `plan.json.*.sig` files beside it).
pub const PLAN_FILE: &str = "plan.json";

/// The evidence folder that belongs to a transcript: `<transcript's folder>/evidence`.
pub fn default_evidence_dir(transcript: &Path) -> PathBuf {
    transcript
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(EVIDENCE_DIR)
}
