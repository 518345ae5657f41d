//! `esus-ir scope`: the breach's scope from the incident's audit evidence, compared with the
//! simulator's own rows — every access of the compromised user in the window reported, none
//! invented, rows that arrived while the evidence was pulled included, the responder's own
//! checks kept apart — and the CSV the privacy officer opens read back by a CSV reader.

use std::collections::BTreeMap;

use esus_ir::sim::SimConfig;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

/// What the simulator holds: (resource type, resource id) → read rows, for `user` in the window.
fn truth(
    env: &Env,
    user: &str,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> BTreeMap<(String, Option<String>), usize> {
    let mut by = BTreeMap::new();
    for r in env.sim.audit_rows() {
        let mine = r.agent.user_id.as_deref() == Some(user)
            && !r.agent.user_agent.starts_with("esus-ir/")
            && r.recorded >= from
            && r.recorded <= to;
        let Some(e) = r.entity.as_ref().filter(|_| mine) else {
            continue;
        };
        if r.action == "R" {
            *by.entry((e.resource_type.clone(), e.resource_id.clone()))
                .or_insert(0) += 1;
        }
    }
    by
}

fn time(v: &Value) -> jiff::Timestamp {
    v.as_str().expect("a time").parse().expect("rfc 3339")
}

/// An ESUS without the cursor search: the runbook's page-numbered fallback pulls the evidence
/// while the attacker keeps reading (rows arrive mid-pull and shift the pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_lists_exactly_the_users_accesses_in_the_window_including_rows_that_arrived_mid_pull()
 {
    let env = Env::with(
        SimConfig::default()
            .with_fault("absent=yes@GET /v1/admin/audit/")
            .expect("fault")
            .with_fault("audit_trickle=5@GET /admin/audit/user/{id}")
            .expect("fault"),
    )
    .await;
    // The cursor search failed (404) and the run went on to the fallback: exit 1, and the
    // summary names it.
    let scope = scope_after_run(&env, 1, "audit-user-u-1001-by-page.json", true).await;
    assert_eq!(
        scope["evidence"].as_array().map(Vec::len),
        Some(2),
        "{scope}"
    );
}

/// ESUS's cursor search: its window ends when the pull begins, so rows the attacker adds while
/// it pages are on no page — and the scope still lists exactly the accesses up to containment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_from_the_cursor_search_lists_exactly_the_users_accesses_while_rows_arrive() {
    let env = Env::with(
        SimConfig::default()
            .with_fault("audit_trickle=5@GET /v1/admin/audit/")
            .expect("fault"),
    )
    .await;
    let scope = scope_after_run(&env, 0, "audit-user-u-1001.json", false).await;
    assert!(
        env.sim
            .requests()
            .iter()
            .all(|q| !q.path.starts_with("/admin/audit/user/")),
        "no fallback"
    );
    assert!(
        scope["after_containment"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "rows added after the pull began are outside its window: {}",
        scope["after_containment"]
    );
}

/// Runs the compromise (exit `run_code`), takes the scope of its incident, and compares it with
/// the simulator's rows: every access of the user in the window, none invented; the CSV read
/// back. `trickled_in`: rows after containment are expected in `file` (the trickle reached it).
async fn scope_after_run(env: &Env, run_code: i32, file: &str, trickled_in: bool) -> Value {
    let mut run = env.std_cmd();
    run.args(["--yes", "--non-interactive"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let status = tokio::task::block_in_place(|| run.status()).expect("run");
    assert_eq!(status.code(), Some(run_code));
    let user = env.sim.ready().user_id.clone();
    let mut cmd = env.bare_cmd();
    cmd.arg("scope")
        .arg(env.run_dir())
        .args(["--format", "json"]);
    let out = output(cmd).await;
    // The trickle keeps the attacker reading while the audit is pulled, which this runbook does
    // after containment is proven: where the pull reads those rows, the scope says the
    // credential still acted (exit 1).
    assert_code(&out, i32::from(trickled_in));
    let scope: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(scope["user_id"], user.as_str(), "the incident's user_id");
    // The document is the one `esus-ir schema --scope` describes.
    let schema: Value = serde_json::from_str(include_str!("../../docs/scope.schema.json"))
        .expect("the scope schema");
    let required = schema["required"].as_array().expect("required fields");
    for field in required.iter().filter_map(Value::as_str) {
        assert!(scope.get(field).is_some(), "{field} missing from {scope}");
    }
    assert_eq!(scope["window"]["to_source"], "containment");
    let contained = time(&scope["window"]["to"]);
    let pulled: Value = serde_json::from_slice(
        &std::fs::read(env.run_dir().join("evidence").join(file)).expect("evidence"),
    )
    .expect("json");
    let in_evidence: std::collections::HashSet<&str> = pulled["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    // The cursor search serves each row under another id (docs/esus-api.md, assumption 17).
    let searched = file == "audit-user-u-1001.json";
    let served = |id: String| {
        if searched {
            esus_ir::sim::audit_event_id(&id)
        } else {
            id
        }
    };
    let mut after_truth: Vec<String> = env
        .sim
        .audit_rows()
        .into_iter()
        .filter(|r| r.agent.user_id.as_deref() == Some(user.as_str()))
        .filter(|r| !r.agent.user_agent.starts_with("esus-ir/"))
        .filter(|r| r.recorded > contained)
        .map(|r| served(r.id))
        .filter(|id| in_evidence.contains(id.as_str()))
        .collect();
    after_truth.sort();
    let mut after: Vec<String> = scope["after_containment"]
        .as_array()
        .expect("after")
        .iter()
        .filter_map(|m| m["row"].as_str().map(str::to_string))
        .collect();
    after.sort();
    assert_eq!(
        !after_truth.is_empty(),
        trickled_in,
        "the trickle read after containment, in the evidence"
    );
    assert_eq!(after, after_truth, "every row after containment, no other");
    assert_eq!(scope["evidence_complete"], true);
    let (from, to) = (time(&scope["window"]["from"]), time(&scope["window"]["to"]));
    let expected = truth(env, &user, from, to);
    assert!(
        expected.len() > 3,
        "the scenario's reads are in the window: {expected:?}"
    );
    let got: BTreeMap<(String, Option<String>), usize> = scope["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["reads"].as_u64().is_some_and(|n| n > 0))
        .map(|r| {
            (
                (
                    r["resource_type"].as_str().expect("type").to_string(),
                    r["resource_id"].as_str().map(str::to_string),
                ),
                usize::try_from(r["reads"].as_u64().unwrap_or(0)).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, expected, "every access reported, none invented");
    // Each row of the user in the window is counted once — those the trickle added while the
    // evidence was pulled too (the responder's own checks are listed apart).
    let in_window = env
        .sim
        .audit_rows()
        .into_iter()
        .filter(|r| r.agent.user_id.as_deref() == Some(user.as_str()))
        .filter(|r| r.recorded >= from && r.recorded <= to)
        .filter(|r| !r.agent.user_agent.starts_with("esus-ir/"))
        .count();
    assert_eq!(scope["rows_in_window"].as_u64(), Some(in_window as u64));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"query\""),
        "no search text (PHI) in the scope"
    );
    // The CSV lands in the evidence folder, 0600, and reads back as the records.
    let csv_path = env.run_dir().join("evidence/breach-scope.csv");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&csv_path)
            .expect("csv")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);
    let mut reader = csv::Reader::from_path(&csv_path).expect("csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, esus_ir::scope::render::CSV_HEADER);
    let lines: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a record")).collect();
    assert_eq!(lines.len(), scope["records"].as_array().map_or(0, Vec::len));
    let reads: usize = lines
        .iter()
        .map(|l| l.get(3).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0))
        .sum();
    assert_eq!(reads, expected.values().sum::<usize>());
    scope
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marked_start_narrows_the_scope_and_altered_evidence_gives_none() {
    let env = Env::start().await;
    let mut run = env.std_cmd();
    run.args(["--yes", "--non-interactive"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let status = tokio::task::block_in_place(|| run.status()).expect("run");
    assert_eq!(status.code(), Some(0));
    let scope_of = |extra: &[&str]| {
        let mut cmd = env.bare_cmd();
        cmd.arg("scope")
            .arg(env.run_dir())
            .args(["--format", "json"])
            .args(extra);
        cmd
    };
    let all = output(scope_of(&[])).await;
    assert_code(&all, 0);
    let all: Value = serde_json::from_slice(&all.stdout).expect("json");
    // The post-mortem carries the same scope.
    let mut report = env.bare_cmd();
    report
        .arg("report")
        .arg(env.run_dir())
        .args(["--format", "json"]);
    let report = output(report).await;
    assert_code(&report, 0);
    let report: Value = serde_json::from_slice(&report.stdout).expect("json");
    assert_eq!(report["scope"]["patients"], all["patients"]);
    let mut markdown = env.bare_cmd();
    markdown.arg("report").arg(env.run_dir());
    let markdown = text(&output(markdown).await.stdout);
    assert!(markdown.contains("## Breach scope"), "{markdown}");
    let since = "2026-12-06T00:00:00Z";
    let narrow = output(scope_of(&["--since", since])).await;
    assert_code(&narrow, 0);
    let narrow: Value = serde_json::from_slice(&narrow.stdout).expect("json");
    assert_eq!(narrow["window"]["from"], since);
    assert_eq!(narrow["window"]["from_source"], "marked");
    assert!(narrow["rows_in_window"].as_u64() < all["rows_in_window"].as_u64());
    // A byte of the evidence changed: the scope is not computed from it.
    let file = std::fs::read_dir(env.run_dir().join("evidence"))
        .expect("evidence")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("audit"))
        .expect("the audit evidence");
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&file, bytes).expect("write");
    // The incident no longer verifies (the file is not the one recorded): no scope, exit 5.
    let out = output(scope_of(&[])).await;
    assert_code(&out, 5);
    assert!(
        text(&out.stderr).contains("does not verify"),
        "{}",
        text(&out.stderr)
    );
}

/// Pulls ESUS's audit-chain check and the user's rows by cursor, as evidence of a run.
const EVIDENCE: &str = "version: 1\nname: evidence\ninputs:\n  user: {type: string, required: true}\nsteps:\n  - id: chain\n    name: ESUS checks its audit chain\n    action: audit.verify_chain\n    with: {limit: 10000}\n    save: audit-chain.json\n  - id: pull\n    name: The user's audit rows\n    action: audit.search\n    with: {user_id: \"{{ inputs.user }}\", limit: 7}\n    save: audit-search.json\n  - id: future\n    name: A window said to end in 2099\n    action: audit.search\n    with: {user_id: \"{{ inputs.user }}\", before: \"2099-01-01T00:00:00Z\"}\n    save: audit-future.json\n";

/// The simulator with the planted incident (`src/sim/scenarios/persistence.yaml`).
async fn planted() -> Env {
    Env::with(
        SimConfig::default()
            .with_scenario_yaml(esus_ir::sim::PERSISTENCE_SCENARIO_YAML)
            .expect("scenario"),
    )
    .await
}

/// Per patient: (reads, emergency overrides, failed) of the ground truth's accesses.
type PerPatient = BTreeMap<String, (u64, u64, u64)>;

fn per_patient_of_scope(scope: &Value) -> PerPatient {
    scope["patients"]
        .as_array()
        .expect("patients")
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap_or(0);
            (
                p["patient_id"].as_str().expect("id").to_string(),
                (n("reads"), n("emergency_overrides"), n("failed")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_of_a_planted_incident_is_exactly_the_attackers_patient_accesses() {
    let env = planted().await;
    let truth = env.sim.ground_truth();
    let attacker = truth.attacker.user_id.clone();
    let rb = env.runbook("evidence.yaml", EVIDENCE);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--input", &format!("user={attacker}"), "--non-interactive"]);
    assert_code(&output(cmd).await, 0);
    let summaries: Vec<Value> = std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["type"] == "audit-evidence")
        .collect();
    let pulled = summaries
        .iter()
        .find(|r| r["data"]["step"] == "pull")
        .expect("the cursor pull's summary");
    // A window said to end in the future ends when the pull began: no claim on rows not yet
    // recorded.
    let future = summaries
        .iter()
        .find(|r| r["data"]["step"] == "future")
        .expect("the second pull's summary");
    let to: jiff::Timestamp = future["data"]["window_to"]
        .as_str()
        .expect("window_to")
        .parse()
        .expect("time");
    assert!(to <= jiff::Timestamp::now(), "{future}");
    assert_eq!(pulled["data"]["complete"], true, "{pulled}");
    assert!(
        pulled["data"]["pages"].as_u64().is_some_and(|p| p > 2),
        "several cursor pages: {pulled}"
    );
    let mut expected = PerPatient::new();
    for a in &truth.patient_accesses {
        let e = expected.entry(a.patient_id.clone()).or_default();
        e.0 += u64::from(a.action == "R");
        e.1 += u64::from(a.emergency_override);
        e.2 += u64::from(a.outcome != "success");
    }
    let scope_of = |extra: Vec<String>| {
        let mut cmd = env.bare_cmd();
        cmd.arg("scope")
            .arg(env.run_dir())
            .args(["--user", &attacker, "--format", "json"])
            .args(extra);
        cmd
    };
    // Limited to the attacker's addresses: exactly the planted accesses, none invented.
    let marked: Vec<String> = truth
        .attacker
        .ips
        .iter()
        .flat_map(|ip| ["--source".to_string(), ip.clone()])
        .collect();
    let out = output(scope_of(marked)).await;
    assert_code(&out, 0);
    let scope: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(per_patient_of_scope(&scope), expected);
    assert_eq!(
        scope["source_chain"]["ok"], true,
        "ESUS's chain check is in the evidence: {}",
        scope["source_chain"]
    );
    // Every row of the user counts the real user's own work too: the scope says so by source.
    let out = output(scope_of(Vec::new())).await;
    assert_code(&out, 0);
    let all: Value = serde_json::from_slice(&out.stdout).expect("json");
    let reads = |s: &Value| -> u64 { per_patient_of_scope(s).values().map(|v| v.0).sum() };
    assert!(
        reads(&all) > reads(&scope),
        "the user's own reads from elsewhere are in the unmarked scope"
    );
    assert!(
        all["sources"]
            .as_array()
            .is_some_and(|s| s.len() > truth.attacker.ips.len()),
        "{}",
        all["sources"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_in_esus_s_audit_chain_is_reported_before_anything_the_rows_say() {
    let env = planted().await;
    let truth = env.sim.ground_truth();
    let row = truth.attacker_rows.first().expect("a planted row").clone();
    assert!(
        env.sim
            .tamper_audit_row(&row, esus_ir::sim::AuditTamper::EditContent),
        "tampered"
    );
    let rb = env.runbook("evidence.yaml", EVIDENCE);
    let mut cmd = env.run_cmd(&rb);
    cmd.args([
        "--input",
        &format!("user={}", truth.attacker.user_id),
        "--non-interactive",
    ]);
    assert_code(&output(cmd).await, 0);
    let mut scope = env.bare_cmd();
    scope
        .arg("scope")
        .arg(env.run_dir())
        .args(["--user", &truth.attacker.user_id]);
    let out = output(scope).await;
    let said = text(&out.stdout);
    assert!(
        said.starts_with("ESUS'S AUDIT CHAIN IS BROKEN"),
        "the break comes first: {said}"
    );
    assert!(
        said.contains(&esus_ir::sim::audit_event_id(&row)),
        "names the row: {said}"
    );
}

/// ESUS's chain check needs a system administrator: for an operator who is not one, the
/// compromise runbook is not refused at the preflight, the check is skipped with the reason, the
/// run succeeds, and the scope says the chain was not checked. For one who is, it is evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_check_runs_only_for_a_system_administrator_and_is_skipped_with_its_reason() {
    let yaml = format!(
        "{}\nsystem_admins: []\n",
        esus_ir::sim::DEFAULT_SCENARIO_YAML.trim_end()
    );
    let env = Env::with(
        SimConfig::default()
            .with_scenario_yaml(&yaml)
            .expect("scenario"),
    )
    .await;
    let mut run = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut run);
    run.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(run).await;
    assert_code(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let chain = doc["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "audit_chain"))
        .expect("the chain step");
    assert_eq!(chain["status"], "skipped", "{chain:#}");
    assert!(
        chain["reason"]
            .as_str()
            .is_some_and(|r| r.contains("lacks the system administrator's bearer token")),
        "{chain:#}"
    );
    assert!(
        env.sim
            .requests()
            .iter()
            .all(|q| q.path != "/admin/system-admins/audit/verify"),
        "nothing sent that ESUS would refuse"
    );
    let mut cmd = env.bare_cmd();
    cmd.arg("scope").arg(env.run_dir());
    let scope = output(cmd).await;
    assert_code(&scope, 0);
    assert!(
        text(&scope.stdout).contains("ESUS's audit chain: not checked by this incident"),
        "{}",
        text(&scope.stdout)
    );
}
