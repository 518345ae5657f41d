//! Proof suite 1: secrets never leak. Every bundled runbook (and a webhook-credential variant of
//! security-monitoring) is run in every mode — live, dry-run, failing, declined, interrupted,
//! verbose, traced, JSON — with canary values for every credential esus-ir holds: the operator's
//! token (ESUS_TOKEN, --token-file, a hidden prompt), its refresh token, login passwords and MFA
//! codes, every secret input, and the secrets ESUS itself returns. Each canary is then searched in
//! every form a leak could take (tests/it/canary_support.rs) in everything the run left: stdout,
//! stderr, the terminal, every file under the run's home except `secrets/`, `report` (markdown and
//! HTML) and `verify` of the transcript, and the URLs ESUS received. Zero hits is the only pass.
//! The figures are printed and published in docs/security.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use esus_ir::runbook::model::InputType;
use esus_ir::sim::{SimConfig, SimHandle, Simulator};
use futures::StreamExt;
use secrecy::ExposeSecret;

use crate::canary_support::{
    Answer, Canary, CanaryScenario, Haystacks, Prompt, Tally, capture, esus_ir, in_pty,
    post_process, search_case,
};

/// esus-ir processes running at once within a test (CI has two cores).
const PARALLEL: usize = 4;

/// Every ESUS route but the preflight's `GET /auth/me`, as disjoint fault routes: a fault on
/// these hits the run's own requests, never the preflight, so a failing mode fails mid-run
/// (after the preflight has passed) instead of stopping at the preflight (exit 6).
const AFTER_PREFLIGHT: &[&str] = &[
    "/*",
    "/api-keys/*",
    "/admin/*",
    "/fhir/*",
    "/roles/*",
    "POST /auth/*",
    "DELETE /auth/*",
    "PATCH /auth/*",
    "GET /auth/sessions",
    "/*/*/*",
    "/*/*/*/*",
];

/// A security-monitoring variant whose Subscriptions carry a webhook credential (a required
/// secret input, so a terminal run prompts for it), with a confirmed clean-up step.
const HOOK_HEADER_RUNBOOK: &str = r#"version: 1
name: hook-header-monitoring
description: "security-monitoring with a webhook credential in each Subscription's channel header."
inputs:
  endpoint:
    type: string
    required: true
  hook_header:
    type: secret
    required: true
    env: ESUS_HOOK_HEADER
    description: "The header ESUS sends with each alert, e.g. Authorization: Bearer …"
steps:
  - id: existing
    name: List the existing Subscriptions
    action: subscription.list
    save: subscriptions-before.json
    outputs:
      total: response.entry | default([]) | length
  - id: failed_access
    name: Alert on failed access, with the webhook credential
    needs: [existing]
    action: subscription.create
    with:
      criteria: AuditEvent?outcome=failure
      endpoint: "{{ inputs.endpoint }}"
      channel_type: rest-hook
      header: ["{{ inputs.hook_header }}"]
      status: active
      reason: canary proof
    outputs:
      id: response.id
  - id: emergency_override
    name: Alert on emergency overrides, with the webhook credential
    needs: [existing]
    action: subscription.create
    with:
      criteria: AuditEvent?emergency-override=true
      endpoint: "{{ inputs.endpoint }}"
      channel_type: rest-hook
      header: ["{{ inputs.hook_header }}"]
      status: active
    outputs:
      id: response.id
  - id: after
    name: List the Subscriptions now in place
    needs: [failed_access, emergency_override]
    action: subscription.list
    save: subscriptions-after.json
    outputs:
      total: response.entry | default([]) | length
  - id: cleanup
    name: Delete the failed-access alert again
    needs: [after]
    action: subscription.delete
    with:
      id: "{{ steps.failed_access.outputs.id }}"
    confirm: "Delete the failed-access Subscription again?"
"#;

/// One runbook of the matrix.
#[derive(Clone)]
struct Rb {
    name: String,
    /// The bundled name or a path.
    arg: String,
    /// `--input NAME=VALUE`s.
    inputs: Vec<String>,
    /// Its secret inputs: name, its own environment variable, required.
    secrets: Vec<(String, Option<String>, bool)>,
    /// Whether it asks for confirmations (an unattended run without approvals declines).
    prompts: bool,
    /// The route of its first request (held open by a latency fault while /proc is read).
    first_route: &'static str,
}

impl Rb {
    fn from_text(name: &str, arg: String, text: &str) -> Rb {
        let (runbook, _) = esus_ir::runbook::parse::parse(text)
            .unwrap_or_else(|p| panic!("runbook {name} parses: {p:?}"));
        let secrets = runbook
            .inputs
            .iter()
            .filter(|(_, s)| s.kind == InputType::Secret)
            .map(|(n, s)| (n.clone(), s.env.clone(), s.required))
            .collect();
        const ENDPOINT: &str = "endpoint=https://hooks.example.org/esus-alerts";
        let (inputs, prompts, first_route): (&[&str], bool, &str) = match name {
            "api-key-compromise" => (
                &["key_id=k-1001", "user_id=u-1001"],
                true,
                "GET /api-keys/{id}",
            ),
            "session-compromise" => (&["user_id=u-1001"], true, "GET /auth/sessions"),
            "security-monitoring" => (&[ENDPOINT], false, "GET /fhir/Subscription"),
            "access-review" => (&["expire_stale=true"], true, "GET /roles"),
            "scheduled-key-rotation" => (&[], true, "GET /api-keys"),
            "persistence-sweep" => (
                &[
                    "user_id=u-1001",
                    "since=2026-01-01T00:00:00Z",
                    "key_id=k-1001",
                    "organization_id=org-0001",
                ],
                false,
                "GET /v1/admin/audit",
            ),
            "hook-header-monitoring" => (&[ENDPOINT], true, "GET /fhir/Subscription"),
            other => panic!(
                "bundled runbook `{other}` is new: give it inputs in tests/it/canary.rs so the canary proof covers it"
            ),
        };
        Rb {
            name: name.to_string(),
            arg,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            secrets,
            prompts,
            first_route,
        }
    }
}

