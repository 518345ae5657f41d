//! The bundled `scheduled-key-rotation` runbook: every due key is rotated with a grace window (the
//! old secret works until the window ends, then not), concurrently, after one confirmation; young,
//! inactive and already rotated keys are left alone.

use std::time::Duration;

use esus_ir::sim::SimConfig;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, verify};
use crate::runbooks_support::{
    Api, DEFAULT_SCENARIO, dry_run_sends_nothing, run_ok, run_ok_in, step, strings,
};

/// The default scenario plus five more keys past 90 days, one just under, and one old but expired.
fn scenario() -> String {
    let extra = r#"  - { id: k-2001, name: old-a, owner: u-0001, client_id: ck_old_a, secret: sk_live_old_a_1, scopes: [Patient.read], created_days_ago: 91, expires_in_days: 300 }
  - { id: k-2002, name: old-b, owner: u-0001, client_id: ck_old_b, secret: sk_live_old_b_1, scopes: [Patient.read], created_days_ago: 120 }
  - { id: k-2003, name: old-c, owner: u-1002, client_id: ck_old_c, secret: sk_live_old_c_1, scopes: [Observation.read], created_days_ago: 180, expires_in_days: 100 }
  - { id: k-2004, name: old-d, owner: u-1002, client_id: ck_old_d, secret: sk_live_old_d_1, scopes: [Patient.read], created_days_ago: 365, app_id: d4c3b2a1-0f9e-4d8c-a7b6-5e4d3c2b1a00 }
  - { id: k-2005, name: old-e, owner: u-1004, client_id: ck_old_e, secret: sk_live_old_e_1, scopes: [Observation.read], created_days_ago: 100 }
  - { id: k-2006, name: young, owner: u-0001, client_id: ck_young, secret: sk_live_young_1, scopes: [Patient.read], created_days_ago: 89 }
  - { id: k-2007, name: lapsed, owner: u-0001, client_id: ck_lapsed, secret: sk_live_lapsed_1, scopes: [Patient.read], created_days_ago: 200, expires_in_days: -1 }
patients:
"#;
    let text = DEFAULT_SCENARIO.replacen("patients:\n", extra, 1);
    assert_ne!(text, DEFAULT_SCENARIO, "the scenario still has `patients:`");
    text
}

const DUE: [&str; 6] = ["k-1005", "k-2001", "k-2002", "k-2003", "k-2004", "k-2005"];

