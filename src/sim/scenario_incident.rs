//! The scenario's optional `incident:` section: an attack already carried out when the simulator
//! starts — who acted (`actors`, the attacker's marked), the audit rows of what they did
//! (`events`), and what they and others created (Subscriptions, webhooks, SMART apps, CORS
//! origins, invitations, bulk exports, API keys). Only the file shape and its checks live here;
//! `seed_incident.rs` turns it into state, audit rows and the ground truth.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::error::SimError;
use super::leftovers::WEBHOOK_EVENTS;
use super::scenario::Scenario;
use super::state::is_uuid;

/// The incident. Times are minutes before the start (fractions allowed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSpec {
    /// The window the attacker acted in; every item of an attacker actor must fall inside it.
    pub window: WindowSpec,
    /// Named actors: a session or an API key through which things were done.
    pub actors: BTreeMap<String, ActorSpec>,
    /// Audit rows of requests that changed nothing the simulator models (reads, refused
    /// attempts).
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// FHIR Subscriptions.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSpec>,
    /// Tenant-app webhooks.
    #[serde(default)]
    pub webhooks: Vec<WebhookSpec>,
    /// SMART apps.
    #[serde(default)]
    pub smart_apps: Vec<SmartAppSpec>,
    /// CORS origins, in the order ESUS lists them.
    #[serde(default)]
    pub cors_origins: Vec<CorsSpec>,
    /// Invitations.
    #[serde(default)]
    pub invitations: Vec<InvitationSpec>,
    /// Bulk exports.
    #[serde(default)]
    pub bulk_exports: Vec<ExportSpec>,
    /// API keys created through the API (with a creation row), unlike the scenario's `api_keys`.
    #[serde(default)]
    pub api_keys: Vec<PlantedKeySpec>,
}

/// The incident window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Its start, minutes before the simulator's start.
    pub start_minutes_ago: f64,
    /// Its end (0 = the start of the simulator).
    pub end_minutes_ago: f64,
}

/// Through what an actor acted: exactly one of `session` and `key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSpec {
    /// A session of the scenario (its user, address and user agent).
    #[serde(default)]
    pub session: Option<String>,
    /// An API key of the scenario (`api_keys` or `incident.api_keys`; its owner).
    #[serde(default)]
    pub key: Option<String>,
    /// Source address (default: the session's; `127.0.0.1` for a key).
    #[serde(default)]
    pub ip: Option<String>,
    /// User agent (default: the session's; empty for a key).
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Whether this is the attacker (their items are the ground truth's).
    #[serde(default)]
    pub attacker: bool,
}

/// An audit row with no other effect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// The actor.
    pub by: String,
    /// When.
    pub minutes_ago: f64,
    /// The row's `type` (default `resource.read`).
    #[serde(rename = "type", default = "default_event_type")]
    pub kind: String,
    /// C, R, U, D or E (default R).
    #[serde(default = "default_action")]
    pub action: String,
    /// `ResourceType/id` or a bare resource type (for searches).
    #[serde(default)]
    pub entity: Option<String>,
    /// The search query (e.g. `patient=p-0002`).
    #[serde(default)]
    pub query: Option<String>,
    /// Made with `X-Emergency-Override: true`.
    #[serde(default)]
    pub emergency_override: bool,
    /// `success`, `failure` or `error` (default success).
    #[serde(default = "default_outcome")]
    pub outcome: String,
    /// Why it failed.
    #[serde(default)]
    pub outcome_desc: Option<String>,
}

/// A FHIR Subscription with a rest-hook channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Its id.
    pub id: String,
    /// The actor who created it.
    pub by: String,
    /// When.
    pub minutes_ago: f64,
    /// `criteria`.
    pub criteria: String,
    /// `channel.endpoint`.
    pub endpoint: String,
    /// `status` (default active).
    #[serde(default = "default_sub_status")]
    pub status: String,
    /// `reason`.
    #[serde(default)]
    pub reason: Option<String>,
    /// `channel.header`.
    #[serde(default)]
    pub header: Vec<String>,
}

/// A tenant-app webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Its id (a UUID).
    pub id: String,
    /// Its tenant app (a UUID; the app becomes known if no key names it).
    pub app: String,
    /// Where it delivers.
    pub url: String,
    /// Events, from postTenant-appsByIdWebhooks's enum.
    pub events: Vec<String>,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
    /// `active` (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// The actor who created it.
    pub by: String,
    /// When.
    pub minutes_ago: f64,
    /// Recent delivery records.
    #[serde(default)]
    pub deliveries: Vec<DeliverySpec>,
}

