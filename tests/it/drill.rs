//! `esus-ir drill`: the README's quick-start job, unattended without a terminal, and under faults.

use serde_json::Value;

fn drill(dir: &std::path::Path, args: &[&str]) -> (i32, Value, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("esus-ir").expect("binary");
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    // No NO_COLOR: stdout and stderr are pipes, and that alone must keep them plain.
    cmd.env_remove("NO_COLOR")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .current_dir(dir)
        .arg("drill")
        .args(["--output", "json"])
        .args(args);
    cmd.timeout(std::time::Duration::from_secs(120));
    let out = cmd.output().expect("drill runs");
    crate::cli_conventions::assert_no_ansi("drill stdout", &out.stdout);
    crate::cli_conventions::assert_no_ansi("drill stderr", &out.stderr);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Nothing a person or a machine reads is Rust Debug output (`Some(401)`).
    for (what, text) in [
        ("stdout", String::from_utf8_lossy(&out.stdout)),
        ("stderr", stderr.as_str().into()),
    ] {
        assert!(
            !text.contains("Some("),
            "Debug formatting in {what}: {text}"
        );
    }
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
    // The same name and unit as the run's result (`time_to_containment_ms`), and the same value.
    let ttc = report["time_to_containment_ms"].as_u64().expect("whole ms");
    assert_eq!(report["run"]["time_to_containment_ms"].as_u64(), Some(ttc));
    assert!(report.get("time_to_containment_s").is_none(), "{report}");
    // Regression: the progress said "approved (by --approve)", a flag nobody gave (drill has none).
    assert!(
        stderr.contains("delete: approved (the drill approves every step)"),
        "{stderr}"
    );
    assert!(!stderr.contains("--approve"), "{stderr}");
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
        "drop_count=1@POST /api-keys",
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
    // The replacement's create lost its answer (and the new secret): it was settled by its
    // exact claim name — the key it made found, revoked, and the create sent again — never by
    // a guess, and the run used the second key.
    let replace = report["run"]["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "replace"))
        .expect("replace");
    assert_eq!(replace["status"], "ok", "{replace}");
    let reason = replace["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("reached ESUS but its answer (and the new secret) was lost")
            && reason.contains("by its exact claim")
            && reason.contains("revoked and the request sent again"),
        "{replace}"
    );
    let new_id = replace["outputs"]["new_key_id"].as_str().expect("new key");
    // What the transcript shows the step sent: the create under its claim name, the look-up by
    // that exact name, the revoke of the key whose secret was lost, the create again, and the
    // rename of the new key.
    let transcript = std::fs::read_to_string(
        report["run"]["transcript"]
            .as_str()
            .map(|t| dir.path().join(t))
            .expect("path"),
    )
    .expect("transcript");
    let sent: Vec<(String, String, Value)> = transcript
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("record"))
        .filter(|r| r["type"] == "request" && r["data"]["step"] == "replace")
        .map(|r| {
            let q = &r["data"]["request"];
            let url = q["url"].as_str().unwrap_or_default();
            let path = url.splitn(4, '/').nth(3).unwrap_or_default().to_string();
            (
                q["method"].as_str().unwrap_or_default().to_string(),
                path,
                q["body"]["name"].clone(),
            )
        })
        .collect();
    let claim = sent[0].2.as_str().expect("claim name").to_string();
    assert!(
        claim.starts_with("prod-ehr-integration-2024.esus-ir-"),
        "{sent:?}"
    );
    let methods: Vec<&str> = sent.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        ["POST", "GET", "DELETE", "POST", "PUT"],
        "{sent:?}"
    );
    assert_eq!(sent[1].1, format!("api-keys?name={claim}"), "{sent:?}");
    assert_eq!(sent[3].2, claim.as_str(), "{sent:?}");
    assert_eq!(
        (sent[4].1.as_str(), &sent[4].2),
        (
            format!("api-keys/{new_id}").as_str(),
            &Value::from("prod-ehr-integration-2024")
        ),
        "{sent:?}"
    );
    assert_ne!(sent[2].1, format!("api-keys/{new_id}"), "{sent:?}");
    assert!(
        check(&report, "replacement with the same name and scopes")["detail"]
            .as_str()
            .is_some_and(|d| d.ends_with(new_id)),
        "the scored replacement is the run's: {report}"
    );
    // The faults really fired (as the simulator logged them, not counted from our own flags):
    // two 503s and two dropped answers (the delete's and the create's).
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

