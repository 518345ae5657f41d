//! Dry-runs, unattended refusals and the documented exit codes.

use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_nothing_and_shows_every_request_with_placeholders() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env_remove("ESUS_TOKEN")
        .args(["--dry-run", "--offline"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(
        env.sim.requests().is_empty(),
        "dry-run sent {:?}",
        env.sim.requests()
    );
    let shown = text(&out.stdout);
    let key = &env.sim.ready().key_id;
    for needle in [
        format!("DELETE {}/api-keys/{key}", env.sim.base_url()),
        format!("POST {}/api-keys", env.sim.base_url()),
        "\"name\":\"<snapshot.name>.esus-ir-".to_string(),
        format!("PUT {}/api-keys/<new-key-id>", env.sim.base_url()),
        "Authorization: Bearer [secret]".to_string(),
    ] {
        assert!(shown.contains(&needle), "`{needle}` not in:\n{shown}");
    }
    assert!(
        !env.transcript().exists(),
        "a dry-run never writes a leg's transcript"
    );
    let (code, said) = verify(&env, &env.run_dir().join("dry-run.jsonl"));
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reads_sends_only_gets_and_resolves_later_steps() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.arg("--dry-run=reads");
    let out = output(cmd).await;
    assert_code(&out, 0);
    let log = env.sim.requests();
    assert!(!log.is_empty(), "the snapshot GET was sent");
    assert!(log.iter().all(|q| q.method == "GET"), "only GETs: {log:?}");
    let before = env.sim.api_key(&env.sim.ready().key_id).expect("key");
    assert!(before.usable_now && !before.deleted, "nothing changed");
    let shown = text(&out.stdout);
    // The replacement's create, resolved from the snapshot, under its claim name; then its
    // rename to the snapshot's name, a follow-up to the key it will create.
    assert!(
        regex::Regex::new(
            r#"\{"name":"prod-ehr-integration-2024\.esus-ir-[0-9a-f]{10}","scopes":\["Patient\.read","Observation\.read"\]"#
        )
        .expect("regex")
        .is_match(&shown),
        "the snapshot resolved the replacement's create body:\n{shown}"
    );
    assert!(
        shown.contains("PUT ")
            && shown.contains("/api-keys/<new-key-id>")
            && shown.contains("{\"name\":\"prod-ehr-integration-2024\"}"),
        "the rename follows the create:\n{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_runs_without_approvals_refuse_to_start() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--non-interactive", "--approve", "delete"]);
    let out = output(cmd).await;
    assert_code(&out, 3);
    assert!(
        env.sim.requests().is_empty(),
        "nothing may be sent: {:?}",
        env.sim.requests()
    );
    let said = text(&out.stdout);
    assert!(
        said.contains("logout (needs --yes or --approve logout)"),
        "{said}"
    );
    assert!(!said.contains("delete (needs"), "{said}");
    let (code, v) = verify(&env, &env.transcript());
    assert_eq!(
        code, 0,
        "a refused run still leaves a verifiable transcript: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_steps_need_approve_by_name_even_with_yes() {
    let env = Env::start().await;
    let rb = env.runbook("typed.yaml", "version: 1\nname: typed\ninputs:\n  key_id: {type: string, required: true}\nsteps:\n  - id: delete\n    name: Delete\n    action: api_keys.delete\n    with: {id: \"{{ inputs.key_id }}\"}\n    confirm: typed\n");
    let key = env.sim.ready().key_id.clone();
    let mut cmd = env.run_cmd(&rb);
    cmd.args([
        "--input",
        &format!("key_id={key}"),
        "--yes",
        "--non-interactive",
    ]);
    assert_code(&output(cmd).await, 3);
    assert!(env.sim.requests().is_empty());
    let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("run2"));
    cmd.args([
        "--input",
        &format!("key_id={key}"),
        "--approve",
        "delete",
        "--non-interactive",
    ]);
    assert_code(&output(cmd).await, 0);
    assert!(env.sim.api_key(&key).is_some_and(|k| k.deleted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_exits_1_and_skips_its_dependents() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    let r = env.sim.ready();
    cmd.args([
        "--input",
        "key_id=k-does-not-exist",
        "--input",
        &format!("user_id={}", r.user_id),
        "--yes",
        "--non-interactive",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let status = |id: &str| {
        report["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["id"] == id))
            .map(|x| x["status"].clone())
    };
    assert_eq!(status("snapshot"), Some("failed".into()));
    assert_eq!(status("delete"), Some("skipped".into()));
    assert!(env.sim.requests().iter().all(|q| q.method != "DELETE"));
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(
        code, 0,
        "a failed run leaves a verifiable transcript: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_inputs_exit_2_before_anything_is_sent() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    cmd.args([
        "--input",
        "key_id=k 1; rm -rf /",
        "--yes",
        "--non-interactive",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("input `user_id` is required") && err.contains("does not match the pattern"),
        "{err}"
    );
    let mut cmd = env.run_cmd("api-key-compromise");
    cmd.args([
        "--input",
        "session_token=abc",
        "--input",
        "key_id=k-1",
        "--input",
        "user_id=u-1",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(text(&out.stderr).contains("cannot be given on the command line"));
    assert!(env.sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_remote_host_is_refused() {
    let env = Env::start().await;
    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_TOKEN", "t").args([
        "run",
        "api-key-compromise",
        "--base-url",
        "http://api.esus.health",
        "--dry-run",
        "--input",
        "key_id=k-1",
        "--input",
        "user_id=u-1",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(text(&out.stderr).contains("plain http is only allowed to a loopback host"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_email_and_password_and_mfa() {
    let env = Env::start().await;
    let rb = env.runbook(
        "roles.yaml",
        "version: 1\nname: roles\nsteps:\n  - {id: roles, name: Roles, action: roles.list}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.env_remove("ESUS_TOKEN")
        .env("ESUS_PASSWORD", "admin-drill-password")
        .args(["--login", &env.sim.ready().admin_email, "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(
        env.sim
            .requests()
            .iter()
            .any(|q| q.path == "/auth/login" && q.status == Some(200))
    );
    let code = esus_ir::sim::totp_code(b"drill-totp-secret", env.sim.now());
    let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("run2"));
    cmd.env_remove("ESUS_TOKEN")
        .env("ESUS_PASSWORD", "max-drill-password")
        .env("ESUS_MFA_CODE", &code)
        .args([
            "--login",
            "mfa.admin@riverside.example",
            "--non-interactive",
        ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(
        env.sim
            .requests()
            .iter()
            .any(|q| q.path == "/auth/mfa/verify" && q.status == Some(200)),
        "{:?}",
        env.sim.requests()
    );
    let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("run3"));
    cmd.env_remove("ESUS_TOKEN")
        .env("ESUS_PASSWORD", "wrong")
        .args(["--login", &env.sim.ready().admin_email, "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 4);
    assert!(
        !text(&out.stderr).contains("wrong"),
        "the password is never echoed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stolen_token_is_a_failed_step_not_an_operator_auth_failure() {
    let env = Env::start().await;
    let rb = env.runbook(
        "dead.yaml",
        "version: 1\nname: dead\ninputs:\n  token: {type: secret, required: true}\nsteps:\n  - {id: end, name: End, action: auth.logout_all, with: {token: \"{{ inputs.token }}\"}}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.env("ESUS_IR_INPUT_TOKEN", "not-a-live-token").args([
        "--yes",
        "--non-interactive",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    // 4 would tell the operator to renew *their* token; the stolen one being dead is a step result.
    assert_code(&out, 1);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["outcome"], "failed");
}
