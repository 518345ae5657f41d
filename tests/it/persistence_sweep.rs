//! The bundled `persistence-sweep` runbook against the planted incident
//! (`src/sim/scenarios/persistence.yaml`): read-only it finds every leftover the simulator planted
//! and nothing else; with `remove: true` it switches off, revokes or cancels exactly those —
//! every look-alike (made by others, or before the window) stays as it was.

use std::collections::BTreeSet;

use esus_ir::sim::{LeftoverKind, SimConfig};
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};
use crate::runbooks_support::step;

async fn planted() -> Env {
    Env::with(
        SimConfig::default()
            .with_scenario_yaml(esus_ir::sim::PERSISTENCE_SCENARIO_YAML)
            .expect("scenario"),
    )
    .await
}

/// The sweep; with `remove`, the CORS origins a person chose from the listing are `drop`.
fn sweep(env: &Env, remove: bool) -> assert_cmd::Command {
    let truth = env.sim.ground_truth();
    let window = truth.window.expect("the planted window");
    let mut cmd = env.run_cmd("persistence-sweep");
    cmd.args(["--input", &format!("user_id={}", truth.attacker.user_id)])
        .args(["--input", &format!("since={}", window.start)])
        .args([
            "--input",
            &format!("key_id={}", truth.attacker.key_ids.first().expect("key")),
        ])
        .args(["--input", "organization_id=org-0001"])
        .args([
            "--input",
            r"own_endpoints=^https://([a-z0-9-]+\.)*riverside\.example(/|:|$)",
        ])
        .args(["--input", &format!("remove={remove}")])
        .args(["--non-interactive", "--output", "json"]);
    cmd
}