/// No check's detail may read like Rust Debug output (`Some(…)`, `None`): the report is for
/// people.
fn assert_plain_words(report: &Value) {
    for c in report["checks"].as_array().expect("checks") {
        let detail = c["detail"].as_str().expect("detail");
        assert!(
            !detail.contains("Some(") && !detail.contains("None") && !detail.contains("=Some"),
            "debug text in `{}`: {detail}",
            c["name"]
        );
    }
}

// Regression: the scorer probed the leaked secret over HTTP itself, through the injected faults,
// and met a 500: `drill --fault error_rate=0.2 --seed 7` said FAILED ("usable_now=Some(false); a
// request with the leaked secret got Some(500)") although the key was dead. The scorer now asks
// the simulator's state. The truth it must agree with comes from the run's own answers: a run
// that proved containment saw GET /api-keys/k-1001 answer 404, and a deleted key never comes
// back, so the key is dead in the simulator.
#[test]
fn the_drill_scorer_reads_the_simulators_state_not_through_injected_faults() {
    for seed in ["7", "3", "11"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = ["--fault", "error_rate=0.2", "--seed", seed];
        let (code, report, stderr) = drill(dir.path(), &args);
        assert_eq!(
            report["run"]["containment"]["state"], "contained",
            "seed {seed}: the run itself saw the key gone: {report}\n{stderr}"
        );
        assert!(
            report["faults_fired"]["error"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "seed {seed}: the faults fired: {}",
            report["faults_fired"]
        );
        let leaked = check(&report, "leaked key no longer authenticates");
        assert_eq!(leaked["passed"], true, "seed {seed}: {leaked}");
        assert_eq!(
            check(&report, "compromised session is dead")["passed"],
            true,
            "seed {seed}"
        );
        assert_plain_words(&report);
        assert_eq!(report["passed"], true, "seed {seed}: {report}");
        assert_eq!(code, 0, "seed {seed}");
    }
}

// Seeds under which the 5xx answers land on requests a run may retry (GETs) and on none that is
// not safe to repeat: a 500 to the stolen refresh token's `POST /auth/refresh` (what seed 7 now
// draws, the run's request sequence having changed) rightly stops an unattended run with an
// unknown outcome, which is not what this test is about. Three seeds, each with faults fired.
#[test]
fn the_drill_scorer_reads_session_state_not_through_injected_faults() {
    for seed in ["4", "8", "12"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = [
            "session-compromise",
            "--fault",
            "error_rate=0.2",
            "--seed",
            seed,
        ];
        let (code, report, stderr) = drill(dir.path(), &args);
        assert_eq!(
            report["run"]["containment"]["state"], "contained",
            "seed {seed}: {report}\n{stderr}"
        );
        assert!(
            report["faults_fired"]["error"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "seed {seed}: the faults fired: {}",
            report["faults_fired"]
        );
        for name in [
            "every session of the user is dead",
            "stolen access token refused",
            "stolen refresh token refused",
        ] {
            assert_eq!(
                check(&report, name)["passed"],
                true,
                "seed {seed}: {}",
                check(&report, name)
            );
        }
        assert_plain_words(&report);
        assert_eq!(code, 0, "seed {seed}");
    }
}

// The control: a runbook that calls itself api-key-compromise but contains nothing. The run
// completes, and the scorer, reading the simulator, says the key and the session are alive.
#[test]
fn the_drill_scorer_fails_a_run_that_left_the_key_and_the_session_alive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = dir.path().join("idle.yaml");
    std::fs::write(
        &runbook,
        "version: 1\nname: api-key-compromise\nsteps:\n  - {id: me, name: Who am I, action: http, with: {method: GET, path: auth/me}}\n",
    )
    .expect("runbook");
    let (code, report, stderr) = drill(dir.path(), &[runbook.to_str().expect("utf-8 path")]);
    assert_eq!(
        check(&report, "run completed")["passed"],
        true,
        "{report}\n{stderr}"
    );
    for name in [
        "leaked key no longer authenticates",
        "compromised session is dead",
    ] {
        assert_eq!(
            check(&report, name)["passed"],
            false,
            "{}",
            check(&report, name)
        );
    }
    let leaked = check(&report, "leaked key no longer authenticates");
    assert!(
        leaked["detail"]
            .as_str()
            .is_some_and(|d| d.contains("still authenticates")),
        "{leaked}"
    );
    assert_plain_words(&report);
    assert_eq!(report["passed"], false);
    assert_ne!(code, 0);
}
