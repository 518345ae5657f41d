//! The records that open a run: `run-started`, and the plan shown before the first request —
//! made by the one planner, so the plan a transcript records is the plan the run executes.

use super::shared::Shared;
use crate::esus::actions::Effect;
use crate::event::{Event, RunMode};
use crate::plan::inputs::Inputs;
use crate::plan::{StepPlan, Work};

/// Facts about the run for its first event.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Unique run id.
    pub run_id: String,
    /// The runbook text as loaded.
    pub runbook_text: String,
    /// Who runs it.
    pub operator: String,
    /// Where.
    pub host: String,
    /// Live or drill (dry-runs use [`super::dry_run`]).
    pub mode: RunMode,
    /// The head hash of the transcript this run resumes.
    pub resumes: Option<String>,
    /// `--incident-id`: the incident this run belongs to (not the signer's identity).
    pub incident_id: Option<String>,
    /// When resuming: the file name of the transcript this run continues (same run folder).
    pub resumes_file: Option<String>,
    /// When resuming: when the first run of the chain started.
    pub chain_started_at: Option<String>,
}

/// The first event of a run.
pub fn run_started(shared: &Shared, inputs: &Inputs, meta: &RunMeta) -> Event {
    Event::RunStarted {
        runbook_name: shared.valid.runbook.name.clone(),
        runbook_sha256: crate::transcript::sha256_hex(meta.runbook_text.as_bytes()),
        runbook_text: meta.runbook_text.clone(),
        operator: meta.operator.clone(),
        host: meta.host.clone(),
        base_url: shared.client.base().to_string(),
        mode: meta.mode,
        inputs: inputs.display.clone(),
        resumes: meta.resumes.clone(),
        incident_id: meta.incident_id.clone(),
        resumes_file: meta.resumes_file.clone(),
        chain_started_at: meta.chain_started_at.clone(),
        run_id: Some(meta.run_id.clone()),
        incident: Some(shared.planner.incident().to_string()),
        evidence_recipients: shared
            .folders
            .seal
            .as_ref()
            .map(|r| r.shown().to_vec())
            .unwrap_or_default(),
    }
}

/// The plan: order, parallel layers, destructive steps, and the requests already known — from
/// the plans made ahead of the run.
pub fn plan_event(shared: &Shared, plans: &[StepPlan], not_done: Vec<String>) -> Event {
    let valid = &shared.valid;
    let id = |i: usize| valid.runbook.steps[i].id.clone();
    let known_requests = plans
        .iter()
        .filter_map(|p| match &p.work {
            Work::One(r) | Work::Revoked { get: r, .. } => {
                Some((p.id.clone(), shared.planner.view(r)))
            }
            _ => None,
        })
        .collect();
    Event::Plan {
        order: valid.graph.order().iter().map(|&i| id(i)).collect(),
        layers: valid
            .graph
            .layers()
            .into_iter()
            .map(|l| l.into_iter().map(id).collect())
            .collect(),
        destructive: (0..valid.runbook.steps.len())
            .filter(|&i| valid.steps[i].effect == Effect::Destructive)
            .map(id)
            .collect(),
        known_requests,
        not_done,
    }
}
