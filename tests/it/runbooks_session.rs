//! The bundled `session-compromise` runbook against a simulator that keeps ESUS's rule: sessions
//! belong to their user, so only the stolen credentials themselves can end them. Every session of
//! the user ends, nobody else's does, containment is proven against ESUS — and when no credential
//! of the user works any more, the run says NOT CONTAINED instead of pretending.

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, text, verify};
use crate::runbooks_support::{
    assert_complete_rows, dry_run_sends_nothing, evidence, run, run_in, run_ok, step, strings,
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
async fn runbooks_session_compromise_ends_all_three_sessions_through_the_stolen_token() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let before = live(&env, &r.user_id);
    assert_eq!(
        before.len(),
        3,
        "the scenario gives the user three sessions"
    );
    let others_before = live(&env, "u-1002");
    let token = r.session_token.expose_secret().to_string();
    let refresh = r.session_refresh_token.expose_secret().to_string();
    let user = format!("user_id={}", r.user_id);
    let report = run_ok(
        &env,
        "session-compromise",
        &["--input", &user],
        &[
            ("ESUS_COMPROMISED_TOKEN", &token),
            ("ESUS_COMPROMISED_REFRESH_TOKEN", &refresh),
        ],
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

    // It listed with the stolen token, then logged everything out with it — never with the
    // operator's token, which ESUS does not let end another user's sessions.
    let listed = step(&report, "sessions");
    let mut ids = strings(&listed["outputs"]["session_ids"]);
    ids.sort();
    let mut want = before.clone();
    want.sort();
    assert_eq!(ids, want);
    let log = env.sim.requests();
    let pos = |m: &str, p: &str| {
        log.iter()
            .position(|q| q.method == m && q.path == p)
            .unwrap_or_else(|| panic!("{m} {p} in {log:?}"))
    };
    assert!(pos("GET", "/auth/sessions") < pos("POST", "/auth/logout-all"));
    assert!(
        !log.iter()
            .any(|q| q.method == "DELETE" && q.path.starts_with("/auth/sessions/")),
        "no per-session DELETE with the operator's token: {log:?}"
    );
    assert_eq!(step(&report, "logout_all")["outputs"]["revoked"], 3);

    // Containment is proven, from ESUS's answers, and leads the report.
    assert_eq!(report["containment"]["state"], "contained", "{report:#}");
    let proof = report["containment"]["summary"].as_str().expect("summary");
    for needle in [
        "stolen access token is refused (401)",
        "stolen refresh token is refused (401)",
        "logout-all ended 3 session(s)",
    ] {
        assert!(proof.contains(needle), "`{needle}` not in {proof}");
    }
    let saved = evidence(&env, step(&report, "audit"));
    assert_complete_rows(&saved);

    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(!transcript.contains(&token) && !transcript.contains(&refresh));
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_session_compromise_contains_with_the_stolen_refresh_token_when_the_access_token_expired()
 {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    // Access tokens live 15 minutes, refresh tokens 30 days.
    env.sim
        .advance_clock(std::time::Duration::from_secs(20 * 60));
    let token = r.session_token.expose_secret().to_string();
    let refresh = r.session_refresh_token.expose_secret().to_string();
    let user = format!("user_id={}", r.user_id);
    let report = run_ok(
        &env,
        "session-compromise",
        &["--input", &user],
        &[
            ("ESUS_COMPROMISED_TOKEN", &token),
            ("ESUS_COMPROMISED_REFRESH_TOKEN", &refresh),
            // The operator's own token expired too; it is renewed by its refresh token.
            ("ESUS_REFRESH_TOKEN", r.admin_refresh_token.expose_secret()),
        ],
    )
    .await;
    assert_eq!(step(&report, "sessions")["outputs"]["token_alive"], false);
    assert_eq!(step(&report, "refresh")["outputs"]["alive"], true);
    assert_eq!(step(&report, "logout_all")["status"], "ok");
    assert!(live(&env, &r.user_id).is_empty());
    assert_eq!(report["containment"]["state"], "contained", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_session_compromise_with_no_working_credential_ends_not_contained() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let token = r.session_token.expose_secret().to_string();
    // The stolen token is already dead (its session was logged out), and no refresh token is
    // known: nothing the operator holds can list or end the user's other sessions.
    let logout = reqwest::Client::new()
        .post(format!("{}/auth/logout", env.sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200);
    let still_open = live(&env, &r.user_id);
    assert!(!still_open.is_empty(), "the user has other sessions");
    let user = format!("user_id={}", r.user_id);

    // Unattended with --yes: the cut-off is `typed`, so it is not approved — the run stops, and
    // says NOT CONTAINED before anything else.
    let out = run(
        &env,
        "session-compromise",
        &["--input", &user],
        &[("ESUS_COMPROMISED_TOKEN", &token)],
        true,
    )
    .await;
    assert_code(&out, 3);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        report["containment"]["state"], "not-contained",
        "{report:#}"
    );
    let why = report["containment"]["summary"].as_str().expect("summary");
    assert!(why.contains("never listed"), "{why}");
    assert_eq!(step(&report, "cut_off")["status"], "declined");
    assert_eq!(step(&report, "contained")["status"], "failed");
    assert_eq!(live(&env, &r.user_id), still_open, "nothing was ended");

    // In text, the containment state comes first.
    let out = run_in(
        &env,
        &env.dir.path().join("run-text"),
        "session-compromise",
        &["--input", &user, "--yes", "--non-interactive"],
        &[("ESUS_COMPROMISED_TOKEN", &token)],
        false,
    )
    .await;
    let stdout = text(&out.stdout);
    let first = stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(first.starts_with("NOT CONTAINED:"), "{stdout}");
    assert!(!stdout.contains("CONTAINED at"), "{stdout}");

    // Approving the cut-off removes the user from the organization — still no containment claim.
    let out = run_in(
        &env,
        &env.dir.path().join("run-cut-off"),
        "session-compromise",
        &["--input", &user, "--approve", "cut_off"],
        &[("ESUS_COMPROMISED_TOKEN", &token)],
        true,
    )
    .await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(step(&report, "cut_off")["status"], "ok", "{report:#}");
    assert_eq!(report["containment"]["state"], "not-contained");
    // Every step ran; a resume would get the same answers: the next steps are by hand, and no
    // resume is suggested.
    assert_eq!(report["resume_command"], Value::Null, "{report:#}");
    let by_hand = report["by_hand"].as_array().expect("by_hand");
    assert!(
        by_hand.iter().any(|s| s
            .as_str()
            .is_some_and(|s| s.contains("reset the user's password and MFA"))),
        "{report:#}"
    );
    // While a stop that a resume can finish (the declined cut-off above) still offers it.
    let out = run_in(
        &env,
        &env.dir.path().join("run-declined"),
        "session-compromise",
        &["--input", &user],
        &[("ESUS_COMPROMISED_TOKEN", &token)],
        true,
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(report["resume_command"].is_string(), "{report:#}");
    assert_eq!(report["by_hand"], serde_json::json!([]));
    assert!(
        env.sim
            .requests()
            .iter()
            .any(|q| q.method == "DELETE" && q.path == format!("/admin/users/{}", r.user_id))
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
    for needle in ["GET ", "/auth/sessions", "POST ", "/auth/logout-all"] {
        assert!(shown.contains(needle), "`{needle}` not in:\n{shown}");
    }
    assert!(!shown.contains(&token));
    assert_eq!(live(&env, &r.user_id).len(), 3, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_refusal_of_a_containment_action_is_refused_by_validate() {
    let env = Env::start().await;
    // The first wave's mistake: revoking another user's session with the operator's token and
    // reading ESUS's 404 as "already gone".
    let rb = env.runbook(
        "hide.yaml",
        "version: 1\nname: hide\ninputs:\n  sid: {type: string, required: true}\nsteps:\n  - id: revoke\n    name: Revoke\n    action: auth.revoke_session\n    with: {session_id: \"{{ inputs.sid }}\"}\n    expect: [404]\n",
    );
    let out = env
        .bare_cmd()
        .args(["validate", &rb])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("does not prove it did"), "{err}");
    assert!(env.sim.requests().is_empty());
}
