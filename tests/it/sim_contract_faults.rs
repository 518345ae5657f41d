//! Simulator contract, continued: error-body shapes, `Retry-After`, audit rows and paging,
//! API-key rotation and deactivation, cut faults, and the default scenario's sessions. Every
//! test names the OpenAPI operation it follows.

use std::collections::HashSet;

use esus_ir::sim::SimConfig;
use serde_json::{Value, json};

use crate::sim_support::{Answer, Cred, KeyCred, Sim, keys, sorted};

const PAT: (&str, &str) = ("pat.practitioner@riverside.example", "pat-drill-password");

async fn faulty(specs: &[&str]) -> Sim {
    let mut config = SimConfig::default();
    for spec in specs {
        config = config.with_fault(spec).expect("valid fault");
    }
    Sim::with(config).await
}

fn rows(a: &Answer) -> Vec<Value> {
    a.body["rows"].as_array().expect("rows").clone()
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

fn assert_operation_outcome(a: &Answer) {
    assert_eq!(
        keys(&a.body),
        sorted(&["resourceType", "issue"]),
        "{}",
        a.body
    );
    assert_eq!(a.body["resourceType"], "OperationOutcome");
    let issue = &a.body["issue"][0];
    assert_eq!(keys(issue), sorted(&["severity", "code", "diagnostics"]));
    assert_eq!(issue["severity"], "error");
}

fn assert_ok_reason(a: &Answer) {
    assert_eq!(keys(&a.body), sorted(&["ok", "reason"]), "{}", a.body);
    assert_eq!(a.body["ok"], false);
    assert!(a.body["reason"].is_string());
}

// ---------------------------------------------------------------- error shapes

// OpenAPI: FHIR operations (getFhirPatientById, getFhirConsentById…) answer OperationOutcome;
// for the non-FHIR routes (postAuthLogin, getAuthMe, getApi-keysById, getAdminAudit, getRoles…)
// the OpenAPI documents no error body, while other non-FHIR routes (postSmartToken,
// getBulk-exportById, postFilesUpload) document `{"error"}`: assumption, `{"error"}` here.
#[tokio::test]
async fn error_bodies_follow_the_route() {
    let s = Sim::start().await;
    let pat = s.login(PAT.0, PAT.1).await;
    for a in [
        s.call("GET", "/fhir/Patient/p-0002", Cred::Bearer(&pat), None)
            .await,
        s.call("GET", "/fhir/Patient/p-0001", Cred::None, None)
            .await,
        s.call(
            "GET",
            "/fhir/Consent/c-9999",
            Cred::Bearer(&s.admin()),
            None,
        )
        .await,
        s.call(
            "DELETE",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&s.admin()),
            None,
        )
        .await,
    ] {
        assert!(a.status >= 400, "{}", a.body);
        assert_operation_outcome(&a);
    }
    for (status, a) in [
        (401, s.call("GET", "/auth/me", Cred::None, None).await),
        (
            404,
            s.call("GET", "/api-keys/k-nope", Cred::Bearer(&s.admin()), None)
                .await,
        ),
        (
            403,
            s.call("GET", "/admin/audit", Cred::Bearer(&pat), None)
                .await,
        ),
        (401, s.call("GET", "/roles", Cred::None, None).await),
        (
            404,
            s.call("DELETE", "/auth/sessions/s-x", Cred::Bearer(&pat), None)
                .await,
        ),
        (
            405,
            s.call("PUT", "/auth/me", Cred::Bearer(&pat), None).await,
        ),
        (
            400,
            s.call(
                "PATCH",
                "/admin/users/u-1002/role",
                Cred::Bearer(&s.admin()),
                Some(json!({})),
            )
            .await,
        ),
    ] {
        assert_eq!(a.status, status, "{}", a.body);
        assert!(!a.error().is_empty());
    }
}

