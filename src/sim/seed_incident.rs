//! Turns a scenario's `incident:` into live state: the objects its actors created (each with the
//! audit row its creating request would have written) and the rows of what else they did, marked
//! for the ground truth. The rows are returned unnumbered: `seed.rs` merges them with the
//! generated history in time order before numbering and chaining them, so `recorded` never goes
//! back along the log.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::audit::{Agent, AuditRow, Entity, Source};
use super::auth;
use super::error::SimError;
use super::ground_truth::{GroundTruth, LeftoverKind, PatientAccess, Planted, Window};
use super::hooks::Criteria;
use super::ids::{audit_event_id, derived_uuid};
use super::leftovers::{BulkExport, CorsOrigin, Invitation, SmartApp, Webhook, WebhookDelivery};
use super::routes::subscriptions;
use super::scenario::Scenario;
use super::scenario_incident::{
    EventSpec, ExportSpec, IncidentSpec, InvitationSpec, SmartAppSpec, SubscriptionSpec,
    WebhookSpec,
};
use super::state::{ApiKey, OrgRole, State};

/// Invitations expire this long after they are sent (simulator assumption).
pub(crate) const INVITATION_TTL: SignedDuration = SignedDuration::from_hours(7 * 24);

/// What a planted row stands for in the ground truth.
#[derive(Debug, Clone)]
pub(crate) enum Mark {
    /// Nothing beyond being the actor's row.
    Plain,
    /// An access to a patient's data.
    Access { patient: String },
    /// The creation of an object.
    Created {
        kind: LeftoverKind,
        id: String,
        by: String,
    },
}

/// An audit row to be numbered and pushed, with its meaning.
#[derive(Debug, Clone)]
pub(crate) struct PlannedRow {
    pub(crate) row: AuditRow,
    pub(crate) attacker: bool,
    pub(crate) mark: Mark,
}

/// A resolved actor.
struct Actor {
    user_id: String,
    email: Option<String>,
    roles: Vec<String>,
    ip: String,
    user_agent: String,
    attacker: bool,
}

fn minutes(m: f64) -> SignedDuration {
    // Validation keeps every time finite and within ten years; zero is only a backstop.
    SignedDuration::try_from_secs_f64(m * 60.0).unwrap_or(SignedDuration::ZERO)
}

fn bad(reason: impl Into<String>) -> SimError {
    SimError::Scenario {
        origin: "incident".into(),
        reason: reason.into(),
    }
}

/// The context every planting step shares.
struct Planter<'a> {
    st: &'a mut State,
    sc: &'a Scenario,
    inc: &'a IncidentSpec,
    now: Timestamp,
    base_url: &'a str,
    rows: Vec<PlannedRow>,
}

/// Seeds the incident's objects into `st` and returns its rows, unnumbered.
pub(crate) fn seed_incident(
    st: &mut State,
    sc: &Scenario,
    inc: &IncidentSpec,
    now: Timestamp,
    base_url: &str,
) -> Result<Vec<PlannedRow>, SimError> {
    let mut p = Planter {
        st,
        sc,
        inc,
        now,
        base_url,
        rows: Vec::new(),
    };
    p.keys()?;
    p.events()?;
    p.subscriptions()?;
    p.webhooks()?;
    p.smart_apps()?;
    p.cors()?;
    p.invitations()?;
    p.exports()?;
    Ok(p.rows)
}

