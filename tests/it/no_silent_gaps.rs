//! No silent gaps: an optional secret nobody gave is asked for at a terminal (hidden; Enter
//! skips it), and what its absence turns off is said before the plan, in the result, and in the
//! containment line — never a bare "CONTAINED".

use std::time::Duration;

use expectrl::Expect;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_secrets_are_asked_and_a_skipped_one_is_said_not_done() {
    let env = Env::start().await;
    let code = tokio::task::block_in_place(|| {
        let mut cmd = env.std_cmd();
        cmd.env_remove("ESUS_COMPROMISED_TOKEN")
            .env_remove("ESUS_LEAKED_KEY_SECRET");
        let mut s = expectrl::Session::spawn(cmd).expect("spawn in a pty");
        s.set_expect_timeout(Some(Duration::from_secs(30)));
        s.expect("session_token (secret, hidden; optional — Enter skips it)")
            .expect("the optional secret is asked for");
        s.send_line("").expect("Enter skips it");
        s.expect("leaked_secret (secret, hidden; optional — Enter skips it)")
            .expect("so is the leaked secret");
        s.send_line("").expect("Enter skips it");
        s.expect("NOT done — no `leaked_secret` given: `contained`")
            .expect("said before the plan");
        s.expect("NOT done — no `session_token` given: `logout` (Log out the compromised session) will NOT run")
            .expect("what is turned off");
        s.expect("plan (steps").expect("then the plan");
        s.expect("Delete API key").expect("the delete prompt");
        s.send_line("y").expect("yes");
        s.expect("CONTAINED at").expect("the verdict");
        s.expect("NOT covered: ")
            .expect("qualified with what it does not cover");
        s.expect(expectrl::Eof).expect("the run ends");
        match s.get_process().wait().expect("status") {
            expectrl::process::unix::WaitStatus::Exited(_, c) => c,
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(
        code, 0,
        "the key is dead: contained, with what it does not cover said"
    );
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
    let records = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(
        records.contains("\"not_done\":[\"no `leaked_secret` given"),
        "recorded with the plan"
    );
    assert!(
        records.contains("\"not_covered\":["),
        "recorded with the verdict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_results_say_what_was_not_done_and_what_containment_does_not_cover() {
    let env = Env::start().await;
    let r = env.sim.ready();
    let mut cmd = env.run_cmd("api-key-compromise");
    cmd.args(["--input", &format!("key_id={}", r.key_id)])
        .args(["--input", &format!("user_id={}", r.user_id)])
        .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let not_done: Vec<&str> = report["not_done"]
        .as_array()
        .expect("not_done")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(not_done.len(), 2, "{not_done:?}");
    assert!(not_done[1].contains("`logout` (Log out the compromised session) will NOT run"));
    assert!(not_done[1].contains("`session_dead`"));
    assert!(
        not_done[0].contains("`contained` (Prove key"),
        "{not_done:?}"
    );
    let not_covered = report["containment"]["not_covered"]
        .as_array()
        .expect("not_covered");
    assert!(
        not_covered.iter().any(|c| c
            .as_str()
            .is_some_and(|c| c.contains("`logout`") && c.contains("did not run"))),
        "{report:#}"
    );
    assert_eq!(report["containment"]["state"], "contained");
    // Given everything, nothing is missing.
    let mut cmd = env.run_cmd_at("api-key-compromise", &env.dir.path().join("all"));
    env.compromise_args(&mut cmd);
    cmd.args([
        "--dry-run",
        "--offline",
        "--non-interactive",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["not_done"], serde_json::json!([]), "{plan:#}");
}
