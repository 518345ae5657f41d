//! `/admin/users*` (admin): the members of the current organization, removing one, and setting
//! one's organization role — the admin-side cut-off when a user's own credentials are gone.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::caller::Authed;
use super::super::outcome::ApiError;
use super::super::state::OrgRole;
use super::{AppState, Body};

/// `GET /admin/users` (OpenAPI getAdminUsers) → a bare array of
/// `{id, email, firstName, lastName, role, joinedAt}`, members only, ordered by id.
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let st = shared.lock();
    let mut members: Vec<_> = st.users.values().filter(|u| u.member).collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let out: Vec<Value> = members
        .iter()
        .map(|u| {
            json!({
                "id": u.id, "email": u.email, "firstName": u.first_name,
                "lastName": u.last_name, "role": u.org_role.as_str(), "joinedAt": u.joined_at,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

fn not_member(id: &str) -> ApiError {
    ApiError::not_found(format!("user {id} is not a member of this organization"))
}

/// `DELETE /admin/users/{id}` (OpenAPI deleteAdminUsersById) → 200 `{"success": true}`. The
/// user leaves the organization; their sessions stay alive for `/auth/*` but are refused on
/// organization routes, and their API keys keep working (simulator assumptions). 404 for an
/// unknown user or one already removed.
pub(crate) async fn remove(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let mut st = shared.lock();
    let user = st
        .users
        .get_mut(&id)
        .filter(|u| u.member)
        .ok_or_else(|| not_member(&id))?;
    user.member = false;
    Ok(Json(json!({"success": true})))
}

#[derive(Deserialize)]
pub(crate) struct RoleBody {
    role: Option<Value>,
}

/// `PATCH /admin/users/{id}/role {"role": "Admin"|"Member"|"ReadOnly"}` (OpenAPI
/// patchAdminUsersByIdRole) → 200 `{"success": true}`; 400 for anything else; 404 for a
/// non-member.
pub(crate) async fn set_role(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<RoleBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let role = body
        .role
        .as_ref()
        .and_then(Value::as_str)
        .and_then(OrgRole::parse)
        .ok_or_else(|| ApiError::invalid("role must be one of Admin, Member, ReadOnly"))?;
    let mut st = shared.lock();
    let user = st
        .users
        .get_mut(&id)
        .filter(|u| u.member)
        .ok_or_else(|| not_member(&id))?;
    user.org_role = role;
    Ok(Json(json!({"success": true})))
}
