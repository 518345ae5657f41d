//! The audit log's SHA-256 hash chain, as ESUS keeps its audit table (facts file, "Audit"): each
//! row's hash covers its canonical content and the previous row's hash, so a row edited in place,
//! or edited and re-hashed, shows up as a break when the chain is recomputed
//! (`GET /admin/system-admins/audit/verify`). The links live beside the rows (not inside
//! [`AuditRow`]) so a test can tamper with a row while its stored hash stays what it was.

use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::audit::AuditRow;

/// A row hash. Kept as bytes (served as lower-case hex) so the chain costs little memory beside
/// a long audit log.
pub(crate) type Hash = [u8; 32];

/// The `prevHash` of the first row (served as 64 zeros).
pub(crate) const GENESIS: Hash = [0; 32];

/// What is stored for one row; `None` where a tamper removed it (served as `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainLink {
    pub(crate) prev_hash: Option<Hash>,
    pub(crate) hash: Option<Hash>,
}

/// How a test hook damages a stored row (`SimHandle::tamper_audit_row`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditTamper {
    /// Rewrites the row's source address and keeps its stored hash: the row itself breaks.
    EditContent,
    /// Rewrites the address and re-hashes the row over its stored `prevHash`, as a careful
    /// attacker would: the row verifies, the next one breaks (its `prevHash` no longer matches).
    EditAndRehash,
    /// Removes the stored hash (`storedHash: null`): the row breaks.
    DropHash,
}

/// The address a tampered row is given (TEST-NET-1, so it can never be a real caller).
pub(crate) const TAMPERED_IP: &str = "192.0.2.1";

/// Every fact of the row ESUS would store, in a fixed order. An array rather than an object so
/// the text does not depend on map ordering.
fn canonical(row: &AuditRow) -> String {
    let entity = row.entity.as_ref();
    json!([
        row.id,
        row.organization_id,
        row.kind,
        row.subtype,
        row.action,
        row.outcome,
        row.outcome_desc,
        row.agent.user_id,
        row.agent.email,
        row.agent.ip,
        row.agent.user_agent,
        row.agent.roles,
        row.agent.emergency_override,
        row.source.as_ref().map(|s| [&s.site, &s.observer]),
        entity.map(|e| &e.resource_type),
        entity.and_then(|e| e.resource_id.as_ref()),
        entity.and_then(|e| e.query.as_ref()),
        row.recorded.to_string(),
    ])
    .to_string()
}

/// The hash of a row chained after `prev`: SHA-256 over `prev` in lower-case hex, a newline and
/// the row's canonical content.
pub(crate) fn hash(prev: &Hash, row: &AuditRow) -> Hash {
    Sha256::new()
        .chain_update(hex::encode(prev).as_bytes())
        .chain_update(b"\n")
        .chain_update(canonical(row).as_bytes())
        .finalize()
        .into()
}

/// The link of a row appended after `last` (the previous row and its link).
pub(crate) fn link_after(last: Option<(&AuditRow, &ChainLink)>, row: &AuditRow) -> ChainLink {
    let prev = match last {
        None => GENESIS,
        Some((_, ChainLink { hash: Some(h), .. })) => *h,
        // A tip whose hash was removed (only a tamper does that) is chained from its
        // recomputed hash, so the damage is reported at that row alone.
        Some((last_row, l)) => hash(&l.prev_hash.unwrap_or(GENESIS), last_row),
    };
    let hash = hash(&prev, row);
    ChainLink {
        prev_hash: Some(prev),
        hash: Some(hash),
    }
}

/// One row whose stored link does not match the recomputation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Break {
    pub(crate) row_id: String,
    pub(crate) recorded: Timestamp,
    pub(crate) stored_hash: Option<Hash>,
    pub(crate) expected_hash: Hash,
    pub(crate) stored_prev_hash: Option<Hash>,
    pub(crate) expected_prev_hash: Hash,
}

/// The result of recomputing the chain over the oldest rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verification {
    pub(crate) total: usize,
    /// How many rows, oldest first, were recomputed.
    pub(crate) verified_through: usize,
    pub(crate) breaks: Vec<Break>,
}

