//! Regression tests for the findings of the third wave's review (issue 16): each one what broke,
//! named after it, and each seen failing before its fix.

use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "json on stdout ({e}):\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// Finding 1: an unattended run without approvals (exit 3, nothing sent), then a dry-run of its
/// resume, then the real resume: the dry-run wrote a transcript that the real resume took for a
/// finished run ("already complete", exit 0) while the leaked key stayed active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_a_resume_never_makes_the_real_resume_complete() {
    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let mut first = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut first);
    first.args(["--non-interactive", "--output", "json"]);
    let out = output(first).await;
    assert_code(&out, 3);

    let mut dry = env.bare_cmd();
    dry.env(
        "ESUS_TOKEN",
        secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
    )
    .arg("run")
    .arg("--resume")
    .arg(env.run_dir())
    .args(["--dry-run", "--non-interactive"]);
    let out = output(dry).await;
    assert_code(&out, 0);

    let mut real = env.bare_cmd();
    let r = env.sim.ready();
    real.env(
        "ESUS_TOKEN",
        secrecy::ExposeSecret::expose_secret(&r.admin_token),
    )
    .env(
        "ESUS_LEAKED_KEY_SECRET",
        secrecy::ExposeSecret::expose_secret(&r.key_secret),
    )
    .env(
        "ESUS_COMPROMISED_TOKEN",
        secrecy::ExposeSecret::expose_secret(&r.session_token),
    )
    .arg("run")
    .arg("--resume")
    .arg(env.run_dir())
    .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(real).await;
    let report = json(&out);
    assert!(
        !report["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already complete"),
        "{report:#}"
    );
    assert_code(&out, 0);
    assert!(
        env.sim.api_key(&key).is_none_or(|k| !k.usable_now),
        "the leaked key is dead after the real resume"
    );
    assert_eq!(report["contained"], "contained", "{report:#}");
}

/// Finding 3: a step that failed under `on_failure: continue` ended the run "all steps
/// completed", exit 0, outcome success, while the table showed FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_failure_is_completed_with_failures_not_success() {
    let env = Env::start().await;
    let rb = env.runbook(
        "continue.yaml",
        "version: 1\nname: continued\nsteps:\n  - id: missing\n    name: Read a key that is not there\n    action: api_keys.get\n    with: {id: k-does-not-exist}\n    on_failure: continue\n  - id: after\n    name: List the keys\n    needs: [missing]\n    action: api_keys.list\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    let report = json(&out);
    assert_code(&out, 1);
    assert_eq!(report["outcome"], "completed-with-failures", "{report:#}");
    let message = report["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("completed with failures: missing"),
        "the summary names the continued failure first: {message}"
    );
    let statuses: Vec<&str> = report["steps"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(statuses, ["failed", "ok"], "the step after it still ran");
}
