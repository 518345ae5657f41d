//! Gathering a run's inputs from flags, files and the environment, type-checked against the
//! runbook before anything is sent. Secret inputs become `SecretString` the moment they are read
//! and may only come from the environment, a file, or a hidden prompt — never from argv.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::event::REDACTED;
use crate::runbook::model::{InputSpec, InputType, Runbook};

/// Reads an environment variable.
pub type EnvReader = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Asks for a secret input without echo: (name, description, optional) → value; an optional one
/// is skipped by Enter.
pub type SecretPrompt = Box<dyn Fn(&str, &str, bool) -> Option<SecretString> + Send + Sync>;

/// Asks for a missing required input at the terminal: (name, type, description) → text.
pub type TextPrompt = Box<dyn Fn(&str, &str, &str) -> Option<String> + Send + Sync>;

/// Where input values may come from (the CLI fills this in).
#[derive(Default)]
pub struct InputSources {
    /// `--input NAME=VALUE`, in order.
    pub given: Vec<(String, String)>,
    /// The parsed `--inputs-file` mapping.
    pub file: Option<Map<String, Value>>,
    /// `--secret-file NAME=PATH`.
    pub secret_files: Vec<(String, PathBuf)>,
    /// Reads an environment variable (a closure so tests need not touch the process environment).
    pub env: Option<EnvReader>,
    /// Asks for a missing secret without echo (interactive runs only).
    pub prompt_secret: Option<SecretPrompt>,
    /// Asks for a missing required input (interactive runs only).
    pub prompt_text: Option<TextPrompt>,
}

/// The resolved inputs of a run.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// Non-secret values (absent optional inputs are `null`); secret inputs appear as [`REDACTED`]
    /// when supplied and `null` when not.
    /// Shared (`Arc`): a fan-out's inputs hold its every item, and the run's start, the
    /// template context and a re-run after a new login each read them (issue 21: each held a
    /// copy).
    pub display: Arc<Map<String, Value>>,
    /// Secret values by input name.
    pub secrets: HashMap<String, SecretString>,
}

/// Every problem with the inputs, one per line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct InputError(pub Vec<String>);

/// Resolves and type-checks every declared input, reporting every problem at once.
pub fn resolve(runbook: &Runbook, sources: &InputSources) -> Result<Inputs, InputError> {
    let mut problems = unknown_names(runbook, sources);
    let mut out = Inputs::default();
    for (name, spec) in &runbook.inputs {
        if spec.kind == InputType::Secret {
            resolve_secret(name, spec, sources, &mut out, &mut problems);
        } else {
            resolve_plain(name, spec, sources, &mut out, &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(InputError(problems))
    }
}

/// A non-empty environment variable, as the sources read it.
fn env_var(sources: &InputSources, name: &str) -> Option<String> {
    sources
        .env
        .as_ref()
        .and_then(|f| f(name))
        .filter(|v| !v.is_empty())
}

/// Names given that the runbook does not declare, or that are secret but came from argv or a
/// plain inputs file.
fn unknown_names(runbook: &Runbook, sources: &InputSources) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, _) in &sources.given {
        match runbook.inputs.get(name) {
            None => problems.push(format!(
                "--input {name}: the runbook has no input `{name}`{} (it has: {})",
                did_you_mean(runbook, name),
                names(runbook)
            )),
            Some(spec) if spec.kind == InputType::Secret => problems.push(format!(
                "--input {name}: `{name}` is secret and cannot be given on the command line (argv is visible to other users); use {} or --secret-file {name}=PATH",
                env_names(name, spec.env.as_deref())
            )),
            Some(_) => {}
        }
    }
    for (name, _) in &sources.secret_files {
        if !runbook
            .inputs
            .get(name)
            .is_some_and(|s| s.kind == InputType::Secret)
        {
            problems.push(format!(
                "--secret-file {name}: the runbook has no secret input `{name}`"
            ));
        }
    }
    if let Some(file) = &sources.file {
        for name in file.keys() {
            match runbook.inputs.get(name) {
                None => problems.push(format!(
                    "--inputs-file: the runbook has no input `{name}`{}",
                    did_you_mean(runbook, name)
                )),
                Some(s) if s.kind == InputType::Secret => problems.push(format!("--inputs-file: `{name}` is secret; use its environment variable or --secret-file")),
                Some(_) => {}
            }
        }
    }
    problems
}

