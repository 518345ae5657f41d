//! Proof suite 2: the network policy (docs/security-model.md, "Talking to ESUS"), against real
//! servers on 127.0.0.1: plain http only to loopback and never through a proxy; TLS 1.2 minimum
//! (Debian's `openssl s_server` offering only TLS 1.0/1.1, only 1.2, only 1.3, behind a relay
//! that records every byte esus-ir sends and reads its ClientHello); redirects never followed, so
//! the bearer token never reaches another host; `--ca-cert` with the simulator's `--tls`
//! certificate. Every listener is bounded and stops by itself; nothing binds beyond loopback.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::canary_support::{Canary, Search, capture, esus_ir};

/// One request, no retry: the smallest run that talks to ESUS.
const ONE_REQUEST: &str = "version: 1\nname: one-request\nsteps:\n  - {id: me, name: Who am I, action: http, with: {method: GET, path: auth/me}}\n";

/// The documented exit code of a run whose step failed (README, "Exit codes").
const STEP_FAILED: i32 = 1;

/// The documented exit code when ESUS cannot be reached, the TLS handshake fails or the URL is
/// not ESUS (README, "Exit codes"): the preflight (`GET /auth/me`) stops the run, nothing else is
/// sent.
const UNREACHABLE: i32 = 6;

/// What a test server answers to `GET /auth/me`: an operator profile, so the preflight lets the
/// run go on to its steps.
const PROFILE: &str = r#"{"id":"u-1001","email":"oncall@example.org","organizations":[{"organizationId":"org-1","organizationName":"Network policy test","roles":["admin"]}]}"#;

/// Kills a child process on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's `openssl`, which CI installs (.ci/run).
fn openssl() -> Command {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the network policy suite needs the `openssl` command (Debian: apt-get install openssl; .ci/run installs it)"
    );
    Command::new("openssl")
}

fn run_openssl(args: &[&str], dir: &Path) {
    let out = openssl()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost (EC P-256).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki::for_names("IP:127.0.0.1,DNS:localhost")
    }

    /// A CA and a server certificate for these subjectAltNames.
    fn for_names(san: &str) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        run_openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=esus-ir network policy test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
            d,
        );
        run_openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
            d,
        );
        std::fs::write(
            d.join("server.ext"),
            format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"),
        )
        .expect("ext file");
        run_openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
            d,
        );
        let pki = Pki { dir };
        pki.serve_profile();
        pki
    }

    /// `auth/me` under the folder `s_server -WWW` serves: the operator profile.
    fn serve_profile(&self) {
        let auth = self.dir.path().join("auth");
        std::fs::create_dir_all(&auth).expect("auth dir");
        std::fs::write(auth.join("me"), PROFILE).expect("auth/me");
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// A free loopback port (bound, then released for a server that cannot bind port 0 itself).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `openssl s_server -WWW` on 127.0.0.1 with these version options, serving the PKI folder (so
/// `GET /auth/me` gets [`PROFILE`]); killed on drop.
async fn s_server(pki: &Pki, versions: &[&str]) -> (Running, u16) {
    for _ in 0..5 {
        let port = free_port();
        let child = openssl()
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-WWW"])
            .args(["-cert", "server.pem", "-key", "server.key"])
            .args(versions)
            .current_dir(pki.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        let mut running = Running(child);
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return (running, port);
            }
            if let Ok(Some(_)) = running.0.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    panic!("openssl s_server {versions:?} did not start listening");
}

/// One TCP connection through a [`Relay`]: every byte each way.
#[derive(Default, Clone)]
struct Conn {
    up: Vec<u8>,
    down: Vec<u8>,
}

/// A TCP relay on 127.0.0.1 in front of a server, recording everything. Bounded: at most 64
/// connections, each ended by either side or after 30 s; stops when dropped.
struct Relay {
    port: u16,
    conns: Arc<Mutex<Vec<Conn>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    async fn to(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let all = conns.clone();
        let task = tokio::spawn(async move {
            for _ in 0..64 {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let idx = {
                    let mut c = all.lock().expect("lock");
                    c.push(Conn::default());
                    c.len() - 1
                };
                let all = all.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up_all = all.clone();
                    let up = async move {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            up_all.lock().expect("lock")[idx]
                                .up
                                .extend_from_slice(&buf[..n]);
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = sr.read(&mut buf).await {
                            if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            all.lock().expect("lock")[idx]
                                .down
                                .extend_from_slice(&buf[..n]);
                        }
                        let _ = cw.shutdown().await;
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(30), async {
                        tokio::join!(up, down)
                    })
                    .await;
                });
            }
        });
        Relay { port, conns, task }
    }

    fn conns(&self) -> Vec<Conn> {
        self.conns.lock().expect("lock").clone()
    }
}

