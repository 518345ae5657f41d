//! FHIR bulk export (OpenAPI getFhir$export, getFhirPatient$export, getBulk-exportById,
//! deleteBulk-exportById): kick-off, status, cancel. The types publish **no route that lists
//! exports**: a running export is found only through the audit row of its kick-off (its entity
//! is `BulkExport/{id}`) or the kick-off's `Content-Location`. An export reads every patient
//! without a Consent check (it is not a read by id) — which is why an attacker starts one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;

use serde_json::json;

use super::super::audit::Entity;
use super::super::caller::{Authed, Caller};
use super::super::layers::AuditEntity;
use super::super::leftovers::BulkExport;
use super::super::outcome::ApiError;
use super::super::state::State as SimState;
use super::{AppState, query_pairs};

/// How long an export started through the API runs (simulator assumption), so a test sees it
/// in progress until it moves the clock.
const RUN_TIME: SignedDuration = SignedDuration::from_mins(30);

/// What an export covers without `_type`.
const ALL_TYPES: [&str; 3] = ["Patient", "Observation", "Consent"];

fn start(
    shared: &super::super::shared::Shared,
    caller: &Caller,
    uri: &Uri,
) -> Result<Response, ApiError> {
    caller.require_permission("Patient", "read")?;
    let mut types: Vec<String> = ALL_TYPES.iter().map(|t| (*t).to_owned()).collect();
    for (k, v) in query_pairs(uri)? {
        if k == "_type" {
            types = v
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
        }
    }
    if let Some(t) = types.iter().find(|t| !ALL_TYPES.contains(&t.as_str())) {
        return Err(ApiError::invalid(format!("_type `{t}` cannot be exported")));
    }
    let now = shared.clock.now();
    let mut st = shared.lock();
    let id = st.fresh_id("exp-");
    let request = format!("{}{}", shared.base_url, uri);
    st.leftovers.exports.insert(
        id.clone(),
        BulkExport {
            id: id.clone(),
            request,
            types,
            started_by: caller.user_id.clone(),
            started_at: now,
            completes_at: now + RUN_TIME,
        },
    );
    let mut resp = StatusCode::ACCEPTED.into_response();
    let status_url = format!("{}/bulk-export/{id}", shared.base_url);
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    let query = uri.query().unwrap_or_default();
    resp.extensions_mut().insert(AuditEntity(Entity::new(
        "BulkExport",
        Some(&id),
        Some(query),
    )));
    Ok(resp)
}

/// `GET /fhir/$export[?_type=…]` → 202, no body, `Content-Location: <base>/bulk-export/{id}`.
/// Needs `Patient.read`.
pub(crate) async fn system(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Response, ApiError> {
    start(&shared, &caller, &uri)
}

/// `GET /fhir/Patient/$export[?_type=…]` → as `/fhir/$export` (every patient: `patient` is
/// not honoured, simulator assumption).
pub(crate) async fn patients(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Response, ApiError> {
    start(&shared, &caller, &uri)
}

/// The export `id`, if the caller may see it: the user who started it (with any credential) or
/// an administrator's session. Anyone else gets the 404 of an unknown export (simulator
/// assumption: its existence is not revealed).
fn visible<'a>(st: &'a SimState, caller: &Caller, id: &str) -> Result<&'a BulkExport, ApiError> {
    st.leftovers
        .exports
        .get(id)
        .filter(|x| x.started_by == caller.user_id || caller.require_admin().is_ok())
        .ok_or_else(|| ApiError::not_found(format!("bulk export {id} not found")))
}

/// `GET /bulk-export/{id}` → 202 `{"status": "in-progress", "progress": "35%"}` while it runs,
/// then 200 the manifest; 404 unknown or cancelled.
pub(crate) async fn status(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = shared.clock.now();
    let st = shared.lock();
    let x = visible(&st, &caller, &id)?;
    Ok(if x.running_at(now) {
        let body = json!({"status": "in-progress", "progress": x.progress_at(now)});
        (StatusCode::ACCEPTED, Json(body)).into_response()
    } else {
        Json(x.manifest(&shared.base_url)).into_response()
    })
}

/// `DELETE /bulk-export/{id}` → 204: cancelled if running, its files deleted if complete; it is
/// gone afterwards (404).
pub(crate) async fn cancel(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut st = shared.lock();
    visible(&st, &caller, &id)?;
    st.leftovers.exports.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}