impl Planter<'_> {
    fn actor(&self, name: &str) -> Result<Actor, SimError> {
        let spec = self
            .inc
            .actors
            .get(name)
            .ok_or_else(|| bad(format!("unknown actor `{name}`")))?;
        let (user_id, ip, ua) = match (&spec.session, &spec.key) {
            (Some(s), _) => {
                let sess = self.sc.sessions.iter().find(|x| &x.id == s);
                let sess = sess.ok_or_else(|| bad(format!("unknown session `{s}`")))?;
                (sess.user.clone(), sess.ip.clone(), sess.user_agent.clone())
            }
            (None, Some(k)) => {
                let key = self
                    .st
                    .keys
                    .get(k)
                    .ok_or_else(|| bad(format!("unknown key `{k}`")))?;
                (key.owner.clone(), "127.0.0.1".to_owned(), String::new())
            }
            (None, None) => return Err(bad(format!("actor `{name}` has no session or key"))),
        };
        let user = self.st.users.get(&user_id);
        Ok(Actor {
            email: user.map(|u| u.email.clone()),
            roles: user.map(|u| u.roles.clone()).unwrap_or_default(),
            user_id,
            ip: spec.ip.clone().unwrap_or(ip),
            user_agent: spec.user_agent.clone().unwrap_or(ua),
            attacker: spec.attacker,
        })
    }

    fn at(&self, minutes_ago: f64) -> Timestamp {
        self.now - minutes(minutes_ago)
    }

    /// A successful row by `actor` at `when`.
    fn row(
        &self,
        actor: &Actor,
        when: Timestamp,
        kind: &str,
        action: &str,
        entity: Entity,
    ) -> AuditRow {
        AuditRow {
            id: String::new(),
            organization_id: Some(self.st.org_id.clone()),
            kind: kind.to_owned(),
            subtype: None,
            action: action.to_owned(),
            outcome: "success".into(),
            outcome_desc: None,
            agent: Agent {
                user_id: Some(actor.user_id.clone()),
                email: actor.email.clone(),
                ip: actor.ip.clone(),
                user_agent: actor.user_agent.clone(),
                roles: actor.roles.clone(),
                emergency_override: false,
            },
            source: Some(Source {
                site: "esus-sim".into(),
                observer: "esus-sim".into(),
            }),
            entity: Some(entity),
            recorded: when,
            request_id: None,
        }
    }

    /// Plants the creation row of an object.
    fn created(
        &mut self,
        actor: &Actor,
        when: Timestamp,
        class: (&str, &str),
        kind: LeftoverKind,
        entity: Entity,
        id: &str,
    ) {
        let row = self.row(actor, when, class.0, class.1, entity);
        self.rows.push(PlannedRow {
            row,
            attacker: actor.attacker,
            mark: Mark::Created {
                kind,
                id: id.to_owned(),
                by: actor.user_id.clone(),
            },
        });
    }

    fn events(&mut self) -> Result<(), SimError> {
        for e in &self.inc.events {
            let actor = self.actor(&e.by)?;
            let row = self.event_row(&actor, e);
            let mark = match e.patient() {
                Some(p) => Mark::Access {
                    patient: p.to_owned(),
                },
                None => Mark::Plain,
            };
            self.rows.push(PlannedRow {
                row,
                attacker: actor.attacker,
                mark,
            });
        }
        Ok(())
    }

    fn event_row(&self, actor: &Actor, e: &EventSpec) -> AuditRow {
        let entity = e.entity.as_deref().map(|text| match text.split_once('/') {
            Some((rt, id)) => Entity::new(rt, Some(id), e.query.as_deref()),
            None => Entity::new(text, None, e.query.as_deref()),
        });
        let mut row = self.row(
            actor,
            self.at(e.minutes_ago),
            &e.kind,
            &e.action,
            Entity::new("", None, None),
        );
        row.entity = entity;
        row.outcome = e.outcome.clone();
        row.outcome_desc = e.outcome_desc.clone();
        row.agent.emergency_override = e.emergency_override;
        row.subtype = e
            .emergency_override
            .then(|| "emergency-override".to_owned());
        row
    }

    fn keys(&mut self) -> Result<(), SimError> {
        // Keys first: an actor may act through a key the incident created.
        for k in &self.inc.api_keys {
            let when = self.at(k.minutes_ago);
            let owner = self.owner_of(&k.by)?;
            self.st.insert_key(ApiKey {
                id: k.id.clone(),
                name: k.name.clone(),
                client_id: k.client_id.clone(),
                secret_digest: auth::digest(&k.secret),
                owner,
                scopes: k.scopes.clone(),
                expires_at: None,
                last_used_at: None,
                active: true,
                rate_limit: 1000,
                superseded_by: None,
                superseded_at: None,
                grace_ends_at: None,
                app_id: None,
                created_at: when,
                deleted: false,
            });
        }
        for k in &self.inc.api_keys {
            let actor = self.actor(&k.by)?;
            let when = self.at(k.minutes_ago);
            let entity = Entity::new("ApiKey", Some(&k.id), None);
            self.created(
                &actor,
                when,
                ("apikey.create", "C"),
                LeftoverKind::ApiKey,
                entity,
                &k.id,
            );
        }
        Ok(())
    }

    /// The user an actor acts as, before keys exist (a key actor's key may be planted itself).
    fn owner_of(&self, actor: &str) -> Result<String, SimError> {
        let spec = self
            .inc
            .actors
            .get(actor)
            .ok_or_else(|| bad(format!("unknown actor `{actor}`")))?;
        if let Some(s) = &spec.session {
            return self
                .sc
                .sessions
                .iter()
                .find(|x| &x.id == s)
                .map(|x| x.user.clone())
                .ok_or_else(|| bad(format!("unknown session `{s}`")));
        }
        let key = spec.key.as_deref().unwrap_or_default();
        self.sc
            .api_keys
            .iter()
            .find(|k| k.id == key)
            .map(|k| k.owner.clone())
            .ok_or_else(|| {
                bad(format!(
                    "actor `{actor}`: a key actor cannot create API keys"
                ))
            })
    }

    fn subscriptions(&mut self) -> Result<(), SimError> {
        for s in &self.inc.subscriptions {
            let actor = self.actor(&s.by)?;
            let when = self.at(s.minutes_ago);
            let sub = subscription(s, when)?;
            self.st
                .leftovers
                .subscription_creators
                .insert(s.id.clone(), (actor.user_id.clone(), when));
            self.st.subscriptions.insert(s.id.clone(), sub);
            let entity = Entity::new("Subscription", Some(&s.id), None);
            self.created(
                &actor,
                when,
                ("resource.create", "C"),
                LeftoverKind::Subscription,
                entity,
                &s.id,
            );
        }
        Ok(())
    }

    fn webhooks(&mut self) -> Result<(), SimError> {
        for w in &self.inc.webhooks {
            let actor = self.actor(&w.by)?;
            let when = self.at(w.minutes_ago);
            self.st.leftovers.apps.insert(w.app.clone());
            let hook = webhook(w, &actor.user_id, when);
            let deliveries = deliveries(w, self.now);
            self.st.leftovers.webhooks.insert(w.id.clone(), hook);
            self.st.leftovers.deliveries.extend(deliveries);
            let entity = Entity::new("Webhook", Some(&w.id), None);
            self.created(
                &actor,
                when,
                ("webhook.create", "C"),
                LeftoverKind::Webhook,
                entity,
                &w.id,
            );
        }
        Ok(())
    }

    fn smart_apps(&mut self) -> Result<(), SimError> {
        for a in &self.inc.smart_apps {
            let actor = self.actor(&a.by)?;
            let when = self.at(a.minutes_ago);
            self.st
                .leftovers
                .smart_apps
                .insert(a.id.clone(), smart_app(a, &actor.user_id, when));
            let entity = Entity::new("SmartApp", Some(&a.id), None);
            self.created(
                &actor,
                when,
                ("smartapp.create", "C"),
                LeftoverKind::SmartApp,
                entity,
                &a.id,
            );
        }
        Ok(())
    }

    fn cors(&mut self) -> Result<(), SimError> {
        for c in &self.inc.cors_origins {
            let actor = self.actor(&c.by)?;
            let when = self.at(c.minutes_ago);
            self.st.leftovers.cors.push(CorsOrigin {
                origin: c.origin.clone(),
                added_by: actor.user_id.clone(),
                added_at: when,
            });
            let org = self.st.org_id.clone();
            let entity = Entity::new("Organization", Some(&org), None);
            self.created(
                &actor,
                when,
                ("cors.update", "U"),
                LeftoverKind::CorsOrigin,
                entity,
                &c.origin,
            );
        }
        Ok(())
    }

    fn invitations(&mut self) -> Result<(), SimError> {
        for i in &self.inc.invitations {
            let actor = self.actor(&i.by)?;
            let when = self.at(i.minutes_ago);
            let accepted_at = i.accepted_minutes_ago.map(|m| self.at(m));
            let inv = invitation(i, &actor.user_id, when, accepted_at);
            self.st.leftovers.invitations.insert(i.id.clone(), inv);
            let entity = Entity::new("Invitation", Some(&i.id), None);
            self.created(
                &actor,
                when,
                ("invitation.create", "C"),
                LeftoverKind::Invitation,
                entity,
                &i.id,
            );
            if let (Some(user), Some(at)) = (&i.accepted_by, accepted_at) {
                self.accept(i, user, at, &actor)?;
            }
        }
        Ok(())
    }

    /// The invited user joined: a member with the invitation's role since `at`, and the
    /// acceptance row (theirs).
    fn accept(
        &mut self,
        i: &InvitationSpec,
        user_id: &str,
        at: Timestamp,
        inviter: &Actor,
    ) -> Result<(), SimError> {
        let user = self
            .st
            .users
            .get_mut(user_id)
            .ok_or_else(|| bad(format!("invitation {}: unknown user `{user_id}`", i.id)))?;
        user.joined_at = at;
        user.org_role = if i.role == "owner" {
            OrgRole::Admin
        } else {
            OrgRole::Member
        };
        let joined = Actor {
            user_id: user.id.clone(),
            email: Some(user.email.clone()),
            roles: user.roles.clone(),
            ip: inviter.ip.clone(),
            user_agent: inviter.user_agent.clone(),
            attacker: inviter.attacker,
        };
        let row = self.row(
            &joined,
            at,
            "invitation.accept",
            "E",
            Entity::new("Invitation", Some(&i.id), None),
        );
        self.rows.push(PlannedRow {
            row,
            attacker: inviter.attacker,
            mark: Mark::Created {
                kind: LeftoverKind::Member,
                id: user_id.to_owned(),
                by: inviter.user_id.clone(),
            },
        });
        Ok(())
    }

    fn exports(&mut self) -> Result<(), SimError> {
        for x in &self.inc.bulk_exports {
            let actor = self.actor(&x.by)?;
            let when = self.at(x.minutes_ago);
            let (job, query) = export(x, &actor.user_id, when, self.base_url);
            self.st.leftovers.exports.insert(x.id.clone(), job);
            let entity = Entity::new("BulkExport", Some(&x.id), Some(&query));
            self.created(
                &actor,
                when,
                ("bulkexport.start", "C"),
                LeftoverKind::BulkExport,
                entity,
                &x.id,
            );
        }
        Ok(())
    }
}

