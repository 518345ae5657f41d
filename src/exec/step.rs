//! Running one prepared step: its request(s), paging, fan-out, evidence, outputs and secrets.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::context::Context;
use super::event::{EvidenceRef, StepStatus};
use super::evidence::EvidenceWriter;
use super::render;
use super::send::{self, BodyPolicy, SendPolicy, Sent};
use super::shared::Shared;
use crate::esus::actions::Method;
use crate::esus::client::ApiResponse;
use crate::esus::request::{ApiRequest, Auth, Body};
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;
use crate::template;

/// A step ready to run: its exact request(s), rendered (and approved) by the scheduler.
#[derive(Debug)]
pub enum Prepared {
    /// One request (or, for paged actions, the first page's).
    One(ApiRequest),
    /// A `foreach`: the items; requests are rendered per item unless `built` holds them
    /// (actions that read before they write build every request before the confirmation).
    Many {
        /// The items.
        items: Vec<Value>,
        /// Pre-built requests, one per item.
        built: Option<Vec<ApiRequest>>,
    },
    /// `api_keys.check_revoked`: read the key, then (with the leaked secret) try it.
    Revoked {
        /// `GET /api-keys/{id}` with the operator's token.
        get: ApiRequest,
        /// The same URL authenticated by the key itself.
        probe: Option<ApiRequest>,
    },
}

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
}

impl StepResult {
    fn failed(reason: impl Into<String>) -> Self {
        StepResult {
            status: Some(StepStatus::Failed),
            reason: Some(reason.into()),
            ..StepResult::default()
        }
    }
}

/// Runs step `i`.
pub async fn execute(
    shared: Arc<Shared>,
    ctx: Arc<Context>,
    i: usize,
    prepared: Prepared,
) -> StepResult {
    execute_with(shared, ctx, i, prepared, false).await
}

/// Runs step `i`; `recover` means an earlier run sent its (non-idempotent) request and recorded no
/// answer, so ESUS's state is checked before anything is sent.
pub async fn execute_with(
    shared: Arc<Shared>,
    ctx: Arc<Context>,
    i: usize,
    prepared: Prepared,
    recover: bool,
) -> StepResult {
    let started = Instant::now();
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let mut result = match prepared {
        Prepared::One(req) if info.action.paged => paged(&shared, &ctx, step, info, req).await,
        Prepared::One(req) if recover && info.action.name == "api_keys.rotate" => {
            let why = "the run that sent it stopped before an answer was recorded";
            match recover_rotate(&shared, step, info, &req, why).await {
                Ok((resp, id, note)) => {
                    let mut r = finish_answer(&shared, &ctx, step, info, &resp, &id, None).await;
                    r.reason.get_or_insert(note);
                    r
                }
                Err(r) => r,
            }
        }
        Prepared::One(req) => one(&shared, &ctx, step, info, req, None).await,
        Prepared::Many { items, built } => many(&shared, &ctx, step, info, items, built).await,
        Prepared::Revoked { get, probe } => revoked(&shared, &ctx, step, info, get, probe).await,
    };
    if result.status.is_none() {
        result.status = Some(StepStatus::Ok);
    }
    // Written even when the step failed: a fan-out whose other items failed must not lose the
    // secrets of the items that succeeded (their old keys die when the grace window ends).
    {
        for (name, value) in &result.secret_outputs {
            match shared.folders.write_secret(
                &step.id,
                name,
                secrecy::ExposeSecret::expose_secret(value),
            ) {
                Ok(path) => result.secret_files.push(path),
                Err(e) => {
                    result.status = Some(StepStatus::Failed);
                    result.reason = Some(format!(
                        "could not write secret output `{name}` to {}: {e}",
                        shared.folders.secrets.display()
                    ));
                }
            }
        }
    }
    result.duration = started.elapsed();
    result
}

fn send_policy(step: &Step, idempotent: bool) -> SendPolicy {
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
    }
}

fn body_policy(info: &StepInfo) -> BodyPolicy {
    BodyPolicy {
        phi: info.action.phi,
        secret_fields: info.action.secret_fields,
    }
}

