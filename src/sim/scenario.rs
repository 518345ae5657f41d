//! The scenario format: what a simulator starts with (users, sessions, keys, PHI, audit history)
//! as YAML, and the built-in default scenario. Only the file shape lives here; `seed.rs` turns it
//! into live state.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::error::SimError;
use super::roles;
use super::scenario_incident::IncidentSpec;

/// The built-in scenario's YAML text (a realistic key compromise; see the file for the story).
pub const DEFAULT_SCENARIO_YAML: &str = include_str!("default_scenario.yaml");

/// The persistence scenario's YAML text (issue 19): an attacker with an administrator's stolen
/// session and an app's leaked key read patients' records and left webhooks, a Subscription, an
/// invitation, a CORS origin, a SMART app, an API key and a running bulk export behind, beside
/// legitimate look-alikes. Load it with `SimConfig::with_scenario_yaml` or `--scenario`.
pub const PERSISTENCE_SCENARIO_YAML: &str = include_str!("scenarios/persistence.yaml");

/// A scenario: everything the simulator holds when it starts. Times are relative to the start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The one organization every user belongs to.
    pub organization: OrganizationSpec,
    /// Users, with plaintext passwords (hashed with Argon2id at start).
    pub users: Vec<UserSpec>,
    /// Live sessions; their tokens are minted at start unless given.
    #[serde(default)]
    pub sessions: Vec<SessionSpec>,
    /// API keys with known secrets.
    #[serde(default)]
    pub api_keys: Vec<KeySpec>,
    /// Extra generated keys, for fan-out benchmarks.
    #[serde(default)]
    pub generate_keys: Option<GenerateKeys>,
    /// Patients (PHI gated by Consent).
    #[serde(default)]
    pub patients: Vec<PatientSpec>,
    /// Consent records.
    #[serde(default)]
    pub consents: Vec<ConsentSpec>,
    /// Generated audit history before the start.
    #[serde(default)]
    pub audit_history: Option<AuditHistorySpec>,
    /// Which user, key and session the ready file reports as compromised.
    pub compromised: CompromisedSpec,
    /// Switches for behaviour ESUS does not document (each default is the simulator's usual
    /// choice; docs/esus-api.md, "Scenarios").
    #[serde(default, alias = "behavior")]
    pub behaviour: BehaviourSpec,
    /// ESUS system administrators (user ids). Absent: the ready file's admin (the first RBAC
    /// admin without MFA) alone.
    #[serde(default)]
    pub system_admins: Option<Vec<String>>,
    /// An attack already carried out at the start, and what it left behind.
    #[serde(default)]
    pub incident: Option<IncidentSpec>,
}

/// Switches for undocumented ESUS behaviour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourSpec {
    /// `POST /api-keys/{id}/rotate` of a deleted key rotates it (a new live key, the deleted one
    /// marked superseded) instead of answering 404. Default false.
    #[serde(default)]
    pub rotate_deleted_keys: bool,
    /// `GET /smart/authorize` approves every valid request at once, as the ready file's admin,
    /// with a 302 to the redirect URI (no approval page). Default false.
    #[serde(default)]
    pub smart_auto_approve: bool,
}

/// The organization.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSpec {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// User id, e.g. `u-1001`.
    pub id: String,
    /// Login email.
    pub email: String,
    /// Display name; split at the first space into `firstName`/`lastName` unless those are
    /// given.
    pub name: String,
    /// `firstName` of `/auth/me` and `/admin/users` (default: the first word of `name`).
    #[serde(default)]
    pub first_name: Option<String>,
    /// `lastName` (default: the rest of `name`).
    #[serde(default)]
    pub last_name: Option<String>,
    /// Plaintext password (a drill credential; hashed at start).
    pub password: String,
    /// RBAC role slugs (of the six built-in roles).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Organization role: `Admin`, `Member` or `ReadOnly` (default: `Admin` for holders of the
    /// RBAC role `admin`, `Member` otherwise).
    #[serde(default)]
    pub org_role: Option<String>,
    /// When the user joined the organization, in days before the start (default 365).
    #[serde(default = "default_joined")]
    pub joined_days_ago: i64,
    /// If set, login needs a TOTP code (HMAC-SHA256, 6 digits, 30 s) over these bytes.
    #[serde(default)]
    pub mfa_secret: Option<String>,
}

