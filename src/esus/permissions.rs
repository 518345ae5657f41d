//! What ESUS requires of the caller for each built-in action: an admin's bearer token, a FHIR
//! permission `Resource.action`, or the affected user's own session token.
//!
//! `describe` lists these per runbook; a preflight compares them with the operator's
//! `GET /auth/me` through [`Permission::satisfied_by`]. The table is keyed by action name; an
//! action it does not name falls back to its route ([`for_route`]), so a new action never breaks
//! the build and is classified by the same rules as `http`. Route rules follow docs/esus-api.md:
//!
//! - `/api-keys*`, `/admin/*`, `/roles*`, `/v1/admin/*`, `/smart/*`, `/organizations/*`,
//!   `/tenant-apps/*`, `/bulk-export/*`, `/auth/invit*`: an admin's bearer token (API keys are
//!   refused; a tenant app's own key may manage its webhooks, but a runbook acts as the operator);
//! - `/admin/system-admins/*`: a system administrator's bearer token;
//! - `/fhir/<Resource>…`: `Resource.read` for GET, `Resource.write` otherwise;
//! - `/auth/logout`, `/auth/logout-all`, `/auth/sessions*`: a session's own bearer token — in a
//!   runbook, the affected user's token passed as `token`, not the operator's;
//! - `/auth/refresh`, `/auth/login`, `/auth/mfa/verify`: no bearer token at all;
//! - `/auth/me`: any session (the operator's own).

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::actions::{ActionSpec, Method};

/// One thing ESUS requires of the credential that sends a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Permission {
    /// An admin's bearer token (admin routes: `/api-keys*`, `/admin/*`, `/roles*`, and the
    /// organization's leftovers: `/v1/admin/*`, `/smart/apps*`, CORS origins, invitations).
    Admin,
    /// A system administrator's bearer token (`/admin/system-admins/*`; `GET /auth/me` says
    /// `isSystemAdmin`).
    SystemAdmin,
    /// A FHIR permission, e.g. `Consent.write`, held through a role (or an API key's scope).
    Fhir {
        /// The FHIR resource type, e.g. `Consent`.
        resource: String,
        /// `read` or `write`.
        action: String,
    },
    /// The affected user's own session token (the step's `token`), not the operator's.
    OwnSession,
    /// The operator's own session token; any signed-in user has it.
    OperatorSession,
    /// No bearer token: the request carries its own credential (a refresh token, a password).
    NoBearer,
    /// Not known: an `http` call whose path is not a literal, or a route outside the rules.
    Unknown,
}

impl Permission {
    /// A FHIR permission.
    pub fn fhir(resource: &str, action: &str) -> Permission {
        Permission::Fhir {
            resource: resource.to_string(),
            action: action.to_string(),
        }
    }

    /// Whether the operator's token must carry this (admin role or FHIR permission), as opposed
    /// to a credential the run supplies otherwise.
    pub fn is_operator_permission(&self) -> bool {
        matches!(
            self,
            Permission::Admin
                | Permission::SystemAdmin
                | Permission::Fhir { .. }
                | Permission::OperatorSession
        )
    }

