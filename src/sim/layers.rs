//! The one request layer every non-`/_sim/` request passes through, in this order: record the
//! arrival in the request log, apply faults (barrier, rate limit, error), resolve the credential,
//! run the route, write the audit row (and queue rest-hook notifications), add latency, then
//! answer — or, for a drop fault, close the connection without answering.

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
use super::outcome::{ApiError, OutcomeDesc};
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
    let decision = if shared.faults.is_empty() {
        Decision::default()
    } else {
        shared.faults.decide(&meta.method, &meta.path).await
    };
    if let Some(reject) = decision.reject {
        // A fault answer stands for the gateway in front of ESUS: no route ran, no audit row.
        let resp = match reject {
            Reject::Error(status) => ApiError::exception(status, "simulated server error (fault)"),
            Reject::RateLimited(secs) => ApiError::throttled(secs),
        }
        .into_response();
        delay(&decision).await;
        return answer(&shared, seq, &meta, &decision, resp);
    }
    let auth = caller::resolve(&shared, req.headers());
    req.extensions_mut().insert(auth.clone());
    let kill = req.extensions().get::<ConnKill>().cloned();
    let resp = next.run(req).await;
    record_audit(&shared, &meta, &auth, &resp);
    delay(&decision).await;
    if decision.drop
        && let Some(kill) = kill
    {
        shared.log.finish(seq, None, true, &decision.fired);
        tracing::debug!(seq, method = %meta.method, path = %meta.path, "sim request dropped (fault)");
        kill.0.notify_one();
        // The connection task drops this future together with the connection.
        std::future::pending::<()>().await;
    }
    answer(&shared, seq, &meta, &decision, resp)
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
        credential: caller::credential_kind(headers),
        status: None,
        dropped: false,
        faults: Vec::new(),
        received_at: shared.clock.now(),
    })
}

/// Completes the log entry and sends the answer.
fn answer(shared: &Shared, seq: u64, meta: &Meta, decision: &Decision, resp: Response) -> Response {
    let status = resp.status().as_u16();
    shared.log.finish(seq, Some(status), false, &decision.fired);
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
    let (user_id, email) = match (resp.extensions().get::<AuditUser>(), caller) {
        (Some(AuditUser(id)), _) => (Some(id.clone()), st.users.get(id).map(|u| u.email.clone())),
        (None, Some(c)) => (Some(c.user_id.clone()), Some(c.email.clone())),
        (None, None) => (None, None),
    };
    let row = AuditRow {
        id: format!("a-{:06}", st.audit.len() + 1),
        organization_id: Some(st.org_id.clone()),
        kind: class.kind.to_owned(),
        subtype: meta
            .emergency_override
            .then(|| "emergency-override".to_owned()),
        action: class.action.to_owned(),
        outcome: if status.is_success() || status.is_redirection() {
            "success".into()
        } else {
            "failure".into()
        },
        outcome_desc: resp.extensions().get::<OutcomeDesc>().map(|d| d.0.clone()),
        agent: Agent {
            user_id,
            email,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            roles: meta
                .emergency_override
                .then(|| caller.map(|c| c.roles.clone()).unwrap_or_default()),
            emergency_override: meta.emergency_override.then_some(true),
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
