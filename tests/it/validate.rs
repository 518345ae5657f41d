//! `validate`: every kind of runbook problem, with the line and column it is reported at, and
//! the rendered diagnostic (snapshots under tests/it/snapshots).

use esus_ir::runbook;
use esus_ir::runbook::diagnostic::line_col;

/// A runbook header with two inputs (one secret) that cases append steps to.
const HEAD: &str = "version: 1
name: t
inputs:
  key_id: { type: string, required: true }
  token: { type: secret, env: T_TOKEN }
steps:
";

/// (line, column, message) of every problem, and the rendered diagnostics.
fn problems(text: &str) -> (Vec<(usize, usize, String)>, String) {
    let list = runbook::check(text).expect_err("runbook should be invalid");
    let err = runbook::load("t.yaml", text, false).expect_err("runbook should be invalid");
    assert_eq!(err.count, list.len());
    for p in &list {
        let (line, col) = line_col(text, p.span.offset);
        assert!(
            err.rendered.contains(&format!("t.yaml:{line}:{col}: ")),
            "every problem is rendered with its place:\n{}",
            err.rendered
        );
    }
    let list = list
        .into_iter()
        .map(|p| {
            let (line, col) = line_col(text, p.span.offset);
            (line, col, p.message)
        })
        .collect();
    (list, err.rendered)
}

/// Asserts exactly one problem at (line, col) whose message contains `needle`, and snapshots it.
fn one(name: &str, text: &str, line: usize, col: usize, needle: &str) {
    let (list, rendered) = problems(text);
    assert_eq!(list.len(), 1, "{rendered}");
    assert_eq!((list[0].0, list[0].1), (line, col), "{rendered}");
    assert!(list[0].2.contains(needle), "`{needle}` not in: {rendered}");
    insta::assert_snapshot!(name, rendered);
}

fn with_steps(steps: &str) -> String {
    format!("{HEAD}{steps}")
}

#[test]
fn yaml_syntax_error() {
    one(
        "yaml_syntax",
        "version: 1\nname: t\nsteps:\n  - id: a\n    name: [oops\n",
        6,
        1,
        "YAML:",
    );
}

#[test]
fn unknown_field() {
    one(
        "unknown_field",
        &with_steps("  - id: a\n    name: A\n    action: api_keys.list\n    confrim: true\n"),
        10,
        5,
        "unknown field `confrim`",
    );
}

#[test]
fn wrong_type() {
    one(
        "wrong_type",
        &with_steps("  - id: a\n    name: A\n    action: api_keys.list\n    expect: [two]\n"),
        10,
        14,
        "invalid type",
    );
}

#[test]
fn duplicate_id() {
    one(
        "duplicate_id",
        &with_steps(
            "  - id: a\n    name: A\n    action: api_keys.list\n  - id: a\n    name: B\n    action: roles.list\n",
        ),
        10,
        9,
        "duplicate step id `a`",
    );
}

#[test]
fn invalid_id() {
    one(
        "invalid_id",
        &with_steps("  - id: Rotate Key\n    name: A\n    action: api_keys.list\n"),
        7,
        9,
        "must be 1–64 characters",
    );
}

#[test]
fn unknown_need() {
    one(
        "unknown_need",
        &with_steps(
            "  - id: snapshot\n    name: A\n    action: api_keys.list\n  - id: b\n    name: B\n    action: roles.list\n    needs: [snapshto]\n",
        ),
        13,
        13,
        "needs `snapshto`, which is not a step",
    );
}

#[test]
fn cycle_prints_the_path() {
    one(
        "cycle",
        &with_steps(
            "  - id: a\n    name: A\n    action: roles.list\n    needs: [c]\n  - id: b\n    name: B\n    action: roles.list\n  - id: c\n    name: C\n    action: roles.list\n",
        ),
        10,
        12,
        "a → c → b → a",
    );
}

#[test]
fn undefined_input() {
    one(
        "undefined_input",
        &with_steps(
            "  - id: a\n    name: A\n    action: api_keys.get\n    with:\n      id: \"{{ inputs.kye_id }}\"\n",
        ),
        11,
        11,
        "undefined input `kye_id`",
    );
}

