//! `/tenant-apps/{id}/webhooks*` (OpenAPI getTenant-appsByIdWebhooks,
//! postTenant-appsByIdWebhooks, getTenant-appsByIdWebhooksByWebhookId,
//! patchTenant-appsByIdWebhooksByWebhookId, deleteTenant-appsByIdWebhooksByWebhookId,
//! getTenant-appsByIdWebhooksByWebhookIdDeliveries, postTenant-appsByIdWebhooksByWebhookIdPing):
//! a tenant app's webhooks. Who may call is undocumented; the simulator lets an administrator's
//! session manage any app's webhooks and **an API key of the app manage its own** — so a leaked
//! app key can plant a webhook, as an attacker would. The simulator never sends a webhook
//! delivery: deliveries are records (seeded, or `pending` from a ping).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::audit::Entity;
use super::super::auth::random_secret;
use super::super::caller::{Authed, Caller};
use super::super::layers::AuditEntity;
use super::super::leftovers::{WEBHOOK_EVENTS, Webhook, WebhookDelivery};
use super::super::outcome::ApiError;
use super::super::state::State as SimState;
use super::{AppState, Body, limit_param, query_pairs};

/// Deliveries listed without `limit`, and the most listed (simulator assumptions).
const DEFAULT_DELIVERIES: usize = 20;
const MAX_DELIVERIES: usize = 100;

/// Refuses callers other than an administrator's session or a key of `app`, then unknown apps
/// (404).
fn access(st: &SimState, caller: &Caller, app: &str) -> Result<(), ApiError> {
    if !caller.is_key_of_app(app) {
        caller.require_admin().map_err(|_| {
            ApiError::forbidden("webhooks need an administrator or an API key of this app")
        })?;
    }
    if st.tenant_app_exists(app) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("tenant app {app} not found")))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("webhook {id} not found"))
}

/// The webhook `id` of `app` (another app's webhook is unknown here).
fn hook<'a>(st: &'a mut SimState, app: &str, id: &str) -> Result<&'a mut Webhook, ApiError> {
    st.leftovers
        .webhooks
        .get_mut(id)
        .filter(|w| w.app_id == app)
        .ok_or_else(|| not_found(id))
}

fn url(value: &str) -> Result<String, ApiError> {
    match url::Url::parse(value) {
        Ok(u) if ["http", "https"].contains(&u.scheme()) => Ok(value.to_owned()),
        _ => Err(ApiError::invalid("url must be an absolute http(s) URL")),
    }
}

fn events(list: &[Value]) -> Result<Vec<String>, ApiError> {
    let events: Vec<String> = list
        .iter()
        .map(|e| {
            e.as_str()
                .filter(|e| WEBHOOK_EVENTS.contains(e))
                .map(str::to_owned)
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "events must be among {}",
                WEBHOOK_EVENTS.join(", ")
            ))
        })?;
    if events.is_empty() {
        return Err(ApiError::invalid("events must name at least one event"));
    }
    Ok(events)
}

/// `GET /tenant-apps/{id}/webhooks/` → `{"webhooks": [...]}` (no secrets), ordered by id.
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let st = shared.lock();
    access(&st, &caller, &app)?;
    let hooks: Vec<Value> = st
        .leftovers
        .webhooks
        .values()
        .filter(|w| w.app_id == app)
        .map(|w| w.to_json(false))
        .collect();
    Ok(Json(json!({"webhooks": hooks})))
}

#[derive(Deserialize)]
pub(crate) struct CreateBody {
    url: Option<String>,
    events: Option<Vec<Value>>,
    description: Option<String>,
    secret: Option<String>,
}

/// `POST /tenant-apps/{id}/webhooks/ {"url","events",["description"],["secret"]}` → 201 the
/// webhook with its `secret` (generated unless given; shown only here and after a PATCH with
/// `rotateSecret`).
pub(crate) async fn create(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(app): Path<String>,
    Body(body): Body<CreateBody>,
) -> Result<Response, ApiError> {
    let now = shared.clock.now();
    let mut st = shared.lock();
    access(&st, &caller, &app)?;
    let url = url(body.url.as_deref().unwrap_or_default())?;
    let events = events(body.events.as_deref().unwrap_or_default())?;
    let id = uuid::Uuid::new_v4().to_string();
    let hook = Webhook {
        id: id.clone(),
        app_id: app,
        url,
        events,
        description: body.description,
        active: true,
        secret: body.secret.unwrap_or_else(|| random_secret("whsec_", 24)),
        created_at: now,
        updated_at: now,
        created_by: caller.user_id.clone(),
    };
    let out = hook.to_json(true);
    st.leftovers.webhooks.insert(id.clone(), hook);
    let mut resp = (StatusCode::CREATED, Json(out)).into_response();
    resp.extensions_mut()
        .insert(AuditEntity(Entity::new("Webhook", Some(&id), None)));
    Ok(resp)
}

