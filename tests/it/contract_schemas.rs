//! Contract tests against ESUS's published types (issue 16): every bundled runbook runs live, as
//! users run it — the real binary, `--yes`, `--approve` for the typed step, operator login by
//! password and by MFA once each — through a recording proxy in front of the simulator. Every
//! request the client sent and every 2xx answer the simulator gave is then held to the JSON
//! Schemas derived from `lib/api-types.ts` (tests/contract/esus/, see its SOURCE.md), with what
//! ESUS's docs add merged from tests/contract/esus-docs-overlay.json.
//!
//! A shape that neither side documents is a finding. The findings known today, each with its
//! reason, are listed in tests/contract/esus-known-findings.json: the test prints every finding,
//! and fails on a new one and on a listed one that no longer occurs (the list only shrinks).

use std::time::Instant;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::contract_proxy::{Exchange, RecordingProxy};
use crate::contract_support::{Class, Contract, Known, known_findings, verdict};
use crate::run_support::{Env, assert_code, output, text};

/// How the operator authenticates for one run.
enum Operator {
    /// ESUS_TOKEN, the scenario admin's access token.
    Token,
    /// `--login` with ESUS_PASSWORD.
    Password,
    /// `--login` of the MFA admin with ESUS_PASSWORD and a real TOTP code in ESUS_MFA_CODE.
    Mfa,
}

/// `esus-ir run RUNBOOK` through the proxy, live and unattended, into its own run folder.
fn run_cmd(
    env: &Env,
    proxy: &RecordingProxy,
    (runbook, dir): (&str, &str),
    operator: Operator,
    args: &[&str],
) -> assert_cmd::Command {
    let r = env.sim.ready();
    let mut cmd = env.bare_cmd();
    cmd.arg("run").arg(runbook);
    match operator {
        Operator::Token => {
            cmd.env("ESUS_TOKEN", r.admin_token.expose_secret());
        }
        Operator::Password => {
            cmd.env("ESUS_PASSWORD", r.admin_password.expose_secret())
                .args(["--login", &r.admin_email]);
        }
        Operator::Mfa => {
            let code = esus_ir::sim::totp_code(b"drill-totp-secret", env.sim.now());
            cmd.env("ESUS_PASSWORD", "max-drill-password")
                .env("ESUS_MFA_CODE", code)
                .args(["--login", "mfa.admin@riverside.example"]);
        }
    }
    cmd.arg("--base-url")
        .arg(proxy.base_url())
        .arg("--run-dir")
        .arg(env.dir.path().join(dir))
        .args(["--operator", "oncall@example.org"])
        .args(["--yes", "--non-interactive", "--output", "json"])
        .args(args);
    cmd
}

/// Logs a scenario user in directly at the simulator (not through the proxy: this is the
/// attacker's session, not the client's traffic) and returns (access token, refresh token).
async fn login(env: &Env, email: &str, password: &str) -> (String, String) {
    let resp = crate::sim_support::client()
        .post(format!("{}/auth/login", env.sim.base_url()))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login answered");
    assert_eq!(resp.status(), 200, "login of {email}");
    let body: Value = resp.json().await.expect("login body");
    let token = |k: &str| body[k].as_str().expect("token").to_string();
    (token("accessToken"), token("refreshToken"))
}

