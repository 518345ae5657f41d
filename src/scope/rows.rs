//! Audit rows as the scope reads them from an evidence file: the offset pulls' `{rows: […]}` and
//! the cursor pulls' `{events: […]}`, each row reduced to what the scope may show (ids, types,
//! outcome, time, source) — a row's `query` is read only to find the patient it names.

use jiff::Timestamp;
use serde_json::Value;

use super::Moment;

/// One audit row, reduced.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Its id.
    pub id: String,
    /// `type` (`resource.read`…).
    pub kind: String,
    /// `subtype` (`emergency-override`…).
    pub subtype: Option<String>,
    /// C, R, U, D or E.
    pub action: String,
    /// `success`, `failure` or `error`.
    pub outcome: String,
    /// `agent.userId`.
    pub user: Option<String>,
    /// `agent.ip`.
    pub ip: String,
    /// `agent.userAgent`.
    pub user_agent: String,
    /// `agent.emergencyOverride` (audit docs only; the subtype says it on every row).
    pub override_flag: bool,
    /// `entity.resourceType`.
    pub resource_type: Option<String>,
    /// `entity.resourceId`.
    pub resource_id: Option<String>,
    /// The patient the row names (its resource, `entity.reference`, or the query's `patient=`).
    pub patient: Option<String>,
    /// `recorded` / `recordedAt`.
    pub recorded: Timestamp,
    /// Whether it came from the cursor-paged search (`recordedAt`, a UUID id) rather than an
    /// offset route (`recorded`, an `a-…` id): ESUS gives the same row another id on each, so
    /// ids are compared only within one.
    pub from_search: bool,
}

/// What one evidence file holds.
pub(super) struct Pulled {
    /// Its rows.
    pub(super) rows: Vec<AuditRow>,
    /// Whether its pull proved it complete.
    pub(super) complete: bool,
    /// Up to when the pull proved it holds every row (`window.to`).
    pub(super) through: Option<Timestamp>,
    /// Whether it asked for less than every row of its user (an action, a type, a start):
    /// complete for that narrower question only. An older file that does not say is taken
    /// as filtered — never as proof of the whole window.
    pub(super) filtered: bool,
}

/// The rows of an evidence file, whether its pull proved it complete, and up to when.
pub(super) fn parse(bytes: &[u8]) -> Result<Pulled, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let list = doc
        .get("rows")
        .or_else(|| doc.get("events"))
        .and_then(Value::as_array)
        .ok_or("no `rows` or `events` list")?;
    let complete = doc
        .get("complete")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let through = doc
        .get("window")
        .and_then(|w| w.get("to"))
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    let filtered = doc
        .get("filters")
        .and_then(Value::as_object)
        .is_none_or(|f| !f.is_empty());
    let rows = list.iter().filter_map(row).collect();
    Ok(Pulled {
        rows,
        complete,
        through,
        filtered,
    })
}

/// Server text as the scope may print it: no control characters (a forged line, an escape
/// sequence), at most 200 characters.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn row(v: &Value) -> Option<AuditRow> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(clean);
    let agent = v.get("agent").cloned().unwrap_or(Value::Null);
    let entity = v.get("entity").cloned().unwrap_or(Value::Null);
    let resource_type = s(&entity, "resourceType").filter(|t| fhir_id(t));
    let resource_id = s(&entity, "resourceId").filter(|t| fhir_id(t));
    let patient = match (resource_type.as_deref(), &resource_id) {
        (Some("Patient"), Some(id)) => Some(id.clone()),
        _ => s(&entity, "reference")
            .and_then(|r| r.strip_prefix("Patient/").map(str::to_string))
            .or_else(|| s(&entity, "query").and_then(|q| patient_in_query(&q)))
            .filter(|p| fhir_id(p)),
    };
    Some(AuditRow {
        id: match v.get("id")? {
            Value::String(s) => clean(s),
            other => clean(&other.to_string()),
        },
        kind: s(v, "type").unwrap_or_default(),
        subtype: s(v, "subtype"),
        action: s(v, "action").unwrap_or_default(),
        outcome: s(v, "outcome").unwrap_or_default(),
        user: s(&agent, "userId"),
        ip: s(&agent, "ip").unwrap_or_default(),
        user_agent: s(&agent, "userAgent").unwrap_or_default(),
        override_flag: agent.get("emergencyOverride") == Some(&Value::Bool(true)),
        resource_type,
        resource_id,
        patient,
        recorded: time(v.get("recorded").or_else(|| v.get("recordedAt"))?)?,
        from_search: v.get("recorded").is_none() && v.get("recordedAt").is_some(),
    })
}

