//! The run as a person meets it: real dialoguer prompts in a pseudo-terminal, and Ctrl-C.

use std::time::Duration;

use esus_ir::sim::SimConfig;
use expectrl::Expect;

use crate::run_support::{Env, verify};

/// Drives an interactive run: answers the logout prompt `y`⏎ and the delete prompt with
/// `answer_delete`⏎ — the only two prompts (the replacement is a create: it takes no access away
/// and asks nothing, its rename is the follow-up of that approval); returns the exit code.
fn interactive(env: &Env, answer_delete: &str) -> i32 {
    let mut session = expectrl::Session::spawn(env.std_cmd()).expect("spawn in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
        .expect("Log out the compromised session of user")
        .expect("logout prompt");
    session.send_line("y").expect("answer");
    session
        .expect("Delete API key")
        .expect("delete prompt shows the step's message");
    session
        .expect("[y/N]")
        .expect("the delete prompt's question");
    session.send_line(answer_delete).expect("answer");
    let rest = eof_text(&session.expect(expectrl::Eof).expect("the run ends"));
    // The delete's question may be drawn again under results that arrived while it was open;
    // after its answer, no question is asked.
    let after = rest.split_once("   → ").map_or(rest.as_str(), |(_, a)| a);
    assert!(
        !after.contains("[y/N]") && !after.contains("Type `"),
        "no prompt after the delete's: {rest}"
    );
    exit_code(&mut session)
}

/// `cmd` through `sh`, which turns the terminal's echo on first: the pty library starts children
/// with echo off, so without this a prompt that failed to hide its input would pass.
fn with_echo(cmd: std::process::Command) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("stty echo && exec \"$0\" \"$@\"")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

/// Waits until the prompt on screen has turned the terminal's echo off (a hidden prompt must).
fn wait_for_echo_off<S>(session: &expectrl::Session<expectrl::process::unix::UnixProcess, S>) {
    for _ in 0..1000 {
        if session.get_process().get_echo().is_ok_and(|on| !on) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the hidden prompt never turned the terminal's echo off");
}

/// What the terminal showed up to the end of output (an `Eof` match holds it all as its match,
/// not in `before()`).
fn eof_text(found: &expectrl::Captures) -> String {
    let mut bytes = found.before().to_vec();
    for m in found.matches() {
        bytes.extend_from_slice(m);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn exit_code<S>(session: &mut expectrl::Session<expectrl::process::unix::UnixProcess, S>) -> i32 {
    match session.get_process().wait().expect("exit status") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected end: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_yes_at_real_prompts_contains_the_key() {
    let env = Env::start().await;
    let code = tokio::task::block_in_place(|| interactive(&env, "y"));
    assert_eq!(code, 0);
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.deleted)
    );
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(
        transcript.contains("\"how\":\"interactive\""),
        "approvals recorded as interactive"
    );
    // Exactly the two prompts were answered at the terminal: logout, delete.
    let asked: Vec<String> = transcript
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("record"))
        .filter(|r| r["type"] == "confirmation" && r["data"]["how"] == "interactive")
        .map(|r| r["data"]["step"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(asked, ["logout", "delete"], "{transcript}");
    // The replacement was made all the same, and renamed to the old key's name.
    let old = env.sim.api_key(&env.sim.ready().key_id).expect("old key");
    assert!(
        env.sim
            .api_keys()
            .iter()
            .any(|k| k.id != old.id && k.name == old.name && k.usable_now),
        "a usable replacement named {}",
        old.name
    );
    assert_eq!(verify(&env, &env.transcript()).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_no_stops_the_run_with_exit_3_and_sends_nothing_more() {
    let env = Env::start().await;
    let code = tokio::task::block_in_place(|| interactive(&env, "n"));
    assert_eq!(code, 3);
    let log = env.sim.requests();
    assert!(log.iter().all(|q| q.method != "DELETE"), "{log:?}");
    assert!(log.iter().all(|q| !q.path.ends_with("/rotate")));
    assert!(
        log.iter()
            .all(|q| !(q.method == "POST" && q.path == "/api-keys") && q.method != "PUT"),
        "no replacement without the delete: {log:?}"
    );
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.usable_now)
    );
    assert_eq!(
        verify(&env, &env.transcript()).0,
        0,
        "a declined run leaves a verifiable transcript"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn y_then_enter_approves_exactly_one_prompt_and_type_ahead_never_answers_the_next() {
    let env = Env::start().await;
    let code = tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(env.std_cmd()).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session
            .expect("Log out the compromised session of user")
            .expect("logout prompt");
        // `y` then Enter, as people type it — and, in a hurry, two more `y` lines typed ahead.
        session.send("y\r").expect("y then Enter");
        session.send("y\ry\r").expect("typed ahead");
        session.expect("approved").expect("the logout is approved");
        session
            .expect("Delete API key")
            .expect("the delete prompt appears and waits");
        // Nothing typed before the delete prompt answered it: the key is untouched until we say.
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            env.sim.requests().iter().all(|q| q.method != "DELETE"),
            "type-ahead answered the delete prompt: {:?}",
            env.sim.requests()
        );
        assert!(
            env.sim
                .api_key(&env.sim.ready().key_id)
                .is_some_and(|k| k.usable_now)
        );
        session.send_line("no").expect("decline");
        session.expect(expectrl::Eof).expect("the run ends");
        exit_code(&mut session)
    });
    assert_eq!(code, 3, "declined at the delete prompt");
    let log = env.sim.requests();
    assert_eq!(
        log.iter().filter(|q| q.path == "/auth/logout").count(),
        1,
        "the one `y` approved the logout"
    );
    assert!(log.iter().all(|q| q.method != "DELETE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_but_y_or_yes_declines() {
    for answer in ["", "n", "yep", "sure", "Y es", "ja"] {
        let env = Env::start().await;
        let code = tokio::task::block_in_place(|| {
            let mut session = expectrl::Session::spawn(env.std_cmd()).expect("spawn");
            session.set_expect_timeout(Some(Duration::from_secs(30)));
            session
                .expect("Log out the compromised session of user")
                .expect("logout prompt");
            session.send_line(answer).expect("answer");
            session.expect(expectrl::Eof).expect("the run ends");
            exit_code(&mut session)
        });
        assert_eq!(code, 3, "`{answer}` declined");
        assert!(
            env.sim.requests().iter().all(|q| q.path != "/auth/logout"),
            "`{answer}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_finishes_in_flight_requests_and_stops_cleanly() {
    // The delete is held at a barrier of two; with no session token there is nothing else the
    // run could be doing meanwhile. SIGINT arrives while it is held; then the test's own DELETE
    // (unauthenticated, refused) is the second arrival and lets it go.
    let env = Env::with(
        SimConfig::default()
            .with_fault("barrier=2@DELETE /api-keys/{id}")
            .expect("fault"),
    )
    .await;
    let key = env.sim.ready().key_id.clone();
    let mut cmd = env.std_cmd();
    cmd.env_remove("ESUS_COMPROMISED_TOKEN")
        .args(["--yes", "--non-interactive"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let mut pipe = child.stderr.take().expect("stderr");
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = stderr.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
    }
    let said = |what: &str| stderr.lock().is_ok_and(|s| s.contains(what));
    let held = |log: &[esus_ir::sim::RecordedRequest]| {
        log.iter()
            .find(|q| q.method == "DELETE" && q.status.is_none())
            .map(|q| q.seq)
    };
    let mut seq = None;
    for _ in 0..2000 {
        seq = held(&env.sim.requests());
        if seq.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let Some(held_seq) = seq else {
        let _ = child.kill();
        panic!("the delete was never held: {:?}", env.sim.requests());
    };
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    // Once the run says it has seen the interrupt, let the held request go: it must still be
    // answered and recorded.
    for _ in 0..2000 {
        if said("Ctrl-C: the requests in flight finish") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        said("Ctrl-C: the requests in flight finish"),
        "the run acknowledged Ctrl-C: {:?}",
        stderr.lock().map(|s| s.clone())
    );
    let released = crate::sim_support::client()
        .delete(format!("{}/api-keys/k-none", env.sim.base_url()))
        .send()
        .await
        .expect("the simulator answers");
    assert_eq!(released.status(), 401);
    let mut status = None;
    for _ in 0..3000 {
        if let Some(s) = child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the run did not stop after Ctrl-C");
    });
    assert_eq!(status.code(), Some(130));
    let log = env.sim.requests();
    let delete = log
        .iter()
        .find(|q| q.seq == held_seq)
        .expect("the held delete");
    assert_eq!(
        (delete.status, delete.dropped),
        (Some(204), false),
        "{delete:?}"
    );
    assert!(
        env.sim.api_key(&key).is_some_and(|k| k.deleted),
        "the in-flight delete took effect"
    );
    let after: Vec<String> = log
        .iter()
        .filter(|q| q.seq > held_seq && q.request_id.is_some())
        .map(|q| format!("{} {}", q.method, q.path))
        .collect();
    assert!(
        after.is_empty(),
        "nothing new was started after Ctrl-C: {after:?}"
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let answered: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["type"] == "response" && r["data"]["step"] == "delete")
        .collect();
    assert_eq!(
        answered.len(),
        1,
        "the delete's answer is in the transcript: {records:#?}"
    );
    assert_eq!(answered[0]["data"]["status"], 204, "{:#}", answered[0]);
    assert!(
        !records
            .iter()
            .any(|r| r["type"] == "request" && r["data"]["step"] == "replace"),
        "the replacement, which waits for the delete, was never started"
    );
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "run-finished" && r["data"]["outcome"] == "interrupted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_replaced_at_a_hidden_prompt() {
    let env = Env::start().await;
    env.sim.advance_clock(Duration::from_secs(20 * 60));
    let r = env.sim.ready().clone();
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/auth/login", env.sim.base_url()))
        .json(&serde_json::json!({"email": r.admin_email, "password": secrecy::ExposeSecret::expose_secret(&r.admin_password)}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let fresh = login["accessToken"]
        .as_str()
        .expect("a fresh token")
        .to_string();
    let rb = env.runbook(
        "roles.yaml",
        "version: 1\nname: roles\nsteps:\n  - {id: roles, name: Roles, action: roles.list}\n",
    );
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("NO_COLOR", "1")
        .env(
            "ESUS_TOKEN",
            secrecy::ExposeSecret::expose_secret(&r.admin_token),
        )
        .args(["run", &rb, "--base-url", &env.sim.base_url()])
        .arg("--run-dir")
        .arg(env.run_dir());
    let code = tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(with_echo(cmd)).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session
            .expect("Paste a new access token")
            .expect("the hidden token prompt");
        wait_for_echo_off(&session);
        session.send_line(&fresh).expect("type the token");
        let rest = session.expect(expectrl::Eof).expect("the run ends");
        assert!(!eof_text(&rest).contains(&fresh), "the token is not echoed");
        match session.get_process().wait().expect("exit status") {
            expectrl::process::unix::WaitStatus::Exited(_, code) => code,
            other => panic!("unexpected end: {other:?}"),
        }
    });
    assert_eq!(code, 0);
    let statuses = |path: &str| -> Vec<Option<u16>> {
        env.sim
            .requests()
            .iter()
            .filter(|q| q.path == path)
            .map(|q| q.status)
            .collect()
    };
    // The preflight meets the expired token first, asks for a new one, and the run goes on.
    assert_eq!(statuses("/auth/me"), vec![Some(401), Some(200)]);
    assert_eq!(statuses("/roles"), vec![Some(200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_a_prompt_stops_the_run_as_interrupted() {
    let env = Env::start().await;
    let code = tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(env.std_cmd()).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session
            .expect("Log out the compromised session of user")
            .expect("logout prompt");
        session
            .send(expectrl::ControlCode::EndOfText)
            .expect("Ctrl-C");
        session.expect(expectrl::Eof).expect("the run ends");
        match session.get_process().wait().expect("exit status") {
            expectrl::process::unix::WaitStatus::Exited(_, code) => code,
            other => panic!("unexpected end: {other:?}"),
        }
    });
    assert_eq!(code, 130);
    assert!(
        env.sim.requests().iter().all(|q| q.method == "GET"),
        "nothing destructive was sent"
    );
    assert_eq!(verify(&env, &env.transcript()).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_asks_for_a_required_input_nobody_gave() {
    let env = Env::start().await;
    let rb = env.runbook(
        "ask.yaml",
        "version: 1\nname: ask\ninputs:\n  key_id: {type: string, required: true, description: Id of the key to read, pattern: \"k-[0-9]+\"}\nsteps:\n  - {id: read, name: Read the key, action: api_keys.get, with: {id: \"{{ inputs.key_id }}\"}}\n",
    );
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("NO_COLOR", "1")
        .env(
            "ESUS_TOKEN",
            secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
        )
        .args(["run", &rb, "--base-url", &env.sim.base_url()])
        .arg("--run-dir")
        .arg(env.run_dir());
    let code = tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(cmd).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session
            .expect("key_id (string, required) — Id of the key to read: ")
            .expect("the prompt names the input and says what it is");
        session.send_line("k-1001").expect("type it");
        session.expect(expectrl::Eof).expect("the run ends");
        exit_code(&mut session)
    });
    assert_eq!(code, 0);
    assert!(
        env.sim
            .requests()
            .iter()
            .any(|q| q.method == "GET" && q.path == "/api-keys/k-1001")
    );
}

/// Ctrl-C at a prompt before the run starts (the token, a secret input, a plain input).
fn ctrl_c_before_the_run(
    env: &Env,
    runbook: &str,
    with_token: bool,
    prompt: &str,
) -> (i32, String) {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("NO_COLOR", "1")
        .args(["run", runbook, "--base-url", &env.sim.base_url()])
        .arg("--run-dir")
        .arg(env.run_dir());
    if with_token {
        cmd.env(
            "ESUS_TOKEN",
            secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
        );
    }
    tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(cmd).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session.expect(prompt).expect("the prompt");
        session
            .send(expectrl::ControlCode::EndOfText)
            .expect("Ctrl-C");
        let rest = session.expect(expectrl::Eof).expect("the command ends");
        let text = eof_text(&rest);
        (exit_code(&mut session), text)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_the_token_or_an_input_prompt_ends_with_130_and_sends_nothing() {
    let env = Env::start().await;
    let rb = env.runbook(
        "ask.yaml",
        "version: 1\nname: ask\ninputs:\n  key_id: {type: string, required: true}\n  leaked: {type: secret, required: true}\nsteps:\n  - {id: read, name: Read the key, action: api_keys.get, with: {id: \"{{ inputs.key_id }}\"}}\n",
    );
    let roles = env.runbook(
        "roles.yaml",
        "version: 1\nname: roles\nsteps:\n  - {id: roles, name: Roles, action: roles.list}\n",
    );
    let cases = [
        (&roles, false, "ESUS access token (hidden): "),
        (&rb, true, "key_id (string, required): "),
    ];
    for (runbook, with_token, prompt) in cases {
        let (code, text) = ctrl_c_before_the_run(&env, runbook, with_token, prompt);
        assert_eq!(code, 130, "{prompt}: {text}");
        assert!(
            text.contains("before the run started: nothing was sent"),
            "{prompt}: {text}"
        );
        assert!(!text.contains("requests in flight"), "{prompt}: {text}");
        assert!(
            !env.run_dir().exists(),
            "{prompt}: no empty run folder is left behind to look like an incident"
        );
    }
    // The secret input prompt comes once the plain one is answered.
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("NO_COLOR", "1")
        .env(
            "ESUS_TOKEN",
            secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
        )
        .args(["run", &rb, "--base-url", &env.sim.base_url()])
        .arg("--run-dir")
        .arg(env.run_dir());
    let code = tokio::task::block_in_place(|| {
        let mut session = expectrl::Session::spawn(with_echo(cmd)).expect("spawn in a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session
            .expect("key_id (string, required): ")
            .expect("plain");
        session.send_line("k-1001").expect("answer");
        session
            .expect("leaked (secret, hidden): ")
            .expect("the hidden prompt");
        wait_for_echo_off(&session);
        session.send("half-typed-sec").expect("type part of it");
        session
            .send(expectrl::ControlCode::EndOfText)
            .expect("Ctrl-C");
        let rest = session.expect(expectrl::Eof).expect("the command ends");
        assert!(
            !eof_text(&rest).contains("half-typed-sec"),
            "a hidden prompt never echoes"
        );
        exit_code(&mut session)
    });
    assert_eq!(code, 130);
    assert!(
        env.sim.requests().is_empty(),
        "not even the preflight was sent: {:?}",
        env.sim
            .requests()
            .iter()
            .map(|q| q.path.clone())
            .collect::<Vec<_>>()
    );
}
