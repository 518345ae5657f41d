//! `/admin/system-admins/*` (system administrators only; OpenAPI getAdminSystem-admins,
//! getAdminSystem-adminsAuditVerify): who the system administrators are, and the recomputation
//! of the audit log's hash chain. The types publish no route to add or remove a system
//! administrator, so none is served.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde_json::{Value, json};

use super::super::audit_chain::{self, Verification};
use super::super::caller::Authed;
use super::super::ids::{audit_event_id, user_uuid};
use super::super::outcome::ApiError;
use super::super::state::State as SimState;
use super::{AppState, limit_param, query_pairs};

/// Rows verified without `limit` (simulator assumption: a small default, so a verification
/// that does not ask for the whole log does not cover it).
pub(crate) const DEFAULT_VERIFY_LIMIT: usize = 100;
/// The most rows one verification covers; a larger `limit` is clamped (simulator assumption).
pub(crate) const MAX_VERIFY_LIMIT: usize = 10_000;

/// `GET /admin/system-admins/` → `{"admins": [...], "total": N}`, ordered by user id. `id` is
/// the user's UUID form (the types make it `Format: uuid`; the rest of the API names the user
/// `u-…`); `lastLoginAt` is when the user's newest session was opened.
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require_system_admin()?;
    let st = shared.lock();
    let mut admins: Vec<_> = st.users.values().filter(|u| u.system_admin).collect();
    admins.sort_by(|a, b| a.id.cmp(&b.id));
    let out: Vec<Value> = admins
        .iter()
        .map(|u| {
            json!({
                "id": user_uuid(&u.id), "email": u.email, "firstName": u.first_name,
                "lastName": u.last_name, "isActive": true, "emailVerified": true,
                "lastLoginAt": last_login(&st, &u.id), "createdAt": u.joined_at,
            })
        })
        .collect();
    Ok(Json(json!({"total": out.len(), "admins": out})))
}

fn last_login(st: &SimState, user_id: &str) -> Option<jiff::Timestamp> {
    st.sessions
        .values()
        .filter(|s| s.user_id == user_id)
        .map(|s| s.created_at)
        .max()
}

/// `GET /admin/system-admins/audit/verify[?limit=N]` → `{"ok", "total", "verifiedThrough",
/// "breaks": [...]}`: the oldest `limit` rows recomputed; `ok` says only that those rows hold no
/// break, `verifiedThrough` how many were recomputed (fewer than `total` unless asked for all).
pub(crate) async fn verify(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_system_admin()?;
    let mut limit = DEFAULT_VERIFY_LIMIT;
    for (k, v) in query_pairs(&uri)? {
        if k == "limit" {
            limit = limit_param(&v, MAX_VERIFY_LIMIT)?;
        }
    }
    let st = shared.lock();
    let v = audit_chain::verify(&st.audit, &st.audit_chain, limit);
    Ok(Json(verification_json(&v)))
}

fn verification_json(v: &Verification) -> Value {
    let breaks: Vec<Value> = v
        .breaks
        .iter()
        .map(|b| {
            json!({
                "id": audit_event_id(&b.row_id), "recorded": b.recorded,
                "storedHash": b.stored_hash.map(hex::encode),
                "expectedHash": hex::encode(b.expected_hash),
                "storedPrevHash": b.stored_prev_hash.map(hex::encode),
                "expectedPrevHash": hex::encode(b.expected_prev_hash),
            })
        })
        .collect();
    json!({
        "ok": v.breaks.is_empty(), "total": v.total,
        "verifiedThrough": v.verified_through, "breaks": breaks,
    })
}
