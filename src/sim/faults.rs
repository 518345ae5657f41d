//! Fault injection at run time: decides, per request and in arrival order, which of the configured
//! faults fire. Rates draw from one RNG seeded by `--seed`, so a sequential run is reproducible;
//! counts and barriers need no randomness at all, which is what executor tests rely on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;

use super::fault_spec::{ErrorShape, FaultKind, FaultSpec, RetryAfter};

/// How long a barrier holds requests before letting them go anyway, so nothing hangs.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fault layer decided for one request before it reaches the routes.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    /// Added to the answer (wall-clock).
    pub(crate) latency: Duration,
    /// Answer with this instead of calling the route.
    pub(crate) reject: Option<Reject>,
    /// Run the route, then close the connection without answering.
    pub(crate) drop: bool,
    /// The error-body shape forced by an `error_shape` fault (the last matching one).
    pub(crate) error_shape: Option<ErrorShape>,
    /// How 429s announce their wait (the last matching `retry_after` fault; default none).
    pub(crate) retry_after: RetryAfter,
    /// Audit rows to append after the answer (`audit_trickle`, summed over matching rules).
    pub(crate) trickle: u64,
    /// Names of the faults that fired, for the request log.
    pub(crate) fired: Vec<&'static str>,
}

/// A substitute answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// 500 or 503.
    Error(u16),
    /// 429; the real wait in seconds.
    RateLimited(u64),
    /// Close the connection without running the route.
    Cut,
    /// 404: the route does not exist on this ESUS.
    Absent,
}

struct Rule {
    spec: FaultSpec,
    state: RuleState,
}

enum RuleState {
    Stateless,
    Counter(AtomicU64),
    Bucket(Mutex<Bucket>),
    Barrier(Barrier),
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Barrier {
    arrived: AtomicUsize,
    released: watch::Sender<bool>,
}

/// The configured faults and their counters.
pub(crate) struct FaultEngine {
    rules: Vec<Rule>,
    rng: Mutex<StdRng>,
}

impl FaultEngine {
    /// Builds the engine; `seed` makes the rate-based faults reproducible.
    pub(crate) fn new(specs: &[FaultSpec], seed: u64) -> Self {
        let rules = specs
            .iter()
            .map(|spec| {
                let state = match &spec.kind {
                    FaultKind::ErrorCount(_) | FaultKind::DropCount(_) | FaultKind::CutCount(_) => {
                        RuleState::Counter(AtomicU64::new(0))
                    }
                    FaultKind::RateLimit { limit, .. } => RuleState::Bucket(Mutex::new(Bucket {
                        tokens: f64::from(*limit),
                        last: Instant::now(),
                    })),
                    FaultKind::Barrier(_) => RuleState::Barrier(Barrier {
                        arrived: AtomicUsize::new(0),
                        released: watch::Sender::new(false),
                    }),
                    _ => RuleState::Stateless,
                };
                Rule {
                    spec: spec.clone(),
                    state,
                }
            })
            .collect();
        FaultEngine {
            rules,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// The `token_ttl` fault, if any (the last one wins).
    pub(crate) fn token_ttl(&self) -> Option<Duration> {
        self.rules.iter().rev().find_map(|r| match r.spec.kind {
            FaultKind::TokenTtl(ttl) => Some(ttl),
            _ => None,
        })
    }

    /// Whether any fault could apply to requests at all (saves work on the hot path).
    pub(crate) fn is_empty(&self) -> bool {
        self.rules
            .iter()
            .all(|r| matches!(r.spec.kind, FaultKind::TokenTtl(_)))
    }

    /// Decides the faults of one request. Barriers are awaited here, before anything else, so
    /// the held requests are truly in flight together.
    pub(crate) async fn decide(&self, method: &str, path: &str) -> Decision {
        let mut d = Decision::default();
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| {
                r.spec
                    .route
                    .as_ref()
                    .is_none_or(|f| f.matches(method, path))
            })
            .collect();
        for rule in &matching {
            if let RuleState::Barrier(b) = &rule.state
                && let FaultKind::Barrier(n) = rule.spec.kind
            {
                match b.wait(n).await {
                    Some(true) => d.fired.push("barrier"),
                    Some(false) => d.fired.push("barrier-timeout"),
                    None => {}
                }
            }
        }
        for rule in &matching {
            self.apply(rule, &mut d);
        }
        d
    }

    fn apply(&self, rule: &Rule, d: &mut Decision) {
        match (&rule.spec.kind, &rule.state) {
            (FaultKind::Latency(l), _) => {
                d.latency += *l;
                d.fired.push("latency");
            }
            (FaultKind::RateLimit { limit, per }, RuleState::Bucket(bucket)) => {
                if d.reject.is_none()
                    && let Some(retry) = take_token(bucket, *limit, *per)
                {
                    d.reject = Some(Reject::RateLimited(retry));
                    d.fired.push("rate_limit");
                }
            }
            (FaultKind::ErrorRate(p), _) => {
                // Always draw, even when already rejected, so one rule's outcome does not shift
                // the sequence another rule sees.
                let (hit, status) = self.draw(*p);
                if hit && d.reject.is_none() {
                    d.reject = Some(Reject::Error(status));
                    d.fired.push("error");
                }
            }
            // The draw comes first so it happens for every matching request.
            (FaultKind::DropRate(p), _) if self.draw(*p).0 && d.reject.is_none() => {
                d.drop = true;
                d.fired.push("drop");
            }
            (FaultKind::ErrorCount(n), RuleState::Counter(c))
                if d.reject.is_none() && c.fetch_add(1, Ordering::Relaxed) < *n =>
            {
                d.reject = Some(Reject::Error(503));
                d.fired.push("error");
            }
            (FaultKind::DropCount(n), RuleState::Counter(c))
                if d.reject.is_none() && c.fetch_add(1, Ordering::Relaxed) < *n =>
            {
                d.drop = true;
                d.fired.push("drop");
            }
            // Drawn for every matching request, like the other rates.
            (FaultKind::CutRate(p), _) if self.draw(*p).0 && d.reject.is_none() => {
                d.reject = Some(Reject::Cut);
                d.fired.push("cut");
            }
            (FaultKind::CutCount(n), RuleState::Counter(c))
                if d.reject.is_none() && c.fetch_add(1, Ordering::Relaxed) < *n =>
            {
                d.reject = Some(Reject::Cut);
                d.fired.push("cut");
            }
            (FaultKind::ErrorShape(shape), _) => d.error_shape = Some(*shape),
            (FaultKind::RetryAfter(mode), _) => d.retry_after = *mode,
            (FaultKind::AuditTrickle(n), _) => d.trickle += n,
            // An absent route outranks every other answer: nothing is there to fail or throttle.
            (FaultKind::Absent, _) => {
                d.reject = Some(Reject::Absent);
                d.fired.push("absent");
            }
            _ => {}
        }
    }

    /// One seeded draw: whether the fault fires, and which 5xx to use.
    fn draw(&self, p: f64) -> (bool, u16) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let hit = rng.random::<f64>() < p;
        let status = if rng.random::<bool>() { 500 } else { 503 };
        (hit, status)
    }
}

/// Token bucket: `limit` tokens, refilled continuously over `per`. Returns `Some(retry_after)`
/// when the request must be refused.
fn take_token(bucket: &Mutex<Bucket>, limit: u32, per: Duration) -> Option<u64> {
    let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let rate = f64::from(limit) / per.as_secs_f64();
    b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(f64::from(limit));
    b.last = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        None
    } else {
        let wait = (1.0 - b.tokens) / rate;
        Some((wait.ceil() as u64).max(1))
    }
}

