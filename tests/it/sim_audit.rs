//! Simulator contract: audit rows (shape, agent, request id, failures), `/admin/audit*` filters
//! and paging to completion, and `/roles*`.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::sim_support::{Cred, Sim};

/// Pulls every page of an audit route; returns (rows, total reported by the first page).
async fn pull_all(s: &Sim, token: &str, path: &str, count: usize) -> (Vec<Value>, u64) {
    let mut rows = Vec::new();
    let mut offset = 0;
    let mut first_total = None;
    for _ in 0..1000 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let a = s
            .call(
                "GET",
                &format!("{path}{sep}_count={count}&_offset={offset}"),
                Cred::Bearer(token),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let total = a.body["total"].as_u64().expect("total");
        first_total.get_or_insert(total);
        let page = a.body["rows"].as_array().expect("rows").clone();
        assert!(page.len() <= count);
        offset += page.len();
        rows.extend(page);
        if offset as u64 >= total {
            break;
        }
    }
    (rows, first_total.unwrap_or(0))
}

#[tokio::test]
async fn user_audit_pages_to_completion_without_duplicates() {
    let s = Sim::start().await;
    let admin = s.admin();
    let (rows, total) = pull_all(&s, &admin, "/admin/audit/user/u-1001", 50).await;
    assert!(total > 100, "the scenario holds several pages ({total})");
    assert_eq!(rows.len() as u64, total);
    assert_eq!(total as usize, s.sim.audit_rows_of("u-1001"));
    let ids: HashSet<&str> = rows.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), rows.len(), "no duplicates");
    for r in &rows {
        assert_eq!(r["agent"]["userId"], "u-1001");
        assert!(r["recorded"].is_string() && r["action"].is_string() && r["type"].is_string());
        assert!(r["outcome"] == "success" || r["outcome"] == "failure");
    }
}

// OpenAPI: getAdminAudit. Each page read adds a row (the admin's own read) at the front
// (newest first), so offsets shift: a complete pull sees repeats and must de-duplicate by id.
#[tokio::test]
async fn global_audit_pages_to_completion_while_it_grows() {
    let s = Sim::start().await;
    let admin = s.admin();
    let before: HashSet<String> = s.sim.audit_rows().into_iter().map(|r| r.id).collect();
    let (rows, first_total) = pull_all(&s, &admin, "/admin/audit", 50).await;
    assert!(rows.len() as u64 >= first_total);
    let ids: HashSet<&str> = rows.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert!(ids.len() < rows.len(), "the shifting offsets repeat rows");
    assert!(
        before.iter().all(|id| ids.contains(id.as_str())),
        "no row that existed before the pull is skipped"
    );
}

#[tokio::test]
async fn audit_filters_and_paging_parameters() {
    let s = Sim::start().await;
    let admin = s.admin();
    let get = |q: &'static str| {
        let admin = admin.clone();
        let s = &s;
        async move { s.call("GET", q, Cred::Bearer(&admin), None).await }
    };
    let failures = get("/admin/audit/user/u-1001?outcome=failure&_count=50").await;
    assert!(
        failures.body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["outcome"] == "failure")
    );
    let logins = get("/admin/audit?type=auth.login&_count=200").await;
    assert!(
        logins.body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["type"] == "auth.login")
    );
    let future = get("/admin/audit?date=ge2999-01-01").await;
    assert_eq!(future.body["total"], 0);
    let past = get("/admin/audit?date=lt2000-01-01T00:00:00Z").await;
    assert_eq!(past.body["total"], 0);
    let by_agent = get("/admin/audit?agent=u-1004&_count=200").await;
    assert!(
        by_agent.body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["agent"]["userId"] == "u-1004")
    );
    let entity = get("/admin/audit?entity=Patient/p-0001&_count=200").await;
    let patient = get("/admin/audit/patient/p-0001?_count=200").await;
    assert_eq!(entity.body["total"], patient.body["total"]);
    assert!(
        patient.body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["entity"]["resourceId"] == "p-0001")
    );
    let clamped = get("/admin/audit?_count=5000").await;
    assert_eq!(clamped.body["rows"].as_array().expect("rows").len(), 50);
    let default = get("/admin/audit").await;
    assert_eq!(default.body["rows"].as_array().expect("rows").len(), 50);
    for bad in [
        "/admin/audit?_count=abc",
        "/admin/audit?_offset=-1",
        "/admin/audit?outcome=meh",
        "/admin/audit?date=yesterday",
    ] {
        let a = get(bad).await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(!a.error().is_empty(), "{bad}");
    }
    let nobody = get("/admin/audit/user/u-9999").await;
    assert_eq!(
        (nobody.status, nobody.body["total"].clone()),
        (200, json!(0))
    );
}

