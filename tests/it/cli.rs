//! The binary's small commands: validate, graph, list, schema, help, exit codes.

use assert_cmd::Command;
use predicates::prelude::*;

fn esus_ir() -> Command {
    let mut cmd = Command::cargo_bin("esus-ir").expect("binary");
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

#[test]
fn validate_accepts_the_bundled_runbook_by_name_and_path() {
    esus_ir()
        .args(["validate", "api-key-compromise"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok (9 steps, 4 inputs)"));
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/runbooks/api-key-compromise.yaml"
    );
    esus_ir().args(["validate", path]).assert().success();
}

#[test]
fn validate_exits_2_and_names_the_place_of_each_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: 1\nname: t\nsteps:\n  - id: a\n    name: A\n    action: roles.list\n    needs: [b]\n").expect("write");
    esus_ir()
        .arg("validate")
        .arg(&bad)
        .arg("api-key-compromise")
        .assert()
        .code(2)
        .stdout(predicate::str::contains("bundled:api-key-compromise: ok"))
        .stderr(predicate::str::contains(
            "bad.yaml:7:13: step `a` needs `b`, which is not a step",
        ));
}

#[test]
fn an_unknown_runbook_is_a_usage_error() {
    esus_ir()
        .args(["validate", "no-such-runbook"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "neither a file nor a bundled runbook",
        ));
}

#[test]
fn graph_renders_mermaid_with_destructive_steps_marked() {
    let out = esus_ir()
        .args(["graph", "api-key-compromise", "--format", "mermaid"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).expect("utf-8");
    assert!(text.starts_with("flowchart TD\n"), "{text}");
    assert!(text.contains("s_snapshot --> s_delete"), "{text}");
    assert!(
        text.contains("s_contained --> s_audit") && text.contains("s_session_dead --> s_audit"),
        "{text}"
    );
    let class_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("class "))
        .expect("class line");
    // Containment first: the replacement and the proof both wait for the delete.
    assert!(
        text.contains("s_delete --> s_contained") && text.contains("s_delete --> s_replace"),
        "{text}"
    );
    // No rotate any more: the replacement is a create from the snapshot.
    assert!(
        !text.contains("s_rotate") && !text.contains("s_recreate"),
        "{text}"
    );
    assert!(text.contains("(api_keys.create)"), "{text}");
    for id in ["s_logout", "s_delete"] {
        assert!(class_line.contains(id), "{id} destructive: {class_line}");
    }
    // Reads, checks and the create (it adds access, takes none away) are not destructive.
    for id in [
        "s_snapshot",
        "s_contained",
        "s_session_dead",
        "s_audit",
        "s_replace",
    ] {
        assert!(
            !class_line.contains(id),
            "{id} not destructive: {class_line}"
        );
    }
}

#[test]
fn graph_text_shows_parallel_layers() {
    esus_ir()
        .args(["graph", "api-key-compromise"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("layer 1  (parallel)")
                .and(predicate::str::contains("[destructive]")),
        );
}

#[test]
fn list_shows_bundled_runbooks() {
    esus_ir()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("api-key-compromise"));
}

fn schema_stdout() -> Vec<u8> {
    esus_ir()
        .arg("schema")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

#[test]
fn schema_is_json_schema_for_the_runbook() {
    let out = schema_stdout();
    let schema: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("json-schema.org"))
    );
    assert!(schema["properties"]["steps"].is_object());
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(required.contains(&"steps") && required.contains(&"name"));
}

#[test]
fn help_has_examples_and_version_prints() {
    esus_ir()
        .args(["validate", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"));
    esus_ir()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    esus_ir().arg("--frobnicate").assert().code(2);
}

#[test]
fn the_committed_result_plan_and_scope_schemas_are_current() {
    for (flag, file) in [
        ("--result", "result"),
        ("--plan", "plan"),
        ("--scope", "scope"),
    ] {
        let out = esus_ir().args(["schema", flag]).output().expect("schema");
        assert!(out.status.success());
        let path = format!("{}/docs/{file}.schema.json", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read(&path).expect("committed schema");
        assert_eq!(
            String::from_utf8_lossy(&committed),
            String::from_utf8_lossy(&out.stdout),
            "run `esus-ir schema {flag} -o docs/{file}.schema.json`"
        );
    }
}

#[test]
fn the_committed_schema_is_current_and_the_runbooks_point_at_it() {
    let out = schema_stdout();
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/runbook.schema.json"
    ))
    .expect("docs/runbook.schema.json");
    assert_eq!(
        String::from_utf8_lossy(&committed),
        String::from_utf8_lossy(&out),
        "run `esus-ir schema -o docs/runbook.schema.json`"
    );
    for b in esus_ir::bundled::BUNDLED {
        assert!(
            b.text
                .starts_with("# yaml-language-server: $schema=../docs/runbook.schema.json\n"),
            "{}",
            b.name
        );
    }
}

// Regression: the JSON error document of a usage error said only "unexpected argument found",
// losing which flag was wrong and clap's suggestion.
#[test]
fn a_mistyped_flag_keeps_its_name_and_suggestion_in_the_json_error() {
    for (args, needles) in [
        (
            &["run", "x", "--output", "json", "--yess"][..],
            &["'--yess'", "a similar argument exists: '--yes'"][..],
        ),
        (
            &["drill", "--output", "json", "--max-parallel", "0"][..],
            &["'0'", "--max-parallel", "1..=64"][..],
        ),
        (
            &["run", "--output", "json"][..],
            &["required arguments were not provided: <RUNBOOK>"][..],
        ),
    ] {
        let out = esus_ir().args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON document");
        assert_eq!(doc["kind"], "error");
        assert_eq!(doc["outcome"], "usage-error");
        let error = doc["error"].as_str().unwrap_or_default();
        for needle in needles {
            assert!(error.contains(needle), "{args:?}: no {needle} in {error:?}");
        }
        // One line, with neither the usage block nor the `--help` hint of the terminal message.
        assert!(
            !error.contains('\n') && !error.contains("Usage:") && !error.contains("--help"),
            "{error:?}"
        );
    }
}

// Regression: "ok (3 steps, 1 inputs)".
#[test]
fn validate_counts_steps_and_inputs_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = dir.path().join("one.yaml");
    std::fs::write(
        &one,
        "version: 1\nname: t\ninputs:\n  key_id: { type: string }\nsteps:\n  - { id: a, name: A, action: roles.list }\n",
    )
    .expect("write");
    esus_ir()
        .arg("validate")
        .arg(&one)
        .assert()
        .success()
        .stdout(predicate::str::ends_with(
            "one.yaml: ok (1 step, 1 input)\n",
        ));
    let none = dir.path().join("none.yaml");
    std::fs::write(
        &none,
        "version: 1\nname: t\nsteps:\n  - { id: a, name: A, action: roles.list }\n  - { id: b, name: B, action: roles.list }\n",
    )
    .expect("write");
    esus_ir()
        .arg("validate")
        .arg(&none)
        .assert()
        .success()
        .stdout(predicate::str::ends_with(
            "none.yaml: ok (2 steps, 0 inputs)\n",
        ));
}

