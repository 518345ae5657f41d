//! `GET /v1/admin/audit/` (admin; OpenAPI getV1AdminAudit): the same audit rows as
//! `/admin/audit*`, cursor-paged. Rows keep arriving during an incident (every audit read is
//! itself audited), so a cursor names a position in the log, not an offset: the next page starts
//! right after the last row served, and rows appended meanwhile can neither shift nor repeat a
//! page. Order, page size, cursor form and the `after`/`before` bounds are undocumented; the
//! simulator's choices (docs/esus-api.md) are the hard ones: newest first, so rows recorded
//! during a pull are on no page of it; a cursor tied to its filters; a full last page still
//! hands out a cursor, whose page is then empty.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::super::audit::AuditRow;
use super::super::caller::Authed;
use super::super::ids::audit_event_id;
use super::super::outcome::ApiError;
use super::super::state::State as SimState;
use super::{AppState, limit_param, query_pairs};

/// Page size without `limit`.
const DEFAULT_LIMIT: usize = 50;
/// Largest page; a larger `limit` is clamped silently (simulator assumption).
pub(crate) const MAX_LIMIT: usize = 100;

/// The published `type` values: a category of rows, not a row's `type` (simulator assumption
/// for how rows map to them).
const CATEGORIES: [&str; 3] = ["auth", "rest", "system"];

/// The category of a row's `type`: `auth.*` rows are `auth`, `system.*` rows `system`, every
/// other row `rest`.
pub(crate) fn category(kind: &str) -> &'static str {
    if kind.starts_with("auth.") {
        "auth"
    } else if kind.starts_with("system.") {
        "system"
    } else {
        "rest"
    }
}

/// The filters of one pull; the cursor is valid only with the same ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) category: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) resource_type: Option<String>,
    pub(crate) resource_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) after: Option<Timestamp>,
    pub(crate) before: Option<Timestamp>,
}

impl Filter {
    fn matches(&self, row: &AuditRow) -> bool {
        let entity = row.entity.as_ref();
        let eq = |want: &Option<String>, have: Option<&String>| {
            want.as_ref().is_none_or(|w| have == Some(w))
        };
        self.category
            .as_deref()
            .is_none_or(|c| category(&row.kind) == c)
            && eq(&self.action, Some(&row.action))
            && eq(&self.resource_type, entity.map(|e| &e.resource_type))
            && eq(
                &self.resource_id,
                entity.and_then(|e| e.resource_id.as_ref()),
            )
            && eq(&self.user_id, row.agent.user_id.as_ref())
            && self.after.is_none_or(|t| row.recorded > t)
            && self.before.is_none_or(|t| row.recorded < t)
    }

    /// A digest of the filters, carried in the cursor.
    fn fingerprint(&self) -> String {
        let text = format!("{self:?}");
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

/// One parsed request.
pub(crate) struct Pull {
    pub(crate) filter: Filter,
    /// Serve rows before this position in the log (exclusive).
    end: Option<usize>,
    limit: usize,
}

fn enum_value(name: &str, value: String, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be one of {}",
            allowed.join(", ")
        )))
    }
}

fn instant(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid(format!("{name} must be an RFC 3339 instant")))
}

/// Reads the query (parameters the OpenAPI does not declare are ignored).
pub(crate) fn parse(uri: &Uri) -> Result<Pull, ApiError> {
    let mut f = Filter::default();
    let (mut cursor, mut limit) = (None, DEFAULT_LIMIT);
    for (k, v) in query_pairs(uri)? {
        match k.as_str() {
            "type" => f.category = Some(enum_value("type", v, &CATEGORIES)?),
            "action" => f.action = Some(enum_value("action", v, &["C", "R", "U", "D", "E"])?),
            "resourceType" => f.resource_type = Some(v),
            "resourceId" => f.resource_id = Some(v),
            "userId" => f.user_id = Some(v),
            "after" => f.after = Some(instant("after", &v)?),
            "before" => f.before = Some(instant("before", &v)?),
            "cursor" => cursor = Some(v),
            "limit" => limit = limit_param(&v, MAX_LIMIT)?,
            _ => {}
        }
    }
    let end = cursor.map(|c| decode(&c, &f.fingerprint())).transpose()?;
    Ok(Pull {
        filter: f,
        end,
        limit,
    })
}

