//! The built-in actions: for each, the ESUS call it makes and what kind of call that is.
//!
//! Everything a validator, planner or confirmer needs to know about an action lives in one
//! table, so that "is this destructive?" or "may this be retried?" has exactly one answer.
//! Paths and shapes follow ESUS's published API (docs/esus-api.md).

/// HTTP methods the actions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Parses a method name, case-insensitively.
    pub fn parse(text: &str) -> Option<Method> {
        Some(match text.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }
}

/// What an action does to ESUS's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only; safe in `--dry-run=reads`.
    Read,
    /// Adds something without taking access away (create a key, a subscription).
    Write,
    /// Changes or removes existing access or state; confirmed by default.
    Destructive,
}

/// The type a parameter's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Text (numbers are accepted and sent as text).
    String,
    /// A whole number.
    Integer,
    /// `true`/`false`.
    Boolean,
    /// A list.
    List,
    /// A mapping.
    Object,
    /// Any JSON value.
    Any,
    /// A credential: must come from a secret input or secret output, never a literal.
    Secret,
}

/// Where a parameter goes in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Substituted into `{name}` in the path, percent-encoded as one segment.
    Path,
    /// A query parameter.
    Query,
    /// A field of the JSON body.
    Body,
    /// Replaces the operator's token as `Authorization: Bearer`.
    Bearer,
    /// Not sent directly; the action uses it itself.
    Internal,
}

/// One parameter of an action.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Name under `with:`.
    pub name: &'static str,
    /// Name on the wire (query parameter or JSON field).
    pub wire: &'static str,
    /// Value type.
    pub kind: ParamKind,
    /// Where it goes.
    pub place: Place,
    /// Whether the action refuses to run without it.
    pub required: bool,
}

/// How the JSON body is assembled from `Body` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// No body.
    None,
    /// `{wire: value, …}` for each given parameter (an empty object when none is given).
    Flat,
    /// A FHIR `Subscription` resource.
    FhirSubscription,
    /// The `body` parameter as is (`http`).
    Raw,
    /// A fixed JSON body, whatever the parameters: `{"status": "inactive"}` (a Consent's
    /// PATCH), `{"active": false}` (switching a webhook or an app off, kept as evidence).
    Fixed(&'static str),
}

/// Actions whose behaviour is more than one plain request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// One request.
    None,
    /// Reads the key and, with a secret, tries to use it; succeeds only if the key is dead.
    CheckRevoked,
    /// Tries the stolen session credentials; succeeds only if ESUS refuses every one of them
    /// and the sessions listed at the start were all ended.
    CheckSessions,
}

/// What settles a request of this action whose answer was lost (a dropped connection, a 5xx, a
/// run killed before the answer was recorded): an exact claim, or nothing — never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Sending it again has the same effect as once: it is sent again.
    Resend,
    /// A key is created under this incident's claim name (`NAME.esus-ir-<tag>`) and renamed once
    /// its secret is kept: after a lost answer, only a key of exactly that name (or one whose
    /// secret this incident holds) is this request's.
    ClaimName,
    /// A rotate: settled by the old key's `supersededBy` alone, against what it was before.
    SupersededBy,
    /// A Subscription carries the claim tag in its `reason`.
    ClaimReason,
    /// Nothing ESUS holds tells what happened: the outcome is unknown and a person decides.
    Unknown,
}