fn report_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "a JSON report:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// Runs the five bundled runbooks (one of them twice) through the proxy and returns what
/// crossed it.
async fn record_the_bundled_runbooks(env: &Env, proxy: &RecordingProxy) -> Vec<Exchange> {
    let r = env.sim.ready().clone();

    // Weekly review, with the stale Consents expired; the operator logs in with a password.
    let cmd = run_cmd(
        env,
        proxy,
        ("access-review", "review"),
        Operator::Password,
        &["--input", "expire_stale=true"],
    );
    assert_code(&output(cmd).await, 0);

    // Alerting; the operator logs in with password and MFA.
    let endpoint = "--input=endpoint=https://alerts.example.org/esus";
    let cmd = run_cmd(
        env,
        proxy,
        ("security-monitoring", "monitoring"),
        Operator::Mfa,
        &[endpoint],
    );
    assert_code(&output(cmd).await, 0);

    // Quarterly rotation of the keys that are due (k-1005 in the default scenario).
    let cmd = run_cmd(
        env,
        proxy,
        ("scheduled-key-rotation", "rotation"),
        Operator::Token,
        &[],
    );
    assert_code(&output(cmd).await, 0);

    // The leaked key k-1001 of u-1001 and its session s-1001.
    let (key, user) = (
        format!("key_id={}", r.key_id),
        format!("user_id={}", r.user_id),
    );
    let mut cmd = run_cmd(
        env,
        proxy,
        ("api-key-compromise", "key"),
        Operator::Token,
        &["--input", &key, "--input", &user],
    );
    cmd.env("ESUS_COMPROMISED_TOKEN", r.session_token.expose_secret())
        .env("ESUS_LEAKED_KEY_SECRET", r.key_secret.expose_secret());
    assert_code(&output(cmd).await, 0);

    // A stolen session of u-1002 whose access token is already dead but whose refresh token
    // (of another session) still works: refresh, list, log everything out.
    let (dead, _) = login(
        env,
        "pat.practitioner@riverside.example",
        "pat-drill-password",
    )
    .await;
    let (_, refresh) = login(
        env,
        "pat.practitioner@riverside.example",
        "pat-drill-password",
    )
    .await;
    let logout = crate::sim_support::client()
        .post(format!("{}/auth/logout", env.sim.base_url()))
        .bearer_auth(&dead)
        .send()
        .await
        .expect("logout answered");
    assert_eq!(logout.status(), 200);
    let mut cmd = run_cmd(
        env,
        proxy,
        ("session-compromise", "session"),
        Operator::Token,
        &["--input", "user_id=u-1002"],
    );
    cmd.env("ESUS_COMPROMISED_TOKEN", &dead)
        .env("ESUS_COMPROMISED_REFRESH_TOKEN", &refresh);
    let out = output(cmd).await;
    assert_code(&out, 0);

    // u-1001 again: s-1001 was logged out above and no refresh token is known, so only the
    // typed cut-off is left, approved by name. The run ends NOT CONTAINED (not 0) by design.
    let mut cmd = run_cmd(
        env,
        proxy,
        ("session-compromise", "cut-off"),
        Operator::Token,
        &["--input", &user, "--approve", "cut_off"],
    );
    cmd.env("ESUS_COMPROMISED_TOKEN", r.session_token.expose_secret());
    let out = output(cmd).await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let report = report_of(&out);
    assert_eq!(
        report["containment"]["state"], "not-contained",
        "{report:#}"
    );
    let cut_off = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "cut_off"))
        .expect("cut_off step");
    assert_eq!(cut_off["status"], "ok", "{report:#}");

    proxy.exchanges()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_bundled_runbooks_send_and_get_only_published_shapes() {
    let started = Instant::now();
    let contract = Contract::load();
    let known = known_findings();
    let env = Env::start().await;
    let proxy = RecordingProxy::start(&env.sim.base_url()).await;
    let exchanges = record_the_bundled_runbooks(&env, &proxy).await;
    let check = contract.check(&exchanges);
    let v = verdict(&check, &known);
    println!("{}", v.report);
    println!("contract test: {:.1} s", started.elapsed().as_secs_f64());

    // The proxy saw the client's traffic, header names included (never their values).
    assert!(exchanges.len() > 50, "{} exchanges", exchanges.len());
    assert!(
        exchanges
            .iter()
            .any(|x| x.request_headers.iter().any(|h| h == "x-api-key")),
        "the leaked-key probe went through the proxy"
    );
    let secret = env.sim.ready().admin_token.expose_secret().to_string();
    assert!(
        exchanges
            .iter()
            .all(|x| x.request_headers.iter().all(|h| !h.contains(&secret))),
        "no header value is recorded"
    );
    // What the runs must have exercised: every route family of the bundled runbooks.
    for op in [
        "postAuthLogin",
        "postAuthMfaVerify",
        "getAuthMe",
        "postAuthLogout",
        "postAuthLogout-all",
        "postAuthRefresh",
        "getAuthSessions",
        "getApi-keys",
        "getApi-keysById",
        "deleteApi-keysById",
        "postApi-keysByIdRotate",
        // api-key-compromise's replacement: created under its claim name, then renamed.
        "postApi-keys",
        "putApi-keysById",
        "getAdminAudit",
        // The compromise runbooks' evidence, by cursor, and ESUS's own chain check (the
        // page-numbered user route is their fallback: sim_contract checks its shapes).
        "getV1AdminAudit",
        "getAdminSystem-adminsAuditVerify",
        "getRoles",
        "deleteAdminUsersById",
        "getFhirConsent",
        "patchFhirConsentById",
        "getFhirSubscription",
        "postFhirSubscription",
    ] {
        assert!(
            check.covered.contains_key(op),
            "{op} was not exercised:\n{}",
            v.report
        );
    }
    assert!(
        v.passed(),
        "the contract with ESUS's published types changed: {} new finding(s), {} known finding(s) gone\n{}",
        v.new.len(),
        v.gone.len(),
        v.report
    );
}

