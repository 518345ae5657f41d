//! `/_sim/*`: test-only controls, never part of ESUS and never audited or logged: the request
//! log, rest-hook deliveries, the simulated clock, the scenario's ground truth, and the audit
//! hooks (tamper with a stored row, append attacker rows).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::audit_chain::AuditTamper;
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

/// `GET /_sim/ground-truth` → what the scenario planted ([`crate::sim::GroundTruth`]).
pub(crate) async fn ground_truth(State(shared): AppState) -> Json<Value> {
    Json(json!(shared.lock().ground_truth))
}

#[derive(Deserialize)]
pub(crate) struct TamperBody {
    id: Option<String>,
    how: Option<String>,
}

/// `POST /_sim/audit/tamper {"id": "a-000010", "how": "edit-content"|"edit-and-rehash"|"drop-hash"}`
/// → `{"tampered": "a-000010"}`; 404 for an unknown row.
pub(crate) async fn tamper(
    State(shared): AppState,
    Body(body): Body<TamperBody>,
) -> Result<Json<Value>, ApiError> {
    let how = match body.how.as_deref().unwrap_or("edit-content") {
        "edit-content" => AuditTamper::EditContent,
        "edit-and-rehash" => AuditTamper::EditAndRehash,
        "drop-hash" => AuditTamper::DropHash,
        other => {
            return Err(ApiError::invalid(format!(
                "how `{other}`: use edit-content, edit-and-rehash or drop-hash"
            )));
        }
    };
    let id = body
        .id
        .ok_or_else(|| ApiError::invalid("id (an audit row id) is required"))?;
    if shared.lock().tamper_audit(&id, how) {
        Ok(Json(json!({"tampered": id})))
    } else {
        Err(ApiError::not_found(format!("audit row {id} not found")))
    }
}

#[derive(Deserialize)]
pub(crate) struct TrickleBody {
    rows: Option<u64>,
}

/// `POST /_sim/audit/trickle {"rows": N}` → `{"appended": N}`: N rows by the compromised user,
/// now, as the `audit_trickle` fault appends them (at most 10 000 at once).
pub(crate) async fn trickle(
    State(shared): AppState,
    Body(body): Body<TrickleBody>,
) -> Result<Json<Value>, ApiError> {
    let n = body
        .rows
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| ApiError::invalid("rows must be a whole number from 1 to 10000"))?;
    super::super::layers::trickle(&shared, None, None, n);
    Ok(Json(json!({"appended": n})))
}
