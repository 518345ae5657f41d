//! The digest recorded with an approval, so a verifier can prove that what was sent is what was
//! approved. One request: the transcript's [`request_digest`]. A `foreach` batch: SHA-256 over
//! the concatenated hex digests of every item's request, in item order (docs/transcript-format.md).

use sha2::{Digest, Sha256};

use crate::event::RequestView;
pub use crate::transcript::request_digest;

/// Accumulates a batch approval's digest.
#[derive(Default)]
pub struct BatchDigest(Sha256);

impl BatchDigest {
    /// Adds the next item's request; returns its own digest (what the approval's `covers` lists
    /// for it), so that each request is hashed once.
    pub fn push(&mut self, view: &RequestView) -> String {
        let digest = request_digest(view);
        self.0.update(digest.as_bytes());
        digest
    }

    /// The batch digest (hex).
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::sha256_hex;

    fn view(method: &str, url: &str) -> RequestView {
        RequestView {
            method: method.into(),
            url: url.into(),
            headers: vec![("X-Request-Id".into(), "r-1".into())],
            body: Some(serde_json::json!({"graceHours": 0})),
        }
    }

    #[test]
    fn a_batch_digest_is_sha256_over_the_item_digests_in_order() {
        let a = view("DELETE", "http://esus.test/api-keys/k-1");
        let b = view("DELETE", "http://esus.test/api-keys/k-2");
        let mut batch = BatchDigest::default();
        batch.push(&a);
        batch.push(&b);
        let expected =
            sha256_hex(format!("{}{}", request_digest(&a), request_digest(&b)).as_bytes());
        assert_eq!(batch.finish(), expected, "the documented construction");

        let mut swapped = BatchDigest::default();
        swapped.push(&b);
        swapped.push(&a);
        assert_ne!(
            swapped.finish(),
            expected,
            "item order is part of what was approved"
        );
    }

    #[test]
    fn every_item_changes_the_batch_digest() {
        let a = view("DELETE", "http://esus.test/api-keys/k-1");
        let mut one = BatchDigest::default();
        one.push(&a);
        let one = one.finish();
        assert_eq!(one.len(), 64, "hex SHA-256");
        assert_ne!(one, BatchDigest::default().finish(), "an item counts");
        let mut two = BatchDigest::default();
        two.push(&a);
        two.push(&a);
        assert_ne!(two.finish(), one, "a repeated item counts");
        assert_eq!(BatchDigest::default().finish(), sha256_hex(b""));
    }
}
