//! Sending one request with the safety rules for retries: idempotent calls are retried with
//! exponential backoff and jitter on connection errors, 5xx and 429 (honouring `Retry-After`);
//! a non-idempotent call is never re-sent once it may have reached ESUS — its outcome is
//! reported as unknown so the caller can check the server's state instead.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::shared::Shared;
use crate::esus::client::{ApiResponse, TransportError};
use crate::esus::request::{ApiRequest, Auth};
use crate::event::{Event, REDACTED};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct SendPolicy {
    /// Total attempts, first included.
    pub attempts: u32,
    /// First backoff.
    pub backoff: Duration,
    /// Whether the request may be re-sent after it may have reached ESUS.
    pub idempotent: bool,
    /// Per-request timeout.
    pub timeout: Option<Duration>,
    /// A containment check's probe, sent as the compromised credential (needs no approval).
    pub probe: bool,
}

/// How the response body may be recorded.
#[derive(Debug, Clone, Copy)]
pub struct BodyPolicy {
    /// PHI-bearing (audit rows, consents): never recorded in the transcript.
    pub phi: bool,
    /// Fields replaced by [`REDACTED`] before recording.
    pub secret_fields: &'static [&'static str],
}

/// What came of a send.
#[derive(Debug)]
pub enum Sent {
    /// An HTTP answer (any status) — not yet recorded; record it with [`record_response`].
    Answer(ApiResponse, String),
    /// The request may have reached ESUS but no answer came; the effect is unknown.
    Unknown(String),
    /// It certainly did not reach ESUS, after every attempt.
    Failed(String),
    /// The operator's token could not be renewed.
    AuthFailed(String),
    /// Ctrl-C while waiting to retry.
    Interrupted,
}

/// How many times a 429 is waited out before its answer is returned. A throttled request was
/// not processed (simulator assumption, docs/esus-api.md), so it may be sent again even when it
/// is not idempotent; these waits do not use up the step's `retry` attempts.
pub const MAX_THROTTLED: u32 = 6;

/// Connection attempts for a request that certainly never reached ESUS (it may always be sent
/// again: nothing happened), whatever the step's `retry` says.
pub const CONNECT_ATTEMPTS: u32 = 3;

/// Attempts made so far for one logical request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tries {
    /// Sends that counted as attempts (the first included).
    pub attempt: u32,
    /// 429 answers waited out.
    pub throttled: u32,
    /// Operator-token renewals after a 401.
    pub renewals: u32,
}

/// What to do after one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the answer to the step.
    Done,
    /// The operator's token was refused: renew it and send again.
    Renew,
    /// Wait (at least `retry_after`, when ESUS said) and send again.
    Retry {
        /// It was a 429.
        throttled: bool,
        /// ESUS's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// It may have reached ESUS and must not be re-sent: the outcome is unknown.
    Unknown(String),
    /// It never reached ESUS, after every attempt.
    GaveUp(String),
}

/// The retry rules, as one pure function (the safety-critical part of sending).
pub fn verdict(
    result: &Result<ApiResponse, TransportError>,
    operator_auth: bool,
    policy: SendPolicy,
    tries: Tries,
) -> Verdict {
    match result {
        Ok(r) if r.status == 401 && operator_auth && tries.renewals < 2 => Verdict::Renew,
        Ok(r) if r.status == 429 => {
            if tries.throttled < MAX_THROTTLED {
                Verdict::Retry {
                    throttled: true,
                    retry_after: r.retry_after,
                }
            } else {
                Verdict::Done
            }
        }
        Ok(r) if r.status >= 500 && !policy.idempotent => Verdict::Unknown(format!(
            "ESUS answered {} to a request that is not safe to repeat",
            r.status
        )),
        Ok(r) if r.status >= 500 && tries.attempt < policy.attempts => Verdict::Retry {
            throttled: false,
            retry_after: r.retry_after,
        },
        Ok(_) => Verdict::Done,
        Err(TransportError::NotSent(e)) => {
            if tries.attempt < policy.attempts.max(CONNECT_ATTEMPTS) {
                Verdict::Retry {
                    throttled: false,
                    retry_after: None,
                }
            } else {
                Verdict::GaveUp(e.clone())
            }
        }
        Err(TransportError::Unknown(e)) if !policy.idempotent => Verdict::Unknown(e.clone()),
        Err(TransportError::Unknown(e)) => {
            if tries.attempt < policy.attempts {
                Verdict::Retry {
                    throttled: false,
                    retry_after: None,
                }
            } else {
                Verdict::GaveUp(e.clone())
            }
        }
    }
}

