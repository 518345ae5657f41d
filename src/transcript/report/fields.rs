//! Reading record fields as the report shows them: plain helpers every part of the report uses.

use serde_json::Value;

use crate::transcript::Record;

/// `(unknown)` for empty text.
pub(super) fn or_unknown(s: &str) -> &str {
    if s.trim().is_empty() { "(unknown)" } else { s }
}

/// A string field of a record, empty when absent.
pub(super) fn field(r: &Record, name: &str) -> String {
    r.str_field(name).unwrap_or_default().to_string()
}

/// An array of strings, empty when absent.
pub(super) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
