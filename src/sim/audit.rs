//! Audit rows: their shape (as the facts file documents it), how a request is classified into a
//! row, how `/admin/audit*` filters and pages them, and their FHIR R4 AuditEvent form for
//! rest-hook subscriptions.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// One audit row, serialized as ESUS's OpenAPI (getAdminAudit) shows it, plus the three fields
/// only ESUS's audit docs show — `agent.roles`, `agent.emergencyOverride` and
/// `entity.reference` — on some rows and not on others (see [`AuditRow::docs_fields_served`]),
/// so that no client may depend on them.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Row id, `a-000001`…
    pub id: String,
    /// The organization.
    pub organization_id: Option<String>,
    /// What happened, e.g. `resource.read`, `apikey.rotate`, `auth.login`.
    pub kind: String,
    /// Finer detail, e.g. `emergency-override`.
    pub subtype: Option<String>,
    /// C, R, U, D or E.
    pub action: String,
    /// `success`, `failure` (a 4xx answer) or `error` (a 5xx answer the route produced).
    pub outcome: String,
    /// Why it failed, when it did.
    pub outcome_desc: Option<String>,
    /// Who.
    pub agent: Agent,
    /// Which system recorded it.
    pub source: Option<Source>,
    /// What it was about.
    pub entity: Option<Entity>,
    /// When (RFC 3339).
    pub recorded: Timestamp,
    /// The caller's `X-Request-Id`, if it sent one. Kept for the simulator's own accessors and
    /// never served: ESUS rows have no such field.
    pub request_id: Option<String>,
}

/// The `agent` of a row.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The caller's user id (the key owner for API-key requests); absent when unauthenticated.
    pub user_id: Option<String>,
    /// The caller's email; absent when unauthenticated.
    pub email: Option<String>,
    /// Source address.
    pub ip: String,
    /// `User-Agent`.
    pub user_agent: String,
    /// The caller's RBAC role slugs (empty when unauthenticated). Served as `agent.roles` on
    /// some rows only (audit docs, not the OpenAPI).
    pub roles: Vec<String>,
    /// True on requests made with `X-Emergency-Override: true`, false otherwise. Served as
    /// `agent.emergencyOverride` on some rows only (audit docs, not the OpenAPI); `subtype:
    /// emergency-override` marks override rows on every row.
    pub emergency_override: bool,
}

/// The `source` of a row.
#[derive(Debug, Clone)]
pub struct Source {
    /// Site.
    pub site: String,
    /// Observer.
    pub observer: String,
}

/// The `entity` of a row.
#[derive(Debug, Clone)]
pub struct Entity {
    /// e.g. `Patient`, `ApiKey`, `Session`, `User`.
    pub resource_type: String,
    /// Its id, when there is one.
    pub resource_id: Option<String>,
    /// `ResourceType/id` when there is an id, e.g. `Patient/p-0001`. Served on some rows only
    /// (audit docs, not the OpenAPI).
    pub reference: Option<String>,
    /// The search query, for searches.
    pub query: Option<String>,
}

impl Entity {
    /// An entity; `reference` is derived from the type and id.
    pub fn new(resource_type: &str, id: Option<&str>, query: Option<&str>) -> Self {
        Entity {
            resource_type: resource_type.to_owned(),
            resource_id: id.map(str::to_owned),
            reference: id.map(|id| format!("{resource_type}/{id}")),
            query: query.filter(|q| !q.is_empty()).map(str::to_owned),
        }
    }
}

impl AuditRow {
    /// The row's sequence number: the digits of its id (`a-000042` is 42).
    pub fn sequence(&self) -> Option<u64> {
        self.id.strip_prefix("a-")?.parse().ok()
    }

    /// Whether the row is served with the three fields only ESUS's audit docs show
    /// (`agent.roles`, `agent.emergencyOverride`, `entity.reference`): on rows with an even
    /// sequence number, never on odd ones — deterministic, so tests are reproducible, and mixed,
    /// so a client that depends on them breaks (simulator assumption).
    pub fn docs_fields_served(&self) -> bool {
        self.sequence().is_some_and(|n| n.is_multiple_of(2))
    }

