//! The soak: `api-key-compromise` and `session-compromise`, again and again, against a simulator
//! injecting 5xx, 429 (with and without Retry-After), connections cut before ESUS applies a
//! request and dropped after it did, latency, and short token lifetimes. Every run completes or
//! stops resumably; resuming completes it; afterwards ESUS shows exactly one replacement for the
//! leaked key and every compromised credential dead; the audit evidence holds each row exactly
//! once with nothing of its window missing; every transcript verifies. Bounded: a fixed list of
//! fault mixes and seeds, at most four resumes each.

use std::collections::HashSet;
use std::path::Path;

use esus_ir::sim::SimConfig;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, text};
use crate::sim_process::transcripts;

/// The fault mixes, each run with two seeds. Rates are high enough that most runs meet several.
const MIXES: [&[&str]; 7] = [
    &["error_rate=0.15"],
    &["rate_limit=5/s", "retry_after=seconds"],
    &["rate_limit=5/s", "retry_after=none"],
    &["cut_rate=0.12"],
    &["drop_rate=0.12"],
    &["latency=150ms", "token_ttl=1s"],
    &[
        "error_rate=0.05",
        "cut_rate=0.05",
        "drop_rate=0.05",
        "rate_limit=4/s",
        "retry_after=date",
        "latency=5ms",
    ],
];

const MAX_RESUMES: usize = 4;

/// The mix as `SimConfig` faults; a rate limit leaves the operator's own logins alone (a
/// gateway's limit is per client, and the test's own reads must get through).
fn config(mix: &[&str], seed: u64) -> SimConfig {
    let mut c = SimConfig::default().with_seed(seed);
    for f in mix {
        c = c.with_fault(f).expect("fault");
    }
    c
}

/// The operator's tokens: with a short TTL, a fresh pair logged in after the simulator started
/// (the ready token predates the fault), so that it expires mid-run.
struct Operator {
    token: String,
    refresh: String,
    /// Whether the stolen session's tokens are given to the run. A `token_ttl` fault shortens
    /// every token the simulator issues, the scenario's stolen session included: under load it
    /// may die before the incident first presents it, and a refusal ESUS never preceded with an
    /// acceptance proves nothing — correctly "not proven", but not what this mix soaks (the
    /// operator's own token renewed mid-run). The session's own soak is the other runbook's.
    stolen_session: bool,
}

async fn operator(env: &Env, mix: &[&str]) -> Operator {
    let r = env.sim.ready();
    if !mix.iter().any(|f| f.starts_with("token_ttl")) {
        return Operator {
            token: r.admin_token.expose_secret().to_string(),
            refresh: r.admin_refresh_token.expose_secret().to_string(),
            stolen_session: true,
        };
    }
    let login: Value = crate::sim_support::client()
        .post(format!("{}/auth/login", env.sim.base_url()))
        .json(&serde_json::json!({"email": r.admin_email, "password": r.admin_password.expose_secret()}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    Operator {
        token: login["accessToken"].as_str().expect("access").to_string(),
        refresh: login["refreshToken"].as_str().expect("refresh").to_string(),
        stolen_session: false,
    }
}

fn cmd_for(env: &Env, op: &Operator, runbook: &str, resume: bool) -> std::process::Command {
    let r = env.sim.ready();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("NO_COLOR", "1")
        .env("ESUS_TOKEN", &op.token)
        .env("ESUS_REFRESH_TOKEN", &op.refresh)
        .env("ESUS_LEAKED_KEY_SECRET", r.key_secret.expose_secret())
        .env("ESUS_BASE_URL", env.sim.base_url())
        .stdin(std::process::Stdio::null())
        .arg("run");
    if op.stolen_session || runbook != "api-key-compromise" {
        cmd.env("ESUS_COMPROMISED_TOKEN", r.session_token.expose_secret())
            .env(
                "ESUS_COMPROMISED_REFRESH_TOKEN",
                r.session_refresh_token.expose_secret(),
            );
    }
    if resume {
        cmd.arg("--resume").arg(env.run_dir());
    } else {
        cmd.arg(runbook).arg("--run-dir").arg(env.run_dir());
        cmd.args(["--input", &format!("user_id={}", r.user_id)]);
        if runbook == "api-key-compromise" {
            cmd.args(["--input", &format!("key_id={}", r.key_id)]);
        }
    }
    cmd.args(["--yes", "--non-interactive"]);
    cmd
}

/// The faults the simulator says fired, by kind, and how many times the operator's token was
/// renewed (refreshes ESUS saw beyond those the runbook itself sent, which its transcripts list).
fn fired(env: &Env) -> (std::collections::BTreeMap<String, usize>, usize) {
    let mut kinds = std::collections::BTreeMap::new();
    let mut refreshes = 0;
    for q in env.sim.requests() {
        for f in &q.faults {
            *kinds.entry(f.clone()).or_default() += 1;
        }
        refreshes += usize::from(q.method == "POST" && q.path == "/auth/refresh");
    }
    let by_runbook: usize = transcripts(&env.run_dir())
        .iter()
        .map(|t| {
            std::fs::read_to_string(t)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"type\":\"request\"") && l.contains("/auth/refresh\""))
                .count()
        })
        .sum();
    (kinds, refreshes.saturating_sub(by_runbook))
}

