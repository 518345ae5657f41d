//! A prompt does not hold the run: steps running alongside finish, are recorded and shown while
//! the operator reads the question; and a "no" stops further writes, never the reads (evidence)
//! that did not need the declined step.

use std::time::Duration;

use esus_ir::sim::SimConfig;
use expectrl::Expect;
use serde_json::Value;

use crate::run_support::{Env, verify};

const RUNBOOK: &str = r#"version: 1
name: parallel
inputs:
  key_id: {type: string, required: true}
  user_id: {type: string, required: true}
steps:
  - id: slow
    name: Read the key (slowly)
    action: api_keys.get
    with: {id: "{{ inputs.key_id }}"}
  - id: delete
    name: Delete the key
    needs: []
    action: api_keys.delete
    with: {id: "{{ inputs.key_id }}"}
    confirm: "Delete key {{ inputs.key_id }}?"
  - id: evidence
    name: Save the audit log
    needs: [slow]
    action: audit.user
    with: {user_id: "{{ inputs.user_id }}"}
    save: "audit.json"
  - id: extra
    name: Create another key
    needs: [slow]
    action: api_keys.create
    with: {name: extra, scopes: [Patient.read]}
"#;

fn session(env: &Env) -> expectrl::session::OsSession {
    let rb = env.runbook("parallel.yaml", RUNBOOK);
    let r = env.sim.ready();
    let mut cmd = env.std_env_cmd();
    cmd.args(["run", &rb, "--base-url", &env.sim.base_url()])
        .arg("--run-dir")
        .arg(env.run_dir())
        .args(["--input", &format!("key_id={}", r.key_id)])
        .args(["--input", &format!("user_id={}", r.user_id)]);
    let mut s = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s
}

fn records(env: &Env) -> Vec<Value> {
    std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn seq_of(records: &[Value], kind: &str, step: &str) -> u64 {
    records
        .iter()
        .find(|r| r["type"] == kind && r["data"]["step"] == step)
        .and_then(|r| r["seq"].as_u64())
        .unwrap_or_else(|| panic!("no {kind} of {step}"))
}

fn exit_code(session: &mut expectrl::session::OsSession) -> i32 {
    match session.get_process().wait().expect("exit status") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected end: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_recorded_and_shown_while_a_prompt_is_open() {
    let env = Env::with(
        SimConfig::default()
            .with_fault("latency=1s@GET /api-keys/{id}")
            .expect("fault"),
    )
    .await;
    let code = tokio::task::block_in_place(|| {
        let mut s = session(&env);
        s.expect("Delete key").expect("the delete prompt");
        s.expect("[y/N]").expect("its question");
        // Not answered yet: the slow read finishes and is shown above the question, which is
        // asked again below it.
        s.expect("slow: ok")
            .expect("shown while the prompt is open");
        s.expect("[y/N]")
            .expect("the question again, below the line");
        s.send_line("n").expect("no");
        s.expect(expectrl::Eof).expect("the run ends");
        exit_code(&mut s)
    });
    assert_eq!(code, 3, "a declined step");
    let recs = records(&env);
    assert!(
        seq_of(&recs, "step-finished", "slow") < seq_of(&recs, "confirmation", "delete"),
        "recorded when it happened, not when the operator answered"
    );
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_no_the_reads_still_run_and_no_write_is_sent() {
    let env = Env::with(
        SimConfig::default()
            .with_fault("latency=2s@GET /api-keys/{id}")
            .expect("fault"),
    )
    .await;
    let code = tokio::task::block_in_place(|| {
        let mut s = session(&env);
        s.expect("[y/N]").expect("the delete prompt");
        s.send_line("n").expect("no");
        s.expect(expectrl::Eof).expect("the run ends");
        exit_code(&mut s)
    });
    assert_eq!(code, 3);
    let recs = records(&env);
    let finished = |step: &str| {
        recs.iter()
            .find(|r| r["type"] == "step-finished" && r["data"]["step"] == step)
            .map(|r| r["data"].clone())
            .unwrap_or_else(|| panic!("no step-finished of {step}"))
    };
    assert_eq!(
        finished("evidence")["status"],
        "ok",
        "the evidence was still pulled"
    );
    assert!(env.run_dir().join("evidence/audit.json").exists());
    let extra = finished("extra");
    assert_eq!(extra["status"], "skipped");
    assert!(
        extra["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no further write")),
        "{extra}"
    );
    assert!(
        !env.sim
            .requests()
            .iter()
            .any(|q| q.method == "POST" && q.path == "/api-keys"),
        "no write after the no"
    );
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| !k.deleted)
    );
}