/// A secret input: from its file, `ESUS_IR_INPUT_<NAME>`, its own variable, or a hidden prompt
/// (an optional one too: Enter skips it, and what it would have enabled is then said to be not
/// done) — wrapped as a secret at once, and never shown in a problem.
fn resolve_secret(
    name: &str,
    spec: &InputSpec,
    sources: &InputSources,
    out: &mut Inputs,
    problems: &mut Vec<String>,
) {
    let upper = format!("ESUS_IR_INPUT_{}", name.to_ascii_uppercase());
    let value = secret_from_file(name, sources, problems)
        .or_else(|| env_var(sources, &upper).map(SecretString::from))
        .or_else(|| {
            spec.env
                .as_deref()
                .and_then(|e| env_var(sources, e))
                .map(SecretString::from)
        })
        .or_else(|| {
            sources
                .prompt_secret
                .as_ref()
                .and_then(|ask| ask(name, &spec.description, !spec.required))
        });
    match value {
        Some(v) => {
            if let Some(p) = &spec.pattern
                && !full_match(p, v.expose_secret())
            {
                problems.push(format!(
                    "input `{name}`: the secret does not match the pattern `{p}` (value not shown)"
                ));
            }
            Arc::make_mut(&mut out.display).insert(name.to_string(), Value::from(REDACTED));
            out.secrets.insert(name.to_string(), v);
        }
        None if spec.required => problems.push(format!(
            "input `{name}` (secret) is required: set {} or use --secret-file {name}=PATH",
            env_names(name, spec.env.as_deref())
        )),
        None => {
            Arc::make_mut(&mut out.display).insert(name.to_string(), Value::Null);
        }
    }
}

/// A plain input: the last `--input`, the inputs file, `ESUS_IR_INPUT_<NAME>`, its own
/// variable, its default, or (when required) a prompt — converted to its type and matched
/// against its pattern.
fn resolve_plain(
    name: &str,
    spec: &InputSpec,
    sources: &InputSources,
    out: &mut Inputs,
    problems: &mut Vec<String>,
) {
    let upper = format!("ESUS_IR_INPUT_{}", name.to_ascii_uppercase());
    let given = sources
        .given
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| (Value::String(v.clone()), true));
    let raw = given
        .or_else(|| {
            sources
                .file
                .as_ref()
                .and_then(|f| f.get(name))
                .map(|v| (v.clone(), false))
        })
        .or_else(|| env_var(sources, &upper).map(|v| (Value::String(v), true)))
        .or_else(|| {
            spec.env
                .as_deref()
                .and_then(|e| env_var(sources, e))
                .map(|v| (Value::String(v), true))
        })
        .or_else(|| spec.default.clone().map(|v| (v, false)))
        .or_else(|| {
            let ask = sources.prompt_text.as_ref().filter(|_| spec.required)?;
            ask(name, spec.kind.as_str(), &spec.description).map(|v| (Value::String(v), true))
        });
    match raw {
        None if spec.required => problems.push(format!(
            "input `{name}` is required: --input {name}=VALUE, or {}",
            env_names(name, spec.env.as_deref())
        )),
        None => {
            Arc::make_mut(&mut out.display).insert(name.to_string(), Value::Null);
        }
        Some((value, from_text)) => match convert(value, spec.kind, from_text) {
            Err(why) => problems.push(format!("input `{name}`: {why}")),
            Ok(v) => {
                if let (Some(p), Value::String(s)) = (&spec.pattern, &v)
                    && !full_match(p, s.as_str())
                {
                    problems.push(format!(
                        "input `{name}`: `{s}` does not match the pattern `{p}`"
                    ));
                }
                Arc::make_mut(&mut out.display).insert(name.to_string(), v);
            }
        },
    }
}

fn secret_from_file(
    name: &str,
    sources: &InputSources,
    problems: &mut Vec<String>,
) -> Option<SecretString> {
    let (_, path) = sources.secret_files.iter().rev().find(|(n, _)| n == name)?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let trimmed = text.trim_end_matches(['\n', '\r']);
            Some(SecretString::from(trimmed.to_string()))
        }
        Err(e) => {
            problems.push(format!("--secret-file {name}={}: {e}", path.display()));
            None
        }
    }
}

