//! Before anything is sent: who is this token, on which ESUS, and may it do what the runbook
//! needs? One `GET /auth/me` (getAuthMe) answers all three, so a wrong token, an unreachable or
//! non-ESUS URL, a TLS failure or a missing permission stops the run here — with its own message —
//! and never after a first destructive request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::send;
use super::shared::Shared;
use crate::esus::client::{ApiResponse, TransportError};
use crate::esus::permissions::{self, Permission};
use crate::esus::request::ApiRequest;
use crate::event::{Event, RunOutcome};

/// Why the preflight stopped the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// How the run ends (`auth-failed` or `unreachable`).
    pub outcome: RunOutcome,
    /// What happened and what to do, for people.
    pub message: String,
}

/// Who the operator is, as ESUS says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `GET /auth/me`'s body.
    pub me: Value,
    /// "acting as admin@riverside.example (Riverside Health, roles admin) on https://…".
    pub summary: String,
}

/// Checks the operator's token against ESUS and the runbook's needs; records what it found.
pub async fn check(shared: &Arc<Shared>) -> Result<Identity, Refusal> {
    let base = shared.client.base().to_string();
    let me = match fetch_me(shared, &base).await {
        Ok(me) => me,
        Err(refusal) => {
            record(shared, &json!(null), &refusal.message, &[], &[]);
            return Err(refusal);
        }
    };
    let needs = needed(shared);
    let more = permissions::excess(&needs, &me);
    let narrower = if more.is_empty() {
        None
    } else {
        narrowest_role(shared, &needs, &me).await
    };
    let summary = if more.is_empty() {
        format!("acting as {} on {base}", who(&me))
    } else {
        format!(
            "acting as {} on {base} — holds more than this runbook needs: {} (least privilege: {}; `esus-ir scopes` lists what it needs)",
            who(&me),
            more.join("; "),
            narrower.map_or_else(
                || "a narrower role or token would do".to_string(),
                |r| format!("ESUS's role `{r}` would do")
            )
        )
    };
    let lacking = lacking(shared, &me);
    record(shared, &me, &summary, &lacking, &more);
    if !lacking.is_empty() {
        return Err(Refusal {
            outcome: RunOutcome::AuthFailed,
            message: format!(
                "the operator ({}) lacks what this runbook needs: {} (nothing was sent)",
                who(&me),
                lacking.join("; ")
            ),
        });
    }
    Ok(Identity { me, summary })
}

fn record(shared: &Shared, me: &Value, summary: &str, lacking: &[String], more: &[String]) {
    let identity = json!({
        "id": me.get("id"),
        "email": me.get("email"),
        "organizations": me.get("organizations").and_then(Value::as_array).map(|orgs| {
            orgs.iter().map(|o| json!({
                "organizationId": o.get("organizationId"),
                "organizationName": o.get("organizationName"),
                "role": o.get("role"),
                "roles": o.get("roles"),
            })).collect::<Vec<_>>()
        }),
    });
    let _ = shared.emit(&Event::Preflight {
        identity,
        summary: summary.to_string(),
        lacking: lacking.to_vec(),
        more_than_needed: more.to_vec(),
    });
}

/// `GET /auth/me`, with a renewal when the token is refused and the refresh token (or the
/// operator) can give another; a transient 5xx is tried twice more, and a throttled answer (429)
/// is waited out as every request's is — `Retry-After` honoured — since an ESUS under attack
/// may well be throttling: a rate limit is not "not ESUS".
async fn fetch_me(shared: &Arc<Shared>, base: &str) -> Result<Value, Refusal> {
    let req = ApiRequest::get("/auth/me");
    let mut renewed = false;
    let (mut attempt, mut throttled) = (0u32, 0u32);
    while attempt < 3 {
        attempt += 1;
        let (token, generation) = shared.token.current().await;
        if token.is_none() {
            return Err(auth(
                "no ESUS token: set ESUS_TOKEN, use --token-file or --login (nothing was sent)",
            ));
        }
        let resp = match send_recorded(shared, &req, attempt + throttled).await {
            Err(e) => return Err(unreachable(base, &e)),
            Ok(resp) => resp,
        };
        match resp.status {
            200 => return profile(base, &resp),
            429 if throttled < send::MAX_THROTTLED => {
                throttled += 1;
                attempt -= 1;
                wait(
                    shared,
                    send::backoff(BASE_WAIT, throttled, resp.retry_after, true),
                )
                .await?;
            }
            429 => return Err(throttled_out(base)),
            401 if !renewed => {
                renewed = true;
                if send::renew_token(shared, generation).await.is_err() {
                    return Err(refused(&resp));
                }
                attempt -= 1;
            }
            401 | 403 => return Err(refused(&resp)),
            s if s >= 500 && attempt < 3 => {
                let pause = (BASE_WAIT * attempt).max(resp.retry_after.unwrap_or_default());
                wait(shared, pause.min(Duration::from_secs(120))).await?;
            }
            s if s >= 500 => break,
            _ => return Err(not_esus(base, &resp)),
        }
    }
    Err(Refusal {
        outcome: RunOutcome::Unreachable,
        message: format!("ESUS at {base} kept answering with server errors (nothing was sent)"),
    })
}

