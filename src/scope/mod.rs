//! The breach's scope, from the incident's own audit evidence: for the compromised credential,
//! in the window from its first access (or the time the operator marks) to the proven
//! containment, every record read, written or exported — by patient, with counts and first and
//! last time — the emergency overrides it used, its failed attempts, where it came from, and
//! anything it did after containment (which should be nothing).
//!
//! It reads only evidence files whose digests the signed transcript recorded (an altered file is
//! refused, not read), keeps each audit row once by `id` across every pull of every leg, and
//! shows no more PHI than ids and resource types: a row's `query`, descriptions and free text
//! never reach the output.

pub mod model;
pub mod render;
mod rows;

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;

use crate::transcript::report::incident::{EvidenceStatus, Incident};
pub use model::*;
pub use rows::AuditRow;

/// What the scope is about, and where its window starts.
#[derive(Debug, Clone, Default)]
pub struct ScopeOptions {
    /// The compromised user's id (default: the incident's `user_id` input).
    pub user: Option<String>,
    /// The window's start the operator marks (default: the credential's first row).
    pub since: Option<Timestamp>,
    /// The attacker's source addresses, when known: only the user's rows from them count (the
    /// real user may have kept working inside the window). Empty: every row of the user.
    pub sources: Vec<String>,
    /// What opens encrypted evidence (`--identity`); none: encrypted files are refused by name.
    pub identities: Option<std::sync::Arc<crate::exec::sealed::Identities>>,
}

/// Computes the scope of `incident`'s audit evidence (in `evidence_dir`).
pub fn scope(
    incident: &Incident,
    evidence_dir: &Path,
    options: &ScopeOptions,
) -> Result<Scope, String> {
    let user = match &options.user {
        Some(u) => u.clone(),
        None => incident_user(incident)
            .ok_or("which credential? the incident has no `user_id` input: give --user USER_ID")?,
    };
    let ids = options.identities.as_deref();
    let (rows, evidence) = read_evidence(incident, evidence_dir, &user, ids)?;
    let source_chain = chain_check(incident, evidence_dir, ids);
    let rows_read = rows.len();
    let during = incident_span(incident);
    let ours = |r: &AuditRow| {
        r.user_agent.starts_with("esus-ir/")
            && during.is_some_and(|(a, b)| r.recorded >= a && r.recorded <= b)
            && !r.touches_phi()
    };
    // The attacker controls the User-Agent: a row is taken for this incident's own check only
    // when it touches no PHI (checks read the key and the sessions, never a patient), and after
    // containment only when it was refused too (that is what a check proves).
    let users: Vec<&AuditRow> = rows.iter().filter(|r| r.user_id() == Some(&user)).collect();
    let marked = |r: &&AuditRow| options.sources.is_empty() || options.sources.contains(&r.ip);
    let (own_checks, mine): (Vec<&AuditRow>, Vec<&AuditRow>) =
        users.iter().copied().filter(marked).partition(|r| ours(r));
    let proven = containment_at(incident);
    let end = proven.or_else(|| mine.iter().map(|r| r.recorded).max());
    let from = options
        .since
        .or_else(|| mine.iter().map(|r| r.recorded).min());
    let in_window: Vec<&AuditRow> = mine
        .iter()
        .copied()
        .filter(|r| from.is_none_or(|f| r.recorded >= f))
        .filter(|r| end.is_none_or(|c| r.recorded <= c))
        .collect();
    // After containment every source counts: the credential may act from anywhere.
    let after: Vec<Moment> = proven
        .map(|c| {
            users
                .iter()
                .filter(|r| r.recorded > c && !(ours(r) && r.failed()))
                .map(|r| r.moment())
                .collect()
        })
        .unwrap_or_default();
    // How far the evidence is proven complete for this user: the earliest end among the
    // complete pulls that hold their rows (a pull of something else proves nothing of them).
    // A pull filtered beyond the user (the sweep's "what they created") answers a narrower
    // question completely: its rows count, its completeness proves nothing of the window.
    let covered = evidence
        .iter()
        .filter(|e| e.used.complete && e.holds_user && !e.filtered)
        .filter_map(|e| e.through)
        .min();
    let not_covered = match (covered, end) {
        (Some(e), Some(c)) if e < c => Some(format!("{e} → {c}")),
        (None, _) => Some(
            "no complete pull of all this user's rows: rows may be missing anywhere in the window"
                .to_string(),
        ),
        _ => None,
    };
    let evidence: Vec<EvidenceUsed> = evidence.into_iter().map(|e| e.used).collect();
    let evidence_complete = not_covered.is_none();
    Ok(Scope {
        schema_version: 1,
        kind: "scope",
        user_id: user,
        sources_marked: options.sources.clone(),
        window: Window {
            from: from.map(|t| t.to_string()),
            from_source: if options.since.is_some() {
                "marked"
            } else {
                "first-access"
            },
            to: end.map(|t| t.to_string()),
            to_source: if proven.is_some() {
                "containment"
            } else {
                "end-of-evidence"
            },
            not_covered,
        },
        evidence_complete,
        evidence,
        rows_read,
        rows_in_window: in_window.len(),
        source_chain,
        patients: patients(&in_window),
        records: records(&in_window),
        searches_without_patient: moments(&in_window, AuditRow::is_unattributed_search),
        exports: moments(&in_window, AuditRow::is_export),
        emergency_overrides: moments(&in_window, AuditRow::emergency_override),
        failures: moments(&in_window, AuditRow::failed),
        sources: sources(&in_window),
        after_containment: after,
        own_checks: own_checks.into_iter().map(AuditRow::moment).collect(),
    })
}

