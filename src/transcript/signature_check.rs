//! The signature part of `verify`: the `.sig` file is an SSHSIG over the transcript's bytes, made
//! by a key we trust.
//!
//! Trust comes from outside the signature, never from the key embedded in it: either an
//! allowed_signers file listing the key for the recorded operator and our namespace, one key the
//! caller names, or — without either — the key recorded in the transcript's first event (which
//! shows integrity, and names the key, but not who holds it). The same trust applies to the
//! final `.sig` and to every checkpoint.

use std::path::Path;

use ssh_key::{HashAlg, PublicKey};

use super::TranscriptError;
use super::allowed_signers::parse_allowed_signers;
use super::chain::Located;
use super::checkpoint;
use super::findings::{Checkpoints, Problem, ProblemKind, SignatureReport, SignatureStatus, Trust};
use super::sign::NAMESPACE;
use super::sshsig::parse_armored;
use super::writer::signature_path;

/// The keys a transcript's signatures are checked against: an allowed_signers file (for the
/// recorded operator and our namespace), one given key (resume: the operator's own), or —
/// without either — the key recorded in the first event.
pub(crate) struct Trusted {
    source: Source,
    operator: Option<String>,
}

enum Source {
    AllowedSigners(
        std::path::PathBuf,
        Vec<super::allowed_signers::AllowedSigner>,
    ),
    Given(Option<PublicKey>),
    Recorded(Option<PublicKey>),
}

impl Trusted {
    /// Reads the allowed_signers file, if one is given (failing only when it cannot be read).
    pub(crate) fn load(
        allowed_signers: Option<&Path>,
        trusted_key: Option<&str>,
        operator: Option<&str>,
        recorded_key: Option<&str>,
    ) -> Result<Self, TranscriptError> {
        let source = match (allowed_signers, trusted_key) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| TranscriptError::io(format!("reading {}", file.display()), e))?;
                Source::AllowedSigners(file.to_path_buf(), parse_allowed_signers(&text).0)
            }
            (None, Some(key)) => Source::Given(PublicKey::from_openssh(key).ok()),
            (None, None) => {
                Source::Recorded(recorded_key.and_then(|k| PublicKey::from_openssh(k).ok()))
            }
        };
        Ok(Trusted {
            source,
            operator: operator.map(str::to_string),
        })
    }

    /// Whether identity (not only integrity) is checked.
    pub(crate) fn checks_identity(&self) -> bool {
        !matches!(self.source, Source::Recorded(_))
    }

    /// Whether `signer` is trusted, and why (or why not).
    pub(crate) fn trust(&self, signer: &PublicKey) -> Result<Trust, String> {
        let fingerprint = signer.fingerprint(HashAlg::Sha256);
        match &self.source {
            Source::AllowedSigners(file, entries) => {
                let Some(operator) = self.operator.as_deref() else {
                    return Err(
                        "the transcript records no operator to look up in the allowed signers"
                            .into(),
                    );
                };
                if entries
                    .iter()
                    .any(|e| e.allows(operator, NAMESPACE, signer))
                {
                    Ok(Trust::AllowedSigners)
                } else {
                    Err(format!(
                        "signed by {fingerprint}, which {} does not list for principal {operator:?} and namespace {NAMESPACE:?}",
                        file.display()
                    ))
                }
            }
            Source::Given(Some(key)) if key.key_data() == signer.key_data() => Ok(Trust::GivenKey),
            Source::Given(Some(key)) => Err(format!(
                "signed by {fingerprint}, not by the trusted key {}",
                key.fingerprint(HashAlg::Sha256)
            )),
            Source::Given(None) => Err("the trusted key given is unreadable".into()),
            Source::Recorded(Some(key)) if key.key_data() == signer.key_data() => {
                Ok(Trust::RecordedKey)
            }
            Source::Recorded(Some(key)) => Err(format!(
                "signed by {fingerprint}, but the first event records key {}",
                key.fingerprint(HashAlg::Sha256)
            )),
            Source::Recorded(None) => Err(format!(
                "signed by {fingerprint}, but the first event records no readable signer key; pass --allowed-signers"
            )),
        }
    }
}

