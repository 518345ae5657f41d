//! A one-line description of each record, for the report's timeline of every record.

use serde_json::Value;

use super::fields::{field, strings};
use crate::transcript::record::Record;

/// A one-line description of a record.
pub(super) fn describe(r: &Record) -> String {
    let step = field(r, "step");
    match r.kind.as_str() {
        "run-started" => format!(
            "{} started by {} ({}){}",
            field(r, "runbook_name"),
            field(r, "operator"),
            field(r, "mode"),
            r.str_field("resumes_file")
                .map(|f| format!(", resuming {f}"))
                .unwrap_or_default()
        ),
        "preflight" => field(r, "summary"),
        "plan-approved" => format!("runs the signed plan sha256 {}", field(r, "plan_sha256")),
        "policy-applied" => format!(
            "inside the signed policy sha256 {}, signed by {}",
            field(r, "policy_sha256"),
            field(r, "signer")
        ),
        "carried" => format!(
            "{step}: finished by an earlier leg ({}), carried",
            field(r, "from_file")
        ),
        "carried-item" => format!("{step}: an item finished by an earlier leg, carried"),
        "unresolved" => format!("{step}: sent by an earlier leg, outcome still unknown"),
        "audit-evidence" => format!(
            "{step}: {} ({} rows, {})",
            field(r, "file"),
            r.data.get("rows").map_or("?".into(), Value::to_string),
            if r.data.get("complete") == Some(&Value::Bool(true)) {
                "complete"
            } else {
                "NOT proven complete"
            }
        ),
        "witness" => format!("witness: {} {}", field(r, "fact"), field(r, "what")),
        "follow-up" => format!("{step}: follow-up, {}", field(r, "prompt")),
        "plan" => format!("plan: {} steps", strings(r.data.get("order")).len()),
        "step-started" => format!("{step} started"),
        "confirmation" => format!(
            "{step}: {} ({})",
            if r.data.get("approved") == Some(&Value::Bool(true)) {
                "approved"
            } else {
                "declined"
            },
            field(r, "how")
        ),
        "request" => {
            let view = r.data.get("request");
            let get = |k| {
                view.and_then(|v| v.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            format!(
                "{step}: {} {} (attempt {})",
                get("method"),
                get("url"),
                r.data.get("attempt").map_or("?".into(), Value::to_string)
            )
        }
        "response" => match r.data.get("status").and_then(Value::as_u64) {
            Some(status) => format!(
                "{step}: HTTP {status} in {} ms",
                r.data
                    .get("duration_ms")
                    .map_or("?".into(), Value::to_string)
            ),
            None => format!("{step}: no response: {}", field(r, "error")),
        },
        "step-finished" => match r.str_field("reason") {
            Some(reason) => format!("{step}: {} ({reason})", field(r, "status")),
            None => format!("{step}: {}", field(r, "status")),
        },
        "run-finished" => format!("run finished: {}", field(r, "outcome")),
        "containment" => {
            let summary = field(r, "summary");
            if summary.is_empty() {
                format!("containment: {}", field(r, "state"))
            } else {
                format!("containment: {}: {summary}", field(r, "state"))
            }
        }
        other => other.to_string(),
    }
}
