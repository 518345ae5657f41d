//! The signed, hash-chained transcript of a run (issue 5).
//!
//! A run's events become JSON Lines records, each carrying the previous record's hash
//! ([`record`], [`canonical`]), written as they happen by [`TranscriptWriter`] and signed at the
//! end with an SSHSIG ([`sign`]). [`verify_transcript`] checks a transcript offline; [`summarize`]
//! reads back what resume needs; [`report`] renders the post-mortem timeline. The format is
//! specified in docs/transcript-format.md.

mod allowed_signers;
mod ancestors;
pub mod canonical;
pub mod canonical_ser;
mod chain;
pub mod checkpoint;
mod checks;
mod findings;
pub(crate) mod fsutil;
pub mod layout;
mod read;
pub mod record;
pub mod report;
pub mod sign;
mod signature_check;
pub mod sshsig;
mod summary;
mod verify;
mod writer;

use std::path::PathBuf;

pub use allowed_signers::{AllowedSigner, parse_allowed_signers};
pub use ancestors::check_ancestors;
pub use canonical::{canonical_json, request_digest, sha256_hex};
pub use findings::{
    Ancestor, Checkpoints, Problem, ProblemKind, SignatureReport, SignatureStatus, Trust,
    Verification, VerifyOptions,
};
pub use read::{read_transcript, read_transcript_prefix};
pub use record::{GENESIS_PREV, Record};
pub use sign::{
    KeyCreated, NAMESPACE, Signer, SignerSource, allowed_signers_line, default_key_path,
    default_operator,
};
pub use summary::{FinishedStep, PendingRequest, TranscriptSummary, summarize};
pub use verify::verify_transcript;
pub use writer::{Clock, KILL_AFTER_VAR, TranscriptWriter, signature_path};

/// Failures of the transcript layer (findings about a transcript's content are not errors: they
/// are [`Problem`]s in a [`Verification`]).
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A signing key could not be used.
    #[error("signing key {}: {what}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        what: String,
    },
    /// An encrypted key and no passphrase.
    #[error("signing key {} is encrypted: set ESUS_IR_SIGN_KEY_PASSPHRASE to its passphrase", .0.display())]
    PassphraseNeeded(PathBuf),
    /// `keygen` would overwrite a key.
    #[error("{} already exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    /// No platform config folder for the default key.
    #[error(
        "no config folder for the default signing key: pass --sign-key PATH or set ESUS_IR_SIGN_KEY"
    )]
    NoConfigDir,
    /// Creating or encoding a key or signature failed.
    #[error("signing: {0}")]
    Sign(String),
    /// A transcript line is not a valid record in the chain.
    #[error("{}:{line}: {what}", path.display())]
    Malformed {
        /// The transcript.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// Records cannot be appended here.
    #[error("transcript: {0}")]
    Sequence(String),
}

impl TranscriptError {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TranscriptError::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the error is about configuring the signing key (a usage error, not an invalid
    /// transcript).
    pub fn is_key_problem(&self) -> bool {
        matches!(
            self,
            TranscriptError::Key { .. }
                | TranscriptError::PassphraseNeeded(_)
                | TranscriptError::Exists(_)
                | TranscriptError::NoConfigDir
        )
    }
}
