//! Stable UUIDs derived from the simulator's readable ids. Where ESUS publishes `Format: uuid`
//! for something the simulator names readably (a user `u-0001`, an audit row `a-000042`), the
//! served id is derived from the readable one, so it is the same at every start and a test can
//! recompute it instead of looking it up.

use sha2::{Digest as _, Sha256};

/// A UUID-shaped string from SHA-256 of `name` (RFC 9562 version 8, "custom").
pub(crate) fn derived_uuid(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The UUID a user is served under where ESUS types a user id `Format: uuid`
/// (`GET /admin/system-admins/`); everywhere else the user is `u-…`.
pub fn user_uuid(user_id: &str) -> String {
    derived_uuid(&format!("urn:esus-sim:user:{user_id}"))
}

/// The UUID an audit row is served under by `GET /v1/admin/audit/` and the chain verification
/// (both type the id `Format: uuid`); the offset routes serve the row's `a-…` id.
pub fn audit_event_id(row_id: &str) -> String {
    derived_uuid(&format!("urn:esus-sim:audit:{row_id}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_canonical_uuids_and_stable() {
        let a = audit_event_id("a-000001");
        assert!(crate::sim::state::is_uuid(&a), "{a}");
        assert_eq!(a, audit_event_id("a-000001"));
        assert_ne!(a, audit_event_id("a-000002"));
        assert_ne!(user_uuid("u-0001"), audit_event_id("u-0001"));
        assert_eq!(&a[14..15], "8", "version 8");
    }
}
