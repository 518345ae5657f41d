//! The simulator's mutable world: users, sessions and tokens, API keys, audit rows, PHI and
//! subscriptions, behind one short-held lock. Lookups used on every request (token digest, key
//! client id, audit rows by user or patient) are indexed so a request costs the same with 10 or
//! 10 000 rows.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::audit::AuditRow;
use super::audit_chain::{self, ChainLink};
use super::ground_truth::GroundTruth;
use super::leftovers::Leftovers;

/// Whether `text` is a UUID in its canonical hyphenated form (8-4-4-4-12 hex digits, either
/// case): what OpenAPI's `format: uuid` means. The other spellings the `uuid` crate also reads
/// (braced, `urn:uuid:`, no hyphens) are refused (simulator assumption: the hardest reading).
pub(crate) fn is_uuid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
}

/// A SHA-256 digest: how tokens and key secrets are stored (never in plaintext).
pub(crate) type Digest = [u8; 32];

/// A user's role in the organization (`PATCH /admin/users/{id}/role`'s enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrgRole {
    /// Acts as an administrator, whatever its RBAC roles.
    Admin,
    /// Acts by its RBAC roles.
    Member,
    /// Acts by its RBAC roles, GET only on organization routes.
    ReadOnly,
}

impl OrgRole {
    /// Parses the API's spelling.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "Admin" => Some(OrgRole::Admin),
            "Member" => Some(OrgRole::Member),
            "ReadOnly" => Some(OrgRole::ReadOnly),
            _ => None,
        }
    }

    /// The API's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OrgRole::Admin => "Admin",
            OrgRole::Member => "Member",
            OrgRole::ReadOnly => "ReadOnly",
        }
    }
}

/// A user account.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    /// Argon2id PHC string.
    pub(crate) password_hash: String,
    /// RBAC role slugs.
    pub(crate) roles: Vec<String>,
    pub(crate) mfa_secret: Option<Vec<u8>>,
    /// The organization role.
    pub(crate) org_role: OrgRole,
    /// False once removed from the organization (`DELETE /admin/users/{id}`).
    pub(crate) member: bool,
    pub(crate) joined_at: Timestamp,
    /// An ESUS system administrator (`isSystemAdmin`; scenario `system_admins`).
    pub(crate) system_admin: bool,
}

/// A login session; its tokens die with it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) created_at: Timestamp,
    pub(crate) last_seen_at: Timestamp,
    pub(crate) ip: String,
    pub(crate) user_agent: String,
    pub(crate) revoked: bool,
    /// The SMART scopes a session opened by `/smart/token` is limited to (and keeps through
    /// `/auth/refresh`); `None` for a password login, which acts with the user's full rights.
    pub(crate) smart_scopes: Option<Vec<String>>,
}

/// An issued access or refresh token.
#[derive(Debug, Clone)]
pub(crate) struct TokenRec {
    pub(crate) session_id: String,
    pub(crate) expires_at: Timestamp,
}

/// A pending MFA login.
#[derive(Debug, Clone)]
pub(crate) struct MfaPending {
    pub(crate) user_id: String,
    pub(crate) expires_at: Timestamp,
}

/// An API key.
#[derive(Debug, Clone)]
pub(crate) struct ApiKey {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) client_id: String,
    pub(crate) secret_digest: Digest,
    pub(crate) owner: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) last_used_at: Option<Timestamp>,
    pub(crate) active: bool,
    pub(crate) rate_limit: u32,
    pub(crate) superseded_by: Option<String>,
    pub(crate) superseded_at: Option<Timestamp>,
    /// `supersededAt + graceHours`: until then the superseded key still authenticates.
    pub(crate) grace_ends_at: Option<Timestamp>,
    pub(crate) app_id: Option<String>,
    pub(crate) created_at: Timestamp,
    /// Deleted keys stay here as tombstones (for test accessors) but are invisible to the API.
    pub(crate) deleted: bool,
}

impl ApiKey {
    /// Whether the key authenticates at `now`: active, not deleted, not expired, and, if
    /// superseded, still inside its grace window.
    pub(crate) fn usable_at(&self, now: Timestamp) -> Result<(), &'static str> {
        if self.deleted {
            return Err("API key has been deleted");
        }
        if !self.active {
            return Err("API key is inactive");
        }
        if self.expires_at.is_some_and(|t| t <= now) {
            return Err("API key has expired");
        }
        if self.grace_ends_at.is_some_and(|t| t <= now) {
            return Err("API key was rotated and its grace window has ended");
        }
        Ok(())
    }

    /// `active` as the API reports it: false once deactivated or past the grace window.
    pub(crate) fn reported_active(&self, now: Timestamp) -> bool {
        self.active && self.grace_ends_at.is_none_or(|t| t > now)
    }
}