/// A built-in action.
#[derive(Debug)]
pub struct ActionSpec {
    /// Name used in `action:`.
    pub name: &'static str,
    /// One line for `graph` and docs.
    pub summary: &'static str,
    /// HTTP method (for `http`, the `method` parameter decides).
    pub method: Method,
    /// Path template, `{param}` placeholders (for `http`, the `path` parameter).
    pub path: &'static str,
    /// Read, write or destructive.
    pub effect: Effect,
    /// Whether sending it twice has the same effect as once (may be retried blindly).
    pub idempotent: bool,
    /// The parameters.
    pub params: &'static [Param],
    /// How the body is built.
    pub body: BodyShape,
    /// Whether results are paged (`_count`/`_offset`, `{rows,total}`) and read to the end.
    pub paged: bool,
    /// With `paged`: cursor paging instead (`cursor`/`limit`, `{events, nextCursor}`).
    pub cursor_paged: bool,
    /// Response fields that hold secrets (a new key's `secret`).
    pub secret_fields: &'static [&'static str],
    /// Whether responses may carry PHI and go to evidence files only.
    pub phi: bool,
    /// The parameter the operator must type for `confirm: typed`.
    pub target: Option<&'static str>,
    /// Multi-request behaviour.
    pub special: Special,
    /// A containment check: its result (from ESUS) is the run's containment verdict.
    pub check: bool,
    /// Takes access away (logout, delete, deactivate, remove): a containment action. `expect` on
    /// it may only list [`ActionSpec::already_contained`] answers, so a refusal can never read
    /// as success.
    pub contains: bool,
    /// Answers of a containment action that mean "already contained" (the key is already gone).
    pub already_contained: &'static [u16],
    /// Sends no operator token: the body carries the credential (a refresh token).
    pub unauthenticated: bool,
    /// What settles a lost answer.
    pub recovery: Recovery,
}

const fn p(
    name: &'static str,
    wire: &'static str,
    kind: ParamKind,
    place: Place,
    required: bool,
) -> Param {
    Param {
        name,
        wire,
        kind,
        place,
        required,
    }
}

use ParamKind as K;
use Place as P;

const TOKEN_REQ: Param = p("token", "", K::Secret, P::Bearer, true);
const TOKEN_OPT: Param = p("token", "", K::Secret, P::Bearer, false);
const ID: Param = p("id", "id", K::String, P::Path, true);
const APP_ID: Param = p("app_id", "appId", K::String, P::Path, true);
const ORG_ID: Param = p(
    "organization_id",
    "organizationId",
    K::String,
    P::Path,
    true,
);
const AUDIT_QUERY: [Param; 6] = [
    p("count", "_count", K::Integer, P::Query, false),
    p("date", "date", K::String, P::Query, false),
    p("agent", "agent", K::String, P::Query, false),
    p("entity", "entity", K::String, P::Query, false),
    p("type", "type", K::String, P::Query, false),
    p("outcome", "outcome", K::String, P::Query, false),
];
const AUDIT_USER: [Param; 7] = [
    p("user_id", "userId", K::String, P::Path, true),
    AUDIT_QUERY[0],
    AUDIT_QUERY[1],
    AUDIT_QUERY[2],
    AUDIT_QUERY[3],
    AUDIT_QUERY[4],
    AUDIT_QUERY[5],
];
const AUDIT_PATIENT: [Param; 7] = [
    p("patient_id", "patientId", K::String, P::Path, true),
    AUDIT_QUERY[0],
    AUDIT_QUERY[1],
    AUDIT_QUERY[2],
    AUDIT_QUERY[3],
    AUDIT_QUERY[4],
    AUDIT_QUERY[5],
];

const AUDIT_SEARCH: [Param; 8] = [
    p("user_id", "userId", K::String, P::Query, false),
    p("after", "after", K::String, P::Query, false),
    p("before", "before", K::String, P::Query, false),
    p("type", "type", K::String, P::Query, false),
    p("action", "action", K::String, P::Query, false),
    p("resource_type", "resourceType", K::String, P::Query, false),
    p("resource_id", "resourceId", K::String, P::Query, false),
    p("limit", "limit", K::Integer, P::Query, false),
];

const fn action(
    name: &'static str,
    summary: &'static str,
    method: Method,
    path: &'static str,
    effect: Effect,
    idempotent: bool,
    params: &'static [Param],
) -> ActionSpec {
    ActionSpec {
        name,
        summary,
        method,
        path,
        effect,
        idempotent,
        params,
        body: BodyShape::None,
        paged: false,
        cursor_paged: false,
        secret_fields: &[],
        phi: false,
        target: None,
        special: Special::None,
        check: false,
        contains: false,
        already_contained: &[],
        unauthenticated: false,
        recovery: if idempotent {
            Recovery::Resend
        } else {
            Recovery::Unknown
        },
    }
}

