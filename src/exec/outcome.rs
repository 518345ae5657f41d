//! What every action's work shares: the step's result, sending one request and recording its
//! answer, computing outputs, keeping secrets, saving evidence. The lowest layer of the executor:
//! everything that runs a step's work builds on it, and it builds on nothing of theirs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::evidence::EvidenceWriter;
use super::send::{self, BodyPolicy, SendPolicy, Sent};
use super::shared::Shared;
use crate::esus::client::ApiResponse;
use crate::esus::errors::ErrorBody;
use crate::esus::request::ApiRequest;
use crate::event::{EvidenceRef, StepStatus};
use crate::plan::context::Context;
use crate::plan::render;
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;
use crate::template;

/// What became of a step.
#[derive(Debug, Default)]
pub struct StepResult {
    /// Final status.
    pub status: Option<StepStatus>,
    /// Why, when not ok.
    pub reason: Option<String>,
    /// Non-secret outputs.
    pub outputs: Map<String, Value>,
    /// Secret outputs (never shown).
    pub secret_outputs: HashMap<String, SecretString>,
    /// Where the secret outputs were written.
    pub secret_files: Vec<PathBuf>,
    /// Evidence files written.
    pub evidence: Vec<EvidenceRef>,
    /// ESUS refused the operator's credentials.
    pub auth_failed: bool,
    /// Time taken.
    pub duration: Duration,
    /// What a containment check found (or why it could not tell).
    pub finding: Option<String>,
    /// The non-2xx answer that `expect:` made a success.
    pub expected: Option<u16>,
    /// A check that can never pass in this incident (the credential was dead before it began):
    /// what a person does instead — no resume can change its answer.
    pub by_hand: Vec<String>,
}

impl StepResult {
    /// A failed step with its reason.
    pub fn failed(reason: impl Into<String>) -> Self {
        StepResult {
            status: Some(StepStatus::Failed),
            reason: Some(reason.into()),
            ..StepResult::default()
        }
    }

    /// The status, `ok` when none was set.
    pub fn final_status(&self) -> StepStatus {
        self.status.unwrap_or(StepStatus::Ok)
    }
}

/// Writes secret outputs to `secrets/` — one step's as `<step>.<name>`, one fan-out item's as
/// `<step>[<k>].<name>` — and records where; a secret that cannot be written fails the step.
pub(super) fn keep_secrets(
    shared: &Shared,
    step: &Step,
    item: Option<usize>,
    result: &mut StepResult,
) {
    let stem = match item {
        Some(k) => format!("{}[{k}]", step.id),
        None => step.id.clone(),
    };
    let mut names: Vec<&String> = result.secret_outputs.keys().collect();
    names.sort();
    let mut failed = None;
    for name in names {
        let value = &result.secret_outputs[name];
        match shared
            .folders
            .write_secret(&stem, name, secrecy::ExposeSecret::expose_secret(value))
        {
            Ok(path) => result.secret_files.push(path),
            Err(e) => {
                failed = Some(format!(
                    "could not write secret output `{name}` to {}: {e}",
                    shared.folders.secrets.display()
                ));
            }
        }
    }
    if let Some(why) = failed {
        result.status = Some(StepStatus::Failed);
        result.reason = Some(why);
    }
}

/// The send policy of a step: its `retry`, else 3 attempts for idempotent actions and 1 for others.
pub(super) fn send_policy(step: &Step, idempotent: bool) -> SendPolicy {
    let default_attempts = if idempotent { 3 } else { 1 };
    SendPolicy {
        attempts: step
            .retry
            .as_ref()
            .map_or(default_attempts, |r| r.attempts.max(1)),
        backoff: step
            .retry
            .as_ref()
            .and_then(|r| r.backoff)
            .map_or(Duration::from_millis(500), |d| d.0),
        idempotent,
        timeout: step.timeout.map(|t| t.0),
        probe: false,
    }
}