/// A live session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Session id.
    pub id: String,
    /// Its user.
    pub user: String,
    /// Client IP address.
    #[serde(default = "default_ip")]
    pub ip: String,
    /// Client user agent.
    #[serde(default)]
    pub user_agent: String,
    /// Age at start.
    #[serde(default)]
    pub created_minutes_ago: i64,
    /// A literal access token; otherwise a JWT is minted at start.
    #[serde(default)]
    pub access_token: Option<String>,
    /// A literal refresh token; otherwise one is minted at start.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// An API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The user who owns it (the audit agent of its requests).
    pub owner: String,
    /// Client id (the part before `:` in `X-API-Key`).
    pub client_id: String,
    /// The secret (stored as a SHA-256 digest).
    pub secret: String,
    /// Scopes, e.g. `Patient.read` or `*`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Expiry relative to start; negative = already expired; absent = never.
    #[serde(default)]
    pub expires_in_days: Option<i64>,
    /// Age at start.
    #[serde(default)]
    pub created_days_ago: i64,
    /// Whether it is active.
    #[serde(default = "yes")]
    pub active: bool,
    /// Requests per minute (reported, not enforced).
    #[serde(default = "default_rate_limit")]
    pub rate_limit: u32,
    /// Application id (`appId`): a UUID. Requests with the key must then send it as
    /// `X-App-Id`.
    #[serde(default)]
    pub app_id: Option<String>,
}

/// The most keys `generate_keys` may ask for.
const MAX_GENERATED_KEYS: usize = 1_000_000;

/// Many generated keys: `gen-key-00001` … with client ids `ck_gen_00001` and secrets
/// `sk_gen_00001`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeys {
    /// How many.
    pub count: usize,
    /// Their owner.
    pub owner: String,
    /// Their scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A patient.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientSpec {
    /// Patient id.
    pub id: String,
    /// Family name.
    pub family: String,
    /// Given name.
    pub given: String,
    /// Birth date, `YYYY-MM-DD`.
    pub birth_date: String,
}

/// A Consent record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSpec {
    /// Consent id.
    pub id: String,
    /// The patient it covers.
    pub patient: String,
    /// FHIR status: active, inactive, rejected, proposed, draft.
    pub status: String,
    /// Start of its period.
    #[serde(default)]
    pub start_days_ago: i64,
    /// End of its period (in the past = stale); absent = open-ended.
    #[serde(default)]
    pub end_days_ago: Option<i64>,
}

/// Generated audit history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHistorySpec {
    /// Number of rows.
    pub rows: usize,
    /// Spread over this many days before the start.
    #[serde(default = "default_days")]
    pub days: i64,
    /// Who made them, with relative weights.
    pub actors: Vec<ActorSpec>,
}

/// One actor in the generated history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSpec {
    /// User id.
    pub user: String,
    /// Relative share of rows.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// If set, the rows are reads made with this key.
    #[serde(default)]
    pub key: Option<String>,
    /// Source addresses to pick from.
    #[serde(default)]
    pub ips: Vec<String>,
}

/// What the ready file reports as compromised.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompromisedSpec {
    /// The user.
    pub user: String,
    /// The leaked key.
    pub key: String,
    /// The live session.
    pub session: String,
}

fn default_ip() -> String {
    "127.0.0.1".into()
}
fn yes() -> bool {
    true
}
fn default_rate_limit() -> u32 {
    1000
}
fn default_days() -> i64 {
    7
}
fn default_weight() -> u32 {
    1
}
fn default_joined() -> i64 {
    365
}

impl Scenario {
    /// The built-in scenario.
    pub fn builtin() -> Result<Self, SimError> {
        Self::from_yaml(DEFAULT_SCENARIO_YAML, "built-in")
    }