/// Every bundled runbook plus the webhook-credential variant (written into `dir`).
fn runbooks(dir: &Path) -> Vec<Rb> {
    let mut out: Vec<Rb> = esus_ir::bundled::BUNDLED
        .iter()
        .map(|b| Rb::from_text(b.name, b.name.to_string(), b.text))
        .collect();
    let path = dir.join("hook-header-monitoring.yaml");
    std::fs::write(&path, HOOK_HEADER_RUNBOOK).expect("write runbook");
    out.push(Rb::from_text(
        "hook-header-monitoring",
        path.display().to_string(),
        HOOK_HEADER_RUNBOOK,
    ));
    out
}

/// The modes of suite 1 (PTY modes are in [`PtyMode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `--yes --non-interactive`, token in ESUS_TOKEN, secrets in their own variables.
    Live,
    /// … `--output json`, secrets in `ESUS_IR_INPUT_<NAME>`.
    LiveJson,
    /// … `-vvv`.
    LiveVvv,
    /// … `RUST_LOG=trace` (every crate, hyper and rustls included).
    LiveTrace,
    /// … `--log-format json` with `RUST_LOG=trace` and `--output json`.
    LiveLogJson,
    /// `--token-file`, `--secret-file` for every secret input, ESUS_REFRESH_TOKEN.
    LiveFiles,
    /// `--login` with ESUS_PASSWORD (the scenario's canary password).
    LiveLogin,
    /// `--login` of the MFA admin with ESUS_PASSWORD and ESUS_MFA_CODE (a real TOTP code).
    LiveMfa,
    /// The operator's token expired: renewed with ESUS_REFRESH_TOKEN (fresh tokens minted).
    LiveRefresh,
    /// Over TLS (`--ca-cert`), `RUST_LOG=trace`, with SSLKEYLOGFILE set (it must stay unwritten).
    LiveTls,
    /// `--dry-run`.
    Dry,
    /// `--dry-run --output json -vvv`.
    DryJsonVvv,
    /// `--dry-run=reads` with `RUST_LOG=trace`.
    DryReadsTrace,
    /// `--dry-run=reads --output json --log-format json -vvv`.
    DryReadsLogJson,
    /// Every request after the preflight answered 503 (`error_count`): steps fail after their
    /// retries.
    FailErrorCount,
    /// Half of the requests after the preflight answered 500/503 (`error_rate=0.5`).
    FailErrorRate,
    /// A third of the answers after the preflight lost after the work was done (`drop_rate`):
    /// unknown outcomes.
    FailDrop,
    /// Unattended without approvals: the run refuses to start (exit 3, nothing sent; the
    /// missing approvals are listed). A decline at a prompt is [`PtyMode::Declined`].
    Declined,
    /// SIGINT (via /bin/kill) while the run's own requests (after the preflight) are in flight.
    Interrupted,
    /// ESUS_TOKEN is a canary ESUS does not know.
    BadToken,
    /// --token-file holds a canary ESUS does not know.
    BadTokenFile,
    /// ESUS_TOKEN and ESUS_REFRESH_TOKEN are canaries ESUS does not know.
    BadRefresh,
    /// ESUS_TOKEN holds a space (and `/ + = & " \ % ? #`): refused before anything is sent.
    BadTokenSpace,
    /// --login with a wrong canary password.
    BadPassword,
    /// --login of the MFA admin with a wrong canary MFA code.
    BadMfa,
    /// The operator's real token, every secret input a canary ESUS does not know.
    UnknownSecrets,
    /// `esus-ir drill` (text).
    DrillText,
    /// `esus-ir drill --output json`.
    DrillJson,
    /// `esus-ir drill --output json --log-format json` with `RUST_LOG=trace`.
    DrillTrace,
    /// Like `Live`, its first request held open while /proc is read.
    HeldEnv,
    /// Like `LiveFiles`, its first request held open while /proc is read.
    HeldFiles,
    /// Like `LiveLogin`, its login request held open while /proc is read.
    HeldLogin,
}

const HELD_MODES: &[Mode] = &[Mode::HeldEnv, Mode::HeldFiles, Mode::HeldLogin];

const MODES: &[Mode] = &[
    Mode::Live,
    Mode::LiveJson,
    Mode::LiveVvv,
    Mode::LiveTrace,
    Mode::LiveLogJson,
    Mode::LiveFiles,
    Mode::LiveLogin,
    Mode::LiveMfa,
    Mode::LiveRefresh,
    Mode::LiveTls,
    Mode::Dry,
    Mode::DryJsonVvv,
    Mode::DryReadsTrace,
    Mode::DryReadsLogJson,
    Mode::FailErrorCount,
    Mode::FailErrorRate,
    Mode::FailDrop,
    Mode::Declined,
    Mode::Interrupted,
    Mode::BadToken,
    Mode::BadTokenFile,
    Mode::BadRefresh,
    Mode::BadTokenSpace,
    Mode::BadPassword,
    Mode::BadMfa,
    Mode::UnknownSecrets,
    Mode::DrillText,
    Mode::DrillJson,
    Mode::DrillTrace,
];

impl Mode {
    /// The mode whose arguments and credentials this one uses.
    fn base(self) -> Mode {
        match self {
            Mode::HeldEnv => Mode::Live,
            Mode::HeldFiles => Mode::LiveFiles,
            Mode::HeldLogin => Mode::LiveLogin,
            m => m,
        }
    }

    fn held(self) -> bool {
        HELD_MODES.contains(&self)
    }

