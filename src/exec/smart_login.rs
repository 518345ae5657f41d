//! SMART on FHIR login as a native app (authorization code + PKCE, RFC 7636 and RFC 8252): the
//! endpoints from ESUS's discovery document, a fresh S256 verifier and `state` per login, the
//! browser sent to the authorization endpoint, the code taken from a loopback redirect, and the
//! code exchanged for tokens. The verifier, the code and the tokens are secrets from the moment
//! they exist; only the authorization URL (which holds none of them) is ever shown.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::loopback::{CallbackError, Loopback};
use super::shared::Interrupt;
use crate::esus::actions::Method;
use crate::esus::client::{ApiResponse, EsusClient};
use crate::esus::request::{ApiRequest, Auth, Body};
use crate::event::REDACTED;

/// The client id esus-ir logs in with when the operator names no registered SMART app: ESUS's
/// public native client (docs/esus-api.md, SMART assumptions).
pub const DEFAULT_CLIENT_ID: &str = "esus-ir";

/// The scopes asked for when none are named: who the operator is, and nothing else.
pub const IDENTITY_SCOPES: [&str; 2] = ["openid", "fhirUser"];

/// The scope that brings a refresh token (SMART App Launch): valid while the user is online.
const RENEWAL_SCOPE: &str = "online_access";

/// Why a SMART login gave no tokens.
#[derive(Debug, thiserror::Error)]
pub enum SmartLoginError {
    /// ESUS could not be reached at all.
    #[error("cannot reach ESUS: {0}")]
    Unreachable(String),
    /// The discovery document is missing, malformed, on another origin, or without S256.
    #[error("SMART discovery: {0}")]
    Discovery(String),
    /// The redirect did not bring a usable code (timeout, forged state, refusal).
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The token endpoint refused the code.
    #[error("the token endpoint refused the code: {0}")]
    Exchange(String),
}

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct SmartAsk {
    /// Scopes to request (empty: [`IDENTITY_SCOPES`]).
    pub scopes: Vec<String>,
    /// The SMART client id.
    pub client_id: String,
    /// How long to wait for the browser.
    pub timeout: Duration,
}

/// The tokens a login brought. No `Display`; `Debug` shows no secret.
#[derive(Debug)]
pub struct SmartTokens {
    /// The access token (15 minutes at ESUS).
    pub access: SecretString,
    /// The refresh token, when ESUS gave one (it renews through `POST /auth/refresh`).
    pub refresh: Option<SecretString>,
    /// The scopes ESUS granted, as it said.
    pub scope: String,
    /// Seconds until the access token expires, as ESUS said.
    pub expires_in: Option<u64>,
}

/// Opens the authorization URL for a person: a browser, or nothing (the URL is printed anyway).
pub trait Browser: Send + Sync {
    /// Tries to open `url`; `Err` says why it could not.
    fn open(&self, url: &str) -> Result<(), String>;
}

