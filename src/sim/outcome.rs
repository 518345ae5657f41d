//! Errors as ESUS answers them. Handlers return an [`ApiError`]; its body shape is chosen by the
//! request layer from the route (OpenAPI: FHIR routes document OperationOutcome, several
//! non-FHIR routes document `{"error"}`, 429 is documented as `{"error"}`), unless an
//! `error_shape` fault forces one. The layer also adds `Retry-After` to 429s per the
//! `retry_after` fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fault_spec::{ErrorShape, RetryAfter};

/// The failure reason, attached to error responses so the audit row can record `outcomeDesc`.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeDesc(pub(crate) String);

/// What an error answer says, kept on the response so the layer can render its body.
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    code: &'static str,
    diagnostics: String,
    /// For 429: the real wait in seconds (at least 1).
    retry_after: Option<u64>,
}

/// An error answer: status, OperationOutcome issue code and diagnostics.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    info: ErrorInfo,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        ApiError {
            status,
            info: ErrorInfo {
                code,
                diagnostics: diagnostics.into(),
                retry_after: None,
            },
        }
    }

    /// 400 `invalid`.
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", msg)
    }
    /// 401 with a code (`login`, `expired`, `security`).
    pub(crate) fn unauthorized(code: &'static str, msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, msg)
    }
    /// 403 `forbidden`.
    pub(crate) fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", msg)
    }
    /// 404 `not-found`.
    pub(crate) fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", msg)
    }
    /// 405 `not-supported`.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            "method not allowed on this route",
        )
    }
    /// 429 `throttled`; `wait_secs` is the real wait (the layer decides whether to announce it).
    pub(crate) fn throttled(wait_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "rate limit exceeded (simulated fault)",
        );
        e.info.retry_after = Some(wait_secs.max(1));
        e
    }
    /// 500 or 503 `exception`.
    pub(crate) fn exception(status: u16, msg: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, "exception", msg)
    }
}

fn operation_outcome(info: &ErrorInfo) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": info.code, "diagnostics": info.diagnostics}],
    })
}

impl IntoResponse for ApiError {
    /// The OperationOutcome form; the request layer re-renders ESUS routes' errors.
    fn into_response(self) -> Response {
        let body = operation_outcome(&self.info);
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.extensions_mut()
            .insert(OutcomeDesc(self.info.diagnostics.clone()));
        resp.extensions_mut().insert(self.info);
        resp
    }
}

/// The body shape ESUS uses on a route when no fault forces one: OperationOutcome on `/fhir/*`,
/// `{"error"}` elsewhere; 429 is `{"error"}` everywhere.
pub(crate) fn default_shape(path: &str, status: StatusCode) -> ErrorShape {
    if status == StatusCode::TOO_MANY_REQUESTS {
        ErrorShape::Error
    } else if path == "/fhir" || path.starts_with("/fhir/") {
        ErrorShape::OperationOutcome
    } else {
        ErrorShape::Error
    }
}

/// Renders an error answer's body in `shape` and adds `Retry-After` to a 429 per `retry`.
/// Answers that are not errors pass through untouched.
pub(crate) fn render(
    resp: Response,
    path: &str,
    forced: Option<ErrorShape>,
    retry: RetryAfter,
) -> Response {
    let Some(info) = resp.extensions().get::<ErrorInfo>().cloned() else {
        return resp;
    };
    let shape = forced.unwrap_or_else(|| default_shape(path, resp.status()));
    let body = match shape {
        ErrorShape::OperationOutcome => operation_outcome(&info),
        ErrorShape::Error => json!({"error": info.diagnostics}),
        ErrorShape::OkReason => json!({"ok": false, "reason": info.diagnostics}),
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(wait) = info.retry_after
        && let Some(value) = retry_after_value(retry, wait)
    {
        parts.headers.insert(header::RETRY_AFTER, value);
    }
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// The `Retry-After` value announcing a real wait of `wait` seconds: none, whole seconds, or an
/// IMF-fixdate (RFC 9110) rounded up to the next whole second, at least one second from now
/// (wall clock, like the `Date` header).
fn retry_after_value(mode: RetryAfter, wait: u64) -> Option<HeaderValue> {
    let wait = wait.max(1);
    match mode {
        RetryAfter::None => None,
        RetryAfter::Seconds => Some(HeaderValue::from(wait)),
        RetryAfter::Date => {
            let now = jiff::Timestamp::now();
            let secs = i64::try_from(wait).unwrap_or(i64::MAX);
            let at = now
                .as_second()
                .saturating_add(secs)
                .saturating_add(i64::from(now.subsec_nanosecond() > 0));
            let at = jiff::Timestamp::from_second(at).ok()?;
            HeaderValue::from_str(&http_date(at)).ok()
        }
    }
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(at: jiff::Timestamp) -> String {
    at.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdate() {
        let t = jiff::Timestamp::from_second(784_111_777).unwrap();
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn shapes_follow_the_route() {
        assert_eq!(
            default_shape("/fhir/Patient/p", StatusCode::FORBIDDEN),
            ErrorShape::OperationOutcome
        );
        assert_eq!(
            default_shape("/fhir/Patient/p", StatusCode::TOO_MANY_REQUESTS),
            ErrorShape::Error
        );
        assert_eq!(
            default_shape("/auth/me", StatusCode::UNAUTHORIZED),
            ErrorShape::Error
        );
    }
}
