//! The safety rules on the paths no other test walks, each judged by what the simulator received
//! (its request log), not only by exit codes: what asks, what declines, what is never re-sent,
//! and where secrets given in files must not appear.

use std::time::Duration;

use esus_ir::sim::{CredentialKind, RecordedRequest, SimConfig};
use expectrl::Expect;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, files_under, output, text, verify};

fn with(faults: &[&str]) -> SimConfig {
    let mut config = SimConfig::default();
    for f in faults {
        config = config.with_fault(f).expect("fault spec");
    }
    config
}

/// The requests the run sent (the test's own carry no request id).
fn sent(env: &Env) -> Vec<RecordedRequest> {
    env.sim
        .requests()
        .into_iter()
        .filter(|q| q.request_id.is_some())
        .collect()
}

fn count(log: &[RecordedRequest], method: &str, path: &str) -> usize {
    log.iter()
        .filter(|q| q.method == method && q.path == path)
        .count()
}

/// `esus-ir run RUNBOOK` for a pseudo-terminal (interactive: no `--yes`, no `--non-interactive`).
fn pty_cmd(env: &Env, runbook: &str, run_dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("HOME", env.dir.path())
        .env("NO_COLOR", "1")
        .env("ESUS_TOKEN", env.sim.ready().admin_token.expose_secret())
        .args(["run", runbook, "--base-url", &env.sim.base_url()])
        .args(["--operator", "oncall@example.org"])
        .arg("--run-dir")
        .arg(run_dir);
    cmd
}

/// Runs `cmd` in a pty, waits for `prompt` on screen, types `answer` then Enter; the exit code.
fn answer_prompt(cmd: std::process::Command, prompt: &str, answer: &str) -> (i32, String) {
    let mut session = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    let shown = session.expect(prompt).expect("the prompt is shown");
    let mut screen = String::from_utf8_lossy(shown.before()).into_owned();
    session.send(answer).expect("type the answer");
    session.send("\r").expect("Enter");
    let rest = session.expect(expectrl::Eof).expect("the run ends");
    for m in rest.matches() {
        screen.push_str(&String::from_utf8_lossy(m));
    }
    let code = match session.get_process().wait().expect("exit status") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected end: {other:?}"),
    };
    (code, screen)
}