/// Each fault of the mix fired at least once over a mix's runs (a short TTL shows as renewals).
fn assert_bit(
    mix: &[&str],
    kinds: &std::collections::BTreeMap<String, usize>,
    renewals: usize,
    ctx: &str,
) {
    // The figures docs/reliability.md quotes (`cargo test --test it -- soak --nocapture`).
    eprintln!("{ctx}: faults fired {kinds:?}, operator token renewals {renewals}");
    for f in mix {
        let kind = match f.split('=').next().unwrap_or_default() {
            "error_rate" => "error",
            "rate_limit" => "rate_limit",
            "cut_rate" => "cut",
            "drop_rate" => "drop",
            "latency" => "latency",
            "token_ttl" => {
                assert!(renewals > 0, "{ctx}: tokens expired and were renewed");
                continue;
            }
            _ => continue,
        };
        assert!(
            kinds.get(kind).is_some_and(|&n| n > 0),
            "{ctx}: `{f}` fired: {kinds:?}"
        );
    }
}

/// Runs, then resumes while the run stops resumably; returns the exit codes met.
fn run_to_the_end(env: &Env, op: &Operator, runbook: &str, ctx: &str) -> Vec<i32> {
    let mut codes = Vec::new();
    let out = cmd_for(env, op, runbook, false).output().expect("run");
    let mut code = out.status.code().unwrap_or(-1);
    let mut last_err = text(&out.stderr);
    codes.push(code);
    for _ in 0..MAX_RESUMES {
        if code == 0 {
            break;
        }
        // Resumable stops: a failed step (1), ESUS unreachable at the preflight (6), or refused
        // credentials (4, a token that expired with its renewal dropped). Anything else (a usage
        // error, a bad transcript) is a bug.
        assert!(
            matches!(code, 1 | 4 | 6),
            "{ctx}: stopped with exit {code}, which is not resumable: {last_err}"
        );
        let fresh = !env.transcript().exists();
        let out = cmd_for(env, op, runbook, !fresh).output().expect("resume");
        code = out.status.code().unwrap_or(-1);
        last_err = text(&out.stderr);
        codes.push(code);
    }
    assert_eq!(code, 0, "{ctx}: resumed to the end ({codes:?}): {last_err}");
    codes
}

/// The audit evidence of the user: each row once, proven complete, every row of ESUS's in its
/// window present.
fn assert_evidence(env: &Env, user: &str, ctx: &str) {
    let evidence = env.run_dir().join("evidence");
    let mut checked = 0;
    for entry in std::fs::read_dir(&evidence).expect("evidence folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !name.starts_with(&format!("audit-user-{user}")) {
            continue;
        }
        let saved: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let rows = saved["rows"].as_array().expect("rows");
        let ids: HashSet<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids.len(), rows.len(), "{ctx}: {name}: each row once");
        if saved["complete"] != true {
            continue;
        }
        let cut: jiff::Timestamp = saved["window"]["to"]
            .as_str()
            .expect("window.to")
            .parse()
            .expect("rfc 3339");
        // The cursor search serves each row under another id than the offset routes do
        // (docs/esus-api.md, assumption 17).
        let searched = rows.iter().any(|r| r.get("recordedAt").is_some());
        let missing: Vec<String> = env
            .sim
            .audit_rows()
            .into_iter()
            .filter(|r| r.agent.user_id.as_deref() == Some(user) && r.recorded <= cut)
            .map(|r| {
                if searched {
                    esus_ir::sim::audit_event_id(&r.id)
                } else {
                    r.id
                }
            })
            .filter(|id| !ids.contains(id.as_str()))
            .collect();
        assert!(missing.is_empty(), "{ctx}: {name} misses {missing:?}");
        checked += 1;
    }
    assert!(checked > 0, "{ctx}: a complete audit pull was saved");
}

