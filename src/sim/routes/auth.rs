//! `/auth/*`: login (with the optional TOTP step), refresh, logout, logout-all, sessions, me.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::auth as crypto;
use super::super::caller::Authed;
use super::super::layers::{AuditUser, PeerAddr};
use super::super::outcome::ApiError;
use super::super::shared::{Shared, TokenPair};
use super::super::state::{MfaPending, Session, State as SimState};
use super::{AppState, Body};

/// Pending MFA logins expire after this many seconds (documented by ESUS as `expiresIn: 300`).
const MFA_TTL_SECS: i64 = 300;

#[derive(Deserialize)]
pub(crate) struct LoginBody {
    email: Option<String>,
    password: Option<String>,
}

pub(crate) fn with_user(mut resp: Response, user_id: Option<String>) -> Response {
    if let Some(id) = user_id {
        resp.extensions_mut().insert(AuditUser(id));
    }
    resp
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::exception(500, e.to_string())
}

/// The token-pair answer, with the HttpOnly cookies ESUS sets on login.
fn token_response(pair: &TokenPair) -> Response {
    let body = json!({
        "accessToken": pair.access,
        "refreshToken": pair.refresh,
        "expiresIn": format!("{}s", pair.expires_in),
        "tokenType": "Bearer",
    });
    let mut resp = Json(body).into_response();
    for (name, value) in [
        ("esus_access", &pair.access),
        ("esus_refresh", &pair.refresh),
    ] {
        let cookie = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Opens a session for a user and issues its tokens; a SMART session is limited to its scopes.
pub(crate) fn open_session(
    shared: &Shared,
    st: &mut SimState,
    user_id: &str,
    peer: Option<&PeerAddr>,
    headers: &HeaderMap,
    smart_scopes: Option<Vec<String>>,
) -> Result<TokenPair, ApiError> {
    let now = shared.clock.now();
    let id = st.fresh_id("s-");
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    st.sessions.insert(
        id.clone(),
        Session {
            id: id.clone(),
            user_id: user_id.to_owned(),
            created_at: now,
            last_seen_at: now,
            ip: peer.map_or_else(|| "127.0.0.1".into(), |p| p.0.ip().to_string()),
            user_agent,
            revoked: false,
            smart_scopes,
        },
    );
    shared.issue_tokens(st, user_id, &id, now).map_err(internal)
}

/// `POST /auth/login`.
pub(crate) async fn login(
    State(shared): AppState,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    Body(body): Body<LoginBody>,
) -> Response {
    let (Some(email), Some(password)) = (body.email, body.password) else {
        return ApiError::invalid("email and password are required").into_response();
    };
    let found = {
        let st = shared.lock();
        st.users_by_email
            .get(&email.to_ascii_lowercase())
            .and_then(|id| st.users.get(id))
            .map(|u| {
                (
                    u.id.clone(),
                    u.password_hash.clone(),
                    u.mfa_secret.is_some(),
                )
            })
    };
    let Some((user_id, phc, mfa)) = found else {
        return ApiError::unauthorized("login", "invalid email or password").into_response();
    };
    // Argon2 is deliberately slow: verify outside the lock and off the async workers.
    let ok = tokio::task::spawn_blocking(move || crypto::verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    if !ok {
        let resp = ApiError::unauthorized("login", "invalid email or password").into_response();
        return with_user(resp, Some(user_id));
    }
    let mut st = shared.lock();
    let resp = if mfa {
        let token = crypto::random_secret("mfa_", 24);
        let expires_at = shared.clock.now() + SignedDuration::from_secs(MFA_TTL_SECS);
        st.mfa_pending.insert(
            crypto::digest(&token),
            MfaPending {
                user_id: user_id.clone(),
                expires_at,
            },
        );
        Json(json!({"mfaRequired": true, "mfaToken": token, "expiresIn": MFA_TTL_SECS}))
            .into_response()
    } else {
        match open_session(&shared, &mut st, &user_id, peer.as_deref(), &headers, None) {
            Ok(pair) => token_response(&pair),
            Err(e) => e.into_response(),
        }
    };
    with_user(resp, Some(user_id))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MfaBody {
    mfa_token: Option<String>,
    code: Option<String>,
}

/// `POST /auth/mfa/verify` `{"mfaToken","code"}`: TOTP over the user's secret, ±1 step.
pub(crate) async fn mfa_verify(
    State(shared): AppState,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    Body(body): Body<MfaBody>,
) -> Response {
    let (Some(token), Some(code)) = (body.mfa_token, body.code) else {
        return ApiError::invalid("mfaToken and code are required").into_response();
    };
    let now = shared.clock.now();
    let mut st = shared.lock();
    let digest = crypto::digest(&token);
    let Some(pending) = st.mfa_pending.get(&digest).cloned() else {
        return ApiError::unauthorized("login", "unknown or used mfaToken").into_response();
    };
    if pending.expires_at <= now {
        st.mfa_pending.remove(&digest);
        return ApiError::unauthorized("expired", "mfaToken has expired").into_response();
    }
    let secret = st
        .users
        .get(&pending.user_id)
        .and_then(|u| u.mfa_secret.clone())
        .unwrap_or_default();
    let valid = [-30, 0, 30]
        .iter()
        .any(|d| crypto::totp_code(&secret, now + SignedDuration::from_secs(*d)) == code);
    let user = Some(pending.user_id.clone());
    if !valid {
        return with_user(
            ApiError::unauthorized("login", "invalid MFA code").into_response(),
            user,
        );
    }
    st.mfa_pending.remove(&digest);
    let resp = match open_session(
        &shared,
        &mut st,
        &pending.user_id,
        peer.as_deref(),
        &headers,
        None,
    ) {
        Ok(pair) => token_response(&pair),
        Err(e) => e.into_response(),
    };
    with_user(resp, user)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshBody {
    refresh_token: Option<String>,
}

/// `POST /auth/refresh` (OpenAPI postAuthRefresh): a new pair; the used refresh token dies
/// (rotation, simulator assumption), earlier access tokens live until they expire. A used,
/// burned, expired or revoked-session refresh token is 401.
pub(crate) async fn refresh(State(shared): AppState, Body(body): Body<RefreshBody>) -> Response {
    let Some(token) = body.refresh_token else {
        return ApiError::invalid("refreshToken is required").into_response();
    };
    let now = shared.clock.now();
    let mut st = shared.lock();
    let digest = crypto::digest(&token);
    let Some(rec) = st.refresh_tokens.get(&digest).cloned() else {
        return ApiError::unauthorized("login", "refresh token is not valid").into_response();
    };
    let session = st.sessions.get(&rec.session_id).cloned();
    let Some(session) = session.filter(|s| !s.revoked) else {
        return ApiError::unauthorized("login", "session has been logged out or revoked")
            .into_response();
    };
    if rec.expires_at <= now {
        return with_user(
            ApiError::unauthorized("expired", "refresh token has expired").into_response(),
            Some(session.user_id),
        );
    }
    st.refresh_tokens.remove(&digest);
    let resp = match shared.issue_tokens(&mut st, &session.user_id, &session.id, now) {
        Ok(pair) => token_response(&pair),
        Err(e) => internal(e).into_response(),
    };
    with_user(resp, Some(session.user_id))
}

fn session_of(caller: &super::super::caller::Caller) -> Result<String, ApiError> {
    caller.session_id().map(str::to_owned).ok_or_else(|| {
        ApiError::forbidden("this route needs a session's bearer token, not an API key")
    })
}

/// `POST /auth/logout` (OpenAPI postAuthLogout): the current session dies and its refresh
/// token is burned.
pub(crate) async fn logout(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    let sid = session_of(&caller)?;
    shared.lock().revoke_session(&sid);
    Ok(Json(json!({"success": true})))
}

/// `POST /auth/logout-all` (OpenAPI postAuthLogout-all): every active session of the caller
/// ends and every refresh token of the caller is burned; `revoked` counts the sessions.
pub(crate) async fn logout_all(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    session_of(&caller)?;
    let n = shared.lock().revoke_sessions_of(&caller.user_id);
    Ok(Json(json!({"success": true, "revoked": n})))
}

/// `GET /auth/sessions` (OpenAPI getAuthSessions): the caller's own live sessions, whoever the
/// caller is (an admin sees only their own).
pub(crate) async fn sessions(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    let current = session_of(&caller)?;
    let st = shared.lock();
    let list: Vec<Value> = st
        .sessions
        .values()
        .filter(|s| s.user_id == caller.user_id && !s.revoked)
        .map(|s| {
            json!({
                "sessionId": s.id, "createdAt": s.created_at, "lastSeenAt": s.last_seen_at,
                "ipAddress": s.ip, "userAgent": s.user_agent, "current": s.id == current,
            })
        })
        .collect();
    Ok(Json(json!({"total": list.len(), "sessions": list})))
}

/// `DELETE /auth/sessions/{sessionId}` (OpenAPI deleteAuthSessionsBySessionId) → 204: one
/// session of the caller's own, with its refresh token. Another user's session — for an admin
/// too — answers exactly like an unknown or already revoked one: 404 (simulator assumption).
pub(crate) async fn delete_session(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    session_of(&caller)?;
    let mut st = shared.lock();
    let own = st
        .sessions
        .get(&id)
        .is_some_and(|s| !s.revoked && s.user_id == caller.user_id);
    if !own {
        return Err(ApiError::not_found(format!("session {id} not found")));
    }
    st.revoke_session(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /auth/me` (OpenAPI getAuthMe): the profile with its organization memberships; a user
/// removed from the organization has none.
pub(crate) async fn me(State(shared): AppState, Authed(caller): Authed) -> Json<Value> {
    let st = shared.lock();
    let user = st.users.get(&caller.user_id);
    let member = user.is_some_and(|u| u.member);
    let organizations = match user.filter(|_| member) {
        Some(u) => json!([{
            "organizationId": st.org_id,
            "organizationName": st.org_name,
            "role": u.org_role.as_str(),
            "roles": u.roles,
            "permissions": super::super::roles::permissions_of(
                &u.roles,
                u.org_role == super::super::state::OrgRole::Admin,
            ),
        }]),
        None => json!([]),
    };
    Json(json!({
        "id": caller.user_id,
        "email": caller.email,
        "firstName": user.and_then(|u| u.first_name.clone()),
        "lastName": user.and_then(|u| u.last_name.clone()),
        "isActive": true,
        "isSystemAdmin": user.is_some_and(|u| u.system_admin),
        "avatarUrl": null,
        "activeOrganizationId": if member { json!(st.org_id) } else { Value::Null },
        "organizations": organizations,
    }))
}
