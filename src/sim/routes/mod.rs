//! The route table, and the small helpers every route uses: a JSON body extractor that answers
//! 400 on bad input, query-pair parsing, and FHIR Bundles.

mod admin_users;
mod api_keys;
mod audit;
mod audit_cursor;
mod auth;
mod bulk_export;
mod control;
mod cors;
mod fhir;
mod invitations;
mod roles;
mod smart;
mod smart_apps;
pub(crate) mod subscriptions;
mod system_admins;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Uri;
use axum::routing::{delete, get, patch, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::outcome::ApiError;
use super::shared::Shared;

/// Handlers' shared state.
type AppState = axum::extract::State<Arc<Shared>>;

/// Builds the whole router with the request layer around the ESUS routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = leftover_routes(core_routes()).merge(control_routes());
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            super::layers::layer,
        ))
        .with_state(shared)
}

/// The routes that were served before issue 19: authentication, keys, audit, roles, FHIR.
fn core_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/mfa/verify", post(auth::mfa_verify))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/logout-all", post(auth::logout_all))
        .route("/auth/sessions", get(auth::sessions))
        .route("/auth/sessions/{id}", delete(auth::delete_session))
        .route("/auth/me", get(auth::me))
        .route("/api-keys", post(api_keys::create).get(api_keys::list))
        .route(
            "/api-keys/{id}",
            get(api_keys::get_one)
                .put(api_keys::update)
                .delete(api_keys::remove),
        )
        .route("/api-keys/{id}/rotate", post(api_keys::rotate))
        .route("/admin/audit", get(audit::all))
        .route("/admin/audit/user/{id}", get(audit::of_user))
        .route("/admin/audit/patient/{id}", get(audit::of_patient))
        .route("/admin/users", get(admin_users::list))
        .route("/admin/users/{id}", delete(admin_users::remove))
        .route("/admin/users/{id}/role", patch(admin_users::set_role))
        .route("/roles", get(roles::list))
        .route("/roles/users/{user}/assign", post(roles::assign))
        .route("/roles/users/{user}/{role}", delete(roles::unassign))
        .route(
            "/fhir/Subscription",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/fhir/Subscription/{id}",
            get(subscriptions::get_one)
                .put(subscriptions::update)
                .patch(subscriptions::patch)
                .delete(subscriptions::remove),
        )
        .route("/fhir/Consent", get(fhir::search_consents))
        .route(
            "/fhir/Consent/{id}",
            get(fhir::get_consent)
                .put(fhir::put_consent)
                .patch(fhir::patch_consent),
        )
        .route("/fhir/Patient/{id}", get(fhir::read_patient))
        .route("/fhir/Observation", get(fhir::search_observations))
        .route(
            "/.well-known/smart-configuration",
            get(fhir::smart_configuration),
        )
        .route(
            "/smart/authorize",
            get(smart::authorize).post(smart::approve),
        )
        .route("/smart/token", post(smart::token))
}

/// What an attacker can leave behind (issue 19), the cursor-paged audit log and its chain.
fn leftover_routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/v1/admin/audit", get(audit_cursor::list))
        .route("/admin/system-admins", get(system_admins::list))
        .route(
            "/admin/system-admins/audit/verify",
            get(system_admins::verify),
        )
        .route(
            "/tenant-apps/{id}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/tenant-apps/{id}/webhooks/{webhook}",
            get(webhooks::get_one)
                .patch(webhooks::update)
                .delete(webhooks::remove),
        )
        .route(
            "/tenant-apps/{id}/webhooks/{webhook}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/tenant-apps/{id}/webhooks/{webhook}/ping",
            post(webhooks::ping),
        )
        .route(
            "/smart/apps",
            get(smart_apps::list).post(smart_apps::create),
        )
        .route(
            "/smart/apps/{id}",
            get(smart_apps::get_one)
                .put(smart_apps::update)
                .delete(smart_apps::remove),
        )
        .route(
            "/organizations/{id}/cors-origins",
            get(cors::list).put(cors::replace),
        )
        .route("/auth/invite", post(invitations::create))
        .route("/auth/invitations", get(invitations::list))
        .route("/auth/invitations/{id}", delete(invitations::remove))
        .route("/fhir/$export", get(bulk_export::system))
        .route("/fhir/Patient/$export", get(bulk_export::patients))
        .route(
            "/bulk-export/{id}",
            get(bulk_export::status).delete(bulk_export::cancel),
        )
}

/// `/_sim/*`: test-only controls (never audited, never logged).
fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/requests", get(control::requests))
        .route("/_sim/deliveries", get(control::deliveries))
        .route("/_sim/clock", get(control::clock))
        .route("/_sim/clock/advance", post(control::advance))
        .route("/_sim/ground-truth", get(control::ground_truth))
        .route("/_sim/audit/tamper", post(control::tamper))
        .route("/_sim/audit/trickle", post(control::trickle))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// A JSON body; any content type is accepted (`application/json`, `application/fhir+json`), an
/// empty body reads as `{}` so optional bodies (rotate) may be left out.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(format!("cannot read body: {e}")))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(Body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}

/// The query string as decoded pairs (repeated names kept).
pub(crate) fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::invalid(format!("invalid query: {e}")))
}

/// A `limit` query value: a whole number from 1, clamped to `max` (simulator assumption: a
/// larger page is silently smaller, so a client must follow the paging it is given).
pub(crate) fn limit_param(value: &str, max: usize) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n.min(max)),
        _ => Err(ApiError::invalid("limit must be a whole number from 1")),
    }
}

/// A FHIR searchset Bundle.
pub(crate) fn bundle(resource_type: &str, resources: Vec<Value>) -> Value {
    let entry: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let url = format!("{resource_type}/{}", r["id"].as_str().unwrap_or_default());
            json!({"fullUrl": url, "resource": r})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry})
}
