//! Simulator contract: FHIR — consent gating and the emergency override, Consent search and
//! update, Subscription CRUD and rest-hook delivery to a loopback receiver, SMART discovery,
//! and OperationOutcome for unknown routes.

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::sim_support::{Cred, Sim};

const ERIN: (&str, &str) = ("erin.er@riverside.example", "erin-drill-password");
const PAT: (&str, &str) = ("pat.practitioner@riverside.example", "pat-drill-password");

#[tokio::test]
async fn patient_reads_are_gated_by_an_active_consent() {
    let s = Sim::start().await;
    let pat = s.login(PAT.0, PAT.1).await;
    let ok = s
        .call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["resourceType"], "Patient");
    for stale in ["p-0002", "p-0003", "p-0004"] {
        let a = s
            .call(
                "GET",
                &format!("/fhir/Patient/{stale}"),
                Cred::Bearer(&pat),
                None,
            )
            .await;
        assert_eq!((a.status, a.issue_code()), (403, "forbidden"), "{stale}");
    }
    let missing = s
        .call("GET", "/fhir/Patient/p-9999", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(missing.status, 404);
    let obs = s
        .call(
            "GET",
            "/fhir/Observation?patient=p-0001",
            Cred::Bearer(&pat),
            None,
        )
        .await;
    assert_eq!(
        (obs.status, obs.body["resourceType"].clone()),
        (200, json!("Bundle"))
    );
    let no_patient = s
        .call("GET", "/fhir/Observation", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(no_patient.status, 400);
    let researcher = s
        .login("rae.research@riverside.example", "rae-drill-password")
        .await;
    let denied = s
        .call(
            "GET",
            "/fhir/Patient/p-0001",
            Cred::Bearer(&researcher),
            None,
        )
        .await;
    assert_eq!(denied.status, 403, "researchers lack Patient.read");
}

#[tokio::test]
async fn emergency_override_is_for_responders_and_always_audited() {
    let s = Sim::start().await;
    let erin = s.login(ERIN.0, ERIN.1).await;
    let pat = s.login(PAT.0, PAT.1).await;
    let over = [("X-Emergency-Override", "true")];
    let plain = s
        .call("GET", "/fhir/Patient/p-0002", Cred::Bearer(&erin), None)
        .await;
    assert_eq!(plain.status, 403, "no consent, no override");
    let ok = s
        .call_with(
            "GET",
            "/fhir/Patient/p-0002",
            Cred::Bearer(&erin),
            None,
            &over,
        )
        .await;
    assert_eq!(ok.status, 200);
    let refused = s
        .call_with(
            "GET",
            "/fhir/Patient/p-0002",
            Cred::Bearer(&pat),
            None,
            &over,
        )
        .await;
    assert_eq!(refused.status, 403);
    let key = s.leaked_key();
    let by_key = s
        .call_with("GET", "/fhir/Patient/p-0002", Cred::Key(&key), None, &over)
        .await;
    assert_eq!(by_key.status, 403);

    let admin = s.admin();
    let rows = s
        .call(
            "GET",
            "/admin/audit/patient/p-0002?_count=200",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let marked: Vec<&Value> = rows.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["agent"]["emergencyOverride"] == true)
        .collect();
    assert_eq!(
        marked.len(),
        3,
        "granted and refused overrides are all marked"
    );
    let granted = marked
        .iter()
        .find(|r| r["outcome"] == "success")
        .expect("granted row");
    assert_eq!(granted["agent"]["userId"], "u-1003");
    assert_eq!(granted["agent"]["roles"], json!(["emergency-responder"]));
}

#[tokio::test]
async fn consents_can_be_searched_and_a_stale_one_expired() {
    let s = Sim::start().await;
    let admin = s.admin();
    let all = s
        .call("GET", "/fhir/Consent", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(
        (all.body["resourceType"].clone(), all.body["total"].clone()),
        (json!("Bundle"), json!(4))
    );
    let active = s
        .call(
            "GET",
            "/fhir/Consent?status=active",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(active.body["total"], 3);
    let one = s
        .call(
            "GET",
            "/fhir/Consent?patient=Patient/p-0001",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(one.body["entry"][0]["resource"]["id"], "c-0001");
    let old = s
        .call(
            "GET",
            "/fhir/Consent?date=lt2000-01-01",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(old.body["total"], 0);

    let mut c = s
        .call("GET", "/fhir/Consent/c-0001", Cred::Bearer(&admin), None)
        .await
        .body;
    c["status"] = json!("inactive");
    c["provision"]["period"]["end"] = json!("2020-01-01T00:00:00Z");
    let upd = s
        .call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(c.clone()),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.body);
    assert_eq!(upd.body["meta"]["versionId"], "2");
    let pat = s.login(PAT.0, PAT.1).await;
    let gated = s
        .call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(gated.status, 403, "the consent no longer allows reads");

    let mut moved = c.clone();
    moved["patient"]["reference"] = json!("Patient/p-0002");
    assert_eq!(
        s.call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(moved)
        )
        .await
        .status,
        409
    );
    let mut bad = c.clone();
    bad["status"] = json!("sort-of");
    assert_eq!(
        s.call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(bad)
        )
        .await
        .status,
        400
    );
    let mut unknown = c;
    unknown["id"] = json!("c-9999");
    assert_eq!(
        s.call(
            "PUT",
            "/fhir/Consent/c-9999",
            Cred::Bearer(&admin),
            Some(unknown)
        )
        .await
        .status,
        404
    );
    assert_eq!(
        s.call("GET", "/fhir/Consent/c-9999", Cred::Bearer(&admin), None)
            .await
            .status,
        404
    );
}

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

#[tokio::test]
async fn smart_configuration_and_unknown_routes() {
    let s = Sim::start().await;
    let smart = s
        .call("GET", "/.well-known/smart-configuration", Cred::None, None)
        .await;
    assert_eq!(smart.status, 200);
    let base = s.sim.base_url();
    assert_eq!(
        smart.body["authorization_endpoint"],
        format!("{base}/smart/authorize")
    );
    assert_eq!(smart.body["token_endpoint"], format!("{base}/smart/token"));
    assert!(smart.body["capabilities"].is_array() && smart.body["scopes_supported"].is_array());
    assert_eq!(
        smart.body["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let nowhere = s.call("GET", "/nowhere", Cred::None, None).await;
    assert_eq!((nowhere.status, nowhere.issue_code()), (404, "not-found"));
    let wrong_method = s.call("PATCH", "/api-keys", Cred::None, None).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["resourceType"], "OperationOutcome");
}