/// One delivery record of a webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySpec {
    /// `eventType`.
    pub event_type: String,
    /// When it was created.
    pub minutes_ago: f64,
    /// pending, delivered, failed or dead (default delivered).
    #[serde(default = "default_delivery_status")]
    pub status: String,
    /// `lastStatusCode` (default 200 when delivered).
    #[serde(default)]
    pub status_code: Option<u16>,
    /// `lastError`.
    #[serde(default)]
    pub error: Option<String>,
}

/// A SMART app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartAppSpec {
    /// Its id.
    pub id: String,
    /// Its OAuth client id.
    pub client_id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
    /// `redirectUris`.
    pub redirect_uris: Vec<String>,
    /// `scopes`.
    pub scopes: Vec<String>,
    /// `isConfidential`.
    #[serde(default)]
    pub confidential: bool,
    /// `active` (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// The actor who registered it.
    pub by: String,
    /// When.
    pub minutes_ago: f64,
}

/// A CORS origin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// `scheme://host[:port]`.
    pub origin: String,
    /// The actor who added it.
    pub by: String,
    /// When.
    pub minutes_ago: f64,
}

/// An invitation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationSpec {
    /// Its id.
    pub id: String,
    /// Who was invited.
    pub email: String,
    /// `owner` or `member` (default member).
    #[serde(default = "default_invite_role")]
    pub role: String,
    /// The actor who invited.
    pub by: String,
    /// When.
    pub minutes_ago: f64,
    /// The user (of `users`) who accepted it: they joined the organization then, with the
    /// invitation's role (`owner` = organization role Admin).
    #[serde(default)]
    pub accepted_by: Option<String>,
    /// When it was accepted (required with `accepted_by`).
    #[serde(default)]
    pub accepted_minutes_ago: Option<f64>,
}

/// A bulk export job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// Its id.
    pub id: String,
    /// `system` (`/fhir/$export`) or `patient` (`/fhir/Patient/$export`); default system.
    #[serde(default = "default_export_level")]
    pub level: String,
    /// Resource types (default Patient, Observation).
    #[serde(default = "default_export_types")]
    pub types: Vec<String>,
    /// The actor who started it.
    pub by: String,
    /// When.
    pub minutes_ago: f64,
    /// How long it runs in all (default 600 minutes).
    #[serde(default = "default_export_minutes")]
    pub runs_minutes: f64,
}

/// An API key created through the API during the incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantedKeySpec {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Client id.
    pub client_id: String,
    /// Secret.
    pub secret: String,
    /// Scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The actor who created it (its owner is that actor's user).
    pub by: String,
    /// When.
    pub minutes_ago: f64,
}

fn default_event_type() -> String {
    "resource.read".into()
}
fn default_action() -> String {
    "R".into()
}
fn default_outcome() -> String {
    "success".into()
}
fn default_sub_status() -> String {
    "active".into()
}
fn default_delivery_status() -> String {
    "delivered".into()
}
fn default_invite_role() -> String {
    "member".into()
}
fn default_export_level() -> String {
    "system".into()
}
fn default_export_types() -> Vec<String> {
    vec!["Patient".into(), "Observation".into()]
}
fn default_export_minutes() -> f64 {
    600.0
}
fn yes() -> bool {
    true
}

/// The longest time a scenario may name: ten years, in minutes.
const MAX_MINUTES: f64 = 10.0 * 366.0 * 24.0 * 60.0;

/// A time in minutes must be finite, not negative, and at most ten years.
fn check_minutes(origin: &str, what: &str, value: f64) -> Result<(), SimError> {
    if value.is_finite() && (0.0..=MAX_MINUTES).contains(&value) {
        Ok(())
    } else {
        Err(bad(
            origin,
            format!("incident {what}: minutes must be between 0 and {MAX_MINUTES}"),
        ))
    }
}

/// Every other time of the section (window, deliveries, acceptances, run times).
fn other_minutes(inc: &IncidentSpec) -> Vec<(String, f64)> {
    let mut out = vec![
        ("window".to_owned(), inc.window.start_minutes_ago),
        ("window".to_owned(), inc.window.end_minutes_ago),
    ];
    for w in &inc.webhooks {
        out.extend(
            w.deliveries
                .iter()
                .map(|d| (format!("webhook {} delivery", w.id), d.minutes_ago)),
        );
    }
    for i in &inc.invitations {
        out.extend(
            i.accepted_minutes_ago
                .map(|m| (format!("invitation {}", i.id), m)),
        );
    }
    for x in &inc.bulk_exports {
        out.push((format!("bulk export {}", x.id), x.runs_minutes));
    }
    out
}

