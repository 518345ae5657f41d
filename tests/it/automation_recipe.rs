//! docs/automation.md's recipe, twice: the page fires with an operator token that has expired,
//! esus-ir renews it with the refresh token, ESUS rotates the refresh token, and esus-ir writes
//! the new one back where the recipe reads it — so the next page (another incident) renews too.

use std::path::Path;

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

/// A second compromised key, made while the operator's token still worked.
async fn another_key(env: &Env) -> String {
    let made: Value = crate::sim_support::client()
        .post(format!("{}/api-keys", env.sim.base_url()))
        .bearer_auth(env.sim.ready().admin_token.expose_secret())
        .json(&serde_json::json!({"name": "lab-feed", "scopes": ["Observation.read"]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    made["id"].as_str().expect("an id").to_string()
}

/// The recipe's command line for one page.
fn page(env: &Env, incident: &str, key_id: &str, refresh_file: &Path) -> assert_cmd::Command {
    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_BASE_URL", env.sim.base_url())
        .env("ESUS_TOKEN", env.sim.ready().admin_token.expose_secret())
        .args(["run", "api-key-compromise", "--non-interactive", "--yes"])
        .args(["--operator", "pagerduty-runner", "--incident-id", incident])
        .args(["--input", &format!("key_id={key_id}")])
        .args(["--input", &format!("user_id={}", env.sim.ready().user_id)])
        .arg("--refresh-token-file")
        .arg(refresh_file)
        .arg("--run-dir")
        .arg(env.dir.path().join("runs").join(incident))
        .args(["--output", "json"]);
    cmd
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_with_a_refresh_in_between_both_succeed() {
    let env = Env::start().await;
    let first_key = env.sim.ready().key_id.clone();
    let second_key = another_key(&env).await;
    let refresh_file = env.dir.path().join("esus-ir-refresh");
    let first_refresh = env
        .sim
        .ready()
        .admin_refresh_token
        .expose_secret()
        .to_string();
    std::fs::write(&refresh_file, format!("{first_refresh}\n")).expect("write");
    // The operator's 15-minute token is dead by the time the page fires.
    env.sim
        .advance_clock(std::time::Duration::from_secs(16 * 60));

    let out = output(page(&env, "PD1", &first_key, &refresh_file)).await;
    assert_code(&out, 0);
    let said = text(&out.stderr);
    assert!(
        said.contains(
            "ESUS token renewed with the refresh token; the new refresh token is saved in"
        ),
        "the renewal is said on screen: {said}"
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        result["refresh_token_file"].as_str(),
        Some(refresh_file.to_string_lossy().as_ref()),
        "{result}"
    );
    let second_refresh = std::fs::read_to_string(&refresh_file).expect("read");
    let second_refresh = second_refresh.trim();
    assert_ne!(
        second_refresh, first_refresh,
        "ESUS rotated it; the new one was kept"
    );
    assert!(env.sim.refresh_token_accepted(second_refresh));
    assert!(
        !env.sim.refresh_token_accepted(&first_refresh),
        "the old one is dead"
    );
    assert_eq!(mode(&refresh_file), 0o600);
    // Recorded, without either token.
    let leg = env.dir.path().join("runs/PD1/transcript.jsonl");
    let records = std::fs::read_to_string(&leg).expect("transcript");
    assert!(records.contains("\"type\":\"token-renewed\""), "{records}");
    assert!(!records.contains(second_refresh) && !records.contains(&first_refresh));
    let (code, said) = crate::run_support::verify(&env, &leg);
    assert_eq!(code, 0, "a renewal record verifies: {said}");
    assert!(env.sim.api_key(&first_key).is_some_and(|k| k.deleted));

    // The next page, another incident, with the same (still expired) token and the same file.
    let out = output(page(&env, "PD2", &second_key, &refresh_file)).await;
    assert_code(&out, 0);
    assert!(env.sim.api_key(&second_key).is_some_and(|k| k.deleted));
    let third = std::fs::read_to_string(&refresh_file).expect("read");
    assert_ne!(
        third.trim(),
        second_refresh,
        "rotated again, and kept again"
    );
    assert!(!text(&out.stdout).contains(third.trim()));
    assert!(!text(&out.stderr).contains(third.trim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_refresh_file_the_rotated_token_lands_in_the_secrets_folder() {
    let env = Env::start().await;
    env.sim
        .advance_clock(std::time::Duration::from_secs(16 * 60));
    // (The compromised session's token expired with the clock too: no session to log out.)
    let r = env.sim.ready();
    let mut cmd = env.run_cmd("api-key-compromise");
    cmd.args(["--input", &format!("key_id={}", r.key_id)])
        .args(["--input", &format!("user_id={}", r.user_id)]);
    cmd.env(
        "ESUS_REFRESH_TOKEN",
        env.sim.ready().admin_refresh_token.expose_secret(),
    )
    .args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let saved = env.run_dir().join("secrets/esus-refresh-token");
    let token = std::fs::read_to_string(&saved).expect("kept");
    assert!(env.sim.refresh_token_accepted(token.trim()));
    assert_eq!(mode(&saved), 0o600);
    let said = text(&out.stdout);
    assert!(
        said.contains("ESUS rotated the refresh token during this run")
            && said.contains("--refresh-token-file"),
        "{said}"
    );
    assert!(!said.contains(token.trim()));
}

/// The page fires again for the same incident: the recipe's `--run-dir …/${PD_INCIDENT_ID}`
/// already holds the first firing's run. The second firing continues it; a third, once it is
/// complete, reports it complete and sends nothing; a firing naming another key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_fired_again_continues_its_incident_then_reports_it_complete() {
    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let refresh_file = env.dir.path().join("esus-ir-refresh");
    let refresh = env
        .sim
        .ready()
        .admin_refresh_token
        .expose_secret()
        .to_string();
    std::fs::write(&refresh_file, format!("{refresh}\n")).expect("write");
    // The first firing lacks approvals (the runner was misconfigured): exit 3, nothing sent.
    let mut first = page(&env, "PD7", &key, &refresh_file);
    let first_args: Vec<String> = first
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a != "--yes")
        .collect();
    first = env.bare_cmd();
    first
        .env("ESUS_BASE_URL", env.sim.base_url())
        .env("ESUS_TOKEN", env.sim.ready().admin_token.expose_secret())
        .args(&first_args);
    assert_code(&output(first).await, 3);
    assert!(env.sim.api_key(&key).is_some_and(|k| !k.deleted));

    let out = output(page(&env, "PD7", &key, &refresh_file)).await;
    assert_code(&out, 0);
    assert!(
        text(&out.stderr).contains("already holds this incident: continuing it"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.sim.api_key(&key).is_some_and(|k| k.deleted));
    let dir = env.dir.path().join("runs/PD7");
    assert!(dir.join("transcript.2.jsonl").exists(), "a second leg");

    let before = env.sim.requests().len();
    let out = output(page(&env, "PD7", &key, &refresh_file)).await;
    assert_code(&out, 0);
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        result["message"]
            .as_str()
            .is_some_and(|m| m.contains("already complete")),
        "{result}"
    );
    assert_eq!(env.sim.requests().len(), before, "nothing sent");

    let out = output(page(&env, "PD7", "k-other", &refresh_file)).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stdout).contains("already holds another incident")
            && text(&out.stdout).contains("key_id=k-other"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.sim.requests().len(), before, "nothing sent");
}

/// A leg renewed the token and stopped (a "no" at the delete prompt); the resume starts with the
/// same environment, whose refresh token ESUS has rotated away: it renews with the one the first
/// leg saved in the incident's secrets folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_renews_with_the_refresh_token_its_incident_saved() {
    use expectrl::Expect;
    let env = Env::start().await;
    let refresh = env
        .sim
        .ready()
        .admin_refresh_token
        .expose_secret()
        .to_string();
    env.sim
        .advance_clock(std::time::Duration::from_secs(16 * 60));
    let r = env.sim.ready();
    let leg = |cmd: &mut std::process::Command| {
        cmd.env("ESUS_REFRESH_TOKEN", &refresh)
            .env_remove("ESUS_COMPROMISED_TOKEN");
    };
    let code = tokio::task::block_in_place(|| {
        let mut cmd = env.std_cmd();
        leg(&mut cmd);
        let mut s = expectrl::Session::spawn(cmd).expect("spawn in a pty");
        s.set_expect_timeout(Some(std::time::Duration::from_secs(30)));
        s.expect("session_token (secret, hidden; optional")
            .expect("the optional session token is asked for");
        s.send_line("").expect("Enter skips it");
        s.expect("ESUS token renewed with the refresh token")
            .expect("the renewal is said");
        s.expect("Delete API key").expect("the delete prompt");
        s.send_line("n").expect("no");
        s.expect(expectrl::Eof).expect("the run ends");
        match s.get_process().wait().expect("status") {
            expectrl::process::unix::WaitStatus::Exited(_, c) => c,
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(code, 3);
    assert!(!env.sim.refresh_token_accepted(&refresh), "rotated away");
    let mut cmd = env.std_env_cmd();
    leg(&mut cmd);
    cmd.arg("run")
        .arg("--resume")
        .arg(env.run_dir())
        .args(["--yes", "--non-interactive"]);
    let out = cmd.output().expect("resume");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("using the refresh token this incident saved"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.sim.api_key(&r.key_id).is_some_and(|k| k.deleted));
}

/// `--refresh-token-keyring`: ESUS_REFRESH_TOKEN seeds it, ESUS rotates it, and the new one goes
/// into the OS keyring — never to a file. (Whether a later process finds it there is the OS
/// keyring's business: on a desktop login it does; in a headless container each process gets
/// its own session keyring, so the round trip is proven in-process by
/// `exec::token::tests::a_refresh_token_kept_in_the_os_keyring_is_read_back`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_goes_to_the_os_keyring_when_asked() {
    let env = Env::start().await;
    let entry_name = format!("refresh-token@{}", env.sim.base_url());
    let seed = env
        .sim
        .ready()
        .admin_refresh_token
        .expose_secret()
        .to_string();
    env.sim
        .advance_clock(std::time::Duration::from_secs(16 * 60));
    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_BASE_URL", env.sim.base_url())
        .env("ESUS_TOKEN", env.sim.ready().admin_token.expose_secret())
        .env("ESUS_REFRESH_TOKEN", &seed)
        .args(["run", "api-key-compromise", "--non-interactive", "--yes"])
        .args(["--input", &format!("key_id={}", env.sim.ready().key_id)])
        .args(["--input", &format!("user_id={}", env.sim.ready().user_id)])
        .arg("--refresh-token-keyring")
        .arg("--run-dir")
        .arg(env.dir.path().join("runs/K1"))
        .args(["--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        result["refresh_token_keyring"],
        entry_name.as_str(),
        "{result}"
    );
    assert_eq!(result["refresh_token_file"], Value::Null);
    assert!(
        !env.sim.refresh_token_accepted(&seed),
        "ESUS rotated the seed away"
    );
    assert!(
        !env.dir
            .path()
            .join("runs/K1/secrets/esus-refresh-token")
            .exists(),
        "never written to a file"
    );
    let said = text(&out.stderr);
    assert!(
        said.contains("saved in the OS keyring (service esus-ir, entry"),
        "{said}"
    );
    assert!(!said.contains("could NOT be saved"), "{said}");
    let records = std::fs::read_to_string(env.dir.path().join("runs/K1/transcript.jsonl"))
        .expect("transcript");
    assert!(
        records.contains("\"refresh_saved_to\":\"the OS keyring"),
        "recorded"
    );
}