// The `error_shape` fault forces each of the three shapes the OpenAPI documents (OperationOutcome,
// `{"error"}`, `{"ok": false, "reason"}` as postWebhooksResend answers) on matching routes.
#[tokio::test]
async fn error_shape_fault_forces_each_shape_on_its_routes() {
    let s = faulty(&[
        "error_shape=ok-reason@GET /auth/me",
        "error_shape=error@/fhir/Patient/{id}",
        "error_shape=operation-outcome@/api-keys/{id}",
    ])
    .await;
    let pat = s.login(PAT.0, PAT.1).await;
    let me = s.call("GET", "/auth/me", Cred::None, None).await;
    assert_eq!(me.status, 401);
    assert_ok_reason(&me);
    let patient = s
        .call("GET", "/fhir/Patient/p-0002", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(patient.status, 403);
    assert!(patient.error().contains("Consent"));
    let key = s
        .call("GET", "/api-keys/k-nope", Cred::Bearer(&s.admin()), None)
        .await;
    assert_eq!(key.status, 404);
    assert_operation_outcome(&key);
    assert_eq!(key.issue_code(), "not-found");
    // Unmatched routes keep their own shape; successes are untouched.
    let roles = s.call("GET", "/roles", Cred::None, None).await;
    assert!(!roles.error().is_empty());
    let ok = s.call("GET", "/auth/me", Cred::Bearer(&pat), None).await;
    assert_eq!((ok.status, ok.body["id"].clone()), (200, json!("u-1002")));
}

// 429 is `{"error"}` on every route, FHIR routes included (documented on
// getBulk-exportByIdDownloadByType).
#[tokio::test]
async fn too_many_requests_is_an_error_body_on_every_route() {
    let s = faulty(&[
        "rate_limit=1/m@/fhir/Patient/{id}",
        "rate_limit=1/m@/auth/me",
    ])
    .await;
    let key = s.leaked();
    for path in ["/fhir/Patient/p-0001", "/auth/me"] {
        let first = s.call("GET", path, key.cred(), None).await;
        assert_eq!(first.status, 200, "{path}");
        let second = s.call("GET", path, key.cred(), None).await;
        assert_eq!(second.status, 429, "{path}");
        assert!(second.error().contains("rate limit"), "{path}");
    }
}

// ---------------------------------------------------------------- Retry-After

async fn throttled(spec: &str) -> Answer {
    let s = faulty(&["rate_limit=3/m", spec]).await;
    let admin = s.admin();
    for _ in 0..3 {
        assert_eq!(
            s.call("GET", "/roles", Cred::Bearer(&admin), None)
                .await
                .status,
            200
        );
    }
    let a = s.call("GET", "/roles", Cred::Bearer(&admin), None).await;
    assert_eq!(a.status, 429);
    a
}

fn parse_http_date(text: &str) -> jiff::Timestamp {
    let civil = text
        .strip_suffix(" GMT")
        .and_then(|t| jiff::civil::DateTime::strptime("%a, %d %b %Y %H:%M:%S", t).ok())
        .unwrap_or_else(|| panic!("not an IMF-fixdate: {text}"));
    format!("{civil}Z").parse().expect("UTC instant")
}

// Retry-After is undocumented: `retry_after=none|seconds|date` decides; none is the default.
// The wait announced is the bucket's real refill time (3/m: about 20 s for the next token).
#[tokio::test]
async fn retry_after_is_absent_seconds_or_an_http_date() {
    let none = throttled("retry_after=none").await;
    assert!(none.headers.get("retry-after").is_none());

    let secs = throttled("retry_after=seconds").await;
    let wait: u64 = secs.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((2..=20).contains(&wait), "the bucket's refill time: {wait}");

    let date = throttled("retry_after=date@/roles").await;
    let text = date.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        text.ends_with(" GMT") && text.len() == 29,
        "IMF-fixdate: {text}"
    );
    let at = parse_http_date(&text);
    let ahead = at.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((1..=21).contains(&ahead), "{text} is {ahead}s ahead");
}

// ---------------------------------------------------------------- audit

