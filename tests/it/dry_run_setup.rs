//! A dry-run is the natural "am I set up?" check: it sends the read-only preflight and ends 2, 4
//! or 6 exactly as a live run would before its first write — unless `--offline` is asked for.

use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

const FAN_OUT: &str = "version: 1\nname: many\nsteps:\n  - id: rm\n    name: Delete the keys\n    action: api_keys.delete\n    foreach: \"['k-a', 'k-b', 'k-c']\"\n    with: {id: \"{{ item }}\"}\n";

fn plan(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}): {}", text(&out.stdout)))
}

/// Every request a run sent, as "METHOD /path".
fn sent(env: &Env) -> Vec<String> {
    env.sim
        .requests()
        .iter()
        .map(|q| format!("{} {}", q.method, q.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_checks_the_setup_with_the_preflight_alone() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--dry-run", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert_eq!(sent(&env), ["GET /auth/me"], "only the read-only preflight");
    let shown = text(&out.stdout);
    assert!(shown.contains("checked: acting as"), "{shown}");
    assert!(shown.contains("To run it for real"), "{shown}");

    let mut cmd = env.run_cmd_at("api-key-compromise", &env.dir.path().join("json"));
    env.compromise_args(&mut cmd);
    cmd.args(["--dry-run", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let doc = plan(&out);
    assert_eq!(doc["kind"], "plan");
    assert_eq!(doc["outcome"], "success");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["offline"], false);
    assert!(
        doc["acting_as"]
            .as_str()
            .is_some_and(|a| a.starts_with("acting as")),
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_dry_run_sends_nothing_and_says_the_setup_was_not_checked() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env_remove("ESUS_TOKEN")
        .args(["--dry-run", "--offline", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(sent(&env).is_empty(), "{:?}", sent(&env));
    assert!(
        text(&out.stdout).contains("the token and the URL were not checked"),
        "{}",
        text(&out.stdout)
    );
    // `--offline` means nothing without `--dry-run`: a usage error, before anything is sent.
    let mut cmd = env.run_cmd_at("api-key-compromise", &env.dir.path().join("live"));
    env.compromise_args(&mut cmd);
    cmd.args(["--offline", "--non-interactive"]);
    assert_code(&output(cmd).await, 2);
    assert!(sent(&env).is_empty(), "{:?}", sent(&env));
}

/// Each way a live run would fail before its first write, for `--dry-run` and
/// `--dry-run=reads`: the same exit code, a JSON plan that says so, and no write sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dry_run_ends_with_the_exit_code_a_live_run_would() {
    for mode in ["--dry-run", "--dry-run=reads"] {
        // A refused token: 4, after the preflight alone.
        let env = Env::start().await;
        let mut cmd = env.run_cmd("api-key-compromise");
        env.compromise_args(&mut cmd);
        cmd.env("ESUS_TOKEN", "not-a-token")
            .args([mode, "--non-interactive", "--output", "json"]);
        let out = output(cmd).await;
        assert_code(&out, 4);
        let doc = plan(&out);
        assert_eq!(
            (doc["outcome"].as_str(), doc["exit_code"].as_u64()),
            (Some("auth-failed"), Some(4)),
            "{mode}: {doc}"
        );
        assert!(
            doc["error"].as_str().is_some_and(|e| e.contains("refused")),
            "{doc}"
        );
        assert!(
            sent(&env).iter().all(|r| r == "GET /auth/me"),
            "{mode}: {:?}",
            sent(&env)
        );

        // No token at all: 2, nothing sent.
        let mut cmd = env.run_cmd_at("api-key-compromise", &env.dir.path().join("none"));
        env.compromise_args(&mut cmd);
        cmd.env_remove("ESUS_TOKEN")
            .args([mode, "--non-interactive", "--output", "json"]);
        let before = sent(&env).len();
        let out = output(cmd).await;
        assert_code(&out, 2);
        assert_eq!(plan(&out)["exit_code"], 2, "{mode}");
        assert_eq!(sent(&env).len(), before, "{mode}: nothing sent");

        // A plan a live run refuses (a fan-out over the cap): 2, before the preflight.
        let rb = env.runbook("many.yaml", FAN_OUT);
        let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("cap"));
        cmd.args([
            mode,
            "--max-items",
            "2",
            "--non-interactive",
            "--output",
            "json",
        ]);
        let out = output(cmd).await;
        assert_code(&out, 2);
        let doc = plan(&out);
        assert_eq!(doc["outcome"], "refused", "{mode}: {doc}");
        assert!(
            doc["error"]
                .as_str()
                .is_some_and(|e| e.contains("the cap is 2")),
            "{doc}"
        );
        assert_eq!(
            sent(&env).len(),
            before,
            "{mode}: refused before the preflight"
        );

        // A closed port: 6.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut cmd = env.bare_cmd();
        cmd.env("ESUS_TOKEN", "tok")
            .args([
                "run",
                "api-key-compromise",
                "--input",
                "key_id=k-1",
                "--input",
                "user_id=u-1",
            ])
            .args(["--base-url", &format!("http://127.0.0.1:{port}")])
            .arg("--run-dir")
            .arg(env.dir.path().join("closed"))
            .args([mode, "--non-interactive", "--output", "json"]);
        let out = output(cmd).await;
        assert_code(&out, 6);
        assert_eq!(plan(&out)["outcome"], "unreachable", "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_before_the_runbook_takes_the_runbook_as_the_runbook() {
    let env = Env::start().await;
    let r = env.sim.ready();
    let mut cmd = env.bare_cmd();
    cmd.args(["run", "--dry-run", "api-key-compromise", "--offline"])
        .args(["--base-url", &env.sim.base_url()])
        .args(["--input", &format!("key_id={}", r.key_id)])
        .args(["--input", &format!("user_id={}", r.user_id)])
        .arg("--run-dir")
        .arg(env.dir.path().join("r"))
        .arg("--non-interactive");
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(
        text(&out.stdout).contains("DELETE "),
        "{}",
        text(&out.stdout)
    );
}