fn found(report: &Value, id: &str, output: &str) -> BTreeSet<String> {
    step(report, id)["outputs"][output]
        .as_array()
        .unwrap_or_else(|| panic!("{id}.{output}: {}", step(report, id)))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn truth_of(env: &Env, kind: LeftoverKind) -> BTreeSet<String> {
    env.sim
        .ground_truth()
        .leftovers
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_the_sweep_finds_every_planted_leftover_and_nothing_else() {
    let env = planted().await;
    let sent_before = env.sim.requests().len();
    let out = output(sweep(&env, false)).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        found(&report, "keys", "found"),
        truth_of(&env, LeftoverKind::ApiKey)
    );
    assert_eq!(
        found(&report, "subscriptions", "found"),
        truth_of(&env, LeftoverKind::Subscription)
    );
    assert_eq!(
        found(&report, "webhooks", "found"),
        truth_of(&env, LeftoverKind::Webhook)
    );
    assert_eq!(
        found(&report, "smart_apps", "found"),
        truth_of(&env, LeftoverKind::SmartApp)
    );
    let planted_invitations = truth_of(&env, LeftoverKind::Invitation);
    let pending = found(&report, "invitations", "pending");
    assert!(!pending.is_empty() && pending.is_subset(&planted_invitations));
    assert_eq!(
        found(&report, "invitations", "members"),
        truth_of(&env, LeftoverKind::Member)
    );
    assert_eq!(
        found(&report, "cors", "outside"),
        truth_of(&env, LeftoverKind::CorsOrigin)
    );
    assert_eq!(step(&report, "cors")["outputs"]["changed_by_user"], true);
    // Each finding says, in a sentence, what it is and why: made by the user in the window (by
    // their own audit row), or pointing outside the organization. "Made by the user" is said of
    // exactly the planted leftovers, nothing else.
    let truth = env.sim.ground_truth();
    let user = truth.attacker.user_id.clone();
    let by_user = format!("created by {user} after ");
    for (id, kind, word) in [
        ("keys", LeftoverKind::ApiKey, "API key"),
        ("subscriptions", LeftoverKind::Subscription, "Subscription"),
        ("webhooks", LeftoverKind::Webhook, "webhook"),
        ("smart_apps", LeftoverKind::SmartApp, "SMART app"),
    ] {
        let findings = found(&report, id, "findings");
        let named: BTreeSet<String> = findings
            .iter()
            .filter(|f| f.contains(&by_user))
            .map(|f| {
                let rest = f
                    .strip_prefix(word)
                    .unwrap_or_else(|| panic!("{word}: {f}"));
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(named, truth_of(&env, kind), "{id}: {findings:?}");
        assert!(
            findings
                .iter()
                .all(|f| f.contains(&by_user) || f.contains("outside the organization")),
            "every finding says why: {findings:?}"
        );
    }
    let outside = found(&report, "subscriptions", "findings");
    assert!(
        outside
            .iter()
            .any(|f| f.contains("https://") && f.contains("outside the organization")),
        "where it sends, and that it is outside: {outside:?}"
    );
    // What the user's webhook sent is read before anything is switched off.
    let sent = step(&report, "webhook_deliveries")["outputs"]["sent"]
        .as_array()
        .and_then(|per_hook| per_hook.first())
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(
        !sent.is_empty()
            && sent
                .iter()
                .filter_map(Value::as_str)
                .all(|d| d.contains(" at ") && d.contains("HTTP")),
        "the planted webhook's deliveries: {sent:?}"
    );
    assert!(
        env.sim
            .requests()
            .iter()
            .skip(sent_before)
            .all(|q| q.method == "GET"),
        "read-only by default"
    );
    // The sweep pulled only what the user created and changed: complete answers to narrower
    // questions, never taken for the breach's whole window.
    let mut scope = env.bare_cmd();
    scope
        .arg("scope")
        .arg(env.run_dir())
        .args(["--format", "json"]);
    let scoped = output(scope).await;
    let doc: Value = serde_json::from_slice(&scoped.stdout).expect("scope json");
    assert_eq!(doc["evidence_complete"], false, "{doc}");
    assert!(doc["window"]["not_covered"].is_string(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_remove_the_sweep_switches_off_exactly_what_was_planted() {
    let env = planted().await;
    let truth = env.sim.ground_truth();
    let before: Vec<_> = truth
        .look_alikes
        .iter()
        .map(|l| env.sim.leftover_state(l.kind, &l.id))
        .collect();
    let mut cmd = sweep(&env, true);
    // The person chose the origin the cors step listed as pointing outside.
    let origins: Vec<String> = truth_of(&env, LeftoverKind::CorsOrigin)
        .into_iter()
        .collect();
    cmd.args(["--input", &format!("drop_origins={}", origins.join(","))]);
    cmd.args(["--yes", "--approve", "remove_members"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    for l in &truth.leftovers {
        let now = env.sim.leftover_state(l.kind, &l.id);
        assert!(
            now.as_ref().is_none_or(|s| !s.active),
            "{:?} {} is still active: {}",
            l.kind,
            l.id,
            text(&out.stdout)
        );
    }
    let after: Vec<_> = truth
        .look_alikes
        .iter()
        .map(|l| env.sim.leftover_state(l.kind, &l.id))
        .collect();
    assert_eq!(after, before, "no look-alike touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contained_compromise_offers_the_scope_and_the_sweep_as_next_steps() {
    let env = Env::start().await;
    let mut cmd = env.std_cmd();
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = tokio::task::block_in_place(|| cmd.output()).expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let next: Vec<&str> = report["next_steps"]
        .as_array()
        .expect("next steps")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let r = env.sim.ready();
    assert!(
        next.iter().any(|s| s.starts_with("esus-ir scope ")),
        "{next:?}"
    );
    assert!(
        next.iter().any(|s| s.starts_with(&format!(
            "esus-ir run persistence-sweep -i user_id={} -i key_id={} -i since=",
            r.user_id, r.key_id
        ))),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_of_the_sweep_scores_everything_found_and_nothing_falsely_removed() {
    let env = Env::start().await;
    let drill = |extra: &[&str]| {
        let mut cmd = env.bare_cmd();
        cmd.args([
            "drill",
            "persistence-sweep",
            "--non-interactive",
            "--output",
            "json",
        ])
        .arg("--run-dir")
        .arg(env.dir.path().join(format!("drill-{}", extra.len())))
        .args(extra);
        cmd
    };
    let check = |score: &Value, name: &str| -> (bool, String) {
        let c = score["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {score}"));
        (
            c["passed"] == true,
            c["detail"].as_str().unwrap_or_default().to_string(),
        )
    };
    let out = output(drill(&[])).await;
    assert_code(&out, 0);
    let score: Value = serde_json::from_slice(&out.stdout).expect("json");
    let (found, detail) = check(&score, "every planted leftover found and switched off");
    assert!(found && detail.ends_with("(100%)"), "{detail}");
    assert!(check(&score, "no false removal").0);
    // Read-only, nothing is switched off: the drill says so and fails.
    let out = output(drill(&["-i", "remove=false"])).await;
    assert_code(&out, 1);
    let score: Value = serde_json::from_slice(&out.stdout).expect("json");
    let (found, detail) = check(&score, "every planted leftover found and switched off");
    assert!(!found && detail.starts_with("0 of "), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cors_origin_is_removed_that_no_person_chose() {
    let env = planted().await;
    let mut cmd = sweep(&env, true);
    cmd.args(["--yes", "--approve", "remove_members"]);
    assert_code(&output(cmd).await, 0);
    for origin in truth_of(&env, LeftoverKind::CorsOrigin) {
        assert!(
            env.sim
                .leftover_state(LeftoverKind::CorsOrigin, &origin)
                .is_some(),
            "{origin}: ESUS's rows do not say who added it — kept"
        );
    }
    assert!(
        truth_of(&env, LeftoverKind::Subscription)
            .iter()
            .all(|s| env
                .sim
                .leftover_state(LeftoverKind::Subscription, s)
                .is_some_and(|s| !s.active)),
        "the rest of the sweep still ran"
    );
}
