//! Exact claims under SIGKILL at every record boundary: a 50-item batch that creates a
//! replacement key per item, with create answers lost after ESUS made the key, and someone else's
//! key of the same name as one item's. The run is killed after its 1st, 2nd, … Nth record (the
//! writer's kill point, `ESUS_IR_KILL_AFTER_RECORDS`: exact, where a kill from outside lands
//! wherever the scheduler is), then resumed until it completes. Every time: no object the run did
//! not create is ever deleted or changed, each item has exactly one live replacement under its own
//! name, and its secret is held (0600) and works.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::run_support::{CLEARED_ENV, Env, text};
use crate::runbooks_support::DEFAULT_SCENARIO;

const ITEMS: usize = 50;
const SEED: u64 = 16;

/// The default scenario plus 50 keys named `batch-NNN`.
fn scenario() -> String {
    let mut extra = String::new();
    for n in 0..ITEMS {
        extra.push_str(&format!(
            "  - {{ id: k-{id}, name: batch-{n:03}, owner: u-0001, client_id: ck_batch_{n:03}, secret: sk_live_batch_{n:03}_x, scopes: [Patient.read], created_days_ago: 10 }}\n",
            id = 5000 + n
        ));
    }
    extra.push_str("patients:\n");
    DEFAULT_SCENARIO.replacen("patients:\n", &extra, 1)
}

const RUNBOOK: &str = r#"version: 1
name: batch-replace
steps:
  - id: list
    name: Find the compromised batch keys
    action: api_keys.list
    outputs:
      names: >-
        response.items | selectattr("name", "matching", "^batch-[0-9]+$") |
        map(attribute="name") | sort | unique | list
  - id: replace
    name: Create a replacement for each
    needs: [list]
    foreach: steps.list.outputs.names
    concurrency: 8
    action: api_keys.create
    with:
      name: "{{ item }}"
      scopes: [Patient.read]
    outputs:
      new_key_id: response.id
      new_client_id: response.clientId
      new_secret: { value: response.secret, secret: true }
"#;

/// The unattended run (or resume) of the batch, killed after `kill` records when given.
fn command(env: &Env, rb: &str, resume: bool, kill: Option<usize>) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("NO_COLOR", "1")
        .env(
            "ESUS_TOKEN",
            secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
        )
        .stdin(std::process::Stdio::null())
        .arg("run");
    if resume {
        cmd.arg("--resume").arg(env.run_dir());
    } else {
        cmd.arg(rb).arg("--run-dir").arg(env.run_dir());
        cmd.args(["--base-url", &env.sim.base_url()]);
    }
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    if let Some(n) = kill {
        cmd.env(esus_ir::transcript::KILL_AFTER_VAR, n.to_string());
    }
    cmd
}

/// What ESUS held before the run: every key's id, and someone else's duplicate name.
struct Before {
    ids: HashSet<String>,
}

async fn prepared(kill: usize) -> (Env, Before) {
    let config = esus_ir::sim::SimConfig::default()
        .with_scenario_yaml(&scenario())
        .expect("scenario")
        .with_seed(SEED + kill as u64)
        .with_fault("drop_rate=0.15@POST /api-keys")
        .expect("fault")
        .with_fault("drop_rate=0.1@PUT /api-keys/{id}")
        .expect("fault");
    let env = Env::with(config).await;
    // Someone else made a key named like item 7 moments ago (its answer arrived: no fault on
    // this path for them, the drop draws are per request and may hit it — then it is made
    // and unseen, which changes nothing for the run).
    let admin = secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token).to_string();
    let _ = crate::sim_support::client()
        .post(format!("{}/api-keys", env.sim.base_url()))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "batch-007", "scopes": ["Patient.read"]}))
        .send()
        .await;
    let ids = env.sim.api_keys().into_iter().map(|k| k.id).collect();
    (env, Before { ids })
}