/// Sends `req` for `step` (item `item`), retrying as [`verdict`] allows.
pub async fn send(
    shared: &Arc<Shared>,
    step: &str,
    item: Option<usize>,
    req: &ApiRequest,
    policy: SendPolicy,
    body: BodyPolicy,
) -> Result<Sent, std::io::Error> {
    let url = shared.client.url(req).to_string();
    let view = req.view(&url);
    let operator_auth = matches!(req.auth, Auth::Operator);
    let mut tries = Tries::default();
    loop {
        tries.attempt += 1;
        let request_id = uuid::Uuid::new_v4().to_string();
        shared.emit(&Event::Request {
            step: step.into(),
            item,
            approvals: shared.grants(step, item),
            probe: policy.probe,
            attempt: tries.attempt,
            request_id: request_id.clone(),
            request: view.clone(),
        })?;
        let (token, generation) = shared.token.current().await;
        let result = shared
            .client
            .send(req, token.as_ref(), &request_id, policy.timeout)
            .await;
        if let Ok(resp) = &result {
            for fact in shared.witnesses.observe(req, resp) {
                shared.emit(&fact.event())?;
            }
        }
        let verdict = verdict(&result, operator_auth, policy, tries);
        match result {
            Ok(resp) if verdict == Verdict::Done => return Ok(Sent::Answer(resp, request_id)),
            Ok(resp) => record_response(shared, step, &request_id, &resp, body, None)?,
            Err(e) => record_failure(shared, step, &request_id, &e.to_string())?,
        }
        let (throttled, retry_after) = match verdict {
            Verdict::Retry {
                throttled,
                retry_after,
            } => (throttled, retry_after),
            Verdict::Renew => {
                tries.renewals += 1;
                tries.attempt -= 1;
                if let Err(e) = renew_token(shared, generation).await {
                    return Ok(Sent::AuthFailed(e.0));
                }
                continue;
            }
            Verdict::Unknown(why) => return Ok(Sent::Unknown(why)),
            Verdict::GaveUp(why) => return Ok(Sent::Failed(why)),
            // Only an answer is ever `Done`, and answers were returned above.
            Verdict::Done => return Ok(Sent::Failed("no answer".into())),
        };
        if throttled {
            tries.throttled += 1;
        }
        let wait = backoff(policy.backoff, tries.attempt, retry_after, throttled);
        tracing::info!(
            step,
            attempt = tries.attempt,
            throttled,
            wait_ms = wait.as_millis() as u64,
            "retrying"
        );
        if shared.interrupt.sleep_or_stop(wait).await {
            return Ok(Sent::Interrupted);
        }
    }
}

/// Renews the operator's token after a 401 and records the renewal (never the tokens): the
/// operator sees it, and the post-mortem explains the 401 and the second attempt.
pub(super) async fn renew_token(
    shared: &Shared,
    generation: u64,
) -> Result<(), super::token::AuthError> {
    let renewal = shared
        .token
        .renew(generation, &shared.client, shared.confirmer.clone())
        .await?;
    if let Some(r) = renewal {
        let _ = shared.emit(&Event::TokenRenewed {
            by: r.by.to_string(),
            refresh_rotated: r.refresh_rotated,
            refresh_saved_to: r.saved_to.map(|p| p.to_string()),
            save_error: r.save_error,
        });
    }
    Ok(())
}

/// Exponential backoff with ±50 % jitter, at most 30 s; `Retry-After` (capped at 120 s) wins when
/// longer. A 429 without `Retry-After` waits at least a second: ESUS asked us to slow down.
pub(super) fn backoff(
    base: Duration,
    attempt: u32,
    retry_after: Option<Duration>,
    throttled: bool,
) -> Duration {
    let base = if throttled {
        base.max(Duration::from_secs(1))
    } else {
        base
    };
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(30));
    let jitter = rand::rng().random_range(0.5..1.5);
    let wait = exp.mul_f64(jitter);
    match retry_after {
        Some(ra) => wait.max(ra.min(Duration::from_secs(120))),
        None => wait,
    }
}

/// Records an answer in the event stream: the body only when small, not PHI, and with secret
/// fields redacted.
pub fn record_response(
    shared: &Shared,
    step: &str,
    request_id: &str,
    resp: &ApiResponse,
    policy: BodyPolicy,
    evidence: Option<crate::event::EvidenceRef>,
) -> std::io::Result<()> {
    let body = if policy.phi || resp.body.len() > 16 * 1024 || resp.body.is_empty() {
        None
    } else {
        let mut v = resp.json();
        redact_fields(&mut v, policy.secret_fields);
        // A body that did not parse cannot be redacted field by field: record none.
        (policy.secret_fields.is_empty() || v.is_object() || v.is_array()).then_some(v)
    };
    shared.emit(&Event::Response {
        step: step.into(),
        request_id: request_id.into(),
        status: Some(resp.status),
        duration_ms: resp.duration.as_millis() as u64,
        body_sha256: Some(crate::transcript::sha256_hex(&resp.body)),
        body,
        evidence,
        error: None,
    })
}

fn record_failure(
    shared: &Shared,
    step: &str,
    request_id: &str,
    error: &str,
) -> std::io::Result<()> {
    shared.emit(&Event::Response {
        step: step.into(),
        request_id: request_id.into(),
        status: None,
        duration_ms: 0,
        body_sha256: None,
        body: None,
        evidence: None,
        error: Some(error.into()),
    })
}

/// Replaces the named fields (at any depth) by [`REDACTED`].
pub fn redact_fields(v: &mut serde_json::Value, fields: &[&str]) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if fields.contains(&k.as_str()) {
                    *child = serde_json::Value::from(REDACTED);
                } else {
                    redact_fields(child, fields);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|c| redact_fields(c, fields)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let b = Duration::from_millis(100);
        assert!(backoff(b, 1, None, false) <= Duration::from_millis(150));
        assert!(backoff(b, 4, None, false) >= Duration::from_millis(400));
        assert!(backoff(b, 40, None, false) <= Duration::from_secs(45));
        assert!(backoff(b, 1, Some(Duration::from_secs(3)), false) >= Duration::from_secs(3));
        assert!(backoff(b, 1, Some(Duration::from_secs(3600)), false) <= Duration::from_secs(120));
        assert!(
            backoff(b, 1, None, true) >= Duration::from_millis(500),
            "a 429 without Retry-After still slows down"
        );
    }

    #[test]
    fn secret_fields_are_redacted_at_any_depth() {
        let mut v =
            serde_json::json!({"id": "k-2", "secret": "s3cr3t", "items": [{"secret": "x"}]});
        redact_fields(&mut v, &["secret"]);
        assert_eq!(
            v,
            serde_json::json!({"id": "k-2", "secret": REDACTED, "items": [{"secret": REDACTED}]})
        );
    }
}