/// A patient (PHI).
#[derive(Debug, Clone)]
pub(crate) struct Patient {
    pub(crate) id: String,
    pub(crate) family: String,
    pub(crate) given: String,
    pub(crate) birth_date: String,
}

/// A FHIR Consent, holding the fields of ESUS's Consent body.
#[derive(Debug, Clone)]
pub(crate) struct Consent {
    pub(crate) id: String,
    pub(crate) patient_id: String,
    pub(crate) status: String,
    /// ESUS's `scope` string (a consentscope code such as `patient-privacy`).
    pub(crate) scope: String,
    pub(crate) performer_id: Option<String>,
    /// `policy` as given (validated).
    pub(crate) policy: Option<serde_json::Value>,
    /// `provision.type`: permit or deny.
    pub(crate) provision_type: Option<String>,
    /// `provision.actor`, `.action`, `.purpose` as given (validated).
    pub(crate) provision_extra: serde_json::Map<String, serde_json::Value>,
    pub(crate) period_start: Option<Timestamp>,
    pub(crate) period_end: Option<Timestamp>,
    pub(crate) date_time: Timestamp,
    pub(crate) version: u64,
    pub(crate) last_updated: Timestamp,
}

impl Consent {
    /// Whether this consent allows PHI access at `now`: active, a permit (or no type), and now
    /// inside its period.
    pub(crate) fn in_force(&self, now: Timestamp) -> bool {
        self.status == "active"
            && self.provision_type.as_deref() != Some("deny")
            && self.period_start.is_none_or(|start| start <= now)
            && self.period_end.is_none_or(|end| end > now)
    }
}

/// A FHIR Subscription, stored as given plus its id and meta.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub(crate) id: String,
    pub(crate) resource: serde_json::Value,
    pub(crate) criteria: super::hooks::Criteria,
    pub(crate) endpoint: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) active: bool,
}

/// Who `audit_trickle` rows name by default: the scenario's compromised user, from the
/// compromised session's address and user agent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attacker {
    pub(crate) user_id: String,
    pub(crate) ip: String,
    pub(crate) user_agent: String,
}

/// Everything mutable, behind `Shared::state`.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) org_id: String,
    pub(crate) org_name: String,
    pub(crate) users: HashMap<String, User>,
    pub(crate) users_by_email: HashMap<String, String>,
    pub(crate) sessions: BTreeMap<String, Session>,
    pub(crate) access_tokens: HashMap<Digest, TokenRec>,
    pub(crate) refresh_tokens: HashMap<Digest, TokenRec>,
    pub(crate) mfa_pending: HashMap<Digest, MfaPending>,
    pub(crate) keys: HashMap<String, ApiKey>,
    /// Key ids in creation order, for stable listings.
    pub(crate) key_order: Vec<String>,
    pub(crate) keys_by_client: HashMap<String, String>,
    pub(crate) audit: Vec<AuditRow>,
    /// The hash-chain link of each row of `audit`, at the same position.
    pub(crate) audit_chain: Vec<ChainLink>,
    pub(crate) audit_by_user: HashMap<String, Vec<usize>>,
    pub(crate) audit_by_patient: HashMap<String, Vec<usize>>,
    pub(crate) patients: BTreeMap<String, Patient>,
    pub(crate) consents: BTreeMap<String, Consent>,
    pub(crate) subscriptions: BTreeMap<String, Subscription>,
    /// Webhooks, SMART apps, CORS origins, invitations, bulk exports.
    pub(crate) leftovers: Leftovers,
    /// What the scenario planted (`SimHandle::ground_truth`).
    pub(crate) ground_truth: GroundTruth,
    pub(crate) next_id: u64,
    pub(crate) attacker: Attacker,
    /// `audit_trickle` rows appended so far.
    pub(crate) trickled: u64,
    /// Scenario switch `behaviour.rotate_deleted_keys`: rotate answers for deleted keys too.
    pub(crate) rotate_deleted_keys: bool,
    /// SMART authorizations shown on the approval page and not yet answered.
    pub(crate) smart_pending: HashMap<String, super::smart::PendingAuthorization>,
    /// Authorization codes, by digest (the code itself is never kept).
    pub(crate) smart_codes: HashMap<Digest, super::smart::AuthCode>,
    /// `/smart/authorize` approves at once, as the ready file's admin (`drill`, scenario switch
    /// `behaviour.smart_auto_approve`).
    pub(crate) smart_auto_approve: bool,
    /// The ready file's admin: who an automatic SMART approval acts as.
    pub(crate) ready_admin: String,
}

