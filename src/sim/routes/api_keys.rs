//! `/api-keys*` (admin; OpenAPI getApi-keys, postApi-keys, getApi-keysById, putApi-keysById,
//! deleteApi-keysById, postApi-keysByIdRotate): create, list, get, update, delete, rotate, with
//! ESUS's rotate semantics (a new linked key; the old one authenticates until its grace window
//! ends).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::audit::Entity;
use super::super::auth as crypto;
use super::super::caller::Authed;
use super::super::layers::AuditEntity;
use super::super::outcome::ApiError;
use super::super::state::{ApiKey, is_uuid};
use super::{AppState, Body, query_pairs};

/// Default grace window of rotate, as ESUS documents it.
const DEFAULT_GRACE_HOURS: f64 = 24.0;
/// Longest grace window accepted (simulator assumption: 30 days).
const MAX_GRACE_HOURS: f64 = 720.0;

/// The key object as ESUS returns it; `secret` only on create and rotate.
fn key_json(k: &ApiKey, now: Timestamp, secret: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(k.id));
    m.insert("name".into(), json!(k.name));
    m.insert("clientId".into(), json!(k.client_id));
    if let Some(s) = secret {
        m.insert("secret".into(), json!(s));
    }
    m.insert("scopes".into(), json!(k.scopes));
    let optional = [
        ("expiresAt", k.expires_at),
        ("lastUsedAt", k.last_used_at),
        ("supersededAt", k.superseded_at),
    ];
    for (name, value) in optional {
        if let Some(t) = value {
            m.insert(name.into(), json!(t));
        }
    }
    m.insert("active".into(), json!(k.reported_active(now)));
    m.insert("rateLimit".into(), json!(k.rate_limit));
    if let Some(s) = &k.superseded_by {
        m.insert("supersededBy".into(), json!(s));
    }
    if let Some(a) = &k.app_id {
        m.insert("appId".into(), json!(a));
    }
    m.insert("createdAt".into(), json!(k.created_at));
    Value::Object(m)
}

fn new_credentials() -> (String, String) {
    (
        crypto::random_secret("ck_", 12),
        crypto::random_secret("sk_live_", 32),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    expires_at: Option<Timestamp>,
    rate_limit: Option<u32>,
    app_id: Option<String>,
}

/// `POST /api-keys` → 201 with `secret`.
pub(crate) async fn create(
    State(shared): AppState,
    Authed(caller): Authed,
    Body(body): Body<CreateBody>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let name = body.name.filter(|n| !n.trim().is_empty());
    let name = name.ok_or_else(|| ApiError::invalid("name is required"))?;
    let scopes = body
        .scopes
        .ok_or_else(|| ApiError::invalid("scopes is required"))?;
    let now = shared.clock.now();
    if body.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::invalid("expiresAt must be in the future"));
    }
    // postApi-keys types appId `Format: uuid`; whether ESUS enforces it is undocumented, so it
    // is enforced (simulator assumption).
    if let Some(app) = body.app_id.as_deref().filter(|a| !is_uuid(a)) {
        return Err(ApiError::invalid(format!(
            "appId must be a UUID (8-4-4-4-12 hex digits), got `{app}`"
        )));
    }
    let (client_id, secret) = new_credentials();
    let mut st = shared.lock();
    let id = st.fresh_id("k-");
    let key = ApiKey {
        id: id.clone(),
        name,
        client_id,
        secret_digest: crypto::digest(&secret),
        owner: caller.user_id,
        scopes,
        expires_at: body.expires_at,
        last_used_at: None,
        active: true,
        rate_limit: body.rate_limit.unwrap_or(1000),
        superseded_by: None,
        superseded_at: None,
        grace_ends_at: None,
        app_id: body.app_id,
        created_at: now,
        deleted: false,
    };
    let out = key_json(&key, now, Some(&secret));
    st.insert_key(key);
    Ok(created(out, &id))
}

fn created(body: Value, key_id: &str) -> Response {
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    resp.extensions_mut()
        .insert(AuditEntity(Entity::new("ApiKey", Some(key_id), None)));
    resp
}

