//! The bundled `session-compromise` runbook against the simulator: every session of the user ends,
//! nobody else's does, and the audit log is saved.

use secrecy::ExposeSecret;

use crate::run_support::{Env, verify};
use crate::runbooks_support::{
    assert_complete_rows, dry_run_sends_nothing, evidence, run_ok, step, strings,
};

fn live(env: &Env, user: &str) -> Vec<String> {
    env.sim
        .sessions_of(user)
        .iter()
        .filter(|s| !s.revoked)
        .map(|s| s.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_session_compromise_ends_every_session_of_the_user_and_only_theirs() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    assert!(
        live(&env, &r.user_id).len() >= 2,
        "the scenario has other sessions"
    );
    let others_before = live(&env, "u-1002");
    let token = r.session_token.expose_secret().to_string();
    let user = format!("user_id={}", r.user_id);
    let report = run_ok(
        &env,
        "session-compromise",
        &["--input", &user],
        &[("ESUS_COMPROMISED_TOKEN", &token)],
    )
    .await;

    // Every session of the user is dead; the other user's and the operator's are not.
    assert!(
        live(&env, &r.user_id).is_empty(),
        "{:?}",
        env.sim.sessions_of(&r.user_id)
    );
    assert_eq!(live(&env, "u-1002"), others_before);
    assert!(
        !live(&env, "u-0001").is_empty(),
        "the operator's own session lives"
    );

    // It listed before logging out, and revoked the other session with the operator's token.
    let listed = step(&report, "sessions");
    assert_eq!(
        strings(&listed["outputs"]["current"]),
        [r.session_id.as_str()]
    );
    assert!(strings(&listed["outputs"]["others"]).contains(&"s-1002".to_string()));
    let log = env.sim.requests();
    let pos = |m: &str, p: &str| {
        log.iter()
            .position(|q| q.method == m && q.path == p)
            .unwrap_or_else(|| panic!("{m} {p} in {log:?}"))
    };
    assert!(pos("GET", "/auth/sessions") < pos("POST", "/auth/logout"));
    assert!(pos("POST", "/auth/logout") < pos("DELETE", "/auth/sessions/s-1002"));
    assert!(
        !log.iter()
            .any(|q| q.path == format!("/auth/sessions/{}", r.session_id)),
        "the stolen session is logged out, not revoked a second time"
    );

    // The stolen token is refused afterwards, and the audit log is complete.
    let remaining = step(&report, "remaining");
    assert_eq!(remaining["outputs"]["stolen_token_refused"], true);
    assert_eq!(
        strings(&remaining["outputs"]["remaining"]),
        Vec::<String>::new()
    );
    let saved = evidence(&env, step(&report, "audit"));
    assert_complete_rows(&saved);
    assert!(saved["rows"].as_array().expect("rows").len() > 100);

    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(
        !transcript.contains(&token),
        "the stolen token is never recorded"
    );
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_session_compromise_without_a_live_token_revokes_the_named_sessions() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let user = format!("user_id={}", r.user_id);
    let ids = format!("session_ids={},s-1002", r.session_id);
    let report = run_ok(
        &env,
        "session-compromise",
        &["--input", &user, "--input", &ids],
        &[],
    )
    .await;
    assert!(
        live(&env, &r.user_id).is_empty(),
        "{:?}",
        env.sim.sessions_of(&r.user_id)
    );
    for id in ["sessions", "logout", "remaining"] {
        assert_eq!(step(&report, id)["status"], "skipped", "{id}");
    }
    assert_eq!(step(&report, "revoke_others")["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_session_compromise_can_end_only_the_stolen_session() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let token = r.session_token.expose_secret().to_string();
    let user = format!("user_id={}", r.user_id);
    let report = run_ok(
        &env,
        "session-compromise",
        &["--input", &user, "--input", "revoke_other_sessions=false"],
        &[("ESUS_COMPROMISED_TOKEN", &token)],
    )
    .await;
    assert_eq!(live(&env, &r.user_id), ["s-1002"]);
    assert_eq!(step(&report, "revoke_others")["status"], "skipped");
    assert_eq!(
        step(&report, "remaining")["outputs"]["stolen_token_refused"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_session_compromise_dry_run_sends_nothing() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let token = r.session_token.expose_secret().to_string();
    let user = format!("user_id={}", r.user_id);
    let shown = dry_run_sends_nothing(
        &env,
        "session-compromise",
        &["--input", &user],
        &[("ESUS_COMPROMISED_TOKEN", &token)],
    )
    .await;
    for needle in ["GET ", "/auth/sessions", "POST ", "/auth/logout", "DELETE "] {
        assert!(shown.contains(needle), "`{needle}` not in:\n{shown}");
    }
    assert!(!shown.contains(&token));
    assert!(live(&env, &r.user_id).len() >= 2, "nothing changed");
}
