//! The six built-in ESUS roles and what each may do. `name` is the slug and `id` a UUID
//! (OpenAPI getRoles); the ids are fixed constants — UUIDv5 (URL namespace) of
//! `urn:esus-sim:role:<slug>` — so they are the same at every start. The permission lists are a
//! simulator assumption (ESUS documents the role names only); `admin` may do everything.

use serde_json::{Value, json};

/// (slug, UUID, description, permissions as `Resource.action`).
const ROLES: &[(&str, &str, &str, &[&str])] = &[
    (
        "admin",
        "ab7fdf23-5b53-55a7-bdbe-c23a17110ab5",
        "Full administrative access",
        &["*.*"],
    ),
    (
        "practitioner",
        "93b367c4-bd08-53f6-b2ea-d469e35db3e2",
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
        "c5538f1a-de0d-59c1-ac59-a296a72c993b",
        "Access to one's own record",
        &["Patient.read", "Observation.read"],
    ),
    (
        "researcher",
        "483fd897-c2fb-55e5-b47f-a92d9c509a0c",
        "De-identified observations",
        &["Observation.read"],
    ),
    (
        "api-client",
        "2f5d0972-d8b9-5458-861d-18a24dc00f5d",
        "Integration access",
        &["Patient.read", "Observation.read"],
    ),
    (
        "emergency-responder",
        "0dbfded5-52b2-576d-95ed-7be3c0721367",
        "May override consent with X-Emergency-Override (always audited)",
        &["Patient.read", "Observation.read", "Emergency.override"],
    ),
];

/// Whether a role slug exists.
pub(crate) fn exists(role: &str) -> bool {
    ROLES.iter().any(|(slug, ..)| *slug == role)
}

/// The UUID of a built-in role, by slug: what `roleId` must be in the role routes.
pub fn role_id(slug: &str) -> Option<&'static str> {
    ROLES
        .iter()
        .find(|(s, ..)| *s == slug)
        .map(|(_, id, ..)| *id)
}

/// The slug of a built-in role, by UUID (a slug is not a UUID: `None`).
pub(crate) fn slug_of(id: &str) -> Option<&'static str> {
    ROLES
        .iter()
        .find(|(_, uuid, ..)| uuid.eq_ignore_ascii_case(id))
        .map(|(slug, ..)| *slug)
}

/// Whether a role grants `resource.action`.
pub(crate) fn role_allows(role: &str, resource: &str, action: &str) -> bool {
    ROLES
        .iter()
        .filter(|(slug, ..)| *slug == role)
        .flat_map(|(.., perms)| perms.iter())
        .any(|p| {
            let (r, a) = p.split_once('.').unwrap_or((p, ""));
            (r == "*" || r == resource) && (a == "*" || a == action)
        })
}

/// Every permission a set of roles grants, as `{resource, action}` (for `/auth/me`).
pub(crate) fn permissions_of(roles: &[String], org_admin: bool) -> Vec<Value> {
    let mut out: Vec<&str> = ROLES
        .iter()
        .filter(|(slug, ..)| roles.iter().any(|r| r == slug))
        .flat_map(|(.., perms)| perms.iter().copied())
        .collect();
    if org_admin {
        out.push("*.*");
    }
    out.sort_unstable();
    out.dedup();
    out.into_iter()
        .map(|p| {
            let (r, a) = p.split_once('.').unwrap_or((p, ""));
            json!({"resource": r, "action": a})
        })
        .collect()
}

/// Stable id of a permission: a UUID-shaped string derived from SHA-256 of role and permission
/// (RFC 9562 version 8, "custom").
fn permission_id(role: &str, perm: &str) -> String {
    super::ids::derived_uuid(&format!("urn:esus-sim:permission:{role}:{perm}"))
}

/// `GET /roles`: a bare array.
pub(crate) fn list() -> Value {
    let roles: Vec<Value> = ROLES
        .iter()
        .map(|(slug, id, desc, perms)| {
            let perms: Vec<Value> = perms
                .iter()
                .map(|p| {
                    let (r, a) = p.split_once('.').unwrap_or((p, ""));
                    json!({"id": permission_id(slug, p), "resource": r, "action": a})
                })
                .collect();
            json!({"id": id, "name": slug, "description": desc, "isSystem": true, "permissions": perms})
        })
        .collect();
    Value::Array(roles)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn role_ids_are_uuids_and_round_trip() {
        for (slug, ..) in ROLES {
            let id = role_id(slug).unwrap();
            assert_eq!(id.len(), 36);
            assert_eq!(slug_of(id), Some(*slug));
            assert_eq!(slug_of(slug), None, "a slug is not a role id");
        }
        assert_eq!(permission_id("admin", "*.*").len(), 36);
    }
}