/// How the step's answers may be recorded.
pub(super) fn body_policy(info: &StepInfo) -> BodyPolicy {
    BodyPolicy {
        phi: info.action.phi,
        secret_fields: info.action.secret_fields,
    }
}

/// Records an answer, computes outputs, keeps secrets, and saves the body when asked. A secret
/// output (a new key's secret) is on disk (0600, fsynced) before the answer is recorded — and
/// before anything else about the answer can fail (an output expression, the evidence file): a
/// run killed in between leaves the secret kept and the request "unanswered", which resume checks
/// against ESUS — never an answered request whose secret nobody holds.
pub(super) async fn finish_answer(
    shared: &Arc<Shared>,
    ctx: &Context,
    i: usize,
    resp: &ApiResponse,
    request_id: &str,
    item: Option<(usize, &Value)>,
) -> StepResult {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let value = item.map(|(_, v)| v);
    let mut result = StepResult::default();
    let ok = resp.is_success(&step.expect);
    if ok {
        let out = outputs(shared, ctx, i, &resp.json(), resp.status, value);
        result.outputs = out.shown;
        result.secret_outputs = out.secret;
        keep_secrets(shared, step, item.map(|(k, _)| k), &mut result);
        if let Some(e) = out.error {
            result.status = Some(StepStatus::Failed);
            result.reason = Some(e);
        }
    }
    if let Some(save) = &step.save {
        match save_body(shared, ctx, i, save, value, resp, info.action.secret_fields) {
            Ok(e) => result.evidence.push(e),
            Err(e) => {
                result.status = Some(StepStatus::Failed);
                result.reason.get_or_insert(e);
            }
        }
    }
    if let Err(e) = send::record_response(
        shared,
        &step.id,
        request_id,
        resp,
        body_policy(info),
        result.evidence.first().cloned(),
    ) {
        return StepResult::failed(format!("could not record the response: {e}"));
    }
    if !ok {
        result.status = Some(StepStatus::Failed);
        result.reason = Some(format!(
            "ESUS answered {}{}",
            resp.status,
            diagnostics(resp, info)
        ));
        result.auth_failed = matches!(resp.status, 401 | 403);
    } else if !(200..300).contains(&resp.status) && result.status.is_none() {
        result.expected = Some(resp.status);
        result.reason = Some(format!(
            "ESUS answered {}{} — expected by the runbook",
            resp.status,
            diagnostics(resp, info)
        ));
    }
    result
}

fn save_body(
    shared: &Shared,
    ctx: &Context,
    i: usize,
    save: &str,
    item: Option<&Value>,
    resp: &ApiResponse,
    secret_fields: &[&str],
) -> Result<EvidenceRef, String> {
    let _ = save;
    let name = shared.planner.save_name(ctx, i, item)?;
    let mut w = EvidenceWriter::create(&shared.folders, &name)?;
    // Evidence is shared with auditors: secrets in the answer (a new key's) stay in `secrets/`.
    let bytes = if secret_fields.is_empty() {
        resp.body.to_vec()
    } else {
        match serde_json::from_slice::<Value>(&resp.body) {
            Ok(mut v) => {
                send::redact_fields(&mut v, secret_fields);
                serde_json::to_vec(&v).unwrap_or_default()
            }
            Err(_) => b"\"[body withheld: not JSON, and it may hold a secret]\"".to_vec(),
        }
    };
    w.write(&bytes)
        .map_err(|e| format!("writing evidence {name}: {e}"))?;
    w.finish()
        .map_err(|e| format!("writing evidence {name}: {e}"))
}

/// A step's outputs over one answer: the non-secret and the secret ones, and the first
/// expression that failed. A secret is kept even when another output fails: it exists once, in
/// this answer, and a failed expression beside it must not lose it.
#[derive(Debug, Default)]
pub(super) struct Outputs {
    pub(super) shown: Map<String, Value>,
    pub(super) secret: HashMap<String, SecretString>,
    pub(super) error: Option<String>,
}

