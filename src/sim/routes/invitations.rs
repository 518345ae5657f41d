//! Invitations (administrators; OpenAPI postAuthInvite, getAuthInvitations,
//! deleteAuthInvitationsById): an invitation an attacker sent lets someone join the organization
//! after the stolen credentials are dead — as an owner, an administrator. Revoking an invitation
//! that was already accepted removes the invitation only: the member who joined stays
//! (simulator assumption), and is cut off with `DELETE /admin/users/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::audit::Entity;
use super::super::caller::Authed;
use super::super::layers::AuditEntity;
use super::super::leftovers::Invitation;
use super::super::outcome::ApiError;
use super::super::seed_incident::INVITATION_TTL;
use super::{AppState, Body};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InviteBody {
    email: Option<String>,
    role: Option<String>,
    practitioner_data: Option<Value>,
}

/// `local@domain.tld`, loosely: what `Format: email` is taken to mean here.
fn email_ok(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.split('.').count() >= 2
                && domain.split('.').all(|p| !p.is_empty())
        }
        None => false,
    }
}

/// `POST /auth/invite {"email", ["role": "owner"|"member"], ["practitionerData"]}` → 201
/// `{"message", "invitationId"}`; the invitation expires after 7 days (simulator assumption).
/// 400 for a missing or malformed email or another role.
pub(crate) async fn create(
    State(shared): AppState,
    Authed(caller): Authed,
    Body(body): Body<InviteBody>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let email = body.email.filter(|e| email_ok(e));
    let email = email.ok_or_else(|| ApiError::invalid("email must be an email address"))?;
    let role = body.role.unwrap_or_else(|| "member".into());
    if role != "owner" && role != "member" {
        return Err(ApiError::invalid("role must be owner or member"));
    }
    let now = shared.clock.now();
    let mut st = shared.lock();
    let id = st.fresh_id("inv-");
    st.leftovers.invitations.insert(
        id.clone(),
        Invitation {
            id: id.clone(),
            email,
            role,
            invited_by: caller.user_id.clone(),
            expires_at: now + INVITATION_TTL,
            accepted_at: None,
            accepted_by: None,
            practitioner_data: body.practitioner_data.filter(|v| !v.is_null()),
            created_at: now,
        },
    );
    let out = json!({"message": "Invitation sent", "invitationId": id});
    let mut resp = (StatusCode::CREATED, Json(out)).into_response();
    resp.extensions_mut()
        .insert(AuditEntity(Entity::new("Invitation", Some(&id), None)));
    Ok(resp)
}

/// `GET /auth/invitations` → `{"invitations": [...], "total": N}`: every invitation, accepted
/// and expired ones included (simulator assumption: a client must tell pending ones by
/// `acceptedAt` and `expiresAt` itself), ordered by id. `invitedBy` is the inviter's user id.
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let st = shared.lock();
    let list: Vec<Value> = st
        .leftovers
        .invitations
        .values()
        .map(Invitation::to_json)
        .collect();
    Ok(Json(json!({"total": list.len(), "invitations": list})))
}

/// `DELETE /auth/invitations/{id}` → 200 `{"message"}`; 404 unknown or already revoked.
pub(crate) async fn remove(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    shared
        .lock()
        .leftovers
        .invitations
        .remove(&id)
        .map(|_| Json(json!({"message": "Invitation revoked"})))
        .ok_or_else(|| ApiError::not_found(format!("invitation {id} not found")))
}
