//! Simulator contract: FHIR — consent gating and the emergency override, Consent search and
//! update, SMART discovery, and error shapes for unknown routes.

use serde_json::{Value, json};

use crate::sim_support::{Cred, Sim};

const ERIN: (&str, &str) = ("erin.er@riverside.example", "erin-drill-password");
const PAT: (&str, &str) = ("pat.practitioner@riverside.example", "pat-drill-password");

#[tokio::test]
async fn patient_reads_are_gated_by_an_active_consent() {
    let s = Sim::start().await;
    let pat = s.login(PAT.0, PAT.1).await;
    let ok = s
        .call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["resourceType"], "Patient");
    for stale in ["p-0002", "p-0003", "p-0004"] {
        let a = s
            .call(
                "GET",
                &format!("/fhir/Patient/{stale}"),
                Cred::Bearer(&pat),
                None,
            )
            .await;
        assert_eq!((a.status, a.issue_code()), (403, "forbidden"), "{stale}");
    }
    let missing = s
        .call("GET", "/fhir/Patient/p-9999", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(missing.status, 404);
    let obs = s
        .call(
            "GET",
            "/fhir/Observation?patient=p-0001",
            Cred::Bearer(&pat),
            None,
        )
        .await;
    assert_eq!(
        (obs.status, obs.body["resourceType"].clone()),
        (200, json!("Bundle"))
    );
    // getFhirObservation declares no query parameters either: `patient` is ignored, and the
    // search answers every patient's Observations (the same with or without it).
    let subjects = |a: &crate::sim_support::Answer| -> Vec<String> {
        let mut v: Vec<String> = a.body["entry"]
            .as_array()
            .expect("entry")
            .iter()
            .filter_map(|e| {
                e["resource"]["subject"]["reference"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        v.dedup();
        v
    };
    let every = [
        "Patient/p-0001",
        "Patient/p-0002",
        "Patient/p-0003",
        "Patient/p-0004",
    ];
    assert_eq!(subjects(&obs), every, "`patient=p-0001` ignored");
    assert_eq!(obs.body["total"], 8);
    for path in ["/fhir/Observation", "/fhir/Observation?patient=p-9999"] {
        let a = s.call("GET", path, Cred::Bearer(&pat), None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(subjects(&a), every, "{path}");
    }
    let researcher = s
        .login("rae.research@riverside.example", "rae-drill-password")
        .await;
    let denied = s
        .call(
            "GET",
            "/fhir/Patient/p-0001",
            Cred::Bearer(&researcher),
            None,
        )
        .await;
    assert_eq!(denied.status, 403, "researchers lack Patient.read");
}

#[tokio::test]
async fn emergency_override_is_for_responders_and_always_audited() {
    let s = Sim::start().await;
    let erin = s.login(ERIN.0, ERIN.1).await;
    let pat = s.login(PAT.0, PAT.1).await;
    let over = [("X-Emergency-Override", "true")];
    let plain = s
        .call("GET", "/fhir/Patient/p-0002", Cred::Bearer(&erin), None)
        .await;
    assert_eq!(plain.status, 403, "no consent, no override");
    let ok = s
        .call_with(
            "GET",
            "/fhir/Patient/p-0002",
            Cred::Bearer(&erin),
            None,
            &over,
        )
        .await;
    assert_eq!(ok.status, 200);
    let refused = s
        .call_with(
            "GET",
            "/fhir/Patient/p-0002",
            Cred::Bearer(&pat),
            None,
            &over,
        )
        .await;
    assert_eq!(refused.status, 403);
    let key = s.leaked();
    let by_key = s
        .call_with("GET", "/fhir/Patient/p-0002", key.cred(), None, &over)
        .await;
    assert_eq!(by_key.status, 403);

    let admin = s.admin();
    let rows = s
        .call(
            "GET",
            "/admin/audit/patient/p-0002?_count=200",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let marked: Vec<&Value> = rows.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["subtype"] == "emergency-override")
        .collect();
    assert_eq!(
        marked.len(),
        3,
        "granted and refused overrides are all marked (subtype, in the OpenAPI)"
    );
    for r in &marked {
        // agent.emergencyOverride is from the audit docs only: served on some rows, and true
        // wherever it is.
        let served = r["agent"].get("emergencyOverride");
        assert!(served.is_none() || served == Some(&json!(true)), "{r}");
    }
    let granted = marked
        .iter()
        .find(|r| r["outcome"] == "success")
        .expect("granted row");
    assert_eq!(granted["agent"]["userId"], "u-1003");
    if let Some(roles) = granted["agent"].get("roles") {
        assert_eq!(roles, &json!(["emergency-responder"]));
    }
    // The simulator itself knows every override row, whatever is served.
    let overrides = s
        .sim
        .audit_rows()
        .iter()
        .filter(|r| r.agent.emergency_override)
        .count();
    assert_eq!(overrides, 3);
}

#[tokio::test]
async fn consents_can_be_searched_and_a_stale_one_expired() {
    let s = Sim::start().await;
    let admin = s.admin();
    let all = s
        .call("GET", "/fhir/Consent", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(
        (all.body["resourceType"].clone(), all.body["total"].clone()),
        (json!("Bundle"), json!(4))
    );
    // getFhirConsent declares no query parameters (`query?: never`): every filter a client might
    // send is ignored, a malformed one included, and the whole set comes back.
    let ids = |a: &crate::sim_support::Answer| -> Vec<String> {
        a.body["entry"]
            .as_array()
            .expect("entry")
            .iter()
            .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
            .collect()
    };
    let everything = ids(&all);
    assert_eq!(everything, ["c-0001", "c-0002", "c-0003", "c-0004"]);
    for query in [
        "status=active",
        "status=inactive",
        "patient=Patient/p-0001",
        "patient=p-0004",
        "date=lt2000-01-01",
        "date=not-a-date",
        "_count=1",
        "status=active&patient=p-0002&date=ge2099-01-01",
    ] {
        let a = s
            .call(
                "GET",
                &format!("/fhir/Consent?{query}"),
                Cred::Bearer(&admin),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{query}: {}", a.body);
        assert_eq!(a.body["total"], 4, "{query}: ignored");
        assert_eq!(ids(&a), everything, "{query}");
    }
    // The filter is the client's job: two of the four are not active.
    let statuses: Vec<&str> = all.body["entry"]
        .as_array()
        .expect("entry")
        .iter()
        .filter_map(|e| e["resource"]["status"].as_str())
        .collect();
    assert_eq!(statuses, ["active", "active", "active", "inactive"]);

    // ESUS's own body (OpenAPI putFhirConsentById), not the FHIR resource.
    let upd = s
        .call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(json!({"status": "inactive", "scope": "patient-privacy",
                        "provision": {"type": "permit", "period": {"end": "2020-01-01T00:00:00Z"}}})),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.body);
    assert_eq!(upd.body["meta"]["versionId"], "2");
    assert_eq!(upd.body["status"], "inactive");
    let pat = s.login(PAT.0, PAT.1).await;
    let gated = s
        .call("GET", "/fhir/Patient/p-0001", Cred::Bearer(&pat), None)
        .await;
    assert_eq!(gated.status, 403, "the consent no longer allows reads");

    let bad = s
        .call(
            "PUT",
            "/fhir/Consent/c-0001",
            Cred::Bearer(&admin),
            Some(json!({"status": "sort-of"})),
        )
        .await;
    assert_eq!((bad.status, bad.issue_code()), (400, "invalid"));
    let unknown = s
        .call(
            "PUT",
            "/fhir/Consent/c-9999",
            Cred::Bearer(&admin),
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!((unknown.status, unknown.issue_code()), (404, "not-found"));
    assert_eq!(
        s.call("GET", "/fhir/Consent/c-9999", Cred::Bearer(&admin), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn smart_configuration_and_unknown_routes() {
    let s = Sim::start().await;
    let smart = s
        .call("GET", "/.well-known/smart-configuration", Cred::None, None)
        .await;
    assert_eq!(smart.status, 200);
    let base = s.sim.base_url();
    assert_eq!(
        smart.body["authorization_endpoint"],
        format!("{base}/smart/authorize")
    );
    assert_eq!(smart.body["token_endpoint"], format!("{base}/smart/token"));
    assert!(smart.body["capabilities"].is_array() && smart.body["scopes_supported"].is_array());
    assert_eq!(
        smart.body["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let nowhere = s.call("GET", "/nowhere", Cred::None, None).await;
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.error().contains("no route"));
    let fhir_nowhere = s.call("GET", "/fhir/Nothing/x", Cred::None, None).await;
    assert_eq!(fhir_nowhere.status, 404);
    assert_eq!(fhir_nowhere.issue_code(), "not-found");
    let wrong_method = s.call("PATCH", "/api-keys", Cred::None, None).await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.error().contains("method not allowed"));
}