#[test]
fn undefined_step_and_output() {
    let text = with_steps(
        "  - id: a\n    name: A\n    action: api_keys.get\n    with: { id: x }\n    outputs: { name: response.name }\n  - id: b\n    name: B\n    action: api_keys.get\n    with:\n      id: \"{{ steps.a.outputs.nmae }}\"\n  - id: c\n    name: C\n    action: api_keys.get\n    with:\n      id: \"{{ steps.zz.outputs.name }}\"\n",
    );
    let (list, rendered) = problems(&text);
    assert_eq!(list.len(), 2, "{rendered}");
    assert_eq!((list[0].0, list[0].1), (16, 11));
    assert!(list[0].2.contains("step `a` has no output `nmae`"));
    assert_eq!((list[1].0, list[1].1), (21, 11));
    assert!(list[1].2.contains("there is no step `zz`"));
    insta::assert_snapshot!("undefined_step_and_output", rendered);
}

#[test]
fn reference_to_a_step_that_is_not_an_ancestor() {
    one(
        "not_ancestor",
        &with_steps(
            "  - id: a\n    name: A\n    action: api_keys.get\n    with: { id: x }\n    outputs: { name: response.name }\n  - id: b\n    name: B\n    needs: []\n    action: api_keys.get\n    with:\n      id: \"{{ steps.a.outputs.name }}\"\n",
        ),
        17,
        11,
        "does not wait for `a`",
    );
}

#[test]
fn template_syntax_error() {
    one(
        "template_syntax",
        &with_steps(
            "  - id: a\n    name: A\n    action: api_keys.get\n    with:\n      id: \"{{ inputs.key_id \"\n",
        ),
        11,
        22,
        "template syntax",
    );
}

#[test]
fn secret_in_a_name() {
    one(
        "secret_in_name",
        &with_steps(
            "  - id: a\n    name: \"Log out {{ inputs.token }}\"\n    action: roles.list\n",
        ),
        8,
        11,
        "secret value would be displayed",
    );
}

#[test]
fn secret_in_a_confirm_message() {
    one(
        "secret_in_confirm",
        &with_steps(
            "  - id: a\n    name: A\n    action: auth.logout\n    with: { token: \"{{ inputs.token }}\" }\n    confirm: \"Kill {{ inputs.token }}?\"\n",
        ),
        11,
        14,
        "secret value would be displayed",
    );
}

#[test]
fn http_path_that_is_absolute() {
    one(
        "http_absolute",
        &with_steps(
            "  - id: a\n    name: A\n    action: http\n    with: { method: GET, path: \"https://evil.example/x\" }\n",
        ),
        10,
        32,
        "absolute URL",
    );
}

#[test]
fn http_path_that_leaves_the_base_url() {
    one(
        "http_dotdot",
        &with_steps(
            "  - id: a\n    name: A\n    action: http\n    with:\n      method: GET\n      path: \"/fhir/../../admin/{{ inputs.key_id }}\"\n",
        ),
        12,
        13,
        "could leave the base URL",
    );
}

#[test]
fn save_name_that_leaves_the_evidence_folder() {
    one(
        "save_escape",
        &with_steps(
            "  - id: a\n    name: A\n    action: roles.list\n    save: ../../etc/cron.d/x\n",
        ),
        10,
        11,
        "would leave or miss the evidence folder",
    );
}

#[test]
fn unknown_action_suggests_the_closest() {
    let text = with_steps("  - id: a\n    name: A\n    action: api_keys.rotat\n");
    one(
        "unknown_action",
        &text,
        9,
        13,
        "unknown action `api_keys.rotat`",
    );
    let err = runbook::load("t.yaml", &text, false).expect_err("invalid");
    assert!(err.rendered.contains("did you mean `api_keys.rotate`?"));
}

