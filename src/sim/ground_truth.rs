//! What a scenario planted, as the answer key for drills and tests: the attacker's patient
//! accesses, every audit row of the attacker's planted activity, what they left behind, and the
//! legitimate look-alikes a sweep must leave alone. Built once at seed time from the scenario's
//! `incident` (never from requests served later), read with `SimHandle::ground_truth` or
//! `GET /_sim/ground-truth`, so a test compares `esus-ir scope` and a sweep with the truth
//! rather than with the simulator's own API answers.

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use super::state::State;

/// The answer key; empty lists (and no window) for a scenario without an `incident`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroundTruth {
    /// Who the attacker acted as.
    pub attacker: AttackerTruth,
    /// The incident window; `None` when the scenario plants no incident.
    pub window: Option<Window>,
    /// Every audit row written for the attacker's planted activity (ids `a-…`, oldest first),
    /// patient accesses, creations and failed attempts alike.
    pub attacker_rows: Vec<String>,
    /// The attacker's patient accesses (failed ones included, see `outcome`), oldest first.
    pub patient_accesses: Vec<PatientAccess>,
    /// What the attacker left behind.
    pub leftovers: Vec<Planted>,
    /// Objects of the same kinds made by others, or before the window: a sweep must keep them.
    pub look_alikes: Vec<Planted>,
}

/// The attacker's identity in the scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttackerTruth {
    /// The compromised user.
    pub user_id: String,
    /// Sessions the attacker used (the compromised one among them).
    pub session_ids: Vec<String>,
    /// API keys the attacker used (the leaked one among them).
    pub key_ids: Vec<String>,
    /// Source addresses of the attacker's planted rows.
    pub ips: Vec<String>,
}

/// The incident window: every attacker row is inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (inclusive).
    pub end: Timestamp,
}

/// One access of the attacker to a patient's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatientAccess {
    /// The audit row (`a-…`, as the offset routes serve it).
    pub audit_id: String,
    /// The same row's id on `GET /v1/admin/audit/` (a UUID).
    pub event_id: String,
    /// The patient.
    pub patient_id: String,
    /// `Patient` for a read by id, `Observation` for a search by patient, …
    pub resource_type: String,
    /// The row's action (`R` for reads and searches).
    pub action: String,
    /// When.
    pub recorded: Timestamp,
    /// Made with `X-Emergency-Override: true`.
    pub emergency_override: bool,
    /// `success` or `failure` (a refused attempt).
    pub outcome: String,
}

/// The kinds of things a scenario plants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeftoverKind {
    /// A FHIR Subscription (`sub-…`).
    Subscription,
    /// A tenant-app webhook (a UUID).
    Webhook,
    /// A SMART app.
    SmartApp,
    /// A CORS origin (its id is the origin itself).
    CorsOrigin,
    /// An invitation.
    Invitation,
    /// A bulk export job.
    BulkExport,
    /// An API key.
    ApiKey,
    /// A member who joined through an invitation (its id is the user id).
    Member,
}

impl LeftoverKind {
    /// The kebab-case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            LeftoverKind::Subscription => "subscription",
            LeftoverKind::Webhook => "webhook",
            LeftoverKind::SmartApp => "smart-app",
            LeftoverKind::CorsOrigin => "cors-origin",
            LeftoverKind::Invitation => "invitation",
            LeftoverKind::BulkExport => "bulk-export",
            LeftoverKind::ApiKey => "api-key",
            LeftoverKind::Member => "member",
        }
    }
}

impl fmt::Display for LeftoverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One planted object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planted {
    /// Its kind.
    pub kind: LeftoverKind,
    /// Its id as the API names it.
    pub id: String,
    /// The user who made it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// The audit row of its creation (`a-…`).
    pub audit_id: String,
}

/// What a planted object is now, for scoring a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftoverState {
    /// Its kind.
    pub kind: LeftoverKind,
    /// Its id.
    pub id: String,
    /// Whether it still has effect: a Subscription `active`, a webhook or SMART app `active`, an
    /// invitation neither accepted nor expired, an export still running, an API key that
    /// authenticates, a member still in the organization; a CORS origin present is active.
    pub active: bool,
    /// Who made it, as the simulator recorded it (the API may not publish it).
    pub created_by: String,
}

/// The state of an object, or `None` once it is gone from the API.
pub(crate) fn state_of(
    st: &State,
    kind: LeftoverKind,
    id: &str,
    now: Timestamp,
) -> Option<LeftoverState> {
    let lo = &st.leftovers;
    let (active, created_by) = match kind {
        LeftoverKind::Subscription => (
            st.subscriptions.get(id)?.active,
            lo.subscription_creators.get(id).map(|c| c.0.clone()),
        ),
        LeftoverKind::Webhook => lo
            .webhooks
            .get(id)
            .map(|w| (w.active, Some(w.created_by.clone())))?,
        LeftoverKind::SmartApp => lo
            .smart_apps
            .get(id)
            .map(|a| (a.active, Some(a.created_by.clone())))?,
        LeftoverKind::CorsOrigin => lo
            .cors
            .iter()
            .find(|c| c.origin == id)
            .map(|c| (true, Some(c.added_by.clone())))?,
        LeftoverKind::Invitation => lo
            .invitations
            .get(id)
            .map(|i| (i.pending_at(now), Some(i.invited_by.clone())))?,
        LeftoverKind::BulkExport => lo
            .exports
            .get(id)
            .map(|x| (x.running_at(now), Some(x.started_by.clone())))?,
        LeftoverKind::ApiKey => st
            .visible_key(id)
            .map(|k| (k.usable_at(now).is_ok(), Some(k.owner.clone())))?,
        LeftoverKind::Member => (st.users.get(id)?.member, inviter_of(st, id)),
    };
    Some(LeftoverState {
        kind,
        id: id.to_owned(),
        active,
        created_by: created_by.unwrap_or_default(),
    })
}

/// Who invited the user, if they joined through an invitation still on record.
fn inviter_of(st: &State, user_id: &str) -> Option<String> {
    st.leftovers
        .invitations
        .values()
        .find(|i| i.accepted_by.as_deref() == Some(user_id))
        .map(|i| i.invited_by.clone())
}

/// The ids of every object of a kind that exists now (members: users who joined through an
/// invitation on record), in id order (CORS origins in list order).
pub(crate) fn ids_of(st: &State, kind: LeftoverKind) -> Vec<String> {
    let lo = &st.leftovers;
    match kind {
        LeftoverKind::Subscription => st.subscriptions.keys().cloned().collect(),
        LeftoverKind::Webhook => lo.webhooks.keys().cloned().collect(),
        LeftoverKind::SmartApp => lo.smart_apps.keys().cloned().collect(),
        LeftoverKind::CorsOrigin => lo.cors.iter().map(|c| c.origin.clone()).collect(),
        LeftoverKind::Invitation => lo.invitations.keys().cloned().collect(),
        LeftoverKind::BulkExport => lo.exports.keys().cloned().collect(),
        LeftoverKind::ApiKey => st
            .key_order
            .iter()
            .filter(|id| st.visible_key(id).is_some())
            .cloned()
            .collect(),
        LeftoverKind::Member => {
            let mut ids: Vec<String> = lo
                .invitations
                .values()
                .filter_map(|i| i.accepted_by.clone())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        }
    }
}