/// The first pause of the preflight's retries.
const BASE_WAIT: Duration = Duration::from_millis(300);

/// Sleeps, unless Ctrl-C ends the wait.
async fn wait(shared: &Shared, d: Duration) -> Result<(), Refusal> {
    if shared.interrupt.sleep_or_stop(d).await {
        return Err(Refusal {
            outcome: RunOutcome::Interrupted,
            message: "interrupted while ESUS asked to wait (nothing was sent)".into(),
        });
    }
    Ok(())
}

fn throttled_out(base: &str) -> Refusal {
    Refusal {
        outcome: RunOutcome::Unreachable,
        message: format!(
            "ESUS at {base} kept answering 429 (rate limited) after {} waits; try again in a minute (nothing was sent)",
            send::MAX_THROTTLED
        ),
    }
}

/// The role with the fewest permissions that still covers every FHIR permission the runbook
/// needs, from ESUS's own list (`GET /roles`, recorded like the rest of the preflight) — named in
/// the least-privilege note. Asked only of an administrator (who may list roles) whose runbook
/// needs no administrator; any failure leaves the role unnamed, never the run stopped.
async fn narrowest_role(shared: &Arc<Shared>, needs: &[Permission], me: &Value) -> Option<String> {
    let admin_needed = needs
        .iter()
        .any(|n| matches!(n, Permission::Admin | Permission::SystemAdmin));
    if admin_needed || Permission::Admin.satisfied_by(me) != Some(true) {
        return None;
    }
    let resp = send_recorded(shared, &ApiRequest::get("/roles"), 1)
        .await
        .ok()?;
    if resp.status != 200 {
        return None;
    }
    let body = resp.json();
    let roles = body
        .as_array()
        .or_else(|| body.get("roles").and_then(Value::as_array))?;
    roles
        .iter()
        .filter_map(|role| {
            let name = role.get("name")?.as_str()?;
            let perms: Vec<(&str, &str)> = role
                .get("permissions")?
                .as_array()?
                .iter()
                .filter_map(|p| Some((p.get("resource")?.as_str()?, p.get("action")?.as_str()?)))
                .collect();
            let grants = |resource: &str, action: &str| {
                perms.iter().any(|(r, a)| {
                    (*r == "*" || r.eq_ignore_ascii_case(resource))
                        && (*a == "*" || a.eq_ignore_ascii_case(action))
                })
            };
            let covers = needs.iter().all(|n| match n {
                Permission::Fhir { resource, action } => grants(resource, action),
                _ => true,
            });
            let everything = grants("*", "*") && perms.iter().any(|(r, a)| *r == "*" && *a == "*");
            (covers && !everything && name != "admin")
                .then(|| (perms.len(), super::loopback::printable(name)))
        })
        .min()
        .map(|(_, name)| name)
}

async fn send_recorded(
    shared: &Arc<Shared>,
    req: &ApiRequest,
    attempt: u32,
) -> Result<ApiResponse, TransportError> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let url = shared.client.url(req).to_string();
    let _ = shared.emit(&Event::Request {
        step: "preflight".into(),
        approvals: Vec::new(),
        probe: false,
        item: None,
        attempt,
        request_id: request_id.clone(),
        request: req.view(&url),
    });
    let (token, _) = shared.token.current().await;
    let timeout = Some(Duration::from_secs(15));
    let result = shared
        .client
        .send(req, token.as_ref(), &request_id, timeout)
        .await;
    let policy = send::BodyPolicy {
        phi: false,
        secret_fields: &[],
    };
    match &result {
        Ok(resp) => {
            let _ = send::record_response(shared, "preflight", &request_id, resp, policy, None);
        }
        Err(e) => {
            let _ = shared.emit(&Event::Response {
                step: "preflight".into(),
                request_id,
                status: None,
                duration_ms: 0,
                body_sha256: None,
                body: None,
                evidence: None,
                error: Some(e.to_string()),
            });
        }
    }
    result
}