use Effect::{Destructive, Read, Write};
use Method::{Delete, Get, Patch, Post, Put};

/// Every built-in action, `http` last.
pub static ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        contains: true,
        // The token is already refused: the session cannot be used with it any more.
        already_contained: &[401],
        ..action(
            "auth.logout",
            "Log out one session (its token) and kill its refresh token",
            Post,
            "/auth/logout",
            Destructive,
            true,
            &[TOKEN_REQ],
        )
    },
    ActionSpec {
        contains: true,
        ..action(
            "auth.logout_all",
            "Log out every session of the token's user and burn their refresh tokens",
            Post,
            "/auth/logout-all",
            Destructive,
            true,
            &[TOKEN_REQ],
        )
    },
    action(
        "auth.sessions",
        "List the sessions of the token's user (default: the operator's own)",
        Get,
        "/auth/sessions",
        Read,
        true,
        &[TOKEN_OPT],
    ),
    ActionSpec {
        target: Some("session_id"),
        contains: true,
        ..action(
            "auth.revoke_session",
            "End one session of the token's own user, by id",
            Delete,
            "/auth/sessions/{session_id}",
            Destructive,
            true,
            &[
                p("session_id", "sessionId", K::String, P::Path, true),
                TOKEN_OPT,
            ],
        )
    },
    ActionSpec {
        body: BodyShape::Flat,
        secret_fields: &["accessToken", "refreshToken"],
        // It uses up the (stolen) refresh token: ESUS rotates it. The new pair is ours.
        contains: true,
        already_contained: &[401],
        unauthenticated: true,
        // A lost answer is settled by sending it again: the token either still works (the first
        // never took effect, and this one gives the only fresh pair) or is refused (401: used up
        // by the first, and dead for the attacker too). Nothing is made twice.
        recovery: Recovery::Resend,
        ..action(
            "auth.refresh",
            "Exchange a refresh token for a new token pair (the old refresh token is used up)",
            Post,
            "/auth/refresh",
            Write,
            false,
            &[p("refresh_token", "refreshToken", K::Secret, P::Body, true)],
        )
    },
    ActionSpec {
        special: Special::CheckSessions,
        check: true,
        ..action(
            "auth.check_sessions_ended",
            "Succeed only if ESUS refuses the stolen access and refresh tokens and ended every listed session",
            Get,
            "/auth/sessions",
            Write,
            true,
            &[
                p("token", "", K::Secret, P::Internal, false),
                p("refresh_token", "", K::Secret, P::Internal, false),
                p("listed", "", K::List, P::Internal, false),
                p("revoked", "", K::Integer, P::Internal, false),
            ],
        )
    },
    action(
        "api_keys.list",
        "List API keys",
        Get,
        "/api-keys",
        Read,
        true,
        &[
            p("active", "active", K::Boolean, P::Query, false),
            p("name", "name", K::String, P::Query, false),
            p("app_id", "appId", K::String, P::Query, false),
        ],
    ),
    action(
        "api_keys.get",
        "Read one API key",
        Get,
        "/api-keys/{id}",
        Read,
        true,
        &[ID],
    ),
    ActionSpec {
        body: BodyShape::Flat,
        secret_fields: &["secret"],
        recovery: Recovery::ClaimName,
        ..action(
            "api_keys.create",
            "Create an API key (its secret is returned once)",
            Post,
            "/api-keys",
            Write,
            false,
            &[
                p("name", "name", K::String, P::Body, true),
                p("scopes", "scopes", K::List, P::Body, true),
                p("expires_at", "expiresAt", K::String, P::Body, false),
                p("rate_limit", "rateLimit", K::Integer, P::Body, false),
                p("app_id", "appId", K::String, P::Body, false),
            ],
        )
    },
    ActionSpec {
        body: BodyShape::Flat,
        target: Some("id"),
        contains: true,
        ..action(
            "api_keys.update",
            "Change an API key's name, scopes, active flag or rate limit",
            Put,
            "/api-keys/{id}",
            Destructive,
            true,
            &[
                ID,
                p("name", "name", K::String, P::Body, false),
                p("scopes", "scopes", K::List, P::Body, false),
                p("active", "active", K::Boolean, P::Body, false),
                p("rate_limit", "rateLimit", K::Integer, P::Body, false),
            ],
        )
    },
    ActionSpec {
        target: Some("id"),
        contains: true,
        already_contained: &[404],
        ..action(
            "api_keys.delete",
            "Delete an API key",
            Delete,
            "/api-keys/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    ActionSpec {
        body: BodyShape::Flat,
        secret_fields: &["secret"],
        target: Some("id"),
        recovery: Recovery::SupersededBy,
        ..action(
            "api_keys.rotate",
            "Issue a new key linked to the old one; the old one lives grace_hours (default 24)",
            Post,
            "/api-keys/{id}/rotate",
            Destructive,
            false,
            &[
                ID,
                p("grace_hours", "graceHours", K::Integer, P::Body, false),
            ],
        )
    },
    ActionSpec {
        special: Special::CheckRevoked,
        check: true,
        ..action(
            "api_keys.check_revoked",
            "Succeed only if the key is gone or inactive, and (with its secret) refused",
            Get,
            "/api-keys/{id}",
            Read,
            true,
            &[
                ID,
                p("client_id", "clientId", K::String, P::Internal, false),
                p("app_id", "appId", K::String, P::Internal, false),
                p("secret", "secret", K::Secret, P::Internal, false),
            ],
        )
    },
    ActionSpec {
        paged: true,
        phi: true,
        ..action(
            "audit.query",
            "Read the audit log, every page",
            Get,
            "/admin/audit",
            Read,
            true,
            &AUDIT_QUERY,
        )
    },
    ActionSpec {
        paged: true,
        phi: true,
        ..action(
            "audit.user",
            "Read one user's audit log, every page",
            Get,
            "/admin/audit/user/{user_id}",
            Read,
            true,
            &AUDIT_USER,
        )
    },
    ActionSpec {
        paged: true,
        cursor_paged: true,
        phi: true,
        ..action(
            "audit.search",
            "Search the audit log by cursor (getV1AdminAudit), every page, over an exact window",
            Get,
            "/v1/admin/audit/",
            Read,
            true,
            &AUDIT_SEARCH,
        )
    },
    ActionSpec {
        paged: true,
        phi: true,
        ..action(
            "audit.patient",
            "Read one patient's audit log, every page",
            Get,
            "/admin/audit/patient/{patient_id}",
            Read,
            true,
            &AUDIT_PATIENT,
        )
    },
    action(
        "audit.verify_chain",
        "ESUS recomputes its audit table's SHA-256 hash chain (system administrators)",
        Get,
        "/admin/system-admins/audit/verify",
        Read,
        true,
        &[p("limit", "limit", K::Integer, P::Query, false)],
    ),
    action(
        "roles.list",
        "List roles (id is a UUID, name the slug) and their permissions",
        Get,
        "/roles",
        Read,
        true,
        &[],
    ),
    ActionSpec {
        body: BodyShape::Flat,
        target: Some("user_id"),
        ..action(
            "roles.assign",
            "Give a user a role (by the role's UUID)",
            Post,
            "/roles/users/{user_id}/assign",
            Destructive,
            true,
            &[
                p("user_id", "userId", K::String, P::Path, true),
                p("role_id", "roleId", K::String, P::Body, true),
            ],
        )
    },
    ActionSpec {
        target: Some("user_id"),
        contains: true,
        ..action(
            "roles.unassign",
            "Take a role (by the role's UUID) from a user",
            Delete,
            "/roles/users/{user_id}/{role_id}",
            Destructive,
            true,
            &[
                p("user_id", "userId", K::String, P::Path, true),
                p("role_id", "roleId", K::String, P::Path, true),
            ],
        )
    },
    action(
        "admin.list_users",
        "List the members of the operator's organization",
        Get,
        "/admin/users",
        Read,
        true,
        &[],
    ),
    ActionSpec {
        target: Some("id"),
        contains: true,
        ..action(
            "admin.remove_user",
            "Remove a user from the operator's organization (their sessions are not ended)",
            Delete,
            "/admin/users/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    ActionSpec {
        body: BodyShape::Flat,
        target: Some("id"),
        contains: true,
        ..action(
            "admin.set_org_role",
            "Change a member's organization role (Admin, Member or ReadOnly)",
            Patch,
            "/admin/users/{id}/role",
            Destructive,
            true,
            &[ID, p("role", "role", K::String, P::Body, true)],
        )
    },
    ActionSpec {
        body: BodyShape::FhirSubscription,
        // Channel headers often carry the webhook's own credential.
        secret_fields: &["header"],
        recovery: Recovery::ClaimReason,
        ..action(
            "subscription.create",
            "Create a FHIR Subscription (alerting)",
            Post,
            "/fhir/Subscription",
            Write,
            false,
            &[
                p("criteria", "criteria", K::String, P::Body, true),
                p("endpoint", "endpoint", K::String, P::Body, true),
                p("channel_type", "type", K::String, P::Body, false),
                p("payload", "payload", K::String, P::Body, false),
                p("header", "header", K::List, P::Body, false),
                p("reason", "reason", K::String, P::Body, false),
                p("status", "status", K::String, P::Body, false),
                p("end", "end", K::String, P::Body, false),
            ],
        )
    },
    ActionSpec {
        secret_fields: &["header"],
        ..action(
            "subscription.list",
            "List FHIR Subscriptions",
            Get,
            "/fhir/Subscription",
            Read,
            true,
            &[],
        )
    },
    ActionSpec {
        target: Some("id"),
        ..action(
            "subscription.delete",
            "Delete a FHIR Subscription",
            Delete,
            "/fhir/Subscription/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    ActionSpec {
        phi: true,
        ..action(
            "consent.search",
            "Search Consent records",
            Get,
            "/fhir/Consent",
            Read,
            true,
            &[
                p("patient", "patient", K::String, P::Query, false),
                p("status", "status", K::String, P::Query, false),
                p("date", "date", K::String, P::Query, false),
            ],
        )
    },
    ActionSpec {
        body: BodyShape::Fixed(r#"{"status":"inactive"}"#),
        phi: true,
        target: Some("id"),
        ..action(
            "consent.expire",
            "Set a Consent's status to inactive (PATCH)",
            Patch,
            "/fhir/Consent/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    ActionSpec {
        body: BodyShape::Fixed(r#"{"status":"off"}"#),
        target: Some("id"),
        ..action(
            "subscription.disable",
            "Switch a FHIR Subscription off (PATCH status off): no more notifications, kept as evidence",
            Patch,
            "/fhir/Subscription/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    action(
        "webhooks.list",
        "List a tenant app's webhooks",
        Get,
        "/tenant-apps/{app_id}/webhooks/",
        Read,
        true,
        &[APP_ID],
    ),
    action(
        "webhooks.deliveries",
        "List a webhook's recent deliveries (what it sent, and where)",
        Get,
        "/tenant-apps/{app_id}/webhooks/{id}/deliveries",
        Read,
        true,
        &[APP_ID, ID, p("limit", "limit", K::Integer, P::Query, false)],
    ),
    ActionSpec {
        body: BodyShape::Fixed(r#"{"active":false}"#),
        target: Some("id"),
        ..action(
            "webhooks.disable",
            "Switch a tenant app's webhook off (PATCH active false), kept as evidence",
            Patch,
            "/tenant-apps/{app_id}/webhooks/{id}",
            Destructive,
            true,
            &[APP_ID, ID],
        )
    },
    ActionSpec {
        target: Some("id"),
        ..action(
            "webhooks.delete",
            "Delete a tenant app's webhook (its delivery records go too)",
            Delete,
            "/tenant-apps/{app_id}/webhooks/{id}",
            Destructive,
            true,
            &[APP_ID, ID],
        )
    },
    action(
        "smart_apps.list",
        "List the SMART on FHIR apps registered with the organization",
        Get,
        "/smart/apps/",
        Read,
        true,
        &[
            p("active", "active", K::Boolean, P::Query, false),
            p("name", "name", K::String, P::Query, false),
        ],
    ),
    ActionSpec {
        body: BodyShape::Fixed(r#"{"active":false}"#),
        target: Some("id"),
        ..action(
            "smart_apps.disable",
            "Switch a SMART app off (PUT active false): no more authorization codes, kept as evidence",
            Put,
            "/smart/apps/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    ActionSpec {
        target: Some("id"),
        ..action(
            "smart_apps.delete",
            "Delete a SMART app",
            Delete,
            "/smart/apps/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    action(
        "cors.list",
        "List the browser origins allowed to call ESUS for an organization",
        Get,
        "/organizations/{organization_id}/cors-origins",
        Read,
        true,
        &[ORG_ID],
    ),
    ActionSpec {
        body: BodyShape::Flat,
        target: Some("organization_id"),
        ..action(
            "cors.set",
            "Replace an organization's CORS origins with this whole list (no per-origin route)",
            Put,
            "/organizations/{organization_id}/cors-origins",
            Destructive,
            true,
            &[ORG_ID, p("origins", "origins", K::List, P::Body, true)],
        )
    },
    action(
        "invitations.list",
        "List invitations (accepted and expired ones too; invitedBy names the inviter)",
        Get,
        "/auth/invitations",
        Read,
        true,
        &[],
    ),
    ActionSpec {
        target: Some("id"),
        ..action(
            "invitations.revoke",
            "Revoke an invitation (a member who already joined stays)",
            Delete,
            "/auth/invitations/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    action(
        "system_admins.list",
        "List the system administrators (system administrators only)",
        Get,
        "/admin/system-admins/",
        Read,
        true,
        &[],
    ),
    action(
        "bulk_export.status",
        "Read a bulk export's status (202 running, 200 its manifest)",
        Get,
        "/bulk-export/{id}",
        Read,
        true,
        &[ID],
    ),
    ActionSpec {
        target: Some("id"),
        ..action(
            "bulk_export.cancel",
            "Cancel a bulk export (or delete its files when complete)",
            Delete,
            "/bulk-export/{id}",
            Destructive,
            true,
            &[ID],
        )
    },
    ActionSpec {
        body: BodyShape::Raw,
        // Any FHIR resource may be read through `http`: treat every answer as PHI, and any
        // credential-looking field as secret (it may rotate a key or refresh a token).
        phi: true,
        secret_fields: &[
            "secret",
            "accessToken",
            "refreshToken",
            "mfaToken",
            "password",
            "token",
        ],
        ..action(
            "http",
            "Any ESUS call, by path relative to the base URL",
            Get,
            "",
            Destructive,
            false,
            &[
                p("method", "method", K::String, P::Internal, true),
                p("path", "path", K::String, P::Internal, true),
                p("query", "query", K::Object, P::Internal, false),
                p("body", "body", K::Any, P::Internal, false),
            ],
        )
    },
];

/// Finds an action by name.
pub fn lookup(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

impl ActionSpec {
    /// Why `expect: [status]` is not allowed on this action, if it is not: a containment check
    /// decides by itself, and a containment action's refusal (401, 403, an unknown id…) must
    /// never read as success — only the answers the catalogue knows to mean "already contained"
    /// may be expected.
    pub fn expect_refused(&self, status: u16) -> Option<String> {
        if self.check {
            return Some(format!(
                "`{}` is a containment check: it decides from ESUS's answers itself, and `expect` would let a refusal pass as proof",
                self.name
            ));
        }
        if !self.contains || self.already_contained.contains(&status) {
            return None;
        }
        let allowed = if self.already_contained.is_empty() {
            "no answer other than 2xx".to_string()
        } else {
            self.already_contained
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        Some(format!(
            "`{}` takes access away, and an answer of {status} does not prove it did, so `expect` cannot make it a success (answers that mean \"already contained\" for this action: {allowed})",
            self.name
        ))
    }

    /// A parameter by name.
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The effect of this action with these literal parameters: `http` depends on its method.
    pub fn effect_with(&self, method: Option<&str>) -> Effect {
        if self.name != "http" {
            return self.effect;
        }
        match method.and_then(Method::parse) {
            Some(Method::Get) => Effect::Read,
            _ => Effect::Destructive,
        }
    }

    /// What settles a lost answer of this action, given `http`'s method.
    pub fn recovery_with(&self, method: Option<&str>) -> Recovery {
        match self.name {
            "http" if self.idempotent_with(method) => Recovery::Resend,
            _ => self.recovery,
        }
    }

    /// Whether this action may be retried blindly, given `http`'s method.
    pub fn idempotent_with(&self, method: Option<&str>) -> bool {
        if self.name != "http" {
            return self.idempotent;
        }
        matches!(
            method.and_then(Method::parse),
            Some(Method::Get | Method::Put | Method::Delete)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_path_placeholder_is_a_required_path_param() {
        for (i, a) in ACTIONS.iter().enumerate() {
            assert!(
                ACTIONS[..i].iter().all(|b| b.name != a.name),
                "duplicate {}",
                a.name
            );
            for seg in a.path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(['{', '}']);
                let param = a
                    .param(name)
                    .unwrap_or_else(|| panic!("{}: no param {name}", a.name));
                assert!(
                    param.required && param.place == Place::Path,
                    "{}: {name}",
                    a.name
                );
            }
            if let Some(t) = a.target {
                assert!(
                    a.param(t).is_some_and(|p| p.required),
                    "{}: target {t}",
                    a.name
                );
            }
        }
    }

    #[test]
    fn the_compromise_critical_actions_are_classified_as_the_api_facts_say() {
        let rotate = lookup("api_keys.rotate").expect("rotate");
        assert_eq!(rotate.effect, Effect::Destructive);
        assert!(
            !rotate.idempotent,
            "rotate creates a key: never blindly re-sent"
        );
        assert_eq!(rotate.secret_fields, ["secret"]);
        assert!(!lookup("api_keys.create").expect("create").idempotent);
        assert!(lookup("api_keys.delete").expect("delete").idempotent);
        assert!(lookup("audit.user").expect("audit").paged);
        assert!(lookup("api_keys.check_revoked").expect("check").check);
        assert!(lookup("auth.check_sessions_ended").expect("check").check);
        assert_eq!(
            lookup("consent.expire").expect("expire").method,
            Method::Patch,
            "ESUS expires a Consent with PATCH {{\"status\":\"inactive\"}}"
        );
        let http = lookup("http").expect("http");
        assert_eq!(http.effect_with(Some("get")), Effect::Read);
        assert_eq!(http.effect_with(Some("POST")), Effect::Destructive);
        assert!(!http.idempotent_with(Some("POST")));
    }

    #[test]
    fn expect_can_never_turn_a_refused_containment_action_into_success() {
        let delete = lookup("api_keys.delete").expect("delete");
        assert_eq!(delete.expect_refused(404), None, "gone is contained");
        for refusal in [401, 403, 409, 500] {
            assert!(delete.expect_refused(refusal).is_some(), "{refusal}");
        }
        let logout_all = lookup("auth.logout_all").expect("logout_all");
        assert!(logout_all.expect_refused(401).is_some());
        let revoke = lookup("auth.revoke_session").expect("revoke");
        assert!(
            revoke.expect_refused(404).is_some(),
            "ESUS answers 404 for another user's session too: not proof it ended"
        );
        let check = lookup("api_keys.check_revoked").expect("check");
        assert!(check.expect_refused(200).is_some());
        let rotate = lookup("api_keys.rotate").expect("rotate");
        assert_eq!(rotate.expect_refused(404), None, "not a containment action");
    }
}
