//! Asking before a step runs: the prompt shows the exact request(s), the answer (or the flag that
//! gave it) is recorded with the digest of exactly what was shown, one prompt at a time, on a
//! blocking thread so no runtime worker waits on a person.

use std::sync::Arc;

use super::approval::{ApprovalPolicy, Decision, Prompt};
use super::shared::Shared;
use crate::esus::request::ApiRequest;
use crate::event::{ApprovalSource, Covered, Event, RequestView};
use crate::plan::context::Context;
use crate::plan::digest::BatchDigest;
use crate::plan::{Approval, Shown, StepPlan};

/// The answer for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Approved (by a person, a flag, or not needed).
    Yes,
    /// The operator said no.
    No,
    /// An unattended run reached a step nobody approved in advance; what would approve it.
    Missing(super::report::MissingApproval),
    /// What it would send cannot be made (an item that does not render, a save name leaving the
    /// evidence folder): found before anything was sent.
    Cannot(String),
    /// `run --plan`: it would send a request the signed plan does not allow; refused unsent.
    OutsidePlan(String),
}

/// Decides, asks when needed, and records the approval — of exactly what the plan sends.
pub(super) async fn approve(
    shared: &Arc<Shared>,
    ctx: &Context,
    policy: &ApprovalPolicy,
    plan: &StepPlan,
) -> std::io::Result<Answer> {
    // Reads change nothing and go only to the planned ESUS, and a containment check presents
    // the stolen credential itself (what it ends, it ends as the attacker could): what a signed
    // plan binds is every request the operator's token sends to change ESUS.
    let gate = policy.plan.as_ref().filter(|_| {
        plan.sends()
            && plan.effect != crate::esus::actions::Effect::Read
            && !shared.valid.steps[plan.index].action.check
    });
    if gate.is_none() && matches!(plan.approval, Approval::NotAsked { writes: false }) {
        return Ok(Answer::Yes);
    }
    // Decided before rendering: only a prompt shows requests, so only then are they kept.
    let decision = policy.decide(&plan.id, &plan.approval);
    let keep = if decision == Decision::Ask {
        usize::MAX
    } else {
        0
    };
    let shown = match shown_within(shared, ctx, plan, gate, keep) {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    if let Approval::NotAsked { writes } = &plan.approval {
        if *writes {
            record(
                shared,
                plan,
                String::new(),
                shown,
                true,
                ApprovalSource::NotRequired,
            )?;
        }
        return Ok(Answer::Yes);
    }
    let (message, typed) = match &plan.approval {
        Approval::Typed { message, target } => (message.clone(), Some(target.clone())),
        Approval::Ask { message } => (message.clone(), None),
        Approval::NotAsked { .. } => (String::new(), None),
    };
    let (approved, how) = match decision {
        Decision::Approved(how) => (true, how),
        Decision::Missing => (false, ApprovalSource::Missing),
        Decision::Ask => {
            let mut requests = shown.requests.clone();
            requests.extend(plan.follow_ups.iter().cloned());
            let prompt = Prompt {
                step: plan.id.clone(),
                name: plan.name.clone(),
                message: message.clone(),
                requests,
                total: shown.total,
                typed,
                drill: shared.drill,
            };
            (ask(shared, prompt).await?, ApprovalSource::Interactive)
        }
    };
    record(shared, plan, message, shown, approved, how)?;
    Ok(match (approved, how) {
        (true, _) => Answer::Yes,
        (false, ApprovalSource::Missing) => {
            Answer::Missing(ApprovalPolicy::missing_one(&plan.id, plan.approval.typed()))
        }
        (false, _) => Answer::No,
    })
}

/// Records an approval of what `shown` covers; an approved one covers the step's requests from
/// now on. (A step that needs no confirmation still records what it will send, as approved by
/// the runbook, when that is more than reads: every request that changes ESUS is covered by a
/// recorded approval.)
fn record(
    shared: &Arc<Shared>,
    plan: &StepPlan,
    prompt: String,
    shown: Shown,
    approved: bool,
    how: ApprovalSource,
) -> std::io::Result<()> {
    let approval = shared.next_approval();
    shared.emit(&Event::Confirmation {
        step: plan.id.clone(),
        approval,
        prompt,
        request_sha256: shown.digest,
        approved,
        how,
        covers: shown.covers,
    })?;
    if approved {
        shared.grant(&plan.id, None, approval);
    }
    Ok(())
}

/// What the step's approval covers, each request checked against the signed plan (`gate`) as
/// it is rendered — a fan-out's every item, not only those a prompt shows. `Err`: the answer
/// that stops the step (it cannot be made, or the plan does not hold it).
fn shown_within(
    shared: &Shared,
    ctx: &Context,
    plan: &StepPlan,
    gate: Option<&Arc<crate::exec::plan_gate::PlanGate>>,
    keep: usize,
) -> Result<Shown, Answer> {
    let answer = |name: &str| {
        let (step, output) = name.split_once('.')?;
        ctx.output(step, output).cloned()
    };
    let mut outside = None;
    let shown = shared.planner.shown_keeping(ctx, plan, keep, &mut |v| {
        if outside.is_none()
            && let Some(g) = gate
            && let Err(why) = g.allows_with(&plan.id, v, &answer)
        {
            outside = Some(why);
        }
    });
    match (shown, outside) {
        (Err(e), _) => Err(Answer::Cannot(e)),
        (Ok(_), Some(why)) => Err(Answer::OutsidePlan(why)),
        (Ok(s), None) => Ok(s),
    }
}

/// Approves what a step's recovery must send beyond its approved request (revoking an orphan,
/// then the request again): the same rules as the step's own approval — `--yes`/`--approve`,
/// else a prompt, else not approved — recorded with one digest over every request it covers.
/// While approved, item `item`'s requests are sent under it; the caller withdraws it after.
pub(super) async fn approve_recovery(
    shared: &Arc<Shared>,
    step: &crate::runbook::model::Step,
    item: Option<usize>,
    message: &str,
    requests: &[ApiRequest],
) -> std::io::Result<(Answer, u64)> {
    let views: Vec<RequestView> = requests
        .iter()
        .map(|r| r.view(shared.client.url(r).as_str()))
        .collect();
    let mut batch = BatchDigest::default();
    let mut covers = Vec::with_capacity(views.len());
    for v in &views {
        covers.push(Covered {
            item,
            request_sha256: batch.push(v),
        });
    }
    let mode = Approval::Ask {
        message: message.to_string(),
    };
    let decision = match &shared.policy.plan {
        // The approvers signed each request once: sending one again, or revoking what a lost
        // answer made, is a decision they did not make — and no one at this terminal may make
        // it for them. Refused (recorded); the step says what to do by hand.
        Some(_) => None,
        None => Some(shared.policy.decide(&step.id, &mode)),
    };
    let (approved, how) = match decision {
        None => (false, ApprovalSource::Plan),
        Some(Decision::Approved(how)) => (true, how),
        Some(Decision::Missing) => (false, ApprovalSource::Missing),
        Some(Decision::Ask) => {
            let prompt = Prompt {
                step: step.id.clone(),
                name: step.name.clone(),
                message: message.to_string(),
                total: views.len(),
                requests: views,
                typed: None,
                drill: shared.drill,
            };
            (ask(shared, prompt).await?, ApprovalSource::Interactive)
        }
    };
    let approval = shared.next_approval();
    shared.emit(&Event::Confirmation {
        step: step.id.clone(),
        approval,
        prompt: message.to_string(),
        request_sha256: batch.finish(),
        approved,
        how,
        covers,
    })?;
    if approved {
        shared.grant(&step.id, item, approval);
    }
    let answer = match (approved, how) {
        (true, _) => Answer::Yes,
        (false, ApprovalSource::Missing) => {
            Answer::Missing(ApprovalPolicy::missing_one(&step.id, false))
        }
        (false, _) => Answer::No,
    };
    Ok((answer, approval))
}

/// Asks the operator on a blocking thread.
pub(super) async fn ask(shared: &Arc<Shared>, prompt: Prompt) -> std::io::Result<bool> {
    let confirmer = shared.confirmer.clone();
    tokio::task::spawn_blocking(move || confirmer.confirm(&prompt))
        .await
        .map_err(std::io::Error::other)?
}