/// The profile, or why this is not ESUS's `/auth/me`.
fn profile(base: &str, resp: &ApiResponse) -> Result<Value, Refusal> {
    let me = resp.json();
    let has = |k: &str| me.get(k).and_then(Value::as_str).is_some();
    if has("id") && has("email") {
        return Ok(me);
    }
    Err(Refusal {
        outcome: RunOutcome::Unreachable,
        message: format!(
            "{base} does not look like ESUS: GET /auth/me answered 200 without a user profile (check --base-url; nothing was sent)"
        ),
    })
}

fn auth(message: &str) -> Refusal {
    Refusal {
        outcome: RunOutcome::AuthFailed,
        message: message.to_string(),
    }
}

fn refused(resp: &ApiResponse) -> Refusal {
    auth(&format!(
        "ESUS refused the operator's token ({} at GET /auth/me): it is invalid, expired or revoked. Set a fresh ESUS_TOKEN (or ESUS_REFRESH_TOKEN to renew it) and run again (nothing was sent)",
        resp.status
    ))
}

fn not_esus(base: &str, resp: &ApiResponse) -> Refusal {
    let what = match resp.status {
        300..=399 => "a redirect (ESUS's API never redirects; esus-ir does not follow it)".into(),
        404 => "404: there is no /auth/me here".to_string(),
        s => format!("{s}"),
    };
    Refusal {
        outcome: RunOutcome::Unreachable,
        message: format!(
            "{base} does not look like ESUS: GET /auth/me answered {what} (check --base-url; nothing was sent)"
        ),
    }
}

fn unreachable(base: &str, e: &TransportError) -> Refusal {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    let message = if [
        "certificate",
        "tls",
        "handshake",
        "alert",
        "peer is incompatible",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        format!(
            "the TLS connection to {base} failed: {} — for a private CA use --ca-cert PEM; ESUS needs TLS 1.2 or later (nothing was sent)",
            short(&detail)
        )
    } else {
        format!(
            "cannot reach ESUS at {base}: {} — check --base-url / ESUS_BASE_URL and the network (nothing was sent)",
            short(&detail)
        )
    };
    Refusal {
        outcome: RunOutcome::Unreachable,
        message,
    }
}

/// The innermost causes of a transport error, which say what happened ("Connection refused").
fn short(detail: &str) -> String {
    let parts: Vec<&str> = detail.split(": ").collect();
    let tail = &parts[parts.len().saturating_sub(2)..];
    tail.join(": ")
}

/// "admin@riverside.example (Riverside Health, roles admin)".
fn who(me: &Value) -> String {
    let email = me.get("email").and_then(Value::as_str).unwrap_or("?");
    let org = me
        .get("organizations")
        .and_then(Value::as_array)
        .and_then(|o| o.first());
    match org {
        Some(o) => {
            let name = o
                .get("organizationName")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let roles: Vec<&str> = o
                .get("roles")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("{email} ({name}, roles {})", roles.join(", "))
        }
        None => format!("{email} (no organization)"),
    }
}

/// Everything the runbook's steps need of the operator's token, `if_permitted` reads included
/// (a right they use where it is held is not in excess).
fn needed(shared: &Shared) -> Vec<Permission> {
    let valid = &shared.valid;
    let mut all: Vec<Permission> = valid
        .runbook
        .steps
        .iter()
        .zip(&valid.steps)
        .flat_map(|(step, info)| permissions::for_step(info.action, &step.with))
        .filter(Permission::is_operator_permission)
        .collect();
    all.sort();
    all.dedup();
    all
}

/// What the runbook needs of the operator's token that `/auth/me` shows it lacks, with the
/// steps that need it.
fn lacking(shared: &Shared, me: &Value) -> Vec<String> {
    let valid = &shared.valid;
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // An `if_permitted` read is the runbook's word that it is skipped without the right.
    for (step, info) in valid.runbook.steps.iter().zip(&valid.steps) {
        if step.if_permitted {
            continue;
        }
        for need in permissions::for_step(info.action, &step.with) {
            if need_is_unmet(&need, me) {
                missing
                    .entry(need.to_string())
                    .or_default()
                    .push(step.id.clone());
            }
        }
    }
    missing
        .into_iter()
        .map(|(need, steps)| format!("{need} (steps {})", steps.join(", ")))
        .collect()
}

fn need_is_unmet(need: &Permission, me: &Value) -> bool {
    need.is_operator_permission() && need.satisfied_by(me) == Some(false)
}
