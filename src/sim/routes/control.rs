//! `/_sim/*`: test-only controls, never part of ESUS and never audited or logged: the request
//! log, rest-hook deliveries, and the simulated clock.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::outcome::ApiError;
use super::{AppState, Body, query_pairs};

/// `GET /_sim/requests[?since=SEQ]` → `{"requests": [...]}`, oldest first.
pub(crate) async fn requests(State(shared): AppState, uri: Uri) -> Result<Json<Value>, ApiError> {
    let since = query_pairs(&uri)?
        .into_iter()
        .find(|(k, _)| k == "since")
        .map(|(_, v)| v.parse::<u64>())
        .transpose()
        .map_err(|_| ApiError::invalid("since must be a sequence number"))?
        .unwrap_or(0);
    Ok(Json(json!({"requests": shared.log.since(since)})))
}

/// `GET /_sim/deliveries` → `{"deliveries": [...]}`.
pub(crate) async fn deliveries(State(shared): AppState) -> Json<Value> {
    Json(json!({"deliveries": shared.hooks.deliveries()}))
}

/// `GET /_sim/clock` → `{"now", "offsetSeconds"}`.
pub(crate) async fn clock(State(shared): AppState) -> Json<Value> {
    Json(json!({"now": shared.clock.now(), "offsetSeconds": shared.clock.offset().as_secs()}))
}

#[derive(Deserialize)]
pub(crate) struct AdvanceBody {
    seconds: Option<u64>,
}

/// `POST /_sim/clock/advance {"seconds": N}` → the new time.
pub(crate) async fn advance(
    State(shared): AppState,
    Body(body): Body<AdvanceBody>,
) -> Result<Json<Value>, ApiError> {
    let secs = body
        .seconds
        .ok_or_else(|| ApiError::invalid("seconds (a non-negative integer) is required"))?;
    shared.clock.advance(Duration::from_secs(secs));
    Ok(Json(
        json!({"now": shared.clock.now(), "offsetSeconds": shared.clock.offset().as_secs()}),
    ))
}
