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
    assert!(list[0].2.contains("recursion limit"), "{list:?}");
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
