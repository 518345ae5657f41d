//! The top-level error and the one place that maps failures to documented exit codes.

use std::process;

/// Documented process exit codes (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything asked for succeeded.
    Success = 0,
    /// A step failed.
    StepFailed = 1,
    /// Usage, runbook or input error: nothing was sent.
    Usage = 2,
    /// A confirmation was declined or a required approval is missing.
    Declined = 3,
    /// Authentication or authorization with ESUS failed.
    Auth = 4,
    /// A transcript failed verification (or is unsigned / incomplete).
    Invalid = 5,
    /// ESUS could not be reached, the TLS handshake failed, or the URL is not ESUS: nothing was
    /// sent. Worth retrying once the network or the URL is fixed.
    Unreachable = 6,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

impl ExitCode {
    /// The outcome word machines read (`--output json`), kebab-case like the run outcomes.
    pub fn word(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::StepFailed => "failed",
            ExitCode::Usage => "usage-error",
            ExitCode::Declined => "declined",
            ExitCode::Auth => "auth-failed",
            ExitCode::Invalid => "invalid",
            ExitCode::Unreachable => "unreachable",
            ExitCode::Interrupted => "interrupted",
        }
    }
}

impl From<ExitCode> for process::ExitCode {
    fn from(code: ExitCode) -> Self {
        process::ExitCode::from(code as u8)
    }
}

/// Any failure that reaches the edge of the program.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A runbook could not be read, parsed or validated; the diagnostics were already rendered.
    #[error("{0}")]
    Runbook(#[from] crate::runbook::RunbookError),
    /// The command line or an input value was wrong.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// ESUS could not be reached before the run (a login with no answer: refused connection,
    /// TLS failure, connection lost).
    #[error("{0}")]
    Unreachable(String),
    /// ESUS refused the operator's credentials, or there were none.
    #[error("authentication: {0}")]
    Auth(String),
    /// A transcript is invalid (tampered, unsigned where a signature is required, inconsistent).
    #[error("{0}")]
    Invalid(String),
    /// The simulator failed to start or serve.
    #[error("simulator: {0}")]
    Sim(String),
    /// Ctrl-C before the run started (at a prompt for a token or an input): nothing was sent.
    #[error("{0}")]
    Interrupted(String),
    /// The person asked said no (or nobody could be asked): nothing was done.
    #[error("{0}")]
    Declined(String),
    /// A transcript could not be read, written or signed, or a signing key could not be used.
    #[error("{0}")]
    Transcript(#[from] crate::transcript::TranscriptError),
}

impl Error {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Runbook(_) | Error::Usage(_) => ExitCode::Usage,
            Error::Auth(_) => ExitCode::Auth,
            Error::Unreachable(_) => ExitCode::Unreachable,
            Error::Invalid(_) => ExitCode::Invalid,
            Error::Io { .. } | Error::Sim(_) => ExitCode::StepFailed,
            Error::Interrupted(_) => ExitCode::Interrupted,
            Error::Declined(_) => ExitCode::Declined,
            // A key that cannot be used is a usage problem; a transcript that cannot be read
            // or checked is never valid.
            Error::Transcript(e) if e.is_key_problem() => ExitCode::Usage,
            Error::Transcript(_) => ExitCode::Invalid,
        }
    }

    /// Ctrl-C at a prompt before anything was sent.
    pub fn interrupted_before_start() -> Self {
        Error::Interrupted("interrupted by Ctrl-C before the run started: nothing was sent".into())
    }

    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
