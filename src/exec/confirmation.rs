//! Asking before a step runs: the prompt shows the exact request(s), the answer (or the flag that
//! gave it) is recorded with the digest of exactly what was shown, one prompt at a time, on a
//! blocking thread so no runtime worker waits on a person.

use std::sync::Arc;

use super::approval::{ApprovalPolicy, Decision, Prompt};
use super::context::Context;
use super::digest::{BatchDigest, request_digest};
use super::plan::display_name;
use super::render;
use super::shared::Shared;
use super::step::Prepared;
use crate::esus::actions::Method;
use crate::esus::request::ApiRequest;
use crate::event::{ApprovalSource, Covered, Event, RequestView};
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
        not_required(shared, ctx, i, prepared)?;
        return Ok(Answer::Yes);
    }
    let (requests, total, digest, covers) = shown_requests(shared, ctx, i, prepared);
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
    let approval = shared.next_approval();
    shared.emit(&Event::Confirmation {
        step: step.id.clone(),
        approval,
        prompt: message,
        request_sha256: digest,
        approved,
        how,
        covers,
    })?;
    if approved {
        shared.grant(&step.id, None, approval);
    }
    Ok(match (approved, how) {
        (true, _) => Answer::Yes,
        (false, ApprovalSource::Missing) => {
            Answer::Missing(ApprovalPolicy::missing_one(&step.id, &mode))
        }
        (false, _) => Answer::No,
    })
}

/// A step that needs no confirmation (`confirm: false` on an action that is not destructive)
/// still records what it will send, as approved by the runbook, when that is more than reads: so
/// every request that changes ESUS is covered by a recorded approval.
fn not_required(
    shared: &Arc<Shared>,
    ctx: &Context,
    i: usize,
    prepared: &Prepared,
) -> std::io::Result<()> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let writes = match prepared {
        Prepared::One(r) => r.method != Method::Get,
        // `http` decides its method per request.
        Prepared::Many { .. } => info.action.method != Method::Get || info.action.name == "http",
        Prepared::Revoked { .. } | Prepared::Sessions(_) => false,
    };
    if !writes {
        return Ok(());
    }
    let (_, _, digest, covers) = shown_requests(shared, ctx, i, prepared);
    let approval = shared.next_approval();
    shared.emit(&Event::Confirmation {
        step: step.id.clone(),
        approval,
        prompt: String::new(),
        request_sha256: digest,
        approved: true,
        how: ApprovalSource::NotRequired,
        covers,
    })?;
    shared.grant(&step.id, None, approval);
    Ok(())
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
    let mut covers = Vec::new();
    for v in &views {
        batch.push(v);
        covers.push(Covered {
            item,
            request_sha256: request_digest(v),
        });
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
            Answer::Missing(ApprovalPolicy::missing_one(&step.id, &mode))
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

/// The requests a prompt shows, how many there are, the digest of all of them, and each one's
/// digest (what the approval covers).
fn shown_requests(
    shared: &Shared,
    ctx: &Context,
    i: usize,
    prepared: &Prepared,
) -> (Vec<RequestView>, usize, String, Vec<Covered>) {
    let view = |r: &ApiRequest| r.view(shared.client.url(r).as_str());
    let single = |v: &RequestView| {
        let d = request_digest(v);
        let covers = vec![Covered {
            item: None,
            request_sha256: d.clone(),
        }];
        (d, covers)
    };
    match prepared {
        Prepared::One(r) => {
            let v = view(r);
            let (d, covers) = single(&v);
            (vec![v], 1, d, covers)
        }
        Prepared::Revoked { get, probe } => {
            let v = view(get);
            let (d, covers) = single(&v);
            let mut shown = vec![v];
            shown.extend(probe.as_ref().map(view));
            (shown, 1 + usize::from(probe.is_some()), d, covers)
        }
        Prepared::Sessions(_) => {
            let v = view(&ApiRequest::get("/auth/sessions"));
            let (d, covers) = single(&v);
            (vec![v], 1, d, covers)
        }
        Prepared::Many { items, batch: done } => {
            let step = &shared.valid.runbook.steps[i];
            let info = &shared.valid.steps[i];
            let mut batch = BatchDigest::default();
            let mut shown = Vec::new();
            let mut covers = Vec::new();
            // Only what this run will send: items an earlier run finished are not sent again.
            let todo: Vec<(usize, &serde_json::Value)> = items
                .iter()
                .enumerate()
                .filter(|(k, _)| !done.done.contains_key(k))
                .collect();
            for (k, item) in todo.iter().copied() {
                if let Ok(r) = render::request(&shared.engine, ctx, step, info, Some(item)) {
                    let v = view(&r);
                    batch.push(&v);
                    covers.push(Covered {
                        item: Some(k),
                        request_sha256: request_digest(&v),
                    });
                    if shown.len() < 10_000 {
                        shown.push(v);
                    }
                }
            }
            (shown, todo.len(), batch.finish(), covers)
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