/// Who the incident's evidence is encrypted to (its legs' recorded recipients), if anyone:
/// whatever is made from that evidence (the scope's files, a saved report) is encrypted to them.
pub fn sealed_to(incident: &Incident) -> Result<Option<crate::exec::sealed::Recipients>, String> {
    let mut recorded: Vec<&str> = incident
        .legs
        .iter()
        .flat_map(|l| l.timeline.evidence_recipients.iter().map(String::as_str))
        .collect();
    if recorded.is_empty() {
        return Ok(None);
    }
    recorded.sort_unstable();
    recorded.dedup();
    crate::exec::sealed::Recipients::parse(recorded)
        .map(Some)
        .map_err(|e| format!("the incident's recorded recipients: {e}"))
}

/// ESUS's audit-chain check, from the last evidence file that holds one (`{ok, total,
/// verifiedThrough, breaks}`), among those the transcript vouches for.
fn chain_check(
    incident: &Incident,
    dir: &Path,
    ids: Option<&crate::exec::sealed::Identities>,
) -> Option<ChainCheck> {
    incident
        .evidence
        .iter()
        .filter(|e| e.status == EvidenceStatus::Ok && e.row.rows.is_none())
        .rev()
        .find_map(|e| {
            let bytes = crate::exec::sealed::read_evidence(&dir.join(&e.row.file), ids).ok()?;
            rows::chain_check(&bytes).map(|mut c| {
                c.file = e.row.file.clone();
                c
            })
        })
}

/// When the incident's legs ran: from its start to its last record.
fn incident_span(incident: &Incident) -> Option<(Timestamp, Timestamp)> {
    let start: Timestamp = incident.started.parse().ok()?;
    let end = start
        .checked_add(jiff::SignedDuration::from_millis(incident.end_ms))
        .ok()?;
    Some((start, end))
}

/// The incident's `user_id` input (the compromised user), from its first leg.
fn incident_user(incident: &Incident) -> Option<String> {
    incident.legs.iter().find_map(|l| {
        l.timeline
            .inputs
            .iter()
            .find(|(k, _)| k == "user_id")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty() && v != "null")
    })
}

/// When containment was proven, across the legs (the first leg that recorded it).
fn containment_at(incident: &Incident) -> Option<Timestamp> {
    incident.legs.iter().find_map(|l| {
        let c = l.timeline.containment_record.as_ref()?;
        if c.state != "contained" {
            return None;
        }
        c.at.as_deref()?.parse().ok()
    })
}

/// Every audit row of the incident's evidence, once by id; only from files whose bytes are the
/// recorded ones.
/// One evidence file as the scope weighs it.
struct Pulled {
    used: EvidenceUsed,
    /// Whether it holds rows of the user.
    holds_user: bool,
    /// Up to when its pull proved it complete.
    through: Option<Timestamp>,
    /// Whether the pull asked for less than all the user's rows.
    filtered: bool,
}

fn read_evidence(
    incident: &Incident,
    dir: &Path,
    user: &str,
    ids: Option<&crate::exec::sealed::Identities>,
) -> Result<(Vec<AuditRow>, Vec<Pulled>), String> {
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    let mut used = Vec::new();
    for e in incident.evidence.iter().filter(|e| e.row.rows.is_some()) {
        if e.status != EvidenceStatus::Ok {
            return Err(format!(
                "evidence {}: {} — the scope is read only from evidence the transcript vouches for",
                e.row.file,
                e.status.word()
            ));
        }
        let bytes = crate::exec::sealed::read_evidence(&dir.join(&e.row.file), ids)
            .map_err(|err| format!("evidence {}: {err}", e.row.file))?;
        let pulled = rows::parse(&bytes)
            .map_err(|err| format!("evidence {}: not an audit pull ({err})", e.row.file))?;
        used.push(Pulled {
            used: EvidenceUsed {
                file: e.row.file.clone(),
                sha256: e.row.sha256.clone(),
                rows: pulled.rows.len(),
                complete: pulled.complete,
            },
            holds_user: pulled.rows.iter().any(|r| r.user.as_deref() == Some(user)),
            through: pulled.through,
            filtered: pulled.filtered,
        });
        for r in pulled.rows {
            if seen.insert((r.from_search, r.id.clone())) {
                rows.push(r);
            }
        }
    }
    let mut rows = one_per_event(rows);
    if used.is_empty() {
        return Err(
            "the incident holds no audit evidence: run a step that pulls the audit log (audit.user) first"
                .into(),
        );
    }
    rows.sort_by(|a, b| a.recorded.cmp(&b.recorded).then(a.id.cmp(&b.id)));
    Ok((rows, used))
}

