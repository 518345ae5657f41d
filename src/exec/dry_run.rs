//! `--dry-run`: the plan of every step a live run would send, in order, from the one planner —
//! values not yet known shown as named placeholders (`<rotate.new_key_id>`). Nothing is sent but
//! the read-only preflight (`GET /auth/me`: the natural "am I set up?" check ends 2/4/6 exactly
//! as a live run would; `--offline` skips it) — and, with `--dry-run=reads`, safe GETs whose
//! requests are fully known, so later steps show real data.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use super::executor::RunMeta;
use super::opening::{plan_event, run_started};
use super::resume::ResumePlan;
use super::shared::Shared;
use super::step::{self, StepResult};
use crate::esus::actions::Effect;
use crate::event::{Event, RunOutcome, StepStatus};
use crate::plan::context::Context;
use crate::plan::inputs::Inputs;
use crate::plan::{PlannedStep, StepPlan, Work};

/// What a dry-run may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DryRun {
    /// `--dry-run=reads`: the safe GETs too.
    pub reads: bool,
    /// `--offline`: not even the preflight (no token needed; the setup is not checked).
    pub offline: bool,
    /// For `esus-ir plan`: the digest of every request of a fan-out, not only the first listed,
    /// so a signed plan binds each item.
    pub bind_items: bool,
}

/// Runs a dry-run: the plan of every step, as the live run would make it, after the preflight a
/// live run makes (unless offline). With `reads`, the safe GETs are sent too, so later steps are
/// planned from real answers. A resume's dry-run is the plan minus what the incident's signed
/// records prove done. It ends as a live run would before its first write: refused by the plan
/// (2), by ESUS (4), or unreachable (6).
pub async fn run(
    shared: Arc<Shared>,
    inputs: &Inputs,
    meta: RunMeta,
    how: DryRun,
    resume: Option<&ResumePlan>,
) -> PlanDocument {
    let started_at = jiff::Timestamp::now().to_string();
    let planned = plan_steps(&shared, inputs, &meta, how, resume).await;
    PlanDocument {
        schema_version: super::report::SCHEMA_VERSION,
        kind: "plan".into(),
        dry_run: if how.reads { "reads" } else { "all" }.into(),
        offline: how.offline,
        outcome: planned.outcome,
        exit_code: planned.outcome.exit_code() as u8,
        error: planned.error,
        acting_as: planned.acting_as,
        not_done: planned.not_done,
        runbook: shared.valid.runbook.name.clone(),
        incident_id: meta.incident_id.clone(),
        operator: meta.operator.clone(),
        started_at,
        steps: planned.steps,
        transcript: None,
        apply_command: None,
    }
}

/// The steps as planned, and how the dry-run ended.
struct Planned {
    steps: Vec<PlannedStep>,
    not_done: Vec<String>,
    outcome: RunOutcome,
    error: Option<String>,
    acting_as: Option<String>,
}

async fn plan_steps(
    shared: &Arc<Shared>,
    inputs: &Inputs,
    meta: &RunMeta,
    how: DryRun,
    resume: Option<&ResumePlan>,
) -> Planned {
    let _ = shared.emit(&run_started(shared, inputs, meta));
    let mut ctx = Context::new(inputs);
    let finished = carried(&mut ctx, resume);
    let ahead = shared.planner.ahead(&ctx, &finished);
    // In the live run's order: a plan that cannot run is refused before the preflight is sent.
    let refused = super::executor::refused(&ahead);
    let mut acting_as = None;
    if !how.offline && refused.is_none() {
        match super::preflight::check(shared).await {
            Ok(identity) => {
                ctx.set_operator(identity.me);
                acting_as = Some(identity.summary);
            }
            Err(refusal) => {
                let _ = shared.emit(&Event::RunFinished {
                    outcome: refusal.outcome,
                    exit_code: refusal.outcome.exit_code() as u8,
                });
                return Planned {
                    steps: vec![preflight_refused(refusal.message.clone())],
                    outcome: refusal.outcome,
                    error: Some(refusal.message),
                    acting_as: None,
                    not_done: Vec::new(),
                };
            }
        }
    }
    let gaps = crate::plan::gaps::gaps(&shared.valid, &inputs.display, &ahead);
    let not_done = crate::plan::gaps::sentences(&gaps);
    let _ = shared.emit(&plan_event(shared, &ahead, not_done.clone()));
    let mut out = Vec::new();
    for &i in shared.valid.graph.order() {
        let id = &shared.valid.runbook.steps[i].id;
        if finished.contains(id) {
            out.push(done_earlier(shared, &ctx, i));
            continue;
        }
        let done = resume
            .and_then(|p| p.batches.get(id))
            .map(|b| b.done.keys().copied().collect())
            .unwrap_or_default();
        let plan = shared.planner.step(&ctx, i, &done);
        out.push(dry_step(shared, &mut ctx, plan, how).await);
    }
    // A plan a live run would refuse is a dry-run that says so with the same exit code.
    let outcome = if refused.is_some() {
        RunOutcome::Refused
    } else {
        RunOutcome::Success
    };
    let _ = shared.emit(&Event::RunFinished {
        outcome,
        exit_code: outcome.exit_code() as u8,
    });
    Planned {
        steps: out,
        outcome,
        error: refused,
        acting_as,
        not_done,
    }
}

