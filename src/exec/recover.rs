//! After a request that is not safe to repeat lost its answer (a dropped connection, a 5xx, a run
//! killed before the answer was recorded): what it did is found by an exact claim, or it is
//! unknown and a person decides. Never a guess: no time window, no "a key of the same name".
//!
//! - The action's claim says it did not happen: the approved request is sent (it is the first
//!   time it takes effect).
//! - It happened and made something holding no secret of ours (a Subscription): adopted.
//! - It happened and its secret was in the lost answer (a key): that key — proven ours by its
//!   claim — is revoked and the approved request sent again, both shown and approved first;
//!   unless this incident holds the key's secret already (kept before the answer was recorded),
//!   then it is adopted.
//! - Nothing tells (the key is gone, the action has no claim): interactive runs show what ESUS
//!   holds and ask; unattended runs stop (exit 1, resumable), naming what they saw.
//!
//! What settles each action is declared in the catalogue (`Recovery`); the claims themselves are
//! in [`super::claims`].

// A step that cannot go on ends with its `StepResult`: it is the error, built once per step.
#![allow(clippy::result_large_err)]
use std::sync::Arc;

use serde_json::Value;

use super::claims;
use super::confirmation::{self, Answer};
use super::send::{self, Sent};
use super::shared::Shared;
use super::step::{self, StepResult, exchange_item, send_policy};
use crate::esus::actions::{Method, Recovery};
use crate::esus::client::ApiResponse;
use crate::esus::request::{ApiRequest, encode_segment};
use crate::plan::context::Context;

/// A request whose answer was lost: the step (item) it belongs to, and when it was sent.
pub(super) struct Lost<'a> {
    /// The step's index.
    pub(super) index: usize,
    /// The request, as approved.
    pub(super) req: &'a ApiRequest,
    /// The fan-out item.
    pub(super) item: Option<(usize, &'a Value)>,
    /// Why its answer is missing.
    pub(super) why: &'a str,
    /// A rotate: the old key's `supersededBy` before it was sent (`Some(None)`: it had none),
    /// `None` when that was not read (or not trustedly recorded).
    pub(super) before: Option<Option<String>>,
    /// Ids this incident's own records name for this write (a rename sent before the run
    /// stopped): candidates whose secret, when held, makes them this write's.
    pub(super) known: Vec<String>,
}

impl Lost<'_> {
    pub(super) fn step(&self, shared: &Shared) -> String {
        shared.valid.runbook.steps[self.index].id.clone()
    }

    pub(super) fn idx(&self) -> Option<usize> {
        self.item.map(|(k, _)| k)
    }
}

/// An answer to hand to the step, the request id it answers, and what recovery did — or the
/// step's result, already final (a failure, or an answer adopted from what is on disk).
pub(super) type Recovered = Result<(ApiResponse, String, String), StepResult>;

/// Recovers a lost request, as the action's catalogue entry says.
pub(super) async fn recover(shared: &Arc<Shared>, ctx: &Context, lost: Lost<'_>) -> StepResult {
    let info = &shared.valid.steps[lost.index];
    let outcome = match info.recovery {
        Recovery::ClaimName => claims::created_key(shared, ctx, &lost).await,
        Recovery::SupersededBy => claims::rotated(shared, ctx, &lost).await,
        Recovery::ClaimReason => claims::subscription(shared, &lost).await,
        Recovery::Resend => {
            let note = format!("its first answer was lost ({}); sent again", lost.why);
            resend(shared, &lost, note).await
        }
        Recovery::Unknown => {
            let saw = format!(
                "`{}` has no exact claim ESUS could be asked about",
                info.action.name
            );
            unknown(shared, &lost, &saw).await
        }
    };
    match outcome {
        Ok((resp, id, note)) => {
            let mut r = step::finish_answer(shared, ctx, lost.index, &resp, &id, lost.item).await;
            if info.recovery == Recovery::ClaimName
                && r.final_status() == crate::event::StepStatus::Ok
            {
                claims::settle_claim(shared, ctx, lost.index, lost.item, lost.req, &resp, &mut r)
                    .await;
            }
            r.reason.get_or_insert(note);
            r
        }
        Err(r) => r,
    }
}

/// It did not happen (its claim says so): the approved request goes out once more.
pub(super) async fn resend(shared: &Arc<Shared>, lost: &Lost<'_>, note: String) -> Recovered {
    let step = &shared.valid.runbook.steps[lost.index];
    let info = &shared.valid.steps[lost.index];
    let policy = send_policy(step, false);
    let body = step::body_policy(info);
    match send::send(shared, &step.id, lost.idx(), lost.req, policy, body).await {
        Ok(Sent::Answer(r, id)) => Ok((r, id, note)),
        Ok(Sent::Unknown(w)) => Err(StepResult::failed(format!(
            "outcome unknown twice ({}; {w}); stopped so as not to make more",
            lost.why
        ))),
        Ok(other) => Err(step::terminal(other)),
        Err(e) => Err(StepResult::failed(format!(
            "could not record the request: {e}"
        ))),
    }
}