    /// The row as `/admin/audit*` serves it.
    pub fn to_json(&self) -> Value {
        let docs = self.docs_fields_served();
        let mut agent = Map::new();
        if let Some(id) = &self.agent.user_id {
            agent.insert("userId".into(), json!(id));
        }
        if let Some(email) = &self.agent.email {
            agent.insert("email".into(), json!(email));
        }
        agent.insert("ip".into(), json!(self.agent.ip));
        agent.insert("userAgent".into(), json!(self.agent.user_agent));
        if docs {
            agent.insert("roles".into(), json!(self.agent.roles));
            agent.insert(
                "emergencyOverride".into(),
                json!(self.agent.emergency_override),
            );
        }
        let mut row = Map::new();
        row.insert("id".into(), json!(self.id));
        if let Some(org) = &self.organization_id {
            row.insert("organizationId".into(), json!(org));
        }
        row.insert("type".into(), json!(self.kind));
        if let Some(sub) = &self.subtype {
            row.insert("subtype".into(), json!(sub));
        }
        row.insert("action".into(), json!(self.action));
        row.insert("outcome".into(), json!(self.outcome));
        if let Some(desc) = &self.outcome_desc {
            row.insert("outcomeDesc".into(), json!(desc));
        }
        row.insert("agent".into(), Value::Object(agent));
        if let Some(src) = &self.source {
            row.insert(
                "source".into(),
                json!({"site": src.site, "observer": src.observer}),
            );
        }
        if let Some(e) = &self.entity {
            let mut entity = Map::new();
            entity.insert("resourceType".into(), json!(e.resource_type));
            if let Some(id) = &e.resource_id {
                entity.insert("resourceId".into(), json!(id));
            }
            if let (true, Some(reference)) = (docs, &e.reference) {
                entity.insert("reference".into(), json!(reference));
            }
            if let Some(q) = &e.query {
                entity.insert("query".into(), json!(q));
            }
            row.insert("entity".into(), Value::Object(entity));
        }
        row.insert("recorded".into(), json!(self.recorded));
        Value::Object(row)
    }
}

impl Serialize for AuditRow {
    /// As [`AuditRow::to_json`]; `request_id` is never served.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// How a request is described in the audit log.
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    pub(crate) kind: &'static str,
    pub(crate) action: &'static str,
    pub(crate) entity: Option<Entity>,
}

fn entity(resource_type: &str, id: Option<&str>, query: Option<&str>) -> Option<Entity> {
    Some(Entity::new(resource_type, id, query))
}

/// Classifies a request by method and path (query for searches).
pub(crate) fn classify(method: &str, path: &str, query: Option<&str>) -> Classified {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(found) = classify_leftovers(method, &segs, query) {
        return found;
    }
    let c = |kind, action, entity| Classified {
        kind,
        action,
        entity,
    };
    match (method, segs.as_slice()) {
        ("POST", ["auth", "login"]) => c("auth.login", "E", None),
        ("POST", ["auth", "mfa", "verify"]) => c("auth.mfa", "E", None),
        ("POST", ["auth", "refresh"]) => c("auth.refresh", "E", None),
        ("POST", ["auth", "logout"]) => c("auth.logout", "E", None),
        ("POST", ["auth", "logout-all"]) => c("auth.logout-all", "E", None),
        ("GET", ["auth", "sessions"]) => c("auth.sessions", "R", None),
        ("DELETE", ["auth", "sessions", id]) => c(
            "auth.session.revoke",
            "D",
            entity("Session", Some(id), None),
        ),
        ("GET", ["auth", "me"]) => c("auth.me", "R", None),
        ("POST", ["api-keys"]) => c("apikey.create", "C", entity("ApiKey", None, None)),
        ("GET", ["api-keys"]) => c("apikey.list", "R", entity("ApiKey", None, query)),
        ("GET", ["api-keys", id]) => c("apikey.read", "R", entity("ApiKey", Some(id), None)),
        ("PUT", ["api-keys", id]) => c("apikey.update", "U", entity("ApiKey", Some(id), None)),
        ("DELETE", ["api-keys", id]) => c("apikey.delete", "D", entity("ApiKey", Some(id), None)),
        ("POST", ["api-keys", id, "rotate"]) => {
            c("apikey.rotate", "U", entity("ApiKey", Some(id), None))
        }
        ("GET", ["admin", "audit", rest @ ..]) => {
            let scope = match rest {
                ["user", id] => format!("user={id}"),
                ["patient", id] => format!("patient={id}"),
                _ => String::new(),
            };
            let q = [scope.as_str(), query.unwrap_or("")]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("&");
            c("audit.read", "R", entity("AuditEvent", None, Some(&q)))
        }
        ("GET", ["admin", "users"]) => c("admin.user.list", "R", entity("User", None, None)),
        ("DELETE", ["admin", "users", id]) => {
            c("admin.user.remove", "D", entity("User", Some(id), None))
        }
        ("PATCH", ["admin", "users", id, "role"]) => {
            c("admin.user.role", "U", entity("User", Some(id), None))
        }
        ("GET", ["roles"]) => c("role.list", "R", None),
        ("POST", ["roles", "users", id, "assign"]) => {
            c("role.assign", "U", entity("User", Some(id), None))
        }
        ("DELETE", ["roles", "users", id, _]) => {
            c("role.unassign", "U", entity("User", Some(id), None))
        }
        ("GET", ["fhir", rt, id]) => c("resource.read", "R", entity(rt, Some(id), None)),
        ("GET", ["fhir", rt]) => c("resource.search", "R", entity(rt, None, query)),
        ("POST", ["fhir", rt]) => c("resource.create", "C", entity(rt, None, None)),
        ("PUT" | "PATCH", ["fhir", rt, id]) => {
            c("resource.update", "U", entity(rt, Some(id), None))
        }
        ("DELETE", ["fhir", rt, id]) => c("resource.delete", "D", entity(rt, Some(id), None)),
        ("GET", [".well-known", "smart-configuration"]) => c("smart.discovery", "R", None),
        ("GET", ["smart", "authorize"]) => c("smart.authorize", "E", None),
        ("POST", ["smart", "authorize"]) => c("smart.approve", "E", None),
        ("POST", ["smart", "token"]) => c("smart.token", "E", None),
        _ => c("http.request", "E", None),
    }
}