#[test]
fn parameters_are_checked_against_the_action() {
    let text = with_steps(
        "  - id: a\n    name: A\n    action: api_keys.rotate\n    with: { idd: x, grace_hours: soon }\n    retry: { attempts: 3 }\n  - id: b\n    name: B\n    action: auth.logout\n    with: { token: literal-token }\n  - id: c\n    name: C\n    action: auth.logout\n    with: { token: \"{{ inputs.token }}\" }\n    confirm: typed\n  - id: d\n    name: D\n    action: api_keys.get\n    with: { id: \"{{ inputs.token }}\" }\n",
    );
    let (list, rendered) = problems(&text);
    let messages: Vec<&str> = list.iter().map(|p| p.2.as_str()).collect();
    let expect = [
        "has no parameter `idd`",
        "`grace_hours` of `api_keys.rotate` must be a whole number",
        "needs the parameter `id`",
        "is not idempotent and is never re-sent blindly",
        "`token` is a credential",
        "`confirm: typed` needs a resource id",
        "would put a secret value into the URL",
    ];
    for needle in expect {
        assert!(
            messages.iter().any(|m| m.contains(needle)),
            "missing `{needle}` in {rendered}"
        );
    }
    assert_eq!(list.len(), expect.len(), "{rendered}");
    insta::assert_snapshot!("parameters", rendered);
}

#[test]
fn secret_response_fields_must_be_declared_secret() {
    one(
        "undeclared_secret_output",
        &with_steps(
            "  - id: a\n    name: A\n    action: api_keys.rotate\n    with: { id: x, grace_hours: 0 }\n    outputs:\n      key: response.secret\n",
        ),
        12,
        12,
        "reads the secret that `api_keys.rotate` returns",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = with_steps(
        "  - id: a\n    name: A\n    action: nope\n  - id: a\n    name: B\n    action: roles.list\n    needs: [ghost]\n  - id: c\n    name: \"{{ inputs.token }}\"\n    action: roles.list\n    save: /abs\n",
    );
    let (list, rendered) = problems(&text);
    assert!(list.len() >= 3, "{rendered}");
    let lines: Vec<usize> = list.iter().map(|p| p.0).collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "problems are sorted by place: {lines:?}"
    );
}

#[test]
fn oversized_files_are_refused_without_parsing() {
    let text = format!("{HEAD}# {}\n", "x".repeat(runbook::parse::MAX_BYTES));
    let (list, _) = problems(&text);
    assert!(list[0].2.contains("the limit is 1048576"), "{list:?}");
}