/// `recorded` is an RFC 3339 string or a number (ESUS's audit docs show both): milliseconds
/// since the epoch, or seconds when it is too small to be milliseconds.
fn time(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => {
            // As the pull reads it (exec/paged.rs): a float is allowed, milliseconds when large.
            let v = n.as_f64()?;
            let millis = if v.abs() >= 1e11 { v } else { v * 1000.0 };
            if !millis.is_finite() || millis.abs() > 1e15 {
                return None;
            }
            Timestamp::from_millisecond(millis as i64).ok()
        }
        _ => None,
    }
}

/// ESUS's audit-chain verdict, when `bytes` is one (`{ok, total, verifiedThrough, breaks}`).
pub(super) fn chain_check(bytes: &[u8]) -> Option<super::ChainCheck> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let ok = doc.get("ok")?.as_bool()?;
    let breaks = doc
        .get("breaks")?
        .as_array()?
        .iter()
        .map(|b| super::ChainBreak {
            id: b
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            recorded: b
                .get("recorded")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        })
        .collect();
    Some(super::ChainCheck {
        file: String::new(),
        ok,
        total: doc.get("total").and_then(Value::as_u64).unwrap_or(0),
        verified_through: doc
            .get("verifiedThrough")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        breaks,
    })
}

/// The patient a search names: `patient=ID`, `subject=Patient/ID` or `subject=ID`.
fn patient_in_query(query: &str) -> Option<String> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(k, v)| match k {
            "patient" | "subject" | "patient:Patient" | "subject:Patient" => {
                Some(v.strip_prefix("Patient/").unwrap_or(v).to_string())
            }
            _ => None,
        })
}

/// A FHIR id or resource type: `[A-Za-z0-9.-]{1,64}` — anything else is not shown.
fn fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

impl AuditRow {
    /// What the row says, without its id: the same event read through the other route (where
    /// it has another id) says exactly this.
    pub(super) fn fingerprint(&self) -> impl Eq + std::hash::Hash + use<> {
        (
            self.recorded,
            self.kind.clone(),
            self.subtype.clone(),
            self.action.clone(),
            self.outcome.clone(),
            self.user.clone(),
            self.ip.clone(),
            self.user_agent.clone(),
            self.resource_type.clone(),
            self.resource_id.clone(),
            self.patient.clone(),
        )
    }

    /// The user the row is about (`agent.userId`).
    pub fn user_id(&self) -> Option<&String> {
        self.user.as_ref()
    }

    /// The patient it names.
    pub fn patient_id(&self) -> Option<String> {
        self.patient.clone()
    }

    /// Its resource type.
    pub fn resource_type(&self) -> Option<&str> {
        self.resource_type.as_deref()
    }

    /// Its resource id.
    pub fn resource_id(&self) -> Option<&str> {
        self.resource_id.as_deref()
    }

    /// When, as RFC 3339.
    pub fn at(&self) -> String {
        self.recorded.to_string()
    }

    /// A bulk export (its type names an export, or the action is E on a `$export`).
    pub fn is_export(&self) -> bool {
        self.kind.contains("export")
    }

    /// A read of patient data that names neither a patient nor a record: a search whose
    /// results (which patients) the audit row does not hold. Exports are counted apart.
    pub fn is_unattributed_search(&self) -> bool {
        self.action == "R"
            && self.patient.is_none()
            && self.resource_id.is_none()
            && !self.is_export()
            && self.touches_phi()
    }

    /// A create, update or delete.
    pub fn is_write(&self) -> bool {
        matches!(self.action.as_str(), "C" | "U" | "D")
    }

    /// Made with `X-Emergency-Override: true`.
    pub fn emergency_override(&self) -> bool {
        self.override_flag || self.subtype.as_deref() == Some("emergency-override")
    }

    /// Touches a patient's data: names a patient, exports, overrides consent, or is about a
    /// resource other than the credentials and sessions a containment check reads.
    pub fn touches_phi(&self) -> bool {
        self.patient.is_some()
            || self.is_export()
            || self.emergency_override()
            || !matches!(
                self.resource_type.as_deref(),
                None | Some("ApiKey" | "Session" | "User")
            )
    }

