//! The template layer on arbitrary and template-shaped input (the proptest twin of the
//! `template` cargo-fuzz target): it never panics, and loops or recursion a hostile runbook
//! writes run out of fuel instead of running away.

use proptest::prelude::*;
use serde_json::json;

fn ctx() -> esus_ir::template::CtxValue {
    esus_ir::template::to_ctx(&json!({
        "inputs": {"key_id": "k-1001", "days": 90},
        "steps": {"list": {"status": "ok", "outputs": {"keys": [
            {"id": "k-1", "createdAt": "2026-01-01T00:00:00Z"},
            {"id": "k-2", "createdAt": "2024-05-01T00:00:00Z"}
        ]}}},
        "item": {"id": "k-1"}
    }))
}

/// Template-shaped text: delimiters, filters, tests, loops, macros and names of the context.
fn templatish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "{{ ",
        " }}",
        "{% ",
        " %}",
        "{# ",
        " #}",
        "inputs.key_id",
        "steps.list.outputs.keys",
        "item.id",
        "item",
        " | ",
        "length",
        "list",
        "join(',')",
        "days_since",
        "older_than",
        " is ",
        "matching('^k')",
        "for x in ",
        "endfor",
        "if ",
        "endif",
        "macro m(n)",
        "endmacro",
        "m(n)",
        "range(1000000)",
        "~",
        " and ",
        " or ",
        " not ",
        "(",
        ")",
        "[",
        "]",
        "\"",
        "'",
        ".",
        "none",
        "0",
        "-1",
        "namespace()",
        "set x = ",
        "loop.index",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

fn exercise(text: &str) {
    let engine = esus_ir::template::Engine::new();
    let ctx = ctx();
    let _ = engine.template_refs(text);
    let _ = engine.expr_refs(text);
    let _ = engine.render_str(text, &ctx);
    let _ = engine.eval(text, &ctx);
    let _ = engine.eval_bool(text, &ctx);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn template_shaped_text_never_panics(text in templatish()) {
        exercise(&text);
    }

    #[test]
    fn arbitrary_text_never_panics_the_template_layer(text in any::<String>()) {
        exercise(&text);
    }
}

#[test]
fn runaway_loops_and_recursion_run_out_of_fuel() {
    let engine = esus_ir::template::Engine::new();
    let ctx = ctx();
    for hostile in [
        "{% for i in range(1000000) %}{% for j in range(1000000) %}x{% endfor %}{% endfor %}",
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
    ] {
        let err = engine
            .render_str(hostile, &ctx)
            .expect_err("a runaway template is refused");
        assert!(!err.to_string().is_empty(), "{hostile}: says why");
    }
    // And an ordinary loop still renders.
    let ok = engine
        .render_str(
            "{% for k in steps.list.outputs.keys %}{{ k.id }};{% endfor %}",
            &ctx,
        )
        .expect("renders");
    assert_eq!(ok, json!("k-1;k-2;"));
}