fn subscription(
    s: &SubscriptionSpec,
    when: Timestamp,
) -> Result<super::state::Subscription, SimError> {
    let mut resource = json!({
        "resourceType": "Subscription", "status": s.status, "criteria": s.criteria,
        "channel": {"type": "rest-hook", "endpoint": s.endpoint,
                    "payload": "application/fhir+json", "header": s.header},
    });
    if let Some(r) = &s.reason {
        resource["reason"] = json!(r);
    }
    Criteria::parse(&s.criteria).map_err(|e| bad(format!("subscription {}: {e}", s.id)))?;
    subscriptions::parse(resource, &s.id, when, 1)
        .map_err(|_| bad(format!("subscription {}: not a valid Subscription", s.id)))
}

fn webhook(w: &WebhookSpec, by: &str, when: Timestamp) -> Webhook {
    Webhook {
        id: w.id.clone(),
        app_id: w.app.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        description: w.description.clone(),
        active: w.active,
        secret: auth::random_secret("whsec_", 24),
        created_at: when,
        updated_at: when,
        created_by: by.to_owned(),
    }
}

fn deliveries(w: &WebhookSpec, now: Timestamp) -> Vec<WebhookDelivery> {
    w.deliveries
        .iter()
        .enumerate()
        .map(|(n, d)| {
            let at = now - minutes(d.minutes_ago);
            let delivered = d.status == "delivered";
            WebhookDelivery {
                id: derived_uuid(&format!("urn:esus-sim:delivery:{}:{n}", w.id)),
                webhook_id: w.id.clone(),
                event_id: format!("evt-{:05}", n + 1),
                event_type: d.event_type.clone(),
                status: d.status.clone(),
                attempts: 1,
                last_status_code: d.status_code.or(delivered.then_some(200)),
                last_error: d.error.clone(),
                last_attempt_at: Some(at),
                delivered_at: delivered.then_some(at),
                created_at: at,
            }
        })
        .collect()
}

