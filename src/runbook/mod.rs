//! Runbooks: the YAML model, its parser and its validator.

/// A runbook that could not be loaded; carries fully rendered diagnostics.
#[derive(Debug, thiserror::Error)]
#[error("{rendered}")]
pub struct RunbookError {
    /// The diagnostics, rendered with source snippets.
    pub rendered: String,
}
