//! Simulator contract of issue 19, the routes of what an attacker leaves behind: FHIR
//! Subscriptions switched off, tenant-app webhooks, SMART apps, CORS origins, invitations and
//! bulk exports — list, disable, remove, with the published shapes and the hard undocumented
//! choices (docs/esus-api.md), against the persistence scenario.

use std::collections::BTreeSet;
use std::time::Duration;

use esus_ir::sim::LeftoverKind;
use serde_json::{Value, json};

use crate::sim_persistence::{APP, DASHBOARD_HOOK, EXFIL_HOOK, PORTAL_APP, list, pat, persistence};
use crate::sim_support::{Cred, keys, sorted};

// OpenAPI patchFhirSubscriptionById: switching the attacker's Subscription off keeps it.
#[tokio::test]
async fn subscription_patch_switches_one_off_and_keeps_it() {
    let s = persistence().await;
    let admin = s.admin();
    let off = s
        .call(
            "PATCH",
            "/fhir/Subscription/sub-0002",
            Cred::Bearer(&admin),
            Some(json!({"status": "off"})),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["status"], "off");
    assert_eq!(off.body["meta"]["versionId"], "2");
    assert_eq!(
        off.body["channel"]["endpoint"], "https://exfil.example.net/fhir/notify",
        "the rest is kept"
    );
    let again = s
        .call(
            "GET",
            "/fhir/Subscription/sub-0002",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(again.body["status"], "off");
    let state = s
        .sim
        .leftover_state(LeftoverKind::Subscription, "sub-0002")
        .expect("kept");
    assert!(!state.active);
    for (body, needle) in [
        (
            json!({"resourceType": "Subscription", "status": "off"}),
            "resourceType",
        ),
        (json!({"status": null}), "status"),
        (json!({"status": "paused"}), "status"),
        (json!({"channel": {"type": "rest-hook"}}), "channel"),
    ] {
        let a = s
            .call(
                "PATCH",
                "/fhir/Subscription/sub-0003",
                Cred::Bearer(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.issue_code(), "invalid");
        assert!(
            a.body["issue"][0]["diagnostics"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{}",
            a.body
        );
    }
    assert!(
        s.sim
            .leftover_state(LeftoverKind::Subscription, "sub-0003")
            .expect("kept")
            .active,
        "refused bodies change nothing"
    );
    let missing = s
        .call(
            "PATCH",
            "/fhir/Subscription/sub-9",
            Cred::Bearer(&admin),
            Some(json!({"status": "off"})),
        )
        .await;
    assert_eq!(missing.status, 404);
    let pat = pat(&s).await;
    let refused = s
        .call(
            "PATCH",
            "/fhir/Subscription/sub-0003",
            Cred::Bearer(&pat),
            Some(json!({"status": "off"})),
        )
        .await;
    assert_eq!(refused.status, 403);
}

const WEBHOOK_KEYS: [&str; 9] = [
    "id",
    "appId",
    "url",
    "events",
    "description",
    "active",
    "createdAt",
    "updatedAt",
    "secret",
];

fn webhook_keys(with_secret: bool) -> Vec<String> {
    let n = if with_secret { 9 } else { 8 };
    sorted(&WEBHOOK_KEYS[..n])
}

// OpenAPI getTenant-appsByIdWebhooks … postTenant-appsByIdWebhooksByWebhookIdPing.
#[tokio::test]
async fn webhooks_list_disable_ping_and_delete() {
    let s = persistence().await;
    let admin = s.admin();
    let base = format!("/tenant-apps/{APP}/webhooks");
    let listed = s
        .call("GET", &format!("{base}/"), Cred::Bearer(&admin), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(keys(&listed.body), ["webhooks"]);
    let hooks = list(&listed.body, "webhooks");
    let ids: BTreeSet<&str> = hooks.iter().filter_map(|h| h["id"].as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([EXFIL_HOOK, DASHBOARD_HOOK]),
        "the look-alike shares the app"
    );
    for h in hooks {
        assert_eq!(keys(h), webhook_keys(false), "no secret in a listing");
    }
    let by_key = s
        .call("GET", &format!("{base}/"), s.leaked().cred(), None)
        .await;
    assert_eq!(
        by_key.body, listed.body,
        "the app's own key sees its webhooks"
    );

    let deliveries = s
        .call(
            "GET",
            &format!("{base}/{EXFIL_HOOK}/deliveries"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let d = list(&deliveries.body, "deliveries");
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["eventType"], "user.password_reset", "newest first");
    assert_eq!(
        keys(&d[0]),
        sorted(&[
            "id",
            "webhookId",
            "eventId",
            "eventType",
            "status",
            "attempts",
            "lastStatusCode",
            "lastError",
            "lastAttemptAt",
            "deliveredAt",
            "createdAt"
        ])
    );
    assert_eq!(
        (d[0]["status"].clone(), d[0]["lastStatusCode"].clone()),
        (json!("delivered"), json!(200))
    );

    let off = s
        .call(
            "PATCH",
            &format!("{base}/{EXFIL_HOOK}"),
            Cred::Bearer(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(
        (off.body["active"].clone(), keys(&off.body)),
        (json!(false), webhook_keys(false))
    );
    assert!(
        !s.sim
            .leftover_state(LeftoverKind::Webhook, EXFIL_HOOK)
            .expect("kept")
            .active
    );
    let ping = s
        .call(
            "POST",
            &format!("{base}/{EXFIL_HOOK}/ping"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(ping.status, 200, "a disabled webhook answers a ping too");
    let after = s
        .call(
            "GET",
            &format!("{base}/{EXFIL_HOOK}/deliveries?limit=1"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let newest = &list(&after.body, "deliveries")[0];
    assert_eq!(newest["id"], ping.body["deliveryId"]);
    assert_eq!(
        (newest["status"].clone(), newest["lastError"].clone()),
        (json!("failed"), json!("webhook is inactive"))
    );

    let gone = s
        .call(
            "DELETE",
            &format!("{base}/{EXFIL_HOOK}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!((gone.status, gone.body.clone()), (204, Value::Null));
    for (method, path) in [
        ("GET", format!("{base}/{EXFIL_HOOK}")),
        ("DELETE", format!("{base}/{EXFIL_HOOK}")),
    ] {
        assert_eq!(
            s.call(method, &path, Cred::Bearer(&admin), None)
                .await
                .status,
            404,
            "{method} {path}"
        );
    }
    assert!(
        s.sim
            .leftover_state(LeftoverKind::Webhook, EXFIL_HOOK)
            .is_none()
    );
    assert!(
        s.sim
            .leftover_state(LeftoverKind::Webhook, DASHBOARD_HOOK)
            .is_some(),
        "the look-alike stays"
    );
}

#[tokio::test]
async fn webhooks_create_rotate_and_refuse() {
    let s = persistence().await;
    let admin = s.admin();
    let base = format!("/tenant-apps/{APP}/webhooks");
    let body = json!({"url": "https://ops.riverside.example/hook", "events": ["user.locked"]});
    let made = s
        .call(
            "POST",
            &format!("{base}/"),
            Cred::Bearer(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(keys(&made.body), webhook_keys(true));
    assert_eq!(
        (made.body["appId"].clone(), made.body["description"].clone()),
        (json!(APP), Value::Null)
    );
    let id = made.body["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 36, "a UUID");
    let read = s
        .call("GET", &format!("{base}/{id}"), Cred::Bearer(&admin), None)
        .await;
    assert_eq!(
        keys(&read.body),
        webhook_keys(false),
        "the secret is shown once"
    );
    let rotated = s
        .call(
            "PATCH",
            &format!("{base}/{id}"),
            Cred::Bearer(&admin),
            Some(json!({"rotateSecret": true})),
        )
        .await;
    assert_ne!(rotated.body["secret"], made.body["secret"]);
    assert!(rotated.body["secret"].is_string());
    let row = s
        .sim
        .audit_rows()
        .into_iter()
        .rev()
        .find(|r| r.kind == "webhook.create")
        .expect("row");
    assert_eq!(
        row.entity.and_then(|e| e.resource_id),
        Some(id.clone()),
        "the creation row names it"
    );

    let other_app = s
        .call(
            "GET",
            &format!("/tenant-apps/{PORTAL_APP}/webhooks/{id}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(other_app.status, 404, "a webhook belongs to its app");
    let unknown = s
        .call(
            "GET",
            "/tenant-apps/00000000-0000-4000-8000-000000000000/webhooks/",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    let portal_key = Cred::AppKey("ck_riverside_portal:sk_live_portal_2c5f", PORTAL_APP);
    assert_eq!(
        s.call("GET", &format!("{base}/"), portal_key, None)
            .await
            .status,
        403,
        "another app's key"
    );
    let pat = pat(&s).await;
    assert_eq!(
        s.call("GET", &format!("{base}/"), Cred::Bearer(&pat), None)
            .await
            .status,
        403
    );
    for bad in [
        json!({"url": "ftp://x.example/h", "events": ["user.locked"]}),
        json!({"url": "https://x.example/h", "events": ["patient.read"]}),
        json!({"url": "https://x.example/h", "events": []}),
        json!({"events": ["user.locked"]}),
    ] {
        let a = s
            .call(
                "POST",
                &format!("{base}/"),
                Cred::Bearer(&admin),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(!a.error().is_empty());
    }
    let key_made = s
        .call("POST", &format!("{base}/"), s.leaked().cred(), Some(body))
        .await;
    assert_eq!(key_made.status, 201, "a leaked app key can plant a webhook");
}

const SMART_KEYS: [&str; 11] = [
    "id",
    "clientId",
    "name",
    "description",
    "redirectUris",
    "scopes",
    "isConfidential",
    "active",
    "createdAt",
    "updatedAt",
    "clientSecret",
];

// OpenAPI getSmartApps, postSmartApps, getSmartAppsById, putSmartAppsById, deleteSmartAppsById.
#[tokio::test]
async fn smart_apps_list_register_disable_and_delete() {
    let s = persistence().await;
    let admin = s.admin();
    let all = s
        .call("GET", "/smart/apps/", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["total"], 2);
    let exfil = list(&all.body, "items")
        .iter()
        .find(|a| a["id"] == "smart-0002")
        .expect("planted");
    let without: Vec<&str> = SMART_KEYS
        .iter()
        .copied()
        .filter(|k| !["description", "clientSecret"].contains(k))
        .collect();
    assert_eq!(keys(exfil), sorted(&without), "no description, no secret");
    assert_eq!(
        exfil["redirectUris"],
        json!(["https://exfil.example.net/oauth/callback"])
    );
    let named = s
        .call(
            "GET",
            "/smart/apps/?name=Clinical%20Insights",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(named.body["total"], 1);
    let made = s
        .call(
            "POST",
            "/smart/apps/",
            Cred::Bearer(&admin),
            Some(json!({
            "name": "Ward board", "redirectUris": ["https://board.riverside.example/cb"],
            "scopes": ["launch"], "description": "wards", "isConfidential": true})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(keys(&made.body), sorted(&SMART_KEYS));
    let id = made.body["id"].as_str().expect("id").to_owned();
    let read = s
        .call(
            "GET",
            &format!("/smart/apps/{id}"),
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert!(
        read.body.get("clientSecret").is_none(),
        "the secret is shown once"
    );

    let off = s
        .call(
            "PUT",
            "/smart/apps/smart-0002",
            Cred::Bearer(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(
        (
            off.status,
            off.body["active"].clone(),
            off.body["name"].clone()
        ),
        (200, json!(false), json!("Clinical Insights"))
    );
    let active = s
        .call(
            "GET",
            "/smart/apps/?active=true",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert!(
        list(&active.body, "items")
            .iter()
            .all(|a| a["id"] != "smart-0002")
    );
    assert_eq!(
        s.call(
            "DELETE",
            "/smart/apps/smart-0002",
            Cred::Bearer(&admin),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        s.call("GET", "/smart/apps/smart-0002", Cred::Bearer(&admin), None)
            .await
            .status,
        404
    );
    assert_eq!(
        s.call(
            "DELETE",
            "/smart/apps/smart-0002",
            Cred::Bearer(&admin),
            None
        )
        .await
        .status,
        404
    );
    assert!(
        s.sim
            .leftover_state(LeftoverKind::SmartApp, "smart-0001")
            .is_some()
    );
    let bad = s
        .call(
            "POST",
            "/smart/apps/",
            Cred::Bearer(&admin),
            Some(json!({"name": "x", "redirectUris": ["not a url"], "scopes": []})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let pat = pat(&s).await;
    assert_eq!(
        s.call("GET", "/smart/apps/", Cred::Bearer(&pat), None)
            .await
            .status,
        403
    );
}

// OpenAPI getOrganizationsByIdCors-origins, putOrganizationsByIdCors-origins: the list is
// replaced whole; who added an origin is known to the ground truth only.
#[tokio::test]
async fn cors_origins_are_replaced_whole() {
    let s = persistence().await;
    let admin = s.admin();
    let path = "/organizations/org-0001/cors-origins";
    let now = s.call("GET", path, Cred::Bearer(&admin), None).await;
    let all = json!([
        "https://portal.riverside.example",
        "https://viewer.riverside.example",
        "https://exfil.example.net"
    ]);
    assert_eq!(now.body, json!({"origins": all}));
    for bad in [
        json!({"origins": ["https://x.example/"]}),
        json!({"origins": ["*"]}),
        json!({}),
        json!({"origins": ["https://a.example", "https://a.example"]}),
    ] {
        let a = s
            .call("PUT", path, Cred::Bearer(&admin), Some(bad.clone()))
            .await;
        assert_eq!(a.status, 400, "{bad}");
    }
    assert_eq!(
        s.call("GET", path, Cred::Bearer(&admin), None).await.body,
        json!({"origins": all}),
        "unchanged"
    );
    let kept = json!([
        "https://portal.riverside.example",
        "https://viewer.riverside.example"
    ]);
    let put = s
        .call(
            "PUT",
            path,
            Cred::Bearer(&admin),
            Some(json!({"origins": kept})),
        )
        .await;
    assert_eq!(
        (put.status, put.body.clone()),
        (200, json!({"origins": kept}))
    );
    assert!(
        s.sim
            .leftover_state(LeftoverKind::CorsOrigin, "https://exfil.example.net")
            .is_none()
    );
    let portal = s
        .sim
        .leftover_state(LeftoverKind::CorsOrigin, "https://portal.riverside.example")
        .expect("kept");
    assert_eq!(
        portal.created_by, "u-0001",
        "a kept origin keeps who added it"
    );
    let other = s
        .call(
            "GET",
            "/organizations/org-9999/cors-origins",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(other.status, 404);
    let pat = pat(&s).await;
    assert_eq!(
        s.call("GET", path, Cred::Bearer(&pat), None).await.status,
        403
    );
}

// OpenAPI postAuthInvite, getAuthInvitations, deleteAuthInvitationsById.
#[tokio::test]
async fn invitations_list_send_and_revoke() {
    let s = persistence().await;
    let admin = s.admin();
    let all = s
        .call("GET", "/auth/invitations", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["total"], 3, "accepted ones are listed too");
    let accepted = list(&all.body, "invitations")
        .iter()
        .find(|i| i["id"] == "inv-0002")
        .expect("planted");
    assert_eq!(
        keys(accepted),
        sorted(&[
            "id",
            "email",
            "role",
            "invitedBy",
            "expiresAt",
            "acceptedAt",
            "acceptedBy",
            "practitionerData",
            "createdAt"
        ])
    );
    assert_eq!(
        (
            accepted["invitedBy"].clone(),
            accepted["acceptedBy"].clone(),
            accepted["role"].clone()
        ),
        (json!("u-2001"), json!("u-6001"), json!("owner"))
    );
    let sent = s
        .call(
            "POST",
            "/auth/invite",
            Cred::Bearer(&admin),
            Some(json!({"email": "locum@riverside.example"})),
        )
        .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(keys(&sent.body), sorted(&["message", "invitationId"]));
    for bad in [
        json!({"email": "nobody"}),
        json!({"email": "a@b.example", "role": "admin"}),
        json!({}),
    ] {
        assert_eq!(
            s.call(
                "POST",
                "/auth/invite",
                Cred::Bearer(&admin),
                Some(bad.clone())
            )
            .await
            .status,
            400,
            "{bad}"
        );
    }
    let revoked = s
        .call(
            "DELETE",
            "/auth/invitations/inv-0003",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(
        (revoked.status, keys(&revoked.body)),
        (200, vec!["message".to_owned()])
    );
    assert_eq!(
        s.call(
            "DELETE",
            "/auth/invitations/inv-0003",
            Cred::Bearer(&admin),
            None
        )
        .await
        .status,
        404
    );
    let late = s
        .call(
            "DELETE",
            "/auth/invitations/inv-0002",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    assert_eq!(late.status, 200);
    assert_eq!(
        s.sim.org_role_of("u-6001").as_deref(),
        Some("Admin"),
        "revoking does not remove who joined"
    );
    let pat = pat(&s).await;
    assert_eq!(
        s.call("GET", "/auth/invitations", Cred::Bearer(&pat), None)
            .await
            .status,
        403
    );
}

// OpenAPI getFhir$export, getBulk-exportById, deleteBulk-exportById. No route lists exports:
// the running one is found through its kick-off row.
#[tokio::test]
async fn bulk_exports_run_until_cancelled_and_are_found_through_the_audit_log() {
    let s = persistence().await;
    let admin = s.admin();
    let starts = s
        .call(
            "GET",
            "/v1/admin/audit/?resourceType=BulkExport&action=C",
            Cred::Bearer(&admin),
            None,
        )
        .await;
    let found: BTreeSet<&str> = list(&starts.body, "events")
        .iter()
        .filter_map(|e| e["entity"]["resourceId"].as_str())
        .collect();
    assert_eq!(found, BTreeSet::from(["exp-0001", "exp-0002"]));
    let running = s
        .call("GET", "/bulk-export/exp-0002", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(running.status, 202, "{}", running.body);
    assert_eq!(running.body["status"], "in-progress");
    let done = s
        .call("GET", "/bulk-export/exp-0001", Cred::Bearer(&admin), None)
        .await;
    assert_eq!(done.status, 200);
    assert_eq!(
        keys(&done.body),
        sorted(&[
            "transactionTime",
            "request",
            "requiresAccessToken",
            "output",
            "error"
        ])
    );

    let kick = s
        .try_call(
            "GET",
            "/fhir/$export?_type=Patient",
            Cred::Bearer(&admin),
            None,
            &[],
        )
        .await
        .expect("answered");
    assert_eq!(kick.status().as_u16(), 202);
    let location = kick.headers()["content-location"]
        .to_str()
        .expect("text")
        .to_owned();
    let path = location.trim_start_matches(&s.sim.base_url()).to_owned();
    assert_eq!(
        s.call("GET", &path, Cred::Bearer(&admin), None)
            .await
            .status,
        202
    );
    s.sim.advance_clock(Duration::from_secs(31 * 60));
    let admin = s
        .login("admin@riverside.example", "admin-drill-password")
        .await;
    let complete = s.call("GET", &path, Cred::Bearer(&admin), None).await;
    assert_eq!(complete.status, 200, "{}", complete.body);
    assert_eq!(complete.body["output"][0]["type"], "Patient");

    let pat = pat(&s).await;
    assert_eq!(
        s.call("GET", "/bulk-export/exp-0002", Cred::Bearer(&pat), None)
            .await
            .status,
        404,
        "not theirs"
    );
    assert_eq!(
        s.call(
            "DELETE",
            "/bulk-export/exp-0002",
            Cred::Bearer(&admin),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        s.call("GET", "/bulk-export/exp-0002", Cred::Bearer(&admin), None)
            .await
            .status,
        404
    );
    assert!(
        s.sim
            .leftover_state(LeftoverKind::BulkExport, "exp-0002")
            .is_none()
    );
}
