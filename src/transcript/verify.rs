//! `verify` as a library: checks a transcript and returns a typed [`Verification`].
//!
//! The checks are independent so that one tampering is caught by several of them: the signature
//! (signature_check), the hash chain (chain), and the run's structure — first and last records,
//! runbook digest, confirmation digests, evidence files (checks). The CLI renders the result;
//! resume calls [`verify_transcript`] and decides which problems it can live with.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::TranscriptError;
use super::chain::check_chain;
use super::checks::check_structure;
use super::layout::default_evidence_dir;
use super::signature_check::{
    Checkpoints, SignatureReport, SignatureStatus, Trusted, check_checkpoints, check_signature,
};

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
fn is_chain_problem(kind: ProblemKind) -> bool {
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
    /// ([`super::ancestors::check_ancestors`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<super::ancestors::Ancestor>,
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

/// Verifies the transcript at `path`. Errors only when the transcript itself cannot be read; every
/// finding about its content is in the returned [`Verification`].
pub fn verify_transcript(
    path: &Path,
    options: &VerifyOptions,
) -> Result<Verification, TranscriptError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TranscriptError::io(format!("reading {}", path.display()), e))?;
    let (records, mut problems) = check_chain(&bytes);
    let evidence_dir = options
        .evidence_dir
        .clone()
        .unwrap_or_else(|| default_evidence_dir(path));
    let structure = check_structure(&records, &evidence_dir, options.require_evidence);
    problems.extend(structure.problems);
    problems.sort_by_key(|p| p.line);
    let first = records.first().map(|l| &l.record);
    let operator = first
        .and_then(|r| r.str_field("operator"))
        .map(str::to_string);
    let recorded_key = first
        .and_then(|r| r.str_field("signer"))
        .map(str::to_string);
    let trusted = Trusted::load(
        options.allowed_signers.as_deref(),
        options.trusted_key.as_deref(),
        operator.as_deref(),
        recorded_key.as_deref(),
    )?;
    let (signature, checkpoints) = if options.skip_signature {
        (SignatureReport::skipped(), Checkpoints::default())
    } else {
        let intact_lines = problems
            .iter()
            .filter(|p| is_chain_problem(p.kind))
            .filter_map(|p| p.line)
            .min()
            .map_or(usize::MAX, |l| l - 1);
        (
            check_signature(path, &bytes, &trusted),
            check_checkpoints(&records, &trusted, intact_lines),
        )
    };
    let chain_intact = !problems.iter().any(|p| is_chain_problem(p.kind));
    let signed_records = if signature.status == SignatureStatus::Valid && chain_intact {
        records.len()
    } else {
        checkpoints.covered
    };
    problems.extend(checkpoints.problems.iter().cloned());
    // A final signature that fails, where nothing else names a record: the records after the
    // last valid checkpoint are the ones no signature vouches for — name the first of them.
    if signature.status == SignatureStatus::Invalid
        && !problems.iter().any(|p| p.line.is_some())
        && let Some(first) = records
            .get(
                signed_records
                    .saturating_add(1)
                    .min(records.len().saturating_sub(1)),
            )
            .filter(|_| signed_records > 0)
            .or(records.first())
    {
        let (from, to) = (
            first.record.seq,
            records.last().map_or(first.record.seq, |l| l.record.seq),
        );
        problems.push(Problem::at(
            Some(from),
            first.line,
            signature.problems.first().map_or(ProblemKind::BadSignature, |p| p.kind),
            format!(
                "records seq {from}..{to} are signed by nothing trusted: the final signature fails ({}) and no valid checkpoint covers them",
                signature.detail
            ),
        ));
    }
    problems.sort_by_key(|p| p.line);
    let mut all = signature.problems.clone();
    all.extend(problems);
    Ok(Verification {
        ok: all.is_empty(),
        transcript: path.to_path_buf(),
        events: records.len(),
        complete: structure.complete,
        outcome: structure.outcome,
        operator,
        signature,
        checkpoints,
        signed_records,
        identity_checked: trusted.checks_identity(),
        problems: all,
        warnings: structure.warnings,
        head: records.last().map(|l| l.record.hash.clone()),
        resumes: first.and_then(|r| {
            Some((
                r.str_field("resumes_file")?.to_string(),
                r.str_field("resumes")?.to_string(),
            ))
        }),
        ancestors: Vec::new(),
    })
}
