//! The one request layer every non-`/_sim/` request passes through, in this order: record the
//! arrival in the request log, apply faults (barrier, rate limit, error, cut), resolve the
//! credential, apply the organization gate, run the route, write the audit row (and queue
//! rest-hook notifications), append `audit_trickle` rows, render the error body in the route's
//! shape, add latency, then answer — or, for a drop fault, close the connection without
//! answering. A cut closes the connection before anything but the request log has seen it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use super::audit::{self, Agent, AuditRow, Entity, Source};
use super::caller::{self, AuthState};
use super::faults::{Decision, Reject};
use super::hooks::Job;
use super::outcome::{ApiError, OutcomeDesc, render};
use super::request_log::RecordedRequest;
use super::shared::Shared;

/// Closes the request's connection without an answer (set per connection by the server).
#[derive(Debug, Clone)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

/// The peer address of the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// Set by a handler when the audit agent is not the credential's owner (login: the user who
/// logged in).
#[derive(Debug, Clone)]
pub(crate) struct AuditUser(pub(crate) String);

/// Set by a handler when the entity is only known afterwards (create: the new id).
#[derive(Debug, Clone)]
pub(crate) struct AuditEntity(pub(crate) Entity);

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What the audit row needs to know about the request itself.
struct Meta {
    method: String,
    path: String,
    query: Option<String>,
    ip: String,
    user_agent: String,
    request_id: Option<String>,
    emergency_override: bool,
}

/// The middleware (see the module comment for the order).
pub(crate) async fn layer(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return next.run(req).await;
    }
    let meta = meta_of(&req);
    let seq = arrive(&shared, &meta, req.headers());
    let mut decision = if shared.faults.is_empty() {
        Decision::default()
    } else {
        shared.faults.decide(&meta.method, &meta.path).await
    };
    let kill = req.extensions().get::<ConnKill>().cloned();
    if let Some(reject) = decision.reject {
        // A fault answer stands for the gateway in front of ESUS: no route ran, no audit row.
        let resp = match reject {
            Reject::Error(status) => ApiError::exception(status, "simulated server error (fault)"),
            Reject::RateLimited(secs) => ApiError::throttled(secs),
            Reject::Absent => ApiError::not_found(format!("no route for {}", meta.path)),
            Reject::Cut => {
                delay(&decision).await;
                return close(&shared, seq, &meta, &decision, kill, "cut").await;
            }
        }
        .into_response();
        let resp = render(resp, &meta.path, decision.error_shape, decision.retry_after);
        delay(&decision).await;
        return answer(&shared, seq, &meta, &decision, resp);
    }
    let auth = caller::resolve(&shared, req.headers());
    let gates = caller::org_gate(&meta.method, &meta.path, &auth)
        .and_then(|()| caller::scope_gate(&meta.method, &meta.path, &auth));
    let resp = match gates {
        Err(refused) => refused.into_response(),
        Ok(()) => {
            req.extensions_mut().insert(auth.clone());
            next.run(req).await
        }
    };
    record_audit(&shared, &meta, &auth, &resp);
    if decision.trickle > 0 {
        let (user, patient) = trickle_scope(&meta.path, meta.query.as_deref());
        trickle(
            &shared,
            user.as_deref(),
            patient.as_deref(),
            decision.trickle,
        );
        decision.fired.push("audit_trickle");
    }
    let resp = render(resp, &meta.path, decision.error_shape, decision.retry_after);
    delay(&decision).await;
    if decision.drop {
        return close(&shared, seq, &meta, &decision, kill, "dropped").await;
    }
    answer(&shared, seq, &meta, &decision, resp)
}