/// The status of `GET /auth/me` with a bearer token — ESUS's own answer, read through the
/// faults the simulator still injects (bounded retries past 5xx, 429 and dropped connections).
async fn status_with(env: &Env, token: &str) -> u16 {
    for _ in 0..40 {
        let sent = crate::sim_support::client()
            .get(format!("{}/auth/me", env.sim.base_url()))
            .bearer_auth(token)
            .send()
            .await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(s) if s != 429 && s < 500 => return s,
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("ESUS never answered GET /auth/me past its faults");
}

fn assert_verifies(env: &Env, dir: &Path, ctx: &str) {
    let all = transcripts(dir);
    assert!(!all.is_empty(), "{ctx}: transcripts");
    for t in all {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"))
            .env("XDG_CONFIG_HOME", env.dir.path().join("config"))
            .arg("verify")
            .arg(&t)
            .output()
            .expect("verify");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{ctx}: {} verifies: {}",
            t.display(),
            text(&out.stdout)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_api_key_compromise_under_faults_ends_with_one_replacement_and_the_key_dead() {
    let mut resumed = 0;
    for mix in MIXES {
        let mut kinds = std::collections::BTreeMap::new();
        let mut renewals = 0;
        for seed in [11, 12] {
            let env = Env::with(config(mix, seed)).await;
            let ctx = format!("api-key-compromise {mix:?} seed {seed}");
            let key = env.sim.ready().key_id.clone();
            let name = env.sim.api_key(&key).expect("key").name;
            let op = operator(&env, mix).await;
            let codes = run_to_the_end(&env, &op, "api-key-compromise", &ctx);
            resumed += codes.len() - 1;
            let (k, r) = fired(&env);
            for (kind, n) in k {
                *kinds.entry(kind).or_insert(0) += n;
            }
            renewals += r;
            let live: Vec<String> = env
                .sim
                .api_keys()
                .into_iter()
                .filter(|k| k.name == name && k.id != key && k.usable_now)
                .map(|k| k.id)
                .collect();
            assert_eq!(live.len(), 1, "{ctx}: exactly one replacement: {live:?}");
            assert!(
                !env.sim.api_key(&key).is_some_and(|k| k.usable_now),
                "{ctx}: the leaked key is dead"
            );
            let user = env.sim.ready().user_id.clone();
            // The stolen access token is refused (its session logged out — or, with a short
            // TTL, expired first: either way it no longer works).
            assert_eq!(
                status_with(&env, env.sim.ready().session_token.expose_secret()).await,
                401,
                "{ctx}: the compromised token is refused"
            );
            assert_evidence(&env, &user, &ctx);
            assert_verifies(&env, &env.run_dir(), &ctx);
        }
        assert_bit(
            mix,
            &kinds,
            renewals,
            &format!("api-key-compromise {mix:?}"),
        );
    }
    // Most faults are absorbed inside the run (retries, recovery); the count is reported.
    eprintln!(
        "api-key-compromise soak: {resumed} resumes over {} runs",
        MIXES.len() * 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_session_compromise_under_faults_ends_every_session_of_the_user() {
    let mut resumed = 0;
    for mix in MIXES {
        let mut kinds = std::collections::BTreeMap::new();
        let mut renewals = 0;
        for seed in [21, 22] {
            let env = Env::with(config(mix, seed)).await;
            let ctx = format!("session-compromise {mix:?} seed {seed}");
            let user = env.sim.ready().user_id.clone();
            let op = operator(&env, mix).await;
            resumed += run_to_the_end(&env, &op, "session-compromise", &ctx).len() - 1;
            let (k, r) = fired(&env);
            for (kind, n) in k {
                *kinds.entry(kind).or_insert(0) += n;
            }
            renewals += r;
            let live: Vec<String> = env
                .sim
                .sessions_of(&user)
                .into_iter()
                .filter(|s| !s.revoked)
                .map(|s| s.id)
                .collect();
            assert!(live.is_empty(), "{ctx}: every session ended: {live:?}");
            assert_evidence(&env, &user, &ctx);
            assert_verifies(&env, &env.run_dir(), &ctx);
        }
        assert_bit(
            mix,
            &kinds,
            renewals,
            &format!("session-compromise {mix:?}"),
        );
    }
    eprintln!(
        "session-compromise soak: {resumed} resumes over {} runs",
        MIXES.len() * 2
    );
}