/// Reads a patient with an API key: the status.
async fn use_key(api: &Api, client_id: &str, secret: &str) -> u16 {
    let key = format!("{client_id}:{secret}");
    api.call("GET", "/fhir/Patient/p-0001", None, Some(&key), None)
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_scheduled_rotation_rotates_every_due_key_with_a_grace_window() {
    // All six rotations must be in flight at once to pass the barrier without timing out.
    let config = SimConfig::default()
        .with_scenario_yaml(&scenario())
        .expect("scenario")
        .with_fault("barrier=6@POST /api-keys/{id}/rotate")
        .expect("fault");
    let env = Env::with(config).await;
    let api = Api::new(&env);
    let old_key = ("ck_billing_bridge_2023", "sk_live_billing_5e12");
    assert_eq!(use_key(&api, old_key.0, old_key.1).await, 200);

    let report = run_ok(&env, "scheduled-key-rotation", &[], &[]).await;
    let list = &step(&report, "list")["outputs"];
    let mut due = strings(&list["due"]);
    due.sort();
    assert_eq!(due, DUE, "young, inactive and expired keys are not due");

    // Each due key has a successor and is still usable inside its grace window.
    let rotate = step(&report, "rotate");
    let old_ids = strings(&rotate["outputs"]["old_key_id"]);
    let new_ids = strings(&rotate["outputs"]["new_key_id"]);
    let new_clients = strings(&rotate["outputs"]["new_client_id"]);
    assert_eq!(old_ids.len(), DUE.len());
    for (old, new) in old_ids.iter().zip(&new_ids) {
        let o = env.sim.api_key(old).expect("old key");
        assert_eq!(o.superseded_by.as_deref(), Some(new.as_str()), "{o:?}");
        assert!(
            o.usable_now && !o.deleted,
            "the old key works during its grace: {o:?}"
        );
        let n = env.sim.api_key(new).expect("new key");
        assert!(n.usable_now);
        assert_eq!((&n.name, &n.scopes), (&o.name, &o.scopes));
    }
    for id in [
        "k-1001", "k-1002", "k-1003", "k-1004", "k-1006", "k-2006", "k-2007",
    ] {
        assert_eq!(
            env.sim.api_key(id).expect("key").superseded_by,
            None,
            "{id}"
        );
    }
    assert!(
        rotate["outputs"]["rotated"]
            .as_array()
            .expect("rotated")
            .iter()
            .all(|v| v == &Value::Bool(true))
    );
    let log = env.sim.requests();
    assert!(
        log.iter().filter(|q| q.path.ends_with("/rotate")).all(|q| q
            .faults
            .iter()
            .any(|f| f == "barrier")
            && !q.faults.iter().any(|f| f == "barrier-timeout")),
        "the rotations ran concurrently: {log:?}"
    );
    assert_eq!(
        strings(&step(&report, "after")["outputs"]["still_due"]),
        Vec::<String>::new()
    );

    // One confirmation for the whole batch.
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert_eq!(transcript.matches("\"type\":\"confirmation\"").count(), 1);

    // The new secrets are in the 0600 secrets folder, in the order of old_key_id, and work.
    let file = rotate["secret_files"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with("/rotate.new_secret"))
        })
        .expect("the batch's secret file");
    let secrets: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(file).expect("secrets")).expect("a list");
    assert_eq!(secrets.len(), DUE.len());
    for s in &secrets {
        assert!(
            !transcript.contains(s.as_str()),
            "a new secret leaked into the transcript"
        );
    }
    let k1005 = old_ids.iter().position(|k| k == "k-1005").expect("k-1005");

    // Past the grace window the old secret is refused and the new one works.
    assert_eq!(use_key(&api, old_key.0, old_key.1).await, 200);
    env.sim.advance_clock(Duration::from_secs(25 * 3600));
    assert_eq!(use_key(&api, old_key.0, old_key.1).await, 401);
    assert_eq!(
        use_key(&api, &new_clients[k1005], &secrets[k1005]).await,
        200
    );
    for old in &old_ids {
        assert!(!env.sim.api_key(old).expect("old").usable_now, "{old}");
    }
    for new in &new_ids {
        assert!(env.sim.api_key(new).expect("new").usable_now, "{new}");
    }
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");

    // A second run finds nothing due and rotates nothing. (A day later the operator's access
    // token has expired: the run renews it with the refresh token.)
    let before = env.sim.requests().len();
    let again = env.dir.path().join("run2");
    let refresh = env
        .sim
        .ready()
        .admin_refresh_token
        .expose_secret()
        .to_string();
    let second = run_ok_in(
        &env,
        &again,
        "scheduled-key-rotation",
        &[],
        &[("ESUS_REFRESH_TOKEN", &refresh)],
    )
    .await;
    assert_eq!(step(&second, "rotate")["status"], "skipped");
    assert!(
        !env.sim.requests()[before..]
            .iter()
            .any(|q| q.path.ends_with("/rotate"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_scheduled_rotation_honours_age_grace_and_app_inputs() {
    let config = SimConfig::default()
        .with_scenario_yaml(&scenario())
        .expect("scenario");
    let env = Env::with(config).await;
    let report = run_ok(
        &env,
        "scheduled-key-rotation",
        &[
            "--input",
            "app_id=d4c3b2a1-0f9e-4d8c-a7b6-5e4d3c2b1a00",
            "--input",
            "grace_hours=0",
            "--input",
            "min_age_days=30",
        ],
        &[],
    )
    .await;
    assert_eq!(
        strings(&step(&report, "list")["outputs"]["due"]),
        ["k-2004"]
    );
    let old = env.sim.api_key("k-2004").expect("key");
    assert!(
        old.superseded_by.is_some() && !old.usable_now,
        "grace 0: {old:?}"
    );
    assert_eq!(env.sim.api_key("k-2001").expect("key").superseded_by, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_scheduled_rotation_dry_run_sends_nothing() {
    let env = Env::start().await;
    let shown = dry_run_sends_nothing(&env, "scheduled-key-rotation", &[], &[]).await;
    for needle in [
        "GET ",
        "/api-keys?active=true",
        "/rotate",
        "{\"graceHours\":24}",
        "8 at a time",
    ] {
        assert!(shown.contains(needle), "`{needle}` not in:\n{shown}");
    }
    assert_eq!(env.sim.api_key("k-1005").expect("key").superseded_by, None);
}

/// At a real prompt: one question for the whole batch, listing every key it will rotate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_scheduled_rotation_asks_once_showing_every_key() {
    use expectrl::Expect;
    let config = SimConfig::default()
        .with_scenario_yaml(&scenario())
        .expect("scenario");
    let env = Env::with(config).await;
    let cmd = crate::runbooks_support::std_run(&env, "scheduled-key-rotation", &[]);
    let code = tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(cmd).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        // The requests are listed first (in the order of the listing), then the question.
        for id in DUE {
            session
                .expect(format!("/api-keys/{id}/rotate").as_str())
                .expect("every request is shown");
        }
        session
            .expect("Rotate these 6 API keys")
            .expect("the batch prompt names the count");
        session.send_line("y").expect("answer: y then Enter");
        session.expect(expectrl::Eof).expect("the run ends");
        match session.get_process().wait().expect("exit status") {
            expectrl::process::unix::WaitStatus::Exited(_, code) => code,
            other => panic!("unexpected end: {other:?}"),
        }
    });
    assert_eq!(code, 0);
    for id in DUE {
        assert!(
            env.sim
                .api_key(id)
                .is_some_and(|k| k.superseded_by.is_some()),
            "{id}"
        );
    }
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert_eq!(transcript.matches("\"type\":\"confirmation\"").count(), 1);
    assert!(transcript.contains("\"how\":\"interactive\""));
}
