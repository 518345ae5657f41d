//! Errors as ESUS answers them: a FHIR OperationOutcome with an HTTP status, on every route.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The failure reason, attached to error responses so the audit row can record `outcomeDesc`.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeDesc(pub(crate) String);

/// An error answer: status, OperationOutcome issue code and diagnostics.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    diagnostics: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            diagnostics: diagnostics.into(),
            retry_after: None,
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
    /// 409 `conflict`.
    pub(crate) fn conflict(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", msg)
    }
    /// 429 `throttled` with `Retry-After`.
    pub(crate) fn throttled(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "rate limit exceeded (simulated fault)",
        );
        e.retry_after = Some(retry_after);
        e
    }
    /// 500 or 503 `exception`.
    pub(crate) fn exception(status: u16, msg: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, "exception", msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": self.code, "diagnostics": self.diagnostics}],
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.extensions_mut().insert(OutcomeDesc(self.diagnostics));
        resp
    }
}
