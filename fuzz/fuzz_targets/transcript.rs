//! The transcript verifier, on any transcript and signature bytes: never a panic, and a file that
//! does not hold a signed, intact, complete run is never reported valid.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The input is a transcript, then (after the first 0xFF byte, which JSON text never holds)
    // the bytes of its `.sig`.
    let (transcript, sig) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("transcript.jsonl");
    if std::fs::write(&path, transcript).is_err() {
        return;
    }
    if let Some(sig) = sig
        && std::fs::write(esus_ir::transcript::signature_path(&path), sig).is_err()
    {
        return;
    }
    let options = esus_ir::transcript::VerifyOptions::default();
    if let Ok(v) = esus_ir::transcript::verify_transcript(&path, &options) {
        // Random bytes cannot carry a good signature by a real key over a complete run.
        assert!(!v.ok || sig.is_some(), "an unsigned transcript verified");
    }
});
