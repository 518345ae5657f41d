//! SIGKILL at 50 seeded random points of `api-key-compromise` (latency on every route, so the
//! kills land before, inside and after requests): each killed transcript is reported by `verify`
//! as exactly the prefix that was written, and resuming — as often as it takes — contains the key
//! with exactly one replacement, every transcript verifying.

use std::path::Path;
use std::time::{Duration, Instant};

use esus_ir::sim::SimConfig;
use serde_json::Value;

use crate::run_support::{Env, text};
use crate::sim_process::transcripts;

const KILLS: u64 = 50;

/// A tiny deterministic generator (SplitMix64): the kill points are reproducible from the seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn env() -> Env {
    Env::with(
        SimConfig::default()
            .with_fault("latency=25ms")
            .expect("fault"),
    )
    .await
}

/// Complete JSON lines of a transcript (a line cut by the kill is not one).
fn complete_records(path: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && serde_json::from_str::<Value>(l.trim_end()).is_ok())
        .count()
}

/// `verify`'s exit code and the record count it reports.
fn verified(env: &Env, path: &Path) -> (i32, Option<usize>, String) {
    let out = env
        .bare_cmd()
        .arg("verify")
        .arg(path)
        .output()
        .expect("verify runs");
    let shown = text(&out.stdout) + &text(&out.stderr);
    let count = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("records:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    (out.status.code().unwrap_or(-1), count, shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_50_random_points_then_resume_contains_the_key_with_exactly_one_replacement() {
    // How many records an undisturbed run writes: kill points are drawn over them (a record to
    // wait for, then a few milliseconds more, so kills land between records and inside
    // requests too) and a little past the end, where the run has finished. Drawing over records
    // rather than wall time keeps the spread whatever the machine's load.
    let probe = env().await;
    let out = probe
        .std_cmd()
        .args(["--yes", "--non-interactive"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let total = complete_records(&probe.transcript()) as u64;
    drop(probe);

    let mut seed = 0x5EED_0012_u64;
    let mut landed = [0usize; 3]; // before the transcript, mid-run, after the end
    for n in 0..KILLS {
        let after = splitmix(&mut seed) % (total + 3);
        let extra = splitmix(&mut seed) % 30;
        let env = env().await;
        let key = env.sim.ready().key_id.clone();
        let name = env.sim.api_key(&key).expect("the leaked key").name;
        let mut child = env
            .std_cmd()
            .args(["--yes", "--non-interactive"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(60);
        while complete_records(&env.transcript()) < after as usize
            && child.try_wait().ok().flatten().is_none()
        {
            assert!(Instant::now() < deadline, "kill {n}: the run progresses");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra)).await;
        let _ = child.kill();
        let _ = child.wait();
        let at = format!("after record {after} + {extra} ms");
        let first = env.transcript();
        let whole = complete_records(&first);
        let ctx = format!("kill {n} {at} ({whole} records)");

        if whole == 0 {
            // Killed before a transcript began: nothing to resume, and nothing was changed
            // (the first record precedes every request).
            landed[0] += 1;
            assert!(
                env.sim.requests().iter().all(|q| q.method == "GET"),
                "{ctx}: nothing but reads before the transcript"
            );
            let out = env
                .std_cmd()
                .args(["--yes", "--non-interactive"])
                .output()
                .expect("run");
            assert_eq!(out.status.code(), Some(0), "{ctx}: {}", text(&out.stderr));
        } else {
            let (code, count, shown) = verified(&env, &first);
            let finished = shown.contains("complete, outcome");
            landed[if finished { 2 } else { 1 }] += 1;
            // Valid only when the run ended and signed its end; a kill between the last
            // record and the signature leaves a complete but unsigned transcript (5).
            let signed = esus_ir::transcript::signature_path(&first).exists();
            assert!(
                code == 0 && finished && signed || code == 5 && !(finished && signed),
                "{ctx}: verify says {code}: {shown}"
            );
            assert_eq!(
                count,
                Some(whole),
                "{ctx}: the prefix is reported exactly: {shown}"
            );
            // Resume until done; a resumed run that is itself cut short (it is not here) would
            // be resumed again the same way.
            // One resume finishes it (nothing interrupts the resume here).
            let out = env.resume_cmd().output().expect("resume");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{ctx}: resumed to the end: {}",
                text(&out.stderr)
            );
        }

        let keys = env.sim.api_keys();
        let live: Vec<&str> = keys
            .iter()
            .filter(|k| k.name == name && k.id != key && k.usable_now)
            .map(|k| k.id.as_str())
            .collect();
        assert_eq!(live.len(), 1, "{ctx}: exactly one replacement: {live:?}");
        assert!(
            !env.sim.api_key(&key).is_some_and(|k| k.usable_now),
            "{ctx}: the leaked key is dead"
        );
        for t in transcripts(&env.run_dir()) {
            let (code, _, shown) = verified(&env, &t);
            let last = transcripts(&env.run_dir()).last() == Some(&t);
            if last || t != first {
                assert_eq!(code, 0, "{ctx}: {} verifies: {shown}", t.display());
            }
        }
    }
    // The draw must have exercised the middle of runs, not only their edges.
    eprintln!(
        "kill points: {KILLS} kills; before the transcript, mid-run, after the end: {landed:?}"
    );
    assert!(landed[1] >= 25, "most kills land mid-run: {landed:?}");
}
