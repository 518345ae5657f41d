//! Turning a step that may start into the exact request(s) it will send — before it is
//! confirmed, so the prompt shows exactly what goes out. Nothing here sends anything.

// A step that cannot go on ends with its `StepResult`: it is the error, built once per step.
#![allow(clippy::result_large_err)]

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::context::Context;
use super::render;
use super::shared::Shared;
use super::step::{Prepared, StepResult};
use crate::esus::actions::Special;
use crate::esus::request::{self, ApiRequest, Auth};
use crate::event::{Event, StepStatus};

/// How a step is being prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the normal course of the run.
    Normal,
    /// A containment check run after the run stopped: it must only read.
    AfterStop,
}

/// Renders step `i`'s request(s). A `foreach` announces its start here, once its items are known.
pub fn prepare(
    shared: &Shared,
    ctx: &Context,
    i: usize,
    max_items: usize,
    mode: Mode,
    batch: Option<super::resume::BatchProgress>,
) -> Result<Prepared, StepResult> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    if let Some(expr) = &step.foreach {
        let items = foreach_items(shared, ctx, expr, max_items);
        let batch = batch.unwrap_or_default();
        // A resumed batch sends only the items an earlier run did not finish.
        let _ = shared.emit(&Event::StepStarted {
            step: step.id.clone(),
            items: items
                .as_ref()
                .ok()
                .map(|all| all.len() - batch.done.keys().filter(|k| **k < all.len()).count()),
        });
        return items
            .map(|items| Prepared::Many { items, batch })
            .map_err(failed);
    }
    let params = render::params(&shared.engine, ctx, step, info, None).map_err(failed)?;
    match info.action.special {
        Special::CheckRevoked => {
            let get = request::build(info.action, &params).map_err(|e| failed(e.0))?;
            let probe = revoked_probe(&params, &get);
            Ok(Prepared::Revoked { get, probe })
        }
        Special::CheckSessions => Ok(Prepared::Sessions(
            super::checks::SessionCheck::from_params(&params, mode == Mode::Normal),
        )),
        Special::None => request::build(info.action, &params)
            .map(Prepared::One)
            .map_err(|e| failed(e.0)),
    }
}

/// The items of a `foreach`, refusing more than the cap (a hostile or mistaken runbook must not
/// send hundreds of thousands of requests from a small file).
fn foreach_items(
    shared: &Shared,
    ctx: &Context,
    expr: &str,
    max_items: usize,
) -> Result<Vec<Value>, String> {
    match shared.engine.eval(expr, ctx.display()) {
        Ok(Value::Array(items)) if items.len() > max_items => Err(format!(
            "`foreach` gives {} items; the cap is {max_items} (raise it with --max-items if this is really meant)",
            items.len()
        )),
        Ok(Value::Array(items)) => Ok(items),
        Ok(other) => Err(format!(
            "`foreach` must give a list; `{expr}` gave {}",
            type_name(&other)
        )),
        Err(e) => Err(format!("`foreach`: {e}")),
    }
}

/// The leaked key's own request: the same URL, authenticated by `client_id:secret`.
fn revoked_probe(params: &request::Params, get: &ApiRequest) -> Option<ApiRequest> {
    let client_id = params
        .display
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let secret = params.secret("secret")?;
    let key = SecretString::from(format!("{client_id}:{}", secret.expose_secret()));
    Some(ApiRequest {
        auth: Auth::ApiKey(key),
        ..ApiRequest::get(get.path.clone())
    })
}

fn failed(reason: String) -> StepResult {
    StepResult {
        status: Some(StepStatus::Failed),
        reason: Some(reason),
        ..StepResult::default()
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