impl Barrier {
    /// `None` if this request is past the first `n` (not held); `Some(true)` if all `n` met;
    /// `Some(false)` if the wait timed out.
    async fn wait(&self, n: usize) -> Option<bool> {
        let mut rx = self.released.subscribe();
        let arrived = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        if arrived > n {
            return None;
        }
        if arrived == n {
            self.released.send_replace(true);
            return Some(true);
        }
        Some(matches!(
            tokio::time::timeout(BARRIER_TIMEOUT, rx.wait_for(|released| *released)).await,
            Ok(Ok(_))
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn engine(specs: &[&str], seed: u64) -> FaultEngine {
        let specs: Vec<FaultSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
        FaultEngine::new(&specs, seed)
    }

    #[tokio::test]
    async fn counts_fire_for_the_first_n_matching_requests_only() {
        let e = engine(&["error_count=2@GET /x"], 1);
        let mut fired = Vec::new();
        for path in ["/x", "/y", "/x", "/x"] {
            fired.push(e.decide("GET", path).await.reject);
        }
        let err = Some(Reject::Error(503));
        assert_eq!(fired, vec![err, None, err, None]);
    }

    #[tokio::test]
    async fn cut_count_rejects_before_the_route_and_modes_are_collected() {
        let e = engine(
            &[
                "cut_count=1@POST /x",
                "error_shape=ok-reason",
                "retry_after=seconds@/x",
                "audit_trickle=2@/x",
            ],
            1,
        );
        let first = e.decide("POST", "/x").await;
        assert_eq!(first.reject, Some(Reject::Cut));
        assert_eq!(first.fired, ["cut"]);
        assert_eq!(first.error_shape, Some(ErrorShape::OkReason));
        assert_eq!((first.retry_after, first.trickle), (RetryAfter::Seconds, 2));
        assert_eq!(e.decide("POST", "/x").await.reject, None);
        let other = e.decide("GET", "/y").await;
        assert_eq!((other.retry_after, other.trickle), (RetryAfter::None, 0));
    }

    #[tokio::test]
    async fn rates_are_reproducible_under_a_seed() {
        let run = |seed| async move {
            let e = engine(&["error_rate=0.5"], seed);
            let mut out = Vec::new();
            for _ in 0..32 {
                out.push(e.decide("GET", "/a").await.reject);
            }
            out
        };
        assert_eq!(run(7).await, run(7).await);
        assert!(run(7).await.iter().any(Option::is_some));
        assert!(run(7).await.iter().any(Option::is_none));
    }

    #[tokio::test]
    async fn barrier_releases_when_all_have_arrived() {
        let e = std::sync::Arc::new(engine(&["barrier=2"], 1));
        let e2 = e.clone();
        let first = tokio::spawn(async move { e2.decide("GET", "/a").await.fired });
        let second = e.decide("GET", "/a").await.fired;
        assert_eq!(second, vec!["barrier"]);
        assert_eq!(first.await.unwrap(), vec!["barrier"]);
        assert!(e.decide("GET", "/a").await.fired.is_empty());
    }
}