const DELETE_NO_CONFIRM: &str = "version: 1\nname: delete\ninputs:\n  key_id: {type: string, required: true}\nsteps:\n  - {id: delete, name: Delete the key, action: api_keys.delete, with: {id: \"{{ inputs.key_id }}\"}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_step_without_confirm_asks_by_default() {
    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let rb = env.runbook("delete.yaml", DELETE_NO_CONFIRM);
    // Unattended: refused before anything is sent.
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--input", &format!("key_id={key}"), "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains("delete (needs --yes or --approve delete)"),
        "{}",
        text(&out.stdout)
    );
    assert!(sent(&env).is_empty(), "nothing sent: {:?}", sent(&env));
    // At a terminal: asked, and a "no" sends no DELETE.
    let mut cmd = pty_cmd(&env, &rb, &env.dir.path().join("run-pty"));
    cmd.args(["--input", &format!("key_id={key}")]);
    let (code, screen) = tokio::task::block_in_place(|| answer_prompt(cmd, "[y/N]", "n"));
    assert_eq!(code, 3, "{screen}");
    assert!(
        screen.contains(&format!("DELETE {}/api-keys/{key}", env.sim.base_url())),
        "the prompt shows the exact request: {screen}"
    );
    let log = sent(&env);
    assert_eq!(
        count(&log, "DELETE", &format!("/api-keys/{key}")),
        0,
        "{log:?}"
    );
    assert!(env.sim.api_key(&key).is_some_and(|k| k.usable_now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_post_delete_and_templated_methods_count_as_destructive() {
    let env = Env::start().await;
    let rb = env.runbook(
        "http.yaml",
        "version: 1\nname: http\ninputs:\n  m: {type: string, required: true}\nsteps:\n  - {id: read, name: Read, action: http, needs: [], with: {method: GET, path: /roles}}\n  - {id: post, name: Post, action: http, needs: [], with: {method: POST, path: /api-keys, body: {name: x, scopes: [Patient.read]}}}\n  - {id: del, name: Del, action: http, needs: [], with: {method: DELETE, path: /api-keys/k-1002}}\n  - {id: tmpl, name: Templated, action: http, needs: [], with: {method: \"{{ inputs.m }}\", path: /roles}}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--input", "m=GET", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 3);
    let said = text(&out.stdout);
    for step in ["post", "del", "tmpl"] {
        assert!(
            said.contains(&format!("{step} (needs --yes or --approve {step})")),
            "{step} needs an approval (even a templated method that renders GET): {said}"
        );
    }
    assert!(
        !said.contains("read (needs"),
        "a literal GET asks nothing: {said}"
    );
    assert!(sent(&env).is_empty(), "nothing sent: {:?}", sent(&env));
    assert!(env.sim.api_key("k-1002").is_some_and(|k| k.usable_now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_foreach_sends_nothing_of_the_batch() {
    let env = Env::start().await;
    let rb = env.runbook(
        "batch.yaml",
        "version: 1\nname: batch\nsteps:\n  - id: delete\n    name: Delete three keys\n    action: api_keys.delete\n    foreach: \"['k-1002', 'k-1003', 'k-1004']\"\n    concurrency: 3\n    with: {id: \"{{ item }}\"}\n    confirm: \"Delete these three keys?\"\n",
    );
    let cmd = pty_cmd(&env, &rb, &env.run_dir());
    let (code, screen) =
        tokio::task::block_in_place(|| answer_prompt(cmd, "Delete these three keys? [y/N]", "n"));
    assert_eq!(code, 3, "{screen}");
    for k in ["k-1002", "k-1003", "k-1004"] {
        assert!(
            screen.contains(&format!("/api-keys/{k}")),
            "item {k} shown: {screen}"
        );
        assert!(env.sim.api_key(k).is_some_and(|s| s.usable_now), "{k}");
    }
    let log = sent(&env);
    assert!(
        log.iter().all(|q| q.method == "GET"),
        "nothing of the batch was sent: {log:?}"
    );
    assert_eq!(verify(&env, &env.transcript()).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_typed_answer_declines() {
    let env = Env::start().await;
    let rb = env.runbook(
        "typed.yaml",
        "version: 1\nname: typed\nsteps:\n  - {id: delete, name: Delete, action: api_keys.delete, with: {id: k-1002}, confirm: typed}\n",
    );
    let cmd = pty_cmd(&env, &rb, &env.run_dir());
    // A near miss (a prefix of the id), then Enter.
    let (code, screen) =
        tokio::task::block_in_place(|| answer_prompt(cmd, "Type `k-1002` and Enter", "k-100"));
    assert_eq!(code, 3, "{screen}");
    assert!(screen.contains("declined"), "{screen}");
    let log = sent(&env);
    assert_eq!(count(&log, "DELETE", "/api-keys/k-1002"), 0, "{log:?}");
    assert!(env.sim.api_key("k-1002").is_some_and(|k| k.usable_now));
}

const CREATE: &str = "version: 1\nname: create\nsteps:\n  - id: create\n    name: Create a key\n    action: api_keys.create\n    with: {name: contract-a, scopes: [Patient.read]}\n    outputs:\n      id: response.id\n      secret: {value: response.secret, secret: true}\n";

const HTTP_POST: &str = "version: 1\nname: post\nsteps:\n  - id: post\n    name: Create a key by hand\n    action: http\n    with: {method: POST, path: /api-keys, body: {name: contract-b, scopes: [Patient.read]}}\n    timeout: 500ms\n";

/// Runs `runbook` unattended with `--yes` against `faults`; the exit code and what was sent.
async fn unattended(faults: &[&str], runbook: &str) -> (Env, std::process::Output) {
    let env = Env::with(with(faults)).await;
    let rb = env.runbook("rb.yaml", runbook);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    (env, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_answer_to_a_post_is_not_retried() {
    // A raw `http` POST: no state to check, so never sent again.
    let (env, out) = unattended(&["error_count=1@POST /api-keys"], HTTP_POST).await;
    assert_code(&out, 1);
    let posts: Vec<Option<u16>> = sent(&env)
        .iter()
        .filter(|q| q.method == "POST" && q.path == "/api-keys")
        .map(|q| q.status)
        .collect();
    assert_eq!(posts, [Some(503)], "sent once, never again: {posts:?}");
    // A create: no retry either; ESUS's keys are read first, and only when none of that name
    // was created is it sent once more (exactly one key in the end).
    let (env, out) = unattended(&["error_count=1@POST /api-keys"], CREATE).await;
    let log = sent(&env);
    no_blind_resend(&log, "/api-keys");
    assert!(count(&log, "POST", "/api-keys") <= 2, "{log:?}");
    if out.status.code() == Some(0) {
        assert_eq!(keys_named(&env, "contract-a").len(), 1, "{log:?}");
    }
}

/// The keys named `name` that ESUS holds.
fn keys_named(env: &Env, name: &str) -> Vec<esus_ir::sim::KeyState> {
    env.sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name == name)
        .collect()
}

/// After a lost answer to `POST path`, every further POST there comes after a read of ESUS's
/// state (never a blind re-send).
fn no_blind_resend(log: &[RecordedRequest], path: &str) {
    let posts: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, q)| q.method == "POST" && q.path == path)
        .map(|(i, _)| i)
        .collect();
    assert!(
        log[posts[0]].dropped || log[posts[0]].status.is_some_and(|s| s >= 500),
        "the first one's outcome was unknown: {log:?}"
    );
    for pair in posts.windows(2) {
        assert!(
            log[pair[0] + 1..pair[1]].iter().any(|q| q.method == "GET"),
            "ESUS's state was read before sending again: {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_create_is_not_blindly_sent_again() {
    let (env, out) = unattended(&["drop_count=1@POST /api-keys"], CREATE).await;
    let log = sent(&env);
    no_blind_resend(&log, "/api-keys");
    let usable: Vec<String> = keys_named(&env, "contract-a")
        .into_iter()
        .filter(|k| k.usable_now)
        .map(|k| k.id)
        .collect();
    assert!(
        usable.len() <= 1,
        "never two live keys from one approved create: {usable:?} {log:?}"
    );
    if out.status.code() == Some(0) {
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        let id = report["steps"][0]["outputs"]["id"].as_str().unwrap_or("");
        assert_eq!(usable, [id], "the one live key is the one we hold");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_create_is_not_blindly_sent_again() {
    let (env, _out) = unattended(
        &["drop_count=1@POST /fhir/Subscription"],
        "version: 1\nname: sub\nsteps:\n  - id: sub\n    name: Subscribe\n    action: subscription.create\n    with: {criteria: \"AuditEvent?outcome=failure\", endpoint: \"http://127.0.0.1:9/hook\"}\n",
    )
    .await;
    let log = sent(&env);
    no_blind_resend(&log, "/fhir/Subscription");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_create_is_not_sent_again_when_the_listing_fails() {
    // The create's answer is lost and every listing that would settle it fails: an error
    // body lists no Subscription, but that proves nothing, so nothing is sent again.
    let (env, out) = unattended(
        &[
            "drop_count=1@POST /fhir/Subscription",
            "error_count=50@GET /fhir/Subscription",
        ],
        "version: 1\nname: sub\nsteps:\n  - id: sub\n    name: Subscribe\n    action: subscription.create\n    with: {criteria: \"AuditEvent?outcome=failure\", endpoint: \"http://127.0.0.1:9/hook\"}\n",
    )
    .await;
    assert_code(&out, 1);
    let log = sent(&env);
    assert_eq!(count(&log, "POST", "/fhir/Subscription"), 1, "{log:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let reason = report["steps"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("could not be listed"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_http_post_is_not_sent_again() {
    let (env, out) = unattended(&["drop_count=1@POST /api-keys"], HTTP_POST).await;
    assert_code(&out, 1);
    let log = sent(&env);
    assert_eq!(count(&log, "POST", "/api-keys"), 1, "{log:?}");
    assert_eq!(
        keys_named(&env, "contract-b").len(),
        1,
        "the dropped request was handled once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_on_a_non_idempotent_request_is_not_sent_again() {
    // The answer takes 2 s; the step gives up after 500 ms.
    let (env, out) = unattended(&["latency=2s@POST /api-keys"], HTTP_POST).await;
    assert_code(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let reason = report["steps"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.to_lowercase().contains("time"), "{reason}");
    let log = sent(&env);
    assert_eq!(count(&log, "POST", "/api-keys"), 1, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reads_never_presents_the_leaked_key() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--dry-run=reads", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let log = sent(&env);
    assert!(!log.is_empty(), "the reads were sent");
    assert!(log.iter().all(|q| q.method == "GET"), "{log:?}");
    let with_key: Vec<&RecordedRequest> = log
        .iter()
        .filter(|q| q.credential == CredentialKind::ApiKey)
        .collect();
    assert!(
        with_key.is_empty(),
        "no request authenticated with the leaked key: {with_key:?}"
    );
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.usable_now)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_given_in_files_work_and_appear_nowhere_else() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let put = |name: &str, body: &str| {
        let p = env.dir.path().join(name);
        std::fs::write(&p, body).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        p.display().to_string()
    };
    let token = put("token", &format!("{}\n", r.admin_token.expose_secret()));
    let session = put("session", &format!("{}\n", r.session_token.expose_secret()));
    let leaked = put("leaked", &format!("{}\n", r.key_secret.expose_secret()));
    let inputs = put(
        "incident.yaml",
        &format!("key_id: {}\nuser_id: {}\n", r.key_id, r.user_id),
    );
    let mut cmd = env.bare_cmd();
    let args: Vec<String> = [
        "run",
        "api-key-compromise",
        "--base-url",
        &env.sim.base_url(),
        "--run-dir",
        &env.run_dir().display().to_string(),
        "--operator",
        "oncall@example.org",
        "--token-file",
        &token,
        "--secret-file",
        &format!("session_token={session}"),
        "--secret-file",
        &format!("leaked_secret={leaked}"),
        "--inputs-file",
        &inputs,
        "--yes",
        "--non-interactive",
        "--output",
        "json",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    cmd.args(&args);
    let out = output(cmd).await;
    assert_code(&out, 0);
    // Each secret did its job: the admin token authenticated the run, the session was logged
    // out, the leaked secret was presented by the containment check twice: accepted before the
    // delete (its baseline), refused after it.
    let log = sent(&env);
    assert!(
        log.iter()
            .filter(|q| q.path == "/auth/logout")
            .all(|q| q.status == Some(204) || q.status == Some(200))
            && count(&log, "POST", "/auth/logout") == 1,
        "{log:?}"
    );
    let sessions = env.sim.sessions_of(&r.user_id);
    assert!(
        sessions
            .iter()
            .find(|s| s.id == r.session_id)
            .is_some_and(|s| s.revoked),
        "{sessions:?}"
    );
    let probes: Vec<(u64, Option<u16>)> = log
        .iter()
        .filter(|q| q.credential == CredentialKind::ApiKey)
        .map(|q| (q.seq, q.status))
        .collect();
    let delete = log
        .iter()
        .find(|q| q.method == "DELETE" && q.path == format!("/api-keys/{}", r.key_id))
        .map(|q| q.seq)
        .expect("the delete");
    assert!(
        matches!(probes[..], [(before, Some(403)), (after, Some(401))] if before < delete && delete < after),
        "the leaked secret was accepted before the delete and refused after it: {probes:?}"
    );
    // The stolen session token, given in a file, was accepted before the logout and refused
    // after it.
    assert_eq!(
        log.iter()
            .filter(|q| q.method == "GET" && q.path == "/auth/sessions")
            .map(|q| q.status)
            .collect::<Vec<_>>(),
        [Some(200), Some(401)],
        "{log:?}"
    );
    assert!(env.sim.api_key(&r.key_id).is_some_and(|k| k.deleted));
    // Nowhere else: argv, stdout, stderr, the transcript and every file of the run folder but
    // its secrets/.
    let canaries = [
        r.admin_token.expose_secret().to_string(),
        r.session_token.expose_secret().to_string(),
        r.key_secret.expose_secret().to_string(),
    ];
    let mut places = vec![
        ("argv".to_string(), args.join(" ")),
        ("stdout".to_string(), text(&out.stdout)),
        ("stderr".to_string(), text(&out.stderr)),
    ];
    for f in files_under(&env.run_dir()) {
        if !f.starts_with(env.run_dir().join("secrets")) {
            places.push((
                f.display().to_string(),
                String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned(),
            ));
        }
    }
    assert!(
        places.iter().any(|(p, _)| p.ends_with("transcript.jsonl")),
        "the transcript is among them"
    );
    for canary in &canaries {
        for (place, hay) in &places {
            assert!(!hay.contains(canary.as_str()), "a secret reached {place}");
        }
    }
    assert_eq!(verify(&env, &env.transcript()).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_still_active_and_a_secret_that_still_authenticates_are_not_contained() {
    // k-1002 was never touched: its GET says active, and its secret is accepted (ESUS answers
    // 403 for a route it may not use — authenticated, so not the 401 that proves it dead).
    let env = Env::start().await;
    let rb = env.runbook(
        "check.yaml",
        "version: 1\nname: check\ninputs:\n  leaked: {type: secret, env: LEAKED}\nsteps:\n  - {id: contained, name: Prove it, action: api_keys.check_revoked, with: {id: k-1002, client_id: ck_analytics_export, secret: \"{{ inputs.leaked }}\"}}\n",
    );
    // A secret ESUS refuses: only the key's state fails the check, and that is enough.
    let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("run-refused"));
    cmd.env("LEAKED", "sk_not_the_secret")
        .args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["contained"], "not-contained", "{report:#}");
    assert_eq!(report["steps"][0]["status"], "failed", "{report:#}");
    // The real secret: both parts fail.
    let mut cmd = env.run_cmd(&rb);
    cmd.env("LEAKED", "sk_live_analytics_0b5d")
        .args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["contained"], "not-contained", "{report:#}");
    let reason = report["steps"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("key k-1002 is still active")
            && reason.contains("the leaked secret still authenticates"),
        "{reason}"
    );
    let log = sent(&env);
    let probes: Vec<Option<u16>> = log
        .iter()
        .filter(|q| q.credential == CredentialKind::ApiKey)
        .map(|q| q.status)
        .collect();
    assert_eq!(
        probes,
        [Some(401), Some(403)],
        "each secret was tried once: {log:?}"
    );
    assert!(
        !text(&out.stdout).contains("sk_live_analytics_0b5d")
            && !std::fs::read_to_string(env.transcript())
                .expect("transcript")
                .contains("sk_live_analytics_0b5d"),
        "the secret is not shown"
    );
}

/// `send::verdict`, the retry rules as one pure function, at every boundary: what may be sent
/// again, what is handed back, and what is reported as unknown instead of re-sent.
#[test]
fn the_retry_rules_never_resend_what_may_have_reached_esus() {
    use esus_ir::esus::client::{ApiResponse, TransportError};
    use esus_ir::exec::send::{
        CONNECT_ATTEMPTS, MAX_THROTTLED, SendPolicy, Tries, Verdict, verdict,
    };

    let answer = |status: u16| -> Result<ApiResponse, TransportError> {
        Ok(ApiResponse {
            status,
            retry_after: Some(Duration::from_secs(3)),
            body: bytes::Bytes::new(),
            duration: Duration::ZERO,
        })
    };
    let policy = |idempotent: bool, attempts: u32| SendPolicy {
        attempts,
        backoff: Duration::from_millis(100),
        idempotent,
        timeout: None,
        probe: false,
    };
    let tries = |attempt: u32, throttled: u32, renewals: u32| Tries {
        attempt,
        throttled,
        renewals,
    };
    let retry = |throttled: bool, after: Option<u64>| Verdict::Retry {
        throttled,
        retry_after: after.map(Duration::from_secs),
    };
    let unknown = |v: &Verdict| matches!(v, Verdict::Unknown(_));
    let gave_up = |v: &Verdict| matches!(v, Verdict::GaveUp(_));
    let (safe, unsafe_) = (policy(true, 3), policy(false, 3));

    // 401 on the operator's token: renewed twice at most; a 401 to anything else is the answer.
    assert_eq!(
        verdict(&answer(401), true, unsafe_, tries(1, 0, 0)),
        Verdict::Renew
    );
    assert_eq!(
        verdict(&answer(401), true, unsafe_, tries(1, 0, 1)),
        Verdict::Renew
    );
    assert_eq!(
        verdict(&answer(401), true, unsafe_, tries(1, 0, 2)),
        Verdict::Done
    );
    assert_eq!(
        verdict(&answer(401), false, safe, tries(1, 0, 0)),
        Verdict::Done
    );
    assert_eq!(
        verdict(&answer(400), true, safe, tries(1, 0, 0)),
        Verdict::Done
    );

    // 429: not processed, so even a create waits (Retry-After) and goes again, MAX_THROTTLED times.
    assert_eq!(
        verdict(&answer(429), true, unsafe_, tries(1, 0, 0)),
        retry(true, Some(3))
    );
    assert_eq!(
        verdict(&answer(429), true, unsafe_, tries(1, MAX_THROTTLED - 1, 0)),
        retry(true, Some(3))
    );
    assert_eq!(
        verdict(&answer(429), true, unsafe_, tries(1, MAX_THROTTLED, 0)),
        Verdict::Done
    );

    // 5xx: a non-idempotent request is never re-sent, attempts left or not.
    for status in [500, 503, 599] {
        assert!(unknown(&verdict(
            &answer(status),
            true,
            unsafe_,
            tries(1, 0, 0)
        )));
    }
    assert_eq!(
        verdict(&answer(499), true, unsafe_, tries(1, 0, 0)),
        Verdict::Done
    );
    // An idempotent one is retried while attempts are left, then handed back.
    assert_eq!(
        verdict(&answer(500), true, safe, tries(1, 0, 0)),
        retry(false, Some(3))
    );
    assert_eq!(
        verdict(&answer(503), true, safe, tries(2, 0, 0)),
        retry(false, Some(3))
    );
    assert_eq!(
        verdict(&answer(503), true, safe, tries(3, 0, 0)),
        Verdict::Done
    );
    assert_eq!(
        verdict(&answer(499), true, safe, tries(1, 0, 0)),
        Verdict::Done
    );
    assert_eq!(
        verdict(&answer(200), true, safe, tries(1, 0, 0)),
        Verdict::Done
    );
    assert_eq!(
        verdict(&answer(201), true, unsafe_, tries(1, 0, 0)),
        Verdict::Done
    );

    // Never connected: nothing happened, so anything may go again, CONNECT_ATTEMPTS at least.
    let not_sent = Err(TransportError::NotSent("refused".into()));
    let one = policy(false, 1);
    assert_eq!(
        verdict(&not_sent, true, one, tries(1, 0, 0)),
        retry(false, None)
    );
    assert_eq!(
        verdict(&not_sent, true, one, tries(CONNECT_ATTEMPTS - 1, 0, 0)),
        retry(false, None)
    );
    assert!(gave_up(&verdict(
        &not_sent,
        true,
        one,
        tries(CONNECT_ATTEMPTS, 0, 0)
    )));
    let five = policy(true, 5);
    assert_eq!(
        verdict(&not_sent, true, five, tries(4, 0, 0)),
        retry(false, None)
    );
    assert!(gave_up(&verdict(&not_sent, true, five, tries(5, 0, 0))));

    // No answer (dropped, timed out): unknown for a non-idempotent request, never re-sent.
    let lost = Err(TransportError::Unknown("timed out".into()));
    assert!(unknown(&verdict(&lost, true, unsafe_, tries(1, 0, 0))));
    assert!(unknown(&verdict(
        &lost,
        true,
        policy(false, 10),
        tries(1, 0, 0)
    )));
    // An idempotent one is retried while attempts are left.
    assert_eq!(
        verdict(&lost, true, safe, tries(1, 0, 0)),
        retry(false, None)
    );
    assert_eq!(
        verdict(&lost, true, safe, tries(2, 0, 0)),
        retry(false, None)
    );
    assert!(gave_up(&verdict(&lost, true, safe, tries(3, 0, 0))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_inactive_and_a_secret_refused_are_contained() {
    // ESUS's own way to switch a key off without deleting it: PUT /api-keys/{id} active: false.
    // The runbook does it itself, so that its check can prove the change by difference: before
    // the PUT the check reads the key and presents the leaked secret (accepted), after it the key
    // is inactive and the secret refused. (Switched off before the run, the refusal would prove
    // nothing: this incident would never have seen the secret accepted.)
    let env = Env::start().await;
    let rb = env.runbook(
        "check.yaml",
        "version: 1\nname: check\ninputs:\n  leaked: {type: secret, env: LEAKED}\nsteps:\n  - {id: disable, name: Switch it off, action: api_keys.update, with: {id: k-1002, active: false}}\n  - {id: contained, name: Prove it, needs: [disable], action: api_keys.check_revoked, with: {id: k-1002, client_id: ck_analytics_export, secret: \"{{ inputs.leaked }}\"}}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.env("LEAKED", "sk_live_analytics_0b5d").args([
        "--yes",
        "--non-interactive",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["contained"], "contained", "{report:#}");
    // Made inactive, not deleted.
    let key = env.sim.api_key("k-1002").expect("k-1002");
    assert!(!key.active && !key.deleted && !key.usable_now, "{key:?}");
    let check = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "contained"))
        .expect("contained");
    let finding = serde_json::to_string(check).unwrap_or_default();
    assert!(
        finding.contains("key k-1002 is inactive (active: false)")
            && finding.contains(
                "the leaked secret is refused (401), where ESUS accepted it earlier in this incident"
            )
            && !finding.contains("not proven"),
        "{finding}"
    );
    // The leaked secret: accepted (authenticated, 403 on an admin route) before the PUT, refused
    // after it.
    let log = sent(&env);
    let probes: Vec<Option<u16>> = log
        .iter()
        .filter(|q| q.credential == CredentialKind::ApiKey)
        .map(|q| q.status)
        .collect();
    assert_eq!(probes, [Some(403), Some(401)], "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_puts_the_signed_transcript_where_it_is_asked_and_it_verifies() {
    let env = Env::start().await;
    let elsewhere = env.dir.path().join("records").join("incident-42.jsonl");
    std::fs::create_dir_all(elsewhere.parent().expect("parent")).expect("dir");
    let mut cmd = env.run_cmd("access-review");
    cmd.arg("--transcript")
        .arg(&elsewhere)
        .args(["--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(
        elsewhere.is_file(),
        "the transcript is where --transcript says"
    );
    assert!(
        esus_ir::transcript::signature_path(&elsewhere).is_file(),
        "and signed there"
    );
    assert!(
        !env.transcript().exists(),
        "not also in the run folder's default place"
    );
    let (code, shown) = verify(&env, &elsewhere);
    assert_eq!(code, 0, "{shown}");
    // A second run may not overwrite it.
    let mut cmd = env.run_cmd_at("access-review", &env.dir.path().join("run-2"));
    cmd.arg("--transcript")
        .arg(&elsewhere)
        .args(["--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("already holds a run"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_check_reports_what_it_saw_as_outputs_a_runbook_can_read() {
    // The runbook logs the stolen session out itself, so that its check proves the logout by
    // difference: before it the stolen token is accepted (GET /auth/sessions, the baseline),
    // after it refused. (Logged out before the run, the refusal would prove nothing.)
    let env = Env::start().await;
    let stolen = env.sim.ready().session_token.expose_secret().to_string();
    let rb = env.runbook(
        "sessions.yaml",
        "version: 1\nname: sessions\ninputs:\n  stolen: {type: secret, env: STOLEN}\nsteps:\n  - {id: logout, name: Log it out, action: auth.logout, with: {token: \"{{ inputs.stolen }}\"}}\n  - id: dead\n    name: Prove it\n    needs: [logout]\n    action: auth.check_sessions_ended\n    with: {token: \"{{ inputs.stolen }}\"}\n    outputs:\n      refused: response.token_refused\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.env("STOLEN", &stolen)
        .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["contained"], "contained", "{report:#}");
    let dead = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "dead"))
        .expect("dead");
    assert_eq!(dead["outputs"]["refused"], true, "{report:#}");
    assert_eq!(
        dead["finding"],
        "the stolen access token is refused (401), where ESUS accepted it earlier in this incident",
        "{report:#}"
    );
    // What the check saw: the stolen token accepted before the logout, refused after it.
    let log = sent(&env);
    let sessions: Vec<Option<u16>> = log
        .iter()
        .filter(|q| q.method == "GET" && q.path == "/auth/sessions")
        .map(|q| q.status)
        .collect();
    assert_eq!(sessions, [Some(200), Some(401)], "{log:?}");
    assert!(!text(&out.stdout).contains(&stolen) && !text(&out.stderr).contains(&stolen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_refresh_token_that_still_works_fails_the_check_and_is_used_to_end_the_sessions() {
    let env = Env::start().await;
    let r = env.sim.ready();
    let refresh = r.session_refresh_token.expose_secret().to_string();
    let user = r.user_id.clone();
    let rb = env.runbook(
        "refresh.yaml",
        "version: 1\nname: refresh\ninputs:\n  stolen_refresh: {type: secret, env: STOLEN_REFRESH}\nsteps:\n  - {id: dead, name: Prove it, action: auth.check_sessions_ended, with: {refresh_token: \"{{ inputs.stolen_refresh }}\"}}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.env("STOLEN_REFRESH", &refresh)
        .args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["contained"], "not-contained", "{report:#}");
    let reason = report["steps"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the stolen refresh token still worked: the check used it and logged out every session it reached"),
        "{reason}"
    );
    let log = sent(&env);
    assert!(
        log.iter()
            .any(|q| q.method == "POST" && q.path == "/auth/logout-all"),
        "the fresh pair was used at once to end the sessions: {log:?}"
    );
    let open: Vec<String> = env
        .sim
        .sessions_of(&user)
        .into_iter()
        .filter(|s| !s.revoked)
        .map(|s| s.id)
        .collect();
    assert!(open.is_empty(), "the check left nothing alive: {open:?}");
    assert!(!text(&out.stdout).contains(&refresh) && !text(&out.stderr).contains(&refresh));
}