async fn one(
    shared: &Arc<Shared>,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    req: ApiRequest,
    item: Option<(usize, &Value)>,
) -> StepResult {
    let idx = item.map(|(k, _)| k);
    let sent = match send::send(
        shared,
        &step.id,
        idx,
        &req,
        send_policy(step, info.idempotent),
        body_policy(info),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return StepResult::failed(format!("could not record the request: {e}")),
    };
    let (resp, request_id, note) = match sent {
        Sent::Answer(resp, id) => (resp, id, None),
        Sent::Unknown(why) if info.action.name == "api_keys.rotate" => {
            match recover_rotate(shared, step, info, &req, &why).await {
                Ok((resp, id, note)) => (resp, id, Some(note)),
                Err(r) => return r,
            }
        }
        Sent::Unknown(why) => {
            return StepResult::failed(format!(
                "outcome unknown: {why}. It was not re-sent because `{}` is not idempotent; check ESUS's state before re-running this step",
                info.action.name
            ));
        }
        other => return terminal(other),
    };
    let mut result = finish_answer(
        shared,
        ctx,
        step,
        info,
        &resp,
        &request_id,
        item.map(|(_, v)| v),
    )
    .await;
    if let (Some(note), None) = (note, &result.reason) {
        result.reason = Some(note);
    }
    result
}

/// Records an answer, saves it when asked, and computes outputs.
async fn finish_answer(
    shared: &Arc<Shared>,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    resp: &ApiResponse,
    request_id: &str,
    item: Option<&Value>,
) -> StepResult {
    let mut result = StepResult::default();
    let mut evidence = None;
    if let Some(save) = &step.save {
        match save_body(shared, ctx, save, item, resp, info.action.secret_fields) {
            Ok(e) => evidence = Some(e),
            Err(e) => return StepResult::failed(e),
        }
    }
    if let Err(e) = send::record_response(
        shared,
        &step.id,
        request_id,
        resp,
        body_policy(info),
        evidence.clone(),
    ) {
        return StepResult::failed(format!("could not record the response: {e}"));
    }
    result.evidence.extend(evidence);
    let ok = resp.is_success(&step.expect);
    if !ok {
        result.status = Some(StepStatus::Failed);
        result.reason = Some(format!(
            "ESUS answered {}{}",
            resp.status,
            diagnostics(resp, info)
        ));
        result.auth_failed = matches!(resp.status, 401 | 403);
        return result;
    }
    match outputs(shared, ctx, step, info, &resp.json(), resp.status, item) {
        Ok((shown, secret)) => {
            result.outputs = shown;
            result.secret_outputs = secret;
        }
        Err(e) => return StepResult::failed(e),
    }
    result
}

fn save_body(
    shared: &Shared,
    ctx: &Context,
    save: &str,
    item: Option<&Value>,
    resp: &ApiResponse,
    secret_fields: &[&str],
) -> Result<EvidenceRef, String> {
    let name = render::bind_item(ctx.display(), item);
    let name = shared
        .engine
        .render_str(save, &name)
        .map_err(|e| format!("`save`: {e}"))?;
    let name = name
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string());
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

/// Non-secret outputs, and secret ones.
type Outputs = (Map<String, Value>, HashMap<String, SecretString>);

/// Evaluates the step's outputs over a response.
fn outputs(
    shared: &Shared,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    body: &Value,
    status: u16,
    item: Option<&Value>,
) -> Result<Outputs, String> {
    if step.outputs.is_empty() {
        return Ok(Default::default());
    }
    let base = render::bind_item(ctx.display(), item);
    let with_resp = template::bind(
        &template::bind(&base, "response", template::to_ctx(body)),
        "status",
        status.into(),
    );
    let mut shown = Map::new();
    let mut secret = HashMap::new();
    for (name, spec) in &step.outputs {
        let is_secret = info.secret_outputs.contains(name);
        let value = shared.engine.eval(spec.expr(), &with_resp).map_err(|e| {
            if is_secret {
                format!("output `{name}` could not be computed")
            } else {
                format!("output `{name}`: {e}")
            }
        })?;
        if is_secret {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            secret.insert(name.clone(), SecretString::from(text));
        } else {
            shown.insert(name.clone(), value);
        }
    }
    Ok((shown, secret))
}

