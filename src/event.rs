//! The event stream a run emits: the seam between the executor and its listeners.
//!
//! Every value in an event is already safe to persist: secrets are replaced by the placeholder
//! [`REDACTED`] before an event is built, so a listener can never leak one by writing it out.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The placeholder that stands wherever a secret value was.
pub const REDACTED: &str = "[secret]";

/// How a run talks to ESUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// Requests are sent to a real ESUS.
    Live,
    /// Nothing is sent (or, with `--dry-run=reads`, only safe GETs).
    DryRun,
    /// Requests go to the embedded simulator.
    Drill,
}

/// How a destructive step came to be approved (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalSource {
    /// The operator answered a prompt.
    Interactive,
    /// `--yes` approved every destructive step.
    AssumeYes,
    /// `--approve STEP_ID` named this step.
    Approve,
    /// `run --plan`: the signed plan, approved by others, allows exactly this request.
    Plan,
    /// `run --policy`: the signed policy approves this step for unattended runs.
    Policy,
    /// The runbook said `confirm: false`.
    NotRequired,
    /// Nobody could approve it: an unattended run without `--yes`/`--approve` for this step.
    Missing,
}

/// One request an approval covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Covered {
    /// The `foreach` item it is for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// SHA-256 (hex) of its canonical [`RequestView`].
    pub request_sha256: String,
}

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// It ran and every request succeeded.
    Ok,
    /// Its `when` was false, or a step it needs did not succeed.
    Skipped,
    /// A request failed or an output could not be computed.
    Failed,
    /// The operator (or the missing approval) said no.
    Declined,
    /// The run was interrupted before the step could finish.
    Interrupted,
}

/// A request as it is shown, confirmed and recorded; credentials and secret values are redacted.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RequestView {
    /// HTTP method.
    pub method: String,
    /// The full URL, query included.
    pub url: String,
    /// Headers that were (or will be) sent, with credentials shown as [`REDACTED`].
    pub headers: Vec<(String, String)>,
    /// The JSON body, secret values replaced by [`REDACTED`].
    pub body: Option<Value>,
}