/// Checks `<transcript>.sig` against `bytes` (the transcript as read).
pub(crate) fn check_signature(path: &Path, bytes: &[u8], trusted: &Trusted) -> SignatureReport {
    let report = SignatureReport::new(SignatureStatus::Invalid, "");
    let sig_path = signature_path(path);
    let Ok(armored) = std::fs::read_to_string(&sig_path) else {
        let what = format!("unsigned: no signature file {}", sig_path.display());
        return report.fail(ProblemKind::Unsigned, what);
    };
    let sig = match parse_armored(&armored) {
        Ok(sig) => sig,
        Err(e) => {
            return report.fail(
                ProblemKind::BadSignature,
                format!("unreadable signature {}: {e}", sig_path.display()),
            );
        }
    };
    let signer = sig.public_key();
    let mut report = SignatureReport {
        key: signer.to_openssh().ok(),
        fingerprint: Some(signer.fingerprint(HashAlg::Sha256).to_string()),
        principal: trusted.operator.clone(),
        ..report
    };
    let trust = match trusted.trust(&signer) {
        Ok(trust) => trust,
        Err(why) => return report.fail(ProblemKind::UntrustedSigner, why),
    };
    if signer.verify(NAMESPACE, bytes, sig.inner()).is_err() {
        let what = "signature mismatch: the transcript was modified after it was signed (or the signature is another run's)";
        return report.fail(ProblemKind::BadSignature, what);
    }
    let fingerprint = report.fingerprint.clone().unwrap_or_default();
    report.status = SignatureStatus::Valid;
    report.trust = Some(trust);
    report.detail = match trust {
        Trust::AllowedSigners => format!(
            "good signature by {fingerprint}, listed in the allowed signers for {}",
            trusted.operator.as_deref().unwrap_or("?")
        ),
        Trust::GivenKey => format!("good signature by {fingerprint}, the trusted key"),
        Trust::RecordedKey => format!(
            "good signature by {fingerprint}, the key recorded in the first event: this proves \
             integrity, not identity (pass --allowed-signers to check whom the key belongs to)"
        ),
    };
    report
}

/// Checks every checkpoint: signature, signer, chain head, position and run. A checkpoint is
/// *valid* only while the chain before it is intact (`intact_lines`: lines before the first
/// chain problem) and every earlier checkpoint was valid. The first failure is a problem naming
/// the first record it no longer vouches for; checkpoints after it are counted, not checked.
pub(crate) fn check_checkpoints(
    records: &[Located],
    trusted: &Trusted,
    intact_lines: usize,
) -> Checkpoints {
    let mut out = Checkpoints::default();
    let run_id = records
        .first()
        .filter(|l| l.line == 1)
        .map(|l| l.record.hash.clone());
    let mut failed: Option<Problem> = None;
    for loc in records.iter().filter(|l| l.record.kind == checkpoint::KIND) {
        out.count += 1;
        if loc.line > intact_lines || failed.is_some() {
            // Past a break in the chain, or a checkpoint that failed, nothing is vouched for
            // (and what broke is reported): later checkpoints are counted, not checked.
            continue;
        }
        let r = &loc.record;
        let result = checkpoint::check(r.seq, &r.prev, &r.data, run_id.as_deref())
            .map_err(|why| (ProblemKind::BadSignature, why))
            .and_then(|key| {
                trusted
                    .trust(&key)
                    .map(|_| ())
                    .map_err(|why| (ProblemKind::UntrustedSigner, why))
            });
        match result {
            Ok(()) => {
                out.valid += 1;
                out.last_valid_seq = Some(r.seq);
                out.covered = usize::try_from(r.seq).unwrap_or(usize::MAX);
            }
            Err((kind, why)) => {
                // A checkpoint over another head (or run) vouches for nothing since the last
                // good one: the first record after that is the first that may be bad.
                let problem = if why.contains("another chain head") || why.contains("another run") {
                    let from = out.last_valid_seq.map_or(0, |s| s + 1);
                    let first = records.iter().find(|l| l.record.seq >= from).unwrap_or(loc);
                    Problem::at(
                        Some(first.record.seq),
                        first.line,
                        kind,
                        format!(
                            "records seq {from}..{} are not what the checkpoint at seq {} signed: {why}",
                            r.seq.saturating_sub(1),
                            r.seq
                        ),
                    )
                } else {
                    Problem::at(
                        Some(r.seq),
                        loc.line,
                        kind,
                        format!("checkpoint at seq {}: {why}", r.seq),
                    )
                };
                failed = Some(problem);
            }
        }
    }
    out.problems.extend(failed);
    out
}
