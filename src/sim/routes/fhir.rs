//! FHIR PHI and discovery: Consent search/read/update/patch (ESUS's own Consent body), Patient
//! read by id (gated by a Consent in force unless an emergency responder sends
//! `X-Emergency-Override: true`, which the audit layer always marks), Observation search (not
//! gated: a search), and `/.well-known/smart-configuration`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::super::caller::{Authed, Caller, Via};
use super::super::outcome::ApiError;
use super::super::shared::Shared;
use super::super::state::Consent;
use super::{AppState, Body, bundle};

const CONSENT_STATUSES: [&str; 6] = [
    "draft",
    "proposed",
    "active",
    "rejected",
    "inactive",
    "entered-in-error",
];

fn consent_json(c: &Consent) -> Value {
    let mut provision = serde_json::Map::new();
    if let Some(t) = &c.provision_type {
        provision.insert("type".into(), json!(t));
    }
    let mut period = serde_json::Map::new();
    if let Some(start) = c.period_start {
        period.insert("start".into(), json!(start));
    }
    if let Some(end) = c.period_end {
        period.insert("end".into(), json!(end));
    }
    if !period.is_empty() {
        provision.insert("period".into(), Value::Object(period));
    }
    for (k, v) in &c.provision_extra {
        provision.insert(k.clone(), v.clone());
    }
    let mut out = json!({
        "resourceType": "Consent",
        "id": c.id,
        "meta": {"versionId": c.version.to_string(), "lastUpdated": c.last_updated},
        "status": c.status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": c.scope}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{}", c.patient_id)},
        "dateTime": c.date_time,
    });
    if let Some(p) = &c.performer_id {
        out["performer"] = json!([{"reference": format!("Practitioner/{p}")}]);
    }
    if let Some(policy) = &c.policy {
        out["policy"] = policy.clone();
    }
    if !provision.is_empty() {
        out["provision"] = Value::Object(provision);
    }
    out
}

/// ESUS's Consent body (putFhirConsentById / patchFhirConsentById), validated: every field
/// optional, nothing outside the schema.
#[derive(Debug, Default)]
struct ConsentBody {
    status: Option<String>,
    scope: Option<String>,
    performer_id: Option<String>,
    policy: Option<Value>,
    provision: Option<ProvisionBody>,
}

#[derive(Debug, Default)]
struct ProvisionBody {
    kind: Option<String>,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    /// `actor`, `action`, `purpose` as given.
    extra: serde_json::Map<String, Value>,
}

/// A body field outside ESUS's schema, or of the wrong type: 400 naming it.
fn field_error(path: &str, what: &str) -> ApiError {
    ApiError::invalid(format!("{path}: {what}"))
}

fn object<'a>(
    v: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    let map = v
        .as_object()
        .ok_or_else(|| field_error(path, "must be an object"))?;
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let at = if path.is_empty() {
            format!("`{k}`")
        } else {
            format!("`{path}.{k}`")
        };
        return Err(ApiError::invalid(format!(
            "unknown field {at}: ESUS's Consent body takes only {}",
            allowed.join(", ")
        )));
    }
    Ok(map)
}

fn string(v: &Value, path: &str) -> Result<String, ApiError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| field_error(path, "must be a string"))
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    v.as_array()
        .ok_or_else(|| field_error(path, "must be an array"))
}

fn strings_only(map: &serde_json::Map<String, Value>, path: &str) -> Result<(), ApiError> {
    for (k, v) in map {
        string(v, &format!("{path}.{k}"))?;
    }
    Ok(())
}

/// A CodeableConcept: `{coding?: [{system?, code?, display?}], text?}`.
fn codeable(v: &Value, path: &str) -> Result<(), ApiError> {
    let map = object(v, path, &["coding", "text"])?;
    if let Some(t) = map.get("text") {
        string(t, &format!("{path}.text"))?;
    }
    if let Some(c) = map.get("coding") {
        for (i, coding) in array(c, &format!("{path}.coding"))?.iter().enumerate() {
            let p = format!("{path}.coding[{i}]");
            strings_only(object(coding, &p, &["system", "code", "display"])?, &p)?;
        }
    }
    Ok(())
}

