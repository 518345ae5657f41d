//! The client's half of the ESUS contract, over real HTTP: one runbook sends every built-in action
//! (each step names the OpenAPI operation it follows) to a simulator that holds ESUS's published
//! shapes strictly — Consent bodies in ESUS's own schema, role ids as UUIDs, sessions only through
//! their own user's token. Every request must be answered with the success the OpenAPI documents.

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};
use crate::runbooks_support::step;

const EVERY_ACTION: &str = r#"version: 1
name: every-action
inputs:
  token: {type: secret}
  refresh: {type: secret}
  hook_header: {type: secret}
  other_password: {type: secret}
steps:
  # getAuthSessions (with the user's own token)
  - {id: sessions, name: sessions, needs: [], action: auth.sessions, with: {token: "{{ inputs.token }}"}}
  # postAuthRefresh
  - id: refresh
    name: refresh
    needs: [sessions]
    action: auth.refresh
    with: {refresh_token: "{{ inputs.refresh }}"}
    outputs: {access: {value: response.accessToken, secret: true}}
  # postAuthLogout (the fresh session only)
  - {id: logout, name: logout, needs: [refresh], action: auth.logout, with: {token: "{{ steps.refresh.outputs.access }}"}, confirm: true}
  # getApi-keys
  - {id: keys, name: keys, needs: [], action: api_keys.list, with: {active: true}}
  # getApi-keysById
  - {id: key, name: key, needs: [keys], action: api_keys.get, with: {id: k-1004}}
  # postApi-keys
  - id: create
    name: create
    needs: [key]
    action: api_keys.create
    with: {name: contract-key, scopes: [Patient.read], rate_limit: 10}
    outputs: {id: response.id, secret: {value: response.secret, secret: true}}
  # putApi-keysById
  - {id: update, name: update, needs: [create], action: api_keys.update, with: {id: "{{ steps.create.outputs.id }}", active: false}, confirm: true}
  # postApi-keysByIdRotate
  - id: rotate
    name: rotate
    needs: [update]
    action: api_keys.rotate
    with: {id: k-1005, grace_hours: 0}
    outputs: {new_id: response.id, new_secret: {value: response.secret, secret: true}}
  # deleteApi-keysById
  - {id: delete, name: delete, needs: [rotate], action: api_keys.delete, with: {id: "{{ steps.create.outputs.id }}"}}
  # getApi-keysById, then the key itself (api_keys.check_revoked)
  - {id: revoked, name: revoked, needs: [delete], action: api_keys.check_revoked, with: {id: "{{ steps.create.outputs.id }}"}}
  # getAdminAudit, getAdminAuditUserByUserId, getAdminAuditPatientByPatientId
  - {id: audit_all, name: audit all, needs: [], action: audit.query, with: {count: 50, outcome: failure}, save: audit-all.json}
  - {id: audit_user, name: audit user, needs: [], action: audit.user, with: {user_id: u-1004}, save: audit-user.json}
  - {id: audit_patient, name: audit patient, needs: [], action: audit.patient, with: {patient_id: p-0001}, save: audit-patient.json}
  # getRoles
  - id: roles
    name: roles
    needs: []
    action: roles.list
    outputs:
      researcher: response | selectattr("name", "equalto", "researcher") | map(attribute="id") | first
  # postRolesUsersByUserIdAssign, deleteRolesUsersByUserIdByRoleId (role ids are UUIDs)
  - {id: assign, name: assign, needs: [roles], action: roles.assign, with: {user_id: u-1002, role_id: "{{ steps.roles.outputs.researcher }}"}}
  - {id: unassign, name: unassign, needs: [assign], action: roles.unassign, with: {user_id: u-1002, role_id: "{{ steps.roles.outputs.researcher }}"}}
  # getAdminUsers, patchAdminUsersByIdRole, deleteAdminUsersById
  - {id: members, name: members, needs: [unassign], action: admin.list_users}
  - {id: org_role, name: org role, needs: [members], action: admin.set_org_role, with: {id: u-1004, role: ReadOnly}}
  - {id: remove, name: remove, needs: [org_role], action: admin.remove_user, with: {id: u-1004}}
  # postFhirSubscription, getFhirSubscription, deleteFhirSubscriptionById
  - id: subscribe
    name: subscribe
    needs: []
    action: subscription.create
    with: {criteria: "AuditEvent?outcome=failure", endpoint: "https://alerts.example/hook", header: ["{{ inputs.hook_header }}"]}
    outputs: {id: response.id}
  - {id: subscriptions, name: subscriptions, needs: [subscribe], action: subscription.list}
  - {id: unsubscribe, name: unsubscribe, needs: [subscriptions], action: subscription.delete, with: {id: "{{ steps.subscribe.outputs.id }}"}}
  # getFhirConsent, patchFhirConsentById
  - {id: consents, name: consents, needs: [], action: consent.search, with: {status: active}, save: consents.json}
  - {id: expire, name: expire, needs: [consents], action: consent.expire, with: {id: c-0002}}
  # getAuthMe, through `http`
  - {id: me, name: me, needs: [], action: http, with: {method: GET, path: /auth/me}, outputs: {email: response.email}}
  # postAuthLogin through `http` (another user), then postAuthLogout-all with that user's token
  - id: login
    name: login
    needs: []
    action: http
    with: {method: POST, path: /auth/login, body: {email: pat.practitioner@riverside.example, password: "{{ inputs.other_password }}"}}
    outputs: {token: {value: response.accessToken, secret: true}}
  - {id: logout_all, name: logout all, needs: [login], action: auth.logout_all, with: {token: "{{ steps.login.outputs.token }}"}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_is_answered_with_the_success_the_openapi_documents() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let rb = env.runbook("every-action.yaml", EVERY_ACTION);
    let mut cmd = env.run_cmd(&rb);
    cmd.env("ESUS_IR_INPUT_TOKEN", r.session_token.expose_secret())
        .env(
            "ESUS_IR_INPUT_REFRESH",
            r.session_refresh_token.expose_secret(),
        )
        .env(
            "ESUS_IR_INPUT_HOOK_HEADER",
            "Authorization: Bearer hook-secret",
        )
        .env("ESUS_IR_INPUT_OTHER_PASSWORD", "pat-drill-password")
        .args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    for s in report["steps"].as_array().expect("steps") {
        assert_eq!(s["status"], "ok", "{s:#}\n{}", text(&out.stderr));
        assert!(s["expected"].is_null(), "no step needed `expect`: {s:#}");
    }
    // What the simulator received: each documented route with the documented method, answered
    // with a success (the OpenAPI documents only successes for these operations).
    let log = env.sim.requests();
    let seen = |method: &str, path: &str| {
        log.iter()
            .filter(|q| q.method == method && q.path == path)
            .map(|q| q.status)
            .collect::<Vec<_>>()
    };
    for (method, path, status) in [
        ("GET", "/auth/sessions", 200),
        ("POST", "/auth/refresh", 200),
        ("POST", "/auth/logout", 200),
        ("POST", "/auth/logout-all", 200),
        ("GET", "/api-keys", 200),
        ("GET", "/api-keys/k-1004", 200),
        ("POST", "/api-keys", 201),
        ("POST", "/api-keys/k-1005/rotate", 200),
        ("GET", "/admin/audit", 200),
        ("GET", "/admin/audit/user/u-1004", 200),
        ("GET", "/admin/audit/patient/p-0001", 200),
        ("GET", "/roles", 200),
        ("POST", "/roles/users/u-1002/assign", 200),
        ("GET", "/admin/users", 200),
        ("PATCH", "/admin/users/u-1004/role", 200),
        ("DELETE", "/admin/users/u-1004", 200),
        ("POST", "/fhir/Subscription", 201),
        ("GET", "/fhir/Subscription", 200),
        ("GET", "/fhir/Consent", 200),
        ("PATCH", "/fhir/Consent/c-0002", 200),
        ("GET", "/auth/me", 200),
        ("POST", "/auth/login", 200),
    ] {
        let got = seen(method, path);
        assert!(
            !got.is_empty() && got.iter().all(|s| *s == Some(status)),
            "{method} {path}: {got:?}"
        );
    }
    let created = step(&report, "create")["outputs"]["id"]
        .as_str()
        .expect("new id")
        .to_string();
    // The created key: made under this incident's claim name, then renamed by a follow-up PUT
    // of the `create` step, before the runbook's own update PUT.
    assert_eq!(
        seen("PUT", &format!("/api-keys/{created}")),
        [Some(200), Some(200)],
        "the rename, then the update"
    );
    let sent = sent_requests(&env);
    let create_posts: Vec<&Value> = sent
        .iter()
        .filter(|r| r["method"] == "POST" && url_path(r) == "/api-keys")
        .collect();
    assert_eq!(create_posts.len(), 1, "{create_posts:#?}");
    let claim = create_posts[0]["body"]["name"]
        .as_str()
        .expect("claim name");
    assert!(
        regex::Regex::new(r"^contract-key\.esus-ir-[0-9a-f]{10}$")
            .expect("regex")
            .is_match(claim),
        "created under its exact claim name: {claim}"
    );
    let puts: Vec<(&Value, &Value)> = sent
        .iter()
        .filter(|r| r["method"] == "PUT" && url_path(r) == format!("/api-keys/{created}"))
        .map(|r| (&r["step"], &r["body"]))
        .collect();
    assert_eq!(
        puts,
        [
            (
                &Value::from("create"),
                &serde_json::json!({"name": "contract-key"})
            ),
            (
                &Value::from("update"),
                &serde_json::json!({"active": false})
            ),
        ],
        "the create's rename to the asked name, then the update"
    );
    // The rename is approved as the follow-up of the create's own approval.
    let records: Vec<Value> = std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("record"))
        .filter(|r| r["data"]["step"] == "create")
        .collect();
    let of = |kind: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["type"] == kind)
            .map(|r| r["data"].clone())
            .collect()
    };
    let (confirmations, follow_ups) = (of("confirmation"), of("follow-up"));
    assert_eq!(confirmations.len(), 1, "{confirmations:#?}");
    assert_eq!(follow_ups.len(), 1, "{follow_ups:#?}");
    assert_eq!(
        follow_ups[0]["follows"], confirmations[0]["approval"],
        "{follow_ups:#?}"
    );
    // The check took its baseline (the key exists) before the delete, then saw it gone.
    assert_eq!(
        seen("GET", &format!("/api-keys/{created}")),
        [Some(200), Some(404)]
    );
    assert_eq!(seen("DELETE", &format!("/api-keys/{created}")), [Some(204)]);
    // A rotate first reads its key (its `supersededBy` before), then rotates it.
    let seq_of = |method: &str, path: &str| {
        log.iter()
            .filter(|q| q.method == method && q.path == path)
            .map(|q| q.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(seen("GET", "/api-keys/k-1005"), [Some(200)]);
    let (read, rotate) = (
        seq_of("GET", "/api-keys/k-1005"),
        seq_of("POST", "/api-keys/k-1005/rotate"),
    );
    assert!(
        rotate.len() == 1 && read[0] < rotate[0],
        "read {read:?} before rotate {rotate:?}"
    );
    assert!(
        log.iter().any(|q| q.method == "DELETE"
            && q.path.starts_with("/roles/users/u-1002/")
            && q.status == Some(200)),
        "unassign by UUID"
    );
    let sub = step(&report, "subscribe")["outputs"]["id"]
        .as_str()
        .expect("subscription id");
    assert_eq!(
        seen("DELETE", &format!("/fhir/Subscription/{sub}")),
        [Some(204)]
    );
    assert_eq!(step(&report, "me")["outputs"]["email"], r.admin_email);
    assert!(
        env.sim.sessions_of("u-1002").iter().all(|s| s.revoked),
        "logout-all ended every session of its token's user"
    );
    assert!(
        env.sim
            .sessions_of(&r.user_id)
            .iter()
            .any(|s| s.id == r.session_id && s.revoked),
        "logout ended the refreshed session"
    );
    // The expired Consent is no longer in force (ESUS's PATCH body, not the FHIR resource).
    let consent = reqwest::Client::new()
        .get(format!("{}/fhir/Consent/c-0002", env.sim.base_url()))
        .bearer_auth(r.admin_token.expose_secret())
        .send()
        .await
        .expect("read consent")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(consent["status"], "inactive", "{consent}");
}

/// The requests of the run's transcript: method, URL, body (secrets redacted) and step.
fn sent_requests(env: &Env) -> Vec<Value> {
    std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("record"))
        .filter(|r| r["type"] == "request")
        .map(|r| {
            let mut q = r["data"]["request"].clone();
            q["step"] = r["data"]["step"].clone();
            q
        })
        .collect()
}

/// The path of a transcript request's URL, without the query.
fn url_path(request: &Value) -> String {
    let url = request["url"].as_str().expect("url");
    let after_host = url.splitn(4, '/').nth(3).unwrap_or("");
    format!("/{}", after_host.split('?').next().unwrap_or(""))
}
