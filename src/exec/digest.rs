//! The digest recorded with an approval: SHA-256 over the canonical JSON of the exact request
//! shown, so a verifier can prove that what was sent is what was approved.

use sha2::{Digest, Sha256};

use super::event::RequestView;

/// SHA-256 (hex) of the canonical encoding of a request view.
pub fn request_digest(view: &RequestView) -> String {
    let value = serde_json::to_value(view).unwrap_or(serde_json::Value::Null);
    hex::encode(Sha256::digest(crate::exec::digest::canonical_json(&value)))
}

/// A batch approval (foreach): SHA-256 over the concatenated hex digests of every item's request,
/// in item order.
#[derive(Default)]
pub struct BatchDigest(Sha256);

impl BatchDigest {
    /// Adds the next item's request.
    pub fn push(&mut self, view: &RequestView) {
        self.0.update(request_digest(view).as_bytes());
    }

    /// The batch digest (hex).
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// JSON with object keys sorted and no insignificant whitespace.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sort(value)).unwrap_or_default()
}