#[test]
fn alias_bombs_are_refused_quickly() {
    let mut text = String::from("version: 1\nname: t\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    text.push_str("steps: []\n");
    let (list, _) = problems(&text);
    assert!(list[0].2.contains("repetition limit"), "{list:?}");
}

#[test]
fn excessive_nesting_is_refused() {
    let text = format!(
        "version: 1\nname: t\nsteps: []\ndeep: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (list, _) = problems(&text);
    assert!(
        list[0].2.contains("nesting deeper than 64 levels"),
        "{list:?}"
    );
}

#[test]
fn the_bundled_runbooks_are_valid() {
    for b in esus_ir::bundled::BUNDLED {
        let valid = runbook::load(b.name, b.text, false)
            .unwrap_or_else(|e| panic!("{}:\n{}", b.name, e.rendered));
        assert!(!valid.runbook.steps.is_empty());
    }
}

#[test]
fn http_outputs_that_read_credentials_must_be_secret_and_secrets_stay_out_of_http_urls() {
    let text = with_steps(
        "  - id: a\n    name: A\n    action: http\n    with: { method: POST, path: api-keys/k-1/rotate, body: { graceHours: 0 } }\n    outputs:\n      s: response.secret\n  - id: b\n    name: B\n    action: http\n    with:\n      method: GET\n      path: \"/auth/{{ inputs.token }}\"\n",
    );
    let (list, rendered) = problems(&text);
    let messages: Vec<&str> = list.iter().map(|p| p.2.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("reads the secret that `http` returns")),
        "{rendered}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("would put a secret value into the URL")),
        "{rendered}"
    );
}

/// The messages of every problem.
fn messages(text: &str) -> Vec<String> {
    problems(text).0.into_iter().map(|p| p.2).collect()
}

fn has(list: &[String], needle: &str) -> bool {
    list.iter().any(|m| m.contains(needle))
}

#[test]
fn confirmation_of_destructive_steps_cannot_be_switched_off() {
    for (action, with) in [
        ("api_keys.delete", "{ id: \"{{ inputs.key_id }}\" }"),
        ("http", "{ method: POST, path: /api-keys }"),
        (
            "http",
            "{ method: \"{{ inputs.key_id }}\", path: /api-keys }",
        ),
    ] {
        let text = with_steps(&format!(
            "  - id: a\n    name: A\n    action: {action}\n    with: {with}\n    confirm: false\n"
        ));
        let list = messages(&text);
        assert_eq!(list.len(), 1, "{list:?}");
        assert!(
            list[0].contains(
                "destructive steps are always approved by a person or by --yes/--approve"
            ),
            "{list:?}"
        );
    }
    // Reads and plain creates may still say `confirm: false`.
    let read = with_steps(
        "  - id: a\n    name: A\n    action: http\n    with: { method: GET, path: /api-keys }\n    confirm: false\n",
    );
    assert!(runbook::check(&read).is_ok());
}

#[test]
fn constant_foreach_lists_over_the_cap_are_refused() {
    assert_eq!(runbook::validate::MAX_FOREACH_ITEMS, 10_000);
    let step = |foreach: &str| {
        with_steps(&format!(
            "  - id: a\n    name: A\n    action: api_keys.get\n    foreach: \"{foreach}\"\n    with: {{ id: \"{{{{ item }}}}\" }}\n"
        ))
    };
    assert!(has(
        &messages(&step("[1] * 10001")),
        "more than 10000 items"
    ));
    assert!(has(
        &messages(&step("range(1000000)")),
        "cannot be computed"
    ));
    assert!(has(&messages(&step("'abc'")), "must give a list"));
    for fine in ["range(10000)", "['k-1', 'k-2']", "[1] * 10000"] {
        assert!(runbook::check(&step(fine)).is_ok(), "{fine}");
    }
}

#[test]
fn conditions_and_lists_over_secrets_are_refused_but_presence_tests_are_not() {
    let when = |expr: &str| {
        with_steps(&format!(
            "  - id: a\n    name: A\n    action: api_keys.list\n    when: \"{expr}\"\n"
        ))
    };
    assert!(has(
        &messages(&when("inputs.token == 'x'")),
        "reads a secret value"
    ));
    assert!(has(
        &messages(&when(
            "inputs.token is not none and inputs.token | length > 3"
        )),
        "reads a secret value"
    ));
    assert!(runbook::check(&when("inputs.token is not none")).is_ok());
    let foreach = with_steps(
        "  - id: a\n    name: A\n    action: api_keys.get\n    foreach: \"[inputs.token]\"\n    with: { id: \"{{ item }}\" }\n",
    );
    assert!(has(
        &messages(&foreach),
        "the `foreach` of step `a` reads a secret value"
    ));
}

#[test]
fn two_steps_saving_to_the_same_name_are_refused() {
    let list = messages(&with_steps(
        "  - {id: a, name: A, action: api_keys.list, save: keys.json}\n  - {id: b, name: B, action: api_keys.list, save: keys.json}\n",
    ));
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].contains("steps `a` and `b` both save their evidence to `keys.json`"));
    // A paged step without `save` writes `ID.json`.
    let list = messages(&with_steps(
        "  - {id: audit, name: A, action: audit.query}\n  - {id: b, name: B, action: api_keys.list, save: audit.json}\n",
    ));
    assert!(
        has(&list, "both save their evidence to `audit.json`"),
        "{list:?}"
    );
}

#[test]
fn a_leading_byte_order_mark_is_accepted_and_places_stay_the_same() {
    let good = with_steps("  - {id: a, name: A, action: api_keys.list}\n");
    assert!(runbook::check(&format!("\u{feff}{good}")).is_ok());
    let bad = with_steps("  - {id: a, name: A, action: api_keys.lst}\n");
    let plain = problems(&bad).0;
    let marked = problems(&format!("\u{feff}{bad}")).0;
    assert_eq!(plain, marked);
    let rendered = runbook::load("t.yaml", &format!("\u{feff}{bad}"), false)
        .expect_err("invalid")
        .rendered;
    assert!(
        rendered.contains("t.yaml:7:30: unknown action"),
        "{rendered}"
    );
}

