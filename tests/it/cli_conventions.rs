//! What people expect of a CLI: shell completions, man pages, examples on `--help`, `describe`,
//! and `graph` options. A fixture runbook (not a bundled one, which other work may change) pins
//! what `describe` and `graph` say.

use assert_cmd::Command;
use clap::CommandFactory;
use predicates::prelude::*;
use serde_json::Value;

/// The binary with no colour preference: stdout and stderr are pipes here, and a pipe alone must
/// keep colour off (NO_COLOR is not set, so that a colour leak would show).
fn esus_ir() -> Command {
    let mut cmd = Command::cargo_bin("esus-ir").expect("binary");
    cmd.env_remove("RUST_LOG").env_remove("NO_COLOR");
    cmd
}

/// The stdout of a successful command, after checking that neither stream carries colour codes.
fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().clone();
    assert_no_ansi("stdout", &out.stdout);
    assert_no_ansi("stderr", &out.stderr);
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Output that is not a terminal (a pipe, a paging tool's log) never holds an escape (0x1b) byte.
pub(crate) fn assert_no_ansi(what: &str, bytes: &[u8]) {
    if let Some(at) = bytes.iter().position(|&b| b == 0x1b) {
        let from = at.saturating_sub(80);
        panic!(
            "an ANSI escape at byte {at} of {what}: …{}…",
            String::from_utf8_lossy(&bytes[from..bytes.len().min(at + 40)])
        );
    }
}

/// Every kind of input, confirmation and permission, in a graph with parallel layers.
const FIXTURE: &str = r#"version: 1
name: conventions-fixture
description: |
  A runbook that exercises describe and graph: every kind of input, confirmation and permission.
inputs:
  key_id:
    type: string
    required: true
    description: The leaked key.
    pattern: "k-[0-9]+"
  days:
    type: integer
    default: 7
    env: REVIEW_DAYS
    description: Days of audit log.
  session_token:
    type: secret
    required: true
    env: ESUS_COMPROMISED_TOKEN
    description: The affected session's token.
  stale:
    type: list
    default: []
    description: Consent ids to expire.
steps:
  - id: snapshot
    name: "Snapshot {{ inputs.key_id }}"
    action: api_keys.get
    with:
      id: "{{ inputs.key_id }}"
    outputs:
      name: response.name
  - id: logout
    name: Log out the session of {{ inputs.key_id }}
    needs: []
    action: auth.logout
    with:
      token: "{{ inputs.session_token }}"
    confirm: "Log out the session of {{ inputs.key_id }}?"
  - id: delete
    name: "Delete {{ inputs.key_id }} ({{ steps.snapshot.outputs.name }})"
    needs: [snapshot]
    action: api_keys.delete
    with:
      id: "{{ inputs.key_id }}"
    confirm: typed
  - id: expire
    name: Expire stale Consent {{ item }}
    needs: [snapshot]
    when: inputs.stale | length > 0
    foreach: inputs.stale
    action: consent.expire
    with:
      id: "{{ item }}"
  - id: alert
    name: Alert on failed requests
    needs: [delete, expire]
    action: subscription.create
    with:
      criteria: AuditEvent?outcome=failure
      endpoint: https://hooks.example/esus
  - id: patient
    name: Read a patient
    needs: [alert]
    action: http
    with:
      method: GET
      path: /fhir/Patient/p-1
"#;

fn fixture() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fixture.yaml");
    std::fs::write(&path, FIXTURE).expect("write");
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn completions_for_every_shell_name_the_real_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let text = stdout(esus_ir().args(["completions", shell]));
        assert!(text.len() > 1000, "{shell}: {} bytes", text.len());
        for word in [
            "describe",
            "drill",
            "report",
            "verify",
            "dry-run",
            "allowed-signers",
        ] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
    esus_ir().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn the_bash_completion_is_valid_bash() {
    let Ok(bash) = which("bash") else {
        eprintln!("no bash: skipped");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("esus-ir.bash");
    std::fs::write(&script, stdout(esus_ir().args(["completions", "bash"]))).expect("write");
    let status = std::process::Command::new(bash)
        .arg("-n")
        .arg(&script)
        .status()
        .expect("bash -n");
    assert!(status.success(), "bash -n rejects the completion script");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

#[test]
fn man_prints_the_main_page_and_writes_one_page_per_subcommand() {
    let page = stdout(esus_ir().arg("man"));
    assert!(
        page.starts_with(".ie") || page.contains(".TH esus-ir 1"),
        "{page}"
    );
    for word in ["describe", "drill", "completions", "verify"] {
        assert!(page.contains(word), "esus-ir.1 lacks {word}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    esus_ir()
        .args(["man", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("esus-ir-run.1"));
    for name in [
        "esus-ir.1",
        "esus-ir-run.1",
        "esus-ir-describe.1",
        "esus-ir-report.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name}");
    }
    let run = std::fs::read_to_string(out.join("esus-ir-run.1")).expect("run page");
    assert!(
        run.contains("dry\\-run"),
        "the run page documents --dry-run"
    );
    // Regression: clap's generated `help` subcommand added 15 `esus-ir-help-*` pages.
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .expect("man1")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let commands: Vec<String> = esus_ir::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| format!("esus-ir-{}.1", c.get_name()))
        .collect();
    assert_eq!(pages.len(), 1 + commands.len(), "{pages:?}");
    assert!(
        commands.iter().all(|c| pages.contains(c)),
        "{commands:?} in {pages:?}"
    );
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
}

#[test]
fn the_top_level_help_shows_the_3am_examples() {
    let help = stdout(esus_ir().arg("--help"));
    let examples = help.split("Examples:").nth(1).expect("Examples: section");
    for cmd in [
        "esus-ir drill",
        "esus-ir describe",
        "--dry-run",
        "esus-ir run api-key-compromise --input",
        "esus-ir verify",
        "esus-ir report",
    ] {
        assert!(examples.contains(cmd), "{cmd} in {examples}");
    }
    assert!(help.contains("describe") && help.contains("completions") && help.contains("man"));
}

#[test]
fn describe_explains_inputs_steps_and_permissions() {
    let (_dir, path) = fixture();
    let text = stdout(esus_ir().args(["describe", &path]));
    let text = text.replace(&path, "[fixture]");
    insta::with_settings!({snapshot_path => "snapshots"}, {
        insta::assert_snapshot!("describe_fixture", text);
    });
    // The facts a reader acts on, independent of layout.
    assert!(text.contains("from: --secret-file session_token=PATH, $ESUS_IR_INPUT_SESSION_TOKEN, $ESUS_COMPROMISED_TOKEN, a hidden prompt (interactive runs); never from the command line"));
    assert!(text.contains("DELETE /api-keys/{id}  (DESTRUCTIVE)"));
    assert!(text.contains("the operator types the target (id = {{ inputs.key_id }})"));
    assert!(text.contains("when: inputs.stale | length > 0"));
    assert!(text.contains("foreach: inputs.stale"));
}

#[test]
fn describe_json_lists_every_permission_with_its_steps() {
    let (_dir, path) = fixture();
    let json: Value = serde_json::from_str(&stdout(
        esus_ir().args(["describe", &path, "--output", "json"]),
    ))
    .expect("json");
    assert_eq!(json["name"], "conventions-fixture");
    let perms: Vec<(String, String, Vec<String>)> = json["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .map(|p| {
            (
                p["text"].as_str().unwrap_or_default().to_string(),
                p["holder"].as_str().unwrap_or_default().to_string(),
                p["steps"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    let find = |t: &str| {
        perms
            .iter()
            .find(|p| p.0 == t)
            .unwrap_or_else(|| panic!("{t} in {perms:?}"))
    };
    assert_eq!(find("admin bearer token").2, ["snapshot", "delete"]);
    assert_eq!(find("Consent.write").2, ["expire"]);
    assert_eq!(find("Subscription.write").2, ["alert"]);
    assert_eq!(find("Patient.read").2, ["patient"]);
    let own = find("the affected user's own session token");
    assert_eq!(
        (own.1.as_str(), own.2.as_slice()),
        ("affected-user", &["logout".to_string()][..])
    );
    let steps = json["steps"].as_array().expect("steps");
    let order: Vec<&str> = steps.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        order,
        ["snapshot", "logout", "delete", "expire", "alert", "patient"]
    );
    let delete = &steps[2];
    assert_eq!(delete["method"], "DELETE");
    assert_eq!(delete["path"], "/api-keys/{id}");
    assert_eq!(delete["destructive"], true);
    assert_eq!(delete["confirm"]["mode"], "typed");
    assert_eq!(steps[1]["confirm"]["mode"], "yes-no");
    assert_eq!(
        steps[1]["confirm"]["message"],
        "Log out the session of {{ inputs.key_id }}?"
    );
    let secret = &json["inputs"][2];
    assert_eq!(secret["type"], "secret");
    assert!(
        !secret["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.starts_with("--input "))),
        "a secret never comes from --input: {secret}"
    );
}

#[test]
fn describe_works_for_every_bundled_runbook() {
    for b in esus_ir::bundled::BUNDLED {
        let json: Value = serde_json::from_str(&stdout(
            esus_ir().args(["describe", b.name, "--output", "json"]),
        ))
        .expect("json");
        assert!(
            json["permissions"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{}: {json}",
            b.name
        );
        assert!(
            !json["permissions"].to_string().contains("\"unknown\""),
            "{}: a permission the table does not know: {}",
            b.name,
            json["permissions"]
        );
    }
}

#[test]
fn graph_dot_ranks_each_layer_and_marks_when_and_destructive_steps() {
    let (_dir, path) = fixture();
    let dot = stdout(esus_ir().args(["graph", &path, "--format", "dot"]));
    let layer = |n: usize| {
        let start = dot.find(&format!("subgraph layer_{n} {{")).expect("layer");
        let end = dot[start..].find("  }\n").map_or(dot.len(), |e| start + e);
        &dot[start..end]
    };
    assert!(
        layer(1).contains("rank=same")
            && layer(1).contains("\"snapshot\"")
            && layer(1).contains("\"logout\"")
    );
    assert!(layer(2).contains("\"delete\"") && layer(2).contains("\"expire\""));
    assert!(dot.find("layer_1").unwrap_or(0) < dot.find("layer_4").unwrap_or(0));
    let expire = dot
        .lines()
        .find(|l| l.contains("\"expire\" ["))
        .expect("expire");
    assert!(
        expire.contains("dashed") && expire.contains("when: inputs.stale | length > 0"),
        "{expire}"
    );
    let delete = dot
        .lines()
        .find(|l| l.contains("\"delete\" ["))
        .expect("delete");
    assert!(delete.contains("color=red"), "{delete}");
    if let Ok(graphviz) = which("dot") {
        let mut child = std::process::Command::new(graphviz)
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("dot");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dot.as_bytes())
            .expect("write");
        assert!(
            child.wait().expect("dot").success(),
            "graphviz rejects:\n{dot}"
        );
    }
}

#[test]
fn graph_text_and_mermaid_show_when() {
    let (_dir, path) = fixture();
    let text = stdout(esus_ir().args(["graph", &path]));
    assert!(text.contains("expire: Expire stale Consent {{ item }} (consent.expire)  [destructive]  when: inputs.stale | length > 0  ← snapshot"), "{text}");
    let mermaid = stdout(esus_ir().args(["graph", &path, "--format", "mermaid"]));
    assert!(
        mermaid.contains("<br/>when: inputs.stale | length #gt; 0"),
        "{mermaid}"
    );
    assert!(mermaid.contains("class s_expire conditional"), "{mermaid}");
}

#[test]
fn graph_inputs_fill_step_names_and_refuse_secrets_and_unknown_names() {
    let (_dir, path) = fixture();
    let text = stdout(esus_ir().args(["graph", &path, "-i", "key_id=k-42"]));
    assert!(
        text.contains("snapshot: Snapshot k-42 (api_keys.get)"),
        "{text}"
    );
    assert!(
        text.contains("delete: Delete k-42 ({{ steps.snapshot.outputs.name }})"),
        "{text}"
    );
    let unfilled = stdout(esus_ir().args(["graph", &path]));
    assert!(unfilled.contains("snapshot: Snapshot {{ inputs.key_id }} (api_keys.get)"));
    esus_ir()
        .args(["graph", &path, "-i", "session_token=eyJ"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("secret").and(predicate::str::contains("eyJ").not()));
    esus_ir()
        .args(["graph", &path, "--input", "nope=1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no input `nope`"));
}

/// A drill whose operator token expires (1 s, with every request slowed) and whose refresh is
/// refused: the token layer logs `WARN token refresh failed` on stderr.
fn drill_that_warns(dir: &std::path::Path, color: Option<&str>) -> std::process::Output {
    let mut cmd = esus_ir();
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", dir.join("config"))
        .current_dir(dir)
        .args(color.map_or_else(Vec::new, |c| vec!["--color", c]))
        .args([
            "drill",
            "--fault",
            "token_ttl=1s",
            "--fault",
            "latency=400ms",
        ])
        .args(["--fault", "error_count=50@POST /auth/refresh"])
        .timeout(std::time::Duration::from_secs(120));
    cmd.output().expect("drill runs")
}

// Regression: tracing coloured its WARN lines whatever stderr was, and the escape codes landed in
// paging-tool logs.
#[test]
fn tracing_warnings_on_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = drill_that_warns(dir.path(), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(" WARN ") && stderr.contains("token refresh failed"),
        "the drill logs a warning: {stderr}"
    );
    assert_no_ansi("stdout", &out.stdout);
    assert_no_ansi("stderr", &out.stderr);
    // `--color always` still colours it (e.g. for `less -R`): the check above can see colour.
    let out = drill_that_warns(dir.path(), Some("always"));
    let warn = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.contains("token refresh failed"))
        .map(str::to_string)
        .expect("a warning");
    assert!(warn.contains('\x1b'), "{warn}");
}

// Regression: `auth.check_sessions_ended` read "GET /auth/sessions  (write)": the write is the
// refresh it may try after the GET, which was not shown.
#[test]
fn describe_labels_each_call_by_what_it_does() {
    for b in esus_ir::bundled::BUNDLED {
        let text = stdout(esus_ir().args(["describe", b.name]));
        for line in text.lines().filter(|l| l.contains(": GET ")) {
            assert!(line.ends_with("(read)"), "{}: {line}", b.name);
        }
        let json: Value = serde_json::from_str(&stdout(
            esus_ir().args(["describe", b.name, "--output", "json"]),
        ))
        .expect("json");
        for step in json["steps"].as_array().expect("steps") {
            // A GET step that is more than a read says which further call makes it so.
            if step["method"] == "GET" && step["effect"] != "read" {
                let also = step["also"].as_array().map_or(&[][..], Vec::as_slice);
                assert!(
                    also.iter().any(|c| c["effect"] == step["effect"]),
                    "{}: {step}",
                    b.name
                );
            }
        }
    }
    let text = stdout(esus_ir().args(["describe", "api-key-compromise"]));
    let check = text
        .split("auth.check_sessions_ended: ")
        .nth(1)
        .expect("the session check");
    assert!(
        check.starts_with("GET /auth/sessions  (read)\n         then POST /auth/refresh  (write) — with the stolen refresh token"),
        "{check}"
    );
}

/// The WARN line of [`drill_that_warns`] as a terminal shows it (stdout and stderr a pty).
fn warning_on_a_terminal(no_color: bool) -> String {
    use expectrl::Expect;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_esus-ir"));
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    match no_color {
        true => cmd.env("NO_COLOR", "1"),
        false => cmd.env_remove("NO_COLOR"),
    };
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("TERM", "xterm-256color")
        .current_dir(dir.path())
        .args([
            "drill",
            "--non-interactive",
            "--quiet",
            "--fault",
            "token_ttl=1s",
        ])
        .args([
            "--fault",
            "latency=400ms",
            "--fault",
            "error_count=50@POST /auth/refresh",
        ]);
    let mut session = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    session.set_expect_timeout(Some(std::time::Duration::from_secs(120)));
    let found = session.expect(expectrl::Eof).expect("the drill ends");
    let mut bytes = found.before().to_vec();
    for m in found.matches() {
        bytes.extend_from_slice(m);
    }
    String::from_utf8_lossy(&bytes)
        .lines()
        .find(|l| l.contains("token refresh failed"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("a warning in: {}", String::from_utf8_lossy(&bytes)))
}

#[test]
fn tracing_colours_a_terminal_unless_no_color_is_set() {
    assert!(warning_on_a_terminal(false).contains('\x1b'));
    let plain = warning_on_a_terminal(true);
    assert!(!plain.contains('\x1b'), "NO_COLOR is honoured: {plain:?}");
}