fn smart_app(a: &SmartAppSpec, by: &str, when: Timestamp) -> SmartApp {
    SmartApp {
        id: a.id.clone(),
        client_id: a.client_id.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        redirect_uris: a.redirect_uris.clone(),
        scopes: a.scopes.clone(),
        launch_uri: None,
        logo_uri: None,
        is_confidential: a.confidential,
        active: a.active,
        created_at: when,
        updated_at: when,
        created_by: by.to_owned(),
    }
}

fn invitation(
    i: &InvitationSpec,
    by: &str,
    when: Timestamp,
    accepted_at: Option<Timestamp>,
) -> Invitation {
    Invitation {
        id: i.id.clone(),
        email: i.email.clone(),
        role: i.role.clone(),
        invited_by: by.to_owned(),
        expires_at: when + INVITATION_TTL,
        accepted_at,
        accepted_by: accepted_at.and(i.accepted_by.clone()),
        practitioner_data: None,
        created_at: when,
    }
}

/// The job and its kick-off query.
fn export(x: &ExportSpec, by: &str, when: Timestamp, base_url: &str) -> (BulkExport, String) {
    let path = if x.level == "patient" {
        "/fhir/Patient/$export"
    } else {
        "/fhir/$export"
    };
    let query = format!("_type={}", x.types.join(","));
    let job = BulkExport {
        id: x.id.clone(),
        request: format!("{base_url}{path}?{query}"),
        types: x.types.clone(),
        started_by: by.to_owned(),
        started_at: when,
        completes_at: when + minutes(x.runs_minutes),
    };
    (job, query)
}

