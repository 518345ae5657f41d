//! `/smart/apps*` (administrators; OpenAPI getSmartApps, postSmartApps, getSmartAppsById,
//! putSmartAppsById, deleteSmartAppsById): the SMART on FHIR apps registered with the
//! organization — an app whose redirect URI an attacker controls keeps receiving authorization
//! codes after the stolen credentials are dead.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::audit::Entity;
use super::super::auth::random_secret;
use super::super::caller::Authed;
use super::super::layers::AuditEntity;
use super::super::leftovers::SmartApp;
use super::super::outcome::ApiError;
use super::{AppState, Body, query_pairs};

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("SMART app {id} not found"))
}

fn uris(list: &[String], name: &str) -> Result<(), ApiError> {
    match list.iter().find(|u| url::Url::parse(u).is_err()) {
        Some(bad) => Err(ApiError::invalid(format!(
            "{name}: `{bad}` is not an absolute URL"
        ))),
        None => Ok(()),
    }
}

/// `GET /smart/apps/[?active=true|false][&name=…]` → `{"items": [...], "total": N}`, ordered
/// by id; `name` matches exactly (simulator assumption, as for API keys).
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let (mut active, mut name) = (None, None);
    for (k, v) in query_pairs(&uri)? {
        match k.as_str() {
            "active" => {
                active = Some(
                    v.parse::<bool>()
                        .map_err(|_| ApiError::invalid("active must be true or false"))?,
                );
            }
            "name" => name = Some(v),
            _ => {}
        }
    }
    let st = shared.lock();
    let items: Vec<Value> = st
        .leftovers
        .smart_apps
        .values()
        .filter(|a| active.is_none_or(|x| a.active == x))
        .filter(|a| name.as_ref().is_none_or(|n| &a.name == n))
        .map(|a| a.to_json(None))
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppBody {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    description: Option<String>,
    launch_uri: Option<String>,
    logo_uri: Option<String>,
    is_confidential: Option<bool>,
    active: Option<bool>,
}

/// `POST /smart/apps/` → 201 the app; a confidential app's `clientSecret` appears only here.
/// 400 without `name`, `redirectUris` (absolute URLs, at least one) or `scopes`.
pub(crate) async fn create(
    State(shared): AppState,
    Authed(caller): Authed,
    Body(body): Body<AppBody>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let name = body.name.filter(|n| !n.trim().is_empty());
    let name = name.ok_or_else(|| ApiError::invalid("name is required"))?;
    let redirect_uris = body.redirect_uris.filter(|r| !r.is_empty());
    let redirect_uris =
        redirect_uris.ok_or_else(|| ApiError::invalid("redirectUris needs at least one URI"))?;
    uris(&redirect_uris, "redirectUris")?;
    let scopes = body
        .scopes
        .ok_or_else(|| ApiError::invalid("scopes is required"))?;
    let now = shared.clock.now();
    let mut st = shared.lock();
    let id = st.fresh_id("smart-");
    let confidential = body.is_confidential.unwrap_or(false);
    let app = SmartApp {
        id: id.clone(),
        client_id: random_secret("smart_", 12),
        name,
        description: body.description,
        redirect_uris,
        scopes,
        launch_uri: body.launch_uri,
        logo_uri: body.logo_uri,
        is_confidential: confidential,
        active: true,
        created_at: now,
        updated_at: now,
        created_by: caller.user_id.clone(),
    };
    let secret = confidential.then(|| random_secret("cs_", 32));
    let out = app.to_json(secret.as_deref());
    st.leftovers.smart_apps.insert(id.clone(), app);
    let mut resp = (StatusCode::CREATED, Json(out)).into_response();
    resp.extensions_mut()
        .insert(AuditEntity(Entity::new("SmartApp", Some(&id), None)));
    Ok(resp)
}

/// `GET /smart/apps/{id}` → the app (never its secret); 404.
pub(crate) async fn get_one(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let st = shared.lock();
    let app = st
        .leftovers
        .smart_apps
        .get(&id)
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(app.to_json(None)))
}

/// `PUT /smart/apps/{id}` with any of the create fields and `active` → 200 the app. Only the
/// fields given change (every field of putSmartAppsById is optional); `{"active": false}`
/// disables it and keeps it.
pub(crate) async fn update(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<AppBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    if let Some(r) = &body.redirect_uris {
        uris(r, "redirectUris")?;
    }
    if body.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("name must not be empty"));
    }
    let now = shared.clock.now();
    let mut st = shared.lock();
    let app = st
        .leftovers
        .smart_apps
        .get_mut(&id)
        .ok_or_else(|| not_found(&id))?;
    merge(app, body);
    app.updated_at = now;
    Ok(Json(app.to_json(None)))
}

fn merge(app: &mut SmartApp, body: AppBody) {
    app.name = body.name.unwrap_or(std::mem::take(&mut app.name));
    app.redirect_uris = body
        .redirect_uris
        .unwrap_or(std::mem::take(&mut app.redirect_uris));
    app.scopes = body.scopes.unwrap_or(std::mem::take(&mut app.scopes));
    app.description = body.description.or(app.description.take());
    app.launch_uri = body.launch_uri.or(app.launch_uri.take());
    app.logo_uri = body.logo_uri.or(app.logo_uri.take());
    app.is_confidential = body.is_confidential.unwrap_or(app.is_confidential);
    app.active = body.active.unwrap_or(app.active);
}

/// `DELETE /smart/apps/{id}` → 204; 404.
pub(crate) async fn remove(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    shared
        .lock()
        .leftovers
        .smart_apps
        .remove(&id)
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| not_found(&id))
}