fn encode(position: usize, fingerprint: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1.{position}.{fingerprint}"))
}

fn decode(cursor: &str, fingerprint: &str) -> Result<usize, ApiError> {
    let invalid = || ApiError::invalid("cursor is not valid for this query");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('.');
    let (Some("v1"), Some(pos), Some(fp), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if fp != fingerprint {
        return Err(invalid());
    }
    pos.parse().map_err(|_| invalid())
}

/// The positions to look at, newest first, below `end`: through an index when the filter names
/// a user or a patient, otherwise the whole log.
fn candidates<'a>(
    st: &'a SimState,
    f: &Filter,
    end: usize,
) -> Box<dyn Iterator<Item = usize> + 'a> {
    let index = match (&f.user_id, f.resource_type.as_deref(), &f.resource_id) {
        (Some(u), _, _) => Some(st.audit_by_user.get(u)),
        (None, Some("Patient"), Some(p)) => Some(st.audit_by_patient.get(p)),
        _ => None,
    };
    match index {
        Some(list) => Box::new(
            list.into_iter()
                .flat_map(|v| v.iter().rev())
                .copied()
                .filter(move |&i| i < end),
        ),
        None => Box::new((0..end).rev()),
    }
}

/// One page and the cursor after it.
pub(crate) fn page(st: &SimState, pull: &Pull) -> (Vec<Value>, Option<String>) {
    let end = pull.end.unwrap_or(st.audit.len()).min(st.audit.len());
    let mut events = Vec::new();
    let mut last = None;
    for i in candidates(st, &pull.filter, end) {
        let Some(row) = st.audit.get(i).filter(|r| pull.filter.matches(r)) else {
            continue;
        };
        events.push(event_json(row));
        last = Some(i);
        if events.len() == pull.limit {
            break;
        }
    }
    let next = last
        .filter(|_| events.len() == pull.limit)
        .map(|i| encode(i, &pull.filter.fingerprint()));
    (events, next)
}

/// A row as getV1AdminAudit publishes it: its id a UUID, nullable fields present as `null`,
/// none of the fields only ESUS's audit docs show.
pub(crate) fn event_json(row: &AuditRow) -> Value {
    let mut agent = Map::new();
    if let Some(id) = &row.agent.user_id {
        agent.insert("userId".into(), json!(id));
    }
    if let Some(email) = &row.agent.email {
        agent.insert("email".into(), json!(email));
    }
    agent.insert("ip".into(), json!(row.agent.ip));
    agent.insert("userAgent".into(), json!(row.agent.user_agent));
    let entity = row.entity.as_ref().map(|e| {
        let mut m = Map::new();
        m.insert("resourceType".into(), json!(e.resource_type));
        if let Some(id) = &e.resource_id {
            m.insert("resourceId".into(), json!(id));
        }
        if let Some(q) = &e.query {
            m.insert("query".into(), json!(q));
        }
        Value::Object(m)
    });
    json!({
        "id": audit_event_id(&row.id), "type": row.kind, "subtype": row.subtype,
        "action": row.action, "outcome": row.outcome, "outcomeDesc": row.outcome_desc,
        "agent": agent, "entity": entity, "recordedAt": row.recorded,
    })
}

/// `GET /v1/admin/audit/` → `{"events": [...], "nextCursor": "…" | null}`.
pub(crate) async fn list(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let pull = parse(&uri)?;
    let (events, next) = page(&shared.lock(), &pull);
    Ok(Json(json!({"events": events, "nextCursor": next})))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_only_with_their_filters() {
        let f = Filter {
            user_id: Some("u-1".into()),
            ..Filter::default()
        };
        let c = encode(41, &f.fingerprint());
        assert_eq!(decode(&c, &f.fingerprint()).unwrap(), 41);
        assert!(decode(&c, &Filter::default().fingerprint()).is_err());
        assert!(decode("not-a-cursor", &f.fingerprint()).is_err());
    }

    #[test]
    fn categories_follow_the_row_type() {
        assert_eq!(category("auth.login"), "auth");
        assert_eq!(category("resource.read"), "rest");
        assert_eq!(category("system.retention"), "system");
    }
}
