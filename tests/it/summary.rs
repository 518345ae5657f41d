//! The end of every run leads with the state of containment — proven by ESUS, or what is still at
//! risk — then every step, then the exact command that continues the run; in words, not Rust.

use std::time::Duration;

use esus_ir::sim::SimConfig;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

fn first_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
}

/// Words that are Rust's, not a person's.
fn assert_no_rust_names(s: &str) {
    for bad in [
        "AssumeYes",
        "DryRun",
        "AuthFailed",
        "NotContained",
        "Some(",
        "None",
        "Ok(",
        "Err(",
        "Interactive)",
        "StepStatus",
    ] {
        assert!(!s.contains(bad), "`{bad}` in:\n{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contained_run_leads_with_when_and_how_fast() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let stdout = text(&out.stdout);
    let first = first_line(&stdout);
    assert!(
        first.starts_with("CONTAINED at ") && first.contains("(time to containment "),
        "{stdout}"
    );
    // Proven by difference, in words: what ESUS answers now against what this incident saw.
    assert!(
        first.contains(
            "key k-1001 is gone (GET /api-keys/k-1001 → 404), where this incident saw it exist before"
        ) && first.contains(
            "the leaked secret is refused (401), where ESUS accepted it earlier in this incident"
        ) && first.contains(
            "the stolen access token is refused (401), where ESUS accepted it earlier in this incident"
        ) && !first.contains("not proven"),
        "{first}"
    );
    // Nothing was refused in this run, so nothing reads as an expected refusal.
    assert!(!stdout.contains("expected by the runbook"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        !stdout.contains("To continue this run"),
        "nothing to resume"
    );
    assert_no_rust_names(&stdout);
    assert_no_rust_names(&text(&out.stderr));

    // A refusal the runbook expects (`expect: [404]`) reads as expected, never as a failure, in a
    // contained run too. (The bundled runbook no longer has one: its rotate of the deleted key
    // is gone.)
    let rb = env.runbook(
        "delete-twice.yaml",
        "version: 1\nname: delete-twice\nsteps:\n  - {id: delete, name: Delete k-1002, action: api_keys.delete, with: {id: k-1002}}\n  - {id: again, name: Delete k-1002 again, needs: [delete], action: api_keys.delete, with: {id: k-1002}, expect: [404]}\n  - {id: contained, name: Prove it, needs: [again], action: api_keys.check_revoked, with: {id: k-1002}}\n",
    );
    let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("run-twice"));
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let stdout = text(&out.stdout);
    let first = first_line(&stdout);
    assert!(
        first.starts_with("CONTAINED at ") && first.contains("(time to containment "),
        "{stdout}"
    );
    assert!(
        stdout.contains("ESUS answered 404") && stdout.contains("expected by the runbook"),
        "the refused second delete reads as expected: {stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert_no_rust_names(&stdout);
    assert_no_rust_names(&text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_containment_step_ends_with_what_is_still_at_risk() {
    // The delete never gets through: the check still runs (it only reads) and says so.
    let env = Env::with(
        SimConfig::default()
            .with_fault("error_count=20@DELETE /api-keys/{id}")
            .expect("fault"),
    )
    .await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let stdout = text(&out.stdout);
    let first = first_line(&stdout);
    assert!(
        first.starts_with("NOT CONTAINED: key k-1001 is still active"),
        "{stdout}"
    );
    assert!(
        first.contains("not done: Delete compromised key k-1001 (FAILED)"),
        "{first}"
    );
    let resume = stdout
        .lines()
        .skip_while(|l| !l.starts_with("To continue this run"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        resume.trim().starts_with("esus-ir run --resume "),
        "the exact command: {stdout}"
    );
    assert_no_rust_names(&stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_delete_says_the_key_is_still_active() {
    let env = Env::start().await;
    let code = tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(env.std_cmd()).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        use expectrl::Expect;
        // The prompt's own question: the step's name is shown above it first, and what is typed
        // before the prompt is up never answers it.
        session
            .expect("Log out the compromised session of user")
            .expect("logout prompt");
        session.send_line("y").expect("yes");
        session.expect("Delete API key").expect("delete prompt");
        session.send_line("n").expect("no");
        session
            .expect("NOT CONTAINED: key k-1001 is still active")
            .expect("the state of containment, from ESUS");
        session
            .expect("To continue this run")
            .expect("how to resume");
        session.expect(expectrl::Eof).expect("the run ends");
        match session.get_process().wait().expect("exit status") {
            expectrl::process::unix::WaitStatus::Exited(_, code) => code,
            other => panic!("unexpected end: {other:?}"),
        }
    });
    assert_eq!(code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_with_containment_not_verified_and_a_json_result() {
    let env = Env::with(
        SimConfig::default()
            .with_fault("latency=400ms")
            .expect("fault"),
    )
    .await;
    let mut cmd = env.std_cmd();
    cmd.args(["--yes", "--non-interactive", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    for _ in 0..400 {
        if !env.sim.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(130));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("exactly one JSON document");
    assert_eq!(doc["outcome"], "interrupted");
    assert_eq!(doc["contained"], "not-contained");
    let why = doc["containment"]["summary"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("not verified: `contained` did not run (the run was interrupted)"),
        "{why}"
    );
    assert!(doc["resume_command"].is_string());
    assert_no_rust_names(&text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_plan_once_and_how_to_apply_it() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--dry-run", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.starts_with("DRY RUN"), "{stdout}");
    assert!(
        !stderr.contains("plan ("),
        "the plan is not drawn a second time: {stderr}"
    );
    assert!(
        stdout.contains("To run it for real:\n  esus-ir run api-key-compromise"),
        "{stdout}"
    );
    assert!(!stdout.contains("--dry-run\n"), "{stdout}");
    assert_no_rust_names(&stdout);
    assert_no_rust_names(&stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_follows_no_color_terminals_and_the_flag() {
    let env = Env::start().await;
    let esc = "\u{1b}[";
    // Not a terminal (and NO_COLOR set by the test environment): plain text.
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert!(!text(&out.stdout).contains(esc) && !text(&out.stderr).contains(esc));
    // `--color always` colours even a pipe (for `less -R`).
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env_remove("NO_COLOR")
        .args(["--yes", "--non-interactive", "--color", "always"]);
    let out = output(cmd).await;
    assert!(text(&out.stdout).contains(esc), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(esc));
    // `--quiet`: no progress at all, the result still.
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive", "--quiet"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(text(&out.stderr).trim().is_empty(), "{}", text(&out.stderr));
    assert!(first_line(&text(&out.stdout)).starts_with("CONTAINED"));
}