    /// Reads a scenario file.
    pub fn from_file(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ScenarioRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses scenario YAML; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, SimError> {
        serde_yaml::from_str(text).map_err(|e| SimError::Scenario {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Checks the scenario's cross-references before anything is built.
    pub(crate) fn validate(&self, origin: &str) -> Result<(), SimError> {
        let sc = self;
        let users: HashSet<&str> = sc.users.iter().map(|u| u.id.as_str()).collect();
        if users.len() != sc.users.len() {
            return Err(bad(origin, "user ids must be unique"));
        }
        for u in &sc.users {
            if let Some(r) = u.roles.iter().find(|r| !roles::exists(r)) {
                return Err(bad(origin, format!("user {}: unknown role `{r}`", u.id)));
            }
            if let Some(r) = u
                .org_role
                .as_deref()
                .filter(|r| super::state::OrgRole::parse(r).is_none())
            {
                return Err(bad(
                    origin,
                    format!(
                        "user {}: unknown org_role `{r}` (use Admin, Member or ReadOnly)",
                        u.id
                    ),
                ));
            }
        }
        let user_ref = |what: &str, id: &str| {
            if users.contains(id) {
                Ok(())
            } else {
                Err(bad(origin, format!("{what} refers to unknown user `{id}`")))
            }
        };
        for s in &sc.sessions {
            user_ref(&format!("session {}", s.id), &s.user)?;
        }
        for k in &sc.api_keys {
            user_ref(&format!("api key {}", k.id), &k.owner)?;
        }
        if let Some(k) = sc.api_keys.iter().find(|k| {
            k.app_id
                .as_deref()
                .is_some_and(|a| !super::state::is_uuid(a))
        }) {
            return Err(bad(
                origin,
                format!(
                    "api key {}: app_id `{}` is not a UUID (ESUS's appId is `format: uuid`)",
                    k.id,
                    k.app_id.as_deref().unwrap_or_default()
                ),
            ));
        }
        let key_ids: HashSet<&str> = sc.api_keys.iter().map(|k| k.id.as_str()).collect();
        let clients: HashSet<&str> = sc.api_keys.iter().map(|k| k.client_id.as_str()).collect();
        if key_ids.len() != sc.api_keys.len() || clients.len() != sc.api_keys.len() {
            return Err(bad(origin, "api key ids and client ids must be unique"));
        }
        if let Some(g) = &sc.generate_keys {
            user_ref("generate_keys", &g.owner)?;
            // Each key costs the simulator memory and start-up time: a typo must not eat the
            // machine. bench/run.sh asks for 100,000.
            if g.count > MAX_GENERATED_KEYS {
                return Err(bad(
                    origin,
                    format!(
                        "generate_keys.count is {}; at most {MAX_GENERATED_KEYS}",
                        g.count
                    ),
                ));
            }
        }
        let patients: HashSet<&str> = sc.patients.iter().map(|p| p.id.as_str()).collect();
        if let Some(c) = sc
            .consents
            .iter()
            .find(|c| !patients.contains(c.patient.as_str()))
        {
            return Err(bad(
                origin,
                format!("consent {} refers to unknown patient `{}`", c.id, c.patient),
            ));
        }
        if let Some(h) = &sc.audit_history {
            if h.actors.is_empty() {
                return Err(bad(origin, "audit_history needs at least one actor"));
            }
            for a in &h.actors {
                user_ref("audit_history actor", &a.user)?;
            }
        }
        for id in sc.system_admins.iter().flatten() {
            user_ref("system_admins", id)?;
        }
        if let Some(inc) = &sc.incident {
            inc.validate(sc, origin)?;
        }
        let c = &sc.compromised;
        user_ref("compromised", &c.user)?;
        if !sc
            .api_keys
            .iter()
            .any(|k| k.id == c.key && k.owner == c.user)
        {
            return Err(bad(
                origin,
                format!(
                    "compromised key `{}` must be an api_keys entry owned by `{}`",
                    c.key, c.user
                ),
            ));
        }
        if !sc
            .sessions
            .iter()
            .any(|s| s.id == c.session && s.user == c.user)
        {
            return Err(bad(
                origin,
                format!(
                    "compromised session `{}` must be a session of `{}`",
                    c.session, c.user
                ),
            ));
        }
        if !sc
            .users
            .iter()
            .any(|u| u.mfa_secret.is_none() && u.roles.iter().any(|r| r == "admin"))
        {
            return Err(bad(
                origin,
                "the scenario needs an admin user without MFA (for the ready file)",
            ));
        }
        Ok(())
    }
}

fn bad(origin: &str, reason: impl Into<String>) -> SimError {
    SimError::Scenario {
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}
