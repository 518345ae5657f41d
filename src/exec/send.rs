//! Sending one request with the safety rules for retries: idempotent calls are retried with
//! exponential backoff and jitter on connection errors, 5xx and 429 (honouring `Retry-After`);
//! a non-idempotent call is never re-sent once it may have reached ESUS — its outcome is
//! reported as unknown so the caller can check the server's state instead.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::event::{Event, REDACTED};
use super::shared::Shared;
use crate::esus::client::{ApiResponse, TransportError};
use crate::esus::request::{ApiRequest, Auth};

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

/// Sends `req` for `step` (item `item`), retrying as the policy allows.
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
    let mut attempt = 0u32;
    let mut renewals = 0;
    loop {
        attempt += 1;
        let request_id = uuid::Uuid::new_v4().to_string();
        shared.emit(&Event::Request {
            step: step.into(),
            item,
            attempt,
            request_id: request_id.clone(),
            request: view.clone(),
        })?;
        let (token, generation) = shared.token.current().await;
        let result = shared
            .client
            .send(req, token.as_ref(), &request_id, policy.timeout)
            .await;
        let retry_after = match result {
            Ok(resp)
                if resp.status == 401 && matches!(req.auth, Auth::Operator) && renewals < 2 =>
            {
                record_response(shared, step, &request_id, &resp, body, None)?;
                renewals += 1;
                if let Err(e) = shared
                    .token
                    .renew(generation, &shared.client, shared.confirmer.clone())
                    .await
                {
                    return Ok(Sent::AuthFailed(e.0));
                }
                attempt -= 1;
                continue;
            }
            Ok(resp) => {
                let transient = resp.status == 429 || (resp.status >= 500 && policy.idempotent);
                if !transient || attempt >= policy.attempts {
                    if resp.status >= 500 && !policy.idempotent {
                        record_response(shared, step, &request_id, &resp, body, None)?;
                        return Ok(Sent::Unknown(format!(
                            "ESUS answered {} to a request that is not safe to repeat",
                            resp.status
                        )));
                    }
                    return Ok(Sent::Answer(resp, request_id));
                }
                record_response(shared, step, &request_id, &resp, body, None)?;
                resp.retry_after
            }
            Err(TransportError::NotSent(e)) => {
                record_failure(shared, step, &request_id, &e)?;
                if attempt >= policy.attempts {
                    return Ok(Sent::Failed(e));
                }
                None
            }
            Err(TransportError::Unknown(e)) => {
                record_failure(shared, step, &request_id, &e)?;
                if !policy.idempotent {
                    return Ok(Sent::Unknown(e));
                }
                if attempt >= policy.attempts {
                    return Ok(Sent::Failed(e));
                }
                None
            }
        };
        let wait = backoff(policy.backoff, attempt, retry_after);
        tracing::info!(step, attempt, wait_ms = wait.as_millis() as u64, "retrying");
        if shared.interrupt.sleep_or_stop(wait).await {
            return Ok(Sent::Interrupted);
        }
    }
}

/// Exponential backoff with ±50 % jitter, at most 30 s; `Retry-After` (capped at 120 s) wins when longer.
fn backoff(base: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
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
    evidence: Option<super::event::EvidenceRef>,
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
        assert!(backoff(b, 1, None) <= Duration::from_millis(150));
        assert!(backoff(b, 4, None) >= Duration::from_millis(400));
        assert!(backoff(b, 40, None) <= Duration::from_secs(45));
        assert!(backoff(b, 1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(backoff(b, 1, Some(Duration::from_secs(3600))) <= Duration::from_secs(120));
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
