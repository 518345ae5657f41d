//! What `verify` finds, as types: the problems, the signature and checkpoint reports, the
//! earlier links of a chain, and the whole verification. Below every check, so the checks and
//! the verifier that runs them need not import each other.

use std::path::PathBuf;

use serde::Serialize;

/// What to check and against what.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// An OpenSSH allowed_signers file: the signer must be listed for the recorded operator and
    /// the `esus-ir-transcript` namespace. Without it, the key recorded in the first event is used.
    pub allowed_signers: Option<PathBuf>,
    /// Where evidence files are; default `<transcript's folder>/evidence`.
    pub evidence_dir: Option<PathBuf>,
    /// Treat a missing evidence file as a problem rather than a warning.
    pub require_evidence: bool,
    /// Trust exactly this key (OpenSSH public key), for any operator: resume trusts the
    /// operator's own signing key unless given allowed signers. Ignored with `allowed_signers`.
    pub trusted_key: Option<String>,
    /// Do not check the signature (tests of the chain alone).
    pub skip_signature: bool,
}

/// Problems of the chain itself: after one, no later record is vouched for by a checkpoint.
pub(super) fn is_chain_problem(kind: ProblemKind) -> bool {
    matches!(
        kind,
        ProblemKind::Malformed
            | ProblemKind::NotCanonical
            | ProblemKind::Sequence
            | ProblemKind::BrokenChain
            | ProblemKind::HashMismatch
            | ProblemKind::CutLine
    )
}

/// The result of verifying a transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// True when there is no problem: signed, intact, complete.
    pub ok: bool,
    /// The transcript checked.
    pub transcript: PathBuf,
    /// Number of lines that parsed as records.
    pub events: usize,
    /// Whether the transcript ends with a matching `run-finished` record.
    pub complete: bool,
    /// The `run-finished` outcome, when there is one.
    pub outcome: Option<String>,
    /// The operator recorded in the first event.
    pub operator: Option<String>,
    /// Whose approval the run acted on, as recorded: the signed plan and its approvers, or the
    /// signed policy and its signer, each with when the run checked it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// What the signature check found.
    pub signature: SignatureReport,
    /// What the signed checkpoints prove (a killed run's prefix is signed up to the last one).
    pub checkpoints: Checkpoints,
    /// How many records (from the first) a trusted key signed: all of them with a valid final
    /// signature over an intact chain, else those the last valid checkpoint covers.
    pub signed_records: usize,
    /// Whether the signer's identity was checked (allowed signers, or a given key), not only the
    /// transcript's integrity against the key it records.
    pub identity_checked: bool,
    /// Everything wrong, whole-file problems (signature) first, then by line.
    pub problems: Vec<Problem>,
    /// Things worth knowing that do not make the transcript invalid (e.g. a missing evidence file).
    pub warnings: Vec<String>,
    /// The hash of the last record (what a run resuming this one records as `resumes`).
    #[serde(skip)]
    pub head: Option<String>,
    /// The transcript this one resumes and the record it resumed at (`resumes_file`, `resumes`).
    #[serde(skip)]
    pub resumes: Option<(String, String)>,
    /// The earlier links of the chain, newest first, when they were checked
    /// (`check_ancestors`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<Ancestor>,
}

impl Verification {
    /// The first problem that points at a record.
    pub fn first_bad_event(&self) -> Option<&Problem> {
        self.problems.iter().find(|p| p.line.is_some())
    }

    /// True when every problem is one a killed run leaves behind (no signature, no
    /// `run-finished`), i.e. the transcript is an intact prefix. Resume accepts such transcripts.
    pub fn is_intact_prefix(&self) -> bool {
        self.problems
            .iter()
            .all(|p| matches!(p.kind, ProblemKind::Unsigned | ProblemKind::Incomplete))
            && !self
                .problems
                .iter()
                .any(|p| p.what.contains("no final newline"))
    }
}

/// One thing wrong with a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The record's sequence number (as recorded, else as expected), when it concerns one.
    pub seq: Option<u64>,
    /// The 1-based line number, when it concerns one.
    pub line: Option<usize>,
    /// The class of problem, for machines.
    pub kind: ProblemKind,
    /// A sentence for people.
    pub what: String,
}

impl Problem {
    /// A problem about one record.
    pub fn at(seq: Option<u64>, line: usize, kind: ProblemKind, what: impl Into<String>) -> Self {
        Problem {
            seq,
            line: Some(line),
            kind,
            what: what.into(),
        }
    }

