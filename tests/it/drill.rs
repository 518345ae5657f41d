//! `esus-ir drill`: the README's quick-start job, unattended without a terminal, and under faults.

use serde_json::Value;

fn drill(dir: &std::path::Path, args: &[&str]) -> (i32, Value, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("esus-ir").expect("binary");
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", dir.join("config"))
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .arg("drill")
        .args(["--output", "json"])
        .args(args);
    cmd.timeout(std::time::Duration::from_secs(120));
    let out = cmd.output().expect("drill runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "json report ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("check `{name}` in {report}"))
}

#[test]
fn a_bare_drill_contains_the_key_unattended_and_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, report, stderr) = drill(dir.path(), &[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["passed"], true);
    for name in [
        "leaked key no longer authenticates",
        "compromised session is dead",
        "replacement with the same name and scopes",
        "evidence holds every audit row of the user, once",
        "transcript verified",
        "the run proved containment",
    ] {
        assert_eq!(
            check(&report, name)["passed"],
            true,
            "{name}: {}",
            check(&report, name)
        );
    }
    assert!(report["time_to_containment_s"].as_f64().is_some());
    let transcript = std::fs::read_to_string(
        report["run"]["transcript"]
            .as_str()
            .map(|t| dir.path().join(t))
            .expect("path"),
    )
    .expect("transcript");
    assert!(
        transcript.contains("\"mode\":\"drill\""),
        "the transcript is marked as a drill"
    );
}

#[test]
fn a_drill_under_faults_still_contains_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = [
        "--fault",
        "error_count=2@GET /api-keys/{id}",
        "--fault",
        "drop_count=1@POST /api-keys/{id}/rotate",
        "--fault",
        "drop_count=1@DELETE /api-keys/{id}",
        "--fault",
        "latency=150ms",
        "--seed",
        "7",
    ];
    // (Short token lifetimes are left out: they would also expire the compromised session's
    // token before its logout, which a drill rightly scores as a session left alive.)
    let (code, report, stderr) = drill(dir.path(), &faults);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(
        check(&report, "leaked key no longer authenticates")["passed"],
        true
    );
    assert_eq!(
        check(&report, "replacement with the same name and scopes")["passed"],
        true
    );
    assert!(
        report["retries"].as_u64().is_some_and(|r| r >= 2),
        "the 503s were retried: {}",
        report["retries"]
    );
    // The faults really fired (as the simulator logged them, not counted from our own flags):
    // two 503s and two dropped answers.
    let fired = &report["faults_fired"];
    assert_eq!(fired["error"], 2, "{fired}");
    assert_eq!(fired["drop"], 2, "{fired}");
    assert!(fired["latency"].as_u64().is_some_and(|n| n > 5), "{fired}");
    assert_eq!(check(&report, "the run proved containment")["passed"], true);
}

#[test]
fn a_session_compromise_drill_is_scored_on_the_same_containment_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, report, stderr) = drill(dir.path(), &["session-compromise"]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    for name in [
        "the run proved containment",
        "every session of the user is dead",
        "stolen access token refused",
        "stolen refresh token refused",
        "evidence holds every audit row of the user, once",
        "transcript verified",
    ] {
        assert_eq!(
            check(&report, name)["passed"],
            true,
            "{name}: {}",
            check(&report, name)
        );
    }
    assert_eq!(report["run"]["containment"]["state"], "contained");
}

#[test]
fn a_tls_drill_goes_through_the_production_tls_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, report, stderr) = drill(dir.path(), &["--tls"]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["passed"], true);
    let transcript = std::fs::read_to_string(
        report["run"]["transcript"]
            .as_str()
            .map(|t| dir.path().join(t))
            .expect("path"),
    )
    .expect("transcript");
    assert!(
        transcript.contains("\"base_url\":\"https://127.0.0.1:"),
        "https with the simulator's generated CA"
    );
}