/// Nothing proves what happened. A person at the terminal is shown what ESUS holds and decides;
/// an unattended run stops here (exit 1) and a resume meets the same question.
pub(super) async fn unknown(shared: &Arc<Shared>, lost: &Lost<'_>, saw: &str) -> Recovered {
    let step = &shared.valid.runbook.steps[lost.index];
    let what = format!(
        "{} {} of `{}`{}",
        lost.req.method.as_str(),
        lost.req.path,
        step.id,
        lost.idx().map(|k| format!(" item {k}")).unwrap_or_default()
    );
    let stop = |why: &str| {
        Err(StepResult::failed(format!(
            "outcome unknown: {what} got no answer ({}), and {saw}; {why}. Nothing was sent again: check ESUS, then resume (at a terminal you decide whether to send it again)",
            lost.why
        )))
    };
    if !shared.policy.interactive {
        return stop("an unattended run never decides this");
    }
    let message = format!(
        "{what} got no answer ({}), and {saw}. It may already have happened. Send it again?",
        lost.why
    );
    let (answer, approval) = confirmation::approve_recovery(
        shared,
        step,
        lost.idx(),
        &message,
        std::slice::from_ref(lost.req),
    )
    .await
    .map_err(|e| StepResult::failed(format!("confirmation failed: {e}")))?;
    let done = match answer {
        Answer::Yes => {
            resend(
                shared,
                lost,
                format!("{saw}; sent again as the operator decided"),
            )
            .await
        }
        _ => stop("the operator did not send it again"),
    };
    shared.withdraw(&step.id, lost.idx(), approval);
    done
}

/// It happened, and the secret of what it made was in the lost answer: the `orphans` — each
/// proven this request's by its claim — are revoked and the approved request sent again, after
/// an approval covering every one of those requests.
pub(super) async fn reissue(
    shared: &Arc<Shared>,
    lost: &Lost<'_>,
    orphans: &[String],
    what: &str,
) -> Recovered {
    let step = &shared.valid.runbook.steps[lost.index];
    let revokes: Vec<ApiRequest> = orphans.iter().map(|id| revoke_request(id)).collect();
    let list = orphans.join(", ");
    let message = format!(
        "{what} reached ESUS but its answer was lost: key(s) {list} — made by this incident (its exact claim) — are ACTIVE and nobody holds their secret. Revoke {list} and send the request again?"
    );
    let mut requests = revokes.clone();
    requests.push(lost.req.clone());
    let (answer, approval) =
        confirmation::approve_recovery(shared, step, lost.idx(), &message, &requests)
            .await
            .map_err(|e| StepResult::failed(format!("confirmation failed: {e}")))?;
    let done = match answer {
        Answer::Yes => revoke_then_resend(shared, lost, orphans, what, &revokes).await,
        _ => Err(StepResult::failed(format!(
            "{what} reached ESUS but its answer was lost: key(s) {list} are ACTIVE and nobody holds their secret, and revoking them was not approved. Revoke them now: {}",
            orphans
                .iter()
                .map(|id| format!("DELETE {}", shared.planner.view(&revoke_request(id)).url))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    };
    shared.withdraw(&step.id, lost.idx(), approval);
    done
}

async fn revoke_then_resend(
    shared: &Arc<Shared>,
    lost: &Lost<'_>,
    orphans: &[String],
    what: &str,
    revokes: &[ApiRequest],
) -> Recovered {
    let step = &shared.valid.runbook.steps[lost.index];
    let info = &shared.valid.steps[lost.index];
    for (id, revoke) in orphans.iter().zip(revokes) {
        let policy = send_policy(step, true);
        let gone = exchange_item(shared, step, info, lost.idx(), revoke, policy).await?;
        if !matches!(gone.status, 200 | 204 | 404) {
            return Err(StepResult::failed(format!(
                "{what} reached ESUS but its answer was lost; revoking {id} (made by this incident) failed (ESUS answered {}), so nothing was sent again. Revoke it by hand: DELETE /api-keys/{id}",
                gone.status
            )));
        }
    }
    let note = format!(
        "{what} reached ESUS but its answer (and the new secret) was lost: {} (made by this incident, by its exact claim) revoked and the request sent again",
        orphans.join(", ")
    );
    resend(shared, lost, note).await
}

/// `DELETE /api-keys/{id}`.
pub(super) fn revoke_request(id: &str) -> ApiRequest {
    ApiRequest {
        method: Method::Delete,
        ..ApiRequest::get(format!("/api-keys/{}", encode_segment(id)))
    }
}
