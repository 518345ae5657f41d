//! Helpers for the bundled-runbook tests: run a bundled runbook against the in-process simulator
//! (through [`Env`]), read its JSON report, and look at ESUS's state with a plain HTTP client.

use std::path::Path;
use std::process::Output;

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

/// The built-in scenario, for tests that extend it.
pub(crate) const DEFAULT_SCENARIO: &str = include_str!("../../src/sim/default_scenario.yaml");

/// Runs `runbook` live, unattended (`--yes --non-interactive --output json`), with extra args;
/// expects exit 0 and returns the JSON report.
pub(crate) async fn run_ok(
    env: &Env,
    runbook: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Value {
    run_ok_in(env, &env.run_dir(), runbook, args, envs).await
}

/// Like [`run_ok`], with another run folder (for a second run against the same simulator).
pub(crate) async fn run_ok_in(
    env: &Env,
    run_dir: &Path,
    runbook: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Value {
    let out = run_in(env, run_dir, runbook, args, envs, true).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["outcome"], "success", "{report:#}");
    report
}

/// Runs `runbook` with extra args; `live` adds `--yes --non-interactive --output json`.
pub(crate) async fn run(
    env: &Env,
    runbook: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    live: bool,
) -> Output {
    run_in(env, &env.run_dir(), runbook, args, envs, live).await
}

pub(crate) async fn run_in(
    env: &Env,
    run_dir: &Path,
    runbook: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    live: bool,
) -> Output {
    let mut cmd = env.run_cmd_at(runbook, run_dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(args);
    if live {
        cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    }
    output(cmd).await
}

/// An offline dry-run of `runbook`: exits 0, sends nothing, and returns what it printed.
pub(crate) async fn dry_run_sends_nothing(
    env: &Env,
    runbook: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> String {
    let mut all = args.to_vec();
    all.extend(["--dry-run", "--offline"]);
    let out = run(env, runbook, &all, envs, false).await;
    assert_code(&out, 0);
    assert!(
        env.sim.requests().is_empty(),
        "dry-run sent {:?}",
        env.sim.requests()
    );
    assert!(!env.transcript().exists(), "a dry-run writes no leg");
    let dry = env.run_dir().join("dry-run.jsonl");
    let (code, said) = crate::run_support::verify(env, &dry);
    assert_eq!(code, 0, "{said}");
    text(&out.stdout)
}

/// A step of a report, by id.
pub(crate) fn step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("step {id} in {report:#}"))
}

/// A list output of a step as strings.
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
        .collect()
}

/// The JSON evidence file a step saved (its first one).
pub(crate) fn evidence(env: &Env, step: &Value) -> Value {
    let file = env.run_dir().join("evidence").join(
        step["evidence"][0]["file"]
            .as_str()
            .unwrap_or_else(|| panic!("evidence of {step:#}")),
    );
    serde_json::from_slice(&std::fs::read(&file).expect("evidence")).expect("json evidence")
}

/// Asserts that a paged evidence file holds each row once and proves itself complete.
pub(crate) fn assert_complete_rows(saved: &Value) {
    let rows = saved["rows"].as_array().expect("rows");
    let ids: std::collections::HashSet<&str> =
        rows.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "each row once");
    assert_eq!(Some(rows.len() as u64), saved["distinct"].as_u64());
    assert_eq!(saved["complete"], true, "proven complete");
    assert!(!rows.is_empty());
}

/// Requests to ESUS made by the test itself (its own reading of the API).
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(env: &Env) -> Api {
        Api {
            base: env.sim.base_url(),
            http: crate::sim_support::client(),
        }
    }

    /// Sends a request with a bearer token, an API key (`clientId:secret`) or nothing, and
    /// returns the status and the JSON body (Null when empty).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        api_key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, bearer, api_key, body, &[])
            .await
    }

    /// Like [`Api::call`], with extra headers.
    pub(crate) async fn call_with(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        api_key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(k) = api_key {
            req = req.header("X-API-Key", k);
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        (status, body)
    }

    /// A GET with the scenario admin's token.
    pub(crate) async fn admin_get(&self, env: &Env, path: &str) -> Value {
        let token = env.sim.ready().admin_token.expose_secret().to_string();
        let (status, body) = self.call("GET", path, Some(&token), None, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// The scenario admin's access token.
pub(crate) fn admin_token(env: &Env) -> String {
    env.sim.ready().admin_token.expose_secret().to_string()
}

/// `esus-ir run RUNBOOK ARGS…` as a plain process (for pseudo-terminal tests), with the
/// environment of [`Env::std_cmd`] minus the compromise inputs.
pub(crate) fn std_run(env: &Env, runbook: &str, args: &[&str]) -> std::process::Command {
    // Keep the clean environment and credentials of `std_cmd`, replace the arguments.
    let mut fresh = env.std_env_cmd();
    fresh
        .env_remove("ESUS_COMPROMISED_TOKEN")
        .env_remove("ESUS_LEAKED_KEY_SECRET")
        .args(["run", runbook, "--base-url", &env.sim.base_url()])
        .args(["--operator", "oncall@example.org", "--run-dir"])
        .arg(env.run_dir())
        .args(args);
    fresh
}