/// The row's sequence number (`a-000042` is 42).
fn sequence(row: &Value) -> u64 {
    row["id"]
        .as_str()
        .and_then(|id| id.strip_prefix("a-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a row id a-NNNNNN: {row}"))
}

/// Whether a row carries the fields only ESUS's audit docs show.
fn docs_fields(row: &Value) -> [bool; 3] {
    [
        row["agent"].get("roles").is_some(),
        row["agent"].get("emergencyOverride").is_some(),
        row["entity"].get("reference").is_some(),
    ]
}

// OpenAPI getAdminAudit lists agent {userId, email, ip, userAgent} and entity {resourceType,
// resourceId, query}; agent.roles, agent.emergencyOverride and entity.reference come from the
// ESUS audit docs alone. The simulator serves those three on rows with an even sequence number
// and leaves them out on odd ones (deterministic), so a client cannot depend on them; and it
// serves nothing ESUS lacks (no requestId, no null agent ids).
#[tokio::test]
async fn audit_rows_serve_the_docs_only_fields_on_some_rows_and_nothing_esus_lacks() {
    let s = Sim::start().await;
    let pat = s.login(PAT.0, PAT.1).await;
    for n in 0..2 {
        let id = format!("req-contract-{n}");
        s.call_with(
            "GET",
            "/fhir/Patient/p-0001",
            Cred::Bearer(&pat),
            None,
            &[("X-Request-Id", id.as_str())],
        )
        .await;
    }
    s.call("GET", "/auth/me", Cred::None, None).await;
    s.call("GET", "/auth/me", Cred::None, None).await;
    let admin = s.admin();
    let page = s
        .call("GET", "/admin/audit?_count=50", Cred::Bearer(&admin), None)
        .await;
    let all = rows(&page);
    assert_eq!(all.len(), 50);
    let (mut with, mut without) = (0, 0);
    for r in &all {
        assert!(r.get("requestId").is_none(), "{r}");
        assert!(["success", "failure", "error"].contains(&r["outcome"].as_str().expect("outcome")));
        for k in keys(&r["agent"]) {
            assert!(
                [
                    "userId",
                    "email",
                    "ip",
                    "userAgent",
                    "roles",
                    "emergencyOverride"
                ]
                .contains(&k.as_str()),
                "agent.{k}: {r}"
            );
        }
        for k in keys(&r["entity"]) {
            assert!(
                ["resourceType", "resourceId", "query", "reference"].contains(&k.as_str()),
                "entity.{k}: {r}"
            );
        }
        let served = docs_fields(r);
        if sequence(r).is_multiple_of(2) {
            with += 1;
            assert!(r["agent"]["roles"].is_array(), "{r}");
            assert!(r["agent"]["emergencyOverride"].is_boolean(), "{r}");
            match r["entity"]["resourceId"].as_str() {
                Some(id) => {
                    let rt = r["entity"]["resourceType"].as_str().expect("type");
                    assert_eq!(r["entity"]["reference"], format!("{rt}/{id}"), "{r}");
                }
                None => assert!(!served[2], "no id, no reference: {r}"),
            }
        } else {
            without += 1;
            assert_eq!(served, [false; 3], "odd rows lack all three: {r}");
        }
    }
    assert!(
        with > 0 && without > 0,
        "both kinds on one page: {with} with, {without} without"
    );
    assert!(!page.body.to_string().contains("req-contract-"));
    // The practitioner's two reads: one of each kind, told apart by sequence alone.
    let reads: Vec<&Value> = all
        .iter()
        .filter(|r| {
            r["entity"]["resourceType"] == "Patient"
                && r["entity"]["resourceId"] == "p-0001"
                && r["agent"]["userId"] == "u-1002"
        })
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(
        sequence(reads[0]),
        sequence(reads[1]) + 1,
        "consecutive rows, newest first"
    );
    for read in &reads {
        if sequence(read).is_multiple_of(2) {
            assert_eq!(read["agent"]["roles"], json!(["practitioner"]));
            assert_eq!(read["agent"]["emergencyOverride"], false);
            assert_eq!(read["entity"]["reference"], "Patient/p-0001");
        } else {
            assert_eq!(docs_fields(read), [false; 3], "{read}");
        }
    }
    // The anonymous /auth/me calls: agent ids omitted, not null; roles `[]` where served.
    let anon: Vec<&Value> = all
        .iter()
        .filter(|r| r["type"] == "auth.me" && r["outcome"] == "failure")
        .collect();
    assert_eq!(anon.len(), 2);
    for r in anon {
        let agent_keys = keys(&r["agent"]);
        assert!(
            !agent_keys.contains(&"userId".to_owned()) && !agent_keys.contains(&"email".to_owned()),
            "omitted, not null: {agent_keys:?}"
        );
        if sequence(r).is_multiple_of(2) {
            assert_eq!(r["agent"]["roles"], json!([]));
        }
    }
    // The request id is still in the simulator's own request log.
    assert!(
        s.sim
            .requests()
            .iter()
            .any(|r| r.request_id.as_deref() == Some("req-contract-1"))
    );
}