/// Evaluates step `i`'s outputs over a response.
pub(super) fn outputs(
    shared: &Shared,
    ctx: &Context,
    i: usize,
    body: &Value,
    status: u16,
    item: Option<&Value>,
) -> Outputs {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let mut out = Outputs::default();
    if step.outputs.is_empty() {
        return out;
    }
    let base = render::bind_item(ctx.display(), item);
    let with_resp = template::bind(
        &template::bind(&base, "response", template::to_ctx(body)),
        "status",
        status.into(),
    );
    for (name, spec) in &step.outputs {
        let is_secret = info.secret_outputs.contains(name);
        let value = match shared.engine().eval(spec.expr(), &with_resp) {
            Ok(v) => v,
            Err(e) => {
                out.error.get_or_insert_with(|| match is_secret {
                    true => format!("output `{name}` could not be computed"),
                    false => format!("output `{name}`: {e}"),
                });
                continue;
            }
        };
        if is_secret {
            let text = match value {
                // Nothing to keep (a refused rotate has no secret): no file, no output.
                Value::Null => continue,
                Value::String(s) if s.is_empty() => continue,
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.secret.insert(name.clone(), SecretString::from(text));
        } else {
            out.shown.insert(name.clone(), value);
        }
    }
    out
}

/// A step result for a send that ended without a usable answer.
pub(super) fn terminal(sent: Sent) -> StepResult {
    match sent {
        Sent::Failed(e) => StepResult::failed(format!("could not reach ESUS: {e}")),
        Sent::Unknown(e) => StepResult::failed(format!("outcome unknown: {e}")),
        Sent::AuthFailed(e) => StepResult {
            auth_failed: true,
            ..StepResult::failed(e)
        },
        Sent::Interrupted => StepResult {
            status: Some(StepStatus::Interrupted),
            reason: Some("interrupted while waiting to retry".into()),
            ..StepResult::default()
        },
        Sent::Answer(r, _) => StepResult::failed(format!("ESUS answered {}", r.status)),
    }
}

/// Sends a request that is part of a step's work and records its answer; a send that ends
/// without an answer becomes the step's result.
pub(super) async fn exchange(
    shared: &Arc<Shared>,
    step: &Step,
    info: &StepInfo,
    req: &ApiRequest,
    policy: SendPolicy,
) -> Result<ApiResponse, StepResult> {
    exchange_item(shared, step, info, None, req, policy).await
}

/// [`exchange`] for one item of a fan-out (its requests are sent under the item's approvals).
pub(super) async fn exchange_item(
    shared: &Arc<Shared>,
    step: &Step,
    info: &StepInfo,
    item: Option<usize>,
    req: &ApiRequest,
    policy: SendPolicy,
) -> Result<ApiResponse, StepResult> {
    let sent = send::send(shared, &step.id, item, req, policy, body_policy(info)).await;
    let (resp, id) = match sent {
        Ok(Sent::Answer(r, id)) => (r, id),
        Ok(other) => return Err(terminal(other)),
        Err(e) => {
            return Err(StepResult::failed(format!(
                "could not record the request: {e}"
            )));
        }
    };
    if let Err(e) = send::record_response(shared, &step.id, &id, &resp, body_policy(info), None) {
        return Err(StepResult::failed(format!(
            "could not record the response: {e}"
        )));
    }
    Ok(resp)
}

/// ` (<code>: <diagnostics>)` from any of ESUS's error shapes. ESUS's words may quote what it
/// was sent: when that held a secret or PHI, only the code is repeated.
pub(super) fn diagnostics(resp: &ApiResponse, info: &StepInfo) -> String {
    let quote = info.secret_params.is_empty() && !info.action.phi;
    ErrorBody::parse(&resp.json())
        .map(|e| e.suffix(quote))
        .unwrap_or_default()
}

/// The names of files in the secrets folder (never their contents), for the transcript.
pub(super) fn file_names(paths: &[std::path::PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}