#[test]
fn a_byte_order_mark_elsewhere_is_refused() {
    let text = "version: 1\nname: t\n\u{feff}steps: []\n";
    let list = messages(text);
    assert!(
        has(&list, "a byte-order mark (U+FEFF) at line 3"),
        "{list:?}"
    );
}

#[test]
fn tabs_are_named_as_tabs() {
    let text = with_steps("  - id: a\n\tname: A\n    action: api_keys.list\n");
    let list = messages(&text);
    assert_eq!(
        list,
        ["a tab character is used for indentation at line 8; YAML indents with spaces"]
    );
    let list = messages("version: 1\nsteps:\n\t- id: a\n");
    assert!(
        has(&list, "tab character is used for indentation at line 3"),
        "{list:?}"
    );
}

#[test]
fn a_broken_step_does_not_hide_the_problems_of_the_others() {
    let text = with_steps(concat!(
        "  - id: a\n    name: A\n    action: api_keys.list\n    colour: red\n    needs: [c]\n",
        "  - id: b\n    name: \"{{ inputs.nope }}\"\n    action: api_keys.list\n    needs: [a]\n",
        "  - id: c\n    name: \"{{ broken\"\n    action: api_keys.list\n    needs: [b]\n",
        "  - id: d\n    name: D\n    action: api_keys.get\n    with: { id: \"{{ steps.a.outputs.anything }}\" }\n    needs: [a, ghost]\n",
    ));
    let list = messages(&text);
    for needle in [
        "unknown field `colour`",
        "undefined input `nope`",
        "template syntax",
        "step `d` needs `ghost`, which is not a step",
    ] {
        assert!(has(&list, needle), "no `{needle}` in {list:?}");
    }
    // Without the unknown `ghost`, the cycle through the broken step is found too.
    let text = text.replace("[a, ghost]", "[a]");
    assert!(has(&messages(&text), "cycle"), "{:?}", messages(&text));
}

#[test]
fn template_features_beyond_conditions_are_refused() {
    for (field, value) in [
        ("name", "{% for i in range(9) %}x{% endfor %}"),
        ("name", "{% include 'x' %}"),
        ("name", "{{ ''.__class__ }}"),
        ("save", "{% import 'x' as y %}a.json"),
    ] {
        let text = with_steps(&format!(
            "  - id: a\n    name: A\n    action: api_keys.list\n    {field}: \"{value}\"\n"
        ));
        let text = if field == "name" {
            text.replacen("    name: A\n", "", 1)
        } else {
            text
        };
        let list = messages(&text);
        assert!(
            has(&list, "is not allowed in runbook templates") || has(&list, "names with `__`"),
            "{value}: {list:?}"
        );
    }
    let ok = with_steps(
        "  - id: a\n    name: \"{% if inputs.key_id %}A{% else %}B{% endif %}\"\n    action: api_keys.list\n",
    );
    assert!(runbook::check(&ok).is_ok());
}

#[test]
fn files_that_are_not_runbooks_are_never_quoted() {
    for text in [
        "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1ib2R5\n-----END OPENSSH PRIVATE KEY-----\n",
        "root:$6$c2VjcmV0LWtleS1ib2R5:19000:0:99999:7:::\n",
        "- c2VjcmV0LWtleS1ib2R5\n",
        "token: c2VjcmV0LWtleS1ib2R5\n",
        "token: [c2VjcmV0LWtleS1ib2R5\n",
    ] {
        let err = runbook::load("f", text, false).expect_err("not a runbook");
        assert!(
            !err.rendered.contains("c2VjcmV0LWtleS1ib2R5"),
            "{text}: {}",
            err.rendered
        );
    }
}

