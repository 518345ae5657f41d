//! Simulator contract: `/auth/*` — login (and MFA), refresh, logout, logout-all, sessions, me,
//! token expiry on the simulated clock. (Ownership of sessions, `/auth/me`'s exact shape and
//! refresh-token lifetime are in `sim_contract.rs`.)

use std::time::Duration;

use esus_ir::sim::{SimConfig, totp_code};
use serde_json::json;

use crate::sim_support::{Cred, Sim};

const ADMIN: (&str, &str) = ("admin@riverside.example", "admin-drill-password");

#[tokio::test]
async fn login_returns_a_token_pair_and_httponly_cookies() {
    let s = Sim::start().await;
    let a = s
        .call(
            "POST",
            "/auth/login",
            Cred::None,
            Some(json!({"email": ADMIN.0, "password": ADMIN.1})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["tokenType"], "Bearer");
    assert_eq!(a.body["expiresIn"], "900s");
    assert!(a.body["refreshToken"].is_string());
    let cookies: Vec<_> = a.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies.len(), 2);
    assert!(
        cookies
            .iter()
            .all(|c| c.to_str().expect("ascii").contains("HttpOnly"))
    );
    let token = a.body["accessToken"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let me = s.call("GET", "/auth/me", Cred::Bearer(token), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], "u-0001");
    assert_eq!(me.body["organizations"][0]["roles"], json!(["admin"]));
    assert_eq!(me.body["organizations"][0]["organizationId"], "org-0001");
}

