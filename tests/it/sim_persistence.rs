//! Simulator contract of issue 19 ("after containment: what did the attacker touch, what did
//! they leave behind"), over real HTTP: the cursor-paged audit log while rows keep arriving, the
//! audit hash chain and its verification, who is refused, and the persistence scenario's ground
//! truth against what the routes serve. The routes of what an attacker leaves behind are tested
//! in `sim_persistence_leftovers.rs`.

use std::collections::{BTreeSet, HashSet};

use esus_ir::sim::{
    AuditTamper, LeftoverKind, PERSISTENCE_SCENARIO_YAML, SimConfig, audit_event_id, user_uuid,
};
use serde_json::{Value, json};

use crate::sim_support::{Cred, Sim, keys, sorted};

/// The dashboard app of the leaked key k-2001 (persistence scenario).
pub(crate) const APP: &str = "6b1d2c7e-4f3a-4e8b-9a1c-5d2e7f0a3b94";
/// The portal app (key k-3001).
pub(crate) const PORTAL_APP: &str = "9c4e1a2b-7d3f-4b6a-8e5c-1f2a3b4c5d6e";
/// The attacker's webhook and the dashboard's own one, on the same app.
pub(crate) const EXFIL_HOOK: &str = "7c2d9e4f-8b1a-4d3c-a5e6-2f9b8c7d6e5a";
pub(crate) const DASHBOARD_HOOK: &str = "3e9a7b2c-5d1f-4a8e-b6c3-7d2e1f0a9b8c";

const EVENT_KEYS: [&str; 9] = [
    "id",
    "type",
    "subtype",
    "action",
    "outcome",
    "outcomeDesc",
    "agent",
    "entity",
    "recordedAt",
];

pub(crate) fn persistence_config() -> SimConfig {
    SimConfig::default()
        .with_scenario_yaml(PERSISTENCE_SCENARIO_YAML)
        .expect("the persistence scenario parses")
}

pub(crate) async fn persistence() -> Sim {
    Sim::with(persistence_config()).await
}

/// A session of Pat, a practitioner: no administrator.
pub(crate) async fn pat(s: &Sim) -> String {
    s.login("pat.practitioner@riverside.example", "pat-drill-password")
        .await
}

pub(crate) fn list<'a>(v: &'a Value, name: &str) -> &'a Vec<Value> {
    v[name].as_array().unwrap_or_else(|| panic!("{name}: {v}"))
}

