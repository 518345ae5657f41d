//! SMART on FHIR authorization (authorization code + PKCE) as the simulated ESUS grants it: who
//! may ask (a registered SMART app, or esus-ir's documented public client on a loopback
//! redirect), which scopes are well-formed, the S256 check of a code verifier, and what a scoped
//! token may do. No request handling here: `routes/smart.rs` serves these rules.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

use super::state::State;

/// The public client esus-ir uses without registration (simulator assumption): any loopback
/// redirect `http://127.0.0.1:<port>/callback` (RFC 8252 §7.3: the port is chosen per login).
pub(crate) const ESUS_IR_CLIENT_ID: &str = "esus-ir";

/// A request the approval page is showing: everything the code will be bound to.
#[derive(Debug, Clone)]
pub(crate) struct PendingAuthorization {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) challenge: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Timestamp,
}

/// An issued authorization code (kept by digest).
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: String,
    pub(crate) user_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Timestamp,
    /// Set once exchanged: the session its tokens belong to (revoked if the code comes back).
    pub(crate) session_id: Option<String>,
    /// A failed exchange burns the code too (simulator assumption), without a session.
    pub(crate) used: bool,
}

/// Why a client or redirect URI is refused: shown on a page, never sent to the redirect URI (RFC
/// 6749 §4.1.2.1: an unverified redirect URI must not receive anything).
pub(crate) fn check_client(st: &State, client_id: &str, redirect_uri: &str) -> Result<(), String> {
    if client_id == ESUS_IR_CLIENT_ID {
        return if is_loopback_callback(redirect_uri) {
            Ok(())
        } else {
            Err(format!(
                "redirect_uri is not registered for client {ESUS_IR_CLIENT_ID}: it must be http://127.0.0.1:<port>/callback"
            ))
        };
    }
    let app = st
        .leftovers
        .smart_apps
        .values()
        .find(|a| a.client_id == client_id && a.active)
        .ok_or_else(|| format!("unknown client_id `{client_id}`"))?;
    if app.redirect_uris.iter().any(|u| u == redirect_uri) {
        Ok(())
    } else {
        Err("redirect_uri does not exactly match a redirect URI registered for this app".into())
    }
}

/// The scopes a registered app may be granted (`None`: esus-ir's public client, any well-formed
/// scope).
pub(crate) fn registered_scopes(st: &State, client_id: &str) -> Option<Vec<String>> {
    st.leftovers
        .smart_apps
        .values()
        .find(|a| a.client_id == client_id)
        .map(|a| a.scopes.clone())
}

