//! `report`: a post-mortem timeline of a run, in Markdown or as one self-contained HTML file.
//!
//! [`model`] reads the records into a [`model::Timeline`] (who, when, steps, approvals, results,
//! containment, evidence); the `markdown` and `html` modules only lay it out. Every value in a transcript
//! is untrusted text — runbook text, URLs, server bodies — so both renderers escape everything.

mod escape;
mod html;
mod markdown;
pub mod model;
mod svg;

use super::findings::Verification;
use super::record::Record;

/// The report's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Markdown (GitHub-flavoured tables).
    #[default]
    Markdown,
    /// One HTML file with inline CSS and no external assets.
    Html,
}

/// Renders the report of `records`, with the result of verifying them.
pub fn render_report(
    records: &[Record],
    verification: &Verification,
    format: ReportFormat,
) -> String {
    let timeline = model::Timeline::from_records(records);
    match format {
        ReportFormat::Markdown => markdown::render(&timeline, verification),
        ReportFormat::Html => html::render(&timeline, verification),
    }
}
