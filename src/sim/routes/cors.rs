//! `/organizations/{id}/cors-origins` (administrators; OpenAPI
//! getOrganizationsByIdCors-origins, putOrganizationsByIdCors-origins): the browser origins
//! allowed to call ESUS with the organization's credentials. The list is replaced whole: there
//! is no route to add or remove one origin, and no version to guard a read-modify-write, so two
//! sweeps racing lose each other's changes (simulator assumption: last write wins).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::caller::Authed;
use super::super::leftovers::CorsOrigin;
use super::super::outcome::ApiError;
use super::super::state::State as SimState;
use super::{AppState, Body};

fn own_org(st: &SimState, id: &str) -> Result<(), ApiError> {
    if st.org_id == id {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("organization {id} not found")))
    }
}

fn origins_json(st: &SimState) -> Value {
    let list: Vec<&str> = st
        .leftovers
        .cors
        .iter()
        .map(|c| c.origin.as_str())
        .collect();
    json!({"origins": list})
}

/// `GET /organizations/{id}/cors-origins` → `{"origins": [...]}` in the order they were set;
/// another organization is 404.
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let st = shared.lock();
    own_org(&st, &org)?;
    Ok(Json(origins_json(&st)))
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing after (simulator
/// assumption: anything else — a path, a trailing slash, a wildcard — is refused).
fn check_origin(text: &str) -> Result<(), ApiError> {
    let parsed = url::Url::parse(text).ok();
    let origin = parsed
        .filter(|u| ["http", "https"].contains(&u.scheme()))
        .map(|u| u.origin().ascii_serialization());
    if origin.as_deref() == Some(text) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "`{text}` is not an origin (scheme://host[:port], nothing after)"
        )))
    }
}

#[derive(Deserialize)]
pub(crate) struct OriginsBody {
    origins: Option<Vec<String>>,
}

/// `PUT /organizations/{id}/cors-origins {"origins": [...]}` → 200 the new list. Replaces the
/// list; 400 for a missing list, an entry that is not an origin, or one listed twice (nothing
/// changes then).
pub(crate) async fn replace(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(org): Path<String>,
    Body(body): Body<OriginsBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let origins = body
        .origins
        .ok_or_else(|| ApiError::invalid("origins is required"))?;
    for (i, o) in origins.iter().enumerate() {
        check_origin(o)?;
        if origins[..i].contains(o) {
            return Err(ApiError::invalid(format!("`{o}` is listed twice")));
        }
    }
    let now = shared.clock.now();
    let mut st = shared.lock();
    own_org(&st, &org)?;
    let old = std::mem::take(&mut st.leftovers.cors);
    st.leftovers.cors = origins
        .into_iter()
        .map(|o| {
            // An origin kept keeps who added it and when (for the ground truth and accessors).
            old.iter()
                .find(|c| c.origin == o)
                .cloned()
                .unwrap_or(CorsOrigin {
                    origin: o,
                    added_by: caller.user_id.clone(),
                    added_at: now,
                })
        })
        .collect();
    Ok(Json(origins_json(&st)))
}