    /// Whether the operator described by `me` (the body of `GET /auth/me`) holds this.
    ///
    /// `Some(true)`/`Some(false)` when `me` says so; `None` when it cannot tell: the permission is
    /// not the operator's to hold ([`OwnSession`](Self::OwnSession), [`NoBearer`](Self::NoBearer)),
    /// it is [`Unknown`](Self::Unknown), or `me` lists neither roles nor permissions. Roles and
    /// permissions are read from the top level and from every `organizations[]` entry;
    /// permissions may be `{"resource","action"}` objects or `"Resource.action"` strings, and `*`
    /// matches anything. The `admin` role grants everything.
    pub fn satisfied_by(&self, me: &Value) -> Option<bool> {
        let grants = Grants::of(me);
        match self {
            Permission::OwnSession | Permission::NoBearer | Permission::Unknown => None,
            Permission::OperatorSession => me
                .get("id")
                .map(|id| !id.is_null())
                .or(grants.known().then_some(true)),
            Permission::Admin => {
                if grants.admin_role || grants.allows("*", "*") {
                    Some(true)
                } else {
                    grants.roles_known.then_some(false)
                }
            }
            Permission::SystemAdmin => me.get("isSystemAdmin").and_then(Value::as_bool),
            Permission::Fhir { resource, action } => {
                if grants.admin_role || grants.allows(resource, action) {
                    Some(true)
                } else {
                    grants.known().then_some(false)
                }
            }
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Admin => f.write_str("admin bearer token"),
            Permission::SystemAdmin => f.write_str("system administrator's bearer token"),
            Permission::Fhir { resource, action } => write!(f, "{resource}.{action}"),
            Permission::OwnSession => f.write_str("the affected user's own session token"),
            Permission::OperatorSession => f.write_str("any operator session"),
            Permission::NoBearer => f.write_str("no bearer token"),
            Permission::Unknown => f.write_str("unknown"),
        }
    }
}

/// The SMART scope a request needs (docs/esus-api.md, assumption 31): `user/<Resource>.read`
/// for a GET, `.write` otherwise, where the resource is the FHIR type, or for ESUS's own routes
/// the object they manage (`/api-keys` → `ApiKey`, the audit routes → `AuditEvent`, …). `None`
/// for the routes a token may always use on its own session (`/auth/me`, sessions, logout,
/// refresh, login).
pub fn smart_scope_for(method: &str, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or_default();
    let own_session = path.starts_with("/auth/") && smart_resource_of(path) == "*";
    if own_session || path.starts_with("/smart/authorize") || path == "/smart/token" {
        return None;
    }
    let access = if method.eq_ignore_ascii_case("GET") {
        "read"
    } else {
        "write"
    };
    Some(format!("user/{}.{access}", smart_resource_of(path)))
}

/// The resource a SMART scope names for a route (docs/esus-api.md, assumption 31): the FHIR
/// type, or for ESUS's own routes the object they manage; `*` for anything else. One rule for
/// the scopes esus-ir asks for and the simulator's scope gate.
pub fn smart_resource_of(path: &str) -> &str {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["fhir", "$export", ..] => "*",
        ["fhir", rt, ..] if !rt.is_empty() => rt,
        ["api-keys", ..] => "ApiKey",
        ["admin", "audit", ..] | ["v1", "admin", "audit", ..] => "AuditEvent",
        ["admin", "system-admins", "audit", ..] => "AuditEvent",
        ["admin", "users", ..] | ["admin", "system-admins", ..] => "User",
        ["roles", ..] => "Role",
        ["tenant-apps", ..] => "Webhook",
        ["smart", "apps", ..] => "SmartApp",
        ["organizations", ..] => "Organization",
        ["auth", "invite" | "invitations", ..] => "Invitation",
        ["bulk-export", ..] => "BulkExport",
        _ => "*",
    }
}

/// The SMART scopes to request for a set of requests (`(method, path)`): one per resource and
/// access they need, plus `openid fhirUser` (who the token is) and `offline_access` (a refresh
/// token, so a run can outlive the 15-minute access token). Nothing more.
pub fn smart_scopes<'a>(requests: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut scopes = vec![
        "openid".to_string(),
        "fhirUser".to_string(),
        "offline_access".to_string(),
    ];
    let mut needed: Vec<String> = requests
        .into_iter()
        .filter_map(|(m, p)| smart_scope_for(m, p))
        .collect();
    needed.sort();
    needed.dedup();
    scopes.extend(needed);
    scopes
}

