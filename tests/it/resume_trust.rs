//! `run --resume` trusts only what a trusted key signed (issue 11, finding 1): records appended
//! after a killed run's last checkpoint never count as finished, an edited signed record makes
//! the transcript refused, and a transcript signed by a key that is not the operator's (or not in
//! `--allowed-signers`) is refused with exit 5 and nothing sent.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use esus_ir::sim::SimConfig;
use esus_ir::transcript::{Record, Signer};
use serde_json::{Map, Value, json};

use crate::run_support::{Env, assert_code, output, text, verify};

/// Starts `cmd`, waits until `ready()` holds (bounded), then SIGKILLs it.
async fn kill_when(mut cmd: std::process::Command, ready: impl Fn() -> bool) {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    for _ in 0..2000 {
        if ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(ready(), "the run reached the point to kill it");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// The compromise runbook against a slow simulator, killed once its DELETE is on the way.
async fn killed_at_delete() -> Env {
    let env = Env::with(
        SimConfig::default()
            .with_fault("latency=300ms")
            .expect("fault"),
    )
    .await;
    let mut cmd = env.std_cmd();
    cmd.args(["--yes", "--non-interactive"]);
    kill_when(cmd, || {
        env.sim.requests().iter().any(|q| q.method == "DELETE")
    })
    .await;
    keep_complete_lines(&env.transcript());
    env
}

/// Drops a last line the kill cut (resume ignores it too), so forgeries start from whole records.
fn keep_complete_lines(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(keep);
    std::fs::write(path, bytes).unwrap();
}

/// `esus-ir run --resume TRANSCRIPT --yes --non-interactive --output json`, as the operator.
fn resume_cmd(env: &Env, transcript: &Path) -> assert_cmd::Command {
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
    .args(["run", "--base-url", &env.sim.base_url()])
    .args(["--operator", "oncall@example.org", "--resume"])
    .arg(transcript)
    .args(["--yes", "--non-interactive", "--output", "json"]);
    cmd
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Appends records to a transcript with correct hashes — what anyone can do without the key.
fn append_forged(path: &Path, events: Vec<(&str, Value)>) {
    let records = esus_ir::transcript::read_transcript(path).unwrap();
    let mut prev = records.last().unwrap().hash.clone();
    let first = records.len() as u64;
    let ts = records.last().unwrap().ts.clone();
    let mut text = std::fs::read_to_string(path).unwrap();
    let total = first + events.len() as u64;
    for (seq, (kind, data)) in (first..).zip(events) {
        let mut data = obj(data);
        if kind == "run-finished" {
            data.insert("events".into(), json!(total));
            data.insert("head".into(), json!(prev));
        }
        let r = Record::new(seq, ts.clone(), kind.into(), data, prev.clone());
        text.push_str(&r.to_line());
        text.push('\n');
        prev = r.hash;
    }
    std::fs::write(path, text).unwrap();
}

fn finished_ok(step: &str, outputs: Value) -> (&str, Value) {
    (
        "step-finished",
        json!({"step": step, "status": "ok", "reason": null, "outputs": outputs, "duration_ms": 1}),
    )
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Live keys that replace `key` (same name, another id).
fn live_replacements(env: &Env, key: &str) -> Vec<esus_ir::sim::KeyState> {
    let name = env.sim.api_key(key).unwrap().name;
    env.sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name == name && k.id != key && k.usable_now)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_ok_records_after_the_last_checkpoint_never_finish_a_step() {
    let env = killed_at_delete().await;
    let key = env.sim.ready().key_id.clone();
    // The forger says delete, the replacement and the containment checks all went fine.
    append_forged(
        &env.transcript(),
        vec![
            finished_ok("delete", json!({})),
            finished_ok(
                "rotate",
                json!({"new_key_id": "k-forged", "new_client_id": "c-forged", "new_secret": "[secret]"}),
            ),
            finished_ok("recreate", json!({})),
            finished_ok("contained", json!({})),
            finished_ok("session_dead", json!({})),
            finished_ok("audit", json!({})),
            (
                "containment",
                json!({"state": "contained", "summary": "forged", "checks": [], "time_to_containment_ms": 1, "at": null}),
            ),
            (
                "run-finished",
                json!({"outcome": "success", "exit_code": 0}),
            ),
        ],
    );
    let out = output(resume_cmd(&env, &env.transcript())).await;
    assert_code(&out, 0);
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("already complete"), "{stderr}");
    assert!(stderr.contains("not signed"), "{stderr}");
    // ESUS was asked again, and the leaked key is dead because this run made it so.
    let new = records(&env.run_dir().join("transcript.2.jsonl"));
    let sent: Vec<&str> = new
        .iter()
        .filter(|r| r["type"] == "request")
        .filter_map(|r| r["data"]["step"].as_str())
        .collect();
    assert!(sent.contains(&"contained"), "{sent:?}");
    assert!(
        new.iter().any(|r| r["type"] == "step-finished"
            && r["data"]["step"] == "contained"
            && r["data"]["status"] == "ok"),
        "the containment check ran and passed"
    );
    let k = env.sim.api_key(&key).unwrap();
    assert!(k.deleted && !k.usable_now, "{k:?}");
    assert_eq!(live_replacements(&env, &key).len(), 1);
    assert!(!out.stdout.is_empty());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !report.to_string().contains("k-forged"),
        "nothing of the forgery is used"
    );
    assert_eq!(verify(&env, &env.run_dir().join("transcript.2.jsonl")).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_snapshot_scopes_are_refused_in_place_and_ignored_when_appended() {
    let env = killed_at_delete().await;
    let key = env.sim.ready().key_id.clone();
    let real_scopes = env.sim.api_key(&key).unwrap().scopes;
    assert_ne!(real_scopes, ["*"]);
    let path = env.transcript();
    let original = std::fs::read(&path).unwrap();

    // In place, with every hash recomputed: the checkpoints no longer match. Refused.
    crate::transcript_support::forge_unsigned(&path, |records| {
        for r in records
            .iter_mut()
            .filter(|r| r.kind == "step-finished" && r.step() == Some("snapshot"))
        {
            r.data["outputs"]["scopes"] = json!(["*"]);
        }
    });
    let before = env.sim.requests().len();
    let out = output(resume_cmd(&env, &path)).await;
    assert_code(&out, 5);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("refusing to resume"), "{stderr}");
    assert!(stderr.contains("checkpoint"), "{stderr}");
    assert_eq!(env.sim.requests().len(), before, "nothing was sent");

    // Appended after the last checkpoint: not signed, so not believed.
    std::fs::write(&path, &original).unwrap();
    append_forged(
        &path,
        vec![finished_ok(
            "snapshot",
            json!({"name": env.sim.api_key(&key).unwrap().name, "scopes": ["*"], "client_id": "x", "rate_limit": null, "expires_at": null, "app_id": null}),
        )],
    );
    let out = output(resume_cmd(&env, &path)).await;
    assert_code(&out, 0);
    let live = live_replacements(&env, &key);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].scopes, real_scopes, "the replacement never gets *");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_signed_by_a_foreign_key_is_refused_unless_allowed() {
    let env = Env::start().await;
    let rb = env.runbook(
        "r.yaml",
        "version: 1\nname: r\nsteps:\n  - {id: a, name: A, action: roles.list}\n  - {id: b, name: B, needs: [a], action: roles.list}\n",
    );
    assert_code(&output(env.run_cmd(&rb)).await, 0);
    let path = env.transcript();
    // Cut after step a, then re-chained and re-signed (checkpoints too) by another key.
    let foreign = Signer::generate("mallory").unwrap();
    crate::transcript_support::forge(&path, &foreign, |records| {
        let at = records
            .iter()
            .position(|r| r.kind == "step-finished")
            .unwrap();
        records.truncate(at + 2);
    });
    let before = env.sim.requests().len();
    let mut cmd = env.run_cmd(&rb);
    cmd.arg("--resume").arg(&path);
    let out = output(cmd).await;
    assert_code(&out, 5);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("your own signing key"), "{stderr}");
    assert_eq!(env.sim.requests().len(), before, "nothing was sent");

    // Naming the foreign key for this operator in --allowed-signers makes it trusted.
    let allowed = env.dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        esus_ir::transcript::allowed_signers_line(
            "oncall@example.org",
            &foreign.public_key_openssh(),
        ),
    )
    .unwrap();
    let mut cmd = env.run_cmd(&rb);
    cmd.arg("--resume")
        .arg(&path)
        .arg("--allowed-signers")
        .arg(&allowed);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let new = records(&env.run_dir().join("transcript.2.jsonl"));
    let sent: Vec<&str> = new
        .iter()
        .filter(|r| r["type"] == "request")
        .filter_map(|r| r["data"]["step"].as_str())
        .filter(|s| *s != "preflight")
        .collect();
    assert_eq!(sent, ["b"], "a is carried, b is run");

    // And an allowed_signers file that does not list it refuses it again.
    std::fs::write(
        &allowed,
        esus_ir::transcript::allowed_signers_line(
            "oncall@example.org",
            &Signer::generate("x").unwrap().public_key_openssh(),
        ),
    )
    .unwrap();
    let mut cmd = env.run_cmd(&rb);
    cmd.arg("--resume")
        .arg(&path)
        .arg("--allowed-signers")
        .arg(&allowed);
    let out = output(cmd).await;
    assert_code(&out, 5);
    assert!(
        text(&out.stderr).contains("does not list"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_with_no_valid_checkpoint_is_refused() {
    let env = killed_at_delete().await;
    let path = env.transcript();
    // Keep only the first record: no checkpoint and no signature vouch for anything.
    let text_all = std::fs::read_to_string(&path).unwrap();
    let first = text_all.lines().next().unwrap();
    std::fs::write(&path, format!("{first}\n")).unwrap();
    let out = output(resume_cmd(&env, &path)).await;
    assert_code(&out, 5);
    assert!(
        text(&out.stderr).contains("no checkpoint signed by your own signing key"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_from_its_signed_prefix_and_a_resume_of_a_resume_completes() {
    let env = killed_at_delete().await;
    let key = env.sim.ready().key_id.clone();
    let v = esus_ir::transcript::verify_transcript(
        &env.transcript(),
        &esus_ir::transcript::VerifyOptions::default(),
    )
    .unwrap();
    assert!(v.is_intact_prefix(), "{:#?}", v.problems);
    assert!(v.signed_records > 0 && v.checkpoints.valid == v.checkpoints.count);

    // The first resume is killed too, once it is sending again.
    let seen = env.sim.requests().len();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    let r = env.sim.ready();
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("HOME", env.dir.path())
        .env_remove("ESUS_IR_SIGN_KEY")
        .env(
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
        .args(["run", "--base-url", &env.sim.base_url()])
        .args(["--operator", "oncall@example.org", "--resume"])
        .arg(env.run_dir())
        .args(["--yes", "--non-interactive"]);
    kill_when(cmd, || {
        env.sim.requests()[seen..]
            .iter()
            .any(|q| q.method == "POST" && q.path.starts_with("/api-keys"))
    })
    .await;
    let second = env.run_dir().join("transcript.2.jsonl");
    keep_complete_lines(&second);
    assert!(
        !records(&second).iter().any(|r| r["type"] == "run-finished"),
        "the resume was killed before its end"
    );

    // Resuming the run folder takes its latest transcript, the resume.
    let out = output(resume_cmd(&env, &env.run_dir())).await;
    assert_code(&out, 0);
    let third = env.run_dir().join("transcript.3.jsonl");
    let new = records(&third);
    assert_eq!(new[0]["data"]["resumes_file"], "transcript.2.jsonl");
    let k = env.sim.api_key(&key).unwrap();
    assert!(k.deleted && !k.usable_now, "{k:?}");
    assert_eq!(
        live_replacements(&env, &key).len(),
        1,
        "exactly one replacement after two kills"
    );
    assert_eq!(verify(&env, &third).0, 0);
}