/// One thing that happened during a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// The run began.
    RunStarted {
        /// The runbook's `name`.
        runbook_name: String,
        /// SHA-256 (hex) of the runbook bytes.
        runbook_sha256: String,
        /// The runbook text itself.
        runbook_text: String,
        /// Who ran it (`--operator`, else the OS user).
        operator: String,
        /// The machine it ran on.
        host: String,
        /// The ESUS base URL.
        base_url: String,
        /// Live, dry-run or drill.
        mode: RunMode,
        /// The inputs, secret ones as [`REDACTED`].
        inputs: std::sync::Arc<serde_json::Map<String, Value>>,
        /// When resuming: the head hash of the transcript this run continues.
        resumes: Option<String>,
        /// `--incident-id`: the incident this run belongs to.
        #[serde(skip_serializing_if = "Option::is_none")]
        incident_id: Option<String>,
        /// When resuming: the file name (in the run folder) of the transcript this run continues.
        #[serde(skip_serializing_if = "Option::is_none")]
        resumes_file: Option<String>,
        /// When resuming: when the first run of the chain started (time to containment counts
        /// from there).
        #[serde(skip_serializing_if = "Option::is_none")]
        chain_started_at: Option<String>,
        /// This leg's run id.
        #[serde(skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// The incident: the first leg's run id, which every leg's claims derive from.
        #[serde(skip_serializing_if = "Option::is_none")]
        incident: Option<String>,
        /// Who the evidence and secret outputs are encrypted to (age recipients, SSH public
        /// keys); absent when they are written in clear.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        evidence_recipients: Vec<String>,
    },
    /// Who the operator's token is, on which ESUS (`GET /auth/me`), before anything else is sent.
    Preflight {
        /// The identity ESUS reported (id, email, organizations with their roles); `null` when
        /// the check failed before ESUS could say.
        identity: Value,
        /// "acting as … on …", or why the check failed.
        summary: String,
        /// Permissions the runbook needs that the token lacks, with the steps that need them.
        lacking: Vec<String>,
        /// What the token holds beyond what the runbook needs (least privilege: a narrower role
        /// or token would do). Absent when nothing is in excess.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        more_than_needed: Vec<String>,
    },
    /// The operator's ESUS token was renewed mid-run (it expired or was refused): by the refresh
    /// token, or by a new token the operator typed. Neither token is recorded.
    TokenRenewed {
        /// `refresh-token` or `operator`.
        by: String,
        /// Whether ESUS answered with a new refresh token (the old one is then dead).
        refresh_rotated: bool,
        /// Where the new refresh token was written (0600), for the next run to pick up.
        #[serde(skip_serializing_if = "Option::is_none")]
        refresh_saved_to: Option<String>,
        /// Why the new refresh token could not be written, when it could not.
        #[serde(skip_serializing_if = "Option::is_none")]
        save_error: Option<String>,
    },
    /// `run --plan`: the signed plan this run may send no more than, and who approved it.
    PlanApproved {
        /// SHA-256 of the plan file's bytes.
        plan_sha256: String,
        /// Each approval that counted: `principal (fingerprint)`.
        approvers: Vec<String>,
        /// When the plan was made (its `created_at`).
        #[serde(skip_serializing_if = "Option::is_none")]
        plan_created_at: Option<String>,
        /// Until when its approvals may be used (its `expires_at`).
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<String>,
    },
    /// `run --policy`: the signed policy this unattended run is inside.
    PolicyApplied {
        /// SHA-256 of the policy file's bytes.
        policy_sha256: String,
        /// Who signed it: `principal (fingerprint)`.
        signer: String,
        /// Until when it approves anything (its `expires`).
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<String>,
    },
    /// The plan shown before the first request.
    Plan {
        /// Step ids in execution order.
        order: Vec<String>,
        /// Groups of steps that may run in parallel, in order.
        layers: Vec<Vec<String>>,
        /// Steps whose action changes or removes access.
        destructive: Vec<String>,
        /// Requests already fully known before the run, keyed by step id.
        known_requests: Vec<(String, RequestView)>,
        /// What will not be done, and why (an optional input nobody gave).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        not_done: Vec<String>,
    },
    /// A step began (for a `foreach` step, once for the whole fan-out).
    StepStarted {
        /// The step id.
        step: String,
        /// How many items a `foreach` fans out over.
        items: Option<usize>,
    },
    /// The operator was asked to approve a request, or an approval was taken from flags.
    Confirmation {
        /// The step id.
        step: String,
        /// This approval's number in the transcript (1, 2, …): the requests it covers say so.
        approval: u64,
        /// The prompt as shown.
        prompt: String,
        /// SHA-256 (hex) of what was shown: for one request of a step without `foreach`, the
        /// digest of its canonical [`RequestView`]; otherwise the batch digest over `covers`.
        request_sha256: String,
        /// Whether the step was approved.
        approved: bool,
        /// How the answer was given.
        how: ApprovalSource,
        /// Every request the approval covers, in the order shown: a verifier checks each request
        /// the step then sends against this list, not just the first.
        covers: Vec<Covered>,
    },
    /// A request the plan names as following an approved one of the same step, its placeholder
    /// filled from that request's answer (a created key's rename): approved by the approval it
    /// `follows`, with the digest of exactly what is sent. Not a new decision — so neither a new
    /// prompt nor a synced checkpoint of its own.
    FollowUp {
        /// The step id.
        step: String,
        /// This approval's number in the transcript.
        approval: u64,
        /// The approval (of the same step) it follows.
        follows: u64,
        /// What it does, for people.
        prompt: String,
        /// SHA-256 (hex): the request's digest, or for an item the batch digest over `covers`.
        request_sha256: String,
        /// The request it covers.
        covers: Vec<Covered>,
    },
    /// A request is about to be sent.
    Request {
        /// The step id.
        step: String,
        /// Index of the `foreach` item, if any.
        item: Option<usize>,
        /// The approvals (their `approval` numbers) this request is sent under.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        approvals: Vec<u64>,
        /// Sent by a containment check as the compromised credential, to see whether it still
        /// works (never the operator acting): needs no approval.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        probe: bool,
        /// 1 for the first attempt, then 2, 3… for retries.
        attempt: u32,
        /// The `X-Request-Id` sent, matching ESUS's own audit log.
        request_id: String,
        /// The request, redacted.
        request: RequestView,
    },
    /// A response arrived (or the request failed without one).
    Response {
        /// The step id.
        step: String,
        /// The request id this answers.
        request_id: String,
        /// HTTP status; `None` when the connection failed.
        status: Option<u16>,
        /// Milliseconds from sending to the full body.
        duration_ms: u64,
        /// SHA-256 (hex) of the body bytes.
        body_sha256: Option<String>,
        /// The body, only when small and free of secrets and PHI.
        body: Option<Value>,
        /// Evidence file holding the body, relative to the evidence folder.
        evidence: Option<EvidenceRef>,
        /// A transport error, when there is no status.
        error: Option<String>,
    },
    /// A step ended.
    StepFinished {
        /// The step id.
        step: String,
        /// What became of it.
        status: StepStatus,
        /// Why, when it did not succeed.
        reason: Option<String>,
        /// Its non-secret outputs (secret ones as [`REDACTED`]).
        outputs: serde_json::Map<String, Value>,
        /// Milliseconds from start to finish.
        duration_ms: u64,
        /// What a containment check found (or why it could not tell), for people.
        #[serde(skip_serializing_if = "Option::is_none")]
        finding: Option<String>,
        /// The non-2xx answer the runbook expected (`expect:`), shown as expected, not failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        expected: Option<u16>,
        /// The files (names in the secrets folder) that hold its secret outputs.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        secret_files: Vec<String>,
        /// Evidence files it saved.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        evidence: Vec<EvidenceRef>,
    },
    /// One item of a `foreach` ended: durable as soon as it is known, so a killed fan-out resumes
    /// from the items that did not finish.
    ItemFinished {
        /// The step id.
        step: String,
        /// The item's index.
        item: usize,
        /// What became of it.
        status: StepStatus,
        /// Why, when it did not succeed.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Its non-secret outputs (secret ones as [`REDACTED`]).
        outputs: serde_json::Map<String, Value>,
        /// The files (names in the secrets folder) that hold its secret outputs.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        secret_files: Vec<String>,
    },
    /// A step an earlier run of the chain finished, carried into this transcript so that it
    /// alone says what is done (its outputs feed later steps).
    Carried {
        /// The step id.
        step: String,
        /// Always `ok`.
        status: StepStatus,
        /// Its non-secret outputs.
        outputs: serde_json::Map<String, Value>,
        /// Evidence files it saved.
        evidence: Vec<EvidenceRef>,
        /// The files (names in the secrets folder) that hold its secret outputs.
        secret_files: Vec<String>,
        /// The transcript that first recorded it.
        from_file: String,
        /// That record's seq.
        from_seq: u64,
    },
    /// A `foreach` item an earlier run of the chain finished, carried like a step so that a
    /// resume of this run still knows it is done (and where its secrets are).
    CarriedItem {
        /// The step id.
        step: String,
        /// The item's index.
        item: usize,
        /// Its non-secret outputs.
        outputs: serde_json::Map<String, Value>,
        /// The files (names in the secrets folder) that hold its secret outputs.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        secret_files: Vec<String>,
    },
    /// A non-idempotent request an earlier run of the chain sent with no answer: carried until
    /// a run settles it against ESUS, so a resume that stops first cannot forget it.
    Unresolved {
        /// The step id.
        step: String,
        /// The item, for a fan-out.
        #[serde(skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// When the request was first sent.
        sent_at: String,
        /// A rotate: the old key's `supersededBy` before it was sent, as a signed record showed
        /// it (`null`: it had none); absent when no trusted record showed it.
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<Before>,
        /// Ids this incident's own records named for this write (a created key's id, its rename).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        known: Vec<String>,
    },
    /// Before a rotate: what the old key's `supersededBy` was — the comparison that settles a lost
    /// answer (signed before the rotate is sent).
    RotateBefore {
        /// The step id.
        step: String,
        /// The item, for a fan-out.
        #[serde(skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The key about to be rotated.
        key: String,
        /// What the key named as its successor then (`null`: none).
        superseded_by: Option<String>,
    },
    /// A fact the answer to the request before it established, which later containment checks
    /// are proven against: a key the incident saw exist, or a compromised credential ESUS
    /// accepted (by a keyed fingerprint; never the credential).
    Witness {
        /// `key-seen` or `accepted`.
        fact: String,
        /// The key id, or the credential's fingerprint.
        what: String,
    },
    /// A paged audit pull finished: what the evidence file holds and what proves it complete.
    AuditEvidence {
        /// The step id.
        step: String,
        /// The evidence file, relative to the evidence folder.
        file: String,
        /// SHA-256 (hex) of the file.
        sha256: String,
        /// Distinct rows saved (each row once, by `id`).
        rows: u64,
        /// The `total` ESUS reported at the last read.
        reported_total: u64,
        /// Rows read more than once (pages shift while rows arrive) and dropped.
        duplicates_dropped: u64,
        /// Pages read.
        pages: u64,
        /// The oldest `recorded` among the rows, when any.
        window_from: Option<String>,
        /// The newest `recorded` the completeness proof covers.
        window_to: Option<String>,
        /// Whether ESUS's own count proves every row of the window was saved.
        complete: bool,
        /// How completeness was proven, or why it was not.
        proof: String,
    },
    /// What the run proved about containment: written just before `run-finished`.
    Containment {
        /// contained, not-contained or not-applicable.
        state: ContainmentState,
        /// One line for people.
        summary: String,
        /// Each containment check step and what it found.
        checks: Vec<CheckFinding>,
        /// Milliseconds from the start of the run (of the first run, when resumed) to the moment
        /// the last check proved containment.
        time_to_containment_ms: Option<u64>,
        /// When containment was proven (RFC 3339).
        at: Option<String>,
        /// What the verdict does not cover (a containment step an absent input turned off).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        not_covered: Vec<String>,
    },
    /// The run ended.
    RunFinished {
        /// The overall outcome, using the same words as the exit code table.
        outcome: RunOutcome,
        /// The process exit code this outcome maps to.
        exit_code: u8,
    },
}

