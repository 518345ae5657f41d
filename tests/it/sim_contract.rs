//! Simulator contract against ESUS's OpenAPI: every test names the operation it follows, and
//! checks the documented shape or the behaviour the simulator chose where ESUS is silent
//! (docs/esus-api.md, "simulator assumption"). These are the behaviours a client must cope
//! with, so they are asserted exactly — a simulator that agreed with a lenient client would
//! fail them.

use std::time::Duration;

use esus_ir::sim::{DEFAULT_SCENARIO_YAML, SimConfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::sim_support::{Answer, Cred, Sim, keys, sorted};

const PAT: (&str, &str) = ("pat.practitioner@riverside.example", "pat-drill-password");
const DANA: (&str, &str) = ("dana.dev@riverside.example", "dana-drill-password");
const ERIN: (&str, &str) = ("erin.er@riverside.example", "erin-drill-password");
const RAE: (&str, &str) = ("rae.research@riverside.example", "rae-drill-password");

/// The default scenario with known tokens for u-1001's other two sessions.
async fn with_known_session_tokens() -> Sim {
    let yaml = DEFAULT_SCENARIO_YAML
        .replace(
            "created_minutes_ago: 400 }",
            "created_minutes_ago: 400, access_token: at-1002, refresh_token: rt-1002 }",
        )
        .replace(
            "created_minutes_ago: 20 }",
            "created_minutes_ago: 20, access_token: at-1003, refresh_token: rt-1003 }",
        );
    Sim::with(
        SimConfig::default()
            .with_scenario_yaml(&yaml)
            .expect("yaml"),
    )
    .await
}

async fn refresh(s: &Sim, token: &str) -> Answer {
    s.call(
        "POST",
        "/auth/refresh",
        Cred::None,
        Some(json!({"refreshToken": token})),
    )
    .await
}

fn is_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------- sessions

// OpenAPI: getAuthSessions — "every active session for the authenticated user".
#[tokio::test]
async fn get_auth_sessions_lists_only_the_callers_own_even_for_an_admin() {
    let s = Sim::start().await;
    let mine = s
        .call("GET", "/auth/sessions", Cred::Bearer(&s.session()), None)
        .await;
    assert_eq!(mine.status, 200);
    let listed: Vec<&str> = mine.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|x| x["sessionId"].as_str().expect("id"))
        .collect();
    assert_eq!(sorted(&listed), sorted(&["s-1001", "s-1002", "s-1003"]));
    assert_eq!(mine.body["total"], 3);
    let s1001 = &mine.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|x| x["sessionId"] == "s-1001")
        .expect("s-1001")
        .clone();
    assert_eq!(
        keys(s1001),
        sorted(&[
            "sessionId",
            "createdAt",
            "lastSeenAt",
            "ipAddress",
            "userAgent",
            "current"
        ])
    );
    assert_eq!(s1001["ipAddress"], "203.0.113.66");
    assert_eq!(s1001["current"], true);

    let admin = s
        .call("GET", "/auth/sessions", Cred::Bearer(&s.admin()), None)
        .await;
    let admin_ids: Vec<&str> = admin.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|x| x["sessionId"].as_str().expect("id"))
        .collect();
    assert_eq!(
        admin_ids,
        ["s-ready-u-0001"],
        "an admin sees only their own"
    );
}