/// The routes of issue 19 — what an attacker can leave behind, the cursor-paged audit log and
/// its chain — before the generic FHIR rules (`/fhir/Patient/$export` is no read by id).
fn classify_leftovers(method: &str, segs: &[&str], query: Option<&str>) -> Option<Classified> {
    let c = |kind, action, entity| {
        Some(Classified {
            kind,
            action,
            entity,
        })
    };
    match (method, segs) {
        ("GET", ["v1", "admin", "audit"]) => {
            c("audit.read", "R", entity("AuditEvent", None, query))
        }
        ("GET", ["admin", "system-admins"]) => {
            c("admin.sysadmin.list", "R", entity("User", None, None))
        }
        ("GET", ["admin", "system-admins", "audit", "verify"]) => {
            c("audit.verify", "R", entity("AuditEvent", None, query))
        }
        ("GET", ["tenant-apps", app, "webhooks"]) => {
            c("webhook.list", "R", entity("TenantApp", Some(app), None))
        }
        ("POST", ["tenant-apps", _, "webhooks"]) => {
            c("webhook.create", "C", entity("Webhook", None, None))
        }
        ("GET", ["tenant-apps", _, "webhooks", id]) => {
            c("webhook.read", "R", entity("Webhook", Some(id), None))
        }
        ("PATCH", ["tenant-apps", _, "webhooks", id]) => {
            c("webhook.update", "U", entity("Webhook", Some(id), None))
        }
        ("DELETE", ["tenant-apps", _, "webhooks", id]) => {
            c("webhook.delete", "D", entity("Webhook", Some(id), None))
        }
        ("GET", ["tenant-apps", _, "webhooks", id, "deliveries"]) => {
            c("webhook.deliveries", "R", entity("Webhook", Some(id), None))
        }
        ("POST", ["tenant-apps", _, "webhooks", id, "ping"]) => {
            c("webhook.ping", "E", entity("Webhook", Some(id), None))
        }
        ("GET", ["smart", "apps"]) => c("smartapp.list", "R", entity("SmartApp", None, query)),
        ("POST", ["smart", "apps"]) => c("smartapp.create", "C", entity("SmartApp", None, None)),
        ("GET", ["smart", "apps", id]) => {
            c("smartapp.read", "R", entity("SmartApp", Some(id), None))
        }
        ("PUT", ["smart", "apps", id]) => {
            c("smartapp.update", "U", entity("SmartApp", Some(id), None))
        }
        ("DELETE", ["smart", "apps", id]) => {
            c("smartapp.delete", "D", entity("SmartApp", Some(id), None))
        }
        ("GET", ["organizations", org, "cors-origins"]) => {
            c("cors.read", "R", entity("Organization", Some(org), None))
        }
        ("PUT", ["organizations", org, "cors-origins"]) => {
            c("cors.update", "U", entity("Organization", Some(org), None))
        }
        ("POST", ["auth", "invite"]) => {
            c("invitation.create", "C", entity("Invitation", None, None))
        }
        ("GET", ["auth", "invitations"]) => {
            c("invitation.list", "R", entity("Invitation", None, None))
        }
        ("DELETE", ["auth", "invitations", id]) => c(
            "invitation.delete",
            "D",
            entity("Invitation", Some(id), None),
        ),
        ("GET", ["fhir", "$export"] | ["fhir", "Patient", "$export"]) => {
            c("bulkexport.start", "C", entity("BulkExport", None, query))
        }
        ("GET", ["bulk-export", id]) => c(
            "bulkexport.status",
            "R",
            entity("BulkExport", Some(id), None),
        ),
        ("DELETE", ["bulk-export", id]) => c(
            "bulkexport.cancel",
            "D",
            entity("BulkExport", Some(id), None),
        ),
        _ => None,
    }
}

