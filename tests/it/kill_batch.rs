//! A fan-out that survives SIGKILL: `scheduled-key-rotation` over 205 due keys, the simulator a
//! separate process with 100 ms latency, the run killed mid-batch while rotations are in flight
//! (applied by ESUS, answers never read), then resumed.
//!
//! "Exactly one rotation per due key" is read as ESUS sees it afterwards: each due key has exactly
//! one live replacement, and its secret is on disk (0600) and works. A rotation whose answer died
//! with the process left a replacement nobody holds; resume must find it (never re-send blindly,
//! never lean on an undocumented 409), revoke it and issue one whose secret it keeps — so that
//! key shows one revoked orphan, never two live replacements.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use crate::runbooks_support::DEFAULT_SCENARIO;
use crate::sim_process::{SimProcess, count_records, transcripts};

const DUE: usize = 205;

/// The default scenario (one key already due, k-1005) plus 204 keys old enough to be due.
fn scenario() -> String {
    let mut extra = String::new();
    for n in 0..DUE - 1 {
        extra.push_str(&format!(
            "  - {{ id: k-{id}, name: batch-{n:03}, owner: u-0001, client_id: ck_batch_{n:03}, secret: sk_live_batch_{n:03}_x, scopes: [Patient.read], created_days_ago: 120 }}\n",
            id = 5000 + n
        ));
    }
    extra.push_str("patients:\n");
    let text = DEFAULT_SCENARIO.replacen("patients:\n", &extra, 1);
    assert_ne!(text, DEFAULT_SCENARIO, "the scenario still has `patients:`");
    text
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_mid_flight_resumes_to_exactly_one_held_replacement_per_due_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimProcess::start(dir.path(), Some(&scenario()), &["latency=100ms"], 7);
    let run_dir = dir.path().join("run");
    let before = sim.get("/api-keys").await;
    let names: HashMap<String, String> = before["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|k| {
            (
                k["id"].as_str().expect("id").to_string(),
                k["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();

    // First run: killed once some items have finished and others are in flight.
    let mut cmd = sim.run_cmd(dir.path(), &run_dir);
    cmd.args(["scheduled-key-rotation", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn the run");
    let first = run_dir.join("transcript.jsonl");
    let mut finished_at_kill = 0;
    for _ in 0..3000 {
        finished_at_kill = count_records(&first, "item-finished");
        // Killed only while rotations are in flight (ESUS received more than the run recorded):
        // the hard case, rotations applied whose answers the process will never read. Each item
        // reads its key first, so the moment is waited for, not assumed.
        if finished_at_kill >= 40 {
            let arrived = sim.get("/_sim/requests").await["requests"]
                .as_array()
                .map_or(0, |log| {
                    log.iter()
                        .filter(|q| q["method"] == "POST")
                        .filter(|q| q["path"].as_str().is_some_and(|p| p.ends_with("/rotate")))
                        .count()
                });
            if arrived > count_records(&first, "item-finished") {
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended before it was killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(finished_at_kill >= 40, "the batch got going");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(
        count_records(&first, "run-finished"),
        0,
        "killed before the end"
    );
    let finished_at_kill = count_records(&first, "item-finished");
    assert!(finished_at_kill < DUE, "killed mid-batch");
    // ESUS applied rotations whose answers the killed process never recorded: the hard case.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mid = sim.get("/api-keys").await;
    let rotated_mid = mid["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|k| k["supersededBy"].is_string())
        .count();
    assert!(
        rotated_mid > finished_at_kill,
        "some rotations were applied but not recorded ({rotated_mid} applied, {finished_at_kill} recorded)"
    );

    // Resume: finishes the batch and recovers what was in flight.
    let mut cmd = sim.run_cmd(dir.path(), &run_dir);
    cmd.arg("--resume").arg(&run_dir).arg("--yes");
    let out = cmd.output().expect("resume");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "resume completes: {stderr}");

    // Every due key: exactly one live replacement, held on disk, that works.
    let after = sim.get("/api-keys").await;
    let items = after["items"].as_array().expect("items");
    let by_id: HashMap<&str, &Value> = items
        .iter()
        .map(|k| (k["id"].as_str().expect("id"), k))
        .collect();
    let secrets_dir = run_dir.join("secrets");
    let mut held = HashSet::new();
    for entry in std::fs::read_dir(&secrets_dir).expect("secrets folder") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{} is private", path.display());
        held.insert(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    let list = crate::sim_process::step_outputs(&run_dir, "list");
    let order: Vec<String> = list["due"]
        .as_array()
        .expect("the list step's due output")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    assert_eq!(order.len(), DUE);
    let mut orphans = 0;
    for (k, old) in order.iter().enumerate() {
        let name = &names[old];
        let live: Vec<&&Value> = by_id
            .values()
            .filter(|v| v["name"] == name.as_str() && v["id"] != old.as_str())
            .filter(|v| v["active"] == true && v["supersededBy"].is_null())
            .collect();
        assert_eq!(
            live.len(),
            1,
            "{old} ({name}): exactly one live replacement"
        );
        let new = live[0];
        assert_eq!(
            by_id[old.as_str()]["supersededBy"],
            new["id"],
            "{old} points at its live replacement"
        );
        let file = format!("rotate[{k}].new_secret");
        assert!(held.contains(&file), "{old}: {file} is on disk");
        let secret = std::fs::read_to_string(secrets_dir.join(&file)).expect("secret");
        let status = sim
            .use_key(new["clientId"].as_str().expect("clientId"), secret.trim())
            .await;
        assert_eq!(
            status, 200,
            "{old}: the secret held in {file} works for its replacement {}",
            new["id"]
        );
        orphans += by_id
            .values()
            .filter(|v| v["name"] == name.as_str() && v["id"] != old.as_str())
            .count()
            - 1;
    }
    // Orphans still listed would be live keys nobody holds; revoked ones are not listed.
    assert_eq!(orphans, 0, "no replacement nobody holds is left listed");

    // Each transcript verifies.
    let all = transcripts(&run_dir);
    assert!(all.len() >= 2, "the resume wrote its own transcript");
    for t in &all {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_esus-ir"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .arg("verify")
            .arg(t)
            .output()
            .expect("verify");
        // The killed run's transcript is a verified prefix (exit 5 names it incomplete); the
        // resumed one is whole.
        let code = out.status.code();
        if t == &first {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                code == Some(5) && text.contains("incomplete") || code == Some(0),
                "{}: {text}",
                t.display()
            );
        } else {
            assert_eq!(
                code,
                Some(0),
                "{} verifies: {}{} (folder {:?})",
                t.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                all
            );
        }
    }
}
