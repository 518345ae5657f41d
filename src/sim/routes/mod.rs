//! The route table, and the small helpers every route uses: a JSON body extractor that answers
//! 400 on bad input, query-pair parsing, and FHIR Bundles.

mod admin_users;
mod api_keys;
mod audit;
mod auth;
mod control;
mod fhir;
mod roles;
pub(crate) mod subscriptions;

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
        .route("/_sim/requests", get(control::requests))
        .route("/_sim/deliveries", get(control::deliveries))
        .route("/_sim/clock", get(control::clock))
        .route("/_sim/clock/advance", post(control::advance))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            super::layers::layer,
        ))
        .with_state(shared)
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
