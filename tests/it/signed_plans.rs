//! The plan as an artifact: `esus-ir plan` writes what a run would send (no secret in it),
//! `esus-ir approve` signs its exact bytes with the approver's SSH key, and plain
//! `ssh-keygen -Y verify` checks that approval in the `esus-ir-plan` namespace.

use std::path::Path;
use std::process::{Command, Stdio};

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

fn make_plan(env: &Env, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = env.bare_cmd();
    let r = env.sim.ready();
    cmd.env("ESUS_TOKEN", r.admin_token.expose_secret())
        .env("ESUS_COMPROMISED_TOKEN", r.session_token.expose_secret())
        .env("ESUS_LEAKED_KEY_SECRET", r.key_secret.expose_secret())
        .args([
            "plan",
            "api-key-compromise",
            "--base-url",
            &env.sim.base_url(),
        ])
        .args(["--input", &format!("key_id={}", r.key_id)])
        .args(["--input", &format!("user_id={}", r.user_id)])
        .args(["--non-interactive", "--operator", "oncall@example.org"])
        .arg("--run-dir")
        .arg(env.dir.path().join("plan-run"))
        .arg("-o")
        .arg(file)
        .args(extra);
    cmd.output().expect("plan")
}

/// An approver's own key, made by OpenSSH.
fn approver_key(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("alice_ed25519");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", "alice", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen")
        .success();
    assert!(ok);
    key
}

fn approve(env: &Env, plan: &Path, key: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = env.bare_cmd();
    cmd.arg("approve")
        .arg(plan)
        .arg("--sign-key")
        .arg(key)
        .args(["--as", "alice@example.org"])
        .args(extra);
    cmd
}

fn sigs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sig"))
        .collect();
    found.sort();
    found
}

