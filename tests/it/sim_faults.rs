//! Simulator contract: each fault kind, asserted on the request log (never on wall-clock time),
//! and the `/_sim/` controls themselves.

use esus_ir::sim::{CredentialKind, RecordedRequest, SimConfig};
use serde_json::json;

use crate::sim_support::{Cred, Sim};

async fn faulty(specs: &[&str], seed: u64) -> Sim {
    let mut config = SimConfig::default().with_seed(seed);
    for spec in specs {
        config = config.with_fault(spec).expect("valid fault");
    }
    Sim::with(config).await
}

fn statuses(log: &[RecordedRequest]) -> Vec<Option<u16>> {
    log.iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn error_count_answers_503_to_the_first_matching_requests() {
    let s = faulty(&["error_count=2@GET /auth/me"], 0).await;
    let admin = s.admin();
    let rows_before = s.sim.audit_rows_of("u-0001");
    let mut got = Vec::new();
    for _ in 0..3 {
        let a = s.call("GET", "/auth/me", Cred::Bearer(&admin), None).await;
        got.push(a.status);
        if a.status == 503 {
            assert!(a.error().contains("simulated server error"));
        }
    }
    assert_eq!(
        s.call("GET", "/roles", Cred::Bearer(&admin), None)
            .await
            .status,
        200,
        "other routes untouched"
    );
    assert_eq!(got, [503, 503, 200]);
    let log = s.sim.requests();
    assert_eq!(statuses(&log), [Some(503), Some(503), Some(200), Some(200)]);
    assert_eq!(log[0].faults, ["error"]);
    assert!(log[2].faults.is_empty());
    assert_eq!(
        s.sim.audit_rows_of("u-0001"),
        rows_before + 2,
        "fault answers are not audited"
    );
}

#[tokio::test]
async fn drop_count_runs_the_route_then_closes_without_answering() {
    let s = faulty(&["drop_count=1@POST /api-keys/{id}/rotate"], 0).await;
    let admin = s.admin();
    let dropped = s
        .try_call(
            "POST",
            "/api-keys/k-1001/rotate",
            Cred::Bearer(&admin),
            Some(json!({"graceHours": 0})),
            &[("X-Request-Id", "rot-1")],
        )
        .await;
    assert!(dropped.is_err(), "no answer: {dropped:?}");
    // The worst case for a client: the rotate happened although no answer came back.
    let old = s.sim.api_key("k-1001").expect("key");
    assert!(old.superseded_by.is_some());
    let first_successor = old.superseded_by.clone().expect("successor");
    let retry = s
        .call(
            "POST",
            "/api-keys/k-1001/rotate",
            Cred::Bearer(&admin),
            Some(json!({"graceHours": 0})),
        )
        .await;
    assert_eq!(
        retry.status, 200,
        "a blind retry rotates again and mints a second successor"
    );
    assert_ne!(retry.body["id"].as_str(), Some(first_successor.as_str()));
    assert!(
        s.sim.api_key(&first_successor).expect("key").usable_now,
        "the lost answer's key is live and nobody holds its secret"
    );
    let log = s.sim.requests();
    assert!(log[0].dropped);
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].request_id.as_deref(), Some("rot-1"));
    assert_eq!(log[0].faults, ["drop"]);
    assert_eq!((log[1].dropped, log[1].status), (false, Some(200)));
}

