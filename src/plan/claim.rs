//! Exact claims: how esus-ir recognises, after a lost answer, what its own request made.
//!
//! ESUS has no idempotency keys, so a write that is not safe to repeat is sent under a name that
//! only this incident, this step and this item could have chosen: a new API key is created as
//! `NAME.esus-ir-<tag>` and renamed to `NAME` once its answer (and secret) is safely kept; a
//! Subscription carries the tag in its `reason`. After a lost answer the key is looked for by that
//! exact name — never by a name someone else may also use, never by a time window — and only what
//! carries the claim is ever revoked or adopted.

use sha2::{Digest, Sha256};

/// What separates a name from its claim tag.
const MARK: &str = ".esus-ir-";

/// Hex digits of a tag: 40 bits, unique enough among one incident's writes and short enough for
/// a key name.
const TAG_LEN: usize = 10;

/// The tag of one write of an incident: a digest of the incident, the step and the item.
pub fn tag(incident: &str, step: &str, item: Option<usize>) -> String {
    let mut h = Sha256::new();
    h.update(b"esus-ir-claim\0");
    h.update(incident.as_bytes());
    h.update(b"\0");
    h.update(step.as_bytes());
    h.update(b"\0");
    if let Some(k) = item {
        h.update(k.to_string().as_bytes());
    }
    let mut out = hex::encode(h.finalize());
    out.truncate(TAG_LEN);
    out
}

/// The name a key is created under: `original` with this write's tag.
pub fn key_name(original: &str, tag: &str) -> String {
    format!("{original}{MARK}{tag}")
}

/// The name a claimed key is renamed to, when `name` carries a claim.
pub fn original(name: &str) -> Option<&str> {
    let (base, tag) = name.rsplit_once(MARK)?;
    let ok = tag.len() == TAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(base)
}

/// A Subscription's `reason` carrying the tag (FHIR's `reason` says why it exists; the tag says
/// which incident made it).
pub fn reason(given: Option<&str>, tag: &str) -> String {
    match given.filter(|r| !r.is_empty()) {
        Some(r) => format!("{r} (esus-ir {tag})"),
        None => format!("esus-ir incident response (esus-ir {tag})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_unique_to_incident_step_and_item() {
        let a = tag("run-1", "recreate", None);
        assert_eq!(a.len(), TAG_LEN);
        assert_eq!(a, tag("run-1", "recreate", None), "stable across resumes");
        assert_ne!(a, tag("run-2", "recreate", None));
        assert_ne!(a, tag("run-1", "other", None));
        assert_ne!(a, tag("run-1", "recreate", Some(0)));
        assert_ne!(tag("run-1", "r", Some(1)), tag("run-1", "r", Some(10)));
    }

    #[test]
    fn a_claimed_name_gives_back_its_original_and_no_other_name_does() {
        let t = tag("run-1", "recreate", Some(3));
        let claimed = key_name("ehr-integration", &t);
        assert_eq!(original(&claimed), Some("ehr-integration"));
        assert_eq!(original("ehr-integration"), None);
        assert_eq!(original("x.esus-ir-short"), None, "not a tag");
        assert_eq!(original("x.esus-ir-zzzzzzzzzz"), None, "not hex");
        assert_eq!(
            original(&key_name("a.esus-ir-b", &t)),
            Some("a.esus-ir-b"),
            "only the last mark is the claim"
        );
    }

    #[test]
    fn a_reason_keeps_the_runbooks_words_and_adds_the_tag() {
        assert_eq!(
            reason(Some("alerts"), "0123456789"),
            "alerts (esus-ir 0123456789)"
        );
        assert!(reason(None, "0123456789").ends_with("(esus-ir 0123456789)"));
        assert!(reason(Some(""), "0123456789").ends_with("(esus-ir 0123456789)"));
    }
}