fn openssh_accepts(plan: &Path, sig: &Path, allowed: &Path, namespace: &str) -> bool {
    Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", "alice@example.org", "-n", namespace, "-s"])
        .arg(sig)
        .stdin(std::fs::File::open(plan).expect("plan"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh-keygen")
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_holds_what_would_be_sent_and_no_secret() {
    let env = Env::start().await;
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(&env, &file, &["--expires-in", "2h"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bytes = std::fs::read(&file).expect("plan file");
    let r = env.sim.ready();
    for secret in [
        r.admin_token.expose_secret(),
        r.session_token.expose_secret(),
        r.key_secret.expose_secret(),
    ] {
        assert!(!text(&bytes).contains(secret), "no secret in the plan");
    }
    let plan: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(plan["kind"], "esus-ir-plan");
    assert_eq!(plan["runbook"], "api-key-compromise");
    assert_eq!(
        plan["inputs"]["leaked_secret"], "[secret]",
        "named, not included"
    );
    assert!(
        plan["runbook_sha256"]
            .as_str()
            .is_some_and(|d| d.len() == 64)
    );
    assert!(
        plan["acting_as"]
            .as_str()
            .is_some_and(|a| a.starts_with("acting as"))
    );
    assert!(plan["expires_at"].is_string());
    let step = |id: &str| {
        plan["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("step {id}"))
    };
    let delete = &step("delete")["requests"][0];
    assert_eq!(delete["method"], "DELETE");
    assert_eq!(delete["exact"], true);
    assert!(
        delete["request_sha256"]
            .as_str()
            .is_some_and(|d| d.len() == 64)
    );
    let rename = &step("replace")["follow_ups"][0];
    assert_eq!(
        rename["exact"], false,
        "the rename reads the create's answer: a template"
    );
    assert!(rename.get("request_sha256").is_none());
    // Only reads were sent (the preflight, the snapshot), never as the leaked key: the create
    // of the replacement is then known exactly, claim name included.
    let log = env.sim.requests();
    assert!(log.iter().all(|q| q.method == "GET"), "{log:?}");
    assert!(
        !log.iter()
            .any(|q| q.credential == esus_ir::sim::CredentialKind::ApiKey),
        "{log:?}"
    );
    assert_eq!(step("replace")["requests"][0]["exact"], true, "{plan:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_an_sshsig_openssh_verifies_in_the_plan_namespace() {
    let env = Env::start().await;
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(&env, &file, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = approver_key(env.dir.path());
    // Unattended without --yes: nothing is signed (exit 3).
    let out = output(approve(&env, &file, &key, &[])).await;
    assert_code(&out, 3);
    assert!(sigs(env.dir.path()).is_empty());
    let out = output(approve(&env, &file, &key, &["--yes"])).await;
    assert_code(&out, 0);
    let said = text(&out.stdout);
    let line = said
        .lines()
        .find_map(|l| l.strip_prefix("the operator's allowed_signers needs: "))
        .expect("the allowed_signers line");
    let allowed = env.dir.path().join("allowed_signers");
    std::fs::write(&allowed, format!("{line}\n")).expect("allowed");
    let found = sigs(env.dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(openssh_accepts(&file, &found[0], &allowed, "esus-ir-plan"));
    assert!(
        !openssh_accepts(&file, &found[0], &allowed, "esus-ir-transcript"),
        "a plan's approval is not a transcript signature"
    );
    // The same key approving again is the same approval: one file.
    assert_code(&output(approve(&env, &file, &key, &["--yes"])).await, 0);
    assert_eq!(sigs(env.dir.path()).len(), 1);
    // A plan whose bytes changed is refused (exit 2), nothing signed.
    let edited = env.dir.path().join("edited.json");
    let plan: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    std::fs::write(&edited, serde_json::to_vec_pretty(&plan).expect("pretty")).expect("write");
    assert_code(&output(approve(&env, &edited, &key, &["--yes"])).await, 2);
    assert!(
        !sigs(env.dir.path())
            .iter()
            .any(|p| p.to_string_lossy().contains("edited"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_plan_is_not_signed() {
    let env = Env::start().await;
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(&env, &file, &["--expires-in", "1s"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let key = approver_key(env.dir.path());
    let out = output(approve(&env, &file, &key, &["--yes"])).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("expired"),
        "{}",
        text(&out.stderr)
    );
    assert!(sigs(env.dir.path()).is_empty());
}

/// A plan, approved by alice (listed for the plan namespace), in `dir`; returns the plan path
/// and the allowed_signers file.
async fn approved_plan(env: &Env, extra: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(env, &file, extra));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = approver_key(env.dir.path());
    let out = output(approve(env, &file, &key, &["--yes"])).await;
    assert_code(&out, 0);
    let line = text(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("the operator's allowed_signers needs: ")
                .map(str::to_string)
        })
        .expect("line");
    let allowed = env.dir.path().join("allowed_signers");
    std::fs::write(&allowed, format!("{line}\n")).expect("allowed");
    (file, allowed)
}

fn run_plan(
    env: &Env,
    plan: &Path,
    allowed: &Path,
    dir: &str,
    extra: &[&str],
) -> assert_cmd::Command {
    let mut cmd = env.run_cmd_at("api-key-compromise", &env.dir.path().join(dir));
    env.compromise_args(&mut cmd);
    cmd.arg("--plan")
        .arg(plan)
        .arg("--allowed-signers")
        .arg(allowed)
        .args(["--non-interactive", "--output", "json"])
        .args(extra);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_approved_by_another_runs_unattended_and_its_approvals_are_counted_once() {
    let env = Env::start().await;
    let (plan, allowed) = approved_plan(&env, &[]).await;
    let before = env.sim.requests().len();
    // Two approvals needed, one given — and a copy of it is the same key: refused, nothing sent.
    let only = sigs(env.dir.path());
    std::fs::copy(&only[0], env.dir.path().join("plan.json.copy.sig")).expect("copy");
    let out = output(run_plan(
        &env,
        &plan,
        &allowed,
        "two",
        &["--require-approvals", "2"],
    ))
    .await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains("needs 2 approval(s)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.sim.requests().len(), before, "nothing sent");
    // One needed: it runs without --yes, every approval is the plan's.
    let out = output(run_plan(&env, &plan, &allowed, "one", &[])).await;
    assert_code(&out, 0);
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.deleted)
    );
    let records = std::fs::read_to_string(env.dir.path().join("one/transcript.jsonl")).expect("t");
    let digest = sha256_of(&plan);
    assert!(
        records.contains(&format!("\"plan_sha256\":\"{digest}\"")),
        "recorded"
    );
    assert!(records.contains("alice@example.org"), "who approved");
    assert!(records.contains("\"how\":\"plan\""));
    let (code, said) =
        crate::run_support::verify(&env, &env.dir.path().join("one/transcript.jsonl"));
    assert_eq!(code, 0, "{said}");
    // verify names what was approved, by whom, and when the run checked it.
    let made = serde_json::from_slice::<Value>(&std::fs::read(&plan).expect("plan")).expect("json")
        ["created_at"]
        .as_str()
        .expect("created_at")
        .to_string();
    let line = said
        .lines()
        .find(|l| l.trim_start().starts_with("approved:"))
        .unwrap_or_else(|| panic!("no approval in {said}"));
    assert!(
        line.contains(&format!("the signed plan sha256 {digest} (made {made}, no expiry), approved by alice@example.org (SHA256:"))
            && line.contains("; checked at 20"),
        "{line}"
    );
    // The post-mortem names who approved it.
    for format in ["json", "markdown"] {
        let mut report = env.bare_cmd();
        report
            .arg("report")
            .arg(env.dir.path().join("one"))
            .args(["--format", format]);
        let out = output(report).await;
        assert_code(&out, 0);
        assert!(
            text(&out.stdout).contains(&format!(
                "the signed plan sha256 {digest}, approved by alice@example.org"
            )),
            "{format}: {}",
            text(&out.stdout)
        );
    }
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).expect("read")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_deviates_from_its_plan_or_approves_itself_is_refused_with_nothing_sent() {
    let env = Env::start().await;
    let (plan, allowed) = approved_plan(&env, &[]).await;
    let before = env.sim.requests().len();
    // Another key than the one planned.
    let mut cmd = run_plan(&env, &plan, &allowed, "other", &[]);
    cmd.args(["--input", "key_id=k-2002"]);
    let out = output(cmd).await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains("deviates from the signed plan"),
        "{}",
        text(&out.stdout)
    );
    // Without the leaked secret the plan named: the inputs differ.
    let mut cmd = run_plan(&env, &plan, &allowed, "nosecret", &[]);
    cmd.env_remove("ESUS_LEAKED_KEY_SECRET");
    assert_code(&output(cmd).await, 3);
    // The operator's own signature never counts: only the operator's key is listed.
    let own = env.dir.path().join("own_allowed");
    let mut keygen = env.bare_cmd();
    keygen.args(["keygen", "--show", "--operator", "oncall@example.org"]);
    let _ = output(keygen).await;
    let mut me = env.bare_cmd();
    me.arg("approve")
        .arg(&plan)
        .args(["--yes", "--as", "oncall@example.org"]);
    let out = output(me).await;
    assert_code(&out, 0);
    let line = text(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("the operator's allowed_signers needs: ")
                .map(str::to_string)
        })
        .expect("line");
    std::fs::write(&own, format!("{line}\n")).expect("own");
    let out = output(run_plan(&env, &plan, &own, "self", &[])).await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains("it has 0"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        env.sim.requests().len(),
        before,
        "nothing sent by any of them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_plan_does_not_run() {
    let env = Env::start().await;
    let (plan, allowed) = approved_plan(&env, &["--expires-in", "1s"]).await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = env.sim.requests().len();
    let out = output(run_plan(&env, &plan, &allowed, "late", &[])).await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains("expired"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.sim.requests().len(), before);
}

/// Between the approval and the run, ESUS's answer changed (the key was renamed): the replacement
/// the run would now create is not the one approved — refused before it is sent, recorded, and
/// the run stops with exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_an_answer_changed_from_the_approved_one_is_refused_unsent() {
    let env = Env::start().await;
    let (plan, allowed) = approved_plan(&env, &[]).await;
    let r = env.sim.ready();
    let renamed = crate::sim_support::client()
        .put(format!("{}/api-keys/{}", env.sim.base_url(), r.key_id))
        .bearer_auth(r.admin_token.expose_secret())
        .json(&serde_json::json!({"name": "renamed-meanwhile"}))
        .send()
        .await
        .expect("rename");
    assert!(renamed.status().is_success(), "{}", renamed.status());
    let out = output(run_plan(&env, &plan, &allowed, "changed", &[])).await;
    assert_code(&out, 3);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let replace = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "replace"))
        .expect("replace");
    assert_eq!(replace["status"], "declined", "{report:#}");
    assert!(
        replace["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a request the approved plan allows")),
        "{replace}"
    );
    assert!(
        !env.sim
            .requests()
            .iter()
            .any(|q| q.method == "POST" && q.path == "/api-keys"),
        "the unapproved create was never sent"
    );
}

/// alice's allowed_signers line for plans, from her public key.
fn alice_allowed(env: &Env, key: &Path) -> std::path::PathBuf {
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap_or_else(|_| {
        std::fs::read_to_string(format!("{}.pub", key.display())).expect("alice's .pub")
    });
    let fields: Vec<&str> = public.split_whitespace().take(2).collect();
    let allowed = env.dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "alice@example.org namespaces=\"esus-ir-plan\" {}\n",
            fields.join(" ")
        ),
    )
    .expect("allowed");
    allowed
}

/// `run api-key-compromise` at a terminal against the simulator, as the operator: the key's
/// user given, its key id too unless `ask_key`, then `extra`.
fn at_terminal(
    env: &Env,
    dir: &Path,
    ask_key: bool,
    extra: &[&std::ffi::OsStr],
) -> expectrl::session::OsSession {
    let mut cmd = env.std_env_cmd();
    let r = env.sim.ready();
    cmd.args([
        "run",
        "api-key-compromise",
        "--base-url",
        &env.sim.base_url(),
    ])
    .args(["--operator", "oncall@example.org"])
    .args(["--input", &format!("user_id={}", r.user_id)])
    .arg("--run-dir")
    .arg(dir)
    .args(extra);
    if !ask_key {
        cmd.args(["--input", &format!("key_id={}", r.key_id)]);
    }
    let mut s = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(std::time::Duration::from_secs(30)));
    s
}

/// `run --plan` at a terminal, before anyone approved: it says the digest and waits.
fn waiting_run(env: &Env, plan: &Path, allowed: &Path, dir: &str) -> expectrl::session::OsSession {
    at_terminal(
        env,
        &env.dir.path().join(dir),
        false,
        &[
            "--plan".as_ref(),
            plan.as_os_str(),
            "--allowed-signers".as_ref(),
            allowed.as_os_str(),
        ],
    )
}

fn ended(s: &mut expectrl::session::OsSession) -> i32 {
    use expectrl::Expect;
    s.expect(expectrl::Eof).expect("the run ends");
    match s.get_process().wait().expect("status") {
        expectrl::process::unix::WaitStatus::Exited(_, c) => c,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_engineers_approval_file_arriving_lets_the_waiting_run_go_on() {
    use expectrl::Expect;
    let env = Env::start().await;
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(&env, &file, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = approver_key(env.dir.path());
    let allowed = alice_allowed(&env, &key);
    let digest = sha256_of(&file);
    let mut approval = approve(&env, &file, &key, &["--yes"]);
    let before = env.sim.requests().len();
    let code = tokio::task::block_in_place(|| {
        let mut s = waiting_run(&env, &file, &allowed, "waited");
        s.expect(format!("waiting for approval of plan sha256 {digest}").as_str())
            .expect("it says the digest and waits");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            env.sim.requests().len(),
            before,
            "nothing sent while waiting"
        );
        // The second engineer approves on their machine; the file lands beside the plan.
        assert!(approval.output().expect("approve").status.success());
        s.expect("running the signed plan").expect("it goes on");
        ended(&mut s)
    });
    assert_eq!(code, 0);
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.deleted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_pasted_at_the_waiting_run_counts_once_verified() {
    use expectrl::Expect;
    let env = Env::start().await;
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(&env, &file, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = approver_key(env.dir.path());
    let allowed = alice_allowed(&env, &key);
    // The approver signed a copy on their machine and sends the signature's text.
    let theirs = env.dir.path().join("theirs");
    std::fs::create_dir_all(&theirs).expect("dir");
    std::fs::copy(&file, theirs.join("plan.json")).expect("copy");
    assert_code(
        &output(approve(&env, &theirs.join("plan.json"), &key, &["--yes"])).await,
        0,
    );
    let armored =
        std::fs::read_to_string(sigs(&theirs).pop().expect("their signature")).expect("sig");
    let code = tokio::task::block_in_place(|| {
        let mut s = waiting_run(&env, &file, &allowed, "pasted");
        s.expect("paste an armored signature here")
            .expect("waiting");
        // A garbled paste is not an approval: still waiting.
        s.send_line("-----BEGIN SSH SIGNATURE-----").expect("paste");
        s.send_line("AAAA").expect("paste");
        s.send_line("-----END SSH SIGNATURE-----").expect("paste");
        s.expect("waiting for approval").expect("still waiting");
        for line in armored.lines() {
            s.send_line(line).expect("paste");
        }
        s.expect("running the signed plan").expect("it goes on");
        ended(&mut s)
    });
    assert_eq!(code, 0);
}

/// `run --require-approvals 1` without a saved plan, at a terminal: the run plans first (into
/// its folder), asks its inputs once for both legs, waits for the approval, then runs the plan.
fn planning_run(env: &Env, allowed: &Path, dir: &Path) -> expectrl::session::OsSession {
    at_terminal(
        env,
        dir,
        true,
        &[
            "--require-approvals".as_ref(),
            "1".as_ref(),
            "--allowed-signers".as_ref(),
            allowed.as_os_str(),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_run_requiring_approval_plans_waits_for_the_second_engineer_and_runs_the_plan()
 {
    use expectrl::Expect;
    let env = Env::start().await;
    let key = approver_key(env.dir.path());
    let allowed = alice_allowed(&env, &key);
    let dir = env.dir.path().join("two-person");
    let plan = dir.join("plan.json");
    let key_id = env.sim.ready().key_id.clone();
    let code = tokio::task::block_in_place(|| {
        let mut s = planning_run(&env, &allowed, &dir);
        s.expect("key_id (").expect("the missing input is asked");
        s.send_line(&key_id).expect("type");
        s.expect("waiting for approval of plan sha256")
            .expect("it plans, then waits");
        assert!(
            env.sim.requests().iter().all(|r| r.method == "GET"),
            "only reads before the approval: {:?}",
            env.sim.requests()
        );
        assert!(
            !env.sim.api_key(&key_id).is_some_and(|k| k.deleted),
            "nothing deleted while waiting"
        );
        // The second engineer approves the plan file the run wrote in its folder.
        let mut approval = approve(&env, &plan, &key, &["--yes"]);
        assert!(approval.output().expect("approve").status.success());
        s.expect("running the signed plan").expect("it goes on");
        ended(&mut s)
    });
    assert_eq!(code, 0);
    assert!(env.sim.api_key(&key_id).is_some_and(|k| k.deleted));
    let planned: Value =
        serde_json::from_slice(&std::fs::read(&plan).expect("plan")).expect("json");
    assert_eq!(
        planned["inputs"]["key_id"],
        key_id.as_str(),
        "the typed input, planned"
    );
    let records = std::fs::read_to_string(dir.join("transcript.jsonl")).expect("transcript");
    assert!(
        records.contains(&format!("\"plan_sha256\":\"{}\"", sha256_of(&plan))),
        "the run records the plan it ran"
    );
    let (code, said) = crate::run_support::verify(&env, &dir.join("transcript.jsonl"));
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattended_run_requiring_approval_leaves_its_plan_and_runs_it_once_approved() {
    let env = Env::start().await;
    let key = approver_key(env.dir.path());
    let allowed = alice_allowed(&env, &key);
    let dir = env.dir.path().join("paged");
    let paged = || {
        let mut cmd = env.run_cmd_at("api-key-compromise", &dir);
        env.compromise_args(&mut cmd);
        cmd.args(["--require-approvals", "1"])
            .arg("--allowed-signers")
            .arg(&allowed)
            .args(["--non-interactive", "--output", "json"]);
        cmd
    };
    let out = output(paged()).await;
    assert_code(&out, 3);
    assert!(
        !text(&out.stderr).contains("waiting for approval"),
        "unattended, nobody is waited for: {}",
        text(&out.stderr)
    );
    let plan = dir.join("plan.json");
    assert!(
        text(&out.stderr).contains(&format!("esus-ir approve {}", plan.display())),
        "says how to approve: {}",
        text(&out.stderr)
    );
    assert!(
        env.sim.requests().iter().all(|r| r.method == "GET"),
        "no write without the approval"
    );
    assert_code(&output(approve(&env, &plan, &key, &["--yes"])).await, 0);
    // The runner's allowed_signers lists the approver for plans and the runner itself for its
    // transcripts (a page fired again continues the incident's signed record).
    let mut keygen = env.bare_cmd();
    keygen.args(["keygen", "--show", "--operator", "oncall@example.org"]);
    let operator = output(keygen).await;
    assert_code(&operator, 0);
    let mut both = std::fs::read_to_string(&allowed).expect("allowed");
    both.push_str(&text(&operator.stdout));
    std::fs::write(&allowed, both).expect("allowed");
    // The page fires again: the same command runs the plan now approved.
    let out = output(paged()).await;
    assert_code(&out, 0);
    assert!(
        text(&out.stderr).contains("already holds this run's plan"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.deleted)
    );
    // Fired a third time: the incident is complete, under its plan; nothing is sent again.
    let writes = |env: &Env| {
        env.sim
            .requests()
            .iter()
            .filter(|q| q.method != "GET")
            .count()
    };
    let before = writes(&env);
    let out = output(paged()).await;
    assert_code(&out, 0);
    assert_eq!(writes(&env), before, "nothing done again");
    // A folder that holds a run made without a plan is not planned over.
    let mut plain = env.run_cmd_at("api-key-compromise", &env.dir.path().join("plain"));
    env.compromise_args(&mut plain);
    plain.args(["--yes", "--non-interactive"]);
    // (The key is gone by now: this second incident fails, but its folder holds a run.)
    let _ = output(plain).await;
    assert!(env.dir.path().join("plain/transcript.jsonl").exists());
    let mut again = env.run_cmd_at("api-key-compromise", &env.dir.path().join("plain"));
    env.compromise_args(&mut again);
    again
        .args(["--require-approvals", "1"])
        .arg("--allowed-signers")
        .arg(&allowed)
        .arg("--non-interactive");
    let out = output(again).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("already holds a run"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_for_approval_ends_with_130_and_nothing_sent() {
    use expectrl::Expect;
    let env = Env::start().await;
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(&env, &file, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = approver_key(env.dir.path());
    let allowed = alice_allowed(&env, &key);
    let before = env.sim.requests().len();
    let code = tokio::task::block_in_place(|| {
        let mut s = waiting_run(&env, &file, &allowed, "interrupted");
        s.expect("waiting for approval").expect("waiting");
        s.send(expectrl::ControlCode::EndOfText).expect("Ctrl-C");
        ended(&mut s)
    });
    assert_eq!(code, 130);
    assert_eq!(env.sim.requests().len(), before, "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_begun_under_a_plan_resumes_only_under_that_plan() {
    // The delete is held at a barrier of two: the plan's run is killed while it is in flight;
    // the resumed run's DELETE is the second arrival and goes through.
    let env = Env::with(
        esus_ir::sim::SimConfig::default()
            .with_fault("barrier=2@DELETE /api-keys/{id}")
            .expect("fault"),
    )
    .await;
    let (plan, allowed) = approved_plan(&env, &[]).await;
    let mut cmd = env.std_cmd();
    cmd.arg("--plan")
        .arg(&plan)
        .arg("--allowed-signers")
        .arg(&allowed)
        .arg("--non-interactive")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let held = || {
        env.sim
            .requests()
            .iter()
            .any(|q| q.method == "DELETE" && q.status.is_none())
    };
    for _ in 0..2000 {
        if held() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(held(), "the planned run reached its delete");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let resume = |extra: &[&std::ffi::OsStr]| {
        let mut cmd = env.bare_cmd();
        let r = env.sim.ready();
        cmd.env("ESUS_TOKEN", r.admin_token.expose_secret())
            .env("ESUS_COMPROMISED_TOKEN", r.session_token.expose_secret())
            .env("ESUS_LEAKED_KEY_SECRET", r.key_secret.expose_secret())
            .args(["run", "--resume"])
            .arg(env.run_dir())
            .args(["--non-interactive", "--output", "json"])
            .args(extra);
        cmd
    };
    // One allowed_signers file: the approvers for plans, the operator for transcripts (a
    // resume checks the stopped leg's signatures against it).
    let mut keygen = env.bare_cmd();
    keygen.args(["keygen", "--show", "--operator", "oncall@example.org"]);
    let operator = output(keygen).await;
    assert_code(&operator, 0);
    let mut both = std::fs::read_to_string(&allowed).expect("allowed");
    both.push_str(&text(&operator.stdout));
    std::fs::write(&allowed, both).expect("allowed");
    let sent = env.sim.requests().len();
    // One person with --yes cannot take over a two-person run.
    let out = output(resume(&["--yes".as_ref()])).await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains("begun under the signed plan sha256"),
        "{}",
        text(&out.stdout)
    );
    // Nor under another plan, even an approved one.
    let other = env.dir.path().join("other.json");
    let made = tokio::task::block_in_place(|| make_plan(&env, &other, &["--expires-in", "1h"]));
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    let key = env.dir.path().join("alice_ed25519");
    assert_code(&output(approve(&env, &other, &key, &["--yes"])).await, 0);
    let out = output(resume(&[
        "--plan".as_ref(),
        other.as_os_str(),
        "--allowed-signers".as_ref(),
        allowed.as_os_str(),
    ]))
    .await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains(&format!(
            "begun under the signed plan sha256 {}, not {}",
            sha256_of(&plan),
            other.display()
        )),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        env.sim
            .requests()
            .iter()
            .skip(sent)
            .filter(|q| q.method != "GET")
            .count(),
        0,
        "no write by a refused resume"
    );
    // Under its own plan it finishes, every write still the plan's.
    let out = output(resume(&[
        "--plan".as_ref(),
        plan.as_os_str(),
        "--allowed-signers".as_ref(),
        allowed.as_os_str(),
    ]))
    .await;
    assert_code(&out, 0);
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.deleted)
    );
    let leg = std::fs::read_to_string(env.run_dir().join("transcript.2.jsonl")).expect("leg 2");
    assert!(leg.contains(&format!("\"plan_sha256\":\"{}\"", sha256_of(&plan))));
    assert!(!leg.contains("\"how\":\"assume-yes\""), "no write on --yes");
}

/// The default scenario plus `due` keys old enough to rotate and one (k-6999) as old but
/// switched off.
fn fan_out_scenario(due: usize) -> String {
    let mut extra = String::new();
    for n in 0..due {
        extra.push_str(&format!(
            "  - {{ id: k-{id}, name: fan-{n:03}, owner: u-0001, client_id: ck_fan_{n:03}, secret: sk_live_fan_{n:03}_x, scopes: [Patient.read], created_days_ago: 120 }}\n",
            id = 6000 + n
        ));
    }
    extra.push_str("  - { id: k-6999, name: almost, owner: u-0001, client_id: ck_almost, secret: sk_live_almost_x, scopes: [Patient.read], created_days_ago: 120, active: false }\n");
    extra.push_str("patients:\n");
    crate::runbooks_support::DEFAULT_SCENARIO.replacen("patients:\n", &extra, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_plan_binds_every_item_of_a_fan_out_past_those_it_lists() {
    let env = Env::with(
        esus_ir::sim::SimConfig::default()
            .with_scenario_yaml(&fan_out_scenario(79))
            .expect("scenario"),
    )
    .await;
    let key = approver_key(env.dir.path());
    let allowed = alice_allowed(&env, &key);
    let token = env.sim.ready().admin_token.expose_secret().to_string();
    let plan_to = |file: &Path, dir: &str| {
        let mut cmd = env.bare_cmd();
        cmd.env("ESUS_TOKEN", &token)
            .args([
                "plan",
                "scheduled-key-rotation",
                "--base-url",
                &env.sim.base_url(),
            ])
            .args(["--non-interactive", "--operator", "oncall@example.org"])
            .arg("--run-dir")
            .arg(env.dir.path().join(dir))
            .arg("-o")
            .arg(file);
        cmd
    };
    let run = |file: &Path, dir: &str| {
        let mut cmd = env.bare_cmd();
        cmd.env("ESUS_TOKEN", &token)
            .args([
                "run",
                "scheduled-key-rotation",
                "--base-url",
                &env.sim.base_url(),
            ])
            .args(["--non-interactive", "--operator", "oncall@example.org"])
            .args(["--output", "json"])
            .arg("--run-dir")
            .arg(env.dir.path().join(dir))
            .arg("--plan")
            .arg(file)
            .arg("--allowed-signers")
            .arg(&allowed);
        cmd
    };
    let rotations = || {
        env.sim
            .requests()
            .iter()
            .filter(|q| q.method == "POST" && q.path.ends_with("/rotate"))
            .count()
    };
    let first = env.dir.path().join("first.json");
    assert_code(&output(plan_to(&first, "plan-1")).await, 0);
    let planned: Value =
        serde_json::from_slice(&std::fs::read(&first).expect("plan")).expect("json");
    let rotate = planned["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "rotate")
        .expect("rotate");
    assert_eq!(rotate["items"], 80);
    assert_eq!(rotate["items_sha256"].as_array().map(Vec::len), Some(80));
    assert!(
        rotate["requests"].as_array().map_or(0, Vec::len) < 80,
        "not all listed"
    );
    let approved = output(approve(&env, &first, &key, &["--yes"])).await;
    assert_code(&approved, 0);
    // Someone switches k-6999 back on: one more key is due, and the batch is no longer the one
    // approved — refused before any item of it is sent.
    let switched = reqwest::Client::new()
        .put(format!("{}/api-keys/k-6999", env.sim.base_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"active": true}))
        .send()
        .await
        .expect("PUT");
    assert!(switched.status().is_success(), "{}", switched.status());
    let out = output(run(&first, "run-1")).await;
    assert_code(&out, 3);
    assert!(
        text(&out.stdout).contains("k-6999/rotate is not a request the approved plan allows"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(rotations(), 0, "nothing rotated");
    // Planned again and approved: all 81, well past the 50 the plan lists.
    let second = env.dir.path().join("second.json");
    assert_code(&output(plan_to(&second, "plan-2")).await, 0);
    assert_code(&output(approve(&env, &second, &key, &["--yes"])).await, 0);
    let out = output(run(&second, "run-2")).await;
    assert_code(&out, 0);
    assert_eq!(rotations(), 81);
}

/// An ssh-agent on a socket in `dir`, holding `key`; killed when dropped.
struct Agent {
    sock: std::path::PathBuf,
    pid: String,
}

impl Agent {
    fn with(dir: &Path, key: &Path) -> Agent {
        let sock = dir.join("agent.sock");
        let out = Command::new("ssh-agent")
            .arg("-a")
            .arg(&sock)
            .arg("-s")
            .output()
            .expect("ssh-agent");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        let pid = said
            .split("SSH_AGENT_PID=")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .expect("agent pid")
            .to_string();
        let added = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .expect("ssh-add");
        assert!(added.status.success(), "{}", text(&added.stderr));
        Agent { sock, pid }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_signs_with_the_key_in_their_ssh_agent() {
    let env = Env::start().await;
    let file = env.dir.path().join("plan.json");
    let out = tokio::task::block_in_place(|| make_plan(&env, &file, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = approver_key(env.dir.path());
    let allowed = alice_allowed(&env, &key);
    let agent = Agent::with(env.dir.path(), &key);
    // The private key is gone from disk: only the agent holds it.
    let public = env.dir.path().join("alice_ed25519.pub");
    std::fs::remove_file(&key).expect("rm private key");
    let mut cmd = approve(&env, &file, &public, &["--yes"]);
    cmd.env("SSH_AUTH_SOCK", &agent.sock);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let sig = sigs(env.dir.path()).pop().expect("a signature");
    assert!(openssh_accepts(&file, &sig, &allowed, "esus-ir-plan"));
    let out = output(run_plan(&env, &file, &allowed, "agent-run", &[])).await;
    assert_code(&out, 0);
    // Without the agent: a clear refusal, nothing signed.
    std::fs::remove_file(&sig).expect("rm sig");
    let mut cmd = approve(&env, &file, &public, &["--yes"]);
    cmd.env("SSH_AUTH_SOCK", env.dir.path().join("no-agent.sock"));
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("is it in the ssh-agent"),
        "{}",
        text(&out.stderr)
    );
    assert!(sigs(env.dir.path()).is_empty(), "nothing signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_offline_runs_with_each_placeholder_filled_from_the_answer_it_names() {
    let env = Env::start().await;
    let (plan, allowed) = approved_plan(&env, &["--offline"]).await;
    let planned: Value =
        serde_json::from_slice(&std::fs::read(&plan).expect("plan")).expect("json");
    let replace = planned["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "replace")
        .expect("replace");
    assert_eq!(
        replace["requests"][0]["exact"], false,
        "offline: a template"
    );
    assert_eq!(
        replace["requests"][0]["body"]["scopes"],
        "<snapshot.scopes>"
    );
    let out = output(run_plan(&env, &plan, &allowed, "offline-plan", &[])).await;
    assert_code(&out, 0);
    let key = env.sim.api_key(&env.sim.ready().key_id).expect("the key");
    assert!(key.deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_under_a_plan_is_never_settled_by_writes_the_plan_does_not_hold() {
    // The replacement key's create reaches ESUS and its answer is lost: outside a plan the run
    // revokes the orphan (its claim proves it ours) and sends the create again; under a plan
    // neither request was approved, so neither is sent.
    let env = Env::with(
        esus_ir::sim::SimConfig::default()
            .with_fault("drop_count=1@POST /api-keys")
            .expect("fault"),
    )
    .await;
    let (plan, allowed) = approved_plan(&env, &[]).await;
    let out = output(run_plan(&env, &plan, &allowed, "lost", &[])).await;
    assert_code(&out, 1);
    let creates = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path == "/api-keys")
        .count();
    assert_eq!(creates, 1, "the create is not sent again");
    let orphan_deleted = env.sim.requests().iter().any(|q| {
        q.method == "DELETE"
            && q.path.starts_with("/api-keys/")
            && !q.path.ends_with(&env.sim.ready().key_id)
    });
    assert!(!orphan_deleted, "no revoke the plan does not hold");
    assert!(
        text(&out.stdout).contains("Revoke them now"),
        "says what to do by hand: {}",
        text(&out.stdout)
    );
}