/// Closes the request's connection without an answer and never returns: the connection task
/// drops this future together with the connection.
async fn close(
    shared: &Shared,
    seq: u64,
    meta: &Meta,
    decision: &Decision,
    kill: Option<ConnKill>,
    what: &'static str,
) -> Response {
    shared
        .log
        .finish(seq, shared.clock.now(), None, true, &decision.fired);
    tracing::debug!(seq, method = %meta.method, path = %meta.path, "sim request {what} (fault)");
    match kill {
        Some(kill) => {
            kill.0.notify_one();
            std::future::pending::<Response>().await
        }
        // Not served by our accept loop (no connection to close): answer 503 instead.
        None => ApiError::exception(503, "connection closed (fault)").into_response(),
    }
}

/// Reads what the log and the audit row need from the request.
fn meta_of(req: &Request) -> Meta {
    let headers = req.headers();
    Meta {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        ip: req
            .extensions()
            .get::<PeerAddr>()
            .map_or_else(|| "127.0.0.1".into(), |p| p.0.ip().to_string()),
        user_agent: header(headers, "user-agent").unwrap_or_default(),
        request_id: header(headers, "x-request-id"),
        emergency_override: header(headers, "x-emergency-override")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
    }
}

/// Records the arrival in the request log; returns its sequence number.
fn arrive(shared: &Shared, meta: &Meta, headers: &HeaderMap) -> u64 {
    shared.log.arrive(RecordedRequest {
        seq: 0,
        method: meta.method.clone(),
        path: meta.path.clone(),
        query: meta.query.clone(),
        request_id: meta.request_id.clone(),
        user_agent: header(headers, "user-agent"),
        credential: caller::credential_kind(headers),
        status: None,
        dropped: false,
        faults: Vec::new(),
        received_at: shared.clock.now(),
        finished_at: None,
    })
}

/// Completes the log entry and sends the answer.
fn answer(shared: &Shared, seq: u64, meta: &Meta, decision: &Decision, resp: Response) -> Response {
    let status = resp.status().as_u16();
    shared.log.finish(
        seq,
        shared.clock.now(),
        Some(status),
        false,
        &decision.fired,
    );
    tracing::debug!(seq, method = %meta.method, path = %meta.path, status, "sim request");
    echo_request_id(resp, meta.request_id.as_deref())
}

/// Echoes `X-Request-Id` on the answer so clients can correlate (simulator assumption).
fn echo_request_id(mut resp: Response, request_id: Option<&str>) -> Response {
    if let Some(v) = request_id.and_then(|id| axum::http::HeaderValue::from_str(id).ok()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn delay(decision: &Decision) {
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
}

/// Writes the request's audit row and queues the notifications it triggers.
fn record_audit(shared: &Shared, meta: &Meta, auth: &AuthState, resp: &Response) {
    let class = audit::classify(&meta.method, &meta.path, meta.query.as_deref());
    let entity = resp
        .extensions()
        .get::<AuditEntity>()
        .map(|e| e.0.clone())
        .or(class.entity);
    let status = resp.status();
    let caller = match auth {
        AuthState::Caller(c) => Some(c),
        _ => None,
    };
    let now = shared.clock.now();
    let mut st = shared.lock();
    let (user_id, email, roles) = match (resp.extensions().get::<AuditUser>(), caller) {
        (Some(AuditUser(id)), _) => {
            let user = st.users.get(id);
            (
                Some(id.clone()),
                user.map(|u| u.email.clone()),
                user.map(|u| u.roles.clone()).unwrap_or_default(),
            )
        }
        (None, Some(c)) => (
            Some(c.user_id.clone()),
            Some(c.email.clone()),
            c.roles.clone(),
        ),
        (None, None) => (None, None, Vec::new()),
    };
    let row = AuditRow {
        id: format!("a-{:06}", st.audit.len() + 1),
        organization_id: Some(st.org_id.clone()),
        kind: class.kind.to_owned(),
        subtype: meta
            .emergency_override
            .then(|| "emergency-override".to_owned()),
        action: class.action.to_owned(),
        outcome: audit::outcome_of(status.as_u16()).into(),
        outcome_desc: resp.extensions().get::<OutcomeDesc>().map(|d| d.0.clone()),
        agent: Agent {
            user_id,
            email,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            roles,
            emergency_override: meta.emergency_override,
        },
        source: Some(Source {
            site: "esus-sim".into(),
            observer: "esus-sim".into(),
        }),
        entity,
        recorded: now,
        request_id: meta.request_id.clone(),
    };
    let jobs = notifications(&st.subscriptions, &row);
    st.push_audit(row);
    drop(st);
    for job in jobs {
        shared.hooks.send(job);
    }
}

/// The scope an audited request looks at, for `audit_trickle`: the user of
/// `/admin/audit/user/{id}` or of `userId=` on `/v1/admin/audit`, the patient of
/// `/admin/audit/patient/{id}` or of `resourceType=Patient&resourceId=` there.
fn trickle_scope(path: &str, query: Option<&str>) -> (Option<String>, Option<String>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["admin", "audit", "user", id] => (Some((*id).to_owned()), None),
        ["admin", "audit", "patient", id] => (None, Some((*id).to_owned())),
        ["v1", "admin", "audit"] => {
            let pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
            let get = |k: &str| {
                pairs
                    .clone()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.into_owned())
            };
            let patient =
                get("resourceId").filter(|_| get("resourceType").as_deref() == Some("Patient"));
            (get("userId"), patient)
        }
        _ => (None, None),
    }
}

