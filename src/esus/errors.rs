//! ESUS's error bodies. The OpenAPI documents three shapes on different routes — a FHIR
//! OperationOutcome (`/fhir/*`), `{"error": …}` (429 among others) and `{"ok": false, "reason"}` —
//! so a message for people must read all three, and fall back to nothing rather than guess.

use serde_json::Value;

/// What an error body says: a machine code when there is one, and the server's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// OperationOutcome `issue[0].code`, or `error` when `{"error"}` carries a code-like word.
    pub code: Option<String>,
    /// The diagnostics / error / reason text.
    pub message: Option<String>,
}

impl ErrorBody {
    /// Reads any of the three documented shapes; `None` for anything else.
    pub fn parse(body: &Value) -> Option<ErrorBody> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        if body.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") {
            let issue = body.get("issue").and_then(Value::as_array)?.first()?;
            return Some(ErrorBody {
                code: issue.get("code").and_then(text),
                message: issue.get("diagnostics").and_then(text),
            });
        }
        if body.get("ok") == Some(&Value::Bool(false)) {
            return Some(ErrorBody {
                code: None,
                message: body.get("reason").and_then(text),
            });
        }
        let error = body.get("error")?;
        let message = match error {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => m.get("message").and_then(text),
            _ => None,
        };
        Some(ErrorBody {
            code: body.get("code").and_then(text),
            message: message.or_else(|| body.get("error_description").and_then(text)),
        })
    }

    /// ` (code: message)`, ` (code)` or ` (message)`; with `quote` false the server's words are
    /// left out (they may echo a secret or PHI that was sent).
    pub fn suffix(&self, quote: bool) -> String {
        let message = self
            .message
            .as_deref()
            .filter(|_| quote)
            .map(|m| m.chars().take(300).collect::<String>());
        match (self.code.as_deref(), message) {
            (Some(c), Some(m)) => format!(" ({c}: {m})"),
            (Some(c), None) => format!(" ({c})"),
            (None, Some(m)) => format!(" ({m})"),
            (None, None) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_three_documented_shapes_are_read() {
        let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "missing permission Patient.read"}]});
        assert_eq!(
            ErrorBody::parse(&oo).map(|e| e.suffix(true)),
            Some(" (forbidden: missing permission Patient.read)".into())
        );
        let plain = json!({"error": "Too many requests"});
        assert_eq!(
            ErrorBody::parse(&plain).map(|e| e.suffix(true)),
            Some(" (Too many requests)".into())
        );
        let ok_false = json!({"ok": false, "reason": "signature mismatch"});
        assert_eq!(
            ErrorBody::parse(&ok_false).map(|e| e.suffix(true)),
            Some(" (signature mismatch)".into())
        );
        assert_eq!(ErrorBody::parse(&json!({"id": "k-1"})), None);
        assert_eq!(ErrorBody::parse(&json!("text")), None);
    }

    #[test]
    fn the_servers_words_can_be_withheld() {
        let oo = json!({"resourceType": "OperationOutcome", "issue": [{"code": "invalid", "diagnostics": "bad secret sk_live_canary"}]});
        let e = ErrorBody::parse(&oo).expect("parsed");
        assert_eq!(e.suffix(false), " (invalid)");
        let plain = ErrorBody::parse(&json!({"error": "echo sk_live_canary"})).expect("parsed");
        assert_eq!(plain.suffix(false), "");
    }
}
