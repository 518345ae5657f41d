//! The bundled `security-monitoring` runbook: the two alert Subscriptions exist afterwards, a second
//! run creates nothing, only missing ones are created, and the alerts really fire.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::run_support::{Env, verify};
use crate::runbooks_support::{
    Api, admin_token, dry_run_sends_nothing, run_ok, run_ok_in, step, strings,
};

const FAILURE: &str = "AuditEvent?outcome=failure";
const OVERRIDE: &str = "AuditEvent?emergency-override=true";

/// A loopback URL nothing listens on: deliveries to it are attempted (and refused) at once.
fn closed_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}/security-alerts")
}

/// The Subscriptions ESUS holds, as resources.
async fn subscriptions(env: &Env) -> Vec<Value> {
    let bundle = Api::new(env).admin_get(env, "/fhir/Subscription").await;
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

fn posts(env: &Env) -> usize {
    env.sim
        .requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path == "/fhir/Subscription")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_security_monitoring_creates_both_alerts_once_and_they_fire() {
    let env = Env::start().await;
    let endpoint = closed_endpoint();
    let input = format!("endpoint={endpoint}");
    let first = run_ok(&env, "security-monitoring", &["--input", &input], &[]).await;
    let subs = subscriptions(&env).await;
    assert_eq!(subs.len(), 2, "{subs:#?}");
    let mut criteria: Vec<&str> = subs.iter().filter_map(|s| s["criteria"].as_str()).collect();
    criteria.sort_unstable();
    assert_eq!(criteria, [OVERRIDE, FAILURE]);
    for s in &subs {
        assert_eq!(s["status"], "active");
        assert_eq!(s["channel"]["type"], "rest-hook");
        assert_eq!(s["channel"]["endpoint"], endpoint.as_str());
    }
    assert_eq!(posts(&env), 2);
    let failure_id = step(&first, "failed_access")["outputs"]["id"].clone();
    let override_id = step(&first, "emergency_override")["outputs"]["id"].clone();

    // Idempotent: a second run lists, finds both, and creates nothing.
    let again = env.dir.path().join("run2");
    let second = run_ok_in(
        &env,
        &again,
        "security-monitoring",
        &["--input", &input],
        &[],
    )
    .await;
    assert_eq!(posts(&env), 2, "the second run created nothing");
    assert_eq!(subscriptions(&env).await.len(), 2);
    assert_eq!(step(&second, "failed_access")["status"], "skipped");
    assert_eq!(step(&second, "emergency_override")["status"], "skipped");
    assert_eq!(
        strings(&step(&second, "existing")["outputs"]["failure_ids"]),
        [failure_id.as_str().expect("id")]
    );
    let (code, said) = verify(&env, &again.join("transcript.jsonl"));
    assert_eq!(code, 0, "{said}");

    // The alerts fire: a refused token, then an emergency override by someone not entitled to it.
    let api = Api::new(&env);
    let (status, _) = api
        .call("GET", "/auth/me", Some("not-a-token"), None, None)
        .await;
    assert_eq!(status, 401);
    let admin = admin_token(&env);
    let (status, _) = api
        .call_with(
            "GET",
            "/fhir/Patient/p-0002",
            Some(&admin),
            None,
            None,
            &[("X-Emergency-Override", "true")],
        )
        .await;
    assert_eq!(status, 403);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = env.sim.deliveries();
        let to = |id: &Value| {
            d.iter()
                .any(|x| Some(x.subscription_id.as_str()) == id.as_str())
        };
        if to(&failure_id) && to(&override_id) {
            assert!(d.iter().all(|x| x.endpoint == endpoint));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery for both alerts: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_security_monitoring_creates_only_what_is_missing() {
    let env = Env::start().await;
    let endpoint = closed_endpoint();
    let api = Api::new(&env);
    let admin = admin_token(&env);
    let sub = |criteria: &str, endpoint: &str, status: &str| {
        json!({"resourceType": "Subscription", "status": status, "criteria": criteria,
               "channel": {"type": "rest-hook", "endpoint": endpoint}})
    };
    // Already in place: the failure alert. Not counting: an override alert to another endpoint,
    // and one to ours that is switched off.
    let mut pre = Vec::new();
    for body in [
        sub(FAILURE, &endpoint, "active"),
        sub(OVERRIDE, "http://127.0.0.1:9/elsewhere", "active"),
        sub(OVERRIDE, &endpoint, "off"),
    ] {
        let (status, created) = api
            .call("POST", "/fhir/Subscription", Some(&admin), None, Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        pre.push(created["id"].as_str().expect("id").to_string());
    }
    let before = posts(&env);
    let input = format!("endpoint={endpoint}");
    let report = run_ok(&env, "security-monitoring", &["--input", &input], &[]).await;
    assert_eq!(
        posts(&env),
        before + 1,
        "only the override alert was created"
    );
    assert_eq!(step(&report, "failed_access")["status"], "skipped");
    assert_eq!(step(&report, "emergency_override")["status"], "ok");
    assert_eq!(
        strings(&step(&report, "existing")["outputs"]["failure_ids"]),
        [pre[0].clone()]
    );
    let active_ours: Vec<String> = subscriptions(&env)
        .await
        .iter()
        .filter(|s| s["status"] == "active" && s["channel"]["endpoint"] == endpoint.as_str())
        .filter_map(|s| s["criteria"].as_str().map(str::to_string))
        .collect();
    assert_eq!(active_ours.len(), 2, "{active_ours:?}");
    assert!(active_ours.contains(&OVERRIDE.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_security_monitoring_dry_run_sends_nothing() {
    let env = Env::start().await;
    let shown = dry_run_sends_nothing(
        &env,
        "security-monitoring",
        &["--input", "endpoint=https://alerts.example.org/esus"],
        &[],
    )
    .await;
    for needle in [
        "GET ",
        "/fhir/Subscription",
        "POST ",
        FAILURE,
        OVERRIDE,
        "https://alerts.example.org/esus",
    ] {
        assert!(shown.contains(needle), "`{needle}` not in:\n{shown}");
    }
}
