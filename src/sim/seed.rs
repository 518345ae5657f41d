//! Turns a [`Scenario`] into live state at start-up: hashes passwords, mints session tokens,
//! stores key digests, generates audit history (seeded, so reproducible) and opens the admin
//! session whose token the ready file reports.

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;

use super::audit::{Agent, AuditRow, Entity, Source};
use super::auth;
use super::error::SimError;
use super::scenario::{AuditHistorySpec, Scenario};
use super::seed_incident::{Mark, PlannedRow, record, seed_incident, truth_frame};
use super::shared::{REFRESH_TTL, Shared, register_tokens};
use super::state::{ApiKey, Consent, OrgRole, Patient, Session, State, User};

/// The facts the ready file reports, with secrets.
pub(crate) struct Seeded {
    pub(crate) admin_email: String,
    pub(crate) admin_password: SecretString,
    pub(crate) admin_token: SecretString,
    pub(crate) admin_refresh_token: SecretString,
    pub(crate) user_id: String,
    pub(crate) key_id: String,
    pub(crate) key_client_id: String,
    pub(crate) key_app_id: Option<String>,
    pub(crate) key_secret: SecretString,
    pub(crate) session_id: String,
    pub(crate) session_token: SecretString,
    pub(crate) session_refresh_token: SecretString,
}

