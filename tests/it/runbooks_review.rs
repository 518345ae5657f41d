//! The bundled `access-review` runbook: read-only by default, the scenario's risky keys and stale
//! Consents are found, the audit evidence is complete, and stale Consents are expired only when
//! asked.

use serde_json::Value;

use crate::run_support::{Env, verify};
use crate::runbooks_support::{
    Api, assert_complete_rows, dry_run_sends_nothing, evidence, run_ok, step, strings,
};

async fn consent_status(env: &Env, id: &str) -> String {
    let c = Api::new(env)
        .admin_get(env, &format!("/fhir/Consent/{id}"))
        .await;
    c["status"].as_str().expect("status").to_string()
}

fn has(list: &Value, id: &str) -> bool {
    strings(list).iter().any(|x| x == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_access_review_is_read_only_and_flags_the_scenarios_risks() {
    let env = Env::start().await;
    let report = run_ok(&env, "access-review", &[], &[]).await;

    // Read-only: every request was a GET, and nothing changed.
    let log = env.sim.requests();
    assert!(log.iter().all(|q| q.method == "GET"), "{log:?}");
    for id in ["c-0002", "c-0003"] {
        assert_eq!(consent_status(&env, id).await, "active");
    }
    assert_eq!(step(&report, "expire_stale")["status"], "skipped");
    assert_eq!(step(&report, "consents_after")["status"], "skipped");

    // The keys of the scenario, each for its reason (docs/esus-api.md, "The default scenario").
    let keys = &step(&report, "keys")["outputs"];
    assert!(has(&keys["no_expiry"], "k-1002"), "{keys:#}");
    assert!(has(&keys["wildcard_scope"], "k-1003"), "{keys:#}");
    assert!(has(&keys["weak_name"], "k-1004"), "{keys:#}");
    assert!(has(&keys["rotation_overdue"], "k-1005"), "{keys:#}");
    assert!(has(&keys["inactive"], "k-1006"), "{keys:#}");
    assert!(
        !has(&keys["weak_name"], "k-1001"),
        "a descriptive name is not weak"
    );
    assert!(
        !has(&keys["rotation_overdue"], "k-1001"),
        "60 days is not overdue"
    );
    assert!(!has(&keys["no_expiry"], "k-1001"));
    let findings = &step(&report, "summary")["outputs"]["findings"];
    assert!(
        has(&findings["keys_with_wildcard_scope"], "k-1003"),
        "{findings:#}"
    );
    assert!(has(&findings["stale_consents"], "c-0002"), "{findings:#}");
    assert!(has(&findings["stale_consents"], "c-0003"), "{findings:#}");
    assert!(!has(&findings["stale_consents"], "c-0001"), "open-ended");
    assert!(
        !has(&findings["stale_consents"], "c-0004"),
        "already inactive"
    );
    assert_eq!(findings["will_expire_stale_consents"], false);
    let flagged = strings(&step(&report, "summary")["outputs"]["flagged_keys"]);
    for k in ["k-1002", "k-1003", "k-1004", "k-1005"] {
        assert!(flagged.contains(&k.to_string()), "{flagged:?}");
    }
    assert_eq!(findings["roles"].as_array().map(Vec::len), Some(6));

    // The week's audit log, every page, with a date filter; roles and keys saved too.
    let week = evidence(&env, step(&report, "audit_week"));
    assert_complete_rows(&week);
    assert!(
        week["rows"].as_array().expect("rows").len() > 300,
        "the scenario's history"
    );
    assert!(
        log.iter().any(|q| q.path == "/admin/audit"
            && q.query.as_deref().is_some_and(|s| s.contains("date=ge"))),
        "{log:?}"
    );
    assert_complete_rows(&evidence(&env, step(&report, "audit_failures")));
    assert!(evidence(&env, step(&report, "roles")).is_array());
    assert!(evidence(&env, step(&report, "keys"))["items"].is_array());

    // Consents are PHI-bearing: the transcript holds no Consent resource.
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(!transcript.contains("Patient/p-0002"));
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_access_review_expires_stale_consents_only_when_asked() {
    let env = Env::start().await;
    let report = run_ok(
        &env,
        "access-review",
        &["--input", "expire_stale=true"],
        &[],
    )
    .await;
    for id in ["c-0002", "c-0003"] {
        assert_eq!(consent_status(&env, id).await, "inactive", "{id}");
    }
    assert_eq!(
        consent_status(&env, "c-0001").await,
        "active",
        "in force: untouched"
    );
    assert_eq!(consent_status(&env, "c-0004").await, "inactive");
    let puts: Vec<String> = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.method != "GET")
        .map(|q| format!("{} {}", q.method, q.path))
        .collect();
    assert_eq!(
        puts.len(),
        2,
        "one PUT per stale Consent and nothing else: {puts:?}"
    );
    assert_eq!(step(&report, "expire_stale")["status"], "ok");
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(
        !transcript.contains("Patient/"),
        "the Consents written back (PHI) are not in the transcript"
    );
    let after = &step(&report, "consents_after")["outputs"]["still_stale"];
    assert_eq!(strings(after), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_access_review_dry_run_sends_nothing() {
    let env = Env::start().await;
    let shown = dry_run_sends_nothing(&env, "access-review", &[], &[]).await;
    for needle in [
        "/admin/audit?",
        "date=ge",
        "/roles",
        "/api-keys",
        "/fhir/Consent?status=active",
    ] {
        assert!(shown.contains(needle), "`{needle}` not in:\n{shown}");
    }
}
