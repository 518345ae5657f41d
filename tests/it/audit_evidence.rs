//! Audit evidence against ESUS as it really pages: newest first, pages smaller than asked, rows
//! arriving while the pull runs (an attacker still active). The evidence must hold each row once
//! and prove, from ESUS's own count, that nothing of the window it covers is missing.

use std::collections::HashSet;

use esus_ir::sim::SimConfig;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, verify};
use crate::runbooks_support::step;

const PULL: &str = "version: 1\nname: pull\ninputs:\n  user: {type: string, required: true}\nsteps:\n  - id: audit\n    name: Pull the audit log\n    action: audit.user\n    with: {user_id: \"{{ inputs.user }}\", count: 200}\n    save: audit.json\n    outputs:\n      rows: response.rows\n      complete: response.complete\n";

async fn pull(env: &Env) -> (Value, Value, Vec<Value>) {
    let rb = env.runbook("pull.yaml", PULL);
    let mut cmd = env.run_cmd(&rb);
    cmd.args([
        "--input",
        "user=u-1001",
        "--non-interactive",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(env.run_dir().join("evidence/audit.json")).expect("evidence"),
    )
    .expect("json evidence");
    let records: Vec<Value> = std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    (report, saved, records)
}

fn ids(rows: &[Value]) -> Vec<&str> {
    rows.iter().filter_map(|r| r["id"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_first_pages_smaller_than_asked_are_read_to_the_last_row_exactly_once() {
    let env = Env::start().await;
    let (report, saved, records) = pull(&env).await;
    let rows = saved["rows"].as_array().expect("rows");
    let unique: HashSet<&str> = ids(rows).into_iter().collect();
    assert_eq!(unique.len(), rows.len(), "each row once");
    // Every row the simulator holds for the user at the end of the run is in the evidence.
    let held: Vec<String> = env
        .sim
        .audit_rows()
        .into_iter()
        .filter(|r| r.agent.user_id.as_deref() == Some("u-1001"))
        .map(|r| r.id)
        .collect();
    assert_eq!(held.len(), rows.len());
    assert!(held.iter().all(|id| unique.contains(id.as_str())));
    // 200 were asked per page, the simulator answers at most 50: more than one page was read.
    let pages = records
        .iter()
        .filter(|r| r["type"] == "request" && r["data"]["step"] == "audit")
        .count();
    assert!(
        pages > rows.len() / 200 + 1,
        "{pages} pages for {} rows",
        rows.len()
    );
    assert_eq!(step(&report, "audit")["outputs"]["complete"], true);
    let summary = records
        .iter()
        .find(|r| r["type"] == "audit-evidence")
        .expect("the pull's summary is recorded");
    assert_eq!(summary["data"]["rows"], rows.len());
    assert_eq!(summary["data"]["complete"], true);
    assert!(summary["data"]["window_from"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_arriving_mid_pull_are_caught_up_and_the_window_is_proven_complete() {
    let config = SimConfig::default()
        .with_fault("audit_trickle=7@GET /admin/audit/user/{id}")
        .expect("fault");
    let env = Env::with(config).await;
    let before = env
        .sim
        .audit_rows()
        .iter()
        .filter(|r| r.agent.user_id.as_deref() == Some("u-1001"))
        .count();
    let (report, saved, records) = pull(&env).await;
    let rows = saved["rows"].as_array().expect("rows");
    let unique: HashSet<&str> = ids(rows).into_iter().collect();
    assert_eq!(
        unique.len(),
        rows.len(),
        "each row once, though pages shifted"
    );
    assert!(
        rows.len() > before,
        "rows that arrived during the pull were caught up"
    );
    let summary = &records
        .iter()
        .find(|r| r["type"] == "audit-evidence")
        .expect("summary")["data"];
    assert!(
        summary["duplicates_dropped"]
            .as_u64()
            .is_some_and(|d| d > 0),
        "newest-first pages shifted under the new rows: {summary}"
    );
    assert_eq!(summary["complete"], true, "{summary}");
    // The claim covers every row recorded up to `window_to`, and the simulator agrees.
    let cut: jiff::Timestamp = summary["window_to"]
        .as_str()
        .expect("window_to")
        .parse()
        .expect("rfc 3339");
    let in_window: Vec<String> = env
        .sim
        .audit_rows()
        .into_iter()
        .filter(|r| r.agent.user_id.as_deref() == Some("u-1001") && r.recorded <= cut)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        in_window.len() as u64,
        summary["rows"].as_u64().expect("rows")
    );
    assert!(in_window.iter().all(|id| unique.contains(id.as_str())));
    assert_eq!(step(&report, "audit")["status"], "ok");
    // `verify` re-reads the evidence: its digest, and each row once, as many as recorded.
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
}
