//! The template layer, on any template or expression against a context shaped like a run's:
//! never a panic, and the engine's fuel bounds the work of loops and recursion.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engine = esus_ir::template::Engine::new();
    let ctx = esus_ir::template::to_ctx(&serde_json::json!({
        "inputs": {"key_id": "k-1001", "user_id": "u-1001", "days": 90, "secret": "[secret]"},
        "steps": {"list": {"status": "ok", "outputs": {"keys": [
            {"id": "k-1", "createdAt": "2026-01-01T00:00:00Z", "scopes": ["Patient.read"]},
            {"id": "k-2", "createdAt": "2024-05-01T00:00:00Z", "scopes": []}
        ]}}},
        "item": {"id": "k-1", "name": "x"}
    }));
    let _ = engine.template_refs(text);
    let _ = engine.expr_refs(text);
    let _ = engine.render_str(text, &ctx);
    let _ = engine.eval(text, &ctx);
    let _ = engine.eval_bool(text, &ctx);
});