/// An exchange as the proxy would record it.
fn exchange(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
    status: u16,
    answer: Option<Value>,
) -> Exchange {
    Exchange {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        request_headers: vec!["authorization".into()],
        request_body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        status,
        response_body: answer
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default(),
    }
}

fn key_object() -> Value {
    json!({"id": "k-1", "name": "prod-ehr", "clientId": "ck_1", "scopes": ["Patient.read"],
           "active": true, "rateLimit": 600, "createdAt": "2025-01-01T00:00:00Z"})
}

fn audit_page(row: Value) -> Value {
    json!({"rows": [row], "total": 1})
}

fn audit_row() -> Value {
    json!({"id": "a-1", "type": "resource.read", "action": "R", "outcome": "success",
           "agent": {"userId": "u-1", "email": "a@b.example", "ip": "10.0.0.1", "userAgent": "x"},
           "entity": {"resourceType": "Patient", "resourceId": "p-1"}, "recorded": "2025-01-01T00:00:00Z"})
}

#[test]
fn contract_wrong_shapes_are_rejected_with_operation_direction_and_pointer() {
    let contract = Contract::load();
    let mut no_client_id = key_object();
    no_client_id
        .as_object_mut()
        .expect("object")
        .remove("clientId");
    let mut roles = audit_row();
    roles["agent"]["roles"] = json!(["admin"]);
    roles["outcome"] = json!("error");
    let mut bad_roles = audit_row();
    bad_roles["agent"]["roles"] = json!("admin");
    let exchanges = [
        // Right shapes: no finding.
        exchange("GET", "/api-keys/k-1", &[], None, 200, Some(key_object())),
        exchange(
            "GET",
            "/api-keys",
            &[("active", "true")],
            None,
            200,
            Some(json!({"items": [key_object()], "total": 1})),
        ),
        exchange(
            "POST",
            "/api-keys/k-1/rotate",
            &[],
            Some(json!({"graceHours": 0})),
            200,
            Some(key_object()),
        ),
        exchange(
            "GET",
            "/admin/audit/user/u-1",
            &[("_count", "50"), ("_offset", "0")],
            None,
            200,
            Some(audit_page(audit_row())),
        ),
        exchange("DELETE", "/api-keys/k-1", &[], None, 204, None),
        exchange(
            "GET",
            "/api-keys/k-1",
            &[],
            None,
            404,
            Some(json!({"error": "not found"})),
        ),
        // A key object missing `clientId`.
        exchange("GET", "/api-keys/k-1", &[], None, 200, Some(no_client_id)),
        // A request body with an unknown field, and an appId that is not a UUID.
        exchange(
            "POST",
            "/api-keys",
            &[],
            Some(json!({"name": "n", "scopes": [], "owner": "u-1", "appId": "app-ehr"})),
            201,
            Some(key_object()),
        ),
        // An undeclared query parameter, and a declared one sent twice.
        exchange(
            "GET",
            "/api-keys",
            &[("limit", "5"), ("name", "a"), ("name", "b")],
            None,
            200,
            Some(json!({"items": [], "total": 0})),
        ),
        // Fields only ESUS's docs show, and a doc field of the wrong type.
        exchange(
            "GET",
            "/admin/audit",
            &[],
            None,
            200,
            Some(audit_page(roles)),
        ),
        exchange(
            "GET",
            "/admin/audit",
            &[],
            None,
            200,
            Some(audit_page(bad_roles)),
        ),
        // A query parameter where the types declare none.
        exchange(
            "GET",
            "/fhir/Consent",
            &[("status", "active")],
            None,
            200,
            Some(json!({"resourceType": "Bundle"})),
        ),
        // A body where the types declare none, and an undeclared success status.
        exchange(
            "DELETE",
            "/api-keys/k-2",
            &[],
            None,
            200,
            Some(json!({"deleted": true})),
        ),
        // A route the types do not have.
        exchange(
            "POST",
            "/api-keys/k-1/revoke",
            &[],
            None,
            200,
            Some(json!({})),
        ),
    ];
    let check = contract.check(&exchanges);
    let keys: Vec<&str> = check.findings.keys().map(String::as_str).collect();
    let want = [
        "docs-only response getAdminAudit #/rows/*/agent/roles additionalProperties",
        "docs-only response getAdminAudit #/rows/*/outcome enum",
        "undocumented query getApi-keys #/limit additionalProperties",
        "undocumented query getApi-keys #/name repeated",
        "undocumented query getFhirConsent #/status additionalProperties",
        "undocumented request postApi-keys #/appId format",
        "undocumented request postApi-keys #/owner additionalProperties",
        "undocumented response deleteApi-keysById # body",
        "undocumented response deleteApi-keysById # status",
        "undocumented response getAdminAudit #/rows/*/agent/roles type",
        "undocumented response getApi-keysById #/clientId required",
        "unknown-route POST /api-keys/k-1/revoke",
    ];
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, want, "{:#?}", check.findings);
    assert_eq!(check.findings[want[0]].class, Class::DocsOnly);
    assert_eq!(check.findings[want[11]].class, Class::UnknownRoute);
    let missing = &check.findings["undocumented response getApi-keysById #/clientId required"];
    assert!(
        missing.example.starts_with("GET /api-keys/k-1 -> 200: ")
            && missing.example.contains("clientId"),
        "{missing:?}"
    );
    // The message names no value (`app-ehr` might as well be a secret).
    let format = &check.findings["undocumented request postApi-keys #/appId format"];
    assert!(!format.example.contains("app-ehr"), "{format:?}");

    // Held to the known findings: a new finding fails, and so does a known one that is gone.
    let listed = |finding: &str| Known {
        finding: finding.into(),
        reason: "test".into(),
        issue: "#16".into(),
    };
    let all: Vec<Known> = want.iter().map(|f| listed(f)).collect();
    assert!(verdict(&check, &all).passed());
    let v = verdict(&check, &all[1..]);
    assert!(
        !v.passed() && v.new.len() == 1 && v.gone.is_empty(),
        "{}",
        v.report
    );
    assert!(
        v.report.contains(&format!("NEW    {}", want[0])),
        "{}",
        v.report
    );
    let mut stale = all.clone();
    stale.push(listed("undocumented request postApi-keys #/name type"));
    let v = verdict(&check, &stale);
    assert!(
        !v.passed() && v.new.is_empty() && v.gone.len() == 1,
        "{}",
        v.report
    );
    assert!(
        v.report
            .contains("GONE   undocumented request postApi-keys #/name type")
    );
}

