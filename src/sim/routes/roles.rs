//! `/roles*` (admin): the six built-in roles, and assigning or unassigning them to users.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::caller::Authed;
use super::super::outcome::ApiError;
use super::super::roles;
use super::{AppState, Body};

/// `GET /roles` → a bare array.
pub(crate) async fn list(Authed(caller): Authed) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(roles::list()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssignBody {
    role_id: Option<String>,
}

/// `POST /roles/users/{userId}/assign {"roleId"}` → 200 `{userId, roles}` (idempotent; the
/// answer's shape is a simulator assumption).
pub(crate) async fn assign(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(user): Path<String>,
    Body(body): Body<AssignBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let role = body
        .role_id
        .ok_or_else(|| ApiError::invalid("roleId is required"))?;
    if !roles::exists(&role) {
        return Err(ApiError::not_found(format!("role {role} not found")));
    }
    let mut st = shared.lock();
    let u = st
        .users
        .get_mut(&user)
        .ok_or_else(|| ApiError::not_found(format!("user {user} not found")))?;
    if !u.roles.contains(&role) {
        u.roles.push(role);
    }
    Ok(Json(json!({"userId": u.id, "roles": u.roles})))
}

/// `DELETE /roles/users/{userId}/{roleId}` → 204; 404 if the user does not hold it.
pub(crate) async fn unassign(
    State(shared): AppState,
    Authed(caller): Authed,
    Path((user, role)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let mut st = shared.lock();
    let u = st
        .users
        .get_mut(&user)
        .ok_or_else(|| ApiError::not_found(format!("user {user} not found")))?;
    let before = u.roles.len();
    u.roles.retain(|r| r != &role);
    if u.roles.len() == before {
        return Err(ApiError::not_found(format!(
            "user {user} does not hold role {role}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