/// `http://127.0.0.1:<port>/callback`, nothing more (no query, fragment or credentials).
fn is_loopback_callback(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    url.scheme() == "http"
        && url.host_str() == Some("127.0.0.1")
        && url.port().is_some_and(|p| p != 0)
        && url.path() == "/callback"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// Splits and checks a `scope` parameter: SMART v1 scopes (`user|patient|system/Resource.read`,
/// `.write`, `.*`, `*` as the resource) and the launch/identity scopes. Anything else is
/// refused whole (simulator assumption: no silent narrowing).
pub(crate) fn parse_scopes(text: &str) -> Result<Vec<String>, String> {
    let scopes: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    if scopes.is_empty() {
        return Err("scope is required".into());
    }
    match scopes.iter().find(|s| !well_formed(s)) {
        Some(bad) => Err(format!("scope `{bad}` is not a SMART scope")),
        None => Ok(scopes),
    }
}

fn well_formed(scope: &str) -> bool {
    const PLAIN: [&str; 6] = [
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "offline_access",
        "online_access",
    ];
    if PLAIN.contains(&scope) || scope.starts_with("launch/") {
        return true;
    }
    let Some((context, rest)) = scope.split_once('/') else {
        return false;
    };
    let Some((resource, action)) = rest.split_once('.') else {
        return false;
    };
    matches!(context, "user" | "patient" | "system")
        && matches!(action, "read" | "write" | "*")
        && (resource == "*"
            || (!resource.is_empty() && resource.chars().all(|c| c.is_ascii_alphanumeric())))
}

/// Whether a refresh token comes with the grant: only with `online_access` or `offline_access`
/// (SMART App Launch), the hardest reading for a client that wants to renew.
pub(crate) fn grants_refresh(scopes: &[String]) -> bool {
    scopes
        .iter()
        .any(|s| s == "online_access" || s == "offline_access")
}

/// A PKCE `code_challenge` for S256: the base64url (no padding) of a SHA-256 digest, 43 chars.
pub(crate) fn challenge_well_formed(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1 and §4.6: a verifier of 43–128 unreserved characters whose S256 transform is
/// the challenge, compared without an early exit.
pub(crate) fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let syntax = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let same = computed.len() == challenge.len()
        && computed
            .bytes()
            .zip(challenge.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    syntax && same
}

/// The resource a request acts on, as a SMART scope names it: the client's own rule
/// (assumption 31), so the scopes esus-ir asks for and the gate that checks them cannot drift.
fn resource_of(path: &str) -> &str {
    crate::esus::permissions::smart_resource_of(path)
}

/// Routes a SMART token may always use: its own session (`/auth/me`, sessions, logout), and
/// the unauthenticated SMART and discovery routes.
fn ungated(path: &str) -> bool {
    let own = [
        "/auth/me",
        "/auth/sessions",
        "/auth/logout",
        "/auth/refresh",
    ];
    own.iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        || path.starts_with("/smart/authorize")
        || path == "/smart/token"
        || path.starts_with("/.well-known/")
}

/// Whether SMART scopes allow a request: a `user/` or `system/` scope naming the route's
/// resource (or `*`) with `read` for GET/HEAD and `write` otherwise (or `*`); `patient/` scopes
/// count on `/fhir/*` only. `Err` names what was missing.
pub(crate) fn scopes_allow(scopes: &[String], method: &str, path: &str) -> Result<(), String> {
    if ungated(path) {
        return Ok(());
    }
    let resource = resource_of(path);
    let action = if matches!(method, "GET" | "HEAD") {
        "read"
    } else {
        "write"
    };
    let fhir = path.starts_with("/fhir/");
    let ok = scopes.iter().any(|s| {
        let Some((context, rest)) = s.split_once('/') else {
            return false;
        };
        let Some((r, a)) = rest.split_once('.') else {
            return false;
        };
        let context_ok = matches!(context, "user" | "system") || (context == "patient" && fhir);
        context_ok && (r == "*" || r == resource) && (a == "*" || a == action)
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the token's SMART scopes do not allow {resource}.{action} (user/{resource}.{action} needed)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_verifier_matches_its_challenge() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(&format!("{verifier}x"), challenge));
        assert!(challenge_well_formed(challenge));
        // Right transform, wrong syntax: a 42-character verifier is refused.
        assert!(!verifier_matches("a".repeat(42).as_str(), challenge));
    }

    #[test]
    fn scopes_are_checked_whole() {
        assert!(parse_scopes("openid user/*.read online_access").is_ok());
        assert!(parse_scopes("user/Patient.rs").is_err());
        assert!(parse_scopes("admin").is_err());
        assert!(parse_scopes("  ").is_err());
    }

    #[test]
    fn a_read_scope_reads_and_does_not_write() {
        let s = vec!["user/ApiKey.read".to_string()];
        assert!(scopes_allow(&s, "GET", "/api-keys/k-1").is_ok());
        assert!(scopes_allow(&s, "DELETE", "/api-keys/k-1").is_err());
        assert!(scopes_allow(&s, "GET", "/admin/audit").is_err());
        assert!(scopes_allow(&s, "GET", "/auth/me").is_ok());
        let p = vec!["patient/*.read".to_string()];
        assert!(scopes_allow(&p, "GET", "/fhir/Patient/p-1").is_ok());
        assert!(scopes_allow(&p, "GET", "/admin/users").is_err());
    }

    #[test]
    fn only_exact_loopback_callbacks_are_esus_ir_redirects() {
        assert!(is_loopback_callback("http://127.0.0.1:4711/callback"));
        for bad in [
            "http://localhost:4711/callback",
            "https://127.0.0.1:4711/callback",
            "http://127.0.0.1:4711/callback/x",
            "http://127.0.0.1:4711/callback?x=1",
            "http://127.0.0.1/callback",
            "http://evil.example/callback",
        ] {
            assert!(!is_loopback_callback(bad), "{bad}");
        }
    }
}