/// Follows `nextCursor` to the end; `between` runs after each page (rows arriving mid-pull).
/// Returns the events and the number of pages.
async fn pull(s: &Sim, token: &str, query: &str, between: impl Fn()) -> (Vec<Value>, usize) {
    let (mut events, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("/v1/admin/audit/?{query}{sep}cursor={c}"),
            None => format!("/v1/admin/audit/?{query}"),
        };
        let a = s.call("GET", &path, Cred::Bearer(token), None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(keys(&a.body), sorted(&["events", "nextCursor"]));
        events.extend(list(&a.body, "events").iter().cloned());
        pages += 1;
        between();
        match a.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (events, pages),
        }
        assert!(pages < 500, "the pull ends");
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

// ------------------------------------------------------------- GET /v1/admin/audit/

// OpenAPI getV1AdminAudit. Every page read is itself audited and the audit_trickle fault adds
// three attacker rows after each page: a cursor names a position, so nothing shifts — the pull
// holds each row that existed when it began exactly once, and none that arrived meanwhile.
#[tokio::test]
async fn cursor_pull_is_complete_and_stable_while_rows_arrive() {
    let config = persistence_config()
        .with_fault("audit_trickle=3@GET /v1/admin/audit")
        .expect("fault");
    let s = Sim::with(config).await;
    let admin = s.admin();
    let before: Vec<String> = s
        .sim
        .audit_rows()
        .iter()
        .map(|r| audit_event_id(&r.id))
        .collect();
    let (events, pages) = pull(&s, &admin, "limit=7", || s.sim.trickle_audit(2)).await;
    let got = ids(&events);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no row twice");
    let mut expected = before.clone();
    expected.reverse();
    assert_eq!(
        got, expected,
        "exactly the rows present at the start, newest first"
    );
    let arrived = s.sim.audit_rows().len() - before.len();
    assert!(
        arrived >= pages * 6,
        "rows arrived during the pull ({arrived})"
    );
    for e in &events {
        assert_eq!(keys(e), sorted(&EVENT_KEYS), "{e}");
    }
}

// A pull bounded by `after` and `before` holds exactly the rows strictly between them, whatever
// arrives meanwhile (trickled rows are recorded now, outside the window).
#[tokio::test]
async fn cursor_window_is_exact_with_after_and_before() {
    let s = persistence().await;
    let admin = s.admin();
    let rows = s.sim.audit_rows();
    let (after, before) = (rows[20].recorded, rows[rows.len() - 15].recorded);
    let expected: Vec<String> = rows
        .iter()
        .rev()
        .filter(|r| r.recorded > after && r.recorded < before)
        .map(|r| audit_event_id(&r.id))
        .collect();
    assert!(expected.len() > 50, "a window of several pages");
    let query = format!("after={after}&before={before}&limit=9");
    let (events, _) = pull(&s, &admin, &query, || s.sim.trickle_audit(4)).await;
    assert_eq!(ids(&events), expected);
    let rec = |e: &Value| e["recordedAt"].as_str().unwrap_or_default().to_owned();
    assert!(
        events.windows(2).all(|w| rec(&w[0]) >= rec(&w[1])),
        "newest first"
    );
}

// Filters, the published event shape, the limit, and the cursor's ties to its query.
#[tokio::test]
async fn cursor_filters_shapes_and_refusals() {
    let s = persistence().await;
    let admin = s.admin();
    let get = |q: String| {
        let admin = admin.clone();
        let s = &s;
        async move { s.call("GET", &q, Cred::Bearer(&admin), None).await }
    };
    let p3 = get("/v1/admin/audit/?resourceType=Patient&resourceId=p-0003&limit=100".into()).await;
    let p3 = list(&p3.body, "events");
    assert!(!p3.is_empty());
    for e in p3 {
        assert_eq!(e["entity"]["resourceId"], "p-0003");
        assert!(e["id"].as_str().is_some_and(|id| id.len() == 36), "{e}");
    }
    let override_row = p3.iter().find(|e| e["subtype"] == "emergency-override");
    let override_row = override_row.expect("the attacker's override read");
    assert_eq!(override_row["agent"]["userId"], "u-2001");
    assert!(
        override_row["agent"].get("emergencyOverride").is_none(),
        "docs-only fields"
    );
    let auth = get("/v1/admin/audit/?type=auth&limit=100".into()).await;
    assert!(
        list(&auth.body, "events")
            .iter()
            .all(|e| e["type"].as_str().is_some_and(|t| t.starts_with("auth.")))
    );
    let user = get("/v1/admin/audit/?userId=u-6001".into()).await;
    assert_eq!(
        list(&user.body, "events").len(),
        1,
        "the look-alike account's acceptance"
    );
    assert_eq!(list(&user.body, "events")[0]["subtype"], Value::Null);
    let big = get("/v1/admin/audit/?limit=5000".into()).await;
    assert_eq!(
        list(&big.body, "events").len(),
        100,
        "a larger limit is clamped"
    );
    let first = get("/v1/admin/audit/?userId=u-2001&limit=2".into()).await;
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    for bad in [
        "type=resource.read".to_owned(),
        "action=X".into(),
        "after=yesterday".into(),
        "before=2026-01-01".into(),
        "limit=0".into(),
        "limit=ten".into(),
        "cursor=bm90LWEtY3Vyc29y".into(),
        format!("userId=u-1002&cursor={cursor}"),
    ] {
        let a = get(format!("/v1/admin/audit/?{bad}")).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert!(!a.error().is_empty());
    }
    let next = get(format!(
        "/v1/admin/audit/?userId=u-2001&limit=2&cursor={cursor}"
    ))
    .await;
    assert_eq!(next.status, 200, "the same query takes its cursor");
}

// A page that is exactly full still hands out a cursor; its page is empty.
#[tokio::test]
async fn a_full_last_page_leads_to_an_empty_one() {
    let s = persistence().await;
    let admin = s.admin();
    let first = s
        .call(
            "GET",
            "/v1/admin/audit/?userId=u-6001&limit=1",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(list(&first.body, "events").len(), 1);
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("a cursor after a full page");
    let path = format!("/v1/admin/audit/?userId=u-6001&limit=1&cursor={cursor}");
    let last = s.call("GET", &path, Cred::Bearer(&admin), None).await;
    assert_eq!(last.body, json!({"events": [], "nextCursor": null}));
}

#[tokio::test]
async fn audit_routes_refuse_non_admins() {
    let s = persistence().await;
    let pat = pat(&s).await;
    let key = s.leaked();
    for path in [
        "/v1/admin/audit/",
        "/admin/system-admins/audit/verify",
        "/admin/system-admins/",
    ] {
        let a = s.call("GET", path, Cred::Bearer(&pat), None).await;
        assert_eq!(a.status, 403, "{path}");
        let a = s.call("GET", path, key.cred(), None).await;
        assert_eq!(a.status, 403, "{path} with an API key");
        let a = s.call("GET", path, Cred::None, None).await;
        assert_eq!(a.status, 401, "{path} without a credential");
    }
    // Morgan is an organization admin but no system administrator.
    let morgan = s.session();
    let cursor = s
        .call("GET", "/v1/admin/audit/", Cred::Bearer(&morgan), None)
        .await;
    assert_eq!(cursor.status, 200);
    let verify = s
        .call(
            "GET",
            "/admin/system-admins/audit/verify",
            Cred::Bearer(&morgan),
            None,
        )
        .await;
    assert_eq!(verify.status, 403);
}

// ------------------------------------------------------------- the audit hash chain

// OpenAPI getAdminSystem-adminsAuditVerify, getAdminSystem-admins. The default scenario's admin
// is a system administrator.
#[tokio::test]
async fn audit_chain_verifies_then_reports_each_tampered_row() {
    let s = Sim::start().await;
    let admin = s.admin();
    let verify = |limit: &'static str| {
        let admin = admin.clone();
        let s = &s;
        async move {
            let path = format!("/admin/system-admins/audit/verify{limit}");
            let a = s.call("GET", &path, Cred::Bearer(&admin), None).await;
            assert_eq!(a.status, 200, "{}", a.body);
            a.body
        }
    };
    let total = s.sim.audit_rows().len();
    let all = verify("?limit=100000").await;
    assert_eq!(
        keys(&all),
        sorted(&["ok", "total", "verifiedThrough", "breaks"])
    );
    assert_eq!(
        all,
        json!({"ok": true, "total": total, "verifiedThrough": total, "breaks": []})
    );
    let default = verify("").await;
    assert_eq!(
        (default["ok"].clone(), default["verifiedThrough"].clone()),
        (json!(true), json!(100))
    );
    assert!(
        default["total"].as_u64().unwrap_or(0) > 100,
        "the default limit covers less"
    );

    assert!(s.sim.tamper_audit_row("a-000150", AuditTamper::EditContent));
    let one = verify("?limit=100000").await;
    assert_eq!(one["ok"], false);
    let breaks = list(&one, "breaks");
    assert_eq!(breaks.len(), 1, "{one}");
    let b = &breaks[0];
    assert_eq!(
        keys(b),
        sorted(&[
            "id",
            "recorded",
            "storedHash",
            "expectedHash",
            "storedPrevHash",
            "expectedPrevHash"
        ])
    );
    assert_eq!(b["id"], audit_event_id("a-000150"));
    assert_ne!(b["storedHash"], b["expectedHash"]);
    let hex64 = |v: &Value| {
        v.as_str()
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
    };
    assert!(
        hex64(&b["expectedHash"]) && hex64(&b["storedPrevHash"]),
        "{b}"
    );
    assert_eq!(b["storedPrevHash"], b["expectedPrevHash"]);
    assert_eq!(
        verify("?limit=149").await["ok"],
        true,
        "a limit short of the row misses it"
    );

    let rehash = s
        .call(
            "POST",
            "/_sim/audit/tamper",
            Cred::None,
            Some(json!({"id": "a-000200", "how": "edit-and-rehash"})),
        )
        .await;
    assert_eq!(rehash.status, 200, "{}", rehash.body);
    assert!(s.sim.tamper_audit_row("a-000250", AuditTamper::DropHash));
    let three = verify("?limit=100000").await;
    let broken: Vec<Value> = list(&three, "breaks")
        .iter()
        .map(|b| b["id"].clone())
        .collect();
    let expected: Vec<Value> = ["a-000150", "a-000201", "a-000250"]
        .iter()
        .map(|id| json!(audit_event_id(id)))
        .collect();
    assert_eq!(broken, expected, "a re-hashed row breaks its successor");
    assert_eq!(list(&three, "breaks")[2]["storedHash"], Value::Null);
    let row = s
        .sim
        .audit_rows()
        .into_iter()
        .find(|r| r.id == "a-000150")
        .expect("row");
    assert_eq!(
        row.agent.ip, "192.0.2.1",
        "the tampered row is served as tampered"
    );
}

#[tokio::test]
async fn system_administrators_are_listed_with_uuid_ids() {
    let s = persistence().await;
    let admin = s.admin();
    let a = s
        .call("GET", "/admin/system-admins/", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["total"], 1);
    let one = &list(&a.body, "admins")[0];
    assert_eq!(
        keys(one),
        sorted(&[
            "id",
            "email",
            "firstName",
            "lastName",
            "isActive",
            "emailVerified",
            "lastLoginAt",
            "createdAt"
        ])
    );
    assert_eq!(
        (one["id"].clone(), one["email"].clone()),
        (json!(user_uuid("u-0001")), json!("admin@riverside.example"))
    );
    let me = s.call("GET", "/auth/me", Cred::Bearer(&admin), None).await;
    assert_eq!(me.body["isSystemAdmin"], true);
    let morgan = s
        .call("GET", "/auth/me", Cred::Bearer(&s.session()), None)
        .await;
    assert_eq!(morgan.body["isSystemAdmin"], false);
    assert!(s.sim.is_system_admin("u-0001") && !s.sim.is_system_admin("u-2001"));
}

// ------------------------------------------------------------- ground truth

// Each planted leftover and look-alike exists where its route serves it, created where its
// creation row says; each patient access is the row the cursor route serves.
#[tokio::test]
async fn ground_truth_matches_what_the_routes_serve() {
    let s = persistence().await;
    let admin = s.admin();
    let truth = s.sim.ground_truth();
    let over_http = s.call("GET", "/_sim/ground-truth", Cred::None, None).await;
    assert_eq!(over_http.body, serde_json::to_value(&truth).expect("json"));
    let window = truth.window.expect("a window");
    assert_eq!(truth.attacker.user_id, "u-2001");
    assert_eq!(truth.attacker.ips, ["203.0.113.77"]);

    let (events, _) = pull(&s, &admin, "userId=u-2001&limit=100", || {}).await;
    let by_id = |id: &str| events.iter().find(|e| e["id"] == id);
    assert_eq!(truth.patient_accesses.len(), 9);
    for a in &truth.patient_accesses {
        let e = by_id(&a.event_id).unwrap_or_else(|| panic!("{a:?} is served"));
        let override_served = e["subtype"] == "emergency-override";
        assert_eq!(override_served, a.emergency_override, "{e}");
        assert_eq!(e["outcome"], a.outcome.as_str(), "{e}");
        assert_eq!(e["entity"]["resourceType"], a.resource_type.as_str(), "{e}");
        assert!(a.recorded >= window.start && a.recorded <= window.end);
    }
    let overrides: BTreeSet<&str> = truth
        .patient_accesses
        .iter()
        .filter(|a| a.emergency_override && a.outcome == "success")
        .map(|a| a.patient_id.as_str())
        .collect();
    assert_eq!(overrides, BTreeSet::from(["p-0003", "p-0004"]));
    // The real CMIO's own reads (same user, their own laptop), one inside the window, are no
    // attacker rows.
    let own: Vec<&Value> = events
        .iter()
        .filter(|e| e["agent"]["ip"] == "10.20.0.21" && e["type"] == "resource.read")
        .collect();
    assert_eq!(own.len(), 3);
    let attacker_events: HashSet<String> = truth
        .attacker_rows
        .iter()
        .map(|r| audit_event_id(r))
        .collect();
    assert!(
        own.iter()
            .all(|e| !attacker_events.contains(e["id"].as_str().unwrap_or_default()))
    );

    let rows = s.sim.audit_rows();
    let kinds: BTreeSet<String> = truth.leftovers.iter().map(|p| p.kind.to_string()).collect();
    assert_eq!(kinds.len(), 8, "every kind is planted: {kinds:?}");
    for p in truth.leftovers.iter().chain(&truth.look_alikes) {
        assert!(
            s.sim.leftover_state(p.kind, &p.id).is_some(),
            "{p:?} exists"
        );
        let row = rows
            .iter()
            .find(|r| r.id == p.audit_id)
            .expect("its creation row");
        // A member's row is their own acceptance; every other row is the creator's request.
        let agent = match p.kind {
            LeftoverKind::Member => p.id.as_str(),
            _ => p.created_by.as_str(),
        };
        assert_eq!(row.agent.user_id.as_deref(), Some(agent), "{p:?}");
        assert_eq!(row.recorded, p.created_at, "{p:?}");
        assert_eq!(row.outcome, "success");
    }
    let webhooks = s
        .call(
            "GET",
            &format!("/tenant-apps/{APP}/webhooks/"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let served: BTreeSet<&str> = list(&webhooks.body, "webhooks")
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert!(served.contains(EXFIL_HOOK) && truth.leftovers.iter().any(|p| p.id == EXFIL_HOOK));
    assert!(truth.look_alikes.iter().any(|p| p.id == DASHBOARD_HOOK));
    let invitations = s
        .call("GET", "/auth/invitations", Cred::Bearer(&admin), None)
        .await;
    for i in list(&invitations.body, "invitations") {
        let id = i["id"].as_str().unwrap_or_default();
        let mine = truth.leftovers.iter().any(|p| p.id == id);
        assert_eq!(mine, i["invitedBy"] == "u-2001", "{i}");
    }
    assert!(
        truth
            .look_alikes
            .iter()
            .all(|p| p.created_by != "u-2001" || p.created_at < window.start),
        "look-alikes are others' or older"
    );
}

#[tokio::test]
async fn the_default_scenario_plants_nothing() {
    let s = Sim::start().await;
    let truth = s.sim.ground_truth();
    assert_eq!(truth.window, None);
    assert!(
        truth.patient_accesses.is_empty()
            && truth.leftovers.is_empty()
            && truth.look_alikes.is_empty()
    );
    assert_eq!(
        (
            truth.attacker.user_id.as_str(),
            truth.attacker.key_ids.as_slice()
        ),
        ("u-1001", ["k-1001".to_owned()].as_slice())
    );
    assert_eq!(s.sim.audit_rows().len(), 340, "its history is unchanged");
    assert_eq!(s.sim.audit_rows()[339].id, "a-000340");
}