#[test]
fn contract_every_catalogue_action_targets_an_operation_of_the_types() {
    let contract = Contract::load();
    let mut missing = Vec::new();
    for a in esus_ir::esus::actions::ACTIONS {
        if a.name == "http" {
            continue;
        }
        match contract.operation_id(a.method.as_str(), a.path) {
            Some(_) => {}
            None => missing.push(format!("{} {} {}", a.name, a.method.as_str(), a.path)),
        }
    }
    assert!(
        missing.is_empty(),
        "actions whose route lib/api-types.ts does not have: {missing:#?}"
    );
    // The preflight and the operator login.
    for (method, path) in [
        ("GET", "/auth/me"),
        ("POST", "/auth/login"),
        ("POST", "/auth/mfa/verify"),
    ] {
        assert!(
            contract.operation_id(method, path).is_some(),
            "{method} {path}"
        );
    }
}

#[test]
fn contract_schemas_name_their_source_and_every_file_is_indexed() {
    let dir = crate::contract_support::contract_dir().join("esus");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("operations.json")).expect("index"))
            .expect("json index");
    let source = &index["source"];
    assert_eq!(source["repository"], "jmpanozzoz/esus-quickstart");
    assert_eq!(source["file"], "lib/api-types.ts");
    let commit = source["commit"].as_str().expect("commit");
    assert!(commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()));
    let header = std::fs::read_to_string(dir.join("SOURCE.md")).expect("SOURCE.md");
    for needle in [
        commit,
        source["generator"].as_str().expect("generator"),
        "scripts/derive-esus-schemas.sh",
    ] {
        assert!(header.contains(needle), "SOURCE.md names {needle}");
    }
    let mut indexed: Vec<String> = Vec::new();
    for op in index["operations"].as_array().expect("operations") {
        for f in [&op["request"], &op["query"]] {
            indexed.extend(f.as_str().map(str::to_string));
        }
        for r in op["responses"].as_array().expect("responses") {
            indexed.extend(r["schema"].as_str().map(str::to_string));
        }
    }
    indexed.sort();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("schema folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".schema.json"))
        .collect();
    files.sort();
    assert_eq!(
        files, indexed,
        "every schema file is in operations.json and back"
    );
    // Every operation of the selection that the catalogue uses is indexed.
    let ids = Contract::load().operation_ids();
    assert!(ids.contains("getApi-keysById") && ids.contains("getAdminAuditUserByUserId"));
}
