//! `/fhir/Subscription*`: create, list, read, update, delete. Rest-hook subscriptions on
//! AuditEvent criteria are notified by the audit layer (see `hooks.rs`). Managing subscriptions
//! needs `Subscription.read`/`Subscription.write` (admins; API keys by scope).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::audit::Entity;
use super::super::caller::Authed;
use super::super::hooks::Criteria;
use super::super::layers::AuditEntity;
use super::super::outcome::ApiError;
use super::super::state::Subscription;
use super::{AppState, Body, bundle};

const CHANNELS: [&str; 4] = ["rest-hook", "websocket", "email", "message"];
const STATUSES: [&str; 4] = ["requested", "active", "error", "off"];

/// Validates a Subscription resource and extracts what delivery needs (also used to seed a
/// scenario's Subscriptions).
pub(crate) fn parse(
    mut resource: Value,
    id: &str,
    now: jiff::Timestamp,
    version: u64,
) -> Result<Subscription, ApiError> {
    if resource["resourceType"] != "Subscription" {
        return Err(ApiError::invalid("resourceType must be Subscription"));
    }
    let criteria_text = resource["criteria"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("criteria is required"))?;
    let criteria = Criteria::parse(criteria_text).map_err(ApiError::invalid)?;
    let channel = &resource["channel"];
    let kind = channel["type"]
        .as_str()
        .filter(|t| CHANNELS.contains(t))
        .ok_or_else(|| {
            ApiError::invalid("channel.type must be rest-hook, websocket, email or message")
        })?
        .to_owned();
    let endpoint = channel["endpoint"].as_str().map(str::to_owned);
    if kind == "rest-hook" && endpoint.is_none() {
        return Err(ApiError::invalid(
            "a rest-hook channel needs channel.endpoint",
        ));
    }
    let headers: Vec<(String, String)> = channel["header"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter_map(Value::as_str)
                .filter_map(|h| h.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    // ESUS activates accepted subscriptions at once (simulator assumption for absent status).
    let status = resource["status"].as_str().unwrap_or("active").to_owned();
    if !STATUSES.contains(&status.as_str()) {
        return Err(ApiError::invalid(
            "status must be requested, active, error or off",
        ));
    }
    resource["id"] = json!(id);
    resource["status"] = json!(status);
    resource["meta"] = json!({"versionId": version.to_string(), "lastUpdated": now});
    Ok(Subscription {
        id: id.to_owned(),
        resource,
        criteria,
        endpoint: endpoint.filter(|_| kind == "rest-hook"),
        headers,
        active: status == "active",
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Subscription/{id} not found"))
}

/// `POST /fhir/Subscription` → 201 the resource with `id` and `meta`.
pub(crate) async fn create(
    State(shared): AppState,
    Authed(caller): Authed,
    Body(resource): Body<Value>,
) -> Result<Response, ApiError> {
    caller.require_permission("Subscription", "write")?;
    let now = shared.clock.now();
    let mut st = shared.lock();
    let id = st.fresh_id("sub-");
    let sub = parse(resource, &id, now, 1)?;
    let body = sub.resource.clone();
    st.subscriptions.insert(id.clone(), sub);
    st.leftovers
        .subscription_creators
        .insert(id.clone(), (caller.user_id.clone(), now));
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/fhir/Subscription/{id}", shared.base_url)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp.extensions_mut()
        .insert(AuditEntity(Entity::new("Subscription", Some(&id), None)));
    Ok(resp)
}

/// `GET /fhir/Subscription` → a searchset Bundle.
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Subscription", "read")?;
    let st = shared.lock();
    let all = st
        .subscriptions
        .values()
        .map(|s| s.resource.clone())
        .collect();
    Ok(Json(bundle("Subscription", all)))
}

/// `GET /fhir/Subscription/{id}`.
pub(crate) async fn get_one(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Subscription", "read")?;
    let st = shared.lock();
    let sub = st.subscriptions.get(&id).ok_or_else(|| not_found(&id))?;
    Ok(Json(sub.resource.clone()))
}

/// `PUT /fhir/Subscription/{id}`: replaces it (e.g. `status: off`); 404 if unknown.
pub(crate) async fn update(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(resource): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Subscription", "write")?;
    if resource["id"].as_str().is_some_and(|rid| rid != id) {
        return Err(ApiError::invalid("resource id does not match the URL"));
    }
    let now = shared.clock.now();
    let mut st = shared.lock();
    let old = st.subscriptions.get(&id).ok_or_else(|| not_found(&id))?;
    let version = old.resource["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1)
        + 1;
    let sub = parse(resource, &id, now, version)?;
    let body = sub.resource.clone();
    st.subscriptions.insert(id, sub);
    Ok(Json(body))
}

/// The fields of patchFhirSubscriptionById's body.
const PATCH_FIELDS: [&str; 5] = ["status", "reason", "criteria", "channel", "end"];

/// Checks a PATCH body against ESUS's schema: an object of [`PATCH_FIELDS`] only (anything
/// else is 400 naming it, simulator assumption as for Consent: a client that PATCHes back the
/// resource it read is caught), and a `channel`, when given, with `type` and `endpoint` (the
/// types require both).
fn patch_body(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    let map = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
    if let Some(k) = map.keys().find(|k| !PATCH_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "unknown field `{k}`: ESUS's Subscription patch takes only {}",
            PATCH_FIELDS.join(", ")
        )));
    }
    if let Some(k) = map
        .iter()
        .find(|(k, v)| k.as_str() != "channel" && !v.is_string())
        .map(|(k, _)| k)
    {
        return Err(ApiError::invalid(format!("{k} must be a string")));
    }
    if let Some(ch) = map.get("channel")
        && !(ch["type"].is_string() && ch["endpoint"].is_string())
    {
        return Err(ApiError::invalid("channel needs type and endpoint"));
    }
    Ok(map)
}

/// `PATCH /fhir/Subscription/{id}` (patchFhirSubscriptionById): merges the given fields into
/// the stored resource — `{"status": "off"}` switches one off and keeps it as evidence — →
/// 200 the resource, `versionId` + 1; 400; 404.
pub(crate) async fn patch(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Subscription", "write")?;
    let fields = patch_body(&body)?;
    let now = shared.clock.now();
    let mut st = shared.lock();
    let old = st.subscriptions.get(&id).ok_or_else(|| not_found(&id))?;
    let version = old.resource["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1)
        + 1;
    let mut resource = old.resource.clone();
    for (k, v) in fields {
        resource[k.as_str()] = v.clone();
    }
    let sub = parse(resource, &id, now, version)?;
    let out = sub.resource.clone();
    st.subscriptions.insert(id, sub);
    Ok(Json(out))
}

/// `DELETE /fhir/Subscription/{id}` → 204; 404 if unknown.
pub(crate) async fn remove(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_permission("Subscription", "write")?;
    shared
        .lock()
        .subscriptions
        .remove(&id)
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| not_found(&id))
}
