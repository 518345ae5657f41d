//! Why the simulator can fail to start: one error type for its library API, converted to the
//! top-level [`crate::Error::Sim`] at the command-line edge.

use std::path::PathBuf;

/// A failure to configure or start the simulator (never a failure of a simulated request: those
/// are HTTP answers).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A `--fault` specification could not be parsed.
    #[error("invalid fault `{spec}`: {reason}")]
    Fault {
        /// The specification as given.
        spec: String,
        /// What is wrong and what is accepted instead.
        reason: String,
    },
    /// A scenario file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    ScenarioRead {
        /// The scenario file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A scenario is not valid YAML of the expected shape, or refers to things it does not define.
    #[error("invalid scenario {origin}: {reason}")]
    Scenario {
        /// The file, or "built-in".
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The listen address is not a loopback address.
    #[error(
        "refusing to listen on {0}: the simulator binds loopback addresses only (127.0.0.1, ::1)"
    )]
    NotLoopback(std::net::SocketAddr),
    /// Binding or accepting failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Generating the TLS certificate or configuring TLS failed.
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    /// Writing an output file (ready file, CA certificate) failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other internal failure (e.g. password hashing).
    #[error("{0}")]
    Internal(String),
}

impl From<SimError> for crate::Error {
    fn from(err: SimError) -> Self {
        crate::Error::Sim(err.to_string())
    }
}
