//! The `--fault KIND=VALUE[@ROUTE]` language: parsing and route matching, with no runtime state,
//! so it can be checked in plain unit tests and reused by `drill`.
//!
//! ROUTE is `[METHOD ]PATH` (or `METHOD:PATH`, which needs no shell quoting); a path segment written
//! `{name}` or `*` matches any one segment: `drop_count=1@POST /api-keys/{id}/rotate`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::SimError;

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// `latency=20ms`: every matching answer is delayed this long (wall-clock time).
    Latency(Duration),
    /// `error_rate=0.2`: this share of matching requests is answered 500 or 503 (seeded draw).
    ErrorRate(f64),
    /// `drop_rate=0.05`: this share of matching requests is handled, then the connection is closed
    /// without an answer (seeded draw).
    DropRate(f64),
    /// `rate_limit=50/s` (or `/m`, or a period such as `1/3s`): beyond this many requests per
    /// period, 429 (with `Retry-After` only as `retry_after` says).
    RateLimit {
        /// Requests allowed per period.
        limit: u32,
        /// The period.
        per: Duration,
    },
    /// `token_ttl=60s`: access tokens issued from now on live this long.
    TokenTtl(Duration),
    /// `error_count=N`: the first N matching requests are answered 503.
    ErrorCount(u64),
    /// `drop_count=N`: the first N matching requests are handled, then dropped without an answer.
    DropCount(u64),
    /// `barrier=N`: the first N matching requests are held until all N are in flight at once.
    Barrier(usize),
    /// `cut_rate=0.05`: this share of matching requests is cut: the connection is closed
    /// without running the route (no state change, no audit row; seeded draw).
    CutRate(f64),
    /// `cut_count=N`: the first N matching requests are cut without running the route.
    CutCount(u64),
    /// `error_shape=operation-outcome|error|ok-reason`: every error answer on matching routes
    /// has this body shape.
    ErrorShape(ErrorShape),
    /// `retry_after=none|seconds|date`: whether 429 answers on matching routes carry
    /// `Retry-After`, and in which form (default: none).
    RetryAfter(RetryAfter),
    /// `audit_trickle=N`: after each matching request is answered, N new audit rows are
    /// appended in the scope that request looks at.
    AuditTrickle(u64),
    /// `absent=yes@ROUTE`: the matching route does not exist on this ESUS (an older or narrower
    /// deployment): 404, as for any unknown path, and no audit row.
    Absent,
}

/// The body shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"resourceType":"OperationOutcome","issue":[{"severity","code","diagnostics"}]}`.
    OperationOutcome,
    /// `{"error": "…"}`.
    Error,
    /// `{"ok": false, "reason": "…"}`.
    OkReason,
}

/// How a 429 announces its wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryAfter {
    /// No `Retry-After` header (the default).
    #[default]
    None,
    /// `Retry-After: <whole seconds>`.
    Seconds,
    /// `Retry-After: <IMF-fixdate>`.
    Date,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFilter {
    method: Option<String>,
    segments: Vec<Option<String>>,
}

impl RouteFilter {
    /// Parses `[METHOD ]PATH` or `METHOD:PATH`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (method, path) = match text.find('/') {
            Some(0) => (None, text),
            Some(i) => {
                let method = text[..i].trim().trim_end_matches(':').trim();
                if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(format!("route `{text}`: expected `[METHOD ]/path`"));
                }
                (Some(method.to_ascii_uppercase()), &text[i..])
            }
            None => return Err(format!("route `{text}`: the path must start with `/`")),
        };
        let segments = path
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .map(|seg| {
                let wildcard = seg == "*" || (seg.starts_with('{') && seg.ends_with('}'));
                (!wildcard).then(|| seg.to_owned())
            })
            .collect();
        Ok(RouteFilter { method, segments })
    }

    /// Whether a request with this method and path (no query) is covered.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        let mut parts = path.trim_end_matches('/').split('/').skip(1);
        for seg in &self.segments {
            match (parts.next(), seg) {
                (None, _) => return false,
                (Some(part), Some(lit)) if part != lit => return false,
                _ => {}
            }
        }
        parts.next().is_none()
    }
}