fn instant(v: &Value, path: &str) -> Result<Timestamp, ApiError> {
    let text = string(v, path)?;
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    Some(&text)
        .filter(|t| t.len() == 10 && t.parse::<jiff::civil::Date>().is_ok())
        .and_then(|t| format!("{t}T00:00:00Z").parse::<Timestamp>().ok())
        .ok_or_else(|| field_error(path, "must be an RFC 3339 instant or YYYY-MM-DD"))
}

fn parse_consent_body(v: &Value) -> Result<ConsentBody, ApiError> {
    let top = object(
        v,
        "",
        &["status", "scope", "performerId", "policy", "provision"],
    )
    .map_err(|e| match v.is_object() {
        true => e,
        false => ApiError::invalid("the body must be a JSON object"),
    })?;
    let mut out = ConsentBody::default();
    if let Some(s) = top.get("status") {
        let s = string(s, "status")?;
        if !CONSENT_STATUSES.contains(&s.as_str()) {
            return Err(field_error(
                "status",
                &format!("must be one of {}", CONSENT_STATUSES.join(", ")),
            ));
        }
        out.status = Some(s);
    }
    if let Some(s) = top.get("scope") {
        out.scope = Some(string(s, "scope")?);
    }
    if let Some(p) = top.get("performerId") {
        out.performer_id = Some(string(p, "performerId")?);
    }
    if let Some(p) = top.get("policy") {
        for (i, item) in array(p, "policy")?.iter().enumerate() {
            let path = format!("policy[{i}]");
            strings_only(object(item, &path, &["authority", "uri"])?, &path)?;
        }
        out.policy = Some(p.clone());
    }
    if let Some(p) = top.get("provision") {
        let map = object(
            p,
            "provision",
            &["type", "actor", "action", "purpose", "period"],
        )?;
        let mut prov = ProvisionBody::default();
        if let Some(t) = map.get("type") {
            let t = string(t, "provision.type")?;
            if t != "permit" && t != "deny" {
                return Err(field_error("provision.type", "must be permit or deny"));
            }
            prov.kind = Some(t);
        }
        if let Some(period) = map.get("period") {
            let pm = object(period, "provision.period", &["start", "end"])?;
            if let Some(s) = pm.get("start") {
                prov.start = Some(instant(s, "provision.period.start")?);
            }
            if let Some(e) = pm.get("end") {
                prov.end = Some(instant(e, "provision.period.end")?);
            }
        }
        if let Some(actors) = map.get("actor") {
            for (i, a) in array(actors, "provision.actor")?.iter().enumerate() {
                let path = format!("provision.actor[{i}]");
                let am = object(a, &path, &["role", "reference"])?;
                if let Some(r) = am.get("role") {
                    codeable(r, &format!("{path}.role"))?;
                }
                if let Some(r) = am.get("reference") {
                    let rp = format!("{path}.reference");
                    strings_only(object(r, &rp, &["reference", "type", "display"])?, &rp)?;
                }
            }
            prov.extra.insert("actor".into(), actors.clone());
        }
        for name in ["action", "purpose"] {
            if let Some(list) = map.get(name) {
                let path = format!("provision.{name}");
                for (i, c) in array(list, &path)?.iter().enumerate() {
                    codeable(c, &format!("{path}[{i}]"))?;
                }
                prov.extra.insert(name.into(), list.clone());
            }
        }
        out.provision = Some(prov);
    }
    Ok(out)
}

/// `GET /fhir/Consent` (OpenAPI getFhirConsent) → every Consent, in id order. The operation
/// declares **no query parameters** (`query?: never`), so none is honoured: `patient`, `status`,
/// `date` and anything else are ignored, not even validated (simulator assumption, the hardest
/// reading — a client that relies on a filter gets unfiltered results and must select itself).
pub(crate) async fn search_consents(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Consent", "read")?;
    let st = shared.lock();
    let found = st.consents.values().map(consent_json).collect();
    Ok(Json(bundle("Consent", found)))
}

/// `GET /fhir/Consent/{id}` (OpenAPI getFhirConsentById).
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

