//! The preflight: before anything is sent, one `GET /auth/me` proves the token works, names who
//! it is, and shows it may do what the runbook needs. Each way it can fail stops the run there,
//! with its own message and exit code, and nothing else reaches ESUS.

use esus_ir::sim::SimConfig;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text, verify};

fn paths(env: &Env) -> Vec<String> {
    env.sim
        .requests()
        .iter()
        .map(|q| format!("{} {}", q.method, q.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_is_a_usage_error_and_nothing_is_sent() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env_remove("ESUS_TOKEN")
        .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["kind"], "error");
    assert_eq!(doc["exit_code"], 2);
    assert!(
        doc["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no ESUS token"),
        "{doc}"
    );
    assert!(paths(&env).is_empty(), "{:?}", paths(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_line_break_is_refused_without_being_shown() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env("ESUS_TOKEN", "eyJcanary\r\nX-Injected: 1")
        .args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    let err = text(&out.stderr);
    assert!(err.contains("line break"), "{err}");
    assert!(!err.contains("canary") && !text(&out.stdout).contains("canary"));
    assert!(paths(&env).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_at_the_preflight_with_exit_4() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env("ESUS_TOKEN", "not-a-valid-token")
        .args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 4);
    assert_eq!(paths(&env), ["GET /auth/me"], "nothing after the preflight");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ESUS refused the operator's token (401 at GET /auth/me)"),
        "{stdout}"
    );
    assert!(
        stdout.trim_start().starts_with("NOT CONTAINED"),
        "containment first: {stdout}"
    );
    assert_eq!(
        verify(&env, &env.transcript()).0,
        0,
        "the stop is recorded and signed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_renewed_by_its_refresh_token_at_the_preflight() {
    let env = Env::start().await;
    env.sim
        .advance_clock(std::time::Duration::from_secs(20 * 60));
    let r = env.sim.ready().clone();
    let rb = env.runbook(
        "roles.yaml",
        "version: 1\nname: roles\nsteps:\n  - {id: roles, name: Roles, action: roles.list}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.env("ESUS_REFRESH_TOKEN", r.admin_refresh_token.expose_secret())
        .arg("--non-interactive");
    assert_code(&output(cmd).await, 0);
    let p = paths(&env);
    assert_eq!(
        &p[..3],
        ["GET /auth/me", "POST /auth/refresh", "GET /auth/me"],
        "{p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_url_fails_fast_with_exit_6() {
    let env = Env::start().await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_TOKEN", "t")
        .args(["run", "api-key-compromise", "--base-url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--run-dir")
        .arg(env.run_dir())
        .args([
            "-i",
            "key_id=k-1",
            "-i",
            "user_id=u-1",
            "--yes",
            "--non-interactive",
        ]);
    let out = output(cmd).await;
    assert_code(&out, 6);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("cannot reach ESUS at http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.to_lowercase().contains("connection refused"),
        "{stdout}"
    );
}

/// A web server that is not ESUS: every request gets `status` with an HTML body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_to_an_unreachable_url_is_exit_6_not_an_auth_failure() {
    let env = Env::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_PASSWORD", "pw-canary-7781")
        .args(["run", "api-key-compromise", "--base-url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--login", "admin@riverside.example", "--run-dir"])
        .arg(env.run_dir())
        .args([
            "-i",
            "key_id=k-1",
            "-i",
            "user_id=u-1",
            "--yes",
            "--non-interactive",
        ]);
    let out = output(cmd).await;
    assert_code(&out, 6);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("cannot reach ESUS to log in as admin@riverside.example"),
        "{all}"
    );
    assert!(
        !all.contains("pw-canary-7781"),
        "the password is never shown"
    );
}

async fn not_esus(status: &'static str) -> (String, tokio::task::JoinHandle<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let served = tokio::spawn(async move {
        let mut served = 0;
        // Bounded: a handful of connections, then it stops by itself.
        while served < 8 {
            let accepted =
                tokio::time::timeout(std::time::Duration::from_secs(20), listener.accept()).await;
            let Ok(Ok((mut sock, _))) = accepted else {
                break;
            };
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let body = "<html><body>It works!</body></html>";
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            served += 1;
        }
        served
    });
    (url, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_is_not_esus_is_named_as_such() {
    for status in ["404 Not Found", "200 OK"] {
        let env = Env::start().await;
        let (url, served) = not_esus(status).await;
        let mut cmd = env.bare_cmd();
        cmd.env("ESUS_TOKEN", "t")
            .args(["run", "api-key-compromise", "--base-url", &url])
            .arg("--run-dir")
            .arg(env.run_dir())
            .args([
                "-i",
                "key_id=k-1",
                "-i",
                "user_id=u-1",
                "--yes",
                "--non-interactive",
            ]);
        let out = output(cmd).await;
        assert_code(&out, 6);
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("does not look like ESUS"),
            "{status}: {stdout}"
        );
        served.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_failure_names_tls_and_the_ca_option() {
    let env = Env::with(SimConfig {
        tls: true,
        ..SimConfig::default()
    })
    .await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 6);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("TLS connection to https://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("--ca-cert"), "{stdout}");
    assert!(
        paths(&env).is_empty(),
        "the handshake failed: no request reached it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lacking_what_the_runbook_needs_is_refused_before_anything_is_sent() {
    let env = Env::start().await;
    // A practitioner, not an administrator: every API-key route would answer 403 mid-run.
    let login: Value = reqwest::Client::new()
        .post(format!("{}/auth/login", env.sim.base_url()))
        .json(&serde_json::json!({"email": "pat.practitioner@riverside.example", "password": "pat-drill-password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["accessToken"].as_str().expect("token").to_string();
    let before = env.sim.requests().len();
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env("ESUS_TOKEN", &token)
        .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 4);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let message = report["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("lacks what this runbook needs"),
        "{message}"
    );
    assert!(message.contains("admin"), "{message}");
    assert!(
        message.contains("steps snapshot"),
        "names the steps: {message}"
    );
    let sent: Vec<String> = paths(&env).into_iter().skip(before).collect();
    assert_eq!(sent, ["GET /auth/me"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_says_who_is_acting_on_which_esus() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let err = text(&out.stderr);
    let want = format!(
        "acting as admin@riverside.example (Riverside Health, roles admin) on {}/",
        env.sim.base_url()
    );
    assert!(err.contains(&want), "{err}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["acting_as"]["email"], "admin@riverside.example");
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    let first_request = transcript
        .lines()
        .find(|l| l.contains("\"type\":\"request\""))
        .unwrap_or_default();
    assert!(
        first_request.contains("/auth/me"),
        "the preflight comes first"
    );
    assert!(transcript.contains("\"type\":\"preflight\""));
}

/// Least privilege: an administrator running a runbook that needs two FHIR permissions is told
/// the token holds more than needed, and the transcript records it; a runbook that uses every
/// right the token holds gets no such line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_holding_more_than_the_runbook_needs_is_named_at_the_preflight() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("security-monitoring");
    cmd.args([
        "--input",
        "endpoint=http://127.0.0.1:9/hook",
        "--yes",
        "--non-interactive",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains(
            "holds more than this runbook needs: an administrator's role, which no step needs"
        ),
        "{all}"
    );
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(
        transcript.contains("\"more_than_needed\":[\"an administrator's role"),
        "recorded"
    );
    // No role of ESUS's covers Subscriptions but the administrator's: none is named.
    assert!(all.contains("a narrower role or token would do"), "{all}");
    // A review of Consents: ESUS's roles (GET /roles, recorded) name the narrowest that does.
    let env = Env::start().await;
    let consents = env.runbook(
        "consents.yaml",
        "version: 1\nname: consents\nsteps:\n  - id: list\n    name: Active Consents\n    action: consent.search\n",
    );
    let mut cmd = env.run_cmd(&consents);
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("ESUS's role `practitioner` would do"), "{all}");
    assert!(paths(&env).contains(&"GET /roles".to_string()));
    // The compromise runbook needs the administrator's role, and reads ESUS's chain check as
    // the system administrator this operator is: nothing in excess, nothing said.
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--dry-run", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("acting as admin@riverside.example"), "{all}");
    assert!(!all.contains("holds more than"), "{all}");
}