    /// Refused or failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome.as_str(), "failure" | "error")
    }

    /// The row as the scope shows it.
    pub fn moment(&self) -> Moment {
        Moment {
            row: self.id.clone(),
            at: self.at(),
            kind: self.kind.clone(),
            outcome: self.outcome.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            patient_id: self.patient.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_row_about_credentials_can_pass_for_a_check_and_server_text_is_cleaned() {
        let doc = serde_json::json!({"rows": [
            {"id": "a-1", "type": "apikey.read", "action": "R", "outcome": "failure",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "esus-ir/0.1.0"},
             "entity": {"resourceType": "ApiKey", "resourceId": "k-1"},
             "recorded": "2026-12-01T10:00:00Z"},
            {"id": "a-2", "type": "resource.read", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "esus-ir/0.1.0"},
             "entity": {"resourceType": "Patient", "resourceId": "p-1"},
             "recorded": "2026-12-01T10:00:00Z"},
            {"id": "a-3\u{1b}[2J", "type": "resource.search", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "curl\nPatients (0):"},
             "entity": {"resourceType": "Observation"},
             "recorded": 1_764_583_200.5}
        ]});
        let Pulled { rows, .. } = parse(doc.to_string().as_bytes()).expect("parse");
        assert!(!rows[0].touches_phi(), "a key probe");
        assert!(
            rows[1].touches_phi(),
            "a patient read, whatever its User-Agent says"
        );
        assert!(rows[2].touches_phi(), "a clinical search");
        assert!(!rows[2].user_agent.contains('\n') && !rows[2].id.contains('\u{1b}'));
        assert_eq!(
            rows[2].at(),
            "2025-12-01T10:00:00.5Z",
            "a float epoch, as the pull reads it"
        );
    }

    #[test]
    fn esus_s_chain_verdict_is_read_with_its_breaks_and_nothing_else_is_one() {
        let doc = serde_json::json!({"ok": false, "total": 900, "verifiedThrough": 411,
            "breaks": [{"id": "a-412", "recorded": "2026-12-01T10:00:00Z", "storedHash": "x",
                        "expectedHash": "y", "storedPrevHash": null, "expectedPrevHash": "z"}]});
        let c = chain_check(doc.to_string().as_bytes()).expect("a verdict");
        assert!(!c.ok);
        assert_eq!((c.total, c.verified_through), (900, 411));
        assert_eq!(c.breaks[0].id, "a-412");
        assert!(chain_check(br#"{"rows": [], "complete": true}"#).is_none());
        assert!(chain_check(br#"{"ok": "yes", "breaks": []}"#).is_none());
    }

    #[test]
    fn a_row_is_reduced_to_ids_and_types_and_its_patient_found() {
        let doc = serde_json::json!({"rows": [
            {"id": "a-1", "type": "resource.read", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "203.0.113.66", "userAgent": "curl"},
             "entity": {"resourceType": "Patient", "resourceId": "p-1"},
             "recorded": "2026-12-01T10:00:00Z"},
            {"id": "a-2", "type": "resource.search", "subtype": "emergency-override", "action": "R",
             "outcome": "success", "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "Observation", "query": "subject=Patient/p-2&code=x"},
             "recorded": 1_764_583_200_000_i64},
            {"id": "a-3", "type": "resource.read", "action": "R", "outcome": "failure",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "Patient", "resourceId": "Robert Smith"},
             "recorded": "2026-12-01T10:05:00Z"},
            {"id": "a-4", "recorded": "not a time"}
        ], "complete": true});
        let Pulled { rows, complete, .. } = parse(doc.to_string().as_bytes()).expect("parse");
        assert!(complete);
        assert_eq!(rows.len(), 3, "a row without a time is not a row");
        assert_eq!(rows[0].patient_id().as_deref(), Some("p-1"));
        assert_eq!(rows[1].patient_id().as_deref(), Some("p-2"));
        assert!(rows[1].emergency_override());
        assert_eq!(rows[1].at(), "2025-12-01T10:00:00Z", "epoch milliseconds");
        assert_eq!(
            rows[2].resource_id(),
            None,
            "free text is never shown as an id"
        );
        assert_eq!(rows[2].patient_id(), None);
        assert!(rows[2].failed());
    }

    #[test]
    fn a_search_that_names_no_patient_is_counted_apart_and_nothing_else_is() {
        let doc = serde_json::json!({"rows": [
            {"id": "s-1", "type": "resource.search", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "Observation", "query": "code=8867-4"},
             "recorded": "2026-12-01T10:00:00Z"},
            {"id": "s-2", "type": "resource.search", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "Observation", "query": "patient=p-2"},
             "recorded": "2026-12-01T10:01:00Z"},
            {"id": "s-3", "type": "resource.read", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "Observation", "resourceId": "o-1"},
             "recorded": "2026-12-01T10:02:00Z"},
            {"id": "s-4", "type": "apikey.read", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "ApiKey"},
             "recorded": "2026-12-01T10:03:00Z"},
            {"id": "s-5", "type": "bulk.export", "action": "R", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "Patient"},
             "recorded": "2026-12-01T10:04:00Z"},
            {"id": "s-6", "type": "resource.create", "action": "C", "outcome": "success",
             "agent": {"userId": "u-1", "ip": "x", "userAgent": "y"},
             "entity": {"resourceType": "Observation"},
             "recorded": "2026-12-01T10:05:00Z"}
        ], "complete": true});
        let Pulled { rows, .. } = parse(doc.to_string().as_bytes()).expect("parse");
        let apart: Vec<&str> = rows
            .iter()
            .filter(|r| r.is_unattributed_search())
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(apart, ["s-1"], "only the search whose patients are unknown");
    }
}