/// What the operator described by `me` (`GET /auth/me`) holds beyond `needed`, in words: an
/// administrator's role when no step needs one, every FHIR permission (`*.*`) when the steps need
/// a few, system-administrator rights when none is used. Empty when nothing is in excess or
/// `/auth/me` does not say.
pub fn excess(needed: &[Permission], me: &Value) -> Vec<String> {
    let grants = Grants::of(me);
    let needs_admin = needed.contains(&Permission::Admin);
    let mut more = Vec::new();
    if grants.admin_role && !needs_admin {
        more.push("an administrator's role, which no step needs".to_string());
    } else if grants.allows("*", "*") && !needs_admin && !grants.admin_role {
        more.push("every FHIR permission (`*.*`), where the steps need a few".to_string());
    }
    if me.get("isSystemAdmin").and_then(Value::as_bool) == Some(true)
        && !needed.contains(&Permission::SystemAdmin)
    {
        more.push("system-administrator rights, which no step uses".to_string());
    }
    more
}

/// Whether every permission in `needed` is held by `me`: `Some(false)` as soon as one is not,
/// `Some(true)` when all are, `None` when some cannot be told and none is missing.
pub fn all_satisfied(needed: &[Permission], me: &Value) -> Option<bool> {
    let mut unknown = false;
    for p in needed {
        match p.satisfied_by(me) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    (!unknown).then_some(true)
}

/// What an action requires, every item at once (most need one thing). `http` depends on its path as well as its method, so it is
/// [`Permission::Unknown`] here whatever the method: use [`for_route`] or [`for_step`] for it.
pub fn required(action: &ActionSpec, _method: Option<&str>) -> Vec<Permission> {
    match by_name(action.name) {
        Some(needs) => needs,
        None if action.name == "http" => vec![Permission::Unknown],
        None => for_route(action.method.as_str(), action.path),
    }
}

/// What a step requires, given its `with:` parameters as written: `http` is classified by its
/// literal `method` and `path`; session actions without a `token` use the operator's session.
pub fn for_step(action: &ActionSpec, with: &indexmap::IndexMap<String, Value>) -> Vec<Permission> {
    let text = |k: &str| with.get(k).and_then(Value::as_str);
    if action.name == "http" {
        return match (text("method"), text("path")) {
            (Some(m), Some(p)) if !m.contains("{{") => for_route(m, p),
            (_, Some(p)) => for_route("POST", p),
            _ => vec![Permission::Unknown],
        };
    }
    let has_token = with.contains_key("token");
    match action.name {
        // Without `token` these act with the operator's own token — on the operator's own
        // sessions only: ESUS lets nobody, administrators included, end another user's session.
        "auth.sessions" | "auth.revoke_session" if !has_token => {
            vec![Permission::OperatorSession]
        }
        _ => required(action, None),
    }
}

/// The table, by action name. `None` for a name it does not know.
fn by_name(name: &str) -> Option<Vec<Permission>> {
    use Permission::{Admin, NoBearer, OwnSession};
    Some(match name {
        "auth.logout" | "auth.logout_all" | "auth.sessions" | "auth.revoke_session" => {
            vec![OwnSession]
        }
        // Proves the affected user's old tokens are refused: sent with those tokens.
        "auth.check_sessions_ended" => vec![OwnSession],
        "auth.refresh" => vec![NoBearer],
        "api_keys.list"
        | "api_keys.get"
        | "api_keys.create"
        | "api_keys.update"
        | "api_keys.delete"
        | "api_keys.rotate"
        | "api_keys.check_revoked" => vec![Admin],
        "audit.query" | "audit.user" | "audit.patient" | "audit.search" => vec![Admin],
        "audit.verify_chain" | "system_admins.list" => vec![Permission::SystemAdmin],
        "smart_apps.list" | "smart_apps.disable" | "smart_apps.delete" => vec![Admin],
        "cors.list" | "cors.set" | "invitations.list" | "invitations.revoke" => vec![Admin],
        // An admin's session, or an API key of that very app (docs/esus-api.md, assumption 21).
        "webhooks.list" | "webhooks.deliveries" | "webhooks.disable" | "webhooks.delete" => {
            vec![Admin]
        }
        // The user who started the export, or an admin.
        "bulk_export.status" | "bulk_export.cancel" => vec![Admin],
        "roles.list" | "roles.assign" | "roles.unassign" => vec![Admin],
        "admin.list_users" | "admin.remove_user" | "admin.set_org_role" => vec![Admin],
        "subscription.create" | "subscription.delete" | "subscription.disable" => {
            vec![Permission::fhir("Subscription", "write")]
        }
        "subscription.list" => vec![Permission::fhir("Subscription", "read")],
        "consent.search" => vec![Permission::fhir("Consent", "read")],
        "consent.expire" => vec![Permission::fhir("Consent", "write")],
        _ => return None,
    })
}

/// What a request to `path` (relative to the base URL; templates allowed after the part that
/// decides) with `method` requires, by the route rules in the module documentation.
pub fn for_route(method: &str, path: &str) -> Vec<Permission> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.strip_prefix('/').unwrap_or(path);
    let mut segments = path.split('/');
    let first = segments.next().unwrap_or_default();
    let second = segments.next().unwrap_or_default();
    let literal = |s: &str| !s.is_empty() && !s.contains("{{") && !s.contains('{');
    let read = Method::parse(method) == Some(Method::Get);
    vec![match first {
        "admin" if second == "system-admins" => Permission::SystemAdmin,
        "api-keys" | "admin" | "roles" | "smart" | "organizations" | "bulk-export"
        | "tenant-apps" => Permission::Admin,
        "v1" if second == "admin" => Permission::Admin,
        "fhir" if literal(second) && second.starts_with(|c: char| c.is_ascii_uppercase()) => {
            Permission::fhir(second, if read { "read" } else { "write" })
        }
        "auth" => match second {
            "logout" | "logout-all" | "sessions" => Permission::OwnSession,
            "refresh" | "login" | "mfa" => Permission::NoBearer,
            "me" => Permission::OperatorSession,
            "invitations" | "invite" => Permission::Admin,
            _ => Permission::Unknown,
        },
        _ => Permission::Unknown,
    }]
}