/// A row's `outcome` for the status the route answered: `error` for 5xx, `failure` for 4xx,
/// `success` otherwise.
pub(crate) fn outcome_of(status: u16) -> &'static str {
    match status {
        500.. => "error",
        400..=499 => "failure",
        _ => "success",
    }
}

/// The filters of `/admin/audit*` (`date` may repeat: `date=ge…&date=lt…`).
#[derive(Debug, Default)]
pub(crate) struct AuditFilter {
    pub(crate) dates: Vec<(Cmp, Timestamp)>,
    pub(crate) agent: Option<String>,
    pub(crate) entity: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) outcome: Option<String>,
}

/// A FHIR date comparison prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

impl AuditFilter {
    /// Parses one `date` value: optional `eq|ge|gt|le|lt` prefix, then an RFC 3339 instant or a
    /// `YYYY-MM-DD` date (midnight UTC; `eq` on a date means that whole day).
    pub(crate) fn push_date(&mut self, value: &str) -> Result<(), String> {
        let (cmp, rest) = match value.get(..2) {
            Some("eq") => (Cmp::Eq, &value[2..]),
            Some("ge") => (Cmp::Ge, &value[2..]),
            Some("gt") => (Cmp::Gt, &value[2..]),
            Some("le") => (Cmp::Le, &value[2..]),
            Some("lt") => (Cmp::Lt, &value[2..]),
            _ => (Cmp::Eq, value),
        };
        if let Ok(ts) = rest.parse::<Timestamp>() {
            self.dates.push((cmp, ts));
            return Ok(());
        }
        let is_date = rest.len() == 10 && rest.parse::<jiff::civil::Date>().is_ok();
        let start: Timestamp = format!("{rest}T00:00:00Z")
            .parse()
            .ok()
            .filter(|_| is_date)
            .ok_or_else(|| {
                format!("date `{value}`: expected [ge|gt|le|lt|eq]YYYY-MM-DD or RFC 3339")
            })?;
        let end = start + jiff::SignedDuration::from_hours(24);
        match cmp {
            Cmp::Eq => {
                self.dates.push((Cmp::Ge, start));
                self.dates.push((Cmp::Lt, end));
            }
            Cmp::Gt | Cmp::Le => self
                .dates
                .push((cmp, end - jiff::SignedDuration::from_nanos(1))),
            _ => self.dates.push((cmp, start)),
        }
        Ok(())
    }

    /// Whether a row passes every filter.
    pub(crate) fn matches(&self, row: &AuditRow) -> bool {
        let dates_ok = self.dates.iter().all(|(cmp, t)| match cmp {
            Cmp::Eq => row.recorded == *t,
            Cmp::Ge => row.recorded >= *t,
            Cmp::Gt => row.recorded > *t,
            Cmp::Le => row.recorded <= *t,
            Cmp::Lt => row.recorded < *t,
        });
        dates_ok
            && self.agent.as_ref().is_none_or(|a| {
                row.agent.user_id.as_deref() == Some(a) || row.agent.email.as_deref() == Some(a)
            })
            && self.entity.as_ref().is_none_or(|e| entity_matches(row, e))
            && self.kind.as_ref().is_none_or(|k| &row.kind == k)
            && self.outcome.as_ref().is_none_or(|o| &row.outcome == o)
    }
}

/// `entity=Patient/p-1`, `entity=p-1` or `entity=Patient`.
fn entity_matches(row: &AuditRow, wanted: &str) -> bool {
    let Some(e) = &row.entity else {
        return false;
    };
    let id = e.resource_id.as_deref();
    match wanted.split_once('/') {
        Some((rt, rid)) => e.resource_type == rt && id == Some(rid),
        None => id == Some(wanted) || e.resource_type == wanted,
    }
}