#[test]
fn only_the_first_hundred_problems_are_drawn() {
    let params: Vec<String> = (0..150).map(|i| format!("p{i}: 1")).collect();
    let text = with_steps(&format!(
        "  - id: a\n    name: A\n    action: api_keys.list\n    with: {{{}}}\n",
        params.join(", ")
    ));
    let err = runbook::load("t.yaml", &text, false).expect_err("invalid");
    assert_eq!(err.count, 150);
    assert_eq!(err.rendered.matches("has no parameter").count(), 100);
    assert!(
        err.rendered
            .contains("t.yaml: … and 50 more problems not shown")
    );
    assert!(err.rendered.ends_with("t.yaml: 150 problems\n"));
}

#[test]
fn a_misspelt_bundled_name_gets_a_suggestion() {
    for command in ["validate", "run"] {
        let out = assert_cmd::Command::cargo_bin("esus-ir")
            .expect("binary")
            .env_remove("ESUS_TOKEN")
            .env("NO_COLOR", "1")
            .args([command, "api-key-compromize"])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("`api-key-compromize` is neither a file nor a bundled runbook; did you mean `api-key-compromise`?"),
            "{command}: {stderr}"
        );
    }
}

/// A step with a misspelt field, a cycle and an undefined input, all in one file.
const ALL_AT_ONCE: &str = "version: 1
name: t
inputs:
  key_id: { type: string, required: true }
steps:
  - id: a
    name: A
    action: api_keys.get
    confrim: true
    needs: [b]
    with:
      id: \"{{ inputs.nope }}\"
  - id: b
    name: B
    action: api_keys.get
    needs: [a]
    with:
      id: \"{{ inputs.key_id }}\"
";

// Regression: an unknown field made its step a placeholder, so its templates went unchecked and
// `validate` reported the field and the cycle but never the undefined `{{ inputs.nope }}`.
#[test]
fn an_unknown_field_does_not_hide_the_rest_of_its_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("all.yaml");
    std::fs::write(&path, ALL_AT_ONCE).expect("write");
    let out = assert_cmd::Command::cargo_bin("esus-ir")
        .expect("binary")
        .env("NO_COLOR", "1")
        .arg("validate")
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "all.yaml:9:5: unknown field `confrim`",
        "did you mean `confirm`?",
        "all.yaml:10:12: the steps wait for each other in a cycle",
        "all.yaml:12:11: undefined input `nope`",
        "all.yaml: 3 problems",
    ] {
        assert!(stderr.contains(needle), "no `{needle}` in:\n{stderr}");
    }
}

#[test]
fn every_unknown_field_is_reported_and_a_misspelt_one_is_checked_as_meant() {
    let text = with_steps(concat!(
        "  - id: a\n    name: A\n    action: api_keys.list\n    colour: red\n",
        "    retry: { attemps: 3 }\n    timeout: 10s\n    on_failur: sideways\n",
    ));
    let (list, rendered) = problems(&text);
    let got: Vec<(usize, usize, &str)> = list
        .iter()
        .map(|(l, c, m)| (*l, *c, m.split([',', ':']).next().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [
            (10, 5, "unknown field `colour`"),
            (11, 14, "unknown field `attemps`"),
            (13, 5, "unknown field `on_failur`"),
            // `on_failur` is read as the `on_failure` it was meant to be, and its value checked.
            (13, 16, "unknown variant `sideways`"),
        ],
        "{rendered}"
    );
    // A misspelt required field (`retry.attempts`) is not then reported missing as well.
    assert!(!rendered.contains("missing"), "{rendered}");
    assert!(rendered.contains("did you mean `attempts`?"), "{rendered}");
    assert!(
        rendered.contains("did you mean `on_failure`?"),
        "{rendered}"
    );
    // A word close to no field gets the list of fields instead of a guess.
    assert!(
        list[0].2.contains("expected one of `id`, `name`"),
        "{rendered}"
    );
    // The meaning checks of a misspelt field point at the place it is written.
    let text = with_steps("  - id: a\n    name: A\n    action: roles.list\n    confrim: typed\n");
    let (list, rendered) = problems(&text);
    let places: Vec<(usize, usize)> = list.iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(places, [(10, 5), (10, 14)], "{rendered}");
    assert!(
        list[1].2.contains("`confirm: typed` needs a resource id"),
        "{rendered}"
    );
}