fn bad(origin: &str, reason: impl Into<String>) -> SimError {
    SimError::Scenario {
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}

/// `(what, by, minutes_ago)` of every item made by an actor.
fn items(inc: &IncidentSpec) -> Vec<(String, &str, f64)> {
    let mut out: Vec<(String, &str, f64)> = Vec::new();
    for e in &inc.events {
        out.push((format!("event {}", e.kind), &e.by, e.minutes_ago));
    }
    for s in &inc.subscriptions {
        out.push((format!("subscription {}", s.id), &s.by, s.minutes_ago));
    }
    for w in &inc.webhooks {
        out.push((format!("webhook {}", w.id), &w.by, w.minutes_ago));
    }
    for a in &inc.smart_apps {
        out.push((format!("smart app {}", a.id), &a.by, a.minutes_ago));
    }
    for c in &inc.cors_origins {
        out.push((format!("cors origin {}", c.origin), &c.by, c.minutes_ago));
    }
    for i in &inc.invitations {
        out.push((format!("invitation {}", i.id), &i.by, i.minutes_ago));
    }
    for x in &inc.bulk_exports {
        out.push((format!("bulk export {}", x.id), &x.by, x.minutes_ago));
    }
    for k in &inc.api_keys {
        out.push((format!("api key {}", k.id), &k.by, k.minutes_ago));
    }
    out
}

impl IncidentSpec {
    /// Checks the section against itself and the rest of the scenario.
    pub(crate) fn validate(&self, sc: &Scenario, origin: &str) -> Result<(), SimError> {
        for (what, m) in other_minutes(self) {
            check_minutes(origin, &what, m)?;
        }
        let w = &self.window;
        let ordered = w.start_minutes_ago.is_finite() && w.start_minutes_ago > w.end_minutes_ago;
        if !ordered || w.end_minutes_ago < 0.0 {
            return Err(bad(
                origin,
                "incident.window: start_minutes_ago must be greater than end_minutes_ago >= 0",
            ));
        }
        self.validate_actors(sc, origin)?;
        for (what, by, at) in items(self) {
            let actor = self
                .actors
                .get(by)
                .ok_or_else(|| bad(origin, format!("incident {what}: unknown actor `{by}`")))?;
            check_minutes(origin, &what, at)?;
            let inside = at <= w.start_minutes_ago && at >= w.end_minutes_ago;
            if actor.attacker && !inside {
                return Err(bad(
                    origin,
                    format!("incident {what}: the attacker's items must fall inside the window"),
                ));
            }
        }
        self.validate_events(sc, origin)?;
        self.validate_objects(sc, origin)
    }

    fn validate_actors(&self, sc: &Scenario, origin: &str) -> Result<(), SimError> {
        for (name, a) in &self.actors {
            let ok = match (&a.session, &a.key) {
                (Some(s), None) => sc.sessions.iter().any(|x| &x.id == s),
                (None, Some(k)) => {
                    sc.api_keys.iter().any(|x| &x.id == k)
                        || self.api_keys.iter().any(|x| &x.id == k)
                }
                _ => false,
            };
            if !ok {
                return Err(bad(
                    origin,
                    format!("incident actor `{name}`: give exactly one known `session` or `key`"),
                ));
            }
        }
        Ok(())
    }

    fn validate_events(&self, sc: &Scenario, origin: &str) -> Result<(), SimError> {
        for e in &self.events {
            if !["C", "R", "U", "D", "E"].contains(&e.action.as_str()) {
                return Err(bad(
                    origin,
                    format!("incident event: action `{}`", e.action),
                ));
            }
            if !["success", "failure", "error"].contains(&e.outcome.as_str()) {
                return Err(bad(
                    origin,
                    format!("incident event: outcome `{}`", e.outcome),
                ));
            }
            if let Some(p) = e.patient()
                && !sc.patients.iter().any(|x| x.id == p)
            {
                return Err(bad(
                    origin,
                    format!("incident event: unknown patient `{p}`"),
                ));
            }
        }
        Ok(())
    }

    fn validate_objects(&self, sc: &Scenario, origin: &str) -> Result<(), SimError> {
        let mut ids = HashSet::new();
        let all_ids = self
            .subscriptions
            .iter()
            .map(|s| &s.id)
            .chain(self.webhooks.iter().map(|w| &w.id))
            .chain(self.smart_apps.iter().map(|a| &a.id))
            .chain(self.invitations.iter().map(|i| &i.id))
            .chain(self.bulk_exports.iter().map(|x| &x.id))
            .chain(self.api_keys.iter().map(|k| &k.id))
            .chain(self.cors_origins.iter().map(|c| &c.origin));
        for id in all_ids {
            if !ids.insert(id.as_str()) || sc.api_keys.iter().any(|k| &k.id == id) {
                return Err(bad(origin, format!("incident: id `{id}` is used twice")));
            }
        }
        for w in &self.webhooks {
            if !is_uuid(&w.id) || !is_uuid(&w.app) {
                return Err(bad(
                    origin,
                    format!("webhook {}: id and app must be UUIDs", w.id),
                ));
            }
            if let Some(e) = w
                .events
                .iter()
                .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
            {
                return Err(bad(
                    origin,
                    format!("webhook {}: unknown event `{e}`", w.id),
                ));
            }
        }
        for i in &self.invitations {
            if !["owner", "member"].contains(&i.role.as_str()) {
                return Err(bad(
                    origin,
                    format!("invitation {}: role owner or member", i.id),
                ));
            }
            let accepted = (&i.accepted_by, i.accepted_minutes_ago);
            let ok = match accepted {
                (None, None) => true,
                (Some(u), Some(_)) => sc.users.iter().any(|x| &x.id == u),
                _ => false,
            };
            if !ok {
                return Err(bad(
                    origin,
                    format!(
                        "invitation {}: accepted_by (a user) and accepted_minutes_ago go together",
                        i.id
                    ),
                ));
            }
        }
        if let Some(x) = self
            .bulk_exports
            .iter()
            .find(|x| !["system", "patient"].contains(&x.level.as_str()))
        {
            return Err(bad(
                origin,
                format!("bulk export {}: level system or patient", x.id),
            ));
        }
        Ok(())
    }
}

impl EventSpec {
    /// The patient the row is about: `Patient/<id>`, or `patient=<id>` in the search query.
    pub(crate) fn patient(&self) -> Option<&str> {
        if let Some(("Patient", id)) = self.entity.as_deref().and_then(|e| e.split_once('/')) {
            return Some(id);
        }
        self.query
            .as_deref()?
            .split('&')
            .find_map(|p| p.strip_prefix("patient="))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::scenario::{DEFAULT_SCENARIO_YAML, PERSISTENCE_SCENARIO_YAML};
    use super::*;

    #[test]
    fn the_bundled_scenarios_parse_and_validate() {
        for (yaml, incident) in [
            (DEFAULT_SCENARIO_YAML, false),
            (PERSISTENCE_SCENARIO_YAML, true),
        ] {
            let sc = Scenario::from_yaml(yaml, "t").unwrap();
            sc.validate("t").unwrap();
            assert_eq!(sc.incident.is_some(), incident);
        }
    }

    #[test]
    fn an_attacker_item_outside_the_window_is_refused() {
        let yaml = PERSISTENCE_SCENARIO_YAML.replace(
            "{ by: attacker, minutes_ago: 170, entity: Patient/p-0001 }",
            "{ by: attacker, minutes_ago: 190, entity: Patient/p-0001 }",
        );
        let err = Scenario::from_yaml(&yaml, "t")
            .unwrap()
            .validate("t")
            .unwrap_err();
        assert!(err.to_string().contains("inside the window"), "{err}");
    }

    #[test]
    fn unknown_incident_fields_and_actors_are_refused() {
        let typo = PERSISTENCE_SCENARIO_YAML.replace("runs_minutes: 600", "run_minutes: 600");
        assert!(Scenario::from_yaml(&typo, "t").is_err());
        let ghost = PERSISTENCE_SCENARIO_YAML.replace(
            "by: attacker, minutes_ago: 60",
            "by: ghost, minutes_ago: 60",
        );
        let err = Scenario::from_yaml(&ghost, "t")
            .unwrap()
            .validate("t")
            .unwrap_err();
        assert!(err.to_string().contains("unknown actor `ghost`"), "{err}");
    }
}
