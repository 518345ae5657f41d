//! `/smart/authorize` and `/smart/token` (OpenAPI getSmartAuthorize, postSmartToken): SMART on
//! FHIR authorization code + PKCE (RFC 6749 §4.1, RFC 7636). The approval page is the
//! simulator's own (ESUS documents none): a form a test can fill over HTTP.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::super::auth as crypto;
use super::super::layers::PeerAddr;
use super::super::smart::{self, AuthCode, PendingAuthorization};
use super::super::state::State as SimState;
use super::auth::{open_session, with_user};
use super::{AppState, query_pairs};

/// Codes live one minute (simulator assumption: RFC 6749 §4.1.2 allows up to ten; the shorter
/// the harder for a client that dawdles).
const CODE_TTL: SignedDuration = SignedDuration::from_secs(60);
/// An approval page left open longer than this must be started again.
const PENDING_TTL: SignedDuration = SignedDuration::from_mins(10);

/// The parameters an authorization request may carry once each (RFC 6749 §3.1).
const AUTHORIZE_PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "launch",
    "code_challenge",
    "code_challenge_method",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// An HTML page: the approval form, or why nothing was sent to the redirect URI.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut resp = (status, html).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(resp)
}

fn refused_page(why: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Authorization request refused",
        &format!("<p>{}</p>", escape(why)),
    )
}

fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// A 302 to the (already verified) redirect URI with `params` added to its query.
fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return refused_page("redirect_uri is not a URL");
    };
    url.query_pairs_mut().extend_pairs(params);
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    no_store(resp)
}

fn redirect_error(uri: &str, error: &str, desc: &str, state: Option<&str>) -> Response {
    let mut params = vec![("error", error), ("error_description", desc)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect(uri, &params)
}

/// The token endpoint's error body, as postSmartToken documents it.
fn oauth_error(status: StatusCode, error: &str, desc: &str) -> Response {
    no_store(
        (
            status,
            Json(json!({"error": error, "error_description": desc})),
        )
            .into_response(),
    )
}

/// `GET /smart/authorize`: checks the request; an unknown client or an unregistered redirect URI
/// gets a page (nothing is sent to that URI), every other error a redirect with `error`. A valid
/// request gets the approval page, or under auto-approval a code at once.
pub(crate) async fn authorize(State(shared): AppState, uri: Uri) -> Response {
    let pairs = match query_pairs(&uri) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (Some(client_id), Some(redirect_uri)) = (get("client_id"), get("redirect_uri")) else {
        return refused_page("client_id and redirect_uri are required");
    };
    let now = shared.clock.now();
    let mut st = shared.lock();
    if let Err(why) = smart::check_client(&st, &client_id, &redirect_uri) {
        return refused_page(&why);
    }
    let state = get("state");
    let pending = match checked_request(&shared.base_url, &st, &pairs, &client_id) {
        Ok((challenge, scopes)) => PendingAuthorization {
            client_id,
            redirect_uri,
            state,
            challenge,
            scopes,
            expires_at: now + PENDING_TTL,
        },
        Err((error, desc)) => return redirect_error(&redirect_uri, error, &desc, state.as_deref()),
    };
    if st.smart_auto_approve {
        let user = st.ready_admin.clone();
        return with_user(issue_code(&mut st, pending, &user, now), Some(user));
    }
    st.smart_pending.retain(|_, p| p.expires_at > now);
    let id = crypto::random_secret("ar_", 16);
    let form = approval_form(&id, &pending);
    st.smart_pending.insert(id, pending);
    page(StatusCode::OK, "Authorize esus-ir", &form)
}

/// Everything but the client and redirect URI: `Ok((code_challenge, scopes))`, or the OAuth
/// error to send back.
fn checked_request(
    base_url: &str,
    st: &SimState,
    pairs: &[(String, String)],
    client_id: &str,
) -> Result<(String, Vec<String>), (&'static str, String)> {
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    for name in AUTHORIZE_PARAMS {
        if pairs.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(("invalid_request", format!("{name} is repeated")));
        }
    }
    if get("response_type").map(String::as_str) != Some("code") {
        return Err((
            "unsupported_response_type",
            "response_type must be code".into(),
        ));
    }
    let challenge = get("code_challenge")
        .filter(|c| smart::challenge_well_formed(c))
        .ok_or((
            "invalid_request",
            "code_challenge (PKCE, S256) is required".into(),
        ))?;
    if get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err((
            "invalid_request",
            "code_challenge_method must be S256 (plain is not supported)".into(),
        ));
    }
    if let Some(aud) = get("aud") {
        let aud = aud.trim_end_matches('/');
        if aud != base_url && aud != format!("{base_url}/fhir") {
            return Err(("invalid_request", "aud is not this server".into()));
        }
    }
    let scopes = smart::parse_scopes(get("scope").map_or("", String::as_str))
        .map_err(|why| ("invalid_scope", why))?;
    if let Some(allowed) = smart::registered_scopes(st, client_id)
        && let Some(extra) = scopes.iter().find(|s| !allowed.contains(s))
    {
        return Err((
            "invalid_scope",
            format!("scope `{extra}` is not registered for this app"),
        ));
    }
    Ok((challenge.clone(), scopes))
}