/// The scopes to request: the ones asked for (or the identity scopes), plus `online_access` so
/// that the 15-minute token can be renewed mid-run. Duplicates are dropped, order is kept.
pub fn requested_scopes(asked: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let asked: Vec<String> = asked
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    let base = if asked.is_empty() {
        IDENTITY_SCOPES.iter().map(|s| s.to_string()).collect()
    } else {
        asked
    };
    for s in base.into_iter().chain([RENEWAL_SCOPE.to_string()]) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// A PKCE pair: the verifier (secret) and its S256 challenge (public).
struct Pkce {
    verifier: SecretString,
    challenge: String,
}

impl Pkce {
    /// 64 random bytes as base64url: an 86-character verifier (RFC 7636 §4.1 asks 43–128).
    fn new() -> Pkce {
        let mut bytes = [0u8; 64];
        rand::rng().fill_bytes(&mut bytes);
        let verifier = SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

fn random_state() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// ESUS's SMART endpoints, both on the base URL's origin.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Where the browser goes.
    pub authorize: Url,
    /// Where the code is exchanged (a path under the base URL).
    pub token_path: String,
}

/// Reads `/.well-known/smart-configuration`. Endpoints on another origin are refused: the code
/// and verifier go only where the operator pointed esus-ir.
pub async fn discover(client: &EsusClient) -> Result<Endpoints, SmartLoginError> {
    let req = ApiRequest {
        method: Method::Get,
        path: "/.well-known/smart-configuration".into(),
        query: Vec::new(),
        body: None,
        auth: Auth::None,
    };
    let resp = send(client, &req).await?;
    if resp.status != 200 {
        return Err(SmartLoginError::Discovery(format!(
            "GET /.well-known/smart-configuration answered {}",
            resp.status
        )));
    }
    let doc = resp.json();
    let s256 = doc["code_challenge_methods_supported"]
        .as_array()
        .is_some_and(|m| m.iter().any(|v| v == "S256"));
    if !s256 {
        return Err(SmartLoginError::Discovery(
            "ESUS does not list PKCE S256 in code_challenge_methods_supported: refusing to log in without it".into(),
        ));
    }
    let authorize = same_origin(client.base(), &doc, "authorization_endpoint")?;
    let token = same_origin(client.base(), &doc, "token_endpoint")?;
    let base_path = client.base().path().trim_end_matches('/');
    let token_path = token
        .path()
        .strip_prefix(base_path)
        .unwrap_or(token.path())
        .to_string();
    Ok(Endpoints {
        authorize,
        token_path,
    })
}

fn same_origin(base: &Url, doc: &Value, field: &str) -> Result<Url, SmartLoginError> {
    let text = doc[field]
        .as_str()
        .ok_or_else(|| SmartLoginError::Discovery(format!("no {field}")))?;
    let url = Url::parse(text)
        .map_err(|e| SmartLoginError::Discovery(format!("{field} is not a URL: {e}")))?;
    if url.origin() != base.origin() {
        return Err(SmartLoginError::Discovery(format!(
            "{field} {} is not on {}: refusing to send the login there",
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

/// The URL the browser opens: no secret in it (the challenge, not the verifier).
fn authorization_url(
    endpoints: &Endpoints,
    ask: &SmartAsk,
    aud: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Url {
    let mut url = endpoints.authorize.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &ask.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &requested_scopes(&ask.scopes).join(" "))
        .append_pair("state", state)
        .append_pair("aud", aud)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url
}

/// The whole login: discovery, the browser, the redirect, the exchange. `show` receives what a
/// person must read (the URL to open); it never receives a secret.
pub async fn login(
    client: &EsusClient,
    ask: &SmartAsk,
    browser: &dyn Browser,
    show: &dyn Fn(&str),
    interrupt: &Interrupt,
) -> Result<SmartTokens, SmartLoginError> {
    let endpoints = discover(client).await?;
    let listener = Loopback::bind().await.map_err(CallbackError::Io)?;
    let redirect_uri = listener.redirect_uri();
    let pkce = Pkce::new();
    let state = random_state();
    let aud = client.base().as_str().trim_end_matches('/').to_string();
    let url = authorization_url(
        &endpoints,
        ask,
        &aud,
        &redirect_uri,
        &state,
        &pkce.challenge,
    );
    let wait = super::loopback::shown(ask.timeout);
    match browser.open(url.as_str()) {
        Ok(()) => show(&format!(
            "A browser was opened to log in to ESUS; if it did not show the page, open this URL (waiting up to {wait}):\n{url}"
        )),
        Err(why) => show(&format!(
            "Could not open a browser ({why}). Open this URL to log in to ESUS (waiting up to {wait}):\n{url}"
        )),
    }
    let code = listener.code(&state, ask.timeout, interrupt).await?;
    exchange(
        client,
        &endpoints,
        ask,
        &redirect_uri,
        &code,
        &pkce.verifier,
    )
    .await
}

/// The token answer of postSmartToken; `refresh_token` is not in ESUS's published shape, so it
/// is optional (docs/esus-api.md).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    token_type: String,
    expires_in: Option<u64>,
    scope: Option<String>,
    refresh_token: Option<SecretString>,
}

async fn exchange(
    client: &EsusClient,
    endpoints: &Endpoints,
    ask: &SmartAsk,
    redirect_uri: &str,
    code: &SecretString,
    verifier: &SecretString,
) -> Result<SmartTokens, SmartLoginError> {
    let wire: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code.expose_secret())
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("client_id", &ask.client_id)
        .append_pair("code_verifier", verifier.expose_secret())
        .finish();
    let shown = json!({
        "grant_type": "authorization_code", "code": REDACTED, "redirect_uri": redirect_uri,
        "client_id": ask.client_id, "code_verifier": REDACTED,
    });
    let req = ApiRequest {
        method: Method::Post,
        path: endpoints.token_path.clone(),
        query: Vec::new(),
        body: Some(Body::with_secret(
            "application/x-www-form-urlencoded",
            shown,
            wire.into_bytes(),
        )),
        auth: Auth::None,
    };
    let resp = send(client, &req).await?;
    if resp.status != 200 {
        return Err(SmartLoginError::Exchange(oauth_error(&resp)));
    }
    let answer: TokenAnswer = serde_json::from_slice(&resp.body).map_err(|_| {
        SmartLoginError::Exchange("the answer is not a token response (no access_token)".into())
    })?;
    if !answer.token_type.eq_ignore_ascii_case("bearer") {
        return Err(SmartLoginError::Exchange(format!(
            "token_type `{}` is not Bearer",
            answer.token_type.chars().take(20).collect::<String>()
        )));
    }
    Ok(SmartTokens {
        access: answer.access_token,
        refresh: answer.refresh_token,
        scope: answer.scope.unwrap_or_default(),
        expires_in: answer.expires_in,
    })
}

/// The status and the OAuth `error`/`error_description` (ESUS's documented error body), never
/// anything else of the body.
fn oauth_error(resp: &ApiResponse) -> String {
    let body = resp.json();
    let text = |f: &str| {
        body[f].as_str().map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
    };
    match (text("error"), text("error_description")) {
        (Some(e), Some(d)) => format!("{} {e}: {d}", resp.status),
        (Some(e), None) => format!("{} {e}", resp.status),
        _ => format!("answered {}", resp.status),
    }
}

async fn send(client: &EsusClient, req: &ApiRequest) -> Result<ApiResponse, SmartLoginError> {
    client
        .send(req, None, &uuid::Uuid::new_v4().to_string(), None)
        .await
        .map_err(|e| SmartLoginError::Unreachable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_asked_scopes_are_requested_plus_renewal() {
        assert_eq!(
            requested_scopes(&[]),
            vec!["openid", "fhirUser", "online_access"]
        );
        let asked = vec!["user/ApiKey.write user/AuditEvent.read".to_string()];
        assert_eq!(
            requested_scopes(&asked),
            vec!["user/ApiKey.write", "user/AuditEvent.read", "online_access"]
        );
        assert_eq!(
            requested_scopes(&["online_access".into()]),
            vec!["online_access"]
        );
    }

    #[test]
    fn endpoints_on_another_origin_are_refused() {
        let base = Url::parse("https://api.esus.health/").expect("url");
        let doc = json!({
            "authorization_endpoint": "https://api.esus.health/smart/authorize",
            "token_endpoint": "https://evil.example/smart/token",
        });
        assert!(same_origin(&base, &doc, "authorization_endpoint").is_ok());
        let err = same_origin(&base, &doc, "token_endpoint").expect_err("refused");
        assert!(err.to_string().contains("evil.example"), "{err}");
        let http = json!({"token_endpoint": "http://api.esus.health/smart/token"});
        assert!(
            same_origin(&base, &http, "token_endpoint").is_err(),
            "a downgrade"
        );
    }

    #[test]
    fn the_challenge_is_the_s256_of_a_verifier_of_legal_length() {
        let p = Pkce::new();
        let v = p.verifier.expose_secret();
        assert!((43..=128).contains(&v.len()));
        assert_eq!(
            p.challenge,
            URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
        );
        assert_ne!(Pkce::new().challenge, p.challenge, "fresh per login");
    }
}
