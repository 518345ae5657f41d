//! `/admin/audit*` (admin; OpenAPI getAdminAudit, getAdminAuditUserByUserId,
//! getAdminAuditPatientByPatientId): filters and offset paging over the audit rows. Order and
//! page size are undocumented, so the simulator takes the adversarial reading (simulator
//! assumptions): **newest first**, so rows appended during a pull shift every later page, and
//! pages of at most [`MAX_COUNT`] rows whatever `_count` asks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::super::audit::AuditFilter;
use super::super::caller::Authed;
use super::super::outcome::ApiError;
use super::super::shared::Shared;
use super::{AppState, query_pairs};

/// Page size without `_count`.
const DEFAULT_COUNT: usize = 50;
/// Largest page; larger `_count` values are clamped (simulator assumption).
pub(crate) const MAX_COUNT: usize = 50;

/// Which rows a route looks at before filtering.
enum Scope<'a> {
    All,
    User(&'a str),
    Patient(&'a str),
}

struct Paging {
    count: usize,
    offset: usize,
}

fn parse(uri: &Uri) -> Result<(AuditFilter, Paging), ApiError> {
    let mut f = AuditFilter::default();
    let mut p = Paging {
        count: DEFAULT_COUNT,
        offset: 0,
    };
    let number = |name: &str, v: &str| {
        v.parse::<usize>()
            .map_err(|_| ApiError::invalid(format!("{name} must be a non-negative integer")))
    };
    for (k, v) in query_pairs(uri)? {
        match k.as_str() {
            "_count" => p.count = number("_count", &v)?.min(MAX_COUNT),
            "_offset" => p.offset = number("_offset", &v)?,
            "date" => f.push_date(&v).map_err(ApiError::invalid)?,
            "agent" => f.agent = Some(v),
            "entity" => f.entity = Some(v),
            "type" => f.kind = Some(v),
            "outcome" => {
                if !["success", "failure", "error"].contains(&v.as_str()) {
                    return Err(ApiError::invalid(
                        "outcome must be success, failure or error",
                    ));
                }
                f.outcome = Some(v);
            }
            _ => {}
        }
    }
    Ok((f, p))
}

fn page(shared: &Shared, scope: Scope<'_>, uri: &Uri) -> Result<Json<Value>, ApiError> {
    let (filter, paging) = parse(uri)?;
    let st = shared.lock();
    // Newest first: the indexes are in append order, so walk them backwards.
    let indices: Box<dyn Iterator<Item = usize>> = match scope {
        Scope::All => Box::new((0..st.audit.len()).rev()),
        Scope::User(id) => Box::new(
            st.audit_by_user
                .get(id)
                .into_iter()
                .flat_map(|v| v.iter().rev())
                .copied(),
        ),
        Scope::Patient(id) => Box::new(
            st.audit_by_patient
                .get(id)
                .into_iter()
                .flat_map(|v| v.iter().rev())
                .copied(),
        ),
    };
    let mut total = 0usize;
    let mut rows = Vec::new();
    for row in indices
        .filter_map(|i| st.audit.get(i))
        .filter(|r| filter.matches(r))
    {
        if total >= paging.offset && rows.len() < paging.count {
            rows.push(row.clone());
        }
        total += 1;
    }
    Ok(Json(json!({"rows": rows, "total": total})))
}

/// `GET /admin/audit`.
pub(crate) async fn all(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    page(&shared, Scope::All, &uri)
}

/// `GET /admin/audit/user/{userId}` (an unknown user has no rows: 200 with `total: 0`).
pub(crate) async fn of_user(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    page(&shared, Scope::User(&id), &uri)
}

/// `GET /admin/audit/patient/{patientId}`: rows whose entity is that Patient.
pub(crate) async fn of_patient(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    page(&shared, Scope::Patient(&id), &uri)
}