/// Adds a numbered row's meaning to the ground truth.
pub(crate) fn record(truth: &mut GroundTruth, planned: &PlannedRow) {
    let row = &planned.row;
    if planned.attacker {
        truth.attacker_rows.push(row.id.clone());
        if !truth.attacker.ips.contains(&row.agent.ip) {
            truth.attacker.ips.push(row.agent.ip.clone());
        }
    }
    match &planned.mark {
        Mark::Plain => {}
        Mark::Access { patient } if planned.attacker => {
            truth.patient_accesses.push(PatientAccess {
                audit_id: row.id.clone(),
                event_id: audit_event_id(&row.id),
                patient_id: patient.clone(),
                resource_type: row
                    .entity
                    .as_ref()
                    .map(|e| e.resource_type.clone())
                    .unwrap_or_default(),
                action: row.action.clone(),
                recorded: row.recorded,
                emergency_override: row.agent.emergency_override,
                outcome: row.outcome.clone(),
            })
        }
        Mark::Access { .. } => {}
        Mark::Created {
            kind,
            id,
            by: creator,
        } => {
            let planted = Planted {
                kind: *kind,
                id: id.clone(),
                created_by: creator.clone(),
                created_at: row.recorded,
                audit_id: row.id.clone(),
            };
            if planned.attacker {
                truth.leftovers.push(planted);
            } else {
                truth.look_alikes.push(planted);
            }
        }
    }
}

/// The attacker's identity and the window, before any row is recorded.
pub(crate) fn truth_frame(sc: &Scenario, now: Timestamp) -> GroundTruth {
    let mut truth = GroundTruth::default();
    truth.attacker.user_id = sc.compromised.user.clone();
    truth
        .attacker
        .session_ids
        .push(sc.compromised.session.clone());
    truth.attacker.key_ids.push(sc.compromised.key.clone());
    if let Some(inc) = &sc.incident {
        truth.window = Some(Window {
            start: now - minutes(inc.window.start_minutes_ago),
            end: now - minutes(inc.window.end_minutes_ago),
        });
        for a in inc.actors.values().filter(|a| a.attacker) {
            let (list, id) = match (&a.session, &a.key) {
                (Some(s), _) => (&mut truth.attacker.session_ids, s),
                (None, Some(k)) => (&mut truth.attacker.key_ids, k),
                _ => continue,
            };
            if !list.contains(id) {
                list.push(id.clone());
            }
        }
    }
    truth
}