// A lost answer after the route ran, for every key write the client makes (postApi-keys,
// putApi-keysById, postApi-keysByIdRotate): the state changed although no answer came back, by
// `drop_count` and `drop_rate` alike, and the audit row records a success.
#[tokio::test]
async fn drops_apply_key_create_update_and_rotate_before_losing_the_answer() {
    for kind in ["drop_count=1", "drop_rate=1.0"] {
        let specs = [
            format!("{kind}@POST /api-keys"),
            format!("{kind}@PUT /api-keys/{{id}}"),
            format!("{kind}@POST /api-keys/{{id}}/rotate"),
        ];
        let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
        let s = faulty(&specs, 5).await;
        let admin = s.admin();
        let before = s.sim.api_keys().len();

        let created = s
            .try_call(
                "POST",
                "/api-keys",
                Cred::Bearer(&admin),
                Some(json!({"name": "lost-create", "scopes": ["Patient.read"]})),
                &[],
            )
            .await;
        assert!(created.is_err(), "{kind}: no answer to the create");
        let keys = s.sim.api_keys();
        assert_eq!(keys.len(), before + 1, "{kind}: the key was created");
        let new = keys
            .iter()
            .find(|k| k.name == "lost-create")
            .expect("created");
        assert!(new.usable_now, "{kind}: live, and nobody holds its secret");

        let updated = s
            .try_call(
                "PUT",
                "/api-keys/k-1003",
                Cred::Bearer(&admin),
                Some(json!({"name": "legacy-sync-off", "active": false})),
                &[],
            )
            .await;
        assert!(updated.is_err(), "{kind}: no answer to the update");
        let k1003 = s.sim.api_key("k-1003").expect("key");
        assert_eq!(k1003.name, "legacy-sync-off", "{kind}: renamed");
        assert!(!k1003.active && !k1003.usable_now, "{kind}: deactivated");

        let rotated = s
            .try_call(
                "POST",
                "/api-keys/k-1002/rotate",
                Cred::Bearer(&admin),
                Some(json!({"graceHours": 0})),
                &[],
            )
            .await;
        assert!(rotated.is_err(), "{kind}: no answer to the rotate");
        let k1002 = s.sim.api_key("k-1002").expect("key");
        assert!(!k1002.usable_now, "{kind}: graceHours 0 applied");
        let successor = k1002.superseded_by.expect("rotated");
        assert!(s.sim.api_key(&successor).expect("successor").usable_now);

        let log = s.sim.requests();
        assert_eq!(log.len(), 3, "{kind}");
        for r in &log {
            assert!(r.dropped && r.status.is_none(), "{kind}: {r:?}");
            assert_eq!(r.faults, ["drop"], "{kind}");
        }
        let rows = s.sim.audit_rows();
        for audit_type in ["apikey.create", "apikey.update", "apikey.rotate"] {
            assert!(
                rows.iter()
                    .any(|r| r.kind == audit_type && r.outcome == "success"),
                "{kind}: {audit_type} audited as a success"
            );
        }
    }
}

#[tokio::test]
async fn drop_rate_one_drops_everything_it_matches() {
    let s = faulty(&["drop_rate=1.0@/auth/me"], 3).await;
    let admin = s.admin();
    for _ in 0..3 {
        assert!(
            s.try_call("GET", "/auth/me", Cred::Bearer(&admin), None, &[])
                .await
                .is_err()
        );
    }
    assert_eq!(
        s.call("GET", "/roles", Cred::Bearer(&admin), None)
            .await
            .status,
        200
    );
    let log = s.sim.requests();
    assert_eq!(log.iter().filter(|r| r.dropped).count(), 3);
}

/// The status sequence of `n` sequential requests against a fresh simulator.
async fn sequence(specs: &[&str], seed: u64, n: usize) -> Vec<Option<u16>> {
    let s = faulty(specs, seed).await;
    let admin = s.admin();
    for _ in 0..n {
        let _ = s
            .try_call("GET", "/roles", Cred::Bearer(&admin), None, &[])
            .await;
    }
    statuses(&s.sim.requests())
}

#[tokio::test]
async fn rate_faults_are_reproducible_under_a_seed() {
    let errors = sequence(&["error_rate=0.5"], 7, 24).await;
    assert_eq!(
        errors,
        sequence(&["error_rate=0.5"], 7, 24).await,
        "same seed, same answers"
    );
    assert!(errors.contains(&Some(200)));
    assert!(errors.iter().any(|s| matches!(s, Some(500) | Some(503))));
    assert!(
        errors
            .iter()
            .all(|s| matches!(s, Some(200) | Some(500) | Some(503)))
    );
    let drops = sequence(&["drop_rate=0.3"], 11, 20).await;
    assert_eq!(drops, sequence(&["drop_rate=0.3"], 11, 20).await);
    assert!(drops.contains(&None) && drops.contains(&Some(200)));
}