    /// The route a held mode holds open.
    fn held_route(self, rb: &Rb) -> &'static str {
        if self == Mode::HeldLogin {
            "POST /auth/login"
        } else {
            rb.first_route
        }
    }

    fn applies(self, rb: &Rb) -> bool {
        match self {
            Mode::Declined => rb.prompts,
            Mode::UnknownSecrets => !rb.secrets.is_empty(),
            _ => true,
        }
    }

    /// The exit codes this mode may end with (README, "Exit codes").
    fn expected(self) -> &'static [i32] {
        match self {
            Mode::Live
            | Mode::LiveJson
            | Mode::LiveVvv
            | Mode::LiveTrace
            | Mode::LiveLogJson
            | Mode::LiveFiles
            | Mode::LiveLogin
            | Mode::LiveMfa
            | Mode::LiveRefresh
            | Mode::LiveTls
            | Mode::Dry
            | Mode::DryJsonVvv
            | Mode::DryReadsTrace
            | Mode::DryReadsLogJson
            | Mode::HeldEnv
            | Mode::HeldFiles
            | Mode::HeldLogin => &[0],
            // A drill scores containment; a runbook that claims none passes it (not applicable).
            Mode::DrillText | Mode::DrillJson | Mode::DrillTrace => &[0],
            Mode::FailErrorCount => &[1],
            Mode::FailErrorRate | Mode::FailDrop => &[0, 1],
            Mode::Declined => &[3],
            Mode::Interrupted => &[130],
            // The preflight refuses the token before any step, whatever the runbook.
            Mode::BadToken | Mode::BadTokenFile | Mode::BadRefresh => &[4],
            Mode::BadPassword | Mode::BadMfa => &[4],
            Mode::BadTokenSpace => &[2],
            Mode::UnknownSecrets => &[0, 1, 3],
        }
    }

    /// The fault that fired on the run's own requests in a failing mode (the simulator's
    /// request log names it).
    fn fault_fired(self) -> Option<&'static str> {
        match self {
            Mode::FailErrorCount | Mode::FailErrorRate => Some("error"),
            Mode::FailDrop => Some("drop"),
            _ => None,
        }
    }

    /// Whether the run has `--output json` (stdout is then one JSON document).
    fn json_output(self) -> bool {
        matches!(
            self.base(),
            Mode::LiveJson
                | Mode::LiveLogJson
                | Mode::DryJsonVvv
                | Mode::DryReadsLogJson
                | Mode::DrillJson
                | Mode::DrillTrace
        )
    }

    fn is_drill(self) -> bool {
        matches!(self, Mode::DrillText | Mode::DrillJson | Mode::DrillTrace)
    }

    /// Whether the case needs its own simulator (it changes ESUS's state, or needs faults).
    fn own_sim(self, rb: &Rb) -> Option<SimConfig> {
        let after = |fault: &str| -> Vec<String> {
            AFTER_PREFLIGHT
                .iter()
                .map(|route| format!("{fault}@{route}"))
                .collect()
        };
        let faults: Vec<String> = match self {
            Mode::HeldEnv | Mode::HeldFiles | Mode::HeldLogin => {
                vec![format!("latency=800ms@{}", self.held_route(rb))]
            }
            Mode::Dry
            | Mode::DryJsonVvv
            | Mode::DryReadsTrace
            | Mode::DryReadsLogJson
            | Mode::BadToken
            | Mode::BadTokenFile
            | Mode::BadRefresh
            | Mode::BadTokenSpace
            | Mode::BadPassword
            | Mode::BadMfa
            | Mode::DrillText
            | Mode::DrillJson
            | Mode::DrillTrace => return None,
            Mode::FailErrorCount => after("error_count=100"),
            Mode::FailErrorRate => after("error_rate=0.5"),
            Mode::FailDrop => after("drop_rate=0.34"),
            Mode::Interrupted => vec!["latency=300ms".into()],
            _ => Vec::new(),
        };
        let mut config = SimConfig::default().with_seed(7);
        for f in &faults {
            config = config.with_fault(f).expect("fault");
        }
        config.tls = self == Mode::LiveTls;
        Some(config)
    }
}

/// What every case of a test shares.
struct Ctx {
    scenario: CanaryScenario,
    /// The canary scenario without faults, for cases that change nothing (dry-runs, refused
    /// credentials).
    shared: SimHandle,
    /// A Subscription with a canary webhook credential, seeded in every simulator.
    seeded_hook: Canary,
    runbooks: Vec<Rb>,
    _dir: tempfile::TempDir,
    scenario_file: PathBuf,
}

impl Ctx {
    async fn new() -> Ctx {
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = CanaryScenario::new();
        let scenario_file = dir.path().join("scenario.yaml");
        std::fs::write(&scenario_file, &scenario.yaml).expect("write scenario");
        let seeded_hook = Canary::plain(
            "webhook credential of a Subscription already in ESUS",
            "hook",
        );
        let shared = start(&scenario, SimConfig::default()).await;
        seed_subscription(&shared, &seeded_hook).await;
        let runbooks = runbooks(dir.path());
        Ctx {
            scenario,
            shared,
            seeded_hook,
            runbooks,
            _dir: dir,
            scenario_file,
        }
    }
}

async fn start(scenario: &CanaryScenario, config: SimConfig) -> SimHandle {
    Simulator::start(
        config
            .with_scenario_yaml(&scenario.yaml)
            .expect("the canary scenario loads"),
    )
    .await
    .expect("simulator starts")
}

/// Creates a Subscription whose channel header holds `hook`: the monitoring runbooks list it
/// and save the listing as evidence.
async fn seed_subscription(sim: &SimHandle, hook: &Canary) {
    let body = serde_json::json!({
        "resourceType": "Subscription",
        "status": "active",
        "criteria": "AuditEvent?outcome=failure",
        "reason": "seeded by the canary proof",
        "channel": {"type": "rest-hook", "endpoint": "https://other.example.org/hook",
                    "header": [format!("Authorization: Bearer {}", hook.value)]},
    });
    let resp = client_for(sim)
        .post(format!("{}/fhir/Subscription", sim.base_url()))
        .bearer_auth(sim.ready().admin_token.expose_secret())
        .json(&body)
        .send()
        .await
        .expect("seed a Subscription");
    assert_eq!(resp.status().as_u16(), 201, "seeding a Subscription");
}

fn client_for(sim: &SimHandle) -> reqwest::Client {
    let mut b = reqwest::Client::builder().no_proxy();
    if let Some(pem) = sim.ca_cert_pem() {
        b = b.tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("sim CA"),
        );
    }
    b.build().expect("client")
}

/// The simulator's own secrets (the admin's minted tokens; the rest are scenario canaries).
fn sim_canaries(sim: &SimHandle) -> Vec<Canary> {
    let r = sim.ready();
    vec![
        Canary::known(
            "operator's access token (the simulator's admin token)",
            r.admin_token.expose_secret(),
        ),
        Canary::known(
            "operator's refresh token (the simulator's admin refresh token)",
            r.admin_refresh_token.expose_secret(),
        ),
        Canary::known(
            "admin password (ready file)",
            r.admin_password.expose_secret(),
        ),
        Canary::known(
            "compromised session's access token",
            r.session_token.expose_secret(),
        ),
        Canary::known(
            "compromised session's refresh token",
            r.session_refresh_token.expose_secret(),
        ),
        Canary::known("leaked key secret", r.key_secret.expose_secret()),
    ]
}

