//! Simulator contract: `/api-keys*` — create, list, get, update, delete, rotate with its grace
//! window, RBAC on admin routes, and API-key scopes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::sim_support::{Cred, KeyCred, Sim};

/// The app of the default scenario's leaked key (`appId` is `Format: uuid` in the OpenAPI).
const DEFAULT_APP: &str = "3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73";
/// Another app.
const NEW_APP: &str = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f";

fn key_cred(key: &serde_json::Value) -> KeyCred {
    KeyCred::of(key)
}

#[tokio::test]
async fn create_get_list_update_delete() {
    let s = Sim::start().await;
    let admin = s.admin();
    let body = json!({"name": "drill-key", "scopes": ["Patient.read"], "expiresAt": "2099-01-01T00:00:00Z", "appId": NEW_APP});
    let created = s
        .call("POST", "/api-keys", Cred::Bearer(&admin), Some(body))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let k = &created.body;
    assert!(k["secret"].is_string() && k["clientId"].is_string());
    assert_eq!(
        (k["active"].clone(), k["rateLimit"].clone()),
        (json!(true), json!(1000))
    );
    let id = k["id"].as_str().expect("id").to_owned();

    let got = s
        .call(
            "GET",
            &format!("/api-keys/{id}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(got.status, 200);
    assert!(
        got.body.get("secret").is_none(),
        "the secret is shown only once"
    );
    assert_eq!(got.body["appId"], NEW_APP);

    let by_name = s
        .call(
            "GET",
            "/api-keys?name=drill-key",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(by_name.body["total"], 1);
    let by_app = s
        .call(
            "GET",
            &format!("/api-keys?appId={DEFAULT_APP}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(by_app.body["total"], 1, "{}", by_app.body);
    assert_eq!(by_app.body["items"][0]["id"], "k-1001");
    assert_eq!(by_app.body["items"][0]["appId"], DEFAULT_APP);
    let inactive = s
        .call("GET", "/api-keys?active=false", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(inactive.body["items"][0]["id"], "k-1006");
    let bad = s
        .call("GET", "/api-keys?active=maybe", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(bad.status, 400);

    let upd = s
        .call(
            "PUT",
            &format!("/api-keys/{id}"),
            Cred::Bearer(&admin),
            Some(json!({"scopes": ["Observation.read"], "active": false})),
        )
        .await;
    assert_eq!(upd.status, 200);
    assert_eq!(upd.body["scopes"], json!(["Observation.read"]));
    assert_eq!(upd.body["active"], false);
    let cred = key_cred(&created.body);
    let off = s
        .call("GET", "/fhir/Observation?patient=p-0001", cred.cred(), None)
        .await;
    assert_eq!(off.status, 401, "an inactive key does not authenticate");

    let del = s
        .call(
            "DELETE",
            &format!("/api-keys/{id}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(del.body, serde_json::Value::Null);
    for (method, path) in [
        ("GET", format!("/api-keys/{id}")),
        ("DELETE", format!("/api-keys/{id}")),
        ("POST", format!("/api-keys/{id}/rotate")),
        ("PUT", format!("/api-keys/{id}")),
    ] {
        let a = s
            .call(method, &path, Cred::Bearer(&admin), Some(json!({})))
            .await;
        assert_eq!(a.status, 404, "{method} {path}");
        assert!(a.error().contains("not found"), "{method} {path}");
    }
    assert!(s.sim.api_key(&id).expect("tombstone").deleted);
}

#[tokio::test]
async fn create_validates_its_body() {
    let s = Sim::start().await;
    let admin = s.admin();
    for body in [
        json!({"scopes": []}),
        json!({"name": "x"}),
        json!({"name": "x", "scopes": [], "expiresAt": "2001-01-01T00:00:00Z"}),
    ] {
        let a = s
            .call(
                "POST",
                "/api-keys",
                Cred::Bearer(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(a.status, 400, "{body}");
        assert!(!a.error().is_empty(), "{body}");
    }
    // postApi-keys: `appId` is `Format: uuid` — anything else is 400 (Assumption: the types do
    // not say ESUS validates it), and nothing is created.
    let keys_before = s.sim.api_keys().len();
    for app in [
        "app-ehr",
        "",
        "3f8e6b2a9c414d7eb5a02c6d9e1f4a73",
        "{3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73}",
        "urn:uuid:3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73",
        "3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a7",
        "3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a7g",
    ] {
        let a = s
            .call(
                "POST",
                "/api-keys",
                Cred::Bearer(&admin),
                Some(json!({"name": "x", "scopes": [], "appId": app})),
            )
            .await;
        assert_eq!(a.status, 400, "appId `{app}`: {}", a.body);
        assert!(a.error().contains("appId must be a UUID"), "{}", a.body);
    }
    assert_eq!(s.sim.api_keys().len(), keys_before, "nothing created");
    for app in [NEW_APP, "C1D2E3F4-A5B6-4C7D-8E9F-0A1B2C3D4E5F"] {
        let a = s
            .call(
                "POST",
                "/api-keys",
                Cred::Bearer(&admin),
                Some(json!({"name": "x", "scopes": [], "appId": app})),
            )
            .await;
        assert_eq!(a.status, 201, "appId `{app}`: {}", a.body);
        assert_eq!(a.body["appId"], app, "kept as given");
    }
    let resp = s
        .http
        .post(format!("{}/api-keys", s.sim.base_url()))
        .bearer_auth(&admin)
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn deleted_key_stops_authenticating_at_once() {
    let s = Sim::start().await;
    let leaked = s.leaked();
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
            .await
            .status,
        200
    );
    let del = s
        .call("DELETE", "/api-keys/k-1001", Cred::Bearer(&s.admin()), None)
        .await;
    assert_eq!(del.status, 204);
    let after = s
        .call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
        .await;
    assert_eq!((after.status, after.issue_code()), (401, "security"));
}

#[tokio::test]
async fn rotate_keeps_the_old_key_valid_for_its_grace_window() {
    let s = Sim::start().await;
    let admin = s.admin();
    let leaked = s.leaked();
    // The checklist's curl sends no body at all: the default grace of 24 h applies.
    let resp = s
        .http
        .post(format!("{}/api-keys/k-1001/rotate", s.sim.base_url()))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    let new: serde_json::Value = resp.json().await.expect("json");
    assert_ne!(new["id"], "k-1001");
    assert_ne!(new["clientId"], "ck_prod_ehr_integration_2024");
    assert_eq!(new["name"], "prod-ehr-integration-2024");
    assert_eq!(new["scopes"], json!(["Patient.read", "Observation.read"]));
    let fresh = key_cred(&new);

    let old = s
        .call("GET", "/api-keys/k-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(old.body["supersededBy"], new["id"]);
    assert!(old.body["supersededAt"].is_string());
    assert_eq!(old.body["active"], true, "inside the grace window");

    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
            .await
            .status,
        200
    );
    s.sim.advance_clock(Duration::from_secs(23 * 3600));
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
            .await
            .status,
        200
    );
    s.sim.advance_clock(Duration::from_secs(2 * 3600));
    let dead = s
        .call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
        .await;
    assert_eq!(dead.status, 401, "after the grace window");
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", fresh.cred(), None)
            .await
            .status,
        200
    );
    // The ready admin token expired during those hours: log in again.
    let admin = s
        .login("admin@riverside.example", "admin-drill-password")
        .await;
    let old = s
        .call("GET", "/api-keys/k-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(old.body["active"], false);
}

#[tokio::test]
async fn rotate_with_zero_grace_kills_the_old_key_at_once() {
    let s = Sim::start().await;
    let admin = s.admin();
    let leaked = s.leaked();
    let a = s
        .call(
            "POST",
            "/api-keys/k-1001/rotate",
            Cred::Bearer(&admin),
            Some(json!({"graceHours": 0})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body["secret"].is_string());
    let dead = s
        .call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
        .await;
    assert_eq!(dead.status, 401);
    assert!(!s.sim.api_key("k-1001").expect("key").usable_now);

    let negative = s
        .call(
            "POST",
            "/api-keys/k-1003/rotate",
            Cred::Bearer(&admin),
            Some(json!({"graceHours": -1})),
        )
        .await;
    assert_eq!(negative.status, 400);
}

#[tokio::test]
async fn admin_routes_refuse_non_admins_and_api_keys() {
    let s = Sim::start().await;
    let practitioner = s
        .login("pat.practitioner@riverside.example", "pat-drill-password")
        .await;
    let leaked = s.leaked();
    let routes = [
        ("GET", "/api-keys"),
        ("POST", "/api-keys"),
        ("GET", "/api-keys/k-1001"),
        ("PUT", "/api-keys/k-1001"),
        ("DELETE", "/api-keys/k-1001"),
        ("POST", "/api-keys/k-1001/rotate"),
        ("GET", "/admin/audit"),
        ("GET", "/admin/audit/user/u-1001"),
        ("GET", "/admin/audit/patient/p-0001"),
        ("GET", "/roles"),
        ("POST", "/roles/users/u-1002/assign"),
        (
            "DELETE",
            "/roles/users/u-1002/93b367c4-bd08-53f6-b2ea-d469e35db3e2",
        ),
        ("GET", "/admin/users"),
        ("DELETE", "/admin/users/u-1002"),
        ("PATCH", "/admin/users/u-1002/role"),
    ];
    for (method, path) in routes {
        let body = Some(
            json!({"roleId": "ab7fdf23-5b53-55a7-bdbe-c23a17110ab5", "name": "x", "scopes": [], "role": "Admin"}),
        );
        let p = s
            .call(method, path, Cred::Bearer(&practitioner), body.clone())
            .await;
        assert_eq!(p.status, 403, "{method} {path} as practitioner");
        assert!(!p.error().is_empty());
        let k = s.call(method, path, leaked.cred(), body.clone()).await;
        assert_eq!(k.status, 403, "{method} {path} with an API key");
        let none = s.call(method, path, Cred::None, body).await;
        assert_eq!(none.status, 401, "{method} {path} without credentials");
    }
    assert!(
        s.sim.api_key("k-1001").expect("key").usable_now,
        "nothing changed"
    );
    assert_eq!(s.sim.org_role_of("u-1002").as_deref(), Some("Member"));
}

#[tokio::test]
async fn api_keys_are_limited_to_their_scopes() {
    let s = Sim::start().await;
    let leaked = s.leaked();
    let observation_only = "ck_analytics_export:sk_live_analytics_0b5d";
    let wildcard = "ck_legacy_sync:sk_live_legacy_91ce";
    let expired = "ck_old_reporting:sk_live_oldrep_77f0";
    let check = |cred: &'static str, path: &'static str, want: u16| (cred, path, want);
    let cases = [
        check(observation_only, "/fhir/Patient/p-0001", 403),
        check(observation_only, "/fhir/Observation?patient=p-0001", 200),
        check(wildcard, "/fhir/Patient/p-0001", 200),
        check(wildcard, "/fhir/Consent?patient=p-0001", 200),
        check(expired, "/fhir/Observation?patient=p-0001", 401),
        check(
            "ck_prod_ehr_integration_2024:wrong",
            "/fhir/Patient/p-0001",
            401,
        ),
        check("no-colon", "/fhir/Patient/p-0001", 401),
    ];
    for (cred, path, want) in cases {
        let a = s.call("GET", path, Cred::Key(cred), None).await;
        assert_eq!(a.status, want, "{cred} {path}: {}", a.body);
    }
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
            .await
            .status,
        200
    );
    let consent = s.call("GET", "/fhir/Consent", leaked.cred(), None).await;
    assert_eq!(
        consent.status, 403,
        "Consent.read is not in the leaked key's scopes"
    );
}

/// The body of a refused credential, with the status.
async fn refusal(s: &Sim, path: &str, cred: Cred<'_>, headers: &[(&str, &str)]) -> (u16, Value) {
    let a = s.call_with("GET", path, cred, None, headers).await;
    (a.status, a.body)
}

// ESUS's quickstart (lib/esus.ts, lib/fhir.ts, lib/api-client.ts) sends `X-App-Id: <app id>`
// with every `X-API-Key`. Whether ESUS refuses a key of an app without it is undocumented: the
// simulator does (Assumption, docs/esus-api.md "Credentials"), and the refusal is the same 401
// body as any refused key, so a client cannot tell why.
#[tokio::test]
async fn a_key_of_an_app_needs_its_x_app_id_and_its_refusal_tells_nothing() {
    let s = Sim::start().await;
    let leaked = s.leaked();
    let app = leaked.app.clone().expect("the leaked key has an appId");
    let other_app = "0b6f3c1e-7d2a-4e58-9a41-c3d5e7f90b12";
    let upper = app.to_uppercase();
    for path in ["/fhir/Patient/p-0001", "/auth/me"] {
        for name in ["X-App-Id", "x-app-id", "X-APP-ID"] {
            let (status, body) = refusal(&s, path, Cred::Key(&leaked.key), &[(name, &app)]).await;
            assert_eq!(status, 200, "{path} with `{name}`: {body}");
        }
        // The reference: a wrong secret with the right app id.
        let wrong = refusal(
            &s,
            path,
            Cred::Key("ck_prod_ehr_integration_2024:wrong"),
            &[("X-App-Id", &app)],
        )
        .await;
        assert_eq!(wrong.0, 401, "{path}: {}", wrong.1);
        let cases: [(&str, Vec<(&str, &str)>); 5] = [
            ("without X-App-Id", vec![]),
            ("with another app's id", vec![("X-App-Id", other_app)]),
            ("with its id in upper case", vec![("X-App-Id", &upper)]),
            ("with an empty X-App-Id", vec![("X-App-Id", "")]),
            (
                "with X-App-Id twice",
                vec![("X-App-Id", &app), ("X-App-Id", &app)],
            ),
        ];
        for (what, headers) in cases {
            let got = refusal(&s, path, Cred::Key(&leaked.key), &headers).await;
            assert_eq!(got, wrong, "{path} {what}: the same 401 as a wrong secret");
        }
    }
    // Refused requests do not touch the key: it still works with its app id.
    assert!(s.sim.api_key("k-1001").expect("key").usable_now);
    let ok = s
        .call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
        .await;
    assert_eq!(ok.status, 200);
}

// A key of no app authenticates without X-App-Id, and is refused with one (hardest: the header
// names an app the key does not belong to).
#[tokio::test]
async fn a_key_of_no_app_is_refused_when_an_x_app_id_comes_with_it() {
    let s = Sim::start().await;
    let app = s.leaked().app.expect("the leaked key's app");
    let analytics = "ck_analytics_export:sk_live_analytics_0b5d";
    let path = "/fhir/Observation?patient=p-0001";
    let plain = s.call("GET", path, Cred::Key(analytics), None).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    let wrong = refusal(&s, path, Cred::Key("ck_analytics_export:wrong"), &[]).await;
    assert_eq!(wrong.0, 401);
    for value in [app.as_str(), "0b6f3c1e-7d2a-4e58-9a41-c3d5e7f90b12", ""] {
        let got = refusal(&s, path, Cred::Key(analytics), &[("X-App-Id", value)]).await;
        assert_eq!(got, wrong, "X-App-Id `{value}` on a key of no app");
    }
    // Every other refusal reads the same too: expired, deleted, unknown.
    let expired = refusal(
        &s,
        path,
        Cred::Key("ck_old_reporting:sk_live_oldrep_77f0"),
        &[],
    )
    .await;
    assert_eq!(expired, wrong, "an expired key");
    let unknown = refusal(&s, path, Cred::Key("ck_nobody:sk_nothing"), &[]).await;
    assert_eq!(unknown, wrong, "an unknown client id");
    let del = s
        .call("DELETE", "/api-keys/k-1002", Cred::Bearer(&s.admin()), None)
        .await;
    assert_eq!(del.status, 204);
    let deleted = refusal(&s, path, Cred::Key(analytics), &[]).await;
    assert_eq!(deleted, wrong, "a deleted key");
}

// Whether rotate works on a deleted key is undocumented. By default it is 404, like every route
// of a deleted key, and nothing is created.
#[tokio::test]
async fn rotating_a_deleted_key_is_404_by_default_and_creates_nothing() {
    let s = Sim::start().await;
    let admin = s.admin();
    let del = s
        .call("DELETE", "/api-keys/k-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(del.status, 204);
    let before = s.sim.api_keys().len();
    for body in [json!({}), json!({"graceHours": 0})] {
        let a = s
            .call(
                "POST",
                "/api-keys/k-1001/rotate",
                Cred::Bearer(&admin),
                Some(body),
            )
            .await;
        assert_eq!(a.status, 404, "{}", a.body);
        assert!(a.error().contains("not found"));
    }
    assert_eq!(s.sim.api_keys().len(), before, "no successor created");
    let tomb = s.sim.api_key("k-1001").expect("tombstone");
    assert_eq!((tomb.superseded_by, tomb.superseded_at), (None, None));
}

/// The default scenario with the `behaviour.rotate_deleted_keys` switch on.
fn rotate_deleted_scenario() -> String {
    format!(
        "{}\nbehaviour:\n  rotate_deleted_keys: true\n",
        esus_ir::sim::DEFAULT_SCENARIO_YAML
    )
}

// The scenario switch: a deleted key is rotated like a live one — a new live key with the old
// one's name, scopes and app — and the deleted key (still 404 to the API) names it.
#[tokio::test]
async fn the_rotate_deleted_keys_switch_rotates_a_deleted_key_like_a_live_one() {
    let config = esus_ir::sim::SimConfig::default()
        .with_scenario_yaml(&rotate_deleted_scenario())
        .expect("scenario");
    let s = Sim::with(config).await;
    let admin = s.admin();
    let leaked = s.leaked();
    let del = s
        .call("DELETE", "/api-keys/k-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(del.status, 204);
    let rotated = s
        .call(
            "POST",
            "/api-keys/k-1001/rotate",
            Cred::Bearer(&admin),
            Some(json!({"graceHours": 24})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = &rotated.body;
    let new_id = new["id"].as_str().expect("id").to_owned();
    assert_ne!(new_id, "k-1001");
    assert!(new["secret"].is_string());
    assert_eq!(new["name"], "prod-ehr-integration-2024");
    assert_eq!(new["scopes"], json!(["Patient.read", "Observation.read"]));
    assert_eq!(new["appId"], leaked.app.clone().expect("app").as_str());
    assert_eq!(new["active"], true, "created as for a live key");
    assert!(new.get("supersededBy").is_none());
    let fresh = key_cred(new);
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", fresh.cred(), None)
            .await
            .status,
        200
    );
    // The deleted key stays deleted: 404, unlisted, dead even inside the 24 h grace window.
    let old = s
        .call("GET", "/api-keys/k-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(old.status, 404);
    let listed = s.call("GET", "/api-keys", Cred::Bearer(&admin), None).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&"k-1001") && ids.contains(&new_id.as_str()),
        "{ids:?}"
    );
    let refused = s
        .call("GET", "/fhir/Patient/p-0001", leaked.cred(), None)
        .await;
    assert_eq!(refused.status, 401);
    // …but its state names the successor.
    let tomb = s.sim.api_key("k-1001").expect("tombstone");
    assert!(tomb.deleted && !tomb.usable_now, "{tomb:?}");
    assert_eq!(tomb.superseded_by.as_deref(), Some(new_id.as_str()));
    assert!(tomb.superseded_at.is_some());
    // Other routes of the deleted key stay 404 under the switch.
    for (method, path) in [("PUT", "/api-keys/k-1001"), ("DELETE", "/api-keys/k-1001")] {
        let a = s
            .call(method, path, Cred::Bearer(&admin), Some(json!({})))
            .await;
        assert_eq!(a.status, 404, "{method} {path}");
    }
    // An unknown key is still 404.
    let unknown = s
        .call(
            "POST",
            "/api-keys/k-nope/rotate",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn the_behaviour_section_refuses_unknown_switches() {
    let yaml = format!(
        "{}\nbehaviour:\n  rotate_deleted: true\n",
        esus_ir::sim::DEFAULT_SCENARIO_YAML
    );
    let err = esus_ir::sim::SimConfig::default()
        .with_scenario_yaml(&yaml)
        .expect_err("an unknown switch");
    assert!(err.to_string().contains("rotate_deleted"), "{err}");
}
