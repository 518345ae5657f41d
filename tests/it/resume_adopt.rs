//! A run that died between writing a new key's secret and recording ESUS's answer: the secret is
//! on disk, the transcript ends at the request. Resume asks ESUS what happened, and proves with
//! ESUS (the key itself authenticates with the held secret) that the secret on disk is the new
//! key's before keeping it — nothing revoked, nothing sent again. A held secret ESUS does not
//! accept proves nothing: the key is revoked and re-issued, and the wrong file is left alone.

use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

const ROTATE: &str = "version: 1\nname: rotate-only\ninputs:\n  key_id: {type: string, required: true}\nsteps:\n  - id: rotate\n    name: Rotate with no grace\n    action: api_keys.rotate\n    with: {id: \"{{ inputs.key_id }}\", grace_hours: 0}\n    outputs:\n      new_key_id: response.id\n      new_client_id: response.clientId\n      new_secret: {value: response.secret, secret: true}\n";

/// Runs the rotate to the end, then cuts the transcript back to its rotate request, as if the
/// process had died right after writing the secret. Returns the new key's id and client id.
async fn rotated_then_cut(env: &Env, rb: &str) -> (String, String) {
    let key = env.sim.ready().key_id.clone();
    let mut cmd = env.run_cmd(rb);
    cmd.args([
        "--non-interactive",
        "--yes",
        "--output",
        "json",
        "--input",
        &format!("key_id={key}"),
    ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let outputs = &report["steps"][0]["outputs"];
    let new_id = outputs["new_key_id"].as_str().expect("id").to_string();
    let client = outputs["new_client_id"]
        .as_str()
        .expect("client")
        .to_string();
    let path = env.transcript();
    let whole = std::fs::read_to_string(&path).expect("transcript");
    let mut kept = String::new();
    for line in whole.lines() {
        kept.push_str(line);
        kept.push('\n');
        let r: Value = serde_json::from_str(line).expect("record");
        // The rotate itself (a GET of the key, and its signed `rotate-before`, come first).
        if r["type"] == "request"
            && r["data"]["step"] == "rotate"
            && r["data"]["request"]["method"] == "POST"
        {
            break;
        }
    }
    assert!(kept.len() < whole.len(), "the answer was cut off");
    std::fs::write(&path, kept).expect("cut");
    let _ = std::fs::remove_file(path.with_extension("jsonl.sig"));
    (new_id, client)
}

async fn resume(env: &Env, rb: &str) -> (i32, Value, String) {
    let mut cmd = env.run_cmd(rb);
    cmd.arg("--resume")
        .arg(env.run_dir())
        .args(["--non-interactive", "--yes", "--output", "json"]);
    let out = output(cmd).await;
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, text(&out.stderr))
}

fn count(env: &Env, method: &str, path: &str) -> usize {
    env.sim
        .requests()
        .iter()
        .filter(|q| q.method == method && q.path == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_on_disk_that_esus_accepts_is_kept_and_nothing_is_sent_again() {
    let env = Env::start().await;
    let rb = env.runbook("rotate.yaml", ROTATE);
    let key = env.sim.ready().key_id.clone();
    let (new_id, _) = rotated_then_cut(&env, &rb).await;
    let (code, report, stderr) = resume(&env, &rb).await;
    assert_eq!(code, 0, "{stderr}");
    let step = &report["steps"][0];
    assert_eq!(step["outputs"]["new_key_id"], new_id.as_str(), "{report:#}");
    assert!(
        step["reason"]
            .as_str()
            .is_some_and(|r| r.contains("already on disk")),
        "{report:#}"
    );
    assert_eq!(
        count(&env, "POST", &format!("/api-keys/{key}/rotate")),
        1,
        "never rotated again"
    );
    assert_eq!(
        count(&env, "DELETE", &format!("/api-keys/{new_id}")),
        0,
        "the key whose secret we hold is not revoked"
    );
    assert!(env.sim.api_key(&new_id).is_some_and(|k| k.usable_now));
    let secrets: Vec<String> = std::fs::read_dir(env.run_dir().join("secrets"))
        .expect("secrets")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != esus_ir::exec::witness::SALT_FILE)
        .collect();
    assert_eq!(
        secrets,
        ["rotate.new_secret"],
        "held once, not written again"
    );
    // The adopted step hands on the held secret like one it received: its file is named, and
    // the step's record carries the secret output (redacted).
    assert!(
        step["secret_files"].as_array().is_some_and(|f| f
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.ends_with("rotate.new_secret")))),
        "{report:#}"
    );
    let finished: Vec<Value> = std::fs::read_to_string(env.run_dir().join("transcript.2.jsonl"))
        .expect("the resume's transcript")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("record"))
        .filter(|r| r["type"] == "step-finished" && r["data"]["step"] == "rotate")
        .collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(
        finished[0]["data"]["outputs"]["new_secret"], "[secret]",
        "{:#}",
        finished[0]
    );
    // The held secret was tried as the key itself: a probe (the operator acting needs approval;
    // the key asking about itself does not), with its app's id.
    let probes: Vec<Value> = std::fs::read_to_string(env.run_dir().join("transcript.2.jsonl"))
        .expect("the resume's transcript")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("record"))
        .filter(|r| r["type"] == "request")
        .filter(|r| {
            r["data"]["request"]["headers"]
                .as_array()
                .is_some_and(|h| h.iter().any(|x| x[0] == "X-Api-Key"))
        })
        .collect();
    assert!(!probes.is_empty(), "the held secret was tried");
    for p in &probes {
        assert_eq!(p["data"]["probe"], true, "{p:#}");
        assert!(
            p["data"]["request"]["headers"]
                .as_array()
                .is_some_and(|h| h.iter().any(|x| x[0] == "X-App-Id")),
            "{p:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_on_disk_that_esus_refuses_proves_nothing_and_the_key_is_reissued() {
    let env = Env::start().await;
    let rb = env.runbook("rotate.yaml", ROTATE);
    let key = env.sim.ready().key_id.clone();
    let (first_new, _) = rotated_then_cut(&env, &rb).await;
    let held = env.run_dir().join("secrets").join("rotate.new_secret");
    std::fs::write(&held, "sk_live_not_the_right_one\n").expect("plant a wrong secret");
    let (code, report, stderr) = resume(&env, &rb).await;
    assert_eq!(code, 0, "{stderr}");
    let step = &report["steps"][0];
    let second_new = step["outputs"]["new_key_id"].as_str().expect("id");
    assert_ne!(second_new, first_new, "a new key was issued: {report:#}");
    assert_eq!(count(&env, "DELETE", &format!("/api-keys/{first_new}")), 1);
    assert_eq!(count(&env, "POST", &format!("/api-keys/{key}/rotate")), 2);
    assert!(!env.sim.api_key(&first_new).is_some_and(|k| k.usable_now));
    assert_eq!(
        std::fs::read_to_string(&held).expect("held"),
        "sk_live_not_the_right_one\n",
        "a file on disk is never overwritten"
    );
    let fresh = std::fs::read_to_string(env.run_dir().join("secrets/rotate.new_secret.1"))
        .expect("the new secret, next to it");
    let client = step["outputs"]["new_client_id"].as_str().expect("client");
    let status = crate::sim_support::client()
        .get(format!("{}/fhir/Patient/p-0001", env.sim.base_url()))
        .header("X-API-Key", format!("{client}:{}", fresh.trim()))
        // A rotated key keeps its app, and a key of an app needs its X-App-Id (docs/esus-api.md,
        // "Credentials").
        .header(
            "X-App-Id",
            env.sim.ready().key_app_id.clone().expect("the key's app"),
        )
        .send()
        .await
        .expect("answer")
        .status();
    assert_eq!(status, 200, "the re-issued secret works");
}