fn bad(origin: &str, reason: impl Into<String>) -> SimError {
    SimError::Scenario {
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// Builds the state into `shared` and returns the ready-file facts.
pub(crate) fn seed(
    shared: &Shared,
    sc: &Scenario,
    origin: &str,
    seed: u64,
) -> Result<Seeded, SimError> {
    sc.validate(origin)?;
    let now = shared.clock.now();
    let mut st = shared.lock();
    st.org_id = sc.organization.id.clone();
    st.org_name = sc.organization.name.clone();
    st.rotate_deleted_keys = sc.behaviour.rotate_deleted_keys;
    seed_users(&mut st, sc, now)?;
    let compromised_tokens = seed_sessions(shared, &mut st, sc, now)?;
    if let Some(s) = sc.sessions.iter().find(|s| s.id == sc.compromised.session) {
        st.attacker = super::state::Attacker {
            user_id: sc.compromised.user.clone(),
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
        };
    }
    seed_keys(&mut st, sc, now);
    seed_phi(&mut st, sc, now);
    let mut planned: Vec<PlannedRow> = match &sc.audit_history {
        Some(h) => history(&st, h, now, seed),
        None => Vec::new(),
    };
    if let Some(inc) = &sc.incident {
        planned.extend(seed_incident(&mut st, sc, inc, now, &shared.base_url)?);
    }
    push_planned(&mut st, sc, planned, now);
    let admin = ready_admin(sc).ok_or_else(|| bad(origin, "no admin user without MFA"))?;
    let admin_pair = open_ready_session(shared, &mut st, &admin.id, now)?;
    st.ready_admin = admin.id.clone();
    st.smart_auto_approve = sc.behaviour.smart_auto_approve;
    let key = sc
        .api_keys
        .iter()
        .find(|k| k.id == sc.compromised.key)
        .ok_or_else(|| bad(origin, "compromised key missing"))?;
    let (session_token, session_refresh) =
        compromised_tokens.ok_or_else(|| bad(origin, "compromised session missing"))?;
    Ok(Seeded {
        admin_email: admin.email.clone(),
        admin_password: admin.password.clone().into(),
        admin_token: admin_pair.access.into(),
        admin_refresh_token: admin_pair.refresh.into(),
        user_id: sc.compromised.user.clone(),
        key_id: key.id.clone(),
        key_client_id: key.client_id.clone(),
        key_app_id: key.app_id.clone(),
        key_secret: key.secret.clone().into(),
        session_id: sc.compromised.session.clone(),
        session_token: session_token.into(),
        session_refresh_token: session_refresh.into(),
    })
}

/// The admin the ready file reports: the first RBAC admin without MFA.
fn ready_admin(sc: &Scenario) -> Option<&super::scenario::UserSpec> {
    sc.users
        .iter()
        .find(|u| u.mfa_secret.is_none() && u.roles.iter().any(|r| r == "admin"))
}

/// Whether a user is a system administrator: listed in `system_admins`, or, without that list,
/// the ready file's admin (so the default scenario's admin can verify the audit chain).
fn is_system_admin(sc: &Scenario, user_id: &str) -> bool {
    match &sc.system_admins {
        Some(list) => list.iter().any(|id| id == user_id),
        None => ready_admin(sc).is_some_and(|a| a.id == user_id),
    }
}

fn seed_users(st: &mut State, sc: &Scenario, now: Timestamp) -> Result<(), SimError> {
    for u in &sc.users {
        st.users_by_email
            .insert(u.email.to_ascii_lowercase(), u.id.clone());
        let (first, last) = match u.name.trim().split_once(' ') {
            Some((f, l)) => (Some(f.to_owned()), Some(l.trim().to_owned())),
            None if u.name.trim().is_empty() => (None, None),
            None => (Some(u.name.trim().to_owned()), None),
        };
        let org_role = u.org_role.as_deref().and_then(OrgRole::parse).unwrap_or(
            if u.roles.iter().any(|r| r == "admin") {
                OrgRole::Admin
            } else {
                OrgRole::Member
            },
        );
        st.users.insert(
            u.id.clone(),
            User {
                id: u.id.clone(),
                email: u.email.clone(),
                first_name: u.first_name.clone().or(first),
                last_name: u.last_name.clone().or(last),
                password_hash: auth::hash_password(&u.password)?,
                roles: u.roles.clone(),
                mfa_secret: u.mfa_secret.as_ref().map(|s| s.as_bytes().to_vec()),
                org_role,
                member: true,
                joined_at: now - days(u.joined_days_ago),
                system_admin: is_system_admin(sc, &u.id),
            },
        );
    }
    Ok(())
}

/// Opens the scenario's sessions; returns the compromised session's (access, refresh) tokens.
fn seed_sessions(
    shared: &Shared,
    st: &mut State,
    sc: &Scenario,
    now: Timestamp,
) -> Result<Option<(String, String)>, SimError> {
    let mut compromised = None;
    for s in &sc.sessions {
        st.sessions.insert(
            s.id.clone(),
            Session {
                id: s.id.clone(),
                user_id: s.user.clone(),
                created_at: now - SignedDuration::from_mins(s.created_minutes_ago),
                last_seen_at: now,
                ip: s.ip.clone(),
                user_agent: s.user_agent.clone(),
                revoked: false,
                smart_scopes: None,
            },
        );
        let pair = match (&s.access_token, &s.refresh_token) {
            (Some(a), Some(r)) => {
                let ttl = SignedDuration::try_from(shared.token_ttl)
                    .unwrap_or(SignedDuration::from_mins(15));
                register_tokens(st, &s.id, a, r, now + ttl, now + REFRESH_TTL);
                (a.clone(), r.clone())
            }
            _ => {
                let p = shared.issue_tokens(st, &s.user, &s.id, now)?;
                (p.access, p.refresh)
            }
        };
        if s.id == sc.compromised.session {
            compromised = Some(pair);
        }
    }
    Ok(compromised)
}

/// The admin session whose tokens the ready file reports.
fn open_ready_session(
    shared: &Shared,
    st: &mut State,
    admin_id: &str,
    now: Timestamp,
) -> Result<super::shared::TokenPair, SimError> {
    let id = format!("s-ready-{admin_id}");
    st.sessions.insert(
        id.clone(),
        Session {
            id: id.clone(),
            user_id: admin_id.to_owned(),
            created_at: now,
            last_seen_at: now,
            ip: "127.0.0.1".into(),
            user_agent: "esus-ir sim (ready file)".into(),
            revoked: false,
            smart_scopes: None,
        },
    );
    shared.issue_tokens(st, admin_id, &id, now)
}

fn seed_keys(st: &mut State, sc: &Scenario, now: Timestamp) {
    for k in &sc.api_keys {
        st.insert_key(ApiKey {
            id: k.id.clone(),
            name: k.name.clone(),
            client_id: k.client_id.clone(),
            secret_digest: auth::digest(&k.secret),
            owner: k.owner.clone(),
            scopes: k.scopes.clone(),
            expires_at: k.expires_in_days.map(|d| now + days(d)),
            last_used_at: None,
            active: k.active,
            rate_limit: k.rate_limit,
            superseded_by: None,
            superseded_at: None,
            grace_ends_at: None,
            app_id: k.app_id.clone(),
            created_at: now - days(k.created_days_ago),
            deleted: false,
        });
    }
    if let Some(g) = &sc.generate_keys {
        for i in 1..=g.count {
            st.insert_key(ApiKey {
                id: format!("gen-key-{i:05}"),
                name: format!("generated-key-{i:05}"),
                client_id: format!("ck_gen_{i:05}"),
                secret_digest: auth::digest(&format!("sk_gen_{i:05}")),
                owner: g.owner.clone(),
                scopes: g.scopes.clone(),
                expires_at: Some(now + days(90)),
                last_used_at: None,
                active: true,
                rate_limit: 1000,
                superseded_by: None,
                superseded_at: None,
                grace_ends_at: None,
                app_id: None,
                created_at: now - days(1),
                deleted: false,
            });
        }
    }
}

fn seed_phi(st: &mut State, sc: &Scenario, now: Timestamp) {
    for p in &sc.patients {
        st.patients.insert(
            p.id.clone(),
            Patient {
                id: p.id.clone(),
                family: p.family.clone(),
                given: p.given.clone(),
                birth_date: p.birth_date.clone(),
            },
        );
    }
    for c in &sc.consents {
        let start = now - days(c.start_days_ago);
        st.consents.insert(
            c.id.clone(),
            Consent {
                id: c.id.clone(),
                patient_id: c.patient.clone(),
                status: c.status.clone(),
                scope: "patient-privacy".into(),
                performer_id: None,
                policy: None,
                provision_type: Some("permit".into()),
                provision_extra: serde_json::Map::new(),
                period_start: Some(start),
                period_end: c.end_days_ago.map(|d| now - days(d)),
                date_time: start,
                version: 1,
                last_updated: start,
            },
        );
    }
}

/// Generated history: spread evenly over the last `days`, actors drawn by weight with a seeded
/// RNG, so two starts with the same seed hold the same rows (apart from absolute times).
fn history(st: &State, h: &AuditHistorySpec, now: Timestamp, seed: u64) -> Vec<PlannedRow> {
    let mut rng = StdRng::seed_from_u64(seed);
    let total_weight: u32 = h.actors.iter().map(|a| a.weight).sum::<u32>().max(1);
    let span = days(h.days).as_secs().max(1);
    let patients: Vec<String> = st.patients.keys().cloned().collect();
    let rows = h.rows.max(1) as i64;
    let mut out = Vec::with_capacity(h.rows);
    for i in 0..h.rows {
        let mut pick = rng.random_range(0..total_weight);
        let actor = h
            .actors
            .iter()
            .find(|a| {
                let hit = pick < a.weight;
                pick = pick.saturating_sub(a.weight);
                hit
            })
            .unwrap_or(&h.actors[0]);
        let offset = span - span * (i as i64) / rows;
        let recorded = now - SignedDuration::from_secs(offset);
        let ip = if actor.ips.is_empty() {
            "10.0.0.1".to_owned()
        } else {
            actor.ips[rng.random_range(0..actor.ips.len())].clone()
        };
        let failed = rng.random_ratio(1, 20);
        let (kind, action, entity) = if actor.key.is_some() || rng.random_ratio(2, 3) {
            let pid = if patients.is_empty() {
                "p-0000".to_owned()
            } else {
                patients[rng.random_range(0..patients.len())].clone()
            };
            let e = if rng.random_bool(0.5) {
                Entity::new("Patient", Some(&pid), None)
            } else {
                Entity::new("Observation", None, Some(&format!("patient={pid}")))
            };
            ("resource.read", "R", Some(e))
        } else {
            ("auth.login", "E", None)
        };
        let (email, roles) = st
            .users
            .get(&actor.user)
            .map(|u| (Some(u.email.clone()), u.roles.clone()))
            .unwrap_or_default();
        let row = AuditRow {
            // Numbered once merged with the incident's rows (`push_planned`).
            id: String::new(),
            organization_id: Some(st.org_id.clone()),
            kind: kind.into(),
            subtype: None,
            action: action.into(),
            outcome: if failed { "failure" } else { "success" }.into(),
            outcome_desc: failed.then(|| "access denied".to_owned()),
            agent: Agent {
                user_id: Some(actor.user.clone()),
                email,
                ip,
                user_agent: if actor.key.is_some() {
                    "python-requests/2.31"
                } else {
                    "Mozilla/5.0"
                }
                .into(),
                roles,
                emergency_override: false,
            },
            source: Some(Source {
                site: "esus".into(),
                observer: "esus-api".into(),
            }),
            entity,
            recorded,
            request_id: None,
        };
        out.push(PlannedRow {
            row,
            attacker: false,
            mark: Mark::Plain,
        });
    }
    out
}

/// Numbers the rows in time order (a stable sort: the generated history is already in order, so
/// a scenario without an incident keeps its ids), chains them, and records the ground truth.
fn push_planned(st: &mut State, sc: &Scenario, mut planned: Vec<PlannedRow>, now: Timestamp) {
    planned.sort_by_key(|p| p.row.recorded);
    let mut truth = truth_frame(sc, now);
    for mut p in planned {
        p.row.id = format!("a-{:06}", st.audit.len() + 1);
        record(&mut truth, &p);
        st.push_audit(p.row);
    }
    st.ground_truth = truth;
}
