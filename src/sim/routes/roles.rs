//! `/roles*` (admin): the six built-in roles, and assigning or unassigning them to members.
//! Role ids are UUIDs; a slug where the UUID is expected is an unknown role (404).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::caller::Authed;
use super::super::outcome::ApiError;
use super::super::roles;
use super::super::state::{State as SimState, User};
use super::{AppState, Body};

/// `GET /roles` (OpenAPI getRoles) → a bare array.
pub(crate) async fn list(Authed(caller): Authed) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(roles::list()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssignBody {
    role_id: Option<String>,
}

fn role_slug(id: &str) -> Result<&'static str, ApiError> {
    roles::slug_of(id).ok_or_else(|| ApiError::not_found(format!("role {id} not found")))
}

/// A member of the organization (a removed user is unknown here, simulator assumption).
fn member<'a>(st: &'a mut SimState, user: &str) -> Result<&'a mut User, ApiError> {
    st.users
        .get_mut(user)
        .filter(|u| u.member)
        .ok_or_else(|| ApiError::not_found(format!("user {user} not found")))
}

/// `POST /roles/users/{userId}/assign {"roleId": UUID}` (OpenAPI postRolesUsersByUserIdAssign)
/// → 200 `{"success": true}`; assigning a role already held succeeds (simulator assumption).
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
    let slug = role_slug(&role)?;
    let mut st = shared.lock();
    let u = member(&mut st, &user)?;
    if !u.roles.iter().any(|r| r == slug) {
        u.roles.push(slug.to_owned());
    }
    Ok(Json(json!({"success": true})))
}

/// `DELETE /roles/users/{userId}/{roleId}` (OpenAPI deleteRolesUsersByUserIdByRoleId) → 200
/// `{"success": true}`; 404 if the user does not hold the role (simulator assumption).
pub(crate) async fn unassign(
    State(shared): AppState,
    Authed(caller): Authed,
    Path((user, role)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let slug = role_slug(&role)?;
    let mut st = shared.lock();
    let u = member(&mut st, &user)?;
    let before = u.roles.len();
    u.roles.retain(|r| r != slug);
    if u.roles.len() == before {
        return Err(ApiError::not_found(format!(
            "user {user} does not hold role {role}"
        )));
    }
    Ok(Json(json!({"success": true})))
}
