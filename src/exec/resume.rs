//! Resuming a stopped run from its transcript: which steps finished (and their outputs), which
//! requests went out with no recorded answer, and which secrets the rest of the run still needs.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::event::StepStatus;
use super::executor::FinishedStep;
use crate::runbook::Validated;
use crate::template::Engine;
use crate::transcript::{Record, summarize};

/// What a resumed run starts from.
#[derive(Debug, Default)]
pub struct ResumePlan {
    /// Steps that finished `ok`, with their outputs (secret ones read back from their files).
    pub finished: HashMap<String, FinishedStep>,
    /// Non-idempotent steps whose request went out with no recorded answer.
    pub unknown: HashSet<String>,
    /// The non-secret inputs the first run used.
    pub inputs: Map<String, Value>,
    /// The head hash of the old transcript.
    pub resumes: String,
    /// What the operator should know (one line each).
    pub notes: Vec<String>,
}

/// Works out the resume plan from an (intact) transcript of `valid`'s runbook.
pub fn plan(
    records: &[Record],
    valid: &Validated,
    secrets_dir: &Path,
) -> Result<ResumePlan, String> {
    let summary = summarize(records);
    let mut plan = ResumePlan {
        resumes: summary.last_hash.clone().ok_or("the transcript is empty")?,
        ..ResumePlan::default()
    };
    if let Some(Value::Object(inputs)) = records.first().and_then(|r| r.data.get("inputs")) {
        plan.inputs = inputs
            .iter()
            .filter(|(_, v)| !v.is_null() && v.as_str() != Some(super::event::REDACTED))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    let mut missing_secrets: HashMap<String, String> = HashMap::new();
    for (i, step) in valid.runbook.steps.iter().enumerate() {
        let Some(done) = summary.steps.get(&step.id).filter(|s| s.status == "ok") else {
            continue;
        };
        let mut outputs = done.outputs.clone();
        let mut secrets = HashMap::new();
        for name in &valid.steps[i].secret_outputs {
            outputs.remove(name);
            let file = secrets_dir.join(format!("{}.{name}", step.id));
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    secrets.insert(
                        name.clone(),
                        SecretString::from(text.trim_end_matches(['\n', '\r']).to_string()),
                    );
                }
                Err(e) => {
                    missing_secrets.insert(
                        format!("steps.{}.outputs.{name}", step.id),
                        format!("{}: {e}", file.display()),
                    );
                }
            }
        }
        plan.finished
            .insert(step.id.clone(), (StepStatus::Ok, outputs, secrets));
    }
    for pending in &summary.unknown_outcome {
        if plan.finished.contains_key(&pending.step) {
            continue;
        }
        let Some(i) = valid.index_of(&pending.step) else {
            continue;
        };
        if valid.steps[i].idempotent {
            plan.notes.push(format!(
                "{}: {} {} got no recorded answer; it is safe to repeat and will be sent again",
                pending.step, pending.method, pending.url
            ));
        } else {
            plan.notes.push(format!("{}: {} {} got no recorded answer and is not safe to repeat; ESUS's state is checked first", pending.step, pending.method, pending.url));
            plan.unknown.insert(pending.step.clone());
        }
    }
    let engine = Engine::new();
    for step in valid
        .runbook
        .steps
        .iter()
        .filter(|s| !plan.finished.contains_key(&s.id))
    {
        for value in step.with.values() {
            for r in string_refs(&engine, value) {
                if let Some(why) = missing_secrets.get(&r) {
                    return Err(format!(
                        "step `{}` needs the secret `{r}` from the first run, but it cannot be read back ({why}); it was never printed, so the run cannot go on. Rotate that key again by hand, or re-run the runbook from the start",
                        step.id
                    ));
                }
            }
        }
    }
    let done: Vec<&str> = valid
        .runbook
        .steps
        .iter()
        .filter(|s| plan.finished.contains_key(&s.id))
        .map(|s| s.id.as_str())
        .collect();
    plan.notes.insert(
        0,
        format!(
            "resuming: {} of {} steps finished earlier ({})",
            done.len(),
            valid.runbook.steps.len(),
            if done.is_empty() {
                "none".into()
            } else {
                done.join(", ")
            }
        ),
    );
    Ok(plan)
}

fn string_refs(engine: &Engine, value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => engine
            .template_refs(s)
            .map(|r| r.into_iter().collect())
            .unwrap_or_default(),
        Value::Array(items) => items.iter().flat_map(|v| string_refs(engine, v)).collect(),
        Value::Object(map) => map.values().flat_map(|v| string_refs(engine, v)).collect(),
        _ => Vec::new(),
    }
}
