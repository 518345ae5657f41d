//! Simulator contract: FHIR Subscription CRUD and rest-hook delivery of AuditEvents to a
//! loopback receiver started by the test.

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::sim_support::{Cred, Sim};

const ERIN: (&str, &str) = ("erin.er@riverside.example", "erin-drill-password");
const PAT: (&str, &str) = ("pat.practitioner@riverside.example", "pat-drill-password");

/// A loopback receiver that forwards each delivered body to a channel.
async fn receiver() -> (String, mpsc::Receiver<Value>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let app = Router::new().route(
        "/security-alerts",
        post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx
                    .send(serde_json::from_str(&body).unwrap_or(Value::Null))
                    .await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/security-alerts"), rx, task)
}

/// The delivery log once it holds at least `n` entries (bounded wait: the worker records an
/// attempt after the receiver has answered).
async fn delivered(s: &Sim, n: usize) -> Vec<esus_ir::sim::Delivery> {
    for _ in 0..500 {
        let d = s.sim.deliveries();
        if d.len() >= n {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.sim.deliveries()
}

#[tokio::test]
async fn rest_hook_subscriptions_deliver_matching_audit_events() {
    let s = Sim::start().await;
    let admin = s.admin();
    let (endpoint, mut rx, task) = receiver().await;
    let sub = json!({
        "resourceType": "Subscription", "status": "active", "criteria": "AuditEvent?outcome=failure",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                    "header": ["X-Drill: yes"]},
    });
    let created = s
        .call(
            "POST",
            "/fhir/Subscription",
            Cred::Bearer(&admin),
            Some(sub),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.headers.contains_key("location"));
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(created.body["meta"]["versionId"], "1");

    assert_eq!(
        s.call("GET", "/auth/me", Cred::Bearer(&admin), None)
            .await
            .status,
        200
    );
    assert_eq!(
        s.call("GET", "/auth/me", Cred::Bearer("stolen"), None)
            .await
            .status,
        401
    );
    let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within the bound")
        .expect("an event");
    assert_eq!(event["resourceType"], "AuditEvent");
    assert_eq!(event["outcome"], "4", "a failure");
    assert_eq!(event["type"]["code"], "auth.me");
    let deliveries = delivered(&s, 1).await;
    assert_eq!(
        deliveries.len(),
        1,
        "the successful request was not delivered: {deliveries:?}"
    );
    assert_eq!(deliveries[0].status, Some(200));

    let list = s
        .call("GET", "/fhir/Subscription", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(list.body["total"], 1);
    let mut off = s
        .call(
            "GET",
            &format!("/fhir/Subscription/{id}"),
            Cred::Bearer(&admin),
            None,
        )
        .await
        .body;
    off["status"] = json!("off");
    let upd = s
        .call(
            "PUT",
            &format!("/fhir/Subscription/{id}"),
            Cred::Bearer(&admin),
            Some(off),
        )
        .await;
    assert_eq!(
        (upd.status, upd.body["meta"]["versionId"].clone()),
        (200, json!("2"))
    );
    let del = s
        .call(
            "DELETE",
            &format!("/fhir/Subscription/{id}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(
        s.call(
            "GET",
            &format!("/fhir/Subscription/{id}"),
            Cred::Bearer(&admin),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/fhir/Subscription/{id}"),
            Cred::Bearer(&admin),
            None
        )
        .await
        .status,
        404
    );
    task.abort();
}

#[tokio::test]
async fn override_subscriptions_and_non_loopback_endpoints() {
    let s = Sim::start().await;
    let admin = s.admin();
    let (endpoint, mut rx, task) = receiver().await;
    let subscribe = |criteria: &str, endpoint: &str| {
        json!({"resourceType": "Subscription", "criteria": criteria,
               "channel": {"type": "rest-hook", "endpoint": endpoint}})
    };
    let local = s
        .call(
            "POST",
            "/fhir/Subscription",
            Cred::Bearer(&admin),
            Some(subscribe("AuditEvent?emergency-override=true", &endpoint)),
        )
        .await;
    assert_eq!(local.status, 201);
    assert_eq!(local.body["status"], "active");
    // The checklist's own example endpoint is accepted but never called.
    let remote = s
        .call(
            "POST",
            "/fhir/Subscription",
            Cred::Bearer(&admin),
            Some(subscribe(
                "AuditEvent?outcome=success",
                "https://your-app.com/security-alerts",
            )),
        )
        .await;
    assert_eq!(remote.status, 201);
    let erin = s.login(ERIN.0, ERIN.1).await;
    let a = s
        .call_with(
            "GET",
            "/fhir/Patient/p-0003",
            Cred::Bearer(&erin),
            None,
            &[("X-Emergency-Override", "true")],
        )
        .await;
    assert_eq!(a.status, 200);
    let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("delivered")
        .expect("event");
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "ETREAT");
    delivered(&s, 2).await;
    let skipped = s
        .sim
        .deliveries()
        .into_iter()
        .filter(|d| d.endpoint.starts_with("https://your-app.com"))
        .count();
    assert!(skipped >= 1);
    assert!(
        s.sim
            .deliveries()
            .iter()
            .filter(|d| d.endpoint.starts_with("https://"))
            .all(|d| d
                .error
                .as_deref()
                .unwrap_or_default()
                .starts_with("not loopback"))
    );
    task.abort();
}

#[tokio::test]
async fn subscription_validation() {
    let s = Sim::start().await;
    let admin = s.admin();
    let cases = [
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Subscription", "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:1/x"}}),
        json!({"resourceType": "Subscription", "criteria": "AuditEvent?outcome=maybe", "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:1/x"}}),
        json!({"resourceType": "Subscription", "criteria": "AuditEvent", "channel": {"type": "pigeon"}}),
        json!({"resourceType": "Subscription", "criteria": "AuditEvent", "channel": {"type": "rest-hook"}}),
    ];
    for body in cases {
        let a = s
            .call(
                "POST",
                "/fhir/Subscription",
                Cred::Bearer(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!((a.status, a.issue_code()), (400, "invalid"), "{body}");
    }
    let pat = s.login(PAT.0, PAT.1).await;
    let denied = s
        .call("GET", "/fhir/Subscription", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(denied.status, 403);
}
