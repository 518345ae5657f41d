//! The breach scope's shape: what `esus-ir scope` prints as JSON and `report` shows. No
//! reading here — this file is the leaf both the scope's computation and the report use.

use schemars::JsonSchema;
use serde::Serialize;

/// The breach's scope (`esus-ir scope --format json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Scope {
    /// Always 1 for this layout.
    pub schema_version: u32,
    /// Always `scope`.
    pub kind: &'static str,
    /// The compromised credential's user.
    pub user_id: String,
    /// The source addresses the scope is limited to (`--source`); empty: every row of the user.
    pub sources_marked: Vec<String>,
    /// The window the scope covers.
    pub window: Window,
    /// The audit evidence read.
    pub evidence: Vec<EvidenceUsed>,
    /// Whether the window is covered by pulls that proved themselves complete (each file says
    /// whether it did; a pull cut short still counts its rows, once).
    pub evidence_complete: bool,
    /// Distinct audit rows read, across every file.
    pub rows_read: usize,
    /// Rows of this user in the window.
    pub rows_in_window: usize,
    /// ESUS's check of its audit hash chain, when the incident saved one: a break means the
    /// rows at the source were altered, and the scope cannot rest on them.
    pub source_chain: Option<ChainCheck>,
    /// Every patient whose records this user touched in the window.
    pub patients: Vec<PatientAccess>,
    /// Every record touched, with its patient when the row names one.
    pub records: Vec<RecordAccess>,
    /// Reads and searches of patient data whose row names no patient and no record (a search
    /// such as `Observation?code=…`): which patients they returned, the audit log does not say,
    /// so the patient list above may be short by their results.
    pub searches_without_patient: Vec<Moment>,
    /// Bulk exports started.
    pub exports: Vec<Moment>,
    /// Requests made with `X-Emergency-Override` (consent bypassed).
    pub emergency_overrides: Vec<Moment>,
    /// Failed attempts (outcome `failure` or `error`).
    pub failures: Vec<Moment>,
    /// Where the requests came from.
    pub sources: Vec<SourceSeen>,
    /// Rows of this user after containment was proven: each one is a finding.
    pub after_containment: Vec<Moment>,
    /// Rows this incident's own checks made while it ran (esus-ir presenting the stolen
    /// credential to prove it refused): listed, not counted above.
    pub own_checks: Vec<Moment>,
}

/// ESUS's own check of its audit hash chain, as the incident saved it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChainCheck {
    /// The evidence file it is in.
    pub file: String,
    /// ESUS's verdict.
    pub ok: bool,
    /// Rows ESUS checked.
    pub total: u64,
    /// How far the chain holds.
    pub verified_through: u64,
    /// The breaks ESUS found: each row id and its time.
    pub breaks: Vec<ChainBreak>,
}

/// A row whose stored hash is not the one ESUS recomputes.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChainBreak {
    /// The row's id.
    pub id: String,
    /// When it was recorded.
    pub recorded: String,
}

/// The window: from the first access (or the operator's mark) to the proven containment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Window {
    /// Start (RFC 3339); none when the user has no row at all.
    pub from: Option<String>,
    /// Why it starts there: `marked` (the operator's `--since`) or `first-access`.
    pub from_source: &'static str,
    /// End (RFC 3339): the proven containment, else the end of the evidence.
    pub to: Option<String>,
    /// Why it ends there: `containment`, or `end-of-evidence` (containment was not proven, or
    /// the evidence ends before it).
    pub to_source: &'static str,
    /// A stretch the evidence does not cover: from its end to the proven containment (what the
    /// credential did then is not known from this incident's evidence).
    pub not_covered: Option<String>,
}

/// One evidence file read.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EvidenceUsed {
    /// Its path in the evidence folder.
    pub file: String,
    /// Its SHA-256, as the transcript recorded it and the file still has.
    pub sha256: String,
    /// Rows in it.
    pub rows: usize,
    /// Whether the pull proved it complete.
    pub complete: bool,
}

/// What one patient's, or one record's, rows add up to.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Counts {
    /// Read rows (reads and searches).
    pub reads: usize,
    /// Create, update and delete rows.
    pub writes: usize,
    /// Export rows.
    pub exports: usize,
    /// Rows under an emergency override.
    pub emergency_overrides: usize,
    /// Rows that failed.
    pub failed: usize,
    /// First row (RFC 3339).
    pub first: String,
    /// Last row (RFC 3339).
    pub last: String,
}

/// One patient's records touched.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct PatientAccess {
    /// The patient's id.
    pub patient_id: String,
    /// The resource types touched.
    pub resource_types: Vec<String>,
    /// Its rows.
    #[serde(flatten)]
    pub counts: Counts,
}

/// One record (resource) touched.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct RecordAccess {
    /// The patient it belongs to, when the row names one.
    pub patient_id: Option<String>,
    /// Its resource type.
    pub resource_type: String,
    /// Its id; none for a search.
    pub resource_id: Option<String>,
    /// Its rows.
    #[serde(flatten)]
    pub counts: Counts,
}

/// One row, as the scope shows it (ids and types only).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Moment {
    /// The row's id.
    pub row: String,
    /// When (RFC 3339).
    pub at: String,
    /// Its `type` (`resource.read`…).
    pub kind: String,
    /// `success`, `failure` or `error`.
    pub outcome: String,
    /// The resource type, when there is one.
    pub resource_type: Option<String>,
    /// The resource id, when there is one.
    pub resource_id: Option<String>,
    /// The patient, when the row names one.
    pub patient_id: Option<String>,
}

/// A source address and client seen.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceSeen {
    /// The address.
    pub ip: String,
    /// The `User-Agent`.
    pub user_agent: String,
    /// Rows from it.
    pub rows: usize,
    /// First row (RFC 3339).
    pub first: String,
    /// Last row (RFC 3339).
    pub last: String,
}