    /// A problem about the whole file.
    pub fn file(kind: ProblemKind, what: impl Into<String>) -> Self {
        Problem {
            seq: None,
            line: None,
            kind,
            what: what.into(),
        }
    }
}

/// Classes of problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// No `.sig` file.
    Unsigned,
    /// The signature does not verify, or is not in the right namespace.
    BadSignature,
    /// The signature verifies but the key is not trusted for the operator.
    UntrustedSigner,
    /// A line is not a record.
    Malformed,
    /// A line's bytes differ from its canonical form.
    NotCanonical,
    /// A sequence number is out of order.
    Sequence,
    /// A `prev` does not match the previous hash.
    BrokenChain,
    /// A record's hash does not match its content.
    HashMismatch,
    /// The transcript does not end with a matching `run-finished` record.
    Incomplete,
    /// The last line has no newline: the file was cut in the middle of a record.
    CutLine,
    /// Records are not where they must be (first record, duplicate run-started…).
    Structure,
    /// The embedded runbook text does not match its digest.
    RunbookDigest,
    /// A request differs from what the approval it names covers, or a confirmation's digest
    /// does not match the requests it lists.
    ConfirmationMismatch,
    /// A request that changes ESUS is sent under no approval that covers it (none named, an
    /// unknown one, one of another step, or one that was declined).
    Unapproved,
    /// An evidence file is missing (with `require_evidence`), unsafe, or does not match its digest.
    Evidence,
}

/// What the signature check found.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    /// Valid, missing, invalid or skipped.
    pub status: SignatureStatus,
    /// The signing key (OpenSSH format), when the signature could be read.
    pub key: Option<String>,
    /// Its SHA-256 fingerprint.
    pub fingerprint: Option<String>,
    /// Where trust in the key came from, when it was trusted.
    pub trust: Option<Trust>,
    /// The principal the key was accepted for (the recorded operator).
    pub principal: Option<String>,
    /// A sentence for people.
    pub detail: String,
    #[serde(skip)]
    pub(crate) problems: Vec<Problem>,
}

/// Outcome of the signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// Signed by a trusted key over exactly these bytes.
    Valid,
    /// There is no signature file.
    Missing,
    /// The signature is unreadable, wrong, or by an untrusted key.
    Invalid,
    /// Not checked (on request).
    Skipped,
}

/// Where trust in the signing key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// An allowed_signers file lists it for the operator and namespace.
    AllowedSigners,
    /// It is the key recorded in the transcript's first event (integrity, not identity).
    RecordedKey,
    /// It is the one key the caller trusts (resume: the operator's own signing key).
    GivenKey,
}

impl SignatureReport {
    pub(crate) fn skipped() -> Self {
        Self::new(SignatureStatus::Skipped, "signature not checked")
    }

    pub(super) fn new(status: SignatureStatus, detail: impl Into<String>) -> Self {
        SignatureReport {
            status,
            key: None,
            fingerprint: None,
            trust: None,
            principal: None,
            detail: detail.into(),
            problems: Vec::new(),
        }
    }

    pub(super) fn fail(mut self, kind: ProblemKind, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        self.status = if kind == ProblemKind::Unsigned {
            SignatureStatus::Missing
        } else {
            SignatureStatus::Invalid
        };
        self.problems.push(Problem::file(kind, detail.clone()));
        self.detail = detail;
        self
    }
}

/// What the checkpoints of a transcript prove.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checkpoints {
    /// Checkpoint records in the transcript.
    pub count: usize,
    /// Those whose signature verifies with a trusted key, over this chain and run.
    pub valid: usize,
    /// The seq of the last valid checkpoint before any problem.
    pub last_valid_seq: Option<u64>,
    /// How many records (from the first) the last valid checkpoint covers.
    pub covered: usize,
    #[serde(skip)]
    pub(crate) problems: Vec<Problem>,
}

/// One earlier link of the chain, as checked.
#[derive(Debug, Clone, Serialize)]
pub struct Ancestor {
    /// Its file name, in the same run folder.
    pub file: String,
    /// Whether it is there to check.
    pub present: bool,
    /// Whether it ends at the record its successor says it resumed (false when absent).
    pub linked: bool,
    /// Whether it verifies on its own (signed, intact, complete).
    pub valid: bool,
    /// Whether it is an intact prefix: a killed run, unsigned or incomplete, nothing altered.
    pub intact_prefix: bool,
    /// Its records, and how many a trusted key signed.
    pub records: usize,
    /// How many of them a trusted key signed.
    pub signed_records: usize,
}