/// The roles and permissions an `/auth/me` body lists.
#[derive(Debug, Default)]
struct Grants {
    admin_role: bool,
    roles_known: bool,
    permissions: Vec<(String, String)>,
    permissions_known: bool,
}

impl Grants {
    fn of(me: &Value) -> Grants {
        let mut g = Grants::default();
        let mut scopes: Vec<&Value> = vec![me];
        if let Some(orgs) = me.get("organizations").and_then(Value::as_array) {
            scopes.extend(orgs.iter());
        }
        for scope in scopes {
            if let Some(roles) = scope.get("roles").and_then(Value::as_array) {
                g.roles_known = true;
                g.admin_role |= roles.iter().any(|r| {
                    r.as_str()
                        .or_else(|| r.get("id").and_then(Value::as_str))
                        .is_some_and(|r| r == "admin")
                });
            }
            if let Some(perms) = scope.get("permissions").and_then(Value::as_array) {
                g.permissions_known = true;
                for p in perms {
                    let pair = match p {
                        Value::String(s) => s
                            .split_once('.')
                            .map(|(r, a)| (r.to_string(), a.to_string())),
                        Value::Object(o) => match (
                            o.get("resource").and_then(Value::as_str),
                            o.get("action").and_then(Value::as_str),
                        ) {
                            (Some(r), Some(a)) => Some((r.to_string(), a.to_string())),
                            _ => None,
                        },
                        _ => None,
                    };
                    g.permissions.extend(pair);
                }
            }
        }
        g
    }

    fn known(&self) -> bool {
        self.roles_known || self.permissions_known
    }