/// Exchanges the compromised session's refresh token for a fresh pair of that same session (as
/// its thief could): the access token and the new refresh token, both canaries.
async fn refresh_compromised_session(sim: &SimHandle) -> (Canary, Canary) {
    let resp = client_for(sim)
        .post(format!("{}/auth/refresh", sim.base_url()))
        .json(&serde_json::json!({
            "refreshToken": sim.ready().session_refresh_token.expose_secret()
        }))
        .send()
        .await
        .expect("refresh the compromised session");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "refreshing the compromised session"
    );
    let pair: serde_json::Value = resp.json().await.expect("a token pair");
    let field = |f: &str| pair[f].as_str().expect("token").to_string();
    (
        Canary::known(
            "secret input session_token (the compromised session, refreshed)",
            field("accessToken"),
        ),
        Canary::known(
            "compromised session's refresh token (refreshed)",
            field("refreshToken"),
        ),
    )
}

/// The value of a secret input: the real credential ESUS knows (`real`), or a fresh canary.
fn secret_value(name: &str, sim: &SimHandle, real: bool) -> Canary {
    let r = sim.ready();
    let what = format!("secret input {name}");
    match (name, real) {
        ("session_token", true) => Canary::known(what, r.session_token.expose_secret()),
        ("refresh_token", true) => Canary::known(what, r.session_refresh_token.expose_secret()),
        ("leaked_secret", true) => Canary::known(what, r.key_secret.expose_secret()),
        ("hook_header", _) => Canary::plain(&what, "hook").prefixed("Authorization: Bearer "),
        (_, true) => Canary::plain(&what, "input"),
        (_, false) => Canary::spicy(&what, "input"),
    }
}

/// How secret inputs are handed over.
#[derive(Clone, Copy)]
enum Via {
    /// The input's own variable (`env:`), else `ESUS_IR_INPUT_<NAME>`.
    OwnEnv,
    /// `ESUS_IR_INPUT_<NAME>`.
    InputEnv,
    /// `--secret-file NAME=PATH`.
    File,
}

fn give_secrets(
    cmd: &mut std::process::Command,
    rb: &Rb,
    values: &[(String, Canary)],
    via: Via,
    input_dir: &Path,
    hay: &mut Haystacks,
) {
    for (name, c) in values {
        let spec = rb.secrets.iter().find(|(n, _, _)| n == name);
        let own = spec.and_then(|(_, env, _)| env.clone());
        match (via, own) {
            (Via::OwnEnv, Some(var)) => {
                cmd.env(var, &c.value);
            }
            (Via::File, _) => {
                let path = input_dir.join(format!("secret-{name}"));
                std::fs::write(&path, &c.value).expect("write secret file");
                hay.inputs.push(path.clone());
                cmd.arg("--secret-file")
                    .arg(format!("{name}={}", path.display()));
            }
            _ => {
                cmd.env(
                    format!("ESUS_IR_INPUT_{}", name.to_ascii_uppercase()),
                    &c.value,
                );
            }
        }
    }
}