/// How a body applies to a stored Consent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Apply {
    /// PUT: the body replaces the Consent's content. `status` and `scope` keep their values
    /// when absent; `performerId`, `policy` and `provision` (period included) are cleared when
    /// absent (simulator assumption).
    Replace,
    /// PATCH: only the fields given change; `provision` and `provision.period` are merged.
    Merge,
}

fn apply(c: &mut Consent, body: ConsentBody, how: Apply) {
    if let Some(s) = body.status {
        c.status = s;
    }
    if let Some(s) = body.scope {
        c.scope = s;
    }
    match how {
        Apply::Replace => {
            c.performer_id = body.performer_id;
            c.policy = body.policy;
            let p = body.provision.unwrap_or_default();
            c.provision_type = p.kind;
            c.period_start = p.start;
            c.period_end = p.end;
            c.provision_extra = p.extra;
        }
        Apply::Merge => {
            if body.performer_id.is_some() {
                c.performer_id = body.performer_id;
            }
            if body.policy.is_some() {
                c.policy = body.policy;
            }
            if let Some(p) = body.provision {
                if p.kind.is_some() {
                    c.provision_type = p.kind;
                }
                if p.start.is_some() {
                    c.period_start = p.start;
                }
                if p.end.is_some() {
                    c.period_end = p.end;
                }
                c.provision_extra.extend(p.extra);
            }
        }
    }
}

async fn change_consent(
    shared: &Shared,
    caller: &Caller,
    id: &str,
    body: &Value,
    how: Apply,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Consent", "write")?;
    let body = parse_consent_body(body)?;
    let now = shared.clock.now();
    let mut st = shared.lock();
    let c = st
        .consents
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("Consent/{id} not found")))?;
    apply(c, body, how);
    c.version += 1;
    c.last_updated = now;
    Ok(Json(consent_json(c)))
}

/// `PUT /fhir/Consent/{id}` (OpenAPI putFhirConsentById) with ESUS's own body
/// `{status?, scope?, performerId?, policy?, provision?}` → 200 the FHIR Consent. A body with
/// any other field — `resourceType`, `id`, `meta`, `patient`, `patientId`… as in the FHIR
/// resource a GET returns — is 400 naming the field (simulator assumption).
pub(crate) async fn put_consent(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    change_consent(&shared, &caller, &id, &body, Apply::Replace).await
}

/// `PATCH /fhir/Consent/{id}` (OpenAPI patchFhirConsentById): the same fields, merged; expiring
/// a Consent is `{"status": "inactive"}`.
pub(crate) async fn patch_consent(
    State(shared): AppState,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    change_consent(&shared, &caller, &id, &body, Apply::Merge).await
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

/// `GET /fhir/Patient/{id}` (OpenAPI getFhirPatientById; needs `Patient.read`), gated by
/// Consent.
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

/// `GET /fhir/Observation` (OpenAPI getFhirObservation; needs `Observation.read`): two generated
/// vital signs **for every patient**. The operation declares no query parameters, so `patient`
/// (and anything else) is ignored (simulator assumption, as for Consent). A search: **not** gated
/// by Consent (ESUS gates "specific ID reads/updates/deletes").
pub(crate) async fn search_observations(
    State(shared): AppState,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    caller.require_permission("Observation", "read")?;
    let patients: Vec<String> = shared.lock().patients.keys().cloned().collect();
    let vitals = [
        ("8867-4", "Heart rate", 72, "/min"),
        ("8310-5", "Body temperature", 37, "Cel"),
    ];
    let obs = patients
        .iter()
        .flat_map(|patient| {
            vitals
                .iter()
                .enumerate()
                .map(move |(i, (code, text, value, unit))| {
                    json!({
                        "resourceType": "Observation", "id": format!("obs-{patient}-{i}"),
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": text},
                        "subject": {"reference": format!("Patient/{patient}")},
                        "valueQuantity": {"value": value, "unit": unit},
                    })
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
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "private_key_jwt"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "scopes_supported": ["openid", "fhirUser", "launch", "online_access", "offline_access",
            "patient/Patient.read", "patient/Observation.read", "user/*.read", "user/*.write",
            "system/*.read"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["launch-ehr", "launch-standalone", "client-public",
            "client-confidential-symmetric", "context-ehr-patient", "sso-openid-connect",
            "permission-patient", "permission-user"],
    }))
}