impl State {
    /// A fresh sequential id with a prefix (`k-`, `s-`, `sub-`…), distinct from seeded ids.
    pub(crate) fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:05}", 90_000 + self.next_id)
    }

    /// Adds a key and its indexes.
    pub(crate) fn insert_key(&mut self, key: ApiKey) {
        self.keys_by_client
            .insert(key.client_id.clone(), key.id.clone());
        self.key_order.push(key.id.clone());
        self.keys.insert(key.id.clone(), key);
    }

    /// The key a `clientId:secret` credential names, if the secret matches and the key
    /// authenticates at `now` (not deleted, active, unexpired, inside any grace window). Reads
    /// only: `lastUsedAt` is the caller's business. The `X-App-Id` check is the request's.
    pub(crate) fn key_by_credential(
        &self,
        client_id: &str,
        secret: &str,
        now: Timestamp,
    ) -> Option<&ApiKey> {
        let key = self.keys.get(self.keys_by_client.get(client_id)?)?;
        let matches = super::auth::digests_equal(&key.secret_digest, &super::auth::digest(secret));
        (matches && key.usable_at(now).is_ok()).then_some(key)
    }

    /// Whether an access token would authenticate at `now`: issued, unexpired, its session not
    /// ended. Reads only.
    pub(crate) fn access_token_live(&self, token: &str, now: Timestamp) -> bool {
        self.access_tokens
            .get(&super::auth::digest(token))
            .is_some_and(|rec| rec.expires_at > now && self.session_live(&rec.session_id))
    }

    /// Whether `POST /auth/refresh` would accept a refresh token at `now`: unused, unburned,
    /// unexpired, its session not ended. Reads only.
    pub(crate) fn refresh_token_live(&self, token: &str, now: Timestamp) -> bool {
        self.refresh_tokens
            .get(&super::auth::digest(token))
            .is_some_and(|rec| rec.expires_at > now && self.session_live(&rec.session_id))
    }

    /// Whether a session exists and was not logged out or revoked.
    pub(crate) fn session_live(&self, session_id: &str) -> bool {
        self.sessions.get(session_id).is_some_and(|s| !s.revoked)
    }

    /// Whether a tenant app exists: the `appId` of some API key, or an app of a seeded webhook.
    pub(crate) fn tenant_app_exists(&self, app_id: &str) -> bool {
        self.leftovers.apps.contains(app_id)
            || self
                .keys
                .values()
                .any(|k| k.app_id.as_deref() == Some(app_id))
    }

    /// A key the API can see (not deleted).
    pub(crate) fn visible_key(&self, id: &str) -> Option<&ApiKey> {
        self.keys.get(id).filter(|k| !k.deleted)
    }

    /// Appends an audit row, chains and indexes it; returns its position.
    pub(crate) fn push_audit(&mut self, row: AuditRow) -> usize {
        let idx = self.audit.len();
        let last = idx
            .checked_sub(1)
            .and_then(|i| Some((self.audit.get(i)?, self.audit_chain.get(i)?)));
        let link = audit_chain::link_after(last, &row);
        self.audit_chain.push(link);
        if let Some(user) = &row.agent.user_id {
            self.audit_by_user
                .entry(user.clone())
                .or_default()
                .push(idx);
        }
        if let Some(entity) = &row.entity
            && entity.resource_type == "Patient"
            && let Some(id) = &entity.resource_id
        {
            self.audit_by_patient
                .entry(id.clone())
                .or_default()
                .push(idx);
        }
        self.audit.push(row);
        idx
    }

    /// Damages the stored row `row_id` (a test hook); false when there is no such row.
    pub(crate) fn tamper_audit(&mut self, row_id: &str, how: audit_chain::AuditTamper) -> bool {
        let Some(idx) = self.audit.iter().position(|r| r.id == row_id) else {
            return false;
        };
        audit_chain::tamper(&mut self.audit, &mut self.audit_chain, idx, how)
    }

    /// Revokes every live session of a user and burns all the user's refresh tokens; returns
    /// how many sessions it ended.
    pub(crate) fn revoke_sessions_of(&mut self, user_id: &str) -> usize {
        let mut n = 0;
        for s in self.sessions.values_mut() {
            if s.user_id == user_id && !s.revoked {
                s.revoked = true;
                n += 1;
            }
        }
        let sessions = &self.sessions;
        self.refresh_tokens.retain(|_, rec| {
            sessions
                .get(&rec.session_id)
                .is_none_or(|s| s.user_id != user_id)
        });
        n
    }

    /// Revokes one session and burns its refresh tokens.
    pub(crate) fn revoke_session(&mut self, session_id: &str) {
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.revoked = true;
        }
        self.refresh_tokens
            .retain(|_, rec| rec.session_id != session_id);
    }
}