    fn allows(&self, resource: &str, action: &str) -> bool {
        let matches = |have: &str, want: &str| have == "*" || have.eq_ignore_ascii_case(want);
        self.permissions
            .iter()
            .any(|(r, a)| matches(r, resource) && matches(a, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esus::actions::{ACTIONS, lookup};
    use serde_json::json;

    #[test]
    fn every_built_in_action_has_an_entry_in_the_table() {
        for a in ACTIONS {
            assert!(
                by_name(a.name).is_some() || a.name == "http",
                "{} has no entry in esus::permissions",
                a.name
            );
            assert!(!required(a, None).is_empty(), "{}", a.name);
        }
    }

    #[test]
    fn a_system_administrator_is_who_auth_me_says_is_one() {
        let p = Permission::SystemAdmin;
        assert_eq!(
            p.satisfied_by(&serde_json::json!({"isSystemAdmin": true})),
            Some(true)
        );
        assert_eq!(
            p.satisfied_by(&serde_json::json!({"isSystemAdmin": false, "roles": ["admin"]})),
            Some(false),
            "an organization admin is not a system administrator"
        );
        assert_eq!(
            p.satisfied_by(&serde_json::json!({"roles": ["admin"]})),
            None
        );
        assert_eq!(
            for_route("GET", "/admin/system-admins/audit/verify"),
            vec![Permission::SystemAdmin]
        );
    }

    #[test]
    fn the_table_agrees_with_the_route_rules() {
        for a in ACTIONS.iter().filter(|a| a.name != "http") {
            let by_route = for_route(a.method.as_str(), a.path);
            let by_table = required(a, None);
            assert!(
                by_table.iter().any(|p| by_route.contains(p)),
                "{}: table {by_table:?}, route {by_route:?}",
                a.name
            );
        }
    }

    #[test]
    fn actions_map_to_what_esus_requires() {
        let req = |name: &str| required(lookup(name).expect(name), None);
        assert_eq!(req("api_keys.rotate"), vec![Permission::Admin]);
        assert_eq!(req("audit.user"), vec![Permission::Admin]);
        assert_eq!(req("roles.assign"), vec![Permission::Admin]);
        assert_eq!(req("auth.logout"), vec![Permission::OwnSession]);
        assert_eq!(
            req("subscription.create"),
            vec![Permission::fhir("Subscription", "write")]
        );
        assert_eq!(
            req("consent.search"),
            vec![Permission::fhir("Consent", "read")]
        );
        assert!(req("consent.expire").contains(&Permission::fhir("Consent", "write")));
    }

    #[test]
    fn routes_classify_http_calls() {
        assert_eq!(
            for_route("GET", "/fhir/Patient/{{ inputs.p }}"),
            vec![Permission::fhir("Patient", "read")]
        );
        assert_eq!(
            for_route("put", "fhir/Consent/c-1"),
            vec![Permission::fhir("Consent", "write")]
        );
        assert_eq!(
            for_route("DELETE", "/admin/users/u-1"),
            vec![Permission::Admin]
        );
        assert_eq!(
            for_route("POST", "/auth/refresh"),
            vec![Permission::NoBearer]
        );
        assert_eq!(
            for_route("GET", "/{{ inputs.p }}"),
            vec![Permission::Unknown]
        );
        assert_eq!(
            for_route("GET", "/fhir/{{ inputs.t }}"),
            vec![Permission::Unknown]
        );
    }

    #[test]
    fn step_parameters_refine_session_actions_and_http() {
        let with = |v: Value| -> indexmap::IndexMap<String, Value> {
            serde_json::from_value(v).expect("map")
        };
        let sessions = lookup("auth.sessions").expect("sessions");
        assert_eq!(
            for_step(sessions, &with(json!({}))),
            vec![Permission::OperatorSession]
        );
        assert_eq!(
            for_step(sessions, &with(json!({"token": "{{ inputs.t }}"}))),
            vec![Permission::OwnSession]
        );
        let revoke = lookup("auth.revoke_session").expect("revoke");
        assert_eq!(
            for_step(revoke, &with(json!({"session_id": "s-1"}))),
            vec![Permission::OperatorSession],
            "the operator's token only ever reaches the operator's own sessions"
        );
        let http = lookup("http").expect("http");
        assert_eq!(
            for_step(
                http,
                &with(json!({"method": "GET", "path": "/fhir/Observation"}))
            ),
            vec![Permission::fhir("Observation", "read")]
        );
        assert_eq!(required(http, Some("GET")), vec![Permission::Unknown]);
    }

    #[test]
    fn what_a_token_holds_beyond_the_needs_is_named_and_nothing_else() {
        let admin =
            json!({"id": "u-0", "isSystemAdmin": true, "roles": ["admin"], "permissions": ["*.*"]});
        let fhir_only = [
            Permission::fhir("Subscription", "read"),
            Permission::fhir("Subscription", "write"),
        ];
        let more = excess(&fhir_only, &admin);
        assert_eq!(more.len(), 2, "{more:?}");
        assert!(more[0].starts_with("an administrator's role"));
        assert!(more[1].starts_with("system-administrator rights"));
        assert!(excess(&[Permission::Admin, Permission::SystemAdmin], &admin).is_empty());
        let wildcard = json!({"id": "u-2", "roles": ["integrator"], "permissions": ["*.*"]});
        assert_eq!(
            excess(&fhir_only, &wildcard),
            ["every FHIR permission (`*.*`), where the steps need a few"]
        );
        let narrow = json!({"id": "u-3", "isSystemAdmin": false, "roles": ["practitioner"],
            "permissions": ["Subscription.read", "Subscription.write"]});
        assert!(excess(&fhir_only, &narrow).is_empty());
        assert_eq!(
            smart_scopes([
                ("POST", "/fhir/Subscription"),
                ("GET", "/auth/me"),
                ("GET", "/v1/admin/audit/"),
                ("GET", "/fhir/Subscription?status=active"),
                ("DELETE", "/api-keys/{id}"),
                ("POST", "/fhir/Subscription"),
            ]),
            [
                "openid",
                "fhirUser",
                "offline_access",
                "user/ApiKey.write",
                "user/AuditEvent.read",
                "user/Subscription.read",
                "user/Subscription.write"
            ]
        );
        assert_eq!(smart_scope_for("POST", "/auth/logout"), None);
        assert_eq!(
            smart_scope_for("POST", "/auth/invite").as_deref(),
            Some("user/Invitation.write")
        );
    }

    #[test]
    fn satisfied_by_reads_auth_me() {
        let admin = json!({"id": "u-1", "roles": ["admin"], "permissions": ["*.*"]});
        let practitioner = json!({
            "id": "u-2",
            "organizations": [{"id": "org-1", "roles": ["practitioner"],
                "permissions": [{"resource": "Consent", "action": "read"},
                                {"resource": "Consent", "action": "write"}]}],
            "roles": ["practitioner"]
        });
        let opaque = json!({"id": "u-3"});
        let write = Permission::fhir("Consent", "write");
        let sub = Permission::fhir("Subscription", "write");
        assert_eq!(Permission::Admin.satisfied_by(&admin), Some(true));
        assert_eq!(Permission::Admin.satisfied_by(&practitioner), Some(false));
        assert_eq!(Permission::Admin.satisfied_by(&opaque), None);
        assert_eq!(write.satisfied_by(&practitioner), Some(true));
        assert_eq!(sub.satisfied_by(&practitioner), Some(false));
        assert_eq!(sub.satisfied_by(&admin), Some(true));
        assert_eq!(write.satisfied_by(&opaque), None);
        assert_eq!(Permission::OwnSession.satisfied_by(&admin), None);
        assert_eq!(
            Permission::OperatorSession.satisfied_by(&opaque),
            Some(true)
        );
        let wildcard =
            json!({"organizations": [{"permissions": [{"resource": "*", "action": "read"}]}]});
        assert_eq!(
            Permission::fhir("Patient", "read").satisfied_by(&wildcard),
            Some(true)
        );
        assert_eq!(
            Permission::fhir("Patient", "write").satisfied_by(&wildcard),
            Some(false)
        );
        assert_eq!(
            all_satisfied(&[write.clone(), sub.clone()], &practitioner),
            Some(false)
        );
        assert_eq!(
            all_satisfied(&[write, Permission::OwnSession], &practitioner),
            None
        );
    }
}
