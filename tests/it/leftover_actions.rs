//! The catalogue's actions for what an attacker leaves behind, sent by a runbook against the
//! planted incident (`src/sim/scenarios/persistence.yaml`): each planted leftover switched off,
//! revoked or cancelled as ESUS publishes it, and every look-alike left as it was.

use esus_ir::sim::{LeftoverKind, SimConfig};

use crate::run_support::{Env, assert_code, output, text};

const REMOVE: &str = r#"version: 1
name: remove-leftovers
inputs:
  key_id: {type: string, required: true}
  webhook: {type: string, required: true}
  subscription: {type: string, required: true}
  smart_app: {type: string, required: true}
  invitation: {type: string, required: true}
  export: {type: string, required: true}
  organization: {type: string, required: true}
  bad_origin: {type: string, required: true}
steps:
  - id: key
    name: The leaked key's app
    action: api_keys.get
    with: {id: "{{ inputs.key_id }}"}
    outputs: {app_id: response.appId}
  - id: hooks
    name: The app's webhooks
    action: webhooks.list
    needs: [key]
    with: {app_id: "{{ steps.key.outputs.app_id }}"}
    outputs: {ids: 'response.webhooks | map(attribute="id") | list'}
  - id: deliveries
    name: What the planted webhook sent
    action: webhooks.deliveries
    needs: [key]
    with: {app_id: "{{ steps.key.outputs.app_id }}", id: "{{ inputs.webhook }}"}
    outputs: {sent: 'response.deliveries | length'}
  - id: hook_off
    name: Switch the planted webhook off
    action: webhooks.disable
    needs: [hooks, deliveries]
    with: {app_id: "{{ steps.key.outputs.app_id }}", id: "{{ inputs.webhook }}"}
  - id: sub_off
    name: Switch the planted Subscription off
    action: subscription.disable
    with: {id: "{{ inputs.subscription }}"}
  - id: apps
    name: SMART apps
    action: smart_apps.list
  - id: app_off
    name: Switch the planted SMART app off
    action: smart_apps.disable
    needs: [apps]
    with: {id: "{{ inputs.smart_app }}"}
  - id: origins
    name: CORS origins
    action: cors.list
    with: {organization_id: "{{ inputs.organization }}"}
    outputs: {keep: 'response.origins | reject("eq", inputs.bad_origin) | list'}
  - id: origins_set
    name: Drop the planted CORS origin
    action: cors.set
    with: {organization_id: "{{ inputs.organization }}", origins: "{{ steps.origins.outputs.keep }}"}
  - id: invitations
    name: Invitations
    action: invitations.list
  - id: revoke
    name: Revoke the planted invitation
    action: invitations.revoke
    needs: [invitations]
    with: {id: "{{ inputs.invitation }}"}
  - id: export
    name: The planted export
    action: bulk_export.status
    with: {id: "{{ inputs.export }}"}
  - id: cancel
    name: Cancel the planted export
    action: bulk_export.cancel
    needs: [export]
    with: {id: "{{ inputs.export }}"}
  - id: admins
    name: System administrators
    action: system_admins.list
"#;

fn planted(env: &Env, kind: LeftoverKind, pending_only: bool) -> String {
    env.sim
        .ground_truth()
        .leftovers
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.id.clone())
        .find(|id| !pending_only || env.sim.leftover_state(kind, id).is_some())
        .expect("a planted leftover of that kind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_leftover_is_switched_off_revoked_or_cancelled_and_no_look_alike_is_touched() {
    let env = Env::with(
        SimConfig::default()
            .with_scenario_yaml(esus_ir::sim::PERSISTENCE_SCENARIO_YAML)
            .expect("scenario"),
    )
    .await;
    let truth = env.sim.ground_truth();
    let webhook = planted(&env, LeftoverKind::Webhook, false);
    let subscription = planted(&env, LeftoverKind::Subscription, false);
    let smart_app = planted(&env, LeftoverKind::SmartApp, false);
    let export = planted(&env, LeftoverKind::BulkExport, false);
    let origin = planted(&env, LeftoverKind::CorsOrigin, false);
    // The pending invitation (an accepted one's member stays either way).
    let invitation = truth
        .leftovers
        .iter()
        .filter(|l| l.kind == LeftoverKind::Invitation)
        .map(|l| l.id.clone())
        .next_back()
        .expect("an invitation");
    let before: Vec<_> = truth
        .look_alikes
        .iter()
        .map(|l| env.sim.leftover_state(l.kind, &l.id))
        .collect();
    let rb = env.runbook("remove.yaml", REMOVE);
    let mut cmd = env.run_cmd(&rb);
    let key = truth
        .attacker
        .key_ids
        .first()
        .expect("the leaked key")
        .clone();
    for (k, v) in [
        ("key_id", key.as_str()),
        ("webhook", &webhook),
        ("subscription", &subscription),
        ("smart_app", &smart_app),
        ("invitation", &invitation),
        ("export", &export),
        ("organization", "org-0001"),
        ("bad_origin", &origin),
    ] {
        cmd.args(["--input", &format!("{k}={v}")]);
    }
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let state = |kind, id: &str| env.sim.leftover_state(kind, id);
    assert!(
        state(LeftoverKind::Webhook, &webhook).is_some_and(|s| !s.active),
        "the webhook is off and kept as evidence"
    );
    assert!(state(LeftoverKind::Subscription, &subscription).is_some_and(|s| !s.active));
    assert!(state(LeftoverKind::SmartApp, &smart_app).is_some_and(|s| !s.active));
    assert!(
        state(LeftoverKind::CorsOrigin, &origin).is_none(),
        "origin gone"
    );
    assert!(
        state(LeftoverKind::Invitation, &invitation).is_none(),
        "revoked"
    );
    assert!(
        state(LeftoverKind::BulkExport, &export).is_none(),
        "cancelled"
    );
    let after: Vec<_> = truth
        .look_alikes
        .iter()
        .map(|l| env.sim.leftover_state(l.kind, &l.id))
        .collect();
    assert!(
        before.iter().all(Option::is_some),
        "every look-alike exists"
    );
    assert_eq!(
        after,
        before,
        "no look-alike touched: {}",
        text(&out.stdout)
    );
}