// OpenAPI: postAuthLogin (no error body documented: `{"error"}`, simulator assumption).
#[tokio::test]
async fn login_failures_answer_error_bodies() {
    let s = Sim::start().await;
    let wrong = s
        .call(
            "POST",
            "/auth/login",
            Cred::None,
            Some(json!({"email": ADMIN.0, "password": "nope"})),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.error().contains("invalid email or password"));
    let unknown = s
        .call(
            "POST",
            "/auth/login",
            Cred::None,
            Some(json!({"email": "x@y", "password": "p"})),
        )
        .await;
    assert_eq!(unknown.status, 401);
    let missing = s
        .call(
            "POST",
            "/auth/login",
            Cred::None,
            Some(json!({"email": ADMIN.0})),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert!(missing.error().contains("required"));
    let me = s.call("GET", "/auth/me", Cred::None, None).await;
    assert_eq!(me.status, 401);
    assert!(me.error().contains("authentication required"));
    let junk = s
        .call("GET", "/auth/me", Cred::Bearer("not-a-token"), None)
        .await;
    assert_eq!(junk.status, 401);
}

#[tokio::test]
async fn mfa_login_needs_the_totp_step() {
    let s = Sim::start().await;
    let body = json!({"email": "mfa.admin@riverside.example", "password": "max-drill-password"});
    let first = s.call("POST", "/auth/login", Cred::None, Some(body)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["mfaRequired"], true);
    assert_eq!(first.body["expiresIn"], 300);
    let mfa_token = first.body["mfaToken"].as_str().expect("mfaToken");
    let bad = s
        .call(
            "POST",
            "/auth/mfa/verify",
            Cred::None,
            Some(json!({"mfaToken": mfa_token, "code": "000000x"})),
        )
        .await;
    assert_eq!(bad.status, 401);
    let code = totp_code(b"drill-totp-secret", s.sim.now());
    let ok = s
        .call(
            "POST",
            "/auth/mfa/verify",
            Cred::None,
            Some(json!({"mfaToken": mfa_token, "code": code})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body["accessToken"].is_string());
    let reuse = s
        .call(
            "POST",
            "/auth/mfa/verify",
            Cred::None,
            Some(json!({"mfaToken": mfa_token, "code": code})),
        )
        .await;
    assert_eq!(reuse.status, 401, "an mfaToken is single-use");
}

#[tokio::test]
async fn refresh_issues_a_new_pair_and_retires_the_used_refresh_token() {
    let s = Sim::start().await;
    let refresh =
        secrecy::ExposeSecret::expose_secret(&s.sim.ready().session_refresh_token).to_owned();
    let a = s
        .call(
            "POST",
            "/auth/refresh",
            Cred::None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(a.status, 200);
    let new_access = a.body["accessToken"].as_str().expect("token");
    assert_eq!(
        s.call("GET", "/auth/me", Cred::Bearer(new_access), None)
            .await
            .body["id"],
        "u-1001"
    );
    let again = s
        .call(
            "POST",
            "/auth/refresh",
            Cred::None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(again.status, 401);
    let missing = s
        .call("POST", "/auth/refresh", Cred::None, Some(json!({})))
        .await;
    assert_eq!(missing.status, 400);
}

#[tokio::test]
async fn logout_kills_the_session_and_its_refresh_token() {
    let s = Sim::start().await;
    let token = s.session();
    assert_eq!(
        s.call("GET", "/auth/me", Cred::Bearer(&token), None)
            .await
            .status,
        200
    );
    let out = s
        .call("POST", "/auth/logout", Cred::Bearer(&token), None)
        .await;
    assert_eq!(out.status, 200);
    assert_eq!(out.body, json!({"success": true}));
    let after = s.call("GET", "/auth/me", Cred::Bearer(&token), None).await;
    assert_eq!(after.status, 401);
    let refresh =
        secrecy::ExposeSecret::expose_secret(&s.sim.ready().session_refresh_token).to_owned();
    let r = s
        .call(
            "POST",
            "/auth/refresh",
            Cred::None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(r.status, 401);
    let sessions = s.sim.sessions_of("u-1001");
    let s1001 = sessions.iter().find(|x| x.id == "s-1001").expect("s-1001");
    assert!(s1001.revoked);
    assert!(
        sessions.iter().any(|x| !x.revoked),
        "the user's other session lives"
    );
    let key = s.leaked();
    let by_key = s.call("POST", "/auth/logout", key.cred(), None).await;
    assert_eq!(by_key.status, 403, "logout needs a session token");
}

#[tokio::test]
async fn logout_all_revokes_every_session_of_the_user() {
    let s = Sim::start().await;
    let token = s.session();
    let a = s
        .call("POST", "/auth/logout-all", Cred::Bearer(&token), None)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, json!({"success": true, "revoked": 3}));
    assert!(s.sim.sessions_of("u-1001").iter().all(|x| x.revoked));
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_one_by_one() {
    let s = Sim::start().await;
    let token = s.session();
    let list = s
        .call("GET", "/auth/sessions", Cred::Bearer(&token), None)
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["total"], 3);
    let current: Vec<_> = list.body["sessions"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|x| x["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["sessionId"], "s-1001");
    assert!(current[0]["ipAddress"].is_string() && current[0]["lastSeenAt"].is_string());
    let del = s
        .call(
            "DELETE",
            "/auth/sessions/s-1002",
            Cred::Bearer(&token),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    let again = s
        .call(
            "DELETE",
            "/auth/sessions/s-1002",
            Cred::Bearer(&token),
            None,
        )
        .await;
    assert_eq!(again.status, 404);
    let foreign = s
        .call(
            "DELETE",
            "/auth/sessions/s-2001",
            Cred::Bearer(&token),
            None,
        )
        .await;
    assert_eq!(
        foreign.status, 404,
        "another user's session is not the caller's"
    );
    assert_eq!(
        foreign.error().replace("s-2001", "ID"),
        again.error().replace("s-1002", "ID"),
        "indistinguishable from a gone session"
    );
}

#[tokio::test]
async fn access_tokens_expire_on_the_simulated_clock() {
    let s = Sim::start().await;
    let token = s.session();
    s.sim.advance_clock(Duration::from_secs(14 * 60));
    assert_eq!(
        s.call("GET", "/auth/me", Cred::Bearer(&token), None)
            .await
            .status,
        200
    );
    // Through the HTTP control as well.
    let adv = s
        .call(
            "POST",
            "/_sim/clock/advance",
            Cred::None,
            Some(json!({"seconds": 120})),
        )
        .await;
    assert_eq!(adv.status, 200);
    assert!(adv.body["offsetSeconds"].as_u64().expect("offset") >= 16 * 60);
    let after = s.call("GET", "/auth/me", Cred::Bearer(&token), None).await;
    assert_eq!(after.status, 401);
    assert!(after.error().contains("expired"), "{}", after.body);
}

#[tokio::test]
async fn token_ttl_fault_shortens_new_tokens() {
    let s = Sim::with(
        SimConfig::default()
            .with_fault("token_ttl=60s")
            .expect("spec"),
    )
    .await;
    let a = s
        .call(
            "POST",
            "/auth/login",
            Cred::None,
            Some(json!({"email": ADMIN.0, "password": ADMIN.1})),
        )
        .await;
    assert_eq!(a.body["expiresIn"], "60s");
    let token = a.body["accessToken"].as_str().expect("token").to_owned();
    s.sim.advance_clock(Duration::from_secs(61));
    let after = s.call("GET", "/auth/me", Cred::Bearer(&token), None).await;
    assert_eq!(after.status, 401);
    assert!(after.error().contains("expired"), "{}", after.body);
}
