//! The plan of a run — its order, parallel layers, destructive steps and the requests already
//! known — and the first event that opens a run. Dry-runs and live runs share both, so what a
//! dry-run shows is what a live run plans.

use serde_json::Value;

use super::context::Context;
use super::executor::RunMeta;
use super::inputs::Inputs;
use super::render;
use super::shared::Shared;
use crate::esus::actions::Effect;
use crate::event::Event;

/// The step's name with templates rendered (secrets cannot appear: validation forbids them).
pub fn display_name(shared: &Shared, ctx: &Context, i: usize) -> String {
    let step = &shared.valid.runbook.steps[i];
    match shared.engine.render_str(&step.name, ctx.display()) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => step.name.clone(),
    }
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
    }
}

/// The plan: order, parallel layers, destructive steps, and the requests already known.
pub fn plan_event(shared: &Shared, ctx: &Context) -> Event {
    let valid = &shared.valid;
    let id = |i: usize| valid.runbook.steps[i].id.clone();
    let known_requests = valid
        .graph
        .order()
        .iter()
        .filter(|&&i| valid.runbook.steps[i].foreach.is_none())
        .filter_map(|&i| {
            let req = render::request(
                &shared.engine,
                ctx,
                &valid.runbook.steps[i],
                &valid.steps[i],
                None,
            )
            .ok()?;
            Some((id(i), req.view(shared.client.url(&req).as_str())))
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
    }
}
