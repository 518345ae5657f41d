//! FHIR PHI and discovery: Consent search/read/update, Patient read and Observation search
//! (gated by an active Consent unless an emergency responder sends `X-Emergency-Override: true`,
//! which the audit layer always marks), and `/.well-known/smart-configuration`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::super::audit::{AuditFilter, Cmp};
use super::super::caller::{Authed, Caller, Via};
use super::super::outcome::ApiError;
use super::super::shared::Shared;
use super::super::state::Consent;
use super::{AppState, Body, bundle, query_pairs};

const CONSENT_STATUSES: [&str; 6] = [
    "draft",
    "proposed",
    "active",
    "rejected",
    "inactive",
    "entered-in-error",
];

fn consent_json(c: &Consent) -> Value {
    let mut period = json!({"start": c.period_start});
    if let Some(end) = c.period_end {
        period["end"] = json!(end);
    }
    json!({
        "resourceType": "Consent",
        "id": c.id,
        "meta": {"versionId": c.version.to_string(), "lastUpdated": c.last_updated},
        "status": c.status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{}", c.patient_id)},
        "dateTime": c.date_time,
        "provision": {"type": "permit", "period": period},
    })
}

fn date_ok(filter: &AuditFilter, t: Timestamp) -> bool {
    filter.dates.iter().all(|(cmp, d)| match cmp {
        Cmp::Eq => t == *d,
        Cmp::Ge => t >= *d,
        Cmp::Gt => t > *d,
        Cmp::Le => t <= *d,
        Cmp::Lt => t < *d,
    })
}

/// `GET /fhir/Consent?patient=&status=&date=` (`date` compares `dateTime`, with FHIR prefixes).
pub(crate) async fn search_consents(
    State(shared): AppState,
    Authed(caller): Authed,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Consent", "read")?;
    let (mut patient, mut status, mut dates) = (None, None, AuditFilter::default());
    for (k, v) in query_pairs(&uri)? {
        match k.as_str() {
            "patient" => patient = Some(v.trim_start_matches("Patient/").to_owned()),
            "status" => status = Some(v),
            "date" => dates.push_date(&v).map_err(ApiError::invalid)?,
            _ => {}
        }
    }
    let st = shared.lock();
    let found = st
        .consents
        .values()
        .filter(|c| patient.as_ref().is_none_or(|p| &c.patient_id == p))
        .filter(|c| status.as_ref().is_none_or(|s| &c.status == s))
        .filter(|c| date_ok(&dates, c.date_time))
        .map(consent_json)
        .collect();
    Ok(Json(bundle("Consent", found)))
}

/// `GET /fhir/Consent/{id}`.
pub(crate) async fn get_consent(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Consent", "read")?;
    let st = shared.lock();
    let c = st
        .consents
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("Consent/{id} not found")))?;
    Ok(Json(consent_json(c)))
}

/// `PUT /fhir/Consent/{id}`: updates `status` and `provision.period.end` (how a stale consent is
/// expired); the patient cannot change (409).
pub(crate) async fn update_consent(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(resource): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Consent", "write")?;
    if resource["resourceType"] != "Consent" {
        return Err(ApiError::invalid("resourceType must be Consent"));
    }
    if resource["id"].as_str().is_some_and(|rid| rid != id) {
        return Err(ApiError::invalid("resource id does not match the URL"));
    }
    let status = resource["status"]
        .as_str()
        .filter(|s| CONSENT_STATUSES.contains(s))
        .ok_or_else(|| ApiError::invalid("status must be a FHIR Consent status"))?;
    let end = match &resource["provision"]["period"]["end"] {
        Value::Null => None,
        v => Some(
            v.as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("provision.period.end must be an RFC 3339 instant")
                })?,
        ),
    };
    let now = shared.clock.now();
    let mut st = shared.lock();
    let c = st
        .consents
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("Consent/{id} not found")))?;
    if let Some(r) = resource["patient"]["reference"].as_str()
        && r != format!("Patient/{}", c.patient_id)
    {
        return Err(ApiError::conflict("a Consent's patient cannot change"));
    }
    c.status = status.to_owned();
    c.period_end = end;
    c.version += 1;
    c.last_updated = now;
    Ok(Json(consent_json(c)))
}

/// Consent gate for PHI: an active Consent in force, or an emergency override by an emergency
/// responder (a user session; API keys cannot override).
fn gate(
    shared: &Shared,
    caller: &Caller,
    headers: &HeaderMap,
    patient: &str,
) -> Result<(), ApiError> {
    let wants_override = headers
        .get("x-emergency-override")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if wants_override {
        return match caller.via {
            Via::Session { .. } if caller.has_role("emergency-responder") => Ok(()),
            _ => Err(ApiError::forbidden(
                "X-Emergency-Override is allowed for the emergency-responder role only",
            )),
        };
    }
    let now = shared.clock.now();
    let st = shared.lock();
    if st
        .consents
        .values()
        .any(|c| c.patient_id == patient && c.in_force(now))
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "no active Consent for Patient/{patient}"
        )))
    }
}

/// `GET /fhir/Patient/{id}` (needs `Patient.read`).
pub(crate) async fn read_patient(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Patient", "read")?;
    let patient = shared.lock().patients.get(&id).cloned();
    let p = patient.ok_or_else(|| ApiError::not_found(format!("Patient/{id} not found")))?;
    gate(&shared, &caller, &headers, &id)?;
    Ok(Json(json!({
        "resourceType": "Patient",
        "id": p.id,
        "name": [{"family": p.family, "given": [p.given]}],
        "birthDate": p.birth_date,
    })))
}

/// `GET /fhir/Observation?patient=ID` (needs `Observation.read`): two generated vital signs.
pub(crate) async fn search_observations(
    State(shared): AppState,
    Authed(caller): Authed,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Observation", "read")?;
    let patient = query_pairs(&uri)?
        .into_iter()
        .find(|(k, _)| k == "patient")
        .map(|(_, v)| v.trim_start_matches("Patient/").to_owned())
        .ok_or_else(|| ApiError::invalid("the patient parameter is required"))?;
    if !shared.lock().patients.contains_key(&patient) {
        return Err(ApiError::not_found(format!("Patient/{patient} not found")));
    }
    gate(&shared, &caller, &headers, &patient)?;
    let obs = [
        ("8867-4", "Heart rate", 72, "/min"),
        ("8310-5", "Body temperature", 37, "Cel"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (code, text, value, unit))| {
        json!({
            "resourceType": "Observation", "id": format!("obs-{patient}-{i}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": text},
            "subject": {"reference": format!("Patient/{patient}")},
            "valueQuantity": {"value": value, "unit": unit},
        })
    })
    .collect();
    Ok(Json(bundle("Observation", obs)))
}

/// `GET /.well-known/smart-configuration` (no authentication).
pub(crate) async fn smart_configuration(State(shared): AppState) -> Json<Value> {
    let base = &shared.base_url;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/smart/authorize"),
        "token_endpoint": format!("{base}/smart/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "scopes_supported": ["openid", "fhirUser", "launch", "offline_access",
            "patient/Patient.read", "patient/Observation.read", "user/*.read", "system/*.read"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["launch-ehr", "launch-standalone", "client-public",
            "client-confidential-symmetric", "context-ehr-patient", "sso-openid-connect",
            "permission-patient", "permission-user"],
    }))
}