/// Steps an earlier leg finished: known from the signed records, not planned again.
fn carried(ctx: &mut Context, resume: Option<&ResumePlan>) -> BTreeSet<String> {
    let mut finished = BTreeSet::new();
    for (id, (status, outputs, secrets)) in resume.map(|p| p.finished.iter()).into_iter().flatten()
    {
        ctx.set_step(id, *status, outputs.clone(), secrets.clone());
        finished.insert(id.clone());
    }
    finished
}

fn done_earlier(shared: &Shared, ctx: &Context, i: usize) -> PlannedStep {
    let plan = shared.planner.step(ctx, i, &BTreeSet::new());
    let mut d = PlannedStep::of(&shared.planner, &plan);
    d.requests.clear();
    d.follow_ups.clear();
    d.problems.clear();
    d.notes = vec!["finished by an earlier leg of this incident: not sent again".into()];
    d.done = true;
    d
}

/// One step of the dry-run: shown as planned, or (a safe read with `reads`) sent for real so
/// the steps after it are planned from its answer.
async fn dry_step(
    shared: &Arc<Shared>,
    ctx: &mut Context,
    plan: StepPlan,
    how: DryRun,
) -> PlannedStep {
    let reads = how.reads;
    let mut d = PlannedStep::of(&shared.planner, &plan);
    d.list_items(&shared.planner, ctx, &plan, how.bind_items);
    let id = plan.id.clone();
    let i = plan.index;
    let exact_read =
        plan.effect == Effect::Read && plan.sends() && !matches!(plan.work, Work::Many(_));
    if reads && exact_read {
        let how = step::Running {
            after_stop: true,
            ..step::Running::default()
        };
        // A dry-run never sends a leaked credential: the check reads the key only.
        let work = match plan.work {
            Work::Revoked { get, .. } => Work::Revoked { get, probe: None },
            other => other,
        };
        let result = step::execute(shared.clone(), Arc::new(ctx.clone()), i, work, how).await;
        let status = result.final_status();
        d.sent = true;
        d.notes.push(format!(
            "sent (read-only): {}",
            super::report::status_words(status)
        ));
        let _ = shared.emit(&finished(&id, status, result.reason.clone(), &result));
        if status == StepStatus::Ok {
            ctx.set_step(&id, status, result.outputs, result.secret_outputs);
            return d;
        }
    } else {
        let nothing = StepResult::default();
        let why = Some("dry-run: not sent".to_string());
        let _ = shared.emit(&finished(&id, StepStatus::Skipped, why, &nothing));
    }
    let outputs = shared.valid.runbook.steps[i].outputs.keys().cloned();
    ctx.set_placeholder(&id, outputs);
    d
}

fn finished(id: &str, status: StepStatus, reason: Option<String>, r: &StepResult) -> Event {
    Event::StepFinished {
        step: id.to_string(),
        status,
        reason,
        outputs: r.outputs.clone(),
        duration_ms: r.duration.as_millis() as u64,
        finding: r.finding.clone(),
        expected: r.expected,
        secret_files: Vec::new(),
        evidence: r.evidence.clone(),
    }
}

fn preflight_refused(message: String) -> PlannedStep {
    PlannedStep {
        id: "preflight".into(),
        name: "Check the operator's token against ESUS".into(),
        effect: "read",
        confirm: false,
        typed: None,
        notes: vec![message],
        problems: Vec::new(),
        requests: Vec::new(),
        templated: false,
        follow_ups: Vec::new(),
        items: None,
        items_sha256: Vec::new(),
        sent: true,
        done: false,
    }
}

/// The `--output json` document of a dry-run: the plan, versioned like the result
/// (`esus-ir schema --plan`, docs/plan.schema.json).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanDocument {
    /// Version of this document format (1); it changes only when a field changes meaning or goes away.
    pub schema_version: u32,
    /// Always `plan`.
    #[schemars(extend("const" = "plan"))]
    pub kind: String,
    /// `all` (nothing is sent but the preflight) or `reads` (the safe GETs are sent too).
    pub dry_run: String,
    /// `--offline`: not even the preflight was sent, so the setup (token, URL) was not checked.
    pub offline: bool,
    /// How a live run would have ended before its first write: `success` (it would start),
    /// `refused` (the plan cannot run as written), `auth-failed`, `unreachable`.
    pub outcome: RunOutcome,
    /// The process's exit code, as a live run's (0, 2, 4, 6).
    pub exit_code: u8,
    /// Why it would not start, when it would not.
    pub error: Option<String>,
    /// The preflight's "acting as … on …", when it was sent and accepted.
    pub acting_as: Option<String>,
    /// What the run would not do, and why (an optional input nobody gave).
    pub not_done: Vec<String>,
    /// The runbook's name.
    pub runbook: String,
    /// `--incident-id`, when given.
    pub incident_id: Option<String>,
    /// Who asked for the plan.
    pub operator: String,
    /// When (RFC 3339).
    pub started_at: String,
    /// Every step, in the order a live run takes them.
    pub steps: Vec<PlannedStep>,
    /// The dry-run's transcript.
    pub transcript: Option<std::path::PathBuf>,
    /// The command that runs this plan for real.
    pub apply_command: Option<String>,
}
