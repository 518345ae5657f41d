//! Who is calling: resolves `Authorization: Bearer` or `X-API-Key: <clientId>:<secret>` into a
//! [`Caller`] once per request (in the request layer), so handlers and the audit row agree.
//! Lookups are by digest in hash maps: no Argon2 and no scans on the request path.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::auth;
use super::outcome::ApiError;
use super::request_log::CredentialKind;
use super::shared::Shared;
use super::state::{OrgRole, User};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user_id: String,
    pub(crate) email: String,
    /// RBAC role slugs.
    pub(crate) roles: Vec<String>,
    /// The organization role.
    pub(crate) org_role: OrgRole,
    /// Whether the user is still a member of the organization.
    pub(crate) member: bool,
    /// Whether the user is an ESUS system administrator.
    pub(crate) system_admin: bool,
    pub(crate) via: Via,
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    /// A session's access token; a SMART session is limited to its scopes.
    Session {
        session_id: String,
        smart_scopes: Option<Vec<String>>,
    },
    /// An API key, limited to its scopes; `app_id` is its tenant app.
    Key {
        scopes: Vec<String>,
        app_id: Option<String>,
    },
}

/// The outcome of credential resolution, stored in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) enum AuthState {
    /// No credential presented.
    Anonymous,
    /// A valid credential.
    Caller(Caller),
    /// A credential was presented and refused: (OperationOutcome code, reason).
    Refused(&'static str, String),
}

impl Caller {
    /// Whether the caller holds a role.
    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the caller acts as an organization administrator: organization role `Admin`,
    /// or the RBAC role `admin` with any organization role (simulator assumption).
    pub(crate) fn is_admin(&self) -> bool {
        self.org_role == OrgRole::Admin || self.has_role("admin")
    }

    /// Admin routes are for people: an admin's session, never an API key (simulator assumption).
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        match self.via {
            Via::Session { .. } if self.is_admin() => Ok(()),
            Via::Session { .. } => Err(ApiError::forbidden("this route needs the admin role")),
            Via::Key { .. } => Err(ApiError::forbidden(
                "admin routes need an admin's bearer token, not an API key",
            )),
        }
    }

    /// System-administrator routes (`/admin/system-admins/*`): a system administrator's session;
    /// organization administrators and API keys are refused (simulator assumption).
    pub(crate) fn require_system_admin(&self) -> Result<(), ApiError> {
        match self.via {
            Via::Session { .. } if self.system_admin => Ok(()),
            Via::Session { .. } => Err(ApiError::forbidden(
                "this route needs a system administrator",
            )),
            Via::Key { .. } => Err(ApiError::forbidden(
                "system-administrator routes need a bearer token, not an API key",
            )),
        }
    }

    /// Whether the caller is an API key of tenant app `app_id` (sent with that `X-App-Id`).
    pub(crate) fn is_key_of_app(&self, app_id: &str) -> bool {
        matches!(&self.via, Via::Key { app_id: Some(a), .. } if a == app_id)
    }

    /// Checks `Resource.action`: API keys by scope (`*` covers all), users by role permission
    /// (an organization `Admin` has every permission).
    pub(crate) fn require_permission(&self, resource: &str, action: &str) -> Result<(), ApiError> {
        let wanted = format!("{resource}.{action}");
        let ok = match &self.via {
            Via::Key { scopes, .. } => scopes.iter().any(|s| s == "*" || *s == wanted),
            Via::Session { .. } => {
                self.org_role == OrgRole::Admin
                    || self
                        .roles
                        .iter()
                        .any(|r| super::roles::role_allows(r, resource, action))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("missing permission {wanted}")))
        }
    }

    /// The session id, when authenticated by token.
    pub(crate) fn session_id(&self) -> Option<&str> {
        match &self.via {
            Via::Session { session_id, .. } => Some(session_id),
            Via::Key { .. } => None,
        }
    }
}