impl fmt::Display for RouteFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.method {
            write!(f, "{m} ")?;
        }
        for seg in &self.segments {
            write!(f, "/{}", seg.as_deref().unwrap_or("*"))?;
        }
        Ok(())
    }
}

/// One parsed `--fault` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// What the fault does.
    pub kind: FaultKind,
    /// Which requests it applies to; `None` = all (except `/_sim/`).
    pub route: Option<RouteFilter>,
}

impl FromStr for FaultSpec {
    type Err = SimError;

    fn from_str(spec: &str) -> Result<Self, SimError> {
        parse(spec).map_err(|reason| SimError::Fault {
            spec: spec.to_owned(),
            reason,
        })
    }
}

fn parse(spec: &str) -> Result<FaultSpec, String> {
    let (head, route) = match spec.split_once('@') {
        Some((head, route)) => (head, Some(RouteFilter::parse(route)?)),
        None => (spec, None),
    };
    let (kind, value) = head.split_once('=').ok_or(
        "expected KIND=VALUE[@ROUTE], e.g. latency=20ms or drop_count=1@POST /api-keys/{id}/rotate",
    )?;
    let value = value.trim();
    let kind = match kind.trim() {
        "latency" => FaultKind::Latency(duration(value)?),
        "error_rate" => FaultKind::ErrorRate(rate(value)?),
        "drop_rate" => FaultKind::DropRate(rate(value)?),
        "rate_limit" => rate_limit(value)?,
        "token_ttl" => {
            if route.is_some() {
                return Err("token_ttl applies to every token and takes no @ROUTE".into());
            }
            let ttl = duration(value)?;
            if ttl < Duration::from_secs(1) {
                return Err("token_ttl must be at least 1s".into());
            }
            FaultKind::TokenTtl(ttl)
        }
        "error_count" => FaultKind::ErrorCount(count(value)?),
        "drop_count" => FaultKind::DropCount(count(value)?),
        "barrier" => {
            let n = count(value)?;
            if n < 2 {
                return Err("barrier needs at least 2 requests to meet".into());
            }
            FaultKind::Barrier(usize::try_from(n).map_err(|_| "barrier is too large")?)
        }
        "cut_rate" => FaultKind::CutRate(rate(value)?),
        "cut_count" => FaultKind::CutCount(count(value)?),
        "error_shape" => FaultKind::ErrorShape(match value {
            "operation-outcome" => ErrorShape::OperationOutcome,
            "error" => ErrorShape::Error,
            "ok-reason" => ErrorShape::OkReason,
            _ => {
                return Err(format!(
                    "error_shape `{value}`: use operation-outcome, error or ok-reason"
                ));
            }
        }),
        "retry_after" => FaultKind::RetryAfter(match value {
            "none" => RetryAfter::None,
            "seconds" => RetryAfter::Seconds,
            "date" => RetryAfter::Date,
            _ => return Err(format!("retry_after `{value}`: use none, seconds or date")),
        }),
        "audit_trickle" => {
            let n = count(value)?;
            if n > 10_000 {
                return Err("audit_trickle is at most 10000 rows per request".into());
            }
            FaultKind::AuditTrickle(n)
        }
        "absent" => {
            if value != "yes" {
                return Err(format!("absent `{value}`: use absent=yes@ROUTE"));
            }
            if route.is_none() {
                return Err("absent needs the @ROUTE that this ESUS lacks".into());
            }
            FaultKind::Absent
        }
        other => {
            return Err(format!(
                "unknown kind `{other}`; known: latency, error_rate, drop_rate, rate_limit, \
                 token_ttl, error_count, drop_count, barrier, cut_rate, cut_count, error_shape, \
                 retry_after, audit_trickle, absent"
            ));
        }
    };
    Ok(FaultSpec { kind, route })
}

/// `20ms`, `2s`, `1m`, `1h`.
pub(crate) fn duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{value}` needs a unit: ms, s, m or h"))?;
    let (num, unit) = value.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{value}` is not a duration like 20ms or 60s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "`{value}`: unknown unit `{unit}` (use ms, s, m or h)"
        )),
    }
}

