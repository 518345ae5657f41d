//! SMART on FHIR login (authorization code + PKCE) over real HTTP: the simulator's
//! `/smart/authorize` and `/smart/token` driven the way a client would (in-process simulator,
//! a plain reqwest client as the app), and the real `esus-ir login` binary with the test acting
//! as the browser — reading the authorization URL from the child's stderr, answering the approval
//! page, and following the redirect to the child's loopback listener.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use esus_ir::sim::SimConfig;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::sim_support::{Cred, Sim, keys, sorted};

const ADMIN: (&str, &str) = ("admin@riverside.example", "admin-drill-password");

/// A client that never follows redirects: the test reads each `Location` itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn query_value(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Answers the approval page at `url` (what a person does in the browser) and returns the
/// redirect's `Location`.
async fn approve(base: &str, url: &str) -> String {
    let http = browser();
    let page = http.get(url).send().await.expect("approval page");
    assert_eq!(page.status(), 200, "the approval page is shown");
    let html = page.text().await.expect("html");
    let id = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form names its request")
        .to_string();
    let body = form(&[
        ("request", &id),
        ("email", ADMIN.0),
        ("password", ADMIN.1),
        ("decision", "approve"),
    ]);
    let resp = http
        .post(format!("{base}/smart/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("approve");
    assert_eq!(resp.status(), 302, "approval redirects");
    resp.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string()
}

/// The app's side of the flow against the in-process simulator: an authorization URL for
/// `verifier` and `redirect_uri`.
fn authorize_url(base: &str, redirect_uri: &str, verifier: &str, scope: &str) -> String {
    let mut url = url::Url::parse(&format!("{base}/smart/authorize")).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "esus-ir")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "st-1")
        .append_pair("code_challenge", &challenge_of(verifier))
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

async fn exchange(base: &str, code: &str, redirect_uri: &str, verifier: &str) -> (u16, Value) {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", "esus-ir"),
        ("code_verifier", verifier),
    ]);
    let resp = browser()
        .post(format!("{base}/smart/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token endpoint answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const REDIRECT: &str = "http://127.0.0.1:45123/callback";
const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-0123456789";

/// A code for [`VERIFIER`] and [`REDIRECT`], approved on the page.
async fn code_for(s: &Sim, scope: &str) -> String {
    let base = s.sim.base_url();
    let location = approve(&base, &authorize_url(&base, REDIRECT, VERIFIER, scope)).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_value(&location, "state").as_deref(), Some("st-1"));
    query_value(&location, "code").expect("a code")
}

#[tokio::test]
async fn a_good_exchange_gives_a_scoped_15_minute_token_and_a_refresh_token() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    let code = code_for(&s, "openid fhirUser user/ApiKey.read online_access").await;
    let (status, body) = exchange(&base, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    // postSmartToken's published fields, and OAuth's refresh_token (docs/esus-api.md, 30).
    assert_eq!(
        keys(&body),
        sorted(&[
            "access_token",
            "token_type",
            "expires_in",
            "scope",
            "refresh_token"
        ])
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        body["scope"],
        "openid fhirUser user/ApiKey.read online_access"
    );
    let token = body["access_token"].as_str().expect("access_token");
    let me = s.call("GET", "/auth/me", Cred::Bearer(token), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], ADMIN.0);
    // The scopes limit the admin's token: it reads keys and may not delete one.
    let keys = s.call("GET", "/api-keys", Cred::Bearer(token), None).await;
    assert_eq!(keys.status, 200);
    let delete = s
        .call("DELETE", "/api-keys/k-1001", Cred::Bearer(token), None)
        .await;
    assert_eq!(delete.status, 403, "{}", delete.body);
    // The refresh token renews through the existing path, and the scopes stay.
    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    let renewed = s
        .call(
            "POST",
            "/auth/refresh",
            Cred::None,
            Some(serde_json::json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(renewed.status, 200);
    let again = renewed.body["accessToken"].as_str().expect("new token");
    let delete = s
        .call("DELETE", "/api-keys/k-1001", Cred::Bearer(again), None)
        .await;
    assert_eq!(delete.status, 403, "a refresh does not widen the scopes");
}

#[tokio::test]
async fn a_wrong_verifier_is_refused_and_burns_the_code() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    let code = code_for(&s, "openid online_access").await;
    let wrong = "another-verifier-0123456789-0123456789-0123456789";
    let (status, body) = exchange(&base, &code, REDIRECT, wrong).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    // The code is spent: the right verifier afterwards gets nothing either.
    let (status, body) = exchange(&base, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_tokens_it_gave() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    let code = code_for(&s, "openid online_access").await;
    let (status, first) = exchange(&base, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().expect("token");
    let refresh = first["refresh_token"].as_str().expect("refresh");
    assert!(s.sim.access_token_accepted(access));
    let (status, replay) = exchange(&base, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, 400, "{replay}");
    assert_eq!(replay["error"], "invalid_grant");
    assert!(!s.sim.access_token_accepted(access), "revoked");
    assert!(!s.sim.refresh_token_accepted(refresh), "revoked");
    let me = s.call("GET", "/auth/me", Cred::Bearer(access), None).await;
    assert_eq!(me.status, 401);
}

#[tokio::test]
async fn a_mismatched_or_unregistered_redirect_uri_is_refused() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    // Not a loopback callback: a page, and nothing is sent to that URI.
    let evil = authorize_url(&base, "https://evil.example/callback", VERIFIER, "openid");
    let resp = browser().get(&evil).send().await.expect("answer");
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    // A code is bound to its redirect URI: exchanging it with another is refused.
    let code = code_for(&s, "openid").await;
    let other = "http://127.0.0.1:45124/callback";
    let (status, body) = exchange(&base, &code, other, VERIFIER).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    // Without S256 PKCE the request goes back to the (registered) redirect with an error.
    let plain = authorize_url(&base, REDIRECT, VERIFIER, "openid").replace("S256", "plain");
    let resp = browser().get(&plain).send().await.expect("answer");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().expect("ascii");
    assert_eq!(
        query_value(location, "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn codes_expire_a_denial_goes_back_and_a_registered_app_gets_only_its_own() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    // A code not exchanged within its minute is dead.
    let code = code_for(&s, "openid").await;
    s.sim.advance_clock(Duration::from_secs(61));
    let (status, body) = exchange(&base, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    // Deny on the approval page: the client hears access_denied, with its state.
    let url = authorize_url(&base, REDIRECT, VERIFIER, "openid");
    let html = browser()
        .get(&url)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let id = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("request id");
    let resp = browser()
        .post(format!("{base}/smart/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("request", id), ("decision", "deny")]))
        .send()
        .await
        .expect("deny");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().expect("ascii");
    assert_eq!(
        query_value(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(location, "state").as_deref(), Some("st-1"));
    // A registered app: its exact redirect URI and its registered scopes, nothing else.
    let app = s
        .call(
            "POST",
            "/smart/apps",
            Cred::Bearer(&s.admin()),
            Some(serde_json::json!({
                "name": "Viewer", "redirectUris": ["https://viewer.example/cb"],
                "scopes": ["openid", "patient/Patient.read"],
            })),
        )
        .await;
    assert_eq!(app.status, 201, "{}", app.body);
    let client_id = app.body["clientId"].as_str().expect("clientId");
    let ask = |redirect: &str, scope: &str| {
        authorize_url(&base, redirect, VERIFIER, scope)
            .replace("client_id=esus-ir", &format!("client_id={client_id}"))
    };
    let ok = browser()
        .get(ask(
            "https://viewer.example/cb",
            "openid patient/Patient.read",
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status(), 200, "its own redirect and scopes: the page");
    let slash = browser()
        .get(ask("https://viewer.example/cb/", "openid"))
        .send()
        .await
        .expect("answer");
    assert_eq!(slash.status(), 400, "not exactly the registered URI");
    assert!(slash.headers().get("location").is_none());
    let wider = browser()
        .get(ask("https://viewer.example/cb", "openid user/*.*"))
        .send()
        .await
        .expect("answer");
    assert_eq!(wider.status(), 302);
    let location = wider.headers()["location"].to_str().expect("ascii");
    assert_eq!(
        query_value(location, "error").as_deref(),
        Some("invalid_scope")
    );
}

#[tokio::test]
async fn under_auto_approval_authorize_redirects_straight_to_the_client() {
    let s = Sim::with(SimConfig {
        smart_auto_approve: true,
        ..SimConfig::default()
    })
    .await;
    let base = s.sim.base_url();
    let resp = browser()
        .get(authorize_url(&base, REDIRECT, VERIFIER, "openid"))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().expect("ascii");
    let code = query_value(location, "code").expect("code");
    let (status, _) = exchange(&base, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, 200);
}

/// A running `esus-ir login`, its stderr read line by line as it comes.
struct LoginChild {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Drop for LoginChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LoginChild {
    fn start(base: &str, extra: &[&str]) -> LoginChild {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_esus-ir"));
        cmd.args(["login", "--base", base, "--no-browser"])
            .args(extra)
            .env_remove("ESUS_TOKEN")
            .env_remove("RUST_LOG");
        LoginChild::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> LoginChild {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn esus-ir");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        LoginChild {
            child,
            lines,
            stderr: Vec::new(),
        }
    }

    /// The authorization URL the child printed for a person to open.
    fn authorization_url(&mut self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the child prints the authorization URL");
            self.stderr.push(line.clone());
            if line.contains("/smart/authorize?") {
                return line.trim().to_string();
            }
        }
    }

    /// The process's argv as the OS shows it to everyone.
    fn argv(&self) -> String {
        std::fs::read(format!("/proc/{}/cmdline", self.child.id()))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    }

    /// Exit code, stdout, stderr once the child ends (bounded).
    fn finish(mut self) -> (i32, String, String) {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        let status = self.child.wait().expect("exit");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push(line);
        }
        (
            status.code().unwrap_or(-1),
            stdout,
            self.stderr.join("\n") + "\n",
        )
    }
}

fn sent(s: &Sim, method: &str, path: &str) -> usize {
    s.sim
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

/// Every run of URL-safe characters (what tokens, codes and verifiers are made of) long enough
/// to be one.
fn secret_shaped(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "-._~".contains(c)))
        .filter(|w| w.len() >= 20)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_the_browser_gives_a_token_that_works_and_shows_no_secret() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    let mut child = LoginChild::start(&base, &["--keyring", "--timeout", "60s"]);
    let url = tokio::task::block_in_place(|| child.authorization_url());
    let argv = child.argv();
    let challenge = query_value(&url, "code_challenge").expect("a PKCE challenge");
    assert_eq!(
        query_value(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_value(&url, "scope").as_deref(),
        Some("openid fhirUser online_access"),
        "only the identity scopes (and renewal) by default"
    );
    let location = approve(&base, &url).await;
    let code = query_value(&location, "code").expect("code");
    let page = browser().get(&location).send().await.expect("loopback");
    assert_eq!(
        page.status(),
        200,
        "the loopback listener took the redirect"
    );
    let (code_exit, stdout, stderr) = tokio::task::block_in_place(|| child.finish());
    assert_eq!(code_exit, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("as {}", ADMIN.0)), "{stdout}");
    assert_eq!(sent(&s, "POST", "/smart/token"), 1);
    let me: Vec<_> = s
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/auth/me")
        .collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0].status, Some(200), "the new token works on /auth/me");
    // Kept in the OS keyring. (Reading it back from this process is not possible in a headless
    // container, where each process gets its own session keyring: the round trip is
    // `exec::token::tests::a_refresh_token_kept_in_the_os_keyring_is_read_back`.)
    assert!(stdout.contains("Tokens kept in the OS keyring"), "{stdout}");
    // No token, code or verifier on stdout, stderr or argv.
    // The tokens are still live, so any string the simulator would accept as one is a leak.
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr), ("argv", &argv)] {
        assert!(!text.contains(code.as_str()), "the code on {name}");
        for word in secret_shaped(text) {
            assert!(
                !s.sim.access_token_accepted(word),
                "an access token on {name}"
            );
            assert!(
                !s.sim.refresh_token_accepted(word),
                "a refresh token on {name}"
            );
            assert_ne!(challenge_of(word), challenge, "the verifier on {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_with_another_state_is_refused_and_the_code_is_not_exchanged() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    let mut child = LoginChild::start(&base, &["--timeout", "60s"]);
    let url = tokio::task::block_in_place(|| child.authorization_url());
    let location = approve(&base, &url).await;
    let state = query_value(&location, "state").expect("state");
    let forged = location.replace(&format!("state={state}"), "state=forged-by-someone-else");
    let page = browser().get(&forged).send().await.expect("loopback");
    assert_eq!(page.status(), 400);
    let (code, stdout, stderr) = tokio::task::block_in_place(|| child.finish());
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(stderr.contains("state does not match"), "{stderr}");
    assert_eq!(sent(&s, "POST", "/smart/token"), 0, "nothing was exchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_browser_ends_the_login_with_a_clear_timeout_and_exit_4() {
    let s = Sim::start().await;
    let base = s.sim.base_url();
    let mut child = LoginChild::start(&base, &["--timeout", "2s"]);
    let _url = tokio::task::block_in_place(|| child.authorization_url());
    let (code, stdout, stderr) = tokio::task::block_in_place(|| child.finish());
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(
        stderr.contains("timed out: no answer from the browser within 2s"),
        "{stderr}"
    );
    assert_eq!(sent(&s, "POST", "/smart/token"), 0);
}

/// `run --login-smart`: the run logs in through the browser, and when the 15-minute token dies
/// mid-run the SMART refresh token renews it through `POST /auth/refresh`, as the existing
/// refresh path does. The token ESUS rotates is kept in memory only: no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_login_smart_logs_in_inline_and_renews_with_the_refresh_token() {
    // The token answer is held back 1.5 s, long enough for the test to age the token it carries.
    let config = SimConfig {
        smart_auto_approve: true,
        ..SimConfig::default()
    }
    .with_fault("latency=1500ms@POST /smart/token")
    .expect("fault");
    let env = crate::run_support::Env::with(config).await;
    // A read-only review with a read-only scope: what the run needs, nothing more.
    let mut cmd = env.std_env_cmd();
    cmd.env_remove("ESUS_TOKEN")
        .args(["run", "access-review", "--base-url", &env.sim.base_url()])
        .arg("--run-dir")
        .arg(env.run_dir());
    cmd.args([
        "--non-interactive",
        "--login-smart",
        "--scope",
        "user/*.read",
        "--no-browser",
        "--login-timeout",
        "60s",
        "--output",
        "json",
    ]);
    let sessions_before = env.sim.sessions_of("u-0001").len();
    let mut child = LoginChild::spawn(cmd);
    let url = tokio::task::block_in_place(|| child.authorization_url());
    assert_eq!(
        query_value(&url, "scope").as_deref(),
        Some("user/*.read online_access"),
        "only the asked scopes, and renewal"
    );
    // Auto-approval: the authorization endpoint redirects at once; the test is the browser.
    let resp = browser().get(&url).send().await.expect("authorize");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let page = browser().get(&location).send().await.expect("loopback");
    assert_eq!(page.status(), 200);
    // While the token answer is on its way, 16 minutes pass: it arrives already expired.
    let exchanging = || {
        env.sim
            .requests()
            .iter()
            .any(|r| r.path == "/smart/token" && r.status.is_none())
    };
    for _ in 0..100 {
        if exchanging() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(exchanging(), "the exchange is in flight");
    // The route has run (the code spent, the session made) before the clock moves: moved
    // earlier, on a loaded machine, the 60-second code would expire instead of the token.
    let admin = "u-0001";
    for _ in 0..1000 {
        if env.sim.sessions_of(admin).len() > sessions_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        env.sim.sessions_of(admin).len() > sessions_before,
        "the token endpoint made the session"
    );
    env.sim.advance_clock(Duration::from_secs(16 * 60));
    let (code, stdout, stderr) = tokio::task::block_in_place(|| child.finish());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let refreshed: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/auth/refresh")
        .collect();
    assert_eq!(refreshed.len(), 1, "renewed once");
    assert_eq!(refreshed[0].status, Some(200));
    let result: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(result["refresh_token_file"], Value::Null, "{result}");
    assert!(
        !env.run_dir().join("secrets/esus-refresh-token").exists(),
        "a SMART login's rotated refresh token never goes to a file"
    );
    // Neither the code nor a live token is in the output, the transcript or the evidence.
    let code = query_value(&location, "code").expect("code");
    let mut texts = vec![
        ("stdout".to_string(), stdout),
        ("stderr".to_string(), stderr),
    ];
    let mut dirs = vec![env.run_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("run folder")
            .map_while(Result::ok)
        {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                texts.push((path.display().to_string(), text));
            }
        }
    }
    for (name, text) in &texts {
        assert!(!text.contains(&code), "the code in {name}");
        for word in secret_shaped(text) {
            assert!(!env.sim.access_token_accepted(word), "a token in {name}");
            assert!(!env.sim.refresh_token_accepted(word), "a token in {name}");
        }
    }
}

/// Least privilege by default: `run --login-smart` without `--scope` asks for exactly what
/// `esus-ir scopes` says the runbook needs (and renewal), nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_login_smart_asks_for_exactly_the_runbooks_scopes() {
    let env = crate::run_support::Env::start().await;
    let mut scopes = env.bare_cmd();
    scopes.args(["scopes", "access-review", "--output", "json"]);
    let scopes = crate::run_support::output(scopes).await;
    let doc: serde_json::Value = serde_json::from_slice(&scopes.stdout).expect("json");
    let mut want: Vec<String> = doc["smart_scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    want.push("online_access".into());
    assert!(want.iter().any(|s| s == "user/AuditEvent.read"), "{want:?}");
    let mut cmd = env.std_env_cmd();
    cmd.env_remove("ESUS_TOKEN")
        .args(["run", "access-review", "--base-url", &env.sim.base_url()])
        .arg("--run-dir")
        .arg(env.run_dir())
        .args(["--non-interactive", "--login-smart", "--no-browser"])
        .args(["--login-timeout", "30s"]);
    let mut child = LoginChild::spawn(cmd);
    let url = tokio::task::block_in_place(|| child.authorization_url());
    let asked: Vec<String> = query_value(&url, "scope")
        .expect("a scope")
        .split(' ')
        .map(str::to_string)
        .collect();
    assert_eq!(asked, want);
}