/// Recomputes the first `limit` links. A row's expected `prevHash` is the previous row's stored
/// hash (its recomputed one when none is stored), so one damaged row is reported once, where the
/// damage is, instead of breaking every row after it.
pub(crate) fn verify(rows: &[AuditRow], links: &[ChainLink], limit: usize) -> Verification {
    let n = rows.len().min(links.len()).min(limit);
    let mut breaks = Vec::new();
    let mut expected_prev = GENESIS;
    for (row, link) in rows.iter().zip(links).take(n) {
        let expected = hash(&expected_prev, row);
        if link.hash != Some(expected) || link.prev_hash != Some(expected_prev) {
            breaks.push(Break {
                row_id: row.id.clone(),
                recorded: row.recorded,
                stored_hash: link.hash,
                expected_hash: expected,
                stored_prev_hash: link.prev_hash,
                expected_prev_hash: expected_prev,
            });
        }
        expected_prev = link.hash.unwrap_or(expected);
    }
    Verification {
        total: rows.len(),
        verified_through: n,
        breaks,
    }
}

/// Damages row `idx` as `how` says; false when there is no such row.
pub(crate) fn tamper(
    rows: &mut [AuditRow],
    links: &mut [ChainLink],
    idx: usize,
    how: AuditTamper,
) -> bool {
    let (Some(row), Some(link)) = (rows.get_mut(idx), links.get_mut(idx)) else {
        return false;
    };
    match how {
        AuditTamper::EditContent => row.agent.ip = TAMPERED_IP.into(),
        AuditTamper::EditAndRehash => {
            row.agent.ip = TAMPERED_IP.into();
            let prev = link.prev_hash.unwrap_or(GENESIS);
            link.hash = Some(hash(&prev, row));
        }
        AuditTamper::DropHash => link.hash = None,
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sim::audit::{Agent, Entity};

    fn row(n: usize) -> AuditRow {
        AuditRow {
            id: format!("a-{n:06}"),
            organization_id: Some("org-0001".into()),
            kind: "resource.read".into(),
            subtype: None,
            action: "R".into(),
            outcome: "success".into(),
            outcome_desc: None,
            agent: Agent {
                user_id: Some("u-1001".into()),
                email: None,
                ip: "203.0.113.66".into(),
                user_agent: "t".into(),
                roles: vec![],
                emergency_override: false,
            },
            source: None,
            entity: Some(Entity::new("Patient", Some("p-0001"), None)),
            recorded: Timestamp::from_second(1_700_000_000 + n as i64).unwrap(),
            request_id: None,
        }
    }

    fn chain(n: usize) -> (Vec<AuditRow>, Vec<ChainLink>) {
        let rows: Vec<AuditRow> = (1..=n).map(row).collect();
        let mut links: Vec<ChainLink> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let l = link_after(i.checked_sub(1).map(|p| (&rows[p], &links[p])), r);
            links.push(l);
        }
        (rows, links)
    }

    fn broken_ids(v: &Verification) -> Vec<&str> {
        v.breaks.iter().map(|b| b.row_id.as_str()).collect()
    }

    #[test]
    fn an_untouched_chain_verifies_and_the_limit_counts_from_the_oldest() {
        let (rows, links) = chain(5);
        assert_eq!(links[0].prev_hash, Some(GENESIS));
        assert_eq!(links[1].prev_hash, links[0].hash);
        let all = verify(&rows, &links, 100);
        assert_eq!((all.total, all.verified_through), (5, 5));
        assert!(all.breaks.is_empty());
        let some = verify(&rows, &links, 2);
        assert_eq!((some.total, some.verified_through), (5, 2));
    }

    #[test]
    fn each_tamper_is_reported_once_where_it_shows() {
        for (how, at) in [
            (AuditTamper::EditContent, "a-000003"),
            (AuditTamper::DropHash, "a-000003"),
            (AuditTamper::EditAndRehash, "a-000004"),
        ] {
            let (mut rows, mut links) = chain(5);
            assert!(tamper(&mut rows, &mut links, 2, how));
            let v = verify(&rows, &links, 100);
            assert_eq!(broken_ids(&v), [at], "{how:?}");
            // Before the damage the chain still verifies.
            assert!(verify(&rows, &links, 2).breaks.is_empty());
        }
    }

    #[test]
    fn a_row_appended_after_a_dropped_tip_still_breaks() {
        let (mut rows, mut links) = chain(2);
        tamper(&mut rows, &mut links, 1, AuditTamper::DropHash);
        let r = row(3);
        links.push(link_after(Some((&rows[1], &links[1])), &r));
        rows.push(r);
        assert_eq!(broken_ids(&verify(&rows, &links, 100)), ["a-000002"]);
    }
}