/// A listener that only records what arrives: connections and bytes (a host that must never be
/// reached, or a proxy that must never be used). Bounded like [`Relay`].
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recorder");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let all = seen.clone();
        let task = tokio::spawn(async move {
            for _ in 0..64 {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let idx = {
                    let mut s = all.lock().expect("lock");
                    s.push(Vec::new());
                    s.len() - 1
                };
                let all = all.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(500), sock.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                        all.lock().expect("lock")[idx].extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Recorder { port, seen, task }
    }

    fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().expect("lock").clone()
    }
}

/// TLS versions offered by a ClientHello (its `supported_versions` extension, or its
/// `legacy_version` when it has none).
fn offered_versions(hello: &[u8]) -> Option<Vec<u16>> {
    // Record: type 22 (handshake), version, length; handshake: type 1 (ClientHello), length.
    if hello.len() < 9 || hello[0] != 22 || hello[5] != 1 {
        return None;
    }
    let body = &hello[9..];
    let legacy = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let mut at = 2 + 32;
    at += 1 + usize::from(*body.get(at)?);
    at += 2 + usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    at += 1 + usize::from(*body.get(at)?);
    let ext_len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    at += 2;
    let end = (at + ext_len).min(body.len());
    while at + 4 <= end {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let data = body.get(at + 4..at + 4 + len)?;
        if kind == 0x002b {
            let n = usize::from(*data.first()?);
            return Some(
                data.get(1..1 + n)?
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .filter(|v| v & 0x0f0f != 0x0a0a) // GREASE
                    .collect(),
            );
        }
        at += 4 + len;
    }
    Some(vec![legacy])
}

/// The version a ServerHello selected (`supported_versions`, else `legacy_version`).
fn selected_version(hello: &[u8]) -> Option<u16> {
    if hello.len() < 9 || hello[0] != 22 || hello[5] != 2 {
        return None;
    }
    let body = &hello[9..];
    let legacy = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let mut at = 2 + 32;
    at += 1 + usize::from(*body.get(at)?);
    at += 2 + 1;
    let Some(hi) = body.get(at) else {
        return Some(legacy);
    };
    let ext_len = usize::from(u16::from_be_bytes([*hi, *body.get(at + 1)?]));
    at += 2;
    let end = (at + ext_len).min(body.len());
    while at + 4 <= end {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        if kind == 0x002b && len == 2 {
            return Some(u16::from_be_bytes([*body.get(at + 4)?, *body.get(at + 5)?]));
        }
        at += 4 + len;
    }
    Some(legacy)
}

fn version_name(v: u16) -> &'static str {
    match v {
        0x0300 => "SSL 3.0",
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "unknown",
    }
}

/// `esus-ir run RUNBOOK --base-url URL --output json` with a canary operator token, unattended,
/// its run folder `home/run`.
fn run_cmd(home: &Path, runbook: &str, base: &str, token: &Canary) -> Command {
    run_cmd_in(home, "run", runbook, base, token)
}

fn run_cmd_in(home: &Path, run: &str, runbook: &str, base: &str, token: &Canary) -> Command {
    let mut cmd = esus_ir(home);
    cmd.args(["run", runbook, "--base-url", base, "--output", "json"])
        .arg("--run-dir")
        .arg(home.join(run))
        .args(["--non-interactive", "--operator", "oncall@example.org"])
        .env("ESUS_TOKEN", &token.value);
    cmd
}

