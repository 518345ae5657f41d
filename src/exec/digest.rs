//! The digest recorded with an approval, so a verifier can prove that what was sent is what was
//! approved. One request: the transcript's [`request_digest`]. A `foreach` batch: SHA-256 over
//! the concatenated hex digests of every item's request, in item order (docs/transcript-format.md).

use sha2::{Digest, Sha256};

use super::event::RequestView;
pub use crate::transcript::request_digest;

/// Accumulates a batch approval's digest.
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