#[test]
fn show_prints_a_bundled_runbook_verbatim_and_the_copy_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    for b in esus_ir::bundled::BUNDLED {
        let shown = esus_ir()
            .args(["show", b.name])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let file = std::fs::read(format!(
            "{}/runbooks/{}.yaml",
            env!("CARGO_MANIFEST_DIR"),
            b.name
        ))
        .expect("the shipped file");
        assert!(shown == file, "{}: not the file in runbooks/", b.name);
        let copy = dir.path().join(format!("my-{}.yaml", b.name));
        std::fs::write(&copy, &shown).expect("write");
        esus_ir()
            .arg("validate")
            .arg(&copy)
            .assert()
            .success()
            .stdout(predicate::str::contains(": ok ("));
    }
    esus_ir()
        .args(["show", "sesion-compromise"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "`sesion-compromise` is not a bundled runbook; did you mean `session-compromise`?",
        ));
}

/// `esus-ir scopes` lists, for every bundled runbook, exactly what the action catalogue says its
/// steps need — the same table the preflight checks — and the SMART scopes of its FHIR needs.
#[test]
fn scopes_of_every_bundled_runbook_are_the_catalogue_s() {
    use esus_ir::esus::permissions::{self, Permission};
    for b in esus_ir::bundled::BUNDLED {
        let valid =
            esus_ir::runbook::check(b.text).unwrap_or_else(|_| panic!("{} validates", b.name));
        let mut expected: Vec<Permission> = valid
            .runbook
            .steps
            .iter()
            .zip(&valid.steps)
            .flat_map(|(step, info)| permissions::for_step(info.action, &step.with))
            .collect();
        expected.sort();
        expected.dedup();
        let out = Command::cargo_bin("esus-ir")
            .expect("binary")
            .args(["scopes", b.name, "--output", "json"])
            .output()
            .expect("scopes");
        assert!(out.status.success(), "{}", b.name);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let listed: Vec<String> = doc["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect();
        let mut want: Vec<String> = expected.iter().map(ToString::to_string).collect();
        want.sort();
        let mut got = listed.clone();
        got.sort();
        assert_eq!(got, want, "{}", b.name);
        let smart: Vec<&str> = doc["smart_scopes"]
            .as_array()
            .expect("smart")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        for p in &expected {
            if let Permission::Fhir { resource, action } = p {
                assert!(
                    smart.contains(&format!("user/{resource}.{action}").as_str()),
                    "{}: {p} asked for: {smart:?}",
                    b.name
                );
            }
        }
        // Nothing more is asked for: each scope is one a request of the runbook needs, by
        // `describe`'s list of what each step sends.
        let described = Command::cargo_bin("esus-ir")
            .expect("binary")
            .args(["describe", b.name, "--output", "json"])
            .output()
            .expect("describe");
        let described: serde_json::Value = serde_json::from_slice(&described.stdout).expect("json");
        let sent: Vec<String> = described["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .flat_map(|st| {
                let own = (st["method"].as_str(), st["path"].as_str());
                let also = st["also"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| {
                        (
                            c["method"].as_str().map(str::to_string),
                            c["path"].as_str().map(str::to_string),
                        )
                    });
                std::iter::once((own.0.map(str::to_string), own.1.map(str::to_string))).chain(also)
            })
            .filter_map(|(m, p)| permissions::smart_scope_for(m.as_deref()?, p.as_deref()?))
            .collect();
        for scope in smart.iter().filter(|s| s.starts_with("user/")) {
            assert!(
                sent.iter().any(|s| s == scope),
                "{}: {scope} is needed by no request",
                b.name
            );
        }
    }
}
