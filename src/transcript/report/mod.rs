//! `report`: the post-mortem of an incident — every leg of its run folder on one time axis — in
//! Markdown, as one self-contained HTML file, or as JSON.
//!
//! [`model`] reads one leg's records into a [`model::Timeline`] (who, when, steps, approvals,
//! results, containment, evidence); [`incident`] places the legs on one axis from the incident's
//! start and checks the evidence files; `sections` turns that into the tables both text layouts
//! share, and the `markdown`, `html` and `json` modules only lay it out. Every value in a
//! transcript is untrusted text — runbook text, URLs, server bodies — so every layout escapes
//! everything.

mod axis;
mod decisions;
mod describe;
mod escape;
mod fields;
mod html;
pub mod incident;
mod json;
pub mod legs;
mod markdown;
pub mod model;
mod sections;
mod svg;

use super::findings::Verification;
use super::layout::default_evidence_dir;
use super::record::Record;
use incident::{Incident, LegInput};

/// The report's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Markdown (GitHub-flavoured tables).
    #[default]
    Markdown,
    /// One HTML file with inline CSS and no external assets.
    Html,
    /// One JSON document.
    Json,
}

/// Renders the report of one transcript read on its own (its folder's evidence checked).
pub fn render_report(
    records: &[Record],
    verification: &Verification,
    format: ReportFormat,
) -> String {
    let file = verification
        .transcript
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let incident = Incident::build(
        vec![LegInput {
            file,
            records: records.to_vec(),
            verification: verification.clone(),
        }],
        verification,
        &default_evidence_dir(&verification.transcript),
    );
    render_incident(&incident, format)
}

/// Renders the report of a whole incident.
pub fn render_incident(incident: &Incident, format: ReportFormat) -> String {
    match format {
        ReportFormat::Markdown => markdown::render(incident),
        ReportFormat::Html => html::render(incident),
        ReportFormat::Json => json::render(incident),
    }
}
