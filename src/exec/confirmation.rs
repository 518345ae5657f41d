//! Asking before a step runs: the prompt shows the exact request(s), the answer (or the flag that
//! gave it) is recorded with the digest of exactly what was shown, one prompt at a time, on a
//! blocking thread so no runtime worker waits on a person.

use std::sync::Arc;

use super::approval::{ApprovalPolicy, Decision, Prompt};
use super::context::Context;
use super::digest::{BatchDigest, request_digest};
use super::event::{ApprovalSource, Event, RequestView};
use super::plan::display_name;
use super::render;
use super::shared::Shared;
use super::step::Prepared;
use crate::esus::request::ApiRequest;
use crate::runbook::validate::ConfirmMode;

/// The answer for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Approved (by a person, a flag, or not needed).
    Yes,
    /// The operator said no.
    No,
    /// An unattended run reached a step nobody approved in advance; what would approve it.
    Missing(super::report::MissingApproval),
}

/// Decides, asks when needed, and records the approval.
pub(super) async fn approve(
    shared: &Arc<Shared>,
    ctx: &Context,
    policy: &ApprovalPolicy,
    i: usize,
    prepared: &Prepared,
) -> std::io::Result<Answer> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let mode = ApprovalPolicy::effective(info);
    if mode == ConfirmMode::No {
        return Ok(Answer::Yes);
    }
    let (requests, total, digest) = shown_requests(shared, ctx, i, prepared);
    let message = match &mode {
        ConfirmMode::Ask(Some(m)) => shared
            .engine
            .render_str(m, ctx.display())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| m.clone()),
        _ => format!("Run `{}` ({})?", display_name(shared, ctx, i), step.action),
    };
    let (approved, how) = match policy.decide(&step.id, &mode) {
        Decision::Approved(how) => (true, how),
        Decision::Missing => (false, ApprovalSource::Missing),
        Decision::Ask => {
            let prompt = Prompt {
                step: step.id.clone(),
                name: display_name(shared, ctx, i),
                message: message.clone(),
                requests,
                total,
                typed: typed_target(shared, ctx, i),
                drill: shared.drill,
            };
            (ask(shared, prompt).await?, ApprovalSource::Interactive)
        }
    };
    shared.emit(&Event::Confirmation {
        step: step.id.clone(),
        prompt: message,
        request_sha256: digest,
        approved,
        how,
        covers: None,
    })?;
    Ok(match (approved, how) {
        (true, _) => Answer::Yes,
        (false, ApprovalSource::Missing) => {
            Answer::Missing(ApprovalPolicy::missing_one(&step.id, &mode))
        }
        (false, _) => Answer::No,
    })
}

/// Approves what a step's recovery must send beyond its approved request (revoking an orphan,
/// then the request again): the same rules as the step's own approval — `--yes`/`--approve`,
/// else a prompt, else not approved — recorded with one digest over every request it covers.
pub(super) async fn approve_recovery(
    shared: &Arc<Shared>,
    step: &crate::runbook::model::Step,
    message: &str,
    requests: &[ApiRequest],
) -> std::io::Result<Answer> {
    let views: Vec<RequestView> = requests
        .iter()
        .map(|r| r.view(shared.client.url(r).as_str()))
        .collect();
    let mut batch = BatchDigest::default();
    for v in &views {
        batch.push(v);
    }
    let mode = ConfirmMode::Ask(None);
    let (approved, how) = match shared.policy.decide(&step.id, &mode) {
        Decision::Approved(how) => (true, how),
        Decision::Missing => (false, ApprovalSource::Missing),
        Decision::Ask => {
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
    shared.emit(&Event::Confirmation {
        step: step.id.clone(),
        prompt: message.to_string(),
        request_sha256: batch.finish(),
        approved,
        how,
        covers: Some(requests.len() as u64),
    })?;
    Ok(match (approved, how) {
        (true, _) => Answer::Yes,
        (false, ApprovalSource::Missing) => {
            Answer::Missing(ApprovalPolicy::missing_one(&step.id, &mode))
        }
        (false, _) => Answer::No,
    })
}

/// Asks the operator on a blocking thread.
pub(super) async fn ask(shared: &Arc<Shared>, prompt: Prompt) -> std::io::Result<bool> {
    let confirmer = shared.confirmer.clone();
    tokio::task::spawn_blocking(move || confirmer.confirm(&prompt))
        .await
        .map_err(std::io::Error::other)?
}

/// For `confirm: typed`, the text the operator must type: the action's target parameter.
fn typed_target(shared: &Shared, ctx: &Context, i: usize) -> Option<String> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let target = info.action.target?;
    if info.confirm != ConfirmMode::Typed {
        return None;
    }
    let params = render::params(&shared.engine, ctx, step, info, None).ok()?;
    params
        .display
        .get(target)
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
}

/// The requests a prompt shows, how many there are, and the digest of all of them.
fn shown_requests(
    shared: &Shared,
    ctx: &Context,
    i: usize,
    prepared: &Prepared,
) -> (Vec<RequestView>, usize, String) {
    let view = |r: &ApiRequest| r.view(shared.client.url(r).as_str());
    match prepared {
        Prepared::One(r) => {
            let v = view(r);
            let d = request_digest(&v);
            (vec![v], 1, d)
        }
        Prepared::Revoked { get, probe } => {
            let v = view(get);
            let d = request_digest(&v);
            let mut shown = vec![v];
            shown.extend(probe.as_ref().map(view));
            (shown, 1 + usize::from(probe.is_some()), d)
        }
        Prepared::Sessions(_) => {
            let v = view(&ApiRequest::get("/auth/sessions"));
            let d = request_digest(&v);
            (vec![v], 1, d)
        }
        Prepared::Many { items, batch: done } => {
            let step = &shared.valid.runbook.steps[i];
            let info = &shared.valid.steps[i];
            let mut batch = BatchDigest::default();
            let mut shown = Vec::new();
            // Only what this run will send: items an earlier run finished are not sent again.
            let todo: Vec<&serde_json::Value> = items
                .iter()
                .enumerate()
                .filter(|(k, _)| !done.done.contains_key(k))
                .map(|(_, v)| v)
                .collect();
            for item in todo.iter().copied() {
                if let Ok(r) = render::request(&shared.engine, ctx, step, info, Some(item)) {
                    let v = view(&r);
                    batch.push(&v);
                    if shown.len() < 10_000 {
                        shown.push(v);
                    }
                }
            }
            (shown, todo.len(), batch.finish())
        }
    }
}

/// Asks whether to send again a non-idempotent request whose earlier outcome is unknown;
/// unattended runs never do.
pub(super) async fn resend_unknown(
    shared: &Arc<Shared>,
    policy: &ApprovalPolicy,
    i: usize,
) -> std::io::Result<bool> {
    if !policy.interactive {
        return Ok(false);
    }
    let step = &shared.valid.runbook.steps[i];
    let prompt = Prompt {
        step: step.id.clone(),
        name: step.name.clone(),
        message: format!(
            "An earlier run sent `{}` ({}) and recorded no answer: it may already have happened. Check ESUS; send it again?",
            step.id, step.action
        ),
        requests: Vec::new(),
        total: 0,
        typed: None,
        drill: shared.drill,
    };
    ask(shared, prompt).await
}
