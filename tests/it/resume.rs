//! `run --resume`: after a killed run, finish the runbook without repeating finished steps and
//! without sending a non-idempotent request twice.

use std::time::Duration;

use esus_ir::sim::SimConfig;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text, verify};

/// Starts `cmd`, waits until `ready()` holds (bounded), then SIGKILLs it.
async fn kill_when(mut cmd: std::process::Command, ready: impl Fn() -> bool) {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    for _ in 0..1000 {
        if ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(ready(), "the run reached the point to kill it");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("transcript")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether the transcript (possibly still growing) records `step` as finished.
fn finished(path: &std::path::Path, step: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| {
        t.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| r["type"] == "step-finished" && r["data"]["step"] == step)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_without_repeating_finished_steps() {
    // The delete is held at a barrier of two (nothing else sends a DELETE): the run is killed
    // while it is in flight, once the transcript records snapshot and logout as finished.
    // The resumed run's own DELETE is the second arrival and goes through.
    let env = Env::with(
        SimConfig::default()
            .with_fault("barrier=2@DELETE /api-keys/{id}")
            .expect("fault"),
    )
    .await;
    let mut cmd = env.std_cmd();
    cmd.args(["--yes", "--non-interactive"]);
    let key = env.sim.ready().key_id.clone();
    let transcript = env.transcript();
    kill_when(cmd, || {
        env.sim
            .requests()
            .iter()
            .any(|q| q.method == "DELETE" && q.status.is_none())
            && finished(&transcript, "snapshot")
            && finished(&transcript, "logout")
    })
    .await;
    assert!(
        env.sim
            .requests()
            .iter()
            .filter(|q| q.method == "DELETE")
            .all(|q| q.status.is_none()),
        "killed with the delete still held: {:?}",
        env.sim.requests()
    );
    let old = records(&env.transcript());
    assert!(
        !old.iter().any(|r| r["type"] == "run-finished"),
        "killed before the end"
    );

    let run2 = env.run_dir();
    let mut cmd = env.run_cmd_at("api-key-compromise", &run2);
    env.compromise_args(&mut cmd);
    // Inputs come from the transcript; secrets from the environment, as in the first run.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut cmd = env.bare_cmd();
    let r = env.sim.ready();
    cmd.env(
        "ESUS_TOKEN",
        secrecy::ExposeSecret::expose_secret(&r.admin_token),
    )
    .env(
        "ESUS_COMPROMISED_TOKEN",
        secrecy::ExposeSecret::expose_secret(&r.session_token),
    )
    .env(
        "ESUS_LEAKED_KEY_SECRET",
        secrecy::ExposeSecret::expose_secret(&r.key_secret),
    )
    .args(args.iter().take_while(|a| *a != "--input"))
    .arg("--resume")
    .arg(env.transcript())
    .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let new = records(&run2.join("transcript.2.jsonl"));
    assert_eq!(
        new[0]["data"]["resumes"],
        old.last().expect("old records")["hash"],
        "linked to the old head"
    );
    let resent: Vec<&str> = new
        .iter()
        .filter(|r| r["type"] == "request")
        .filter_map(|r| r["data"]["step"].as_str())
        .collect();
    assert!(
        !resent.contains(&"snapshot") && !resent.contains(&"logout"),
        "finished steps were not repeated: {resent:?}"
    );
    let log = env.sim.requests();
    assert_eq!(log.iter().filter(|q| q.path == "/auth/logout").count(), 1);
    assert!(
        env.sim
            .api_key(&key)
            .is_some_and(|k| k.deleted && !k.usable_now)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s["outputs"]["new_key_id"].is_string()),
        "a replacement was issued"
    );
    assert_eq!(verify(&env, &run2.join("transcript.2.jsonl")).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotate_in_flight_when_killed_leaves_exactly_one_replacement() {
    let env = Env::with(
        SimConfig::default()
            .with_fault("latency=2s@POST /api-keys/{id}/rotate")
            .expect("fault"),
    )
    .await;
    let key = env.sim.ready().key_id.clone();
    let rb = env.runbook(
        "rotate.yaml",
        "version: 1\nname: rotate-only\ninputs:\n  key_id: {type: string, required: true}\nsteps:\n  - id: rotate\n    name: Rotate with no grace\n    action: api_keys.rotate\n    with: {id: \"{{ inputs.key_id }}\", grace_hours: 0}\n    outputs:\n      new_key_id: response.id\n      new_secret: {value: response.secret, secret: true}\n",
    );
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env(
            "ESUS_TOKEN",
            secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
        )
        .env_remove("ESUS_IR_SIGN_KEY")
        .args([
            "run",
            &rb,
            "--non-interactive",
            "--yes",
            "--base-url",
            &env.sim.base_url(),
            "--input",
            &format!("key_id={key}"),
        ])
        .arg("--run-dir")
        .arg(env.run_dir());
    kill_when(cmd, || {
        env.sim
            .api_key(&key)
            .is_some_and(|k| k.superseded_by.is_some())
    })
    .await;

    let mut cmd = env.run_cmd(&rb);
    cmd.arg("--resume").arg(env.transcript()).args([
        "--non-interactive",
        "--yes",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    // The killed rotate had happened: its replacement (whose secret died with the process) is
    // revoked, and the approved rotate is sent again — checked first, never blindly.
    let log = env.sim.requests();
    let rotations = log
        .iter()
        .filter(|q| q.method == "POST" && q.path == format!("/api-keys/{key}/rotate"))
        .count();
    assert_eq!(
        rotations, 2,
        "the killed one, and once after the check: {log:?}"
    );
    let check = log
        .iter()
        .rposition(|q| q.method == "GET" && q.path == format!("/api-keys/{key}"))
        .expect("the state was read");
    let again = log
        .iter()
        .rposition(|q| q.method == "POST" && q.path == format!("/api-keys/{key}/rotate"))
        .expect("rotated again");
    assert!(check < again, "read before it was sent again");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let new_id = report["steps"][0]["outputs"]["new_key_id"]
        .as_str()
        .expect("new key")
        .to_string();
    let name = env.sim.api_key(&key).expect("old").name;
    let active: Vec<String> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name == name && k.id != key && k.usable_now)
        .map(|k| k.id)
        .collect();
    assert_eq!(active, [new_id], "one replacement, whose secret we hold");
    assert!(!env.sim.api_key(&key).is_some_and(|k| k.usable_now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_changed_runbook_or_a_tampered_transcript() {
    let env = Env::start().await;
    let rb = env.runbook(
        "r.yaml",
        "version: 1\nname: r\nsteps:\n  - {id: a, name: A, action: roles.list}\n",
    );
    let cmd = env.run_cmd(&rb);
    assert_code(&output(cmd).await, 0);
    std::fs::write(
        &rb,
        "version: 1\nname: r\nsteps:\n  - {id: a, name: A2, action: roles.list}\n",
    )
    .expect("edit");
    let mut cmd = env.run_cmd(&rb);
    cmd.arg("--resume").arg(env.transcript());
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("changed since that run"),
        "{}",
        text(&out.stderr)
    );
    let t = std::fs::read_to_string(env.transcript())
        .expect("t")
        .replacen("roles.list", "roles.lisT", 1);
    std::fs::write(env.transcript(), t).expect("tamper");
    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_TOKEN", "x")
        .args(["run", "--base-url", &env.sim.base_url(), "--resume"])
        .arg(env.transcript())
        .arg("--run-dir")
        .arg(env.dir.path().join("run3"));
    let out = output(cmd).await;
    assert_code(&out, 5);
}
