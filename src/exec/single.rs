//! One request a step (or one item of a fan-out) sends as its work, finished with its answer —
//! or, when the answer is lost, settled by the action's exact claim ([`super::settle`]).

use std::sync::Arc;

use serde_json::Value;

use super::outcome::{StepResult, body_policy, finish_answer, send_policy, terminal};
use super::send::{self, Sent};
use super::shared::Shared;
use crate::esus::actions::Recovery;
use crate::esus::request::ApiRequest;
use crate::event::StepStatus;
use crate::plan::context::Context;

/// Sends one request (of item `item` of a fan-out) and finishes the step with its answer. A
/// rotate reads its key first (what the key's `supersededBy` was before is what settles a lost
/// answer); a claimed create is renamed once its secret is kept.
pub(super) async fn one(
    shared: &Arc<Shared>,
    ctx: &Context,
    i: usize,
    req: ApiRequest,
    item: Option<(usize, &Value)>,
) -> StepResult {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let idx = item.map(|(k, _)| k);
    let before = match info.recovery {
        Recovery::SupersededBy => match super::claims::read_before(shared, i, idx, &req).await {
            Ok(b) => Some(b),
            Err(r) => return r,
        },
        _ => None,
    };
    let policy = send_policy(step, info.idempotent);
    let sent = match send::send(shared, &step.id, idx, &req, policy, body_policy(info)).await {
        Ok(s) => s,
        Err(e) => return StepResult::failed(format!("could not record the request: {e}")),
    };
    match sent {
        Sent::Answer(resp, id) => {
            let mut r = finish_answer(shared, ctx, i, &resp, &id, item).await;
            // A 401 to the stolen token is about that token, not the operator's credentials.
            r.auth_failed &= matches!(req.auth, crate::esus::request::Auth::Operator);
            if info.recovery == Recovery::ClaimName && r.final_status() == StepStatus::Ok {
                super::claims::settle_claim(shared, ctx, i, item, &req, &resp, &mut r).await;
            }
            r
        }
        Sent::Unknown(why) => {
            let lost = super::recover::Lost {
                index: i,
                req: &req,
                item,
                why: &why,
                before: before.flatten(),
                known: Vec::new(),
            };
            super::settle::recover(shared, ctx, lost).await
        }
        other => terminal(other),
    }
}
