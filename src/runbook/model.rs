//! The runbook as data: what the YAML means, with serde doing the reading.
//!
//! Unknown fields are rejected everywhere (`deny_unknown_fields`): a typo in an incident runbook
//! must fail validation, not silently drop a safety setting such as `confirm`.

use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A whole runbook file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// Format version; only `1` exists.
    pub version: u32,
    /// Short name, shown in plans, transcripts and reports.
    pub name: String,
    /// What the runbook is for and when to use it.
    #[serde(default)]
    pub description: String,
    /// Values the operator supplies at run time.
    #[serde(default)]
    pub inputs: IndexMap<String, InputSpec>,
    /// The steps, in file order.
    pub steps: Vec<Step>,
    /// How the run's evidence is kept: `{ encrypt: required }` refuses a run that was given no
    /// recipient to encrypt it to (`--encrypt-to`).
    #[serde(default)]
    pub evidence: EvidencePolicy,
}

/// How a runbook's evidence must be kept.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidencePolicy {
    /// `required`: only encrypted (age); `optional` (default): as the run is told.
    #[serde(default)]
    pub encrypt: Encrypt,
}

/// Whether evidence must be encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encrypt {
    /// Encrypted when the run is given recipients.
    #[default]
    Optional,
    /// A run without recipients refuses to start.
    Required,
}

/// One declared input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The input's type.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// What the operator should supply.
    #[serde(default)]
    pub description: String,
    /// Whether a run refuses to start without it.
    #[serde(default)]
    pub required: bool,
    /// The value used when none is supplied (not allowed for secrets).
    pub default: Option<Value>,
    /// A regular expression a string input must match in full.
    pub pattern: Option<String>,
    /// An environment variable that may supply the value.
    pub env: Option<String>,
}

/// Types an input can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list of values.
    List,
    /// Text that is never echoed, logged or recorded.
    Secret,
}

impl InputType {
    /// The word used in the runbook.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Boolean => "boolean",
            InputType::List => "list",
            InputType::Secret => "secret",
        }
    }
}

/// One step of the runbook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique id, `[a-z0-9_-]+`; other steps refer to it.
    pub id: String,
    /// What the step does, for people (may use templates over inputs).
    pub name: String,
    /// A built-in action such as `api_keys.rotate`, or `http`.
    pub action: String,
    /// The action's parameters; string values are templates.
    #[serde(default)]
    pub with: IndexMap<String, Value>,
    /// Steps this one waits for. Absent: the previous step in the file. `[]`: none.
    pub needs: Option<Vec<String>>,
    /// A condition (expression); when false the step is skipped.
    pub when: Option<String>,
    /// Run this read only where the operator has the right ESUS requires for it (`GET /auth/me`
    /// says so); otherwise it is skipped, and the run says why. For reads only: a write the
    /// operator may not send must stop the run, never be skipped.
    #[serde(default)]
    pub if_permitted: bool,
    /// Whether to ask before running: `true`, `false`, `typed`, or a message.
    pub confirm: Option<Confirm>,
    /// Values taken from the response, by expression.
    #[serde(default)]
    pub outputs: IndexMap<String, OutputSpec>,
    /// Extra HTTP statuses that count as success.
    #[serde(default)]
    pub expect: Vec<u16>,
    /// Retry policy for transient failures.
    pub retry: Option<Retry>,
    /// Longest time one request may take, e.g. `30s`.
    pub timeout: Option<DurationSpec>,
    /// What a failure of this step does to the run.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// A list expression: run the step once per item (`item` in templates).
    pub foreach: Option<String>,
    /// How many `foreach` items run at once (default 1).
    pub concurrency: Option<u32>,
    /// File name in the run's evidence folder for the full (paged) response.
    pub save: Option<String>,
}

/// The `confirm` setting of a step.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub enum Confirm {
    /// `true` asks, `false` never asks.
    Bool(bool),
    /// `typed`: the operator must type the resource id.
    #[schemars(with = "String")]
    Typed,
    /// Ask with this message (a template).
    Message(String),
}

impl<'de> Deserialize<'de> for Confirm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected true, false, `typed` or a message"))?
        {
            Raw::Bool(b) => Ok(Confirm::Bool(b)),
            Raw::Text(t) if t == "typed" => Ok(Confirm::Typed),
            Raw::Text(t) => Ok(Confirm::Message(t)),
        }
    }
}

/// An output: an expression, or an expression marked secret.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OutputSpec {
    /// `name: response.id`
    Expr(String),
    /// `name: { value: response.secret, secret: true }`
    Full(OutputFull),
}

/// The long form of an output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputFull {
    /// The expression over `response`, `status`, `inputs`, `steps` (and `item`).
    pub value: String,
    /// Keep the value secret: never shown, logged or recorded.
    #[serde(default)]
    pub secret: bool,
}

impl OutputSpec {
    /// The expression text.
    pub fn expr(&self) -> &str {
        match self {
            OutputSpec::Expr(e) => e,
            OutputSpec::Full(f) => &f.value,
        }
    }

    /// Whether the runbook marked it secret.
    pub fn declared_secret(&self) -> bool {
        matches!(self, OutputSpec::Full(f) if f.secret)
    }
}

/// Retry policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts, first included (1–10).
    pub attempts: u32,
    /// First backoff, doubled each time, with jitter (default `1s`).
    pub backoff: Option<DurationSpec>,
}

/// What a step failure does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop scheduling new steps (running ones finish).
    #[default]
    Abort,
    /// Carry on; steps that need this one are skipped.
    Continue,
}

/// A duration written like `500ms`, `30s`, `2m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct DurationSpec(pub Duration);

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(DurationSpec).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration like `500ms`, `30s`, `2m` or `1h`"
            ))
        })
    }
}

/// Parses `<digits><unit>` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }?;
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3 weeks"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }
}