// OpenAPI: getAdminAuditUserByUserId. Order and page size are undocumented: newest first, and
// at most 50 rows whatever `_count` asks.
#[tokio::test]
async fn audit_is_newest_first_and_pages_are_clamped() {
    let s = Sim::start().await;
    let admin = s.admin();
    let token = s.session();
    s.call("GET", "/auth/me", Cred::Bearer(&token), None).await;
    let a = s
        .call(
            "GET",
            "/admin/audit/user/u-1001?_count=500",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let page = rows(&a);
    assert_eq!(page.len(), 50, "clamped");
    assert!(a.body["total"].as_u64().expect("total") > 50);
    assert_eq!(page[0]["type"], "auth.me", "the newest row comes first");
    let times: Vec<jiff::Timestamp> = page
        .iter()
        .map(|r| {
            r["recorded"]
                .as_str()
                .expect("recorded")
                .parse()
                .expect("RFC 3339")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let patient = s
        .call(
            "GET",
            "/admin/audit/patient/p-0001?_count=100&_offset=0",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert!(rows(&patient).len() <= 50);
    assert!(
        rows(&patient)
            .iter()
            .all(|r| r["entity"]["resourceType"] == "Patient"
                && r["entity"]["resourceId"] == "p-0001")
    );
}

// OpenAPI: getAdminAuditUserByUserId / getAdminAuditPatientByPatientId / getAdminAudit with the
// `audit_trickle` fault: rows arrive between pages, `total` counts them at each answer, and the
// newest-first offsets repeat rows on the next page.
#[tokio::test]
async fn audit_trickle_makes_rows_arrive_between_pages() {
    let s = faulty(&[
        "audit_trickle=5@GET /admin/audit/user/{id}",
        "audit_trickle=3@/admin/audit/patient/{id}",
        "audit_trickle=2@GET /admin/audit",
    ])
    .await;
    let admin = s.admin();
    let get = |path: String| {
        let admin = admin.clone();
        let s = &s;
        async move { s.call("GET", &path, Cred::Bearer(&admin), None).await }
    };
    let p1 = get("/admin/audit/user/u-1001?_count=50&_offset=0".into()).await;
    let p2 = get("/admin/audit/user/u-1001?_count=50&_offset=50".into()).await;
    let (t1, t2) = (
        p1.body["total"].as_u64().expect("total"),
        p2.body["total"].as_u64().expect("total"),
    );
    assert_eq!(t2, t1 + 5, "five rows of u-1001 arrived between the pages");
    let (r1, r2) = (ids(&rows(&p1)), ids(&rows(&p2)));
    assert_eq!(&r2[..5], &r1[45..], "the shift repeats the last five rows");
    let p3 = get("/admin/audit/user/u-1001?_count=50&_offset=0".into()).await;
    let fresh = rows(&p3);
    assert!(
        fresh[..10]
            .iter()
            .all(|r| r["agent"]["userId"] == "u-1001" && r["agent"]["ip"] == "203.0.113.66")
    );
    let seen: HashSet<String> = r1.iter().chain(&r2).cloned().collect();
    assert!(
        ids(&fresh[..10]).iter().all(|id| !seen.contains(id)),
        "ten rows nobody had paged yet"
    );

    let q1 = get("/admin/audit/patient/p-0002".into()).await;
    let q2 = get("/admin/audit/patient/p-0002".into()).await;
    assert_eq!(
        q2.body["total"].as_u64().expect("total"),
        q1.body["total"].as_u64().expect("total") + 3
    );
    assert!(
        rows(&q2)[..3]
            .iter()
            .all(|r| r["entity"]["resourceType"] == "Patient"
                && r["entity"]["resourceId"] == "p-0002")
    );

    let g1 = get("/admin/audit".into()).await;
    let g2 = get("/admin/audit".into()).await;
    assert_eq!(
        g2.body["total"].as_u64().expect("total"),
        g1.body["total"].as_u64().expect("total") + 3,
        "two trickled rows plus the audit read itself"
    );
    let log = s.sim.requests();
    assert!(log.iter().all(|r| r.faults == ["audit_trickle"]), "{log:?}");
}

// ---------------------------------------------------------------- API keys

// OpenAPI: postApi-keysByIdRotate. Undocumented: rotating a rotated key succeeds again (a new,
// distinct successor; `supersededBy` names the newest; the grace window restarts).
#[tokio::test]
async fn rotating_a_rotated_key_succeeds_again_with_a_distinct_successor() {
    let s = Sim::start().await;
    let admin = s.admin();
    let rotate = |id: &'static str, body: Value| {
        let admin = admin.clone();
        let s = &s;
        async move {
            s.call(
                "POST",
                &format!("/api-keys/{id}/rotate"),
                Cred::Bearer(&admin),
                Some(body),
            )
            .await
        }
    };
    let first = rotate("k-1001", json!({"graceHours": 0})).await;
    let second = rotate("k-1001", json!({"graceHours": 0})).await;
    assert_eq!((first.status, second.status), (200, 200));
    let (id1, id2) = (
        first.body["id"].as_str().expect("id").to_owned(),
        second.body["id"].as_str().expect("id").to_owned(),
    );
    assert_ne!(id1, id2);
    assert_ne!(first.body["clientId"], second.body["clientId"]);
    assert_ne!(first.body["secret"], second.body["secret"]);
    let old = s
        .call("GET", "/api-keys/k-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(old.body["supersededBy"], id2.as_str(), "names the newest");
    assert!(old.body["supersededAt"].is_string());
    for k in [&first.body, &second.body] {
        let cred = KeyCred::of(k);
        assert_eq!(
            s.call("GET", "/fhir/Patient/p-0001", cred.cred(), None)
                .await
                .status,
            200,
            "every successor is a live key"
        );
    }
    // A second rotate with the default grace reopens the window graceHours 0 had closed.
    assert_eq!(rotate("k-1003", json!({"graceHours": 0})).await.status, 200);
    assert!(!s.sim.api_key("k-1003").expect("key").usable_now);
    assert_eq!(rotate("k-1003", json!({})).await.status, 200);
    assert!(
        s.sim.api_key("k-1003").expect("key").usable_now,
        "the old key authenticates again for 24 h"
    );
    // A deleted key stays 404.
    s.call("DELETE", "/api-keys/k-1002", Cred::Bearer(&admin), None)
        .await;
    let gone = rotate("k-1002", json!({})).await;
    assert_eq!(gone.status, 404);
    assert!(gone.error().contains("not found"));
}

// OpenAPI: putApi-keysById `{"active": false}` — the key stops authenticating at once and is
// reported inactive.
#[tokio::test]
async fn a_deactivated_key_stops_at_once_and_reads_inactive() {
    let s = Sim::start().await;
    let admin = s.admin();
    let leaked = s.leaked();
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
            .await
            .status,
        200
    );
    let off = s
        .call(
            "PUT",
            "/api-keys/k-1001",
            Cred::Bearer(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(
        (off.status, off.body["active"].clone()),
        (200, json!(false))
    );
    let refused = s
        .call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
        .await;
    assert_eq!((refused.status, refused.issue_code()), (401, "security"));
    let read = s
        .call("GET", "/api-keys/k-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(read.body["active"], false);
    let listed = s
        .call("GET", "/api-keys?active=false", Cred::Bearer(&admin), None)
        .await;
    assert!(
        listed.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|k| k["id"] == "k-1001")
    );
}

// ---------------------------------------------------------------- cut faults

// `cut_count` / `cut_rate`: the connection is closed before the route runs — no state change,
// no audit row — and the request log shows it (dropped, no status, fault `cut`).
#[tokio::test]
async fn cut_faults_close_the_connection_and_change_nothing() {
    let s = faulty(&[
        "cut_count=1@POST /api-keys/{id}/rotate",
        "cut_count=1@DELETE /auth/sessions/{id}",
        "cut_rate=1.0@GET /auth/me",
    ])
    .await;
    let admin = s.admin();
    let audit_before = s.sim.audit_rows().len();
    let rotate = s
        .try_call(
            "POST",
            "/api-keys/k-1001/rotate",
            Cred::Bearer(&admin),
            Some(json!({"graceHours": 0})),
            &[("X-Request-Id", "cut-1")],
        )
        .await;
    assert!(rotate.is_err(), "no answer: {rotate:?}");
    let key = s.sim.api_key("k-1001").expect("key");
    assert!(key.superseded_by.is_none() && key.usable_now, "not rotated");
    let del = s
        .try_call(
            "DELETE",
            "/auth/sessions/s-1002",
            Cred::Bearer(&s.session()),
            None,
            &[],
        )
        .await;
    assert!(del.is_err());
    assert!(s.sim.sessions_of("u-1001").iter().all(|x| !x.revoked));
    for _ in 0..3 {
        assert!(
            s.try_call("GET", "/auth/me", Cred::Bearer(&admin), None, &[])
                .await
                .is_err()
        );
    }
    assert_eq!(s.sim.audit_rows().len(), audit_before, "no audit rows");
    let log = s.sim.requests();
    assert_eq!(log.len(), 5);
    assert!(
        log.iter()
            .all(|r| r.dropped && r.status.is_none() && r.faults == ["cut"]),
        "{log:?}"
    );
    assert_eq!(log[0].request_id.as_deref(), Some("cut-1"));
    // The retry is the first time the server sees the rotate.
    let retry = s
        .call(
            "POST",
            "/api-keys/k-1001/rotate",
            Cred::Bearer(&admin),
            Some(json!({"graceHours": 0})),
        )
        .await;
    assert_eq!(retry.status, 200);
    assert_eq!(
        s.sim
            .api_key("k-1001")
            .expect("key")
            .superseded_by
            .as_deref(),
        retry.body["id"].as_str()
    );
}

// ---------------------------------------------------------------- default scenario

// The compromised user has three live sessions, each with its own refresh token; the ready
// file's session is s-1001 from 203.0.113.66.
#[tokio::test]
async fn default_scenario_gives_the_compromised_user_three_live_sessions() {
    let s = Sim::start().await;
    assert_eq!(s.sim.ready().session_id, "s-1001");
    let sessions = s.sim.sessions_of("u-1001");
    let ids: Vec<&str> = sessions.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["s-1001", "s-1002", "s-1003"]);
    assert!(
        sessions
            .iter()
            .all(|x| !x.revoked && x.live_refresh_tokens == 1 && x.user_id == "u-1001")
    );
    let me = s
        .call("GET", "/auth/sessions", Cred::Bearer(&s.session()), None)
        .await;
    let current = me.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|x| x["current"] == true)
        .expect("current")
        .clone();
    assert_eq!(current["sessionId"], "s-1001");
    assert_eq!(current["ipAddress"], "203.0.113.66");
}