/// Rows of both routes, each event once. ESUS numbers a row differently on the cursor search
/// and on the offset routes, so an incident that pulled both (a cursor pull cut short, then the
/// page-numbered fallback) holds some events twice under two ids. Within a route ids decide;
/// across routes, an offset row whose every field matches a search row not yet matched is that
/// row again — as many times as the search holds it, so two identical events stay two.
fn one_per_event(rows: Vec<AuditRow>) -> Vec<AuditRow> {
    let mut searched: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    for r in rows.iter().filter(|r| r.from_search) {
        *searched.entry(r.fingerprint()).or_insert(0) += 1;
    }
    if searched.is_empty() {
        return rows;
    }
    rows.into_iter()
        .filter(|r| {
            if r.from_search {
                return true;
            }
            match searched.get_mut(&r.fingerprint()) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            }
        })
        .collect()
}

fn patients(rows: &[&AuditRow]) -> Vec<PatientAccess> {
    let mut by: BTreeMap<String, PatientAccess> = BTreeMap::new();
    for r in rows {
        let Some(p) = r.patient_id() else { continue };
        let entry = by.entry(p.clone()).or_insert_with(|| PatientAccess {
            patient_id: p.clone(),
            ..PatientAccess::default()
        });
        if let Some(t) = r.resource_type()
            && !entry.resource_types.iter().any(|x| x == t)
        {
            entry.resource_types.push(t.to_string());
        }
        entry.counts.add(r);
    }
    by.into_values()
        .map(|mut p| {
            p.resource_types.sort();
            p
        })
        .collect()
}

fn records(rows: &[&AuditRow]) -> Vec<RecordAccess> {
    let mut by: BTreeMap<(String, Option<String>), RecordAccess> = BTreeMap::new();
    for r in rows {
        let Some(t) = r.resource_type() else { continue };
        let key = (t.to_string(), r.resource_id().map(str::to_string));
        let entry = by.entry(key).or_insert_with(|| RecordAccess {
            patient_id: r.patient_id(),
            resource_type: t.to_string(),
            resource_id: r.resource_id().map(str::to_string),
            ..RecordAccess::default()
        });
        entry.counts.add(r);
    }
    by.into_values().collect()
}

impl Counts {
    /// Adds one row (rows come oldest first).
    fn add(&mut self, r: &AuditRow) {
        if r.is_export() {
            self.exports += 1;
        } else if r.is_write() {
            self.writes += 1;
        } else {
            self.reads += 1;
        }
        self.emergency_overrides += usize::from(r.emergency_override());
        self.failed += usize::from(r.failed());
        if self.first.is_empty() {
            self.first = r.at();
        }
        self.last = r.at();
    }
}

fn moments(rows: &[&AuditRow], keep: fn(&AuditRow) -> bool) -> Vec<Moment> {
    rows.iter()
        .copied()
        .filter(|r| keep(r))
        .map(AuditRow::moment)
        .collect()
}

fn sources(rows: &[&AuditRow]) -> Vec<SourceSeen> {
    let mut by: BTreeMap<(String, String), SourceSeen> = BTreeMap::new();
    for r in rows {
        let key = (r.ip.clone(), r.user_agent.clone());
        let entry = by.entry(key).or_insert_with(|| SourceSeen {
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
            rows: 0,
            first: r.at(),
            last: r.at(),
        });
        entry.rows += 1;
        entry.last = r.at();
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(doc: serde_json::Value) -> Vec<AuditRow> {
        rows::parse(doc.to_string().as_bytes()).expect("parse").rows
    }

    #[test]
    fn an_event_pulled_through_both_routes_is_counted_once_and_twin_events_stay_two() {
        let read = |id: &str, key: &str, at: &str| {
            serde_json::json!({"id": id, "type": "resource.read", "action": "R", "outcome": "success",
                "agent": {"userId": "u-1", "ip": "203.0.113.66", "userAgent": "curl"},
                "entity": {"resourceType": "Patient", "resourceId": "p-1"}, key: at})
        };
        let t1 = "2026-12-01T10:00:00Z";
        let t2 = "2026-12-01T10:01:00Z";
        // The search (cut short) held one of two identical reads at t1; the offset fallback
        // holds both of them and one more at t2.
        let mut all = rows(serde_json::json!({"rows": [read("9cbb-1", "recordedAt", t1)]}));
        all.extend(rows(serde_json::json!({"rows": [
            read("a-1", "recorded", t1), read("a-2", "recorded", t1), read("a-3", "recorded", t2)
        ]})));
        let kept = one_per_event(all);
        let ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["9cbb-1", "a-2", "a-3"],
            "one of the twins was the search's row"
        );
        // Without a search, ids alone decide: nothing is merged on its content.
        let offset_only = rows(serde_json::json!({"rows": [
            read("a-1", "recorded", t1), read("a-2", "recorded", t1)
        ]}));
        assert_eq!(one_per_event(offset_only).len(), 2);
    }
}
