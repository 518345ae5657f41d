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

/// Parses and validates runbook `text`, shown in messages as `name`. A leading UTF-8 byte-order
/// mark is skipped.
pub fn load(name: &str, text: &str, color: bool) -> Result<Validated, RunbookError> {
    let body = strip_bom(text);
    check_body(body).map_err(|problems| RunbookError {
        rendered: diagnostic::render(name, body, &problems, color),
        count: problems.len(),
    })
}

/// Parses and validates runbook `text`, returning the problems unrendered (spans are offsets into
/// `text`, a leading byte-order mark included).
pub fn check(text: &str) -> Result<Validated, Vec<diagnostic::Problem>> {
    let body = strip_bom(text);
    let shift = text.len() - body.len();
    check_body(body).map_err(|mut problems| {
        for p in &mut problems {
            p.span.offset += shift;
        }
        problems
    })
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Every problem at once: structural ones, and the meaning checks of what did deserialize.
fn check_body(text: &str) -> Result<Validated, Vec<diagnostic::Problem>> {
    let parsed = parse::parse_partial(text)?;
    validate::validate_parsed(parsed, text)
}
