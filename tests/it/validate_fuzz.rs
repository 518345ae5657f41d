//! Arbitrary input never panics the runbook parser or validator.

use proptest::prelude::*;

/// YAML-shaped text: fragments that exercise mappings, sequences, anchors, templates and tags.
fn yamlish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "version: 1\n",
        "name: x\n",
        "steps:\n",
        "  - id: a\n",
        "    name: A\n",
        "    action: http\n",
        "    needs: [a, b]\n",
        "    with: {method: GET, path: /x}\n",
        "inputs:\n",
        "  k: {type: secret}\n",
        "&a ",
        "*a ",
        "!!binary ",
        "{{ inputs.k }}",
        "{%",
        "- ",
        ": ",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "|\n",
        "  ",
        "\n",
        "\t",
        "é",
        "\u{0}",
        "---\n",
        "? ",
        "#",
        "0x",
        "~",
        "<<: *a\n",
    ]);
    prop::collection::vec(atoms, 0..60).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn yaml_shaped_text_never_panics(text in yamlish()) {
        let _ = esus_ir::runbook::load("fuzz.yaml", &text, false);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = esus_ir::runbook::load("fuzz.yaml", &text, false);
    }

    #[test]
    fn mutated_bundled_runbooks_never_panic(cut in 0usize..4000, insert in any::<String>()) {
        let base = esus_ir::bundled::BUNDLED[0].text;
        let at = base.char_indices().map(|(i, _)| i).nth(cut % base.chars().count()).unwrap_or(0);
        let text = format!("{}{}{}", &base[..at], insert, &base[at..]);
        let _ = esus_ir::runbook::load("fuzz.yaml", &text, false);
    }
}