/// One case: runs it, then searches what it left. Returns its tally (leaks in `findings`).
async fn run_case(ctx: &Ctx, mode: Mode, rb: &Rb) -> Tally {
    let label = format!("{mode:?} × {}", rb.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().to_path_buf();
    let input_dir = home.join("input");
    std::fs::create_dir_all(&input_dir).expect("input dir");
    let run_dir = home.join("run");
    let mut hay = Haystacks {
        run_dirs: vec![run_dir.clone()],
        ..Haystacks::default()
    };
    let own = match mode.own_sim(rb) {
        Some(mut config) => {
            if config.tls {
                config.ca_out = Some(input_dir.join("sim-ca.pem"));
            }
            // Faults would answer the seeding request too: faulted simulators hold no seeded
            // Subscription (the canary is still searched).
            let faulted = !config.faults.is_empty() && !mode.held();
            let sim = start(&ctx.scenario, config).await;
            if !faulted {
                seed_subscription(&sim, &ctx.seeded_hook).await;
            }
            Some(sim)
        }
        None => None,
    };
    let sim = own.as_ref().unwrap_or(&ctx.shared);
    let first_seq = sim.requests().last().map_or(0, |q| q.seq);
    let mut canaries = ctx.scenario.canaries.clone();
    canaries.extend(sim_canaries(sim));
    canaries.push(ctx.seeded_hook.clone());

    let real_secrets = !matches!(
        mode,
        Mode::BadToken
            | Mode::BadTokenFile
            | Mode::BadRefresh
            | Mode::BadTokenSpace
            | Mode::BadPassword
            | Mode::BadMfa
            | Mode::UnknownSecrets
            | Mode::Dry
            | Mode::DryJsonVvv
    );
    // LiveRefresh: the clock moves before anything is given to the run. The operator's token
    // expires (the run renews it with ESUS_REFRESH_TOKEN), and so does the compromised
    // session's access token: refused, an already expired stolen token proves nothing
    // (containment is proven by difference), so — where the runbook takes no stolen refresh
    // token of its own — the session's refresh token mints the live access token an attacker
    // would now hold, and the run is given that one.
    let mut fresh_session = None;
    if mode == Mode::LiveRefresh {
        sim.advance_clock(Duration::from_secs(20 * 60));
        let takes = |name: &str| rb.secrets.iter().any(|(n, _, _)| n == name);
        if takes("session_token") && !takes("refresh_token") {
            let (access, refresh) = refresh_compromised_session(sim).await;
            canaries.push(refresh);
            fresh_session = Some(access);
        }
    }
    let secrets: Vec<(String, Canary)> = rb
        .secrets
        .iter()
        .map(|(n, _, _)| match (n.as_str(), &fresh_session) {
            ("session_token", Some(fresh)) => (n.clone(), fresh.clone()),
            _ => (n.clone(), secret_value(n, sim, real_secrets)),
        })
        .collect();
    canaries.extend(secrets.iter().map(|(_, c)| c.clone()));

    let mut cmd = esus_ir(&home);
    let r = sim.ready();
    let admin = r.admin_token.expose_secret().to_string();
    if mode.is_drill() {
        cmd.arg("drill")
            .arg(&rb.arg)
            .arg("--scenario")
            .arg(&ctx.scenario_file)
            .arg("--run-dir")
            .arg(&run_dir)
            .args(["--non-interactive", "--operator", "oncall@example.org"]);
        for i in &rb.inputs {
            cmd.args(["--input", i]);
        }
        match mode {
            Mode::DrillJson => {
                cmd.args(["--output", "json"]);
            }
            Mode::DrillTrace => {
                cmd.args(["--output", "json", "--log-format", "json"])
                    .env("RUST_LOG", "trace");
            }
            _ => {}
        }
        give_secrets(&mut cmd, rb, &secrets, Via::OwnEnv, &input_dir, &mut hay);
    } else {
        let base = sim.base_url();
        cmd.arg("run")
            .arg(&rb.arg)
            .args(["--base-url", &base, "--operator", "oncall@example.org"])
            .arg("--run-dir")
            .arg(&run_dir);
        for i in &rb.inputs {
            cmd.args(["--input", i]);
        }
        let mode = mode.base();
        let via = match mode {
            Mode::LiveJson | Mode::LiveLogJson | Mode::DryReadsLogJson | Mode::BadRefresh => {
                Via::InputEnv
            }
            Mode::LiveFiles | Mode::BadTokenFile | Mode::LiveMfa => Via::File,
            _ => Via::OwnEnv,
        };
        give_secrets(&mut cmd, rb, &secrets, via, &input_dir, &mut hay);
        if !matches!(mode, Mode::Declined) {
            cmd.args(["--yes", "--non-interactive"]);
        } else {
            cmd.arg("--non-interactive");
        }
        match mode {
            Mode::LiveJson => {
                cmd.args(["--output", "json"]);
            }
            Mode::LiveVvv => {
                cmd.arg("-vvv");
            }
            Mode::LiveTrace | Mode::DryReadsTrace => {
                cmd.env("RUST_LOG", "trace");
            }
            Mode::LiveLogJson => {
                cmd.args(["--output", "json", "--log-format", "json"])
                    .env("RUST_LOG", "trace");
            }
            Mode::DryJsonVvv => {
                cmd.args(["--output", "json", "-vvv"]);
            }
            Mode::DryReadsLogJson => {
                cmd.args(["--output", "json", "--log-format", "json", "-vvv"]);
            }
            Mode::LiveTls => {
                let ca = input_dir.join("ca.pem");
                std::fs::write(&ca, sim.ca_cert_pem().expect("TLS simulator")).expect("ca");
                cmd.arg("--ca-cert")
                    .arg(&ca)
                    .env("RUST_LOG", "trace")
                    .env("SSLKEYLOGFILE", home.join("sslkeylog.txt"));
            }
            _ => {}
        }
        match mode {
            Mode::Dry => {
                cmd.arg("--dry-run");
            }
            Mode::DryJsonVvv => {
                cmd.arg("--dry-run");
            }
            Mode::DryReadsTrace | Mode::DryReadsLogJson => {
                cmd.arg("--dry-run=reads");
            }
            _ => {}
        }
        // The operator's credentials.
        match mode {
            Mode::LiveFiles => {
                let path = input_dir.join("token");
                std::fs::write(&path, format!("{admin}\n")).expect("token file");
                hay.inputs.push(path.clone());
                cmd.arg("--token-file")
                    .arg(&path)
                    .env("ESUS_REFRESH_TOKEN", r.admin_refresh_token.expose_secret());
            }
            Mode::LiveLogin => {
                cmd.args(["--login", &r.admin_email])
                    .env("ESUS_PASSWORD", &ctx.scenario.admin_password);
            }
            Mode::LiveMfa => {
                cmd.args(["--login", &ctx.scenario.mfa_email])
                    .env("ESUS_PASSWORD", &ctx.scenario.mfa_password);
            }
            Mode::LiveRefresh => {
                // The clock was moved above, before the secrets were chosen.
                cmd.env("ESUS_TOKEN", &admin)
                    .env("ESUS_REFRESH_TOKEN", r.admin_refresh_token.expose_secret());
            }
            Mode::BadToken => {
                let c = Canary::spicy("operator token (ESUS_TOKEN, unknown to ESUS)", "tok");
                cmd.env("ESUS_TOKEN", &c.value);
                canaries.push(c);
            }
            Mode::BadTokenFile => {
                let c = Canary::spicy("operator token (--token-file, unknown to ESUS)", "tok");
                let path = input_dir.join("token");
                std::fs::write(&path, &c.value).expect("token file");
                hay.inputs.push(path.clone());
                cmd.arg("--token-file").arg(&path);
                canaries.push(c);
            }
            Mode::BadRefresh => {
                let t = Canary::spicy("operator token (ESUS_TOKEN, unknown to ESUS)", "tok");
                let rt =
                    Canary::spicy("operator refresh token (ESUS_REFRESH_TOKEN, unknown)", "rt");
                cmd.env("ESUS_TOKEN", &t.value)
                    .env("ESUS_REFRESH_TOKEN", &rt.value);
                canaries.push(t);
                canaries.push(rt);
            }
            Mode::BadTokenSpace => {
                let mut c =
                    Canary::spicy("operator token with a space (ESUS_TOKEN, refused)", "tok");
                c.value = format!("{} z", c.value);
                cmd.env("ESUS_TOKEN", &c.value);
                canaries.push(c);
            }
            Mode::BadPassword => {
                let c = Canary::spicy("login password (ESUS_PASSWORD, wrong)", "pw");
                cmd.args(["--login", &r.admin_email])
                    .env("ESUS_PASSWORD", &c.value);
                canaries.push(c);
            }
            Mode::BadMfa => {
                let c = Canary::spicy("MFA code (ESUS_MFA_CODE, wrong)", "mfa");
                cmd.args(["--login", &ctx.scenario.mfa_email])
                    .env("ESUS_PASSWORD", &ctx.scenario.mfa_password)
                    .env("ESUS_MFA_CODE", &c.value);
                canaries.push(c);
            }
            _ => {
                cmd.env("ESUS_TOKEN", &admin);
            }
        }
        if mode == Mode::LiveMfa {
            // Computed last, so it is valid when the run sends it (±30 s).
            let code = ctx.scenario.mfa_code(sim);
            cmd.env("ESUS_MFA_CODE", &code);
            canaries.push(Canary::known("MFA code (ESUS_MFA_CODE)", code));
        }
    }

    let mut problems = Vec::new();
    let mut proc_findings = Vec::new();
    let out = if mode == Mode::Interrupted {
        let (out, mid_run) = interrupt_mid_run(cmd, sim).await;
        if !mid_run {
            problems.push(format!(
                "[{label}] SIGINT was not sent while a request after the preflight was in flight"
            ));
        }
        out
    } else if mode.held() {
        let (out, seen) = observe_mid_run(cmd, sim, mode.held_route(rb), &canaries).await;
        if !seen.held {
            problems.push(format!(
                "[{label}] never saw a request to {} held open",
                mode.held_route(rb)
            ));
        }
        proc_findings.extend(seen.findings.into_iter().map(|f| format!("[{label}] {f}")));
        out
    } else {
        capture(cmd).await
    };
    let code = out.status.code().unwrap_or(-1);
    if !mode.expected().contains(&code) {
        problems.push(format!(
            "[{label}] exit {code}, expected one of {:?}\nstdout:\n{}\nstderr:\n{}",
            mode.expected(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if mode == Mode::BadTokenSpace
        && !String::from_utf8_lossy(&out.stderr).contains("the token contains a line break, space")
    {
        problems.push(format!(
            "[{label}] the token with a space was not refused for it:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if mode.json_output()
        && serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map_or(true, |doc| !doc.is_object())
    {
        problems.push(format!(
            "[{label}] --output json did not write one JSON document on stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    if let Some(fault) = mode.fault_fired() {
        let seen = sim.requests_since(first_seq);
        let preflight_ok = seen.first().is_some_and(|q| {
            q.method == "GET"
                && q.path == "/auth/me"
                && q.status == Some(200)
                && q.faults.is_empty()
        });
        let hit = seen
            .iter()
            .skip(1)
            .any(|q| q.faults.iter().any(|f| f == fault));
        if !preflight_ok || !hit {
            problems.push(format!(
                "[{label}] not a mid-run failure: the preflight passed {preflight_ok}, a `{fault}` fault hit a later request {hit}: {:?}",
                seen.iter()
                    .map(|q| format!("{} {} {:?} {:?}", q.method, q.path, q.status, q.faults))
                    .collect::<Vec<_>>()
            ));
        }
    }
    hay.output("esus-ir", &out);
    let transcript = run_dir.join("transcript.jsonl");
    let post = post_process(&home, &transcript, &mut hay).await;
    let urls: String = sim
        .requests_since(first_seq)
        .iter()
        .map(|q| {
            format!(
                "{} {}?{}\n",
                q.method,
                q.path,
                q.query.as_deref().unwrap_or_default()
            )
        })
        .collect();
    hay.streams
        .push(("the URLs ESUS received".into(), urls.into_bytes()));
    if mode == Mode::LiveTls && home.join("sslkeylog.txt").exists() {
        problems.push(format!(
            "[{label}] SSLKEYLOGFILE was honoured: TLS session keys were written to disk"
        ));
    }
    drop(own);
    let mut tally = tokio::task::spawn_blocking(move || {
        let t = search_case(&label, &home, canaries, &hay);
        drop(dir);
        t
    })
    .await
    .expect("search");
    tally.post = post;
    tally.problems.extend(problems);
    tally.findings.extend(proc_findings);
    tally.exits.push((format!("{mode:?}"), code));
    tally
}

/// What /proc showed while a request was held open.
#[derive(Default)]
struct ProcSeen {
    /// A request to the route was seen in flight (and /proc read then).
    held: bool,
    /// Canaries in esus-ir's command line, or in the command line or environment of a child.
    findings: Vec<String>,
}

/// The processes whose parent is `pid` (from /proc/*/stat).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.split(' ').nth(1).map(str::to_string))
                })
                .is_some_and(|ppid| ppid == pid.to_string())
        })
        .collect()
}

fn canaries_in(what: &str, bytes: &[u8], canaries: &[Canary]) -> Vec<String> {
    let search = crate::canary_support::Search::new(canaries);
    search.hits(what, bytes)
}

/// Runs esus-ir until it ends; while a request to `route` is held open by the simulator, reads
/// its /proc command line, and throughout the run looks for child processes (their command line
/// and environment must hold no canary).
async fn observe_mid_run(
    mut cmd: std::process::Command,
    sim: &SimHandle,
    route: &str,
    canaries: &[Canary],
) -> (std::process::Output, ProcSeen) {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null());
    let (method, path) = route.split_once(' ').expect("METHOD PATH");
    let pattern = regex::Regex::new(&format!(
        "^{}$",
        regex::escape(path).replace(r"\{id\}", "[^/]+")
    ))
    .expect("route pattern");
    let child = cmd.spawn().expect("spawn esus-ir");
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"));
    let mut seen = ProcSeen::default();
    let mut children = std::collections::BTreeSet::new();
    // Bounded: a minute at most.
    for _ in 0..3000 {
        if waiting.is_finished() {
            break;
        }
        if !seen.held
            && sim
                .requests()
                .iter()
                .any(|q| q.method == method && pattern.is_match(&q.path) && q.status.is_none())
        {
            seen.held = true;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            seen.findings.extend(canaries_in(
                "esus-ir's command line (/proc/PID/cmdline)",
                &cmdline,
                canaries,
            ));
        }
        for c in children_of(pid) {
            if children.insert(c) {
                let cmdline = std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default();
                let environ = std::fs::read(format!("/proc/{c}/environ")).unwrap_or_default();
                seen.findings.extend(canaries_in(
                    &format!("the command line of child process {c}"),
                    &cmdline,
                    canaries,
                ));
                seen.findings.extend(canaries_in(
                    &format!("the environment of child process {c}"),
                    &environ,
                    canaries,
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = match tokio::time::timeout(Duration::from_secs(60), waiting).await {
        Ok(out) => out.expect("join"),
        Err(_) => panic!("esus-ir did not finish"),
    };
    if !children.is_empty() {
        println!("esus-ir spawned child processes {children:?} (their environment was searched)");
    }
    (out, seen)
}

/// Starts the run, waits until ESUS has received a request after the preflight's
/// `GET /auth/me` (held in flight by the mode's latency), sends SIGINT with /bin/kill and
/// collects the output (bounded: SIGKILL after a minute). Also says whether such a request was
/// in flight when SIGINT was sent.
async fn interrupt_mid_run(
    mut cmd: std::process::Command,
    sim: &SimHandle,
) -> (std::process::Output, bool) {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null());
    let since = sim.requests().last().map_or(0, |q| q.seq);
    let child = cmd.spawn().expect("spawn esus-ir");
    let pid = child.id().to_string();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"));
    let mut mid_run = false;
    for _ in 0..1000 {
        mid_run = sim
            .requests_since(since)
            .iter()
            .skip(1)
            .any(|q| q.status.is_none());
        if mid_run || waiting.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kill = if Path::new("/bin/kill").exists() {
        "/bin/kill"
    } else {
        "kill"
    };
    let sent = std::process::Command::new(kill)
        .args(["-INT", &pid])
        .status()
        .expect("/bin/kill (procps) is installed");
    assert!(sent.success(), "kill -INT {pid}");
    match tokio::time::timeout(Duration::from_secs(60), waiting).await {
        Ok(out) => (out.expect("join"), mid_run),
        Err(_) => {
            let _ = std::process::Command::new(kill)
                .args(["-KILL", &pid])
                .status();
            panic!("esus-ir did not stop within a minute of SIGINT");
        }
    }
}

fn report(what: &str, tally: &Tally) {
    println!("{}", tally.summary(what));
    println!("{what}: {}", tally.exits_by_mode());
    assert!(
        tally.problems.is_empty(),
        "{} cases did not end as expected:\n{}",
        tally.problems.len(),
        tally.problems.join("\n\n")
    );
    assert!(
        tally.findings.is_empty(),
        "{} LEAKS:\n{}",
        tally.findings.len(),
        tally.findings.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_no_secret_leaks_from_any_runbook_in_any_mode() {
    let ctx = Ctx::new().await;
    let cases: Vec<(Mode, Rb)> = MODES
        .iter()
        .flat_map(|m| {
            ctx.runbooks
                .iter()
                .filter(|rb| m.applies(rb))
                .map(|rb| (*m, rb.clone()))
        })
        .collect();
    let ctx = &ctx;
    let tallies: Vec<Tally> = futures::stream::iter(cases)
        .map(|(mode, rb)| async move { run_case(ctx, mode, &rb).await })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut total = Tally::default();
    for t in tallies {
        total.add(t);
    }
    report(
        &format!(
            "canary (runs, {} modes × {} runbooks)",
            MODES.len(),
            ctx.runbooks.len()
        ),
        &total,
    );
}

/// The terminal modes: answered prompts in a pseudo-terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PtyMode {
    /// "n" at the first confirmation.
    Declined,
    /// Ctrl-C at the first confirmation.
    CtrlC,
    /// No ESUS_TOKEN: the token typed at the hidden prompt (`--yes`).
    TokenPrompt,
    /// `--login` of the MFA admin: password and MFA code typed at hidden prompts (`--yes`).
    LoginPrompts,
    /// No ESUS_TOKEN: Ctrl-C at the first hidden prompt (the token, or a required secret
    /// input): 130, nothing sent to ESUS, no transcript begun.
    CtrlCHidden,
}

const PTY_MODES: &[PtyMode] = &[
    PtyMode::Declined,
    PtyMode::CtrlC,
    PtyMode::TokenPrompt,
    PtyMode::LoginPrompts,
    PtyMode::CtrlCHidden,
];

async fn run_pty_case(ctx: &Ctx, mode: PtyMode, rb: &Rb) -> Tally {
    let label = format!("pty {mode:?} × {}", rb.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().to_path_buf();
    let run_dir = home.join("run");
    let mut hay = Haystacks {
        run_dirs: vec![run_dir.clone()],
        ..Haystacks::default()
    };
    let sim = start(&ctx.scenario, SimConfig::default()).await;
    seed_subscription(&sim, &ctx.seeded_hook).await;
    let r = sim.ready();
    let mut canaries = ctx.scenario.canaries.clone();
    canaries.extend(sim_canaries(&sim));
    canaries.push(ctx.seeded_hook.clone());
    let secrets: Vec<(String, Canary)> = rb
        .secrets
        .iter()
        .map(|(n, _, _)| (n.clone(), secret_value(n, &sim, true)))
        .collect();
    canaries.extend(secrets.iter().map(|(_, c)| c.clone()));
    let mut cmd = esus_ir(&home);
    cmd.arg("run")
        .arg(&rb.arg)
        .args([
            "--base-url",
            &sim.base_url(),
            "--operator",
            "oncall@example.org",
        ])
        .arg("--run-dir")
        .arg(&run_dir);
    for i in &rb.inputs {
        cmd.args(["--input", i]);
    }
    // Required secrets are typed at their hidden prompt; the others come from the environment.
    let typed: Vec<(String, Canary)> = secrets
        .iter()
        .filter(|(n, _)| rb.secrets.iter().any(|(m, _, req)| m == n && *req))
        .cloned()
        .collect();
    let from_env: Vec<(String, Canary)> = secrets
        .iter()
        .filter(|(n, _)| !typed.iter().any(|(m, _)| m == n))
        .cloned()
        .collect();
    give_secrets(&mut cmd, rb, &from_env, Via::OwnEnv, &home, &mut hay);
    let admin = r.admin_token.expose_secret().to_string();
    match mode {
        PtyMode::Declined | PtyMode::CtrlC => {
            cmd.env("ESUS_TOKEN", &admin);
        }
        PtyMode::TokenPrompt | PtyMode::CtrlCHidden => {
            cmd.arg("--yes");
        }
        PtyMode::LoginPrompts => {
            cmd.args(["--yes", "--login", &ctx.scenario.mfa_email]);
        }
    }
    let mfa_secret = ctx.scenario.mfa_secret.clone();
    let mfa_password = ctx.scenario.mfa_password.clone();
    let mfa_code = esus_ir::sim::totp_code(mfa_secret.as_bytes(), sim.now());
    if mode == PtyMode::LoginPrompts {
        canaries.push(Canary::known("MFA code (typed)", mfa_code.clone()));
    }
    let before = sim.requests().last().map_or(0, |q| q.seq);
    let (screen, code, met) = tokio::task::spawn_blocking(move || {
        let mut confirmed = false;
        in_pty(cmd, |p| match p {
            _ if mode == PtyMode::CtrlCHidden && !matches!(p, Prompt::Confirm | Prompt::Typed) => {
                Answer::CtrlC
            }
            Prompt::Confirm | Prompt::Typed => {
                let first = !confirmed;
                confirmed = true;
                match (mode, first) {
                    (PtyMode::CtrlC, true) => Answer::CtrlC,
                    (PtyMode::Declined, _) => Answer::Keys(if *p == Prompt::Typed {
                        "no".into()
                    } else {
                        "n".into()
                    }),
                    _ => Answer::Keys("y".into()),
                }
            }
            Prompt::Token => Answer::Keys(admin.clone()),
            Prompt::Password => Answer::Keys(mfa_password.clone()),
            Prompt::Mfa => Answer::Keys(mfa_code.clone()),
            Prompt::Secret(name) => Answer::Keys(
                typed
                    .iter()
                    // The terminal may glue a cursor movement (`ESC[1A`) to the name.
                    .find(|(n, _)| name.ends_with(n.as_str()))
                    .map(|(_, c)| c.value.clone())
                    .unwrap_or_else(|| panic!("an unexpected secret prompt for {name}")),
            ),
        })
    })
    .await
    .expect("pty");
    let mut problems = Vec::new();
    let expected: &[i32] = match mode {
        PtyMode::Declined => &[3],
        PtyMode::CtrlC | PtyMode::CtrlCHidden => &[130],
        PtyMode::TokenPrompt | PtyMode::LoginPrompts => &[0],
    };
    if !expected.contains(&code) {
        problems.push(format!(
            "[{label}] exit {code}, expected {expected:?}; prompts {met:?}\nterminal:\n{}",
            String::from_utf8_lossy(&screen)
        ));
    }
    let want_prompt = match mode {
        PtyMode::Declined | PtyMode::CtrlC => Prompt::Confirm,
        PtyMode::TokenPrompt => Prompt::Token,
        PtyMode::LoginPrompts => Prompt::Mfa,
        PtyMode::CtrlCHidden => Prompt::Token,
    };
    let met_it = met.contains(&want_prompt)
        || (want_prompt == Prompt::Confirm && met.contains(&Prompt::Typed))
        || (mode == PtyMode::CtrlCHidden && matches!(met.first(), Some(Prompt::Secret(_))));
    if !met_it {
        problems.push(format!(
            "[{label}] never met a {want_prompt:?} prompt (met {met:?})\nterminal:\n{}",
            String::from_utf8_lossy(&screen)
        ));
    }
    if mode == PtyMode::CtrlCHidden {
        let sent = sim.requests_since(before);
        if !sent.is_empty() || run_dir.join("transcript.jsonl").exists() {
            problems.push(format!(
                "[{label}] Ctrl-C at a hidden prompt: ESUS received {:?}, transcript begun {}",
                sent.iter()
                    .map(|q| format!("{} {}", q.method, q.path))
                    .collect::<Vec<_>>(),
                run_dir.join("transcript.jsonl").exists()
            ));
        }
        if met.len() != 1 {
            problems.push(format!(
                "[{label}] Ctrl-C at the first hidden prompt should end the run there; prompts met {met:?}"
            ));
        }
    }
    hay.streams.push(("the terminal".into(), screen));
    let post = post_process(&home, &run_dir.join("transcript.jsonl"), &mut hay).await;
    let urls: String = sim
        .requests()
        .iter()
        .map(|q| {
            format!(
                "{} {}?{}\n",
                q.method,
                q.path,
                q.query.as_deref().unwrap_or_default()
            )
        })
        .collect();
    hay.streams
        .push(("the URLs ESUS received".into(), urls.into_bytes()));
    drop(sim);
    let mut tally = tokio::task::spawn_blocking(move || {
        let t = search_case(&label, &home, canaries, &hay);
        drop(dir);
        t
    })
    .await
    .expect("search");
    tally.post = post;
    tally.problems.extend(problems);
    tally.exits.push((format!("pty {mode:?}"), code));
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_no_secret_leaks_at_a_terminal() {
    let ctx = Ctx::new().await;
    let cases: Vec<(PtyMode, Rb)> = PTY_MODES
        .iter()
        .flat_map(|m| {
            ctx.runbooks
                .iter()
                .filter(|rb| rb.prompts || !matches!(m, PtyMode::Declined | PtyMode::CtrlC))
                .map(|rb| (*m, rb.clone()))
        })
        .collect();
    let ctx = &ctx;
    let tallies: Vec<Tally> = futures::stream::iter(cases)
        .map(|(mode, rb)| async move { run_pty_case(ctx, mode, &rb).await })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut total = Tally::default();
    for t in tallies {
        total.add(t);
    }
    report(
        &format!(
            "canary (terminal, {} modes × {} runbooks)",
            PTY_MODES.len(),
            ctx.runbooks.len()
        ),
        &total,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_tokens_stay_out_of_argv_and_child_environments() {
    let ctx = Ctx::new().await;
    let cases: Vec<(Mode, Rb)> = HELD_MODES
        .iter()
        .flat_map(|m| ctx.runbooks.iter().map(|rb| (*m, rb.clone())))
        .collect();
    let ctx = &ctx;
    let tallies: Vec<Tally> = futures::stream::iter(cases)
        .map(|(mode, rb)| async move { run_case(ctx, mode, &rb).await })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut total = Tally::default();
    for t in tallies {
        total.add(t);
    }
    report(
        &format!(
            "canary (held requests, /proc, {} modes × {} runbooks)",
            HELD_MODES.len(),
            ctx.runbooks.len()
        ),
        &total,
    );
}

/// The positive control: a canary planted where it is allowed to appear (a non-secret input) is
/// found by the same search in stdout, stderr, the transcript, both reports and the URLs — so
/// zero hits elsewhere means something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_search_finds_a_planted_value_everywhere_it_is_written() {
    let ctx = Ctx::new().await;
    let planted = Canary::plain("planted (a non-secret input)", "planted");
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().to_path_buf();
    let run_dir = home.join("run");
    let mut cmd = esus_ir(&home);
    cmd.args(["run", "access-review", "--base-url", &ctx.shared.base_url()])
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--yes", "--non-interactive", "-i"])
        .arg(format!("weak_name_pattern=^{}$", planted.value))
        .env("ESUS_TOKEN", ctx.shared.ready().admin_token.expose_secret());
    let out = capture(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut hay = Haystacks {
        run_dirs: vec![run_dir.clone()],
        ..Haystacks::default()
    };
    hay.output("esus-ir", &out);
    post_process(&home, &run_dir.join("transcript.jsonl"), &mut hay).await;
    let tally = search_case("planted", &home, vec![planted], &hay);
    let all = tally.findings.join("\n");
    for place in [
        "run/transcript.jsonl at",
        "run/transcript.report.html at",
        "report (markdown) stdout",
    ] {
        assert!(
            all.contains(place),
            "the planted canary was not found in {place}:\n{all}"
        );
    }
}