/// Which credential kind the headers carry (bearer wins when both are sent).
pub(crate) fn credential_kind(headers: &HeaderMap) -> CredentialKind {
    if bearer(headers).is_some() {
        CredentialKind::Bearer
    } else if headers.contains_key("x-api-key") {
        CredentialKind::ApiKey
    } else {
        CredentialKind::None
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What every refused API key answers, whatever the reason (unknown client id, wrong secret,
/// deleted, inactive, expired, past its grace window, missing or wrong `X-App-Id`): one 401 body,
/// so a client cannot tell why (simulator assumption).
pub(crate) const KEY_REFUSED: &str = "API key is not valid";

/// Resolves the request's credential against the state, at the simulated time.
pub(crate) fn resolve(shared: &Shared, headers: &HeaderMap) -> AuthState {
    if let Some(token) = bearer(headers) {
        return resolve_bearer(shared, token);
    }
    if let Some(value) = headers.get("x-api-key") {
        return match value.to_str() {
            Ok(v) => resolve_key(shared, v, app_id_header(headers)),
            Err(_) => AuthState::Refused("security", "malformed X-API-Key".into()),
        };
    }
    AuthState::Anonymous
}

/// The `X-App-Id` header (names are case-insensitive: `HeaderMap` folds them): `Ok(None)` when
/// absent, `Ok(Some(value))` when sent once; sent twice or not text is `Err` (it can match no
/// key).
fn app_id_header(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let mut values = headers.get_all("x-app-id").iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    first.to_str().map(Some).map_err(|_| ())
}

/// Whether the request's `X-App-Id` fits the key (simulator assumption: ESUS's quickstart sends
/// it on every request; whether ESUS checks it is undocumented, so the hardest reading): a key of
/// an app needs exactly its `appId`; a key of no app must come without the header.
fn app_id_fits(key_app: Option<&str>, sent: Result<Option<&str>, ()>) -> bool {
    match (key_app, sent) {
        (Some(app), Ok(Some(sent))) => app == sent,
        (None, Ok(None)) => true,
        _ => false,
    }
}

fn resolve_bearer(shared: &Shared, token: &str) -> AuthState {
    let now = shared.clock.now();
    let mut st = shared.lock();
    let Some(rec) = st.access_tokens.get(&auth::digest(token)) else {
        return AuthState::Refused("login", "access token is not valid".into());
    };
    if rec.expires_at <= now {
        return AuthState::Refused("expired", "access token has expired".into());
    }
    let session_id = rec.session_id.clone();
    let Some(session) = st.sessions.get_mut(&session_id).filter(|s| !s.revoked) else {
        return AuthState::Refused("login", "session has been logged out or revoked".into());
    };
    session.last_seen_at = now;
    let user_id = session.user_id.clone();
    let smart_scopes = session.smart_scopes.clone();
    let Some(user) = st.users.get(&user_id) else {
        return AuthState::Refused("login", "user no longer exists".into());
    };
    let via = Via::Session {
        session_id,
        smart_scopes,
    };
    AuthState::Caller(caller_of(user, via))
}

fn caller_of(user: &User, via: Via) -> Caller {
    Caller {
        user_id: user.id.clone(),
        email: user.email.clone(),
        roles: user.roles.clone(),
        org_role: user.org_role,
        member: user.member,
        system_admin: user.system_admin,
        via,
    }
}

fn resolve_key(shared: &Shared, value: &str, app: Result<Option<&str>, ()>) -> AuthState {
    let Some((client_id, secret)) = value.split_once(':') else {
        return AuthState::Refused("security", "X-API-Key must be <clientId>:<secret>".into());
    };
    let now = shared.clock.now();
    let mut st = shared.lock();
    let key_id = match st.key_by_credential(client_id, secret, now) {
        Some(key) if app_id_fits(key.app_id.as_deref(), app) => key.id.clone(),
        _ => return AuthState::Refused("security", KEY_REFUSED.into()),
    };
    let Some(key) = st.keys.get_mut(&key_id) else {
        return AuthState::Refused("security", KEY_REFUSED.into());
    };
    key.last_used_at = Some(now);
    let (owner, scopes) = (key.owner.clone(), key.scopes.clone());
    let via = Via::Key {
        scopes,
        app_id: key.app_id.clone(),
    };
    match st.users.get(&owner) {
        Some(user) => AuthState::Caller(caller_of(user, via)),
        None => AuthState::Caller(Caller {
            user_id: owner,
            email: String::new(),
            roles: Vec::new(),
            org_role: OrgRole::Member,
            member: false,
            system_admin: false,
            via,
        }),
    }
}

/// The organization-route gate (simulator assumption, ESUS documents neither): a session of a
/// user removed from the organization is refused on every organization route, and a `ReadOnly`
/// member's session may only use GET there. API keys are not gated: removing or demoting their
/// owner does not revoke or limit them.
pub(crate) fn org_gate(method: &str, path: &str, auth: &AuthState) -> Result<(), ApiError> {
    let org_route = [
        "/admin/",
        "/api-keys",
        "/roles",
        "/fhir/",
        "/v1/admin/",
        "/tenant-apps/",
        "/smart/apps",
        "/organizations/",
        "/bulk-export/",
        "/auth/invite",
    ]
    .iter()
    .any(|p| path.starts_with(p) || path == p.trim_end_matches('/'));
    let AuthState::Caller(c) = auth else {
        return Ok(());
    };
    if !org_route || !matches!(c.via, Via::Session { .. }) {
        return Ok(());
    }
    if !c.member {
        return Err(ApiError::forbidden(
            "the user is not a member of this organization",
        ));
    }
    if c.org_role == OrgRole::ReadOnly && method != "GET" && method != "HEAD" {
        return Err(ApiError::forbidden(
            "a ReadOnly member may only read (GET) organization routes",
        ));
    }
    Ok(())
}

/// The SMART scope gate (simulator assumption): a session opened by `/smart/token` may do only
/// what its scopes name ([`super::smart::scopes_allow`]), on top of its user's own rights.
pub(crate) fn scope_gate(method: &str, path: &str, auth: &AuthState) -> Result<(), ApiError> {
    let AuthState::Caller(Caller {
        via: Via::Session {
            smart_scopes: Some(scopes),
            ..
        },
        ..
    }) = auth
    else {
        return Ok(());
    };
    super::smart::scopes_allow(scopes, method, path).map_err(ApiError::forbidden)
}

/// Extractor for handlers that need an authenticated caller: 401 otherwise.
pub(crate) struct Authed(pub(crate) Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::Caller(c)) => Ok(Authed(c.clone())),
            Some(AuthState::Refused(code, why)) => Err(ApiError::unauthorized(code, why.clone())),
            _ => Err(ApiError::unauthorized(
                "login",
                "authentication required: Authorization: Bearer <token> or X-API-Key",
            )),
        }
    }
}