fn approval_form(id: &str, p: &PendingAuthorization) -> String {
    format!(
        "<p>{client} asks for: <code>{scopes}</code></p>\
<form method=\"post\" action=\"/smart/authorize\">\
<input type=\"hidden\" name=\"request\" value=\"{id}\">\
<label>Email <input name=\"email\"></label>\
<label>Password <input name=\"password\" type=\"password\"></label>\
<label>MFA code <input name=\"mfa_code\"></label>\
<button name=\"decision\" value=\"approve\">Approve</button>\
<button name=\"decision\" value=\"deny\">Deny</button></form>",
        client = escape(&p.client_id),
        scopes = escape(&p.scopes.join(" ")),
        id = escape(id),
    )
}

/// Mints a code bound to the request and sends it to the redirect URI with `state`.
fn issue_code(st: &mut SimState, p: PendingAuthorization, user: &str, now: Timestamp) -> Response {
    st.smart_codes
        .retain(|_, c| c.expires_at > now || c.session_id.is_some());
    let code = crypto::random_secret("ac_", 32);
    st.smart_codes.insert(
        crypto::digest(&code),
        AuthCode {
            client_id: p.client_id,
            redirect_uri: p.redirect_uri.clone(),
            challenge: p.challenge,
            user_id: user.to_owned(),
            scopes: p.scopes,
            expires_at: now + CODE_TTL,
            session_id: None,
            used: false,
        },
    );
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &p.state {
        params.push(("state", s));
    }
    redirect(&p.redirect_uri, &params)
}

/// `POST /smart/authorize` (the approval form; not in the OpenAPI): `request`, `email`,
/// `password`, `mfa_code` when the user has MFA, `decision=approve|deny`.
pub(crate) async fn approve(State(shared): AppState, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let now = shared.clock.now();
    let pending = get("request").and_then(|id| {
        let mut st = shared.lock();
        st.smart_pending.retain(|_, p| p.expires_at > now);
        st.smart_pending.get(&id).cloned().map(|p| (id, p))
    });
    let Some((id, pending)) = pending else {
        return refused_page("unknown or expired authorization request: start the login again");
    };
    match get("decision").as_deref() {
        Some("deny") => {
            shared.lock().smart_pending.remove(&id);
            let state = pending.state.as_deref();
            return redirect_error(&pending.redirect_uri, "access_denied", "denied", state);
        }
        Some("approve") => {}
        _ => return refused_page("decision must be approve or deny"),
    }
    let user = match sign_in(&shared, get("email"), get("password"), get("mfa_code")).await {
        Ok(user) => user,
        Err((why, user)) => {
            let resp = page(StatusCode::UNAUTHORIZED, "Sign-in failed", &escape(why));
            return with_user(resp, user);
        }
    };
    let mut st = shared.lock();
    // Single use: a second approval of the same page finds nothing.
    if st.smart_pending.remove(&id).is_none() {
        return refused_page("this authorization request was already answered");
    }
    with_user(issue_code(&mut st, pending, &user, now), Some(user))
}