/// `audit_trickle`: appends `n` rows in the scope the request looked at — rows whose agent is
/// `scope_user`, rows about `scope_patient`, otherwise rows by the scenario's compromised user —
/// as an attacker still at work would (Patient reads from the compromised session's address).
pub(crate) fn trickle(
    shared: &Shared,
    scope_user: Option<&str>,
    scope_patient: Option<&str>,
    n: u64,
) {
    let now = shared.clock.now();
    let mut st = shared.lock();
    let attacker = st.attacker.clone();
    let agent_id = scope_user.map_or(attacker.user_id.clone(), str::to_owned);
    let patients: Vec<String> = st.patients.keys().cloned().collect();
    let mut jobs = Vec::new();
    for _ in 0..n {
        st.trickled += 1;
        let patient = match scope_patient {
            Some(p) => p.to_owned(),
            None if patients.is_empty() => "p-0000".to_owned(),
            None => {
                let i = usize::try_from(st.trickled).unwrap_or(0) % patients.len();
                patients[i].clone()
            }
        };
        let user = st.users.get(&agent_id);
        let row = AuditRow {
            id: format!("a-{:06}", st.audit.len() + 1),
            organization_id: Some(st.org_id.clone()),
            kind: "resource.read".into(),
            subtype: None,
            action: "R".into(),
            outcome: "success".into(),
            outcome_desc: None,
            agent: Agent {
                user_id: Some(agent_id.clone()),
                email: user.map(|u| u.email.clone()),
                ip: attacker.ip.clone(),
                user_agent: attacker.user_agent.clone(),
                roles: user.map(|u| u.roles.clone()).unwrap_or_default(),
                emergency_override: false,
            },
            source: Some(Source {
                site: "esus-sim".into(),
                observer: "esus-sim".into(),
            }),
            entity: Some(Entity::new("Patient", Some(&patient), None)),
            recorded: now,
            request_id: None,
        };
        jobs.extend(notifications(&st.subscriptions, &row));
        st.push_audit(row);
    }
    drop(st);
    for job in jobs {
        shared.hooks.send(job);
    }
}

fn notifications(
    subs: &std::collections::BTreeMap<String, super::state::Subscription>,
    row: &AuditRow,
) -> Vec<Job> {
    subs.values()
        .filter(|s| s.active && s.criteria.selects(row))
        .filter_map(|s| {
            Some(Job {
                subscription_id: s.id.clone(),
                audit_id: row.id.clone(),
                endpoint: s.endpoint.clone()?,
                headers: s.headers.clone(),
                payload: audit::to_fhir(row),
            })
        })
        .collect()
}