#[tokio::test]
async fn every_served_request_becomes_a_row_with_agent_and_request_id() {
    let s = Sim::start().await;
    let token = s.session();
    let before = s.sim.audit_rows_of("u-1001");
    let me = s
        .call_with(
            "GET",
            "/auth/me",
            Cred::Bearer(&token),
            None,
            &[("X-Request-Id", "req-42")],
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.headers["x-request-id"], "req-42", "echoed");
    assert_eq!(s.sim.audit_rows_of("u-1001"), before + 1);
    let denied = s
        .call("GET", "/fhir/Patient/p-0003", Cred::Bearer(&token), None)
        .await;
    assert_eq!(denied.status, 403, "stale consent");
    let anon = s.call("GET", "/auth/me", Cred::None, None).await;
    assert_eq!(anon.status, 401);
    s.call("GET", "/_sim/requests", Cred::None, None).await;

    let rows = s.sim.audit_rows();
    let tail: Vec<&esus_ir::sim::AuditRow> = rows.iter().rev().take(3).collect();
    let (anon_row, denied_row, me_row) = (tail[0], tail[1], tail[2]);
    assert_eq!(me_row.kind, "auth.me");
    assert_eq!(me_row.request_id.as_deref(), Some("req-42"));
    assert_eq!(me_row.agent.user_id.as_deref(), Some("u-1001"));
    assert_eq!(me_row.outcome, "success");
    assert_eq!(denied_row.outcome, "failure");
    assert_eq!(
        denied_row
            .entity
            .as_ref()
            .and_then(|e| e.resource_id.as_deref()),
        Some("p-0003")
    );
    assert!(
        denied_row
            .outcome_desc
            .as_deref()
            .unwrap_or_default()
            .contains("Consent")
    );
    assert_eq!(anon_row.agent.user_id, None);
    assert_eq!(anon_row.outcome, "failure");
    assert!(
        rows.iter().all(|r| !r.kind.contains("_sim")),
        "/_sim/ is never audited"
    );
    let json_row = serde_json::to_value(me_row).expect("json");
    assert_eq!(json_row["agent"]["userId"], "u-1001");
    assert_eq!(json_row["type"], "auth.me");
}

// OpenAPI: getRoles, postRolesUsersByUserIdAssign, deleteRolesUsersByUserIdByRoleId.
#[tokio::test]
async fn roles_list_assign_and_unassign() {
    let s = Sim::start().await;
    let admin = s.admin();
    let roles = s.call("GET", "/roles", Cred::Bearer(&admin), None).await;
    let names: Vec<&str> = roles
        .body
        .as_array()
        .expect("bare array")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "admin",
            "practitioner",
            "patient",
            "researcher",
            "api-client",
            "emergency-responder"
        ]
    );
    assert!(roles.body[0]["permissions"][0]["resource"].is_string());
    assert_eq!(roles.body[0]["isSystem"], true);
    let id_of = |slug: &str| -> String {
        roles
            .body
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["name"] == slug)
            .and_then(|r| r["id"].as_str())
            .expect("role id")
            .to_owned()
    };
    let practitioner = id_of("practitioner");
    let api_client = id_of("api-client");

    let assign = s
        .call(
            "POST",
            "/roles/users/u-1004/assign",
            Cred::Bearer(&admin),
            Some(json!({"roleId": practitioner})),
        )
        .await;
    assert_eq!(
        (assign.status, assign.body.clone()),
        (200, json!({"success": true}))
    );
    assert_eq!(
        s.sim.roles_of("u-1004"),
        Some(vec!["researcher".to_owned(), "practitioner".to_owned()])
    );
    let unassign = s
        .call(
            "DELETE",
            &format!("/roles/users/u-1001/{api_client}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(
        (unassign.status, unassign.body.clone()),
        (200, json!({"success": true}))
    );
    assert_eq!(
        s.sim.roles_of("u-1001"),
        Some(vec!["practitioner".to_owned()])
    );
    for (method, path, body) in [
        (
            "POST",
            "/roles/users/u-9999/assign".to_owned(),
            Some(json!({"roleId": id_of("admin")})),
        ),
        (
            "POST",
            "/roles/users/u-1004/assign".to_owned(),
            Some(json!({"roleId": "superuser"})),
        ),
        (
            "POST",
            "/roles/users/u-1004/assign".to_owned(),
            Some(json!({"roleId": "admin"})),
        ),
        ("DELETE", format!("/roles/users/u-1001/{api_client}"), None),
        (
            "DELETE",
            "/roles/users/u-1001/practitioner".to_owned(),
            None,
        ),
        (
            "DELETE",
            format!("/roles/users/u-9999/{practitioner}"),
            None,
        ),
    ] {
        let a = s.call(method, &path, Cred::Bearer(&admin), body).await;
        assert_eq!(a.status, 404, "{method} {path}");
        assert!(!a.error().is_empty());
    }
    assert_eq!(
        s.sim.roles_of("u-1001"),
        Some(vec!["practitioner".to_owned()]),
        "a slug where the UUID belongs changed nothing"
    );
    let missing = s
        .call(
            "POST",
            "/roles/users/u-1004/assign",
            Cred::Bearer(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(missing.status, 400);
}