// OpenAPI: deleteAuthSessionsBySessionId — "a single session belonging to the authenticated
// user". Assumption: another user's session answers exactly like an unknown one (404).
#[tokio::test]
async fn an_admin_cannot_delete_another_users_session_and_it_stays_alive() {
    let s = Sim::start().await;
    let admin = s.admin();
    let foreign = s
        .call(
            "DELETE",
            "/auth/sessions/s-1001",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let unknown = s
        .call(
            "DELETE",
            "/auth/sessions/s-1999",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!((foreign.status, unknown.status), (404, 404));
    assert_eq!(
        foreign.error().replace("s-1001", "ID"),
        unknown.error().replace("s-1999", "ID"),
        "indistinguishable from an unknown session"
    );
    assert!(
        s.sim
            .sessions_of("u-1001")
            .iter()
            .all(|x| !x.revoked && x.live_refresh_tokens == 1)
    );
    let still = s
        .call("GET", "/auth/me", Cred::Bearer(&s.session()), None)
        .await;
    assert_eq!(still.status, 200, "the stolen session is still alive");
    // Its owner can end it: 204, no body.
    let own = s
        .call(
            "DELETE",
            "/auth/sessions/s-1002",
            Cred::Bearer(&s.session()),
            None,
        )
        .await;
    assert_eq!((own.status, own.body.clone()), (204, Value::Null));
}

// OpenAPI: postAuthLogout-all — "Revokes every active session and refresh token for the
// authenticated user". Through the stolen token, all three of u-1001's sessions end.
#[tokio::test]
async fn logout_all_ends_all_three_sessions_and_burns_their_refresh_tokens() {
    let s = with_known_session_tokens().await;
    let stolen = s.session();
    let stolen_refresh = s
        .sim
        .ready()
        .session_refresh_token
        .expose_secret()
        .to_owned();
    // A refresh before the logout mints a new refresh token: it must be burned too.
    let rotated = refresh(&s, "rt-1002").await;
    assert_eq!(rotated.status, 200);
    let rt_new = rotated.body["refreshToken"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let at_new = rotated.body["accessToken"]
        .as_str()
        .expect("access")
        .to_owned();

    let out = s
        .call("POST", "/auth/logout-all", Cred::Bearer(&stolen), None)
        .await;
    assert_eq!(out.status, 200);
    assert_eq!(out.body, json!({"success": true, "revoked": 3}));

    let sessions = s.sim.sessions_of("u-1001");
    assert_eq!(sessions.len(), 3);
    assert!(
        sessions
            .iter()
            .all(|x| x.revoked && x.live_refresh_tokens == 0),
        "{sessions:?}"
    );
    for rt in [stolen_refresh.as_str(), "rt-1003", rt_new.as_str()] {
        assert_eq!(refresh(&s, rt).await.status, 401, "refresh with {rt}");
    }
    for at in [stolen.as_str(), "at-1002", "at-1003", at_new.as_str()] {
        let me = s.call("GET", "/auth/me", Cred::Bearer(at), None).await;
        assert_eq!(me.status, 401, "access token {at}");
    }
    // Nobody else was touched.
    assert!(s.sim.sessions_of("u-1002").iter().all(|x| !x.revoked));
    assert_eq!(
        s.call("GET", "/auth/me", Cred::Bearer(&s.admin()), None)
            .await
            .status,
        200
    );
    // A second logout-all with the dead token is refused.
    let again = s
        .call("POST", "/auth/logout-all", Cred::Bearer(&stolen), None)
        .await;
    assert_eq!(again.status, 401);
}

// OpenAPI: postAuthLogout — "Invalidate the current session and burn the refresh token tied to
// this device".
#[tokio::test]
async fn logout_ends_the_current_session_only_and_burns_its_refresh_token() {
    let s = with_known_session_tokens().await;
    let out = s
        .call("POST", "/auth/logout", Cred::Bearer("at-1002"), None)
        .await;
    assert_eq!(
        (out.status, out.body.clone()),
        (200, json!({"success": true}))
    );
    let by_id = |id: &str| {
        s.sim
            .sessions_of("u-1001")
            .into_iter()
            .find(|x| x.id == id)
            .expect("session")
    };
    let gone = by_id("s-1002");
    assert!(gone.revoked && gone.live_refresh_tokens == 0);
    assert_eq!(refresh(&s, "rt-1002").await.status, 401);
    for other in ["s-1001", "s-1003"] {
        let x = by_id(other);
        assert!(!x.revoked && x.live_refresh_tokens == 1, "{other}");
    }
    assert_eq!(refresh(&s, "rt-1003").await.status, 200);
}

// OpenAPI: postAuthRefresh. Refresh tokens live 30 days (ESUS's default per the facts file);
// a used one is 401.
#[tokio::test]
async fn refresh_tokens_live_thirty_days_on_the_simulated_clock() {
    let s = Sim::start().await;
    let first = s
        .sim
        .ready()
        .session_refresh_token
        .expose_secret()
        .to_owned();
    let admin_refresh = s.sim.ready().admin_refresh_token.expose_secret().to_owned();
    s.sim
        .advance_clock(Duration::from_secs(29 * 24 * 3600 + 23 * 3600));
    let ok = refresh(&s, &first).await;
    assert_eq!(ok.status, 200, "29 days 23 hours: still alive");
    let second = ok.body["refreshToken"].as_str().expect("rt").to_owned();
    assert_eq!(
        refresh(&s, &first).await.status,
        401,
        "a used token is dead"
    );
    s.sim.advance_clock(Duration::from_secs(2 * 3600));
    let expired = refresh(&s, &admin_refresh).await;
    assert_eq!(expired.status, 401, "past 30 days");
    assert!(expired.error().contains("expired"), "{}", expired.body);
    assert_eq!(
        refresh(&s, &second).await.status,
        200,
        "the new token counts from its own issue"
    );
}

// ---------------------------------------------------------------- /auth/me

// OpenAPI: getAuthMe — exactly the documented fields.
#[tokio::test]
async fn auth_me_has_exactly_the_openapi_shape() {
    let s = Sim::start().await;
    let me = s
        .call("GET", "/auth/me", Cred::Bearer(&s.session()), None)
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(
        keys(&me.body),
        sorted(&[
            "id",
            "email",
            "firstName",
            "lastName",
            "isActive",
            "isSystemAdmin",
            "avatarUrl",
            "activeOrganizationId",
            "organizations"
        ])
    );
    assert_eq!(me.body["id"], "u-1001");
    assert_eq!(
        (me.body["firstName"].clone(), me.body["lastName"].clone()),
        (json!("Dana"), json!("Dev"))
    );
    assert_eq!(me.body["isActive"], true);
    assert_eq!(me.body["isSystemAdmin"], false);
    assert_eq!(me.body["avatarUrl"], Value::Null);
    assert_eq!(me.body["activeOrganizationId"], "org-0001");
    let orgs = me.body["organizations"].as_array().expect("organizations");
    assert_eq!(orgs.len(), 1);
    let org = &orgs[0];
    assert_eq!(
        keys(org),
        sorted(&[
            "organizationId",
            "organizationName",
            "role",
            "roles",
            "permissions"
        ])
    );
    assert_eq!(org["organizationName"], "Riverside Health");
    assert_eq!(org["role"], "Member", "the organization role");
    assert_eq!(org["roles"], json!(["practitioner", "api-client"]));
    let perms = org["permissions"].as_array().expect("permissions");
    assert!(!perms.is_empty());
    for p in perms {
        assert_eq!(keys(p), sorted(&["resource", "action"]), "{p}");
    }
    assert!(perms.contains(&json!({"resource": "Patient", "action": "read"})));

    let admin = s
        .call("GET", "/auth/me", Cred::Bearer(&s.admin()), None)
        .await;
    assert_eq!(admin.body["organizations"][0]["role"], "Admin");
    let by_key = s.call("GET", "/auth/me", s.leaked().cred(), None).await;
    assert_eq!(
        by_key.body["id"], "u-1001",
        "an API key: its owner's profile"
    );
}

// ---------------------------------------------------------------- roles

// OpenAPI: getRoles — `id` a UUID, `name` the slug; stable across starts.
#[tokio::test]
async fn role_ids_are_uuids_stable_across_starts() {
    let a = Sim::start().await;
    let b = Sim::start().await;
    let list_a = a
        .call("GET", "/roles", Cred::Bearer(&a.admin()), None)
        .await;
    // The OpenAPI writes the path with a trailing slash.
    let list_b = b
        .call("GET", "/roles/", Cred::Bearer(&b.admin()), None)
        .await;
    assert_eq!((list_a.status, list_b.status), (200, 200));
    assert_eq!(list_a.body, list_b.body, "same ids at every start");
    for role in list_a.body.as_array().expect("bare array") {
        assert_eq!(
            keys(role),
            sorted(&["id", "name", "description", "isSystem", "permissions"])
        );
        let id = role["id"].as_str().expect("id");
        assert!(is_uuid(id), "{id}");
        let name = role["name"].as_str().expect("name");
        assert_eq!(esus_ir::sim::role_id(name), Some(id));
        for p in role["permissions"].as_array().expect("permissions") {
            assert_eq!(keys(p), sorted(&["id", "resource", "action"]));
        }
    }
}

// OpenAPI: postRolesUsersByUserIdAssign, deleteRolesUsersByUserIdByRoleId — `{"success":true}`;
// a role change applies to the user's live sessions at once.
#[tokio::test]
async fn role_assignment_answers_success_and_applies_at_once() {
    let s = Sim::start().await;
    let admin = s.admin();
    let rae = s.login(RAE.0, RAE.1).await;
    let denied = s
        .call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&rae), None)
        .await;
    assert_eq!(denied.status, 403, "researchers lack Patient.read");
    let practitioner = esus_ir::sim::role_id("practitioner").expect("uuid");
    let a = s
        .call(
            "POST",
            "/roles/users/u-1004/assign",
            Cred::Bearer(&admin),
            Some(json!({"roleId": practitioner})),
        )
        .await;
    assert_eq!((a.status, a.body.clone()), (200, json!({"success": true})));
    let allowed = s
        .call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&rae), None)
        .await;
    assert_eq!(allowed.status, 200);
    let d = s
        .call(
            "DELETE",
            &format!("/roles/users/u-1004/{practitioner}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!((d.status, d.body.clone()), (200, json!({"success": true})));
    let slug = s
        .call(
            "DELETE",
            "/roles/users/u-1001/api-client",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(slug.status, 404, "a slug is not a role id");
    assert!(slug.error().contains("not found"));
}

// ---------------------------------------------------------------- admin users

// OpenAPI: getAdminUsers — members of the current organization.
#[tokio::test]
async fn admin_users_lists_members_in_the_openapi_shape() {
    let s = Sim::start().await;
    let a = s
        .call("GET", "/admin/users", Cred::Bearer(&s.admin()), None)
        .await;
    assert_eq!(a.status, 200);
    let list = a.body.as_array().expect("bare array");
    let ids: Vec<&str> = list.iter().map(|u| u["id"].as_str().expect("id")).collect();
    assert_eq!(
        ids,
        ["u-0001", "u-1001", "u-1002", "u-1003", "u-1004", "u-1005"]
    );
    for u in list {
        assert_eq!(
            keys(u),
            sorted(&["id", "email", "firstName", "lastName", "role", "joinedAt"])
        );
        assert!(["Admin", "Member", "ReadOnly"].contains(&u["role"].as_str().expect("role")));
    }
    assert_eq!(list[0]["role"], "Admin");
    assert_eq!(list[1]["role"], "Member");
    assert_eq!(list[1]["firstName"], "Dana");
}

// OpenAPI: deleteAdminUsersById. Assumptions: the removed user's sessions stay alive for
// /auth/* but every organization route refuses them (403); their API keys keep working.
#[tokio::test]
async fn removing_a_user_keeps_auth_routes_refuses_org_routes_and_spares_keys() {
    let s = Sim::start().await;
    let admin = s.admin();
    let stolen = s.session();
    let out = s
        .call("DELETE", "/admin/users/u-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(
        (out.status, out.body.clone()),
        (200, json!({"success": true}))
    );
    assert_eq!(s.sim.org_role_of("u-1001"), None);

    let me = s.call("GET", "/auth/me", Cred::Bearer(&stolen), None).await;
    assert_eq!(me.status, 200, "the session is alive for /auth/*");
    assert_eq!(me.body["organizations"], json!([]));
    assert_eq!(me.body["activeOrganizationId"], Value::Null);
    let sessions = s
        .call("GET", "/auth/sessions", Cred::Bearer(&stolen), None)
        .await;
    assert_eq!(sessions.body["total"], 3);

    for path in [
        "/fhir/Patient/p-0001",
        "/fhir/Observation?patient=p-0001",
        "/fhir/Consent",
        "/fhir/Subscription",
        "/api-keys",
        "/admin/users",
        "/roles",
    ] {
        let a = s.call("GET", path, Cred::Bearer(&stolen), None).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
    }
    let leaked = s
        .call("GET", "/fhir/Patient/p-0001", s.leaked().cred(), None)
        .await;
    assert_eq!(
        leaked.status, 200,
        "removing a member does not revoke their keys"
    );
    let list = s
        .call("GET", "/admin/users", Cred::Bearer(&admin), None)
        .await;
    assert!(
        list.body
            .as_array()
            .expect("array")
            .iter()
            .all(|u| u["id"] != "u-1001")
    );
    let again = s
        .call("DELETE", "/admin/users/u-1001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(again.status, 404);
    assert!(!again.error().is_empty());
    // The stolen session can still end itself.
    let all = s
        .call("POST", "/auth/logout-all", Cred::Bearer(&stolen), None)
        .await;
    assert_eq!(all.body, json!({"success": true, "revoked": 3}));
}

// OpenAPI: patchAdminUsersByIdRole — `{"role": "Admin"|"Member"|"ReadOnly"}`. Assumptions:
// ReadOnly sessions may only GET organization routes; Member acts by RBAC roles; Admin acts
// as an administrator; RBAC `admin` keeps admin rights whatever the organization role.
#[tokio::test]
async fn organization_roles_gate_what_a_session_may_do() {
    let s = Sim::start().await;
    let admin = s.admin();
    let set = |id: &'static str, role: Value| {
        let admin = admin.clone();
        let s = &s;
        async move {
            s.call(
                "PATCH",
                &format!("/admin/users/{id}/role"),
                Cred::Bearer(&admin),
                Some(json!({"role": role})),
            )
            .await
        }
    };
    let pat = s.login(PAT.0, PAT.1).await;
    let ok = set("u-1002", json!("ReadOnly")).await;
    assert_eq!(
        (ok.status, ok.body.clone()),
        (200, json!({"success": true}))
    );
    assert_eq!(s.sim.org_role_of("u-1002").as_deref(), Some("ReadOnly"));
    let read = s
        .call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(read.status, 200, "ReadOnly may read");
    let write = s
        .call(
            "PATCH",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&pat),
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(write.status, 403, "ReadOnly may not write: {}", write.body);
    assert_eq!(write.issue_code(), "forbidden");

    let rae = s.login(RAE.0, RAE.1).await;
    assert_eq!(
        s.call("GET", "/api-keys", Cred::Bearer(&rae), None)
            .await
            .status,
        403
    );
    assert_eq!(set("u-1004", json!("Admin")).await.status, 200);
    assert_eq!(
        s.call("GET", "/api-keys", Cred::Bearer(&rae), None)
            .await
            .status,
        200,
        "an organization Admin acts as admin without the RBAC role"
    );

    assert_eq!(set("u-0001", json!("Member")).await.status, 200);
    assert_eq!(
        s.call("GET", "/admin/users", Cred::Bearer(&admin), None)
            .await
            .status,
        200,
        "demoting an RBAC admin to Member leaves them admin"
    );

    for bad in [json!("Owner"), json!("admin"), json!(1), Value::Null] {
        let a = set("u-1003", bad.clone()).await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(a.error().contains("Admin, Member, ReadOnly"));
    }
    assert_eq!(set("u-9999", json!("Member")).await.status, 404);
    assert_eq!(s.sim.org_role_of("u-1003").as_deref(), Some("Member"));
}

// ---------------------------------------------------------------- Consent

// OpenAPI: putFhirConsentById — ESUS's own body. Assumption: fields outside that schema are 400
// naming the field, so a client that PUTs back the FHIR resource it read is caught.
#[tokio::test]
async fn put_consent_refuses_a_fhir_resource_and_accepts_esus_body() {
    let s = Sim::start().await;
    let admin = s.admin();
    let read = s
        .call("GET", "/fhir/Consent/c-0001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(read.body["resourceType"], "Consent");
    let mut resource = read.body.clone();
    resource["status"] = json!("inactive");
    let back = s
        .call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(resource),
        )
        .await;
    assert_eq!(back.status, 400);
    assert_eq!(back.issue_code(), "invalid");
    let diag = back.body["issue"][0]["diagnostics"]
        .as_str()
        .expect("diagnostics");
    assert!(diag.contains("`resourceType`"), "{diag}");
    for (body, field) in [
        (
            json!({"status": "inactive", "patientId": "p-0001"}),
            "`patientId`",
        ),
        (
            json!({"status": "inactive", "patient": {"reference": "Patient/p-0001"}}),
            "`patient`",
        ),
        (json!({"id": "c-0001"}), "`id`"),
        (json!({"meta": {}}), "`meta`"),
        (
            json!({"provision": {"period": {"finish": "2020-01-01"}}}),
            "`provision.period.finish`",
        ),
        (json!({"provision": {"kind": "permit"}}), "`provision.kind`"),
        (json!({"policy": [{"url": "x"}]}), "`policy[0].url`"),
    ] {
        let a = s
            .call(
                "PUT",
                "/fhir/Consent/c-0001",
                Cred::Bearer(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(a.status, 400, "{body}");
        let diag = a.body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default();
        assert!(diag.contains(field), "{body}: {diag}");
    }
    let typed = s
        .call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(json!({"scope": 7})),
        )
        .await;
    assert_eq!(typed.status, 400, "scope is a string");
    let unchanged = s
        .call("GET", "/fhir/Consent/c-0001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(
        unchanged.body["meta"]["versionId"], "1",
        "nothing was applied"
    );
    assert_eq!(unchanged.body["status"], "active");

    let esus = json!({
        "status": "active", "scope": "patient-privacy", "performerId": "u-1002",
        "policy": [{"authority": "https://riverside.example", "uri": "https://riverside.example/policy"}],
        "provision": {"type": "permit", "period": {"start": "2025-01-01T00:00:00Z"},
                      "purpose": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}]},
    });
    let ok = s
        .call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(esus),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["resourceType"], "Consent");
    assert_eq!(ok.body["meta"]["versionId"], "2");
    assert_eq!(ok.body["patient"]["reference"], "Patient/p-0001");
    assert_eq!(
        ok.body["provision"]["purpose"][0]["coding"][0]["code"],
        "TREAT"
    );
    assert_eq!(
        ok.body["policy"][0]["authority"],
        "https://riverside.example"
    );
}