/// What a key's `supersededBy` was before a rotate: the comparison that settles a lost answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct Before {
    /// The successor it named then, if any.
    pub superseded_by: Option<String>,
}

/// Whether a run proved that what it set out to contain is contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ContainmentState {
    /// Every containment check passed against ESUS.
    Contained,
    /// A check failed or did not run: nothing proves containment.
    NotContained,
    /// The runbook contains nothing (monitoring, reviews, rotations).
    NotApplicable,
}

/// One containment check step and what it found.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CheckFinding {
    /// The check step's id.
    pub step: String,
    /// Its status.
    pub status: StepStatus,
    /// What it found, or why it could not tell.
    pub detail: String,
}

/// A file in the run's evidence folder and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EvidenceRef {
    /// Path relative to the evidence folder.
    pub file: String,
    /// SHA-256 (hex) of the file's bytes.
    pub sha256: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Every step succeeded, ended with an answer the runbook expected, or was skipped by its
    /// condition.
    Success,
    /// Every step ran, but one that failed was allowed to (`on_failure: continue`): the run went
    /// on, and its failure is named first in the summary (exit 1).
    CompletedWithFailures,
    /// A step failed.
    Failed,
    /// The plan found, before anything was sent, that a step cannot run as written (a fan-out
    /// over the cap, a save name leaving the evidence folder, a credential that cannot be a
    /// header): nothing was sent (exit 2).
    Refused,
    /// A confirmation was declined or an approval was missing.
    Declined,
    /// Authentication with ESUS failed.
    AuthFailed,
    /// ESUS could not be reached, or the URL is not ESUS (found before anything was sent).
    Unreachable,
    /// The operator pressed Ctrl-C.
    Interrupted,
}

/// A listener for run events (the transcript, the terminal, a test recorder).
pub trait EventSink: Send + Sync {
    /// Records one event. An error stops the run: a transcript that cannot be written must not be
    /// silently incomplete.
    fn emit(&self, event: &Event) -> std::io::Result<()>;
}
