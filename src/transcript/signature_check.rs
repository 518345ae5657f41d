//! The signature part of `verify`: the `.sig` file is an SSHSIG over the transcript's bytes, made
//! by a key we trust.
//!
//! Trust comes from outside the signature, never from the key embedded in it: either an
//! allowed_signers file listing the key for the recorded operator and our namespace, or — without
//! one — the key recorded in the transcript's first event (which shows integrity, and names the
//! key, but not who holds it).

use std::path::Path;

use serde::Serialize;
use ssh_key::{HashAlg, PublicKey, SshSig};

use super::TranscriptError;
use super::allowed_signers::parse_allowed_signers;
use super::sign::NAMESPACE;
use super::verify::{Problem, ProblemKind};
use super::writer::signature_path;

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
    /// It is the key recorded in the transcript's first event.
    RecordedKey,
}

impl SignatureReport {
    pub(crate) fn skipped() -> Self {
        Self::new(SignatureStatus::Skipped, "signature not checked")
    }

    fn new(status: SignatureStatus, detail: impl Into<String>) -> Self {
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

    fn fail(mut self, kind: ProblemKind, detail: impl Into<String>) -> Self {
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

/// Checks `<transcript>.sig` against `bytes` (the transcript as read).
pub(crate) fn check_signature(
    path: &Path,
    bytes: &[u8],
    allowed_signers: Option<&Path>,
    operator: Option<&str>,
    recorded_key: Option<&str>,
) -> Result<SignatureReport, TranscriptError> {
    let report = SignatureReport::new(SignatureStatus::Invalid, "");
    let sig_path = signature_path(path);
    let Ok(armored) = std::fs::read_to_string(&sig_path) else {
        let what = format!("unsigned: no signature file {}", sig_path.display());
        return Ok(report.fail(ProblemKind::Unsigned, what));
    };
    let sig = match SshSig::from_pem(armored.trim()) {
        Ok(sig) => sig,
        Err(e) => {
            return Ok(report.fail(
                ProblemKind::BadSignature,
                format!("unreadable signature: {e}"),
            ));
        }
    };
    let signer = PublicKey::new(sig.public_key().clone(), "");
    let mut report = SignatureReport {
        key: signer.to_openssh().ok(),
        fingerprint: Some(signer.fingerprint(HashAlg::Sha256).to_string()),
        principal: operator.map(str::to_string),
        ..report
    };
    if sig.namespace() != NAMESPACE {
        let what = format!(
            "signature namespace is {:?}, not {NAMESPACE:?}",
            sig.namespace()
        );
        return Ok(report.fail(ProblemKind::BadSignature, what));
    }
    let (trusted, trust) = match trusted_key(&signer, allowed_signers, operator, recorded_key)? {
        Ok(found) => found,
        Err(why) => return Ok(report.fail(ProblemKind::UntrustedSigner, why)),
    };
    // Verify with the trusted key: ssh-key checks that it is the key in the signature, too.
    if trusted.verify(NAMESPACE, bytes, &sig).is_err() {
        let what = "signature mismatch: the transcript was modified after it was signed";
        return Ok(report.fail(ProblemKind::BadSignature, what));
    }
    let fingerprint = report.fingerprint.clone().unwrap_or_default();
    report.status = SignatureStatus::Valid;
    report.trust = Some(trust);
    report.detail = match trust {
        Trust::AllowedSigners => format!(
            "good signature by {fingerprint}, listed in the allowed signers for {}",
            operator.unwrap_or("?")
        ),
        Trust::RecordedKey => format!(
            "good signature by {fingerprint}, the key recorded in the first event \
             (pass --allowed-signers to check whom it belongs to)"
        ),
    };
    Ok(report)
}

/// The key to verify with, or why there is none; `Err` of the outer result for an unreadable
/// allowed_signers file.
fn trusted_key(
    signer: &PublicKey,
    allowed_signers: Option<&Path>,
    operator: Option<&str>,
    recorded_key: Option<&str>,
) -> Result<Result<(PublicKey, Trust), String>, TranscriptError> {
    let fingerprint = signer.fingerprint(HashAlg::Sha256);
    if let Some(file) = allowed_signers {
        let text = std::fs::read_to_string(file)
            .map_err(|e| TranscriptError::io(format!("reading {}", file.display()), e))?;
        let Some(operator) = operator else {
            return Ok(Err(
                "the transcript records no operator to look up in the allowed signers".into(),
            ));
        };
        let (entries, _) = parse_allowed_signers(&text);
        return Ok(entries
            .into_iter()
            .find(|e| e.allows(operator, NAMESPACE, signer))
            .map(|e| (e.key, Trust::AllowedSigners))
            .ok_or_else(|| {
                format!(
                    "signed by {fingerprint}, which {} does not list for principal {operator:?} and namespace {NAMESPACE:?}",
                    file.display()
                )
            }));
    }
    let recorded = recorded_key.and_then(|k| PublicKey::from_openssh(k).ok());
    Ok(match recorded {
        Some(key) if key.key_data() == signer.key_data() => Ok((key, Trust::RecordedKey)),
        Some(key) => Err(format!(
            "signed by {fingerprint}, but the first event records key {}",
            key.fingerprint(HashAlg::Sha256)
        )),
        None => Err(format!(
            "signed by {fingerprint}, but the first event records no readable signer key; pass --allowed-signers"
        )),
    })
}