fn rate(value: &str) -> Result<f64, String> {
    let r: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number between 0 and 1"))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(format!("`{value}` must be between 0 and 1"));
    }
    Ok(r)
}

fn count(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number"))
}

fn rate_limit(value: &str) -> Result<FaultKind, String> {
    let (n, per) = value
        .split_once('/')
        .ok_or_else(|| format!("`{value}`: expected N/s or N/m, e.g. 50/s"))?;
    let limit: u32 = n
        .parse()
        .map_err(|_| format!("`{n}` is not a whole number"))?;
    if limit == 0 {
        return Err("rate_limit must allow at least 1 request".into());
    }
    let per = match per {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        // `1/3s`: a period of any length, so a test can tell a Retry-After wait from a backoff.
        other => duration(other)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("`{value}`: the period is s, m or a duration like 3s"))?,
    };
    Ok(FaultKind::RateLimit { limit, per })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let p = |s: &str| s.parse::<FaultSpec>().unwrap().kind;
        assert_eq!(
            p("latency=20ms"),
            FaultKind::Latency(Duration::from_millis(20))
        );
        assert_eq!(p("error_rate=0.2"), FaultKind::ErrorRate(0.2));
        assert_eq!(p("drop_rate=0.05"), FaultKind::DropRate(0.05));
        assert_eq!(
            p("rate_limit=50/s"),
            FaultKind::RateLimit {
                limit: 50,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(
            p("token_ttl=60s"),
            FaultKind::TokenTtl(Duration::from_secs(60))
        );
        assert_eq!(p("error_count=3"), FaultKind::ErrorCount(3));
        assert_eq!(p("drop_count=1"), FaultKind::DropCount(1));
        assert_eq!(p("barrier=2"), FaultKind::Barrier(2));
        assert_eq!(p("cut_rate=0.1"), FaultKind::CutRate(0.1));
        assert_eq!(p("cut_count=2"), FaultKind::CutCount(2));
        assert_eq!(
            p("error_shape=ok-reason@/auth/me"),
            FaultKind::ErrorShape(ErrorShape::OkReason)
        );
        assert_eq!(
            p("retry_after=date"),
            FaultKind::RetryAfter(RetryAfter::Date)
        );
        assert_eq!(p("audit_trickle=3"), FaultKind::AuditTrickle(3));
        assert_eq!(p("absent=yes@GET /v1/admin/audit/"), FaultKind::Absent);
        assert!("absent=yes".parse::<FaultSpec>().is_err());
        assert!("absent=no@/x".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn route_with_method_and_placeholder_matches_one_segment() {
        let spec: FaultSpec = "drop_count=1@POST /api-keys/{id}/rotate".parse().unwrap();
        let route = spec.route.unwrap();
        assert!(route.matches("POST", "/api-keys/k-1/rotate"));
        assert!(!route.matches("GET", "/api-keys/k-1/rotate"));
        assert!(!route.matches("POST", "/api-keys/k-1"));
        assert!(!route.matches("POST", "/api-keys/k-1/rotate/x"));
        let colon: FaultSpec = "error_count=1@post:/auth/login".parse().unwrap();
        assert!(colon.route.unwrap().matches("POST", "/auth/login"));
        let any: FaultSpec = "latency=1ms@/api-keys/*".parse().unwrap();
        assert!(any.route.unwrap().matches("DELETE", "/api-keys/k-9"));
    }

    #[test]
    fn rejects_bad_specs_with_reasons() {
        for (spec, needle) in [
            ("latency", "KIND=VALUE"),
            ("latency=20", "unit"),
            ("error_rate=1.5", "between 0 and 1"),
            ("rate_limit=50", "N/s"),
            ("rate_limit=1/0s", "the period"),
            ("nap=1s", "unknown kind"),
            ("barrier=1", "at least 2"),
            ("token_ttl=60s@/auth/login", "no @ROUTE"),
            ("drop_count=1@api-keys", "must start with `/`"),
            ("error_shape=xml", "operation-outcome, error or ok-reason"),
            ("retry_after=soon", "none, seconds or date"),
            ("cut_rate=2", "between 0 and 1"),
        ] {
            let err = spec.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