#[tokio::test]
async fn rate_limit_answers_429_without_retry_after_by_default() {
    // Per minute, so the refill during the test (a fraction of a request) cannot matter.
    let s = faulty(&["rate_limit=3/m"], 0).await;
    let admin = s.admin();
    let mut got = Vec::new();
    for _ in 0..6 {
        let a = s.call("GET", "/roles", Cred::Bearer(&admin), None).await;
        if a.status == 429 {
            assert!(a.error().contains("rate limit"));
            assert!(a.headers.get("retry-after").is_none(), "absent by default");
        }
        got.push(a.status);
    }
    assert_eq!(got, [200, 200, 200, 429, 429, 429]);
    assert_eq!(s.sim.requests()[3].faults, ["rate_limit"]);
}

#[tokio::test]
async fn latency_is_recorded_on_every_matching_answer() {
    let s = faulty(&["latency=5ms@GET:/auth/me"], 0).await;
    let admin = s.admin();
    s.call("GET", "/auth/me", Cred::Bearer(&admin), None).await;
    s.call("GET", "/roles", Cred::Bearer(&admin), None).await;
    let log = s.sim.requests();
    assert_eq!(log[0].faults, ["latency"]);
    assert!(log[1].faults.is_empty());
}

#[tokio::test]
async fn barrier_holds_requests_until_all_are_in_flight() {
    let s = faulty(&["barrier=2@DELETE /auth/sessions/{id}"], 0).await;
    let token = s.session();
    let (a, b) = tokio::join!(
        s.call(
            "DELETE",
            "/auth/sessions/s-1002",
            Cred::Bearer(&token),
            None
        ),
        s.call(
            "DELETE",
            "/auth/sessions/s-1003",
            Cred::Bearer(&token),
            None
        ),
    );
    assert_eq!((a.status, b.status), (204, 204));
    let log = s.sim.requests();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter().all(|r| r.faults == ["barrier"]),
        "both met, none timed out: {log:?}"
    );
    // Past the first N, requests pass freely.
    s.call(
        "DELETE",
        "/auth/sessions/s-1001",
        Cred::Bearer(&token),
        None,
    )
    .await;
    assert!(s.sim.requests()[2].faults.is_empty());
}

#[tokio::test]
async fn request_log_records_what_was_received_and_skips_sim_routes() {
    let s = Sim::start().await;
    let key = s.leaked();
    s.call_with(
        "GET",
        "/fhir/Patient/p-0001?x=1",
        key.cred(),
        None,
        &[("X-Request-Id", "r-1")],
    )
    .await;
    s.call("GET", "/nowhere", Cred::None, None).await;
    let over_http = s.call("GET", "/_sim/requests", Cred::None, None).await;
    let log: Vec<RecordedRequest> =
        serde_json::from_value(over_http.body["requests"].clone()).expect("log");
    assert_eq!(log, s.sim.requests());
    assert_eq!(log.len(), 2, "/_sim/ requests are not logged");
    assert_eq!((log[0].seq, log[1].seq), (1, 2));
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/fhir/Patient/p-0001");
    assert_eq!(log[0].query.as_deref(), Some("x=1"));
    assert_eq!(log[0].request_id.as_deref(), Some("r-1"));
    assert_eq!(log[0].credential, CredentialKind::ApiKey);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[1].credential, CredentialKind::None);
    let since = s
        .call("GET", "/_sim/requests?since=1", Cred::None, None)
        .await;
    assert_eq!(since.body["requests"].as_array().expect("array").len(), 1);
    let text = over_http.body.to_string();
    assert!(
        !text.contains(s.leaked_key().split(':').nth(1).expect("secret")),
        "no secret in the log"
    );
    let clock = s.call("GET", "/_sim/clock", Cred::None, None).await;
    assert_eq!(clock.body["offsetSeconds"], 0);
    let bad = s
        .call(
            "POST",
            "/_sim/clock/advance",
            Cred::None,
            Some(json!({"seconds": -5})),
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn faults_never_touch_the_sim_controls() {
    let s = faulty(&["error_count=100", "drop_rate=1.0"], 0).await;
    let log = s.call("GET", "/_sim/requests", Cred::None, None).await;
    assert_eq!(log.status, 200);
    let adv = s
        .call(
            "POST",
            "/_sim/clock/advance",
            Cred::None,
            Some(json!({"seconds": 1})),
        )
        .await;
    assert_eq!(adv.status, 200);
    let admin = s.admin();
    let a = s.call("GET", "/roles", Cred::Bearer(&admin), None).await;
    assert_eq!(a.status, 503, "error_count wins over the drop");
}
