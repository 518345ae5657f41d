//! Runbooks: the YAML model, its parser and its validator.
//!
//! [`load`] is the front door: text in, a [`validate::Validated`] runbook (model, step graph,
//! per-step facts) or every problem found, rendered with file, line and caret.

pub mod diagnostic;
pub mod model;
pub mod parse;
mod refs;
pub mod span;
pub mod validate;

pub use model::Runbook;
pub use validate::Validated;

/// A runbook that could not be loaded; carries fully rendered diagnostics.
#[derive(Debug, thiserror::Error)]
#[error("{rendered}")]
pub struct RunbookError {
    /// The diagnostics, rendered with source snippets.
    pub rendered: String,
    /// How many problems there were.
    pub count: usize,
}

/// Parses and validates runbook `text`, shown in messages as `name`.
pub fn load(name: &str, text: &str, color: bool) -> Result<Validated, RunbookError> {
    check(text).map_err(|problems| RunbookError {
        rendered: diagnostic::render(name, text, &problems, color),
        count: problems.len(),
    })
}

/// Parses and validates runbook `text`, returning the problems unrendered.
pub fn check(text: &str) -> Result<Validated, Vec<diagnostic::Problem>> {
    let (runbook, map) = parse::parse(text)?;
    validate::validate(runbook, &map, text)
}
