//! A chain of resumes forgets nothing: a resume that stops before doing anything (here at the
//! preflight, with a token ESUS refuses) still records what the runs before it finished and
//! what they left unknown, so the next resume neither repeats finished steps nor re-sends a
//! request whose outcome was never settled.

use std::time::{Duration, Instant};

use esus_ir::sim::SimConfig;
use secrecy::ExposeSecret;

use crate::run_support::{Env, text, verify};

/// The unattended resume of `env`'s run folder, with `token` as the operator's.
fn resume(env: &Env, token: &str) -> std::process::Output {
    env.resume_cmd()
        .env("ESUS_TOKEN", token)
        .output()
        .expect("resume")
}

fn count(env: &Env, method: &str, path: &str) -> usize {
    env.sim
        .requests()
        .iter()
        .filter(|q| q.method == method && q.path == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_stopped_at_the_preflight_keeps_what_earlier_runs_did_and_left_unknown() {
    // The replacement's create reaches ESUS, which makes the key and answers slowly: the run is
    // killed before the answer, after snapshot, logout and delete finished — its outcome unknown.
    let env = Env::with(
        SimConfig::default()
            .with_fault("latency=1500ms@POST /api-keys")
            .expect("fault"),
    )
    .await;
    let key = env.sim.ready().key_id.clone();
    let name = env.sim.api_key(&key).expect("key").name;
    let mut child = env
        .std_cmd()
        .args(["--yes", "--non-interactive"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&env, "POST", "/api-keys") == 0 {
        assert!(Instant::now() < deadline, "the create reached ESUS");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(count(&env, "DELETE", &format!("/api-keys/{key}")), 1);

    // A resume with a token ESUS refuses stops at the preflight, having sent nothing else.
    let before = env.sim.requests().len();
    let out = resume(&env, "not-a-valid-token");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let sent: Vec<String> = env.sim.requests()[before..]
        .iter()
        .map(|q| format!("{} {}", q.method, q.path))
        .collect();
    assert_eq!(sent, ["GET /auth/me"], "only the preflight was sent");
    let second = std::fs::read_to_string(env.run_dir().join("transcript.2.jsonl")).expect("t2");
    let kinds: Vec<&str> = second
        .lines()
        .filter_map(|l| l.split("\"type\":\"").nth(1))
        .filter_map(|t| t.split('"').next())
        .collect();
    for step in ["snapshot", "logout", "delete"] {
        assert!(
            second.lines().any(|l| l.contains("\"type\":\"carried\"")
                && l.contains(&format!("\"step\":\"{step}\""))),
            "the stopped resume carries {step}: {kinds:?}"
        );
    }
    assert!(
        second
            .lines()
            .any(|l| l.contains("\"type\":\"unresolved\"") && l.contains("\"step\":\"replace\"")),
        "the stopped resume carries the create's unknown outcome: {kinds:?}"
    );

    // The next resume finishes from there: nothing finished is done again, and the create is
    // settled by its exact claim — the key it made (whose secret died with the process) is
    // revoked, and one replacement made whose secret is held.
    std::thread::sleep(Duration::from_millis(1600));
    let claimed: Vec<String> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name.starts_with(&format!("{name}.esus-ir-")))
        .map(|k| k.id)
        .collect();
    assert_eq!(
        claimed.len(),
        1,
        "the killed create made its key, under its claim"
    );
    let admin = env.sim.ready().admin_token.expose_secret().to_string();
    let out = resume(&env, &admin);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        count(&env, "POST", "/api-keys"),
        2,
        "sent once more, after the check"
    );
    assert_eq!(
        count(&env, "DELETE", &format!("/api-keys/{}", claimed[0])),
        1,
        "the orphan, proven ours by its claim, was revoked"
    );
    assert_eq!(count(&env, "DELETE", &format!("/api-keys/{key}")), 1);
    assert_eq!(count(&env, "POST", "/auth/logout"), 1);
    let live: Vec<_> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name.starts_with(&name) && k.id != key && k.usable_now)
        .collect();
    assert_eq!(live.len(), 1, "exactly one replacement");
    assert_eq!(live[0].name, name, "under its own name");
    assert!(
        !env.sim.api_key(&key).is_some_and(|k| k.usable_now),
        "the leaked key is dead"
    );
    for t in [
        "transcript.jsonl",
        "transcript.2.jsonl",
        "transcript.3.jsonl",
    ] {
        let (code, shown) = verify(&env, &env.run_dir().join(t));
        // The killed first transcript is incomplete (5) but intact; the others verify.
        let want = if t == "transcript.jsonl" { 5 } else { 0 };
        assert_eq!(code, want, "{t}: {shown}");
    }
}

/// The interactive resume of `env`'s run folder (a pty, like the person who comes back to it).
fn resume_at_a_terminal(env: &Env) -> expectrl::session::OsSession {
    let mut cmd = env.std_env_cmd();
    cmd.arg("run").arg("--resume").arg(env.run_dir());
    let mut session = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

fn ended(session: &mut expectrl::session::OsSession) -> (i32, String) {
    use expectrl::Expect;
    let found = session.expect(expectrl::Eof).expect("the run ends");
    let mut shown = found.before().to_vec();
    for m in found.matches() {
        shown.extend_from_slice(m);
    }
    let code = match session.get_process().wait().expect("exit status") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected end: {other:?}"),
    };
    (code, String::from_utf8_lossy(&shown).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_resume_ctrl_c_resume_resume_completes_with_nothing_repeated() {
    use expectrl::Expect;
    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let name = env.sim.api_key(&key).expect("key").name;
    tokio::task::block_in_place(|| {
        // 1. Log out, then decline the delete: exit 3.
        let mut s = expectrl::Session::spawn(env.std_cmd()).expect("spawn in a pty");
        s.set_expect_timeout(Some(Duration::from_secs(30)));
        s.expect("Log out the compromised session of user")
            .expect("logout prompt");
        s.send_line("y").expect("answer");
        s.expect("Delete API key").expect("delete prompt");
        s.send_line("n").expect("answer");
        let (code, shown) = ended(&mut s);
        assert_eq!(code, 3, "declined: {shown}");

        // 2. Resume, and Ctrl-C at the delete prompt: exit 130, nothing more sent.
        let mut s = resume_at_a_terminal(&env);
        s.expect("Delete API key")
            .expect("the resume asks for the delete");
        s.send(expectrl::ControlCode::EndOfText).expect("Ctrl-C");
        let (code, shown) = ended(&mut s);
        assert_eq!(code, 130, "interrupted: {shown}");
        assert_eq!(
            count(&env, "DELETE", &format!("/api-keys/{key}")),
            0,
            "nothing was deleted yet"
        );

        // 3. Resume the resumed run: it asks only for the delete, and completes.
        let mut s = resume_at_a_terminal(&env);
        let found = s
            .expect("Delete API key")
            .expect("the second resume asks for the delete");
        let before = String::from_utf8_lossy(found.before()).into_owned();
        assert!(
            !before.contains("Log out the compromised session of user"),
            "no finished step is asked again: {before}"
        );
        assert!(
            before.contains("snapshot") && before.contains("logout"),
            "the resume says what is already done: {before}"
        );
        s.send_line("y").expect("answer");
        let (code, shown) = ended(&mut s);
        assert_eq!(code, 0, "completed: {shown}");
    });
    assert_eq!(count(&env, "POST", "/auth/logout"), 1, "logged out once");
    assert_eq!(
        count(&env, "DELETE", &format!("/api-keys/{key}")),
        1,
        "deleted once"
    );
    assert_eq!(count(&env, "POST", "/api-keys"), 1, "one replacement made");
    let live: Vec<_> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name == name && k.id != key && k.usable_now)
        .collect();
    assert_eq!(live.len(), 1, "exactly one replacement");
    assert!(!env.sim.api_key(&key).is_some_and(|k| k.usable_now));
    // Every link of the chain verifies; the last one carries all that the chain finished.
    for t in [
        "transcript.jsonl",
        "transcript.2.jsonl",
        "transcript.3.jsonl",
    ] {
        let (code, shown) = verify(&env, &env.run_dir().join(t));
        assert_eq!(code, 0, "{t}: {shown}");
    }
    let last = std::fs::read_to_string(env.run_dir().join("transcript.3.jsonl")).expect("t3");
    for step in ["snapshot", "logout"] {
        assert!(
            last.lines().any(|l| l.contains("\"type\":\"carried\"")
                && l.contains(&format!("\"step\":\"{step}\""))),
            "the last transcript carries {step}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_in_a_folder_that_holds_one_points_to_resume_and_a_stillborn_one_is_replaced() {
    let env = Env::start().await;
    let run = |env: &Env| {
        env.std_cmd()
            .args(["--yes", "--non-interactive"])
            .output()
            .expect("run")
    };
    // What a run killed as it began leaves: the file, not one whole record.
    std::fs::create_dir_all(env.run_dir()).expect("run folder");
    std::fs::write(env.transcript(), b"{\"seq\":0,\"ts\":\"2026-").expect("stub");
    let out = run(&env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("holds no complete record"));
    let deletes = count(
        &env,
        "DELETE",
        &format!("/api-keys/{}", env.sim.ready().key_id),
    );
    assert_eq!(deletes, 1);
    // The same command again (a page fired twice) finds the incident complete: it says so and
    // sends nothing.
    let before = env.sim.requests().len();
    let out = run(&env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already holds this incident: continuing it"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("already complete"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.sim.requests().len(), before, "nothing was sent");
    // A different runbook into that folder is refused before anything is sent.
    let mut other = env.std_cmd();
    let args: Vec<_> = other.get_args().map(|a| a.to_os_string()).collect();
    let mut cmd = env.std_env_cmd();
    cmd.args(args.iter().map(|a| {
        if a == "api-key-compromise" {
            std::ffi::OsString::from("session-compromise")
        } else {
            a.clone()
        }
    }));
    other = cmd;
    let out = other
        .args(["--yes", "--non-interactive"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(env.sim.requests().len(), before, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_of_the_last_link_checks_every_earlier_transcript_of_the_chain() {
    let env = Env::start().await;
    // A first run stopped at the preflight (refused token), then resumed to the end.
    let out = env
        .std_cmd()
        .env("ESUS_TOKEN", "refused-token")
        .args(["--yes", "--non-interactive"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let admin = env.sim.ready().admin_token.expose_secret().to_string();
    let out = resume(&env, &admin);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let last = env.run_dir().join("transcript.2.jsonl");
    let (code, shown) = verify(&env, &last);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("resumes:   transcript.jsonl (valid"),
        "the earlier link is named and checked: {shown}"
    );

    // What a kill leaves of an earlier link — no signature, a last line cut mid-write — is a
    // stopped run's intact prefix: the chain still verifies.
    let first = env.transcript();
    let original = std::fs::read_to_string(&first).expect("t1");
    let sig = esus_ir::transcript::signature_path(&first);
    let signature = std::fs::read(&sig).expect("sig");
    std::fs::remove_file(&sig).expect("rm sig");
    std::fs::write(&first, format!("{original}{{\"seq\":99,\"ts\":\"20")).expect("cut");
    let (code, shown) = verify(&env, &last);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("resumes:   transcript.jsonl (a stopped run's intact prefix"),
        "{shown}"
    );
    std::fs::write(&sig, signature).expect("sig back");

    // The earlier link altered (its last record dropped): the last link no longer verifies.
    let mut lines: Vec<&str> = original.lines().collect();
    lines.pop();
    std::fs::write(&first, lines.join("\n") + "\n").expect("cut");
    let (code, shown) = verify(&env, &last);
    assert_eq!(code, 5, "{shown}");
    assert!(
        shown.contains("resumes transcript.jsonl at record")
            && shown.contains("(resumed by this transcript) does not verify"),
        "{shown}"
    );

    // Gone altogether: a warning that the chain before it was not checked, not a failure.
    std::fs::remove_file(&first).expect("rm");
    let (code, shown) = verify(&env, &last);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("which is not in the run folder"), "{shown}");
}