/// Reads every page of an audit query, streaming rows to the evidence file.
async fn paged(
    shared: &Arc<Shared>,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    first: ApiRequest,
) -> StepResult {
    let name = match &step.save {
        Some(save) => match shared.engine.render_str(save, ctx.display()) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => return StepResult::failed(format!("`save`: {e}")),
        },
        None => format!("{}.json", step.id),
    };
    let mut writer = match EvidenceWriter::create(&shared.folders, &name) {
        Ok(w) => w,
        Err(e) => return StepResult::failed(e),
    };
    if let Err(e) = writer.begin_rows() {
        return StepResult::failed(format!("evidence {name}: {e}"));
    }
    let page: u64 = first
        .query
        .iter()
        .find(|(k, _)| k == "_count")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(100);
    let (mut read, mut total) = (0u64, 0u64);
    let policy = send_policy(step, true);
    for _ in 0..100_000 {
        let mut req = first.clone();
        req.query.retain(|(k, _)| k != "_count" && k != "_offset");
        req.query.push(("_count".into(), page.to_string()));
        req.query.push(("_offset".into(), read.to_string()));
        let (resp, request_id) =
            match send::send(shared, &step.id, None, &req, policy, body_policy(info)).await {
                Ok(Sent::Answer(r, id)) => (r, id),
                Ok(other) => return terminal(other),
                Err(e) => return StepResult::failed(format!("could not record the request: {e}")),
            };
        if !resp.is_success(&step.expect) {
            let _ = send::record_response(
                shared,
                &step.id,
                &request_id,
                &resp,
                body_policy(info),
                None,
            );
            return StepResult {
                auth_failed: matches!(resp.status, 401 | 403),
                ..StepResult::failed(format!(
                    "ESUS answered {} at offset {read}{}",
                    resp.status,
                    diagnostics(&resp, info)
                ))
            };
        }
        let body = resp.json();
        let rows = body
            .get("rows")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        total = body
            .get("total")
            .and_then(Value::as_u64)
            .unwrap_or(read + rows.len() as u64);
        for row in &rows {
            if let Err(e) = writer.row(row) {
                return StepResult::failed(format!("evidence {name}: {e}"));
            }
        }
        read += rows.len() as u64;
        let last = rows.is_empty() || read >= total;
        if !last {
            if let Err(e) = send::record_response(
                shared,
                &step.id,
                &request_id,
                &resp,
                body_policy(info),
                None,
            ) {
                return StepResult::failed(format!("could not record the response: {e}"));
            }
            continue;
        }
        let evidence = match writer.end_rows(total).and_then(|()| writer.finish()) {
            Ok(e) => e,
            Err(e) => return StepResult::failed(format!("evidence {name}: {e}")),
        };
        if let Err(e) = send::record_response(
            shared,
            &step.id,
            &request_id,
            &resp,
            body_policy(info),
            Some(evidence.clone()),
        ) {
            return StepResult::failed(format!("could not record the response: {e}"));
        }
        let mut result = match outputs(
            shared,
            ctx,
            step,
            info,
            &json!({"total": total, "read": read}),
            resp.status,
            None,
        ) {
            Ok((shown, secret)) => StepResult {
                outputs: shown,
                secret_outputs: secret,
                ..StepResult::default()
            },
            Err(e) => StepResult::failed(e),
        };
        result.evidence.push(evidence);
        if read < total {
            result.status = Some(StepStatus::Failed);
            result.reason = Some(format!(
                "ESUS reported {total} rows but stopped answering rows after {read}"
            ));
        }
        return result;
    }
    StepResult::failed(format!(
        "gave up after 100000 pages ({read} of {total} rows)"
    ))
}

