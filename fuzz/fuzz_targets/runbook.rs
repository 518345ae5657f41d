//! The runbook parser and validator, on any text: never a panic, never unbounded work (the
//! loader's own limits on size, nesting and problems apply), and a refusal always renders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = esus_ir::runbook::load("fuzz.yaml", text, false) {
        // The diagnostic is what a person reads: building it must not panic either.
        let _ = e.to_string();
    }
});
