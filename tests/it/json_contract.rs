//! The machine contract: `--output json` always writes exactly one JSON document on stdout — for
//! a result, a drill, a dry-run plan, and for runs that could not start — each valid against the
//! schema the tool ships (`esus-ir schema --result`, `--plan`, kept in docs/).

use std::sync::OnceLock;

use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

fn schema(name: &str) -> &'static Value {
    static RESULT: OnceLock<Value> = OnceLock::new();
    static PLAN: OnceLock<Value> = OnceLock::new();
    let cell = if name == "result" { &RESULT } else { &PLAN };
    cell.get_or_init(|| {
        let path = format!("{}/docs/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file")).expect("json")
    })
}

/// Parses stdout as exactly one JSON document and validates it; returns it.
fn one_valid_document(stdout: &[u8], schema_name: &str) -> Value {
    let doc: Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not exactly one JSON document ({e}):\n{}", text(stdout)));
    let validator = jsonschema::validator_for(schema(schema_name)).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
    assert_eq!(doc["schema_version"], 1);
    doc
}

#[test]
fn the_shipped_schemas_are_current() {
    for (flag, file) in [("--result", "result"), ("--plan", "plan")] {
        let out = assert_cmd::Command::cargo_bin("esus-ir")
            .expect("binary")
            .args(["schema", flag])
            .output()
            .expect("runs");
        let committed = std::fs::read_to_string(format!(
            "{}/docs/{file}.schema.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("committed schema");
        assert_eq!(
            text(&out.stdout),
            committed,
            "run `esus-ir schema {flag} -o docs/{file}.schema.json`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_run_is_one_result_document() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args([
        "--yes",
        "--non-interactive",
        "--output",
        "json",
        "--incident-id",
        "INC-4711",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let doc = one_valid_document(&out.stdout, "result");
    assert_eq!(doc["kind"], "result");
    assert_eq!(doc["incident_id"], "INC-4711");
    assert_eq!(doc["contained"], "contained");
    assert!(doc["time_to_containment_ms"].is_u64());
    assert!(doc["started_at"].is_string() && doc["finished_at"].is_string());
    let steps = doc["steps"].as_array().expect("steps");
    let ids: Vec<&str> = steps.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "snapshot",
            "logout",
            "delete",
            "contained",
            "session_dead",
            "audit",
            "audit_by_page",
            "audit_chain",
            "replace"
        ],
        "every step of the runbook, once, in its order"
    );
    for s in steps {
        // The page-numbered fallback is not needed where the cursor search worked.
        let expected = if s["id"] == "audit_by_page" {
            "skipped"
        } else {
            "ok"
        };
        assert_eq!(s["status"], expected, "{s:#}");
        // The session and the key were alive: nothing was refused, so nothing is marked expected.
        assert!(s["expected"].is_null(), "no refusal, none marked: {s:#}");
    }
    let replace = steps
        .iter()
        .find(|s| s["id"] == "replace")
        .expect("replace");
    let new_id = replace["outputs"]["new_key_id"]
        .as_str()
        .expect("new key id");
    let snapshot = steps
        .iter()
        .find(|s| s["id"] == "snapshot")
        .expect("snapshot");
    assert_eq!(
        env.sim.api_key(new_id).map(|k| k.name),
        snapshot["outputs"]["name"].as_str().map(str::to_owned),
        "the replacement carries the old key's name once renamed"
    );
    assert!(
        replace["outputs"].get("new_secret").is_none(),
        "a secret output is a file, never in the document: {replace:#}"
    );
    assert_eq!(
        replace["secret_files"].as_array().map(Vec::len),
        Some(1),
        "{replace:#}"
    );
    assert!(
        doc["resume_command"].is_null(),
        "a finished run has nothing to resume"
    );
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(transcript.contains("\"incident_id\":\"INC-4711\""));

    // An answer the runbook expects (`expect: [404]`) is an expected refusal, not a failure, and
    // the result document marks it. (The bundled runbook no longer refuses itself anything: its
    // rotate of the deleted key is gone.)
    let rb = env.runbook(
        "expected.yaml",
        "version: 1\nname: expected-refusal\nsteps:\n  - id: gone\n    name: Read a key that does not exist\n    action: api_keys.get\n    with:\n      id: k-no-such-key\n    expect: [404]\n",
    );
    let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("run-expected"));
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let doc = one_valid_document(&out.stdout, "result");
    assert_eq!(doc["outcome"], "success");
    let gone = doc["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "gone"))
        .expect("gone");
    assert_eq!(gone["status"], "ok", "{gone:#}");
    assert_eq!(gone["expected"], 404, "the expected refusal is marked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_approvals_are_structured_and_nothing_is_sent() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 3);
    let doc = one_valid_document(&out.stdout, "result");
    let missing = doc["missing_approvals"].as_array().expect("list");
    assert!(
        missing.iter().any(|m| m["step"] == "delete"
            && m["typed"] == false
            && m["approve_with"]
                .as_str()
                .is_some_and(|w| w.contains("--approve delete"))),
        "{missing:?}"
    );
    assert!(env.sim.requests().is_empty());
    assert!(
        doc["resume_command"]
            .as_str()
            .is_some_and(|c| c.starts_with("esus-ir run --resume "))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_cannot_start_write_one_error_document() {
    let env = Env::start().await;
    // No token: a usage error (2).
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env_remove("ESUS_TOKEN")
        .args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    let doc = one_valid_document(&out.stdout, "result");
    assert_eq!(
        (doc["kind"].as_str(), doc["outcome"].as_str()),
        (Some("error"), Some("usage-error"))
    );
    // A flag clap does not know, still with --output json.
    let out = env
        .bare_cmd()
        .args([
            "run",
            "api-key-compromise",
            "--output",
            "json",
            "--no-such-flag",
        ])
        .output()
        .expect("runs");
    assert_code(&out, 2);
    let doc = one_valid_document(&out.stdout, "result");
    assert_eq!(doc["kind"], "error");
    // A runbook that does not validate.
    let rb = env.runbook("bad.yaml", "version: 1\nname: bad\nsteps: []\n");
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert_eq!(one_valid_document(&out.stdout, "result")["exit_code"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_and_unreachable_urls_are_results_with_their_codes() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env("ESUS_TOKEN", "bad-token")
        .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 4);
    let doc = one_valid_document(&out.stdout, "result");
    assert_eq!(doc["outcome"], "auth-failed");
    assert_eq!(doc["contained"], "not-contained");

    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_TOKEN", "t")
        .args([
            "run",
            "api-key-compromise",
            "--base-url",
            "http://127.0.0.1:9",
        ])
        .arg("--run-dir")
        .arg(env.dir.path().join("run-unreachable"))
        .args([
            "-i",
            "key_id=k",
            "-i",
            "user_id=u",
            "--yes",
            "--non-interactive",
            "--output",
            "json",
        ]);
    let out = output(cmd).await;
    assert_code(&out, 6);
    assert_eq!(
        one_valid_document(&out.stdout, "result")["outcome"],
        "unreachable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_is_one_versioned_plan_ending_with_how_to_apply_it() {
    let env = Env::start().await;
    for what in ["--dry-run", "--dry-run=reads"] {
        let run_dir = env.dir.path().join(what.trim_start_matches('-'));
        let mut cmd = env.run_cmd_at("api-key-compromise", &run_dir);
        env.compromise_args(&mut cmd);
        cmd.args([what, "--output", "json", "--non-interactive"]);
        let out = output(cmd).await;
        assert_code(&out, 0);
        let doc = one_valid_document(&out.stdout, "plan");
        assert_eq!(doc["kind"], "plan");
        let apply = doc["apply_command"].as_str().expect("apply command");
        assert!(
            apply.starts_with("esus-ir ") && !apply.contains("--dry-run"),
            "{apply}"
        );
        assert!(apply.contains("key_id="), "{apply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_is_one_document_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = assert_cmd::Command::cargo_bin("esus-ir")
        .expect("binary")
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .current_dir(dir.path())
        .args(["drill", "--output", "json"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .expect("drill");
    assert_code(&out, 0);
    let doc = one_valid_document(&out.stdout, "result");
    assert_eq!(doc["kind"], "drill");
    assert_eq!(doc["run"]["kind"], "result");
}