/// `GET /api-keys?active=&name=&appId=` → `{items, total}` (deleted keys never listed; `name`
/// is an exact match — simulator assumption).
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let (mut active, mut name, mut app) = (None, None, None);
    for (k, v) in query_pairs(&uri)? {
        match k.as_str() {
            "active" => {
                active = Some(
                    v.parse::<bool>()
                        .map_err(|_| ApiError::invalid("active must be true or false"))?,
                );
            }
            "name" => name = Some(v),
            "appId" => app = Some(v),
            _ => {}
        }
    }
    let now = shared.clock.now();
    let st = shared.lock();
    let items: Vec<Value> = st
        .key_order
        .iter()
        .filter_map(|id| st.visible_key(id))
        .filter(|k| active.is_none_or(|a| k.reported_active(now) == a))
        .filter(|k| name.as_ref().is_none_or(|n| &k.name == n))
        .filter(|k| app.as_ref().is_none_or(|a| k.app_id.as_ref() == Some(a)))
        .map(|k| key_json(k, now, None))
        .collect();
    Ok(Json(json!({"items": items, "total": items.len()})))
}

/// `GET /api-keys/{id}`.
pub(crate) async fn get_one(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let now = shared.clock.now();
    let st = shared.lock();
    let key = st.visible_key(&id).ok_or_else(|| not_found(&id))?;
    Ok(Json(key_json(key, now, None)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("API key {id} not found"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    active: Option<bool>,
    rate_limit: Option<u32>,
}

/// `PUT /api-keys/{id}` `{name?, scopes?, active?, rateLimit?}`.
pub(crate) async fn update(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    if body.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("name must not be empty"));
    }
    let now = shared.clock.now();
    let mut st = shared.lock();
    let key = st
        .keys
        .get_mut(&id)
        .filter(|k| !k.deleted)
        .ok_or_else(|| not_found(&id))?;
    if let Some(n) = body.name {
        key.name = n;
    }
    if let Some(s) = body.scopes {
        key.scopes = s;
    }
    if let Some(a) = body.active {
        key.active = a;
    }
    if let Some(r) = body.rate_limit {
        key.rate_limit = r;
    }
    Ok(Json(key_json(key, now, None)))
}

/// `DELETE /api-keys/{id}` → 204. The key stops authenticating at once and the API answers 404
/// for it afterwards, including a second DELETE (simulator assumption).
pub(crate) async fn remove(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let mut st = shared.lock();
    let key = st
        .keys
        .get_mut(&id)
        .filter(|k| !k.deleted)
        .ok_or_else(|| not_found(&id))?;
    key.deleted = true;
    key.active = false;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RotateBody {
    grace_hours: Option<f64>,
}

/// `POST /api-keys/{id}/rotate` `{graceHours?}` (OpenAPI postApi-keysByIdRotate) → 200 the new
/// key with `secret`. A deleted key answers 404 — unless the scenario switch
/// `behaviour.rotate_deleted_keys` is on: then it is rotated like a live key (a new live key; the
/// deleted one, still 404 to the API, is marked superseded by it). A key that was already rotated is rotated
/// again: a further distinct successor, the old key's `supersededBy`/`supersededAt` name the
/// newest, and its grace window restarts from now with this call's `graceHours` — which can
/// reopen a window an earlier `graceHours: 0` closed (simulator assumptions: ESUS documents no
/// refusal, so the hardest reading for a client).
pub(crate) async fn rotate(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<RotateBody>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let grace = body.grace_hours.unwrap_or(DEFAULT_GRACE_HOURS);
    if !(0.0..=MAX_GRACE_HOURS).contains(&grace) {
        return Err(ApiError::invalid(format!(
            "graceHours must be between 0 and {MAX_GRACE_HOURS}"
        )));
    }
    let now = shared.clock.now();
    let (client_id, secret) = new_credentials();
    let mut st = shared.lock();
    let rotate_deleted = st.rotate_deleted_keys;
    if !st
        .keys
        .get(&id)
        .is_some_and(|k| !k.deleted || rotate_deleted)
    {
        return Err(not_found(&id));
    }
    let new_id = st.fresh_id("k-");
    let old = st.keys.get_mut(&id).ok_or_else(|| not_found(&id))?;
    old.superseded_by = Some(new_id.clone());
    old.superseded_at = Some(now);
    old.grace_ends_at = Some(now + SignedDuration::from_secs_f64(grace * 3600.0));
    let new = ApiKey {
        id: new_id.clone(),
        client_id,
        secret_digest: crypto::digest(&secret),
        last_used_at: None,
        active: true,
        superseded_by: None,
        superseded_at: None,
        grace_ends_at: None,
        created_at: now,
        deleted: false,
        ..old.clone()
    };
    let out = key_json(&new, now, Some(&secret));
    st.insert_key(new);
    let mut resp = Json(out).into_response();
    // The audit entity stays the rotated (old) key, as classified from the path.
    resp.extensions_mut()
        .insert(AuditEntity(Entity::new("ApiKey", Some(&id), None)));
    Ok(resp)
}