/// Fans a step out over items with its concurrency; memory stays flat in the number of items
/// except for the declared outputs.
async fn many(
    shared: &Arc<Shared>,
    ctx: &Arc<Context>,
    step: &Step,
    info: &StepInfo,
    items: Vec<Value>,
    built: Option<Vec<ApiRequest>>,
) -> StepResult {
    let total = items.len();
    let built = built.map(Arc::new);
    shared.progress.items_started(&step.id, total);
    let concurrency = step.concurrency.unwrap_or(1).max(1) as usize;
    let index = shared.valid.index_of(&step.id).unwrap_or(0);
    // Each item is its own task, so rendering, recording and parsing spread over the runtime's
    // threads instead of queueing behind one another in this step's task.
    let per_item = futures::stream::iter(items.into_iter().enumerate())
        .map(|(k, item)| {
            let shared = shared.clone();
            let ctx = ctx.clone();
            let prebuilt = built.as_ref().and_then(|b| b.get(k).cloned());
            let task = tokio::spawn(async move {
                let step = &shared.valid.runbook.steps[index];
                let info = &shared.valid.steps[index];
                if shared.interrupt.count() > 0 {
                    return StepResult {
                        status: Some(StepStatus::Interrupted),
                        ..StepResult::default()
                    };
                }
                let request = match prebuilt {
                    Some(req) => Ok(req),
                    None => render::request(&shared.engine, &ctx, step, info, Some(&item)),
                };
                let r = match request {
                    Ok(req) => one(&shared, &ctx, step, info, req, Some((k, &item))).await,
                    Err(e) => StepResult::failed(format!("item {k}: {e}")),
                };
                shared.progress.item_finished(
                    &step.id,
                    r.status.is_none() || r.status == Some(StepStatus::Ok),
                );
                r
            });
            async move {
                let r = task
                    .await
                    .unwrap_or_else(|e| StepResult::failed(format!("item {k}: {e}")));
                (k, r)
            }
        })
        .buffer_unordered(concurrency);
    futures::pin_mut!(per_item);
    let names: Vec<&String> = step.outputs.keys().collect();
    let mut columns: Vec<Vec<Value>> = vec![vec![Value::Null; total]; names.len()];
    let mut secret_columns: HashMap<String, Vec<Value>> = HashMap::new();
    let mut result = StepResult::default();
    let (mut failed, mut interrupted, mut first_error) = (0usize, 0usize, None);
    while let Some((k, r)) = per_item.next().await {
        match r.status {
            Some(StepStatus::Interrupted) => interrupted += 1,
            Some(StepStatus::Failed) => {
                failed += 1;
                result.auth_failed |= r.auth_failed;
                first_error.get_or_insert_with(|| {
                    format!("item {k}: {}", r.reason.clone().unwrap_or_default())
                });
            }
            _ => {
                for (c, name) in names.iter().enumerate() {
                    if let Some(v) = r.outputs.get(name.as_str()) {
                        columns[c][k] = v.clone();
                    }
                }
                for (name, s) in r.secret_outputs {
                    secret_columns
                        .entry(name)
                        .or_insert_with(|| vec![Value::Null; total])[k] =
                        Value::from(secrecy::ExposeSecret::expose_secret(&s));
                }
            }
        }
        result.evidence.extend(r.evidence);
    }
    for (c, name) in names.iter().enumerate() {
        if !info.secret_outputs.contains(name.as_str()) {
            result.outputs.insert(
                (*name).clone(),
                Value::Array(std::mem::take(&mut columns[c])),
            );
        }
    }
    for (name, col) in secret_columns {
        result
            .secret_outputs
            .insert(name, SecretString::from(Value::Array(col).to_string()));
    }
    if interrupted > 0 {
        result.status = Some(StepStatus::Interrupted);
        result.reason = Some(format!(
            "interrupted: {interrupted} of {total} items not started, {failed} failed"
        ));
    } else if failed > 0 {
        result.status = Some(StepStatus::Failed);
        result.reason = Some(format!(
            "{failed} of {total} items failed; first: {}",
            first_error.unwrap_or_default()
        ));
    }
    result
}

/// `api_keys.check_revoked`: succeed only if the key is gone or inactive and the leaked secret
/// (when given) is refused.
async fn revoked(
    shared: &Arc<Shared>,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    get: ApiRequest,
    probe: Option<ApiRequest>,
) -> StepResult {
    let policy = send_policy(step, true);
    let (resp, id) = match send::send(shared, &step.id, None, &get, policy, body_policy(info)).await
    {
        Ok(Sent::Answer(r, id)) => (r, id),
        Ok(other) => return terminal(other),
        Err(e) => return StepResult::failed(format!("could not record the request: {e}")),
    };
    if let Err(e) = send::record_response(shared, &step.id, &id, &resp, body_policy(info), None) {
        return StepResult::failed(format!("could not record the response: {e}"));
    }
    let key = match resp.status {
        404 | 410 => "gone",
        200 if resp.json().get("active").and_then(Value::as_bool) == Some(false) => "inactive",
        200 => return StepResult::failed("the key is still active: containment NOT confirmed"),
        s => {
            return StepResult {
                auth_failed: matches!(s, 401 | 403),
                ..StepResult::failed(format!("ESUS answered {s}{}", diagnostics(&resp, info)))
            };
        }
    };
    let mut refused = Value::Null;
    if let Some(probe) = probe {
        let (resp, id) =
            match send::send(shared, &step.id, None, &probe, policy, body_policy(info)).await {
                Ok(Sent::Answer(r, id)) => (r, id),
                Ok(other) => return terminal(other),
                Err(e) => return StepResult::failed(format!("could not record the request: {e}")),
            };
        if let Err(e) = send::record_response(shared, &step.id, &id, &resp, body_policy(info), None)
        {
            return StepResult::failed(format!("could not record the response: {e}"));
        }
        if resp.status != 401 {
            return StepResult::failed(format!(
                "the leaked secret still authenticates (ESUS answered {} instead of 401): containment NOT confirmed",
                resp.status
            ));
        }
        refused = Value::Bool(true);
    }
    match outputs(
        shared,
        ctx,
        step,
        info,
        &json!({"key": key, "secret_refused": refused}),
        200,
        None,
    ) {
        Ok((shown, secret)) => StepResult {
            outputs: shown,
            secret_outputs: secret,
            ..StepResult::default()
        },
        Err(e) => StepResult::failed(e),
    }
}

