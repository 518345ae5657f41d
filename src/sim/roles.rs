//! The six built-in ESUS roles and what each may do. The permission lists are a simulator
//! assumption (ESUS documents the role names only); `admin` may do everything.

use serde_json::{Value, json};

/// (id, name, description, permissions as `Resource.action`).
const ROLES: &[(&str, &str, &str, &[&str])] = &[
    (
        "admin",
        "Administrator",
        "Full administrative access",
        &["*.*"],
    ),
    (
        "practitioner",
        "Practitioner",
        "Clinical access to consented patients",
        &[
            "Patient.read",
            "Observation.read",
            "Consent.read",
            "Consent.write",
        ],
    ),
    (
        "patient",
        "Patient",
        "Access to one's own record",
        &["Patient.read", "Observation.read"],
    ),
    (
        "researcher",
        "Researcher",
        "De-identified observations",
        &["Observation.read"],
    ),
    (
        "api-client",
        "API client",
        "Integration access",
        &["Patient.read", "Observation.read"],
    ),
    (
        "emergency-responder",
        "Emergency responder",
        "May override consent with X-Emergency-Override (always audited)",
        &["Patient.read", "Observation.read", "Emergency.override"],
    ),
];

/// Whether a role id exists.
pub(crate) fn exists(role: &str) -> bool {
    ROLES.iter().any(|(id, ..)| *id == role)
}

/// Whether a role grants `resource.action`.
pub(crate) fn role_allows(role: &str, resource: &str, action: &str) -> bool {
    ROLES
        .iter()
        .filter(|(id, ..)| *id == role)
        .flat_map(|(.., perms)| perms.iter())
        .any(|p| {
            let (r, a) = p.split_once('.').unwrap_or((p, ""));
            (r == "*" || r == resource) && (a == "*" || a == action)
        })
}

/// Every permission a set of roles grants, for `/auth/me`.
pub(crate) fn permissions_of(roles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = ROLES
        .iter()
        .filter(|(id, ..)| roles.iter().any(|r| r == id))
        .flat_map(|(.., perms)| perms.iter().map(|p| (*p).to_owned()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `GET /roles`: a bare array.
pub(crate) fn list() -> Value {
    let roles: Vec<Value> = ROLES
        .iter()
        .map(|(id, name, desc, perms)| {
            let perms: Vec<Value> = perms
                .iter()
                .map(|p| {
                    let (r, a) = p.split_once('.').unwrap_or((p, ""));
                    json!({"id": format!("perm-{id}-{}", p.replace('*', "all")), "resource": r, "action": a})
                })
                .collect();
            json!({"id": id, "name": name, "description": desc, "isSystem": true, "permissions": perms})
        })
        .collect();
    Value::Array(roles)
}