// OpenAPI: putFhirConsentById. Assumption: PUT replaces — an omitted `provision` is cleared, so
// a PUT of `{"status":"active"}` on a stale Consent makes it open-ended and in force again.
#[tokio::test]
async fn put_consent_replaces_and_an_omitted_period_is_cleared() {
    let s = Sim::start().await;
    let admin = s.admin();
    let pat = s.login(PAT.0, PAT.1).await;
    let stale = s
        .call("GET", "/fhir/Patient/p-0002", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(stale.status, 403, "c-0002 ended 35 days ago");
    let put = s
        .call(
            "PUT",
            "/fhir/Consent/c-0002",
            Cred::Bearer(&admin),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(put.status, 200);
    assert!(put.body.get("provision").is_none(), "{}", put.body);
    let open = s
        .call("GET", "/fhir/Patient/p-0002", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(open.status, 200, "the period is gone: in force again");
}

// OpenAPI: patchFhirConsentById — same fields, all optional, merged: expiring is
// `PATCH {"status":"inactive"}`.
#[tokio::test]
async fn patch_consent_status_inactive_expires_it_and_merges() {
    let s = Sim::start().await;
    let admin = s.admin();
    let pat = s.login(PAT.0, PAT.1).await;
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
            .await
            .status,
        200
    );
    let before = s
        .call("GET", "/fhir/Consent/c-0001", Cred::Bearer(&admin), None)
        .await;
    let p = s
        .call(
            "PATCH",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["status"], "inactive");
    assert_eq!(p.body["meta"]["versionId"], "2");
    assert_eq!(
        p.body["provision"], before.body["provision"],
        "PATCH leaves other fields alone"
    );
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
            .await
            .status,
        403,
        "expired"
    );
    for bad in [
        json!({"status": "expired"}),
        json!({"resourceType": "Consent", "status": "inactive"}),
    ] {
        let a = s
            .call(
                "PATCH",
                "/fhir/Consent/c-0001",
                Cred::Bearer(&admin),
                Some(bad.clone()),
            )
            .await;
        assert_eq!((a.status, a.issue_code()), (400, "invalid"), "{bad}");
    }
    let end = s
        .call(
            "PATCH",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(json!({"status": "active", "provision": {"period": {"end": "2999-01-01"}}})),
        )
        .await;
    assert_eq!(end.status, 200);
    assert_eq!(
        end.body["provision"]["period"]["start"], before.body["provision"]["period"]["start"],
        "period merged"
    );
    assert!(end.body["provision"]["period"]["end"].is_string());
    assert_eq!(
        s.call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
            .await
            .status,
        200
    );
    let unknown = s
        .call(
            "PATCH",
            "/fhir/Consent/c-9999",
            Cred::Bearer(&admin),
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!((unknown.status, unknown.issue_code()), (404, "not-found"));
}

// OpenAPI: getFhirPatientById (a read by id: gated by Consent) and getFhirObservation (a search:
// not gated, still needs the permission).
#[tokio::test]
async fn patient_by_id_is_consent_gated_but_observation_search_is_not() {
    let s = Sim::start().await;
    let pat = s.login(PAT.0, PAT.1).await;
    for stale in ["p-0002", "p-0003", "p-0004"] {
        let read = s
            .call(
                "GET",
                &format!("/fhir/Patient/{stale}"),
                Cred::Bearer(&pat),
                None,
            )
            .await;
        assert_eq!(
            (read.status, read.issue_code()),
            (403, "forbidden"),
            "{stale}"
        );
        let search = s
            .call(
                "GET",
                &format!("/fhir/Observation?patient={stale}"),
                Cred::Bearer(&pat),
                None,
            )
            .await;
        assert_eq!(search.status, 200, "{stale}: a search is not gated");
        assert_eq!(
            search.body["total"], 8,
            "`patient` is ignored (getFhirObservation declares no parameters): every patient's"
        );
    }
    let rae = s.login(RAE.0, RAE.1).await;
    assert_eq!(
        s.call(
            "GET",
            "/fhir/Observation?patient=p-0003",
            Cred::Bearer(&rae),
            None
        )
        .await
        .status,
        200
    );
    let erin = s.login(ERIN.0, ERIN.1).await;
    let over = s
        .call_with(
            "GET",
            "/fhir/Patient/p-0002",
            Cred::Bearer(&erin),
            None,
            &[("X-Emergency-Override", "true")],
        )
        .await;
    assert_eq!(over.status, 200, "an emergency responder may override");
    let last = s.sim.audit_rows().pop().expect("row");
    assert!(last.agent.emergency_override, "always audited");
    // The search still needs the permission: u-1003 (emergency-responder) has Observation.read,
    // the leaked key of u-1001 has it by scope, an analytics key lacks Patient.read.
    let dana = s.login(DANA.0, DANA.1).await;
    assert_eq!(
        s.call(
            "GET",
            "/fhir/Observation?patient=p-0002",
            Cred::Bearer(&dana),
            None
        )
        .await
        .status,
        200
    );
    let no_scope = s
        .call(
            "GET",
            "/fhir/Patient/p-0001",
            Cred::Key("ck_analytics_export:sk_live_analytics_0b5d"),
            None,
        )
        .await;
    assert_eq!(no_scope.status, 403);
}