/// After a rotate whose answer was lost: ask ESUS whether it happened before doing anything else.
async fn recover_rotate(
    shared: &Arc<Shared>,
    step: &Step,
    info: &StepInfo,
    req: &ApiRequest,
    why: &str,
) -> Result<(ApiResponse, String, String), StepResult> {
    let key_path = req.path.trim_end_matches("/rotate").to_string();
    let check = ApiRequest::get(key_path.clone());
    let (resp, id) = match send::send(
        shared,
        &step.id,
        None,
        &check,
        send_policy(step, true),
        body_policy(info),
    )
    .await
    {
        Ok(Sent::Answer(r, id)) => (r, id),
        Ok(other) => return Err(terminal(other)),
        Err(e) => {
            return Err(StepResult::failed(format!(
                "could not record the request: {e}"
            )));
        }
    };
    let _ = send::record_response(shared, &step.id, &id, &resp, body_policy(info), None);
    let body = resp.json();
    if resp.status != 200 {
        return Err(StepResult::failed(format!(
            "outcome unknown: the rotate got no answer ({why}) and the key can no longer be read (ESUS answered {}); it was not re-sent. Look for a replacement with GET /api-keys?name=…",
            resp.status
        )));
    }
    let (retry, note) = match body.get("supersededBy").and_then(Value::as_str) {
        // It happened, but the new secret was in the lost answer: rotate the (unusable)
        // replacement once more, with no grace, to get a secret someone holds.
        Some(successor) => {
            let grace = json!({"graceHours": 0});
            let again = ApiRequest {
                method: Method::Post,
                path: format!(
                    "/api-keys/{}/rotate",
                    crate::esus::request::encode_segment(successor)
                ),
                query: Vec::new(),
                body: Some(Body::plain("application/json", grace)),
                auth: Auth::Operator,
            };
            (
                again,
                format!(
                    "the rotate reached ESUS but its answer was lost ({why}); its replacement {successor} was rotated again (graceHours 0) to obtain a secret"
                ),
            )
        }
        // It did not happen: sending it now is the first time, not a repeat.
        None => (
            req.clone(),
            format!(
                "the first rotate got no answer ({why}); ESUS showed it had not happened, so it was sent once more"
            ),
        ),
    };
    match send::send(
        shared,
        &step.id,
        None,
        &retry,
        send_policy(step, false),
        body_policy(info),
    )
    .await
    {
        Ok(Sent::Answer(r, id)) => Ok((r, id, note)),
        Ok(Sent::Unknown(w)) => Err(StepResult::failed(format!(
            "outcome unknown twice ({why}; {w}); stopped to avoid more rotations"
        ))),
        Ok(other) => Err(terminal(other)),
        Err(e) => Err(StepResult::failed(format!(
            "could not record the request: {e}"
        ))),
    }
}

fn terminal(sent: Sent) -> StepResult {
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

/// ` — <diagnostics>` from an OperationOutcome body, when there is one.
fn diagnostics(resp: &ApiResponse, info: &StepInfo) -> String {
    let body = resp.json();
    let issue = body
        .get("issue")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    match issue {
        Some(i) => {
            let code = i.get("code").and_then(Value::as_str).unwrap_or_default();
            let diag = i
                .get("diagnostics")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // ESUS's diagnostics may quote what it was sent: when that held a secret or PHI,
            // only the issue code is repeated.
            if !info.secret_params.is_empty() || info.action.phi {
                return format!(" ({code})");
            }
            let diag: String = diag.chars().take(300).collect();
            format!(" ({code}: {diag})")
        }
        None => String::new(),
    }
}
