//! After a non-idempotent request whose answer was lost: ask ESUS what happened before anything
//! is sent again. A blind re-send of a rotate or a create would leave two keys, one of them with
//! a secret nobody holds.

use std::sync::Arc;

use serde_json::{Value, json};

use super::context::Context;
use super::step::{self, StepResult, send_policy};
use crate::esus::actions::Method;
use crate::esus::request::{ApiRequest, Auth, Body, encode_segment};
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;

/// Whether ESUS's state can tell what became of this action's lost request.
pub(super) fn recoverable(info: &StepInfo) -> bool {
    info.action.name == "api_keys.rotate"
}

/// Recovers step `step`'s request `req`, whose outcome is unknown (`why`).
pub(super) async fn recover(
    shared: &Arc<super::shared::Shared>,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    req: &ApiRequest,
    why: &str,
) -> StepResult {
    if !recoverable(info) {
        return StepResult::failed(format!(
            "an earlier run sent `{}` and recorded no answer ({why}); it is not safe to repeat blindly. Check ESUS's state, then run the step again",
            info.action.name
        ));
    }
    match rotate(shared, step, info, req, why).await {
        Ok((resp, id, note)) => {
            let mut r = step::finish_answer(shared, ctx, step, info, &resp, &id, None).await;
            r.reason.get_or_insert(note);
            r
        }
        Err(r) => r,
    }
}

/// A rotate whose answer was lost: read the key; if it was rotated, its replacement's secret is
/// lost, so the replacement is rotated again (no grace) to obtain a secret someone holds.
async fn rotate(
    shared: &Arc<super::shared::Shared>,
    step: &Step,
    info: &StepInfo,
    req: &ApiRequest,
    why: &str,
) -> Result<(crate::esus::client::ApiResponse, String, String), StepResult> {
    let key_path = req.path.trim_end_matches("/rotate").to_string();
    let check = ApiRequest::get(key_path);
    let resp = step::exchange(shared, step, info, &check, send_policy(step, true)).await?;
    let body = resp.json();
    if resp.status != 200 {
        return Err(StepResult::failed(format!(
            "outcome unknown: the rotate got no answer ({why}) and the key can no longer be read (ESUS answered {}); it was not re-sent. Look for a replacement with GET /api-keys?name=…",
            resp.status
        )));
    }
    let (retry, note) = match body.get("supersededBy").and_then(Value::as_str) {
        Some(successor) => {
            let again = ApiRequest {
                method: Method::Post,
                path: format!("/api-keys/{}/rotate", encode_segment(successor)),
                query: Vec::new(),
                body: Some(Body::plain("application/json", json!({"graceHours": 0}))),
                auth: Auth::Operator,
            };
            (
                again,
                format!(
                    "the rotate reached ESUS but its answer was lost ({why}); its replacement {successor} was rotated again (graceHours 0) to obtain a secret"
                ),
            )
        }
        None => (
            req.clone(),
            format!(
                "the first rotate got no answer ({why}); ESUS showed it had not happened, so it was sent once more"
            ),
        ),
    };
    let sent = super::send::send(
        shared,
        &step.id,
        None,
        &retry,
        send_policy(step, false),
        step::body_policy(info),
    )
    .await;
    match sent {
        Ok(super::send::Sent::Answer(r, id)) => Ok((r, id, note)),
        Ok(super::send::Sent::Unknown(w)) => Err(StepResult::failed(format!(
            "outcome unknown twice ({why}; {w}); stopped to avoid more rotations"
        ))),
        Ok(other) => Err(step::terminal(other)),
        Err(e) => Err(StepResult::failed(format!(
            "could not record the request: {e}"
        ))),
    }
}
