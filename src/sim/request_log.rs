//! The request log behind `GET /_sim/requests`: every request received (except `/_sim/` ones),
//! in arrival order, with what the server did with it. Tests assert on what the server saw.
//! Secrets are never recorded: only which kind of credential was presented.

use std::collections::VecDeque;
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The newest entries kept; older ones are forgotten so long benchmarks do not grow memory.
const CAPACITY: usize = 100_000;

/// Which kind of credential a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// `Authorization: Bearer …`.
    Bearer,
    /// `X-API-Key: …`.
    ApiKey,
    /// Neither.
    None,
}

/// One received request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1, 2, 3… in arrival order.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `X-Request-Id` header, if any.
    pub request_id: Option<String>,
    /// The `User-Agent` header, if any.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The credential kind presented (never the secret).
    pub credential: CredentialKind,
    /// The status answered; `None` while in flight or when dropped.
    pub status: Option<u16>,
    /// True when the connection was closed without an answer (a drop fault).
    pub dropped: bool,
    /// Faults that fired: `latency`, `error`, `drop`, `rate_limit`, `barrier`, `barrier-timeout`.
    pub faults: Vec<String>,
    /// Arrival time on the simulated clock.
    pub received_at: Timestamp,
    /// When its fate was known (answered, or the connection closed), on the simulated clock;
    /// `None` while in flight.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
}

/// The log itself.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<RecordedRequest>,
    next_seq: u64,
}

impl RequestLog {
    /// Records an arrival and returns its sequence number.
    pub(crate) fn arrive(&self, mut entry: RecordedRequest) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_seq += 1;
        entry.seq = inner.next_seq;
        if inner.entries.len() == CAPACITY {
            inner.entries.pop_front();
        }
        inner.entries.push_back(entry);
        inner.next_seq
    }

    /// Updates an entry once its fate is known.
    pub(crate) fn finish(
        &self,
        seq: u64,
        at: Timestamp,
        status: Option<u16>,
        dropped: bool,
        faults: &[&str],
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(first) = inner.entries.front().map(|e| e.seq) else {
            return;
        };
        let Some(idx) = seq.checked_sub(first).and_then(|i| usize::try_from(i).ok()) else {
            return;
        };
        if let Some(e) = inner.entries.get_mut(idx) {
            e.status = status;
            e.finished_at = Some(at);
            e.dropped = dropped;
            e.faults = faults.iter().map(|f| (*f).to_owned()).collect();
        }
    }

    /// Entries with `seq > since`, oldest first.
    pub(crate) fn since(&self, since: u64) -> Vec<RecordedRequest> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .entries
            .iter()
            .filter(|e| e.seq > since)
            .cloned()
            .collect()
    }
}