/// Runs (killed after `kill` records), then resumes until the incident completes.
fn run_to_the_end(env: &Env, rb: &str, kill: Option<usize>) -> Value {
    let first = command(env, rb, false, kill).output().expect("run");
    let mut out = first;
    for _ in 0..6 {
        if out.status.code() == Some(0) {
            break;
        }
        out = command(env, rb, env.transcript().exists(), None)
            .output()
            .expect("resume");
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "kill after {kill:?}: completes: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("result json")
}

fn check(env: &Env, before: &Before, report: &Value, kill: usize) {
    let ctx = format!("kill after record {kill}");
    // Nothing the run did not create was ever deleted or changed.
    for q in env.sim.requests() {
        if matches!(q.method.as_str(), "DELETE" | "PUT" | "PATCH") {
            let id = q.path.trim_start_matches("/api-keys/").to_string();
            assert!(
                !before.ids.contains(&id),
                "{ctx}: {} {} touched a key the run did not create",
                q.method,
                q.path
            );
        }
    }
    let step = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "replace"))
        .expect("replace");
    let ids: Vec<String> = step["outputs"]["new_key_id"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("an id per item").to_string())
        .collect();
    assert_eq!(ids.len(), ITEMS, "{ctx}");
    let keys: HashMap<String, esus_ir::sim::KeyState> = env
        .sim
        .api_keys()
        .into_iter()
        .map(|k| (k.id.clone(), k))
        .collect();
    for (k, id) in ids.iter().enumerate() {
        let name = format!("batch-{k:03}");
        let live: Vec<&String> = keys
            .values()
            .filter(|x| x.name == name && x.usable_now && !before.ids.contains(&x.id))
            .map(|x| &x.id)
            .collect();
        assert_eq!(live, [id], "{ctx}: exactly one live replacement of {name}");
        let held = held_secret(env, k);
        assert!(
            env.sim.key_authenticates(&keys[id].client_id, &held),
            "{ctx}: item {k}'s held secret works for {id}"
        );
    }
    // Whatever else carries a claim of this incident is dead: an orphan nobody holds.
    for x in keys.values() {
        if x.name.contains(".esus-ir-") {
            assert!(!x.usable_now, "{ctx}: an orphan is left alive: {x:?}");
        }
    }
}

/// Item `k`'s secret: the newest of its files, which must be 0600.
fn held_secret(env: &Env, k: usize) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.run_dir().join("secrets");
    let base = format!("replace[{k}].new_secret");
    let mut files: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .expect("secrets")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = if name == base {
                0
            } else {
                name.strip_prefix(&format!("{base}."))?.parse().ok()?
            };
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    let (_, newest) = files
        .last()
        .unwrap_or_else(|| panic!("item {k}'s secret is held"));
    let mode = std::fs::metadata(newest)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{}", newest.display());
    std::fs::read_to_string(newest)
        .expect("secret")
        .trim_end()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_record_boundary_of_a_claimed_batch_never_touches_another_key() {
    // How many records a whole run writes (its number varies with the faults a little): every
    // boundary up to there is a kill point.
    let (env, before) = prepared(0).await;
    let rb = env.runbook("batch.yaml", RUNBOOK);
    let report = tokio::task::block_in_place(|| run_to_the_end(&env, &rb, None));
    check(&env, &before, &report, 0);
    let records = std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .count();
    assert!(records > 4 * ITEMS, "{records} records");
    // Every 10th boundary in the suite (about a minute); `KILL_CLAIMS_STEP=1` kills at every one
    // (docs/reliability.md quotes that campaign).
    let step = std::env::var("KILL_CLAIMS_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut killed = 0;
    for kill in (1..records).step_by(step) {
        let (env, before) = prepared(kill).await;
        let rb = env.runbook("batch.yaml", RUNBOOK);
        let report = tokio::task::block_in_place(|| run_to_the_end(&env, &rb, Some(kill)));
        check(&env, &before, &report, kill);
        killed += 1;
    }
    eprintln!("killed at {killed} record boundaries of {records}");
}
