//! Rest-hook subscriptions: which audit rows a Subscription's criteria select, and the delivery
//! worker that POSTs them as FHIR AuditEvents. Deliveries go to loopback endpoints only (a drill
//! never calls out to the internet) and never to the simulator itself (that would loop).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::audit::AuditRow;

/// Deliveries waiting beyond this are dropped (and recorded as such) rather than queued forever.
const QUEUE: usize = 1024;

/// What a Subscription's `criteria` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Criteria {
    /// `AuditEvent[?outcome=success|failure[,…]][&emergency-override=true][&type=…]`.
    Audit {
        outcomes: Option<Vec<String>>,
        override_only: bool,
        kind: Option<String>,
    },
    /// Any other resource: accepted and stored, never notified (simulator assumption).
    Other,
}

impl Criteria {
    /// Parses a criteria string; unknown AuditEvent parameters are an error.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (resource, query) = text.split_once('?').unwrap_or((text, ""));
        if resource != "AuditEvent" {
            return Ok(Criteria::Other);
        }
        let (mut outcomes, mut override_only, mut kind) = (None, false, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("outcome", v)) => {
                    let list: Vec<String> = v.split(',').map(str::to_owned).collect();
                    if let Some(bad) = list
                        .iter()
                        .find(|o| !["success", "failure", "error"].contains(&o.as_str()))
                    {
                        return Err(format!(
                            "criteria outcome `{bad}`: use success, failure or error"
                        ));
                    }
                    outcomes = Some(list);
                }
                Some(("emergency-override", "true")) => override_only = true,
                Some(("type", v)) => kind = Some(v.to_owned()),
                _ => {
                    return Err(format!(
                        "criteria parameter `{pair}` is not supported; use outcome=, \
                         emergency-override=true or type="
                    ));
                }
            }
        }
        Ok(Criteria::Audit {
            outcomes,
            override_only,
            kind,
        })
    }

    /// Whether an audit row should be notified.
    pub(crate) fn selects(&self, row: &AuditRow) -> bool {
        match self {
            Criteria::Other => false,
            Criteria::Audit {
                outcomes,
                override_only,
                kind,
            } => {
                outcomes.as_ref().is_none_or(|o| o.contains(&row.outcome))
                    && (!override_only || row.agent.emergency_override)
                    && kind.as_ref().is_none_or(|k| &row.kind == k)
            }
        }
    }
}

/// One notification attempt, listed by `GET /_sim/deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The subscription.
    pub subscription_id: String,
    /// The audit row delivered.
    pub audit_id: String,
    /// Where it went.
    pub endpoint: String,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why it was not delivered (`not loopback`, `would loop`, a transport error…).
    pub error: Option<String>,
}

/// A queued notification.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) subscription_id: String,
    pub(crate) audit_id: String,
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) payload: Value,
}

/// The sending side of the delivery worker and its record.
#[derive(Debug, Clone)]
pub(crate) struct Hooks {
    tx: mpsc::Sender<Job>,
    log: Arc<Mutex<Vec<Delivery>>>,
}

impl Hooks {
    /// Starts the worker; it ends when every `Hooks` clone is dropped.
    pub(crate) fn start(own_addr: SocketAddr) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(worker(rx, log.clone(), own_addr));
        Hooks { tx, log }
    }

    /// Queues a notification (never blocks the request that caused it).
    pub(crate) fn send(&self, job: Job) {
        if let Err(err) = self.tx.try_send(job) {
            let job = match err {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            self.record(&job, None, Some("delivery queue full".into()));
        }
    }

    /// Every attempt so far.
    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, job: &Job, status: Option<u16>, error: Option<String>) {
        record(&self.log, job, status, error);
    }
}

fn record(log: &Mutex<Vec<Delivery>>, job: &Job, status: Option<u16>, error: Option<String>) {
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Delivery {
            subscription_id: job.subscription_id.clone(),
            audit_id: job.audit_id.clone(),
            endpoint: job.endpoint.clone(),
            status,
            error,
        });
}

async fn worker(mut rx: mpsc::Receiver<Job>, log: Arc<Mutex<Vec<Delivery>>>, own: SocketAddr) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build();
    let Ok(client) = client else {
        return;
    };
    while let Some(job) = rx.recv().await {
        if let Err(why) = check_endpoint(&job.endpoint, own) {
            record(&log, &job, None, Some(why.into()));
            continue;
        }
        let mut req = client
            .post(&job.endpoint)
            .header("content-type", "application/fhir+json")
            .body(job.payload.to_string());
        for (name, value) in &job.headers {
            req = req.header(name, value);
        }
        match req.send().await {
            Ok(resp) => record(&log, &job, Some(resp.status().as_u16()), None),
            Err(e) => record(&log, &job, None, Some(e.to_string())),
        }
    }
}

/// Loopback only, and not the simulator itself.
fn check_endpoint(endpoint: &str, own: SocketAddr) -> Result<(), &'static str> {
    let url = reqwest::Url::parse(endpoint).map_err(|_| "invalid endpoint URL")?;
    let port = url.port_or_known_default();
    let host = url.host_str().unwrap_or("");
    let ip: Option<IpAddr> = if host == "localhost" {
        Some(IpAddr::from([127, 0, 0, 1]))
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    };
    let Some(ip) = ip.filter(IpAddr::is_loopback) else {
        return Err("not loopback: the simulator delivers to loopback endpoints only");
    };
    if port == Some(own.port()) && (ip == own.ip() || own.ip().is_loopback()) {
        return Err("would loop: the endpoint is the simulator itself");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn criteria_parse_and_reject_unknown_parameters() {
        assert_eq!(Criteria::parse("Patient?name=x").unwrap(), Criteria::Other);
        let c = Criteria::parse("AuditEvent?outcome=failure&emergency-override=true").unwrap();
        assert_eq!(
            c,
            Criteria::Audit {
                outcomes: Some(vec!["failure".into()]),
                override_only: true,
                kind: None
            }
        );
        assert!(Criteria::parse("AuditEvent?outcome=maybe").is_err());
        assert!(Criteria::parse("AuditEvent?agent=u-1").is_err());
    }

    #[test]
    fn endpoints_must_be_loopback_and_not_the_simulator() {
        let own: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert!(check_endpoint("http://127.0.0.1:9000/hook", own).is_ok());
        assert!(check_endpoint("http://localhost:9000/hook", own).is_ok());
        assert!(check_endpoint("http://[::1]:9000/hook", own).is_ok());
        assert!(check_endpoint("https://your-app.com/alerts", own).is_err());
        assert!(check_endpoint("http://10.0.0.1:9000/hook", own).is_err());
        assert!(check_endpoint("http://127.0.0.1:4000/hook", own).is_err());
        assert!(check_endpoint("not a url", own).is_err());
    }
}