/// The user behind the approval form, by password (Argon2, off the async workers) and TOTP.
async fn sign_in(
    shared: &super::super::shared::Shared,
    email: Option<String>,
    password: Option<String>,
    mfa_code: Option<String>,
) -> Result<String, (&'static str, Option<String>)> {
    const BAD: &str = "invalid email or password";
    let (Some(email), Some(password)) = (email, password) else {
        return Err((BAD, None));
    };
    let found = {
        let st = shared.lock();
        st.users_by_email
            .get(&email.to_ascii_lowercase())
            .and_then(|id| st.users.get(id))
            .map(|u| (u.id.clone(), u.password_hash.clone(), u.mfa_secret.clone()))
    };
    let Some((user, phc, mfa)) = found else {
        return Err((BAD, None));
    };
    let ok = tokio::task::spawn_blocking(move || crypto::verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    if !ok {
        return Err((BAD, Some(user)));
    }
    if let Some(secret) = mfa {
        let now = shared.clock.now();
        let code = mfa_code.unwrap_or_default();
        let valid = [-30, 0, 30]
            .iter()
            .any(|d| crypto::totp_code(&secret, now + SignedDuration::from_secs(*d)) == code);
        if !valid {
            return Err(("invalid MFA code", Some(user)));
        }
    }
    Ok(user)
}

/// The token request's fields, from JSON or a form (both published; anything else is 400).
fn token_fields(headers: &HeaderMap, body: &[u8]) -> Option<Vec<(String, String)>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.starts_with("application/x-www-form-urlencoded") {
        return Some(url::form_urlencoded::parse(body).into_owned().collect());
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    Some(
        map.into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect(),
    )
}

/// `POST /smart/token`, grant_type `authorization_code` only. Every attempt burns the code; a
/// code presented again revokes the session its tokens belong to (simulator assumptions, RFC
/// 6749 §4.1.2's SHOULD made a MUST).
pub(crate) async fn token(
    State(shared): AppState,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = token_fields(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send a JSON or form-encoded body",
        );
    };
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    if get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code",
        );
    }
    let (Some(client_id), Some(code)) = (get("client_id"), get("code")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id and code are required",
        );
    };
    let now = shared.clock.now();
    let mut st = shared.lock();
    let known =
        client_id == smart::ESUS_IR_CLIENT_ID || smart::registered_scopes(&st, client_id).is_some();
    if !known {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    let grant = match redeem(&mut st, code, now) {
        Ok(rec) => rec,
        Err((desc, user)) => {
            let resp = oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", desc);
            return with_user(resp, user);
        }
    };
    let user = Some(grant.user_id.clone());
    let bound = grant.client_id == *client_id
        && get("redirect_uri") == Some(&grant.redirect_uri)
        && get("code_verifier").is_some_and(|v| smart::verifier_matches(v, &grant.challenge));
    if !bound {
        let desc =
            "client_id, redirect_uri or code_verifier does not match the authorization request";
        return with_user(
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", desc),
            user,
        );
    }
    let scopes = grant.scopes.clone();
    let pair = match open_session(
        &shared,
        &mut st,
        &grant.user_id,
        peer.as_deref(),
        &headers,
        Some(scopes.clone()),
    ) {
        Ok(pair) => pair,
        Err(e) => return e.into_response(),
    };
    let session = st
        .access_tokens
        .get(&crypto::digest(&pair.access))
        .map(|r| r.session_id.clone());
    if let Some(rec) = st.smart_codes.get_mut(&crypto::digest(code)) {
        rec.session_id = session;
    }
    let mut out = json!({
        "access_token": pair.access,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "scope": scopes.join(" "),
    });
    if smart::grants_refresh(&scopes) {
        out["refresh_token"] = json!(pair.refresh);
    } else {
        st.refresh_tokens.remove(&crypto::digest(&pair.refresh));
    }
    with_user(no_store(Json(out).into_response()), user)
}

/// Takes a code for one exchange: unknown, burned or expired codes are refused, and a code that
/// already gave tokens revokes them. `Err` carries the message and the code's user (for audit).
fn redeem(
    st: &mut SimState,
    code: &str,
    now: Timestamp,
) -> Result<AuthCode, (&'static str, Option<String>)> {
    let digest = crypto::digest(code);
    let Some(rec) = st.smart_codes.get_mut(&digest) else {
        return Err(("unknown or expired authorization code", None));
    };
    let user = Some(rec.user_id.clone());
    if rec.used {
        let session = rec.session_id.clone();
        if let Some(sid) = session {
            st.revoke_session(&sid);
        }
        return Err((
            "authorization code was already used: the tokens issued from it are revoked",
            user,
        ));
    }
    rec.used = true;
    if rec.expires_at <= now {
        return Err(("authorization code has expired", user));
    }
    Ok(rec.clone())
}