fn one_request(home: &Path) -> String {
    let path = home.join("one-request.yaml");
    std::fs::write(&path, ONE_REQUEST).expect("write runbook");
    path.display().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The run's `--output json` document (a result, or an error document).
fn document(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "--output json writes one JSON document on stdout ({e}): {}",
            text(stdout)
        )
    })
}

/// The requests a run's transcript records: (step, "METHOD URL").
fn transcript_requests(run_dir: &Path) -> Vec<(String, String)> {
    let t = std::fs::read_to_string(run_dir.join("transcript.jsonl")).unwrap_or_default();
    t.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "request")
        .map(|e| {
            let d = &e["data"];
            (
                d["step"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{} {}",
                    d["request"]["method"].as_str().unwrap_or_default(),
                    d["request"]["url"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect()
}

/// Asserts that the preflight stopped the run with exit 6 (README, "Exit codes") and a message
/// naming every one of `causes`: in the JSON document and on stderr, no step run, and the
/// transcript holding only the preflight's one `GET /auth/me`. Returns the message.
fn stopped_at_preflight(
    what: &str,
    out: &std::process::Output,
    requests: &[(String, String)],
    causes: &[&str],
) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(UNREACHABLE),
        "{what}: {}\n{stderr}",
        text(&out.stdout)
    );
    let doc = document(&out.stdout);
    assert_eq!(doc["exit_code"], UNREACHABLE, "{what}: {doc}");
    assert_eq!(doc["outcome"], "unreachable", "{what}: {doc}");
    let message = doc["message"].as_str().unwrap_or_default().to_string();
    for cause in causes {
        assert!(
            message.contains(cause),
            "{what}: the message names the cause `{cause}`: {message}"
        );
    }
    assert!(
        message.contains("nothing was sent"),
        "{what}: the message says nothing was sent: {message}"
    );
    assert!(
        stderr.contains(&message),
        "{what}: stderr gives the message: {stderr}"
    );
    assert_eq!(
        doc["steps"].as_array().map(Vec::len),
        Some(0),
        "{what}: no step ran: {doc}"
    );
    assert!(
        requests.len() == 1
            && requests[0].0 == "preflight"
            && requests[0].1.starts_with("GET ")
            && requests[0].1.ends_with("/auth/me"),
        "{what}: only the preflight's GET /auth/me was attempted: {requests:?}"
    );
    message
}

/// The failure reasons of a run's JSON report.
fn reasons(stdout: &[u8]) -> String {
    let report: serde_json::Value = serde_json::from_slice(stdout).unwrap_or_default();
    report["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|x| x["reason"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_plain_http_to_a_non_loopback_host_is_refused_before_anything_is_sent() {
    // The only way a request could reach this machine is through a proxy: point every proxy
    // variable at a recorder, which must see nothing.
    let proxy = Recorder::start().await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let token = Canary::spicy("operator token", "tok");
    let password = Canary::spicy("login password", "pw");
    let mut cases = 0;
    for base in [
        "http://10.0.0.1",
        "http://10.0.0.1:8080/esus",
        "http://example.invalid",
        "http://api.esus.health",
        "http://0.0.0.0:8080",
        "http://[::ffff:127.0.0.1]:8080",
        "http://[fe80::1]:8080",
    ] {
        for login in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let home = dir.path();
            let mut cmd = run_cmd(home, "access-review", base, &token);
            if login {
                cmd.env_remove("ESUS_TOKEN")
                    .args(["--login", "admin@riverside.example"])
                    .env("ESUS_PASSWORD", &password.value);
            }
            for var in [
                "HTTP_PROXY",
                "http_proxy",
                "HTTPS_PROXY",
                "https_proxy",
                "ALL_PROXY",
            ] {
                cmd.env(var, &proxy_url);
            }
            let out = capture(cmd).await;
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{base}: {stderr}");
            assert!(
                stderr.contains("plain http is only allowed to a loopback host")
                    && stderr.contains("use https"),
                "{base}: a clear message: {stderr}"
            );
            assert!(
                !home.join("run").exists(),
                "{base}: refused before a run folder (or a transcript) was created"
            );
            let search = Search::new(&[token.clone(), password.clone()]);
            assert!(search.hits("stderr", &out.stderr).is_empty(), "{stderr}");
            assert!(search.hits("stdout", &out.stdout).is_empty());
            cases += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        proxy.seen().is_empty(),
        "nothing was sent, not even through a proxy: {:?}",
        proxy.seen()
    );
    // Credentials in the base URL are refused too, and never repeated in the message.
    for base in [
        format!(
            "https://oncall:{}@api.esus.health",
            password
                .value
                .replace(['/', '?', '#', '@', '%', ' ', '"', '\\'], "x")
        ),
        format!(
            "http://oncall:{}@127.0.0.1:1",
            password
                .value
                .replace(['/', '?', '#', '@', '%', ' ', '"', '\\'], "x")
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = capture(run_cmd(dir.path(), "access-review", &base, &token)).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("credentials in the URL are not allowed"),
            "{stderr}"
        );
        let core = password
            .value
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            !stderr.contains(&core) && !text(&out.stdout).contains(&core),
            "{stderr}"
        );
        cases += 1;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    println!(
        "network policy: {cases} plain-http or credential-bearing bases refused with exit 2, 0 connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_plain_http_to_loopback_never_goes_through_a_proxy() {
    // Plain http is allowed to loopback because the bytes never leave the machine; a proxy from
    // the environment (HTTP_PROXY, ALL_PROXY) may be anywhere, and would get the bearer token in
    // clear text.
    let env = crate::run_support::Env::start().await;
    let proxy = Recorder::start().await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let admin = Canary::known(
        "operator token",
        secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
    );
    let mut cmd = run_cmd(home, &one_request(home), &env.sim.base_url(), &admin);
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env(var, &proxy_url);
    }
    let out = capture(cmd).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = proxy.seen();
    let search = Search::new(std::slice::from_ref(&admin));
    let leaked: Vec<String> = seen
        .iter()
        .flat_map(|s| search.hits("what the proxy received", s))
        .collect();
    assert!(
        seen.is_empty(),
        "plain http went through the proxy from HTTP_PROXY/ALL_PROXY ({} connections; token in clear text: {}): {:?}",
        seen.len(),
        !leaked.is_empty(),
        seen.iter()
            .map(|s| text(&s[..s.len().min(120)]))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run reached the simulator directly: {}",
        text(&out.stderr)
    );

    // https through HTTPS_PROXY: the proxy only ever sees CONNECT, never the token.
    let https_proxy = Recorder::start().await;
    let pki = Pki::new();
    let (_server, port) = s_server(&pki, &["-tls1_3"]).await;
    let token = Canary::spicy("operator token", "tok");
    let mut cmd = run_cmd_in(
        home,
        "run-https",
        &one_request(home),
        &format!("https://127.0.0.1:{port}"),
        &token,
    );
    cmd.arg("--ca-cert").arg(pki.ca());
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
        cmd.env(var, format!("http://127.0.0.1:{}", https_proxy.port));
    }
    let _ = capture(cmd).await;
    let search = Search::new(std::slice::from_ref(&token));
    let through = https_proxy.seen();
    println!(
        "network policy: https with HTTPS_PROXY: {} connection(s) to the proxy, each only CONNECT",
        through.len()
    );
    for s in through {
        assert!(
            s.is_empty() || s.starts_with(b"CONNECT "),
            "a proxy for https sees only CONNECT: {}",
            text(&s)
        );
        assert!(search.hits("what the https proxy received", &s).is_empty());
    }
}

/// What one run against a TLS server left: its output, every connection through the relay, the
/// operator token it held, and the requests its transcript records.
struct TlsRun {
    out: std::process::Output,
    conns: Vec<Conn>,
    token: Canary,
    requests: Vec<(String, String)>,
}

/// Runs the one-request runbook against a server offering only `versions`, through a relay.
async fn against_tls_server(pki: &Pki, versions: &[&str]) -> TlsRun {
    let (_server, port) = s_server(pki, versions).await;
    let relay = Relay::to(port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let token = Canary::spicy("operator token", "tok");
    let mut cmd = run_cmd(
        home,
        &one_request(home),
        &format!("https://127.0.0.1:{}", relay.port),
        &token,
    );
    cmd.arg("--ca-cert").arg(pki.ca());
    let out = capture(cmd).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    TlsRun {
        out,
        conns: relay.conns(),
        token,
        requests: transcript_requests(&home.join("run")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_servers_offering_only_tls_1_0_or_1_1_are_refused() {
    let pki = Pki::new();
    // Debian's OpenSSL 3 offers TLS 1.0/1.1 only at security level 0.
    let old: [&[&str]; 3] = [
        &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        &["-no_tls1_2", "-no_tls1_3", "-cipher", "DEFAULT:@SECLEVEL=0"],
    ];
    let runs = futures::future::join_all(old.iter().map(|v| against_tls_server(&pki, v))).await;
    for (versions, run) in old.iter().zip(runs) {
        let TlsRun {
            out,
            conns,
            token,
            requests,
        } = run;
        // The preflight's handshake fails: exit 6, a message naming the TLS version refusal.
        let message = stopped_at_preflight(
            &format!("{versions:?}"),
            &out,
            &requests,
            &[
                "the TLS connection to",
                "ProtocolVersion",
                "TLS 1.2 or later",
            ],
        );
        println!("network policy: {versions:?}: exit 6, {message}");
        assert_eq!(
            conns.len(),
            1,
            "{versions:?}: one connection, the preflight's (no retry, no step)"
        );
        let search = Search::new(std::slice::from_ref(&token));
        for c in &conns {
            let offered = offered_versions(&c.up)
                .unwrap_or_else(|| panic!("{versions:?}: the first bytes are a TLS ClientHello"));
            assert!(
                offered.iter().all(|v| *v >= 0x0303) && offered.contains(&0x0303),
                "{versions:?}: the ClientHello offers TLS 1.2 and later only: {:?}",
                offered.iter().map(|v| version_name(*v)).collect::<Vec<_>>()
            );
            // Nothing but the handshake: no second record, no HTTP, no token.
            let record_len = 5 + usize::from(u16::from_be_bytes([c.up[3], c.up[4]]));
            assert!(
                c.up.len() <= record_len + 7,
                "{versions:?}: nothing after the ClientHello ({} bytes after it)",
                c.up.len() - record_len
            );
            assert!(search.hits("the bytes esus-ir sent", &c.up).is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_tls_1_2_only_and_tls_1_3_only_servers_are_accepted() {
    let pki = Pki::new();
    let versions: [(&[&str], u16); 2] = [(&["-tls1_2"], 0x0303), (&["-tls1_3"], 0x0304)];
    let runs =
        futures::future::join_all(versions.iter().map(|(v, _)| against_tls_server(&pki, v))).await;
    for ((v, want), run) in versions.iter().zip(runs) {
        let TlsRun {
            out,
            conns,
            requests,
            ..
        } = run;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{v:?}: {}\n{}",
            reasons(&out.stdout),
            text(&out.stderr)
        );
        // The preflight accepted the server's profile, then the step ran over the same TLS.
        assert!(
            text(&out.stderr).contains("acting as oncall@example.org"),
            "{v:?}: the preflight named the operator: {}",
            text(&out.stderr)
        );
        // An administrator running a runbook that needs none: the preflight also reads ESUS's
        // roles to name a narrower one (least privilege), over the same TLS.
        let steps: Vec<&str> = requests.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            steps,
            ["preflight", "preflight", "me"],
            "{v:?}: {requests:?}"
        );
        assert!(requests[1].1.ends_with("/roles"), "{v:?}: {requests:?}");
        let chosen: Vec<Option<u16>> = conns.iter().map(|c| selected_version(&c.down)).collect();
        assert!(
            !chosen.is_empty() && chosen.iter().all(|c| *c == Some(*want)),
            "{v:?}: negotiated {}: {chosen:?}",
            version_name(*want)
        );
    }
}

/// An HTTP server on 127.0.0.1 that answers every request with `status` and `Location` —
/// except, unless `redirect_me`, `GET /auth/me`, answered with [`PROFILE`] so the preflight
/// passes and the run's own steps get the redirects — and records each request (head and body).
/// Bounded: at most 64 connections.
struct Redirector {
    port: u16,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Redirector {
    async fn start(status: u16, location: String, redirect_me: bool) -> Redirector {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let all = requests.clone();
        let task = tokio::spawn(async move {
            for _ in 0..64 {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let all = all.clone();
                let location = location.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), async {
                        // Keep-alive: several requests may come on one connection.
                        for _ in 0..16 {
                            let Some(req) = read_request(&mut sock).await else {
                                return;
                            };
                            let me = req.starts_with(b"GET /auth/me ");
                            all.lock().expect("lock").push(req);
                            let answer = if me && !redirect_me {
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{PROFILE}",
                                    PROFILE.len()
                                )
                            } else {
                                format!(
                                    "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
                                )
                            };
                            if sock.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    })
                    .await;
                });
            }
        });
        Redirector {
            port,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Reads one HTTP/1.1 request (head, then a Content-Length body).
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while req.len() < end + 4 + len {
                let n = sock.read(&mut buf).await.ok()?;
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            return Some(req);
        }
        let n = sock.read(&mut buf).await.ok()?;
        if n == 0 || req.len() > 1 << 20 {
            return None;
        }
        req.extend_from_slice(&buf[..n]);
    }
}

/// Where `canary` appears in one recorded request: "request line", "header NAME", "body".
fn places(req: &[u8], canary: &Canary) -> Vec<String> {
    let search = Search::new(std::slice::from_ref(canary));
    let end = req
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(req.len());
    let mut out = Vec::new();
    for (i, line) in req[..end].split(|b| *b == b'\n').enumerate() {
        if !search.hits("", line).is_empty() {
            let text = String::from_utf8_lossy(line);
            out.push(if i == 0 {
                "request line".to_string()
            } else {
                format!(
                    "header {}",
                    text.split(':')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                )
            });
        }
    }
    if !search.hits("", &req[end.min(req.len())..]).is_empty() {
        out.push("body".into());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_redirects_are_never_followed_and_the_token_stays_with_its_host() {
    let mut cases = 0;
    for status in [301u16, 302, 303, 307, 308] {
        for location_kind in ["absolute", "scheme-relative"] {
            let other = Recorder::start().await;
            let location = match location_kind {
                "absolute" => format!("http://127.0.0.1:{}/stolen?from=redirect", other.port),
                _ => format!("//127.0.0.1:{}/stolen", other.port),
            };
            // `first` answers the preflight and redirects the steps; `first_me` redirects the
            // preflight itself.
            let first = Redirector::start(status, location.clone(), false).await;
            let first_me = Redirector::start(status, location, true).await;
            let base = format!("http://127.0.0.1:{}", first.port);
            let base_me = format!("http://127.0.0.1:{}", first_me.port);
            let dir = tempfile::tempdir().expect("tempdir");
            let home = dir.path();
            let token = Canary::plain("operator token", "tok");
            let session = Canary::plain("secret input session_token", "sess");
            let password = Canary::spicy("login password", "pw");
            let what = format!("{status} {location_kind}");

            // A run whose steps are redirected: the operator's token (GET) and the stolen
            // session's (POST /auth/logout); the first redirected step fails the run.
            let mut cmd = run_cmd(home, "api-key-compromise", &base, &token);
            cmd.args(["--yes", "-i", "key_id=k-1001", "-i", "user_id=u-1001"])
                .env("ESUS_COMPROMISED_TOKEN", &session.value);
            let out = capture(cmd).await;
            let why = reasons(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(STEP_FAILED),
                "{what}: {why}\n{}",
                text(&out.stderr)
            );
            assert!(
                why.contains(&format!("ESUS answered {status}")),
                "{what}: the 3xx is reported as the failure: {why}"
            );
            let steps: Vec<(String, String)> = transcript_requests(&home.join("run"))
                .into_iter()
                .filter(|(s, _)| s != "preflight")
                .collect();
            assert!(
                !steps.is_empty(),
                "{what}: the preflight passed and a step was sent (and redirected)"
            );

            // A run whose preflight is redirected: stopped there, exit 6, nothing else sent.
            let mut cmd = run_cmd_in(home, "run-me", "api-key-compromise", &base_me, &token);
            cmd.args(["--yes", "-i", "key_id=k-1001", "-i", "user_id=u-1001"])
                .env("ESUS_COMPROMISED_TOKEN", &session.value);
            let out = capture(cmd).await;
            stopped_at_preflight(
                &format!("{what}, preflight redirected"),
                &out,
                &transcript_requests(&home.join("run-me")),
                &[
                    "does not look like ESUS",
                    "answered a redirect",
                    "not follow",
                ],
            );

            // A login: the password (POST body) is not re-sent elsewhere.
            let mut cmd = run_cmd_in(home, "run-login", &one_request(home), &base, &token);
            cmd.env_remove("ESUS_TOKEN")
                .args(["--login", "admin@riverside.example"])
                .env("ESUS_PASSWORD", &password.value);
            let login = capture(cmd).await;
            assert_eq!(
                login.status.code(),
                Some(4),
                "{what}: login refused: {}",
                text(&login.stderr)
            );
            assert!(
                text(&login.stderr).contains(&format!("ESUS answered {status}")),
                "{}",
                text(&login.stderr)
            );

            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                other.seen().is_empty(),
                "{what}: the redirect was followed to the other host: {:?}",
                other.seen().iter().map(|s| text(s)).collect::<Vec<_>>()
            );
            let lines = |reqs: &[Vec<u8>]| -> Vec<String> {
                reqs.iter()
                    .map(|r| text(r.split(|b| *b == b'\n').next().unwrap_or_default()))
                    .map(|l| l.trim_end().to_string())
                    .collect()
            };
            let requests = first.requests();
            assert!(
                requests.len() >= 4,
                "{what}: the preflight, a step, the login: {:?}",
                lines(&requests)
            );
            let requests_me = first_me.requests();
            assert_eq!(
                lines(&requests_me),
                ["GET /auth/me HTTP/1.1"],
                "{what}: only the preflight reached the server that redirects it"
            );
            for req in requests.iter().chain(&requests_me) {
                let line = text(req.split(|b| *b == b'\n').next().unwrap_or_default());
                for (c, allowed) in [
                    (&token, "header authorization"),
                    (&session, "header authorization"),
                    (&password, "body"),
                ] {
                    let at = places(req, c);
                    assert!(
                        at.iter().all(|p| p == allowed),
                        "{what}: {} in {at:?} of `{line}`",
                        c.what
                    );
                }
                if line.starts_with("POST /auth/login") {
                    assert_eq!(
                        places(req, &password),
                        ["body"],
                        "the password is in its body"
                    );
                }
            }
            assert!(
                requests
                    .iter()
                    .filter(|r| !r.starts_with(b"GET /auth/me "))
                    .any(|r| places(r, &token) == ["header authorization"]),
                "{what}: a redirected step carried the operator's token to its own host, in the Authorization header"
            );
            assert_eq!(
                places(&requests_me[0], &token),
                ["header authorization"],
                "{what}: the redirected preflight carried the token in its Authorization header"
            );
            cases += 3;
        }
    }
    println!(
        "network policy: {cases} redirected runs (steps or preflight) and logins, 0 requests to the other host"
    );
}

/// `esus-ir sim --tls` as its own process: its base URL, and it is killed on drop.
fn tls_sim(dir: &Path) -> (Running, String, PathBuf, String) {
    let ready = dir.join("ready.json");
    let ca = dir.join("sim-ca.pem");
    let child = Command::new(assert_cmd::cargo::cargo_bin("esus-ir"))
        .args(["sim", "--tls", "--listen", "127.0.0.1:0", "--ca-out"])
        .arg(&ca)
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn esus-ir sim --tls");
    let mut running = Running(child);
    for _ in 0..400 {
        if let Ok(t) = std::fs::read_to_string(&ready)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
        {
            let base = v["base_url"].as_str().expect("base_url").to_string();
            let token = v["admin_token"].as_str().expect("admin_token").to_string();
            assert!(base.starts_with("https://127.0.0.1:"), "{base}");
            return (running, base, ca, token);
        }
        if let Ok(Some(_)) = running.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = running.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("esus-ir sim --tls exited: {err}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("esus-ir sim --tls wrote no ready file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_ca_cert_trusts_the_simulators_tls_certificate_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, base, ca, token) = tls_sim(dir.path());
    let token = Canary::known("operator token", token);
    let other_ca = Pki::new();
    let localhost = base.replace("127.0.0.1", "localhost");
    let home = |name: &str| {
        let h = dir.path().join(name);
        std::fs::create_dir_all(&h).expect("home");
        h
    };
    // A bundled runbook end to end over TLS, by IP and by name.
    type Run = std::pin::Pin<
        Box<dyn std::future::Future<Output = (&'static str, std::process::Output)> + Send>,
    >;
    let mut runs: Vec<Run> = Vec::new();
    for (name, url, ca_arg, runbook) in [
        ("with-ca", base.clone(), Some(ca.clone()), "access-review"),
        (
            "with-ca-localhost",
            localhost,
            Some(ca.clone()),
            "one-request",
        ),
        ("without-ca", base.clone(), None, "one-request"),
        ("other-ca", base.clone(), Some(other_ca.ca()), "one-request"),
    ] {
        let h = home(name);
        let rb = if runbook == "one-request" {
            one_request(&h)
        } else {
            runbook.to_string()
        };
        let mut cmd = run_cmd(&h, &rb, &url, &token);
        if let Some(ca) = ca_arg {
            cmd.arg("--ca-cert").arg(ca);
        }
        runs.push(Box::pin(async move { (name, capture(cmd).await) }));
    }
    // The right CA, a certificate for another name: refused.
    let wrong_name = Pki::for_names("DNS:esus.example.org");
    let (_server, port) = s_server(&wrong_name, &["-tls1_3"]).await;
    let h = home("wrong-name");
    let mut cmd = run_cmd(
        &h,
        &one_request(&h),
        &format!("https://127.0.0.1:{port}"),
        &token,
    );
    cmd.arg("--ca-cert").arg(wrong_name.ca());
    runs.push(Box::pin(async move { ("wrong-name", capture(cmd).await) }));
    for (name, out) in futures::future::join_all(runs).await {
        let why = reasons(&out.stdout);
        let requests = transcript_requests(&dir.path().join(name).join("run"));
        match name {
            "with-ca" | "with-ca-localhost" => {
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{name}: {why}\n{}",
                    text(&out.stderr)
                );
                assert!(
                    requests.len() >= 2 && requests[0].0 == "preflight",
                    "{name}: the preflight, then the steps: {requests:?}"
                );
            }
            // The preflight's handshake is refused: exit 6 with the certificate's fault named.
            "wrong-name" => {
                let message = stopped_at_preflight(
                    name,
                    &out,
                    &requests,
                    &[
                        "the TLS connection to",
                        "invalid peer certificate",
                        "not valid for name",
                    ],
                );
                println!("network policy: {name}: exit 6, {message}");
            }
            _ => {
                let message = stopped_at_preflight(
                    name,
                    &out,
                    &requests,
                    &[
                        "the TLS connection to",
                        "invalid peer certificate",
                        "UnknownIssuer",
                        "--ca-cert",
                    ],
                );
                println!("network policy: {name}: exit 6, {message}");
            }
        }
    }
}