/// `GET /tenant-apps/{id}/webhooks/{webhookId}` → the webhook (no secret); 404.
pub(crate) async fn get_one(
    State(shared): AppState,
    Authed(caller): Authed,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut st = shared.lock();
    access(&st, &caller, &app)?;
    Ok(Json(hook(&mut st, &app, &id)?.to_json(false)))
}

/// Applies a PATCH body to a webhook; returns whether the secret was rotated.
fn apply_patch(w: &mut Webhook, body: &Value) -> Result<bool, ApiError> {
    let map = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
    let wrong = |name: &str, what: &str| ApiError::invalid(format!("{name} must be {what}"));
    if let Some(v) = map.get("url") {
        w.url = url(v.as_str().ok_or_else(|| wrong("url", "a string"))?)?;
    }
    if let Some(v) = map.get("events") {
        w.events = events(v.as_array().ok_or_else(|| wrong("events", "an array"))?)?;
    }
    if let Some(v) = map.get("description") {
        w.description = match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(wrong("description", "a string or null")),
        };
    }
    if let Some(v) = map.get("active") {
        w.active = v
            .as_bool()
            .ok_or_else(|| wrong("active", "true or false"))?;
    }
    let rotate = match map.get("rotateSecret") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| wrong("rotateSecret", "true or false"))?,
    };
    if rotate {
        w.secret = random_secret("whsec_", 24);
    }
    Ok(rotate)
}

/// `PATCH /tenant-apps/{id}/webhooks/{webhookId}` `{url?, events?, description?, active?,
/// rotateSecret?}` → 200 the webhook (with the new `secret` after `rotateSecret`); a refused
/// body changes nothing. `{"active": false}` disables it and keeps it.
pub(crate) async fn update(
    State(shared): AppState,
    Authed(caller): Authed,
    Path((app, id)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let now = shared.clock.now();
    let mut st = shared.lock();
    access(&st, &caller, &app)?;
    let w = hook(&mut st, &app, &id)?;
    let mut changed = w.clone();
    let rotated = apply_patch(&mut changed, &body)?;
    changed.updated_at = now;
    *w = changed;
    Ok(Json(w.to_json(rotated)))
}

/// `DELETE /tenant-apps/{id}/webhooks/{webhookId}` → 204; 404. Its delivery records go too.
pub(crate) async fn remove(
    State(shared): AppState,
    Authed(caller): Authed,
    Path((app, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut st = shared.lock();
    access(&st, &caller, &app)?;
    hook(&mut st, &app, &id)?;
    st.leftovers.webhooks.remove(&id);
    st.leftovers.deliveries.retain(|d| d.webhook_id != id);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/{webhookId}/deliveries[?limit=N]` → `{"deliveries": [...]}`, newest first, at most
/// `limit` (default 20, at most 100).
pub(crate) async fn deliveries(
    State(shared): AppState,
    Authed(caller): Authed,
    Path((app, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let mut limit = DEFAULT_DELIVERIES;
    for (k, v) in query_pairs(&uri)? {
        if k == "limit" {
            limit = limit_param(&v, MAX_DELIVERIES)?;
        }
    }
    let mut st = shared.lock();
    access(&st, &caller, &app)?;
    hook(&mut st, &app, &id)?;
    let list: Vec<Value> = st
        .leftovers
        .deliveries
        .iter()
        .rev()
        .filter(|d| d.webhook_id == id)
        .take(limit)
        .map(WebhookDelivery::to_json)
        .collect();
    Ok(Json(json!({"deliveries": list})))
}

/// `POST …/{webhookId}/ping` → 200 `{"deliveryId"}`, active or not: the delivery is `pending`,
/// or `failed` with "webhook is inactive" for a disabled webhook — a 200 proves nothing about
/// the webhook being live (simulator assumption).
pub(crate) async fn ping(
    State(shared): AppState,
    Authed(caller): Authed,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let now = shared.clock.now();
    let mut st = shared.lock();
    access(&st, &caller, &app)?;
    let active = hook(&mut st, &app, &id)?.active;
    let delivery = ping_delivery(&id, active, now);
    let out = json!({"deliveryId": delivery.id});
    st.leftovers.deliveries.push(delivery);
    Ok(Json(out))
}

fn ping_delivery(webhook: &str, active: bool, now: Timestamp) -> WebhookDelivery {
    WebhookDelivery {
        id: uuid::Uuid::new_v4().to_string(),
        webhook_id: webhook.to_owned(),
        event_id: random_secret("evt_", 9),
        event_type: "webhook.ping".into(),
        status: if active { "pending" } else { "failed" }.into(),
        attempts: u32::from(!active),
        last_status_code: None,
        last_error: (!active).then(|| "webhook is inactive".to_owned()),
        last_attempt_at: (!active).then_some(now),
        delivered_at: None,
        created_at: now,
    }
}
