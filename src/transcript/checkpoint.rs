//! Signed checkpoints: records the writer adds as a run goes, each an SSHSIG (namespace
//! [`NAMESPACE`], SHA-512, the run's signing key) over the chain head it follows, so that the
//! prefix of a killed run — which never gets its final `.sig` — is signed up to its last
//! checkpoint.
//!
//! A checkpoint at `seq` s has `data` `{"covers": s, "head": <hash of record s-1>, "run_id":
//! <hash of record 0>, "signature": <armored SSHSIG>}`; the signed message is the canonical JSON
//! of `{"covers","head","run_id"}` (docs/transcript-format.md). The run id ties it to its run: a
//! checkpoint copied from another run names another first record.

use serde_json::{Map, Value};
use ssh_key::PublicKey;

use super::canonical::canonical_json;
use super::sign::NAMESPACE;
use super::sshsig::{StrictSig, parse_armored};

/// The record type of a checkpoint.
pub const KIND: &str = "checkpoint";

/// A record of a type after which the writer always signs a checkpoint: the run's start, each
/// step's start (a prompt follows it), each record that ends a unit of work resume may rely on,
/// and each fact a later step is proven against (a key's state before its rotate, what ESUS
/// accepted before access was taken away) — signed before the request that depends on it.
pub(crate) fn after(kind: &str) -> bool {
    matches!(
        kind,
        "run-started"
            | "preflight"
            | "plan"
            | "step-started"
            | "confirmation"
            | "rotate-before"
            | "witness"
            | "step-finished"
            | "carried"
            | "audit-evidence"
            | "containment"
    )
}

/// Any record is followed by a checkpoint when this long has passed since the last one: a
/// killed run leaves at most this much of its time unsigned, and a fan-out of thousands of items
/// is signed a few times a second, not every few items (each signature costs about as much CPU
/// as sending one request: docs/performance.md).
pub(crate) const INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// And however fast the records come, after this many of them without a checkpoint.
pub(crate) const EVERY: u64 = 1024;

/// The message a checkpoint signs.
pub fn message(covers: u64, head: &str, run_id: &str) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("covers".into(), Value::from(covers));
    m.insert("head".into(), Value::from(head));
    m.insert("run_id".into(), Value::from(run_id));
    canonical_json(&Value::Object(m))
}

/// A checkpoint's `data`, before the signature is added.
pub(crate) fn data(covers: u64, head: &str, run_id: &str, signature: String) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("covers".into(), Value::from(covers));
    m.insert("head".into(), Value::from(head));
    m.insert("run_id".into(), Value::from(run_id));
    m.insert("signature".into(), Value::from(signature));
    m
}

/// Checks one checkpoint record (`seq`, `prev`, `data`) of the run whose first record hashes to
/// `run_id`; `Ok` is the signing key, for the caller to decide whether it trusts it.
pub(crate) fn check(
    seq: u64,
    prev: &str,
    data: &Map<String, Value>,
    run_id: Option<&str>,
) -> Result<PublicKey, String> {
    let covers = data.get("covers").and_then(Value::as_u64);
    let head = data.get("head").and_then(Value::as_str);
    let recorded_run = data.get("run_id").and_then(Value::as_str);
    let armored = data.get("signature").and_then(Value::as_str);
    let (Some(covers), Some(head), Some(recorded_run), Some(armored)) =
        (covers, head, recorded_run, armored)
    else {
        return Err("the checkpoint lacks covers, head, run_id or signature".into());
    };
    if data.len() != 4 {
        return Err("the checkpoint has fields beyond covers, head, run_id and signature".into());
    }
    if covers != seq {
        return Err(format!(
            "the checkpoint says it covers {covers} records but stands at seq {seq}"
        ));
    }
    if head != prev {
        return Err(
            "the checkpoint signs another chain head than the record before it (the records it covers were changed after they were signed)"
                .into(),
        );
    }
    if Some(recorded_run) != run_id {
        return Err("the checkpoint was signed for another run (its run_id is not this transcript's first record)".into());
    }
    let sig: StrictSig =
        parse_armored(armored).map_err(|e| format!("unreadable checkpoint signature: {e}"))?;
    let key = sig.public_key();
    let message = message(covers, head, recorded_run);
    let memo = memo_key(&key, &message, armored);
    if !already_verified(&memo) {
        key.verify(NAMESPACE, &message, sig.inner())
            .map_err(|_| "the checkpoint's signature does not verify".to_string())?;
        remember(memo);
    }
    Ok(key)
}

/// Signatures that verified, by the SHA-256 of (key, message, signature): verifying a chain of
/// transcripts, or one transcript again (verify, then resume), checks each signature once.
/// Only successes are kept, so nothing can be put here without a signature that verifies.
static VERIFIED: std::sync::Mutex<Option<std::collections::HashSet<[u8; 32]>>> =
    std::sync::Mutex::new(None);

/// Enough for the checkpoints of many long runs; the set starts over when full.
const MEMO_CAPACITY: usize = 1 << 16;

fn memo_key(key: &PublicKey, message: &[u8], armored: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let key_bytes = key.to_bytes().unwrap_or_default();
    let mut h = Sha256::new();
    for part in [key_bytes.as_slice(), message, armored.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn already_verified(memo: &[u8; 32]) -> bool {
    VERIFIED
        .lock()
        .map(|set| set.as_ref().is_some_and(|s| s.contains(memo)))
        .unwrap_or(false)
}

fn remember(memo: [u8; 32]) {
    if let Ok(mut set) = VERIFIED.lock() {
        let set = set.get_or_insert_with(Default::default);
        if set.len() >= MEMO_CAPACITY {
            set.clear();
        }
        set.insert(memo);
    }
}
