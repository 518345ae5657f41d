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
    for needle in ["/admin/audit?", "date=ge", "/roles", "/api-keys"] {
        assert!(shown.contains(needle), "`{needle}` not in:\n{shown}");
    }
    // getFhirConsent declares no query parameters: the search sends none.
    assert!(
        shown
            .lines()
            .any(|l| l.trim_end().ends_with("/fhir/Consent")),
        "{shown}"
    );
    assert!(!shown.contains("/fhir/Consent?"), "{shown}");
}

// getFhirConsent declares no query parameters, and the simulator ignores `status=active` (the
// hardest reading): the review gets every Consent back. With Consents that are not active but
// whose period ended too, only the active ones may be reported stale — the runbook selects them
// itself — and after expiring, the two it expired (now inactive, still in the answer) are not
// reported still stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_access_review_selects_active_consents_itself_when_esus_ignores_the_filter() {
    let extra = "consents:\n  - { id: c-0005, patient: p-0004, status: inactive, start_days_ago: 500, end_days_ago: 100 }\n  - { id: c-0006, patient: p-0001, status: rejected, start_days_ago: 50, end_days_ago: 10 }\n";
    let scenario = crate::runbooks_support::DEFAULT_SCENARIO.replacen("consents:\n", extra, 1);
    assert_ne!(scenario, crate::runbooks_support::DEFAULT_SCENARIO);
    let config = esus_ir::sim::SimConfig::default()
        .with_scenario_yaml(&scenario)
        .expect("scenario");

    let env = Env::with(config.clone()).await;
    let report = run_ok(&env, "access-review", &[], &[]).await;
    let consents = &step(&report, "consents")["outputs"];
    let mut stale = strings(&consents["stale"]);
    stale.sort();
    assert_eq!(stale, ["c-0002", "c-0003"], "{consents:#}");
    assert_eq!(
        consents["active"], 3,
        "c-0001, c-0002, c-0003: {consents:#}"
    );
    // The search really came back unfiltered: all six Consents are in the saved bundle.
    let saved = evidence(&env, step(&report, "consents"));
    assert_eq!(
        saved["entry"].as_array().map(Vec::len),
        Some(6),
        "{saved:#}"
    );
    assert!(
        env.sim
            .requests()
            .iter()
            .filter(|q| q.path == "/fhir/Consent")
            .all(|q| q.query.is_none()),
        "the runbook sends no filter getFhirConsent does not declare"
    );

    let env = Env::with(config).await;
    let report = run_ok(
        &env,
        "access-review",
        &["--input", "expire_stale=true"],
        &[],
    )
    .await;
    let patched: Vec<String> = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.method == "PATCH")
        .map(|q| q.path.clone())
        .collect();
    let mut patched = patched;
    patched.sort();
    assert_eq!(
        patched,
        ["/fhir/Consent/c-0002", "/fhir/Consent/c-0003"],
        "only the active stale ones are expired"
    );
    for id in ["c-0005", "c-0006"] {
        let status = consent_status(&env, id).await;
        assert_ne!(status, "active", "{id} untouched");
    }
    let after = &step(&report, "consents_after")["outputs"]["still_stale"];
    assert_eq!(strings(after), Vec::<String>::new());
}