/// The row as a FHIR R4 AuditEvent, the payload of rest-hook notifications.
pub(crate) fn to_fhir(row: &AuditRow) -> Value {
    let mut agent = json!({
        "type": {"text": "user"},
        "who": {"identifier": {"value": row.agent.user_id}, "display": row.agent.email},
        "requestor": true,
        "network": {"address": row.agent.ip, "type": "2"},
    });
    if !row.agent.roles.is_empty() {
        let roles: Vec<Value> = row.agent.roles.iter().map(|r| json!({"text": r})).collect();
        agent["role"] = json!(roles);
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": row.id,
        "type": {"system": "https://api.esus.health/audit-type", "code": row.kind},
        "action": row.action,
        "recorded": row.recorded.to_string(),
        "outcome": match row.outcome.as_str() { "success" => "0", "error" => "8", _ => "4" },
        "agent": [agent],
        "source": {"site": "esus-sim", "observer": {"display": "esus-sim"}},
    });
    if let Some(desc) = &row.outcome_desc {
        event["outcomeDesc"] = json!(desc);
    }
    if row.agent.emergency_override {
        // HL7 v3 ActReason "ETREAT" (emergency treatment) is how FHIR marks break-glass access.
        event["purposeOfEvent"] = json!([{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"}]}]);
    }
    if let Some(e) = &row.entity {
        let what = match &e.resource_id {
            Some(id) => json!({"reference": format!("{}/{}", e.resource_type, id)}),
            None => json!({"display": e.resource_type}),
        };
        event["entity"] = json!([{"what": what}]);
    }
    event
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn classifies_rotate_with_the_key_as_entity() {
        let c = classify("POST", "/api-keys/k-1001/rotate", None);
        assert_eq!((c.kind, c.action), ("apikey.rotate", "U"));
        assert_eq!(c.entity.unwrap().resource_id.as_deref(), Some("k-1001"));
    }

    #[test]
    fn outcomes_follow_the_status_class() {
        assert_eq!(outcome_of(200), "success");
        assert_eq!(outcome_of(204), "success");
        assert_eq!(outcome_of(403), "failure");
        assert_eq!(outcome_of(500), "error");
        assert_eq!(outcome_of(503), "error");
    }

    #[test]
    fn entities_with_an_id_carry_a_reference() {
        let e = Entity::new("Patient", Some("p-0001"), None);
        assert_eq!(e.reference.as_deref(), Some("Patient/p-0001"));
        assert!(
            Entity::new("Observation", None, Some("patient=p"))
                .reference
                .is_none()
        );
    }

    fn row(id: &str) -> AuditRow {
        AuditRow {
            id: id.into(),
            organization_id: Some("org-0001".into()),
            kind: "resource.read".into(),
            subtype: Some("emergency-override".into()),
            action: "R".into(),
            outcome: "success".into(),
            outcome_desc: None,
            agent: Agent {
                user_id: Some("u-1003".into()),
                email: Some("erin@x".into()),
                ip: "127.0.0.1".into(),
                user_agent: "t".into(),
                roles: vec!["emergency-responder".into()],
                emergency_override: true,
            },
            source: None,
            entity: Some(Entity::new("Patient", Some("p-0002"), None)),
            recorded: Timestamp::from_second(1_700_000_000).unwrap(),
            request_id: Some("r-1".into()),
        }
    }

    #[test]
    fn docs_only_fields_are_served_on_even_rows_only() {
        let even = serde_json::to_value(row("a-000002")).unwrap();
        assert_eq!(even["agent"]["roles"], json!(["emergency-responder"]));
        assert_eq!(even["agent"]["emergencyOverride"], true);
        assert_eq!(even["entity"]["reference"], "Patient/p-0002");
        let odd = serde_json::to_value(row("a-000003")).unwrap();
        assert!(odd["agent"].get("roles").is_none(), "{odd}");
        assert!(odd["agent"].get("emergencyOverride").is_none(), "{odd}");
        assert!(odd["entity"].get("reference").is_none(), "{odd}");
        for v in [&even, &odd] {
            assert_eq!(v["subtype"], "emergency-override");
            assert_eq!(v["entity"]["resourceId"], "p-0002");
            assert_eq!(v["agent"]["userId"], "u-1003");
            assert!(v.get("requestId").is_none() && v.get("source").is_none());
            assert_eq!(v["recorded"], "2023-11-14T22:13:20Z");
        }
    }

    #[test]
    fn date_prefixes_parse() {
        let mut f = AuditFilter::default();
        f.push_date("ge2026-01-01").unwrap();
        f.push_date("lt2026-01-02T00:00:00Z").unwrap();
        assert_eq!(f.dates.len(), 2);
        assert!(f.push_date("yesterday").is_err());
    }
}