fn convert(value: Value, kind: InputType, from_text: bool) -> Result<Value, String> {
    let text = value.as_str().map(str::trim);
    match (kind, &value) {
        (InputType::String | InputType::Secret, Value::String(_)) => Ok(value),
        (InputType::String, Value::Number(n)) if !from_text => Ok(Value::String(n.to_string())),
        (InputType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value),
        (InputType::Integer, Value::String(_)) => text
            .and_then(|t| t.parse::<i64>().ok())
            .map(Value::from)
            .ok_or_else(|| format!("`{}` is not a whole number", text.unwrap_or_default())),
        (InputType::Boolean, Value::Bool(_)) => Ok(value),
        (InputType::Boolean, Value::String(_)) => {
            match text.map(str::to_ascii_lowercase).as_deref() {
                Some("true" | "yes" | "1") => Ok(Value::Bool(true)),
                Some("false" | "no" | "0") => Ok(Value::Bool(false)),
                _ => Err(format!(
                    "`{}` is not true or false",
                    text.unwrap_or_default()
                )),
            }
        }
        (InputType::List, Value::Array(_)) => Ok(value),
        (InputType::List, Value::String(s)) => {
            if s.trim_start().starts_with('[') {
                serde_json::from_str::<Value>(s)
                    .ok()
                    .filter(Value::is_array)
                    .ok_or_else(|| "not a JSON list".to_string())
            } else {
                Ok(Value::Array(
                    s.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(Value::from)
                        .collect(),
                ))
            }
        }
        _ => Err(format!("expected {}", kind.as_str())),
    }
}

pub(crate) fn full_match(pattern: &str, value: &str) -> bool {
    Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(value))
}

/// "; did you mean `key_id`?" for a name one typo away from a declared input.
fn did_you_mean(rb: &Runbook, name: &str) -> String {
    let known: Vec<&str> = rb.inputs.keys().map(String::as_str).collect();
    crate::runbook::validate::suggest(name, &known)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

fn names(rb: &Runbook) -> String {
    let v: Vec<&str> = rb.inputs.keys().map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn env_names(name: &str, env: Option<&str>) -> String {
    let upper = format!("ESUS_IR_INPUT_{}", name.to_ascii_uppercase());
    match env {
        Some(e) => format!("${e} (or ${upper})"),
        None => format!("${upper}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbook() -> Runbook {
        let text = "version: 1\nname: t\ninputs:\n  key_id: {type: string, required: true, pattern: 'k-[0-9]+'}\n  n: {type: integer, default: 3}\n  dry: {type: boolean}\n  ids: {type: list}\n  token: {type: secret, env: TOK}\nsteps:\n  - {id: a, name: A, action: roles.list}\n";
        crate::runbook::parse::parse(text).expect("parses").0
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Option<EnvReader> {
        Some(Box::new(move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }))
    }

    #[test]
    fn values_are_converted_and_secrets_kept_out_of_display() {
        let sources = InputSources {
            given: vec![
                ("key_id".into(), "k-42".into()),
                ("dry".into(), "yes".into()),
            ],
            env: env(&[("TOK", "canary-secret"), ("ESUS_IR_INPUT_IDS", "a, b")]),
            ..InputSources::default()
        };
        let inputs = resolve(&runbook(), &sources).expect("valid");
        assert_eq!(inputs.display["key_id"], "k-42");
        assert_eq!(inputs.display["n"], 3);
        assert_eq!(inputs.display["dry"], true);
        assert_eq!(inputs.display["ids"], serde_json::json!(["a", "b"]));
        assert_eq!(inputs.display["token"], REDACTED);
        assert_eq!(inputs.secrets["token"].expose_secret(), "canary-secret");
        assert!(!format!("{inputs:?}").contains("canary-secret"));
    }

    #[test]
    fn every_problem_is_reported_and_secrets_on_argv_are_refused() {
        let sources = InputSources {
            given: vec![
                ("token".into(), "canary-secret".into()),
                ("n".into(), "many".into()),
                ("nope".into(), "x".into()),
                ("keyid".into(), "k-1".into()),
            ],
            ..InputSources::default()
        };
        let err = resolve(&runbook(), &sources).expect_err("invalid");
        let text = err.to_string();
        assert!(!text.contains("canary-secret"), "{text}");
        assert!(text.contains("cannot be given on the command line"));
        assert!(text.contains("no input `nope` (it has"), "{text}");
        assert!(
            text.contains("no input `keyid`; did you mean `key_id`?"),
            "{text}"
        );
        assert!(text.contains("`many` is not a whole number"));
        assert!(text.contains("input `key_id` is required"));
    }

    #[test]
    fn patterns_must_match_in_full() {
        let sources = InputSources {
            given: vec![("key_id".into(), "k-42; rm".into())],
            ..InputSources::default()
        };
        assert!(
            resolve(&runbook(), &sources)
                .expect_err("invalid")
                .to_string()
                .contains("does not match")
        );
    }
}
