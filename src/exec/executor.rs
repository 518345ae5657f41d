//! The scheduler: runs the step graph — independent steps side by side, each destructive step
//! confirmed (one prompt at a time) with the exact request it will send, failures and Ctrl-C
//! stopping new work while running steps finish.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::approval::{ApprovalPolicy, Decision, Prompt};
use super::context::Context;
use super::digest::{BatchDigest, request_digest};
use super::event::{ApprovalSource, Event, RequestView, RunMode, RunOutcome, StepStatus};
use super::inputs::Inputs;
use super::render;
use super::report::{RunReport, StepReport};
use super::send::{self, BodyPolicy, SendPolicy, Sent};
use super::shared::Shared;
use super::step::{self, Prepared, StepResult};
use crate::esus::actions::{Effect, Special};
use crate::esus::request::{ApiRequest, Auth, Body};
use crate::runbook::model::OnFailure;
use crate::runbook::validate::ConfirmMode;

/// Facts about the run for its first event.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Unique run id.
    pub run_id: String,
    /// The runbook text as loaded.
    pub runbook_text: String,
    /// Who runs it.
    pub operator: String,
    /// Where.
    pub host: String,
    /// Live or drill (dry-runs use [`super::dry_run`]).
    pub mode: RunMode,
    /// The head hash of the transcript this run resumes.
    pub resumes: Option<String>,
}

/// A step finished by an earlier (resumed) run: status, non-secret and secret outputs.
pub type FinishedStep = (
    StepStatus,
    Map<String, Value>,
    HashMap<String, SecretString>,
);

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Steps running at once (at least 1).
    pub max_parallel: usize,
    /// Approvals.
    pub policy: ApprovalPolicy,
    /// Steps finished by the run being resumed: their status and non-secret outputs.
    pub finished: HashMap<String, FinishedStep>,
    /// Non-idempotent steps whose request an earlier run sent with no recorded answer.
    pub unknown: std::collections::HashSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Pending,
    Running,
    /// Finished; `passable` means dependents may run.
    Done(StepStatus, bool),
}

/// Runs the runbook; every path ends with a `run-finished` event.
pub async fn run(
    shared: Arc<Shared>,
    inputs: &Inputs,
    meta: RunMeta,
    opts: RunOptions,
) -> RunReport {
    let valid = shared.valid.clone();
    let n = valid.runbook.steps.len();
    let mut ctx = Context::new(inputs);
    let mut slots = vec![Slot::Pending; n];
    let mut reports: Vec<Option<StepReport>> = vec![None; n];
    let report = RunReport {
        run_id: meta.run_id.clone(),
        runbook: valid.runbook.name.clone(),
        outcome: RunOutcome::Success,
        exit_code: 0,
        message: String::new(),
        steps: Vec::new(),
        run_dir: None,
        transcript: None,
        evidence_dir: Some(shared.folders.evidence.clone()),
    };
    let started = run_started(&shared, inputs, &meta);
    if let Err(e) = shared
        .emit(&started)
        .and_then(|()| shared.emit(&plan_event(&shared, &ctx)))
    {
        return finish(
            &shared,
            report,
            RunOutcome::Failed,
            format!("could not write the transcript: {e}"),
            reports,
        );
    }
    let missing = opts.policy.missing(&valid);
    if !missing.is_empty() {
        let msg = format!(
            "refusing to start: nothing was sent. Unattended runs need approvals for: {}",
            missing.join(", ")
        );
        return finish(&shared, report, RunOutcome::Declined, msg, reports);
    }
    for (i, s) in valid.runbook.steps.iter().enumerate() {
        if let Some((status, outputs, secrets)) = opts.finished.get(&s.id) {
            ctx.set_step(&s.id, *status, outputs.clone(), secrets.clone());
            slots[i] = Slot::Done(*status, true);
            reports[i] = Some(StepReport {
                id: s.id.clone(),
                name: s.name.clone(),
                status: *status,
                reason: Some("finished in the resumed run".into()),
                duration_ms: 0,
                outputs: outputs.clone(),
                evidence: Vec::new(),
                secret_files: Vec::new(),
            });
        }
    }
    // Every way a step ends goes through `done`: its event, its report line, its outputs.
    macro_rules! finish {
        ($i:expr, $r:expr, $passable:expr) => {
            done(
                &shared,
                &mut ctx,
                &mut slots,
                &mut reports,
                $i,
                $r,
                $passable,
            )
        };
    }
    let mut running: JoinSet<(usize, StepResult)> = JoinSet::new();
    let mut started_at: HashMap<usize, Instant> = HashMap::new();
    let mut interrupt = shared.interrupt.clone();
    let (mut stop, mut declined, mut auth_failed, mut hard_stop) = (false, false, false, false);
    let mut prompt_interrupted = false;
    let max_parallel = opts.max_parallel.max(1);
    loop {
        if shared.sink_broken() {
            stop = true;
        }
        if !stop && interrupt.count() > 0 {
            stop = true;
        }
        let mut progressed = true;
        while !stop && progressed {
            progressed = false;
            for &i in valid.graph.order() {
                if slots[i] != Slot::Pending || running.len() >= max_parallel || stop {
                    continue;
                }
                let needs = valid.graph.needs(i);
                if needs
                    .iter()
                    .any(|&d| matches!(slots[d], Slot::Pending | Slot::Running))
                {
                    continue;
                }
                let step = &valid.runbook.steps[i];
                progressed = true;
                if let Some(&d) = needs
                    .iter()
                    .find(|&&d| matches!(slots[d], Slot::Done(_, false)))
                {
                    let why = match slots[d] {
                        Slot::Done(st, _) => format!(
                            "needs `{}`, which {}",
                            valid.runbook.steps[d].id,
                            super::report::status_words(st)
                        ),
                        _ => String::new(),
                    };
                    finish!(i, skipped(why), false);
                    continue;
                }
                if let Some(when) = &step.when {
                    match shared.engine.eval_bool(when, ctx.display()) {
                        Ok(true) => {}
                        Ok(false) => {
                            finish!(i, skipped(format!("condition `{when}` is false")), true);
                            continue;
                        }
                        Err(e) => {
                            let r = StepResult {
                                status: Some(StepStatus::Failed),
                                reason: Some(format!("`when`: {e}")),
                                ..StepResult::default()
                            };
                            stop |= step.on_failure == OnFailure::Abort;
                            finish!(i, r, step.on_failure == OnFailure::Continue);
                            continue;
                        }
                    }
                }
                // A fan-out announces itself once its items are known (in `prepare`).
                if step.foreach.is_none() {
                    let _ = shared.emit(&Event::StepStarted {
                        step: step.id.clone(),
                        items: None,
                    });
                }
                let prepared = match prepare(&shared, &ctx, i).await {
                    Ok(p) => p,
                    Err(r) => {
                        stop |= step.on_failure == OnFailure::Abort;
                        auth_failed |= r.auth_failed;
                        finish!(i, r, step.on_failure == OnFailure::Continue);
                        continue;
                    }
                };
                let recover = opts.unknown.contains(&step.id);
                if recover && shared.valid.steps[i].action.name != "api_keys.rotate" {
                    match resend_unknown(&shared, &opts.policy, i).await {
                        Ok(true) => {}
                        Ok(false) | Err(_) => {
                            declined = true;
                            stop = true;
                            let r = StepResult {
                                status: Some(StepStatus::Declined),
                                reason: Some("an earlier run sent this request and recorded no answer; it is not safe to repeat blindly. Check ESUS's state, then run the step again (interactively, or with a fresh run)".into()),
                                ..StepResult::default()
                            };
                            finish!(i, r, false);
                            continue;
                        }
                    }
                }
                match approve(&shared, &ctx, &opts.policy, i, &prepared).await {
                    Ok(true) => {}
                    Ok(false) => {
                        declined = true;
                        stop = true;
                        let r = StepResult {
                            status: Some(StepStatus::Declined),
                            reason: Some("declined by the operator".into()),
                            ..StepResult::default()
                        };
                        finish!(i, r, false);
                        continue;
                    }
                    Err(e) => {
                        stop = true;
                        // Ctrl-C at a prompt reaches us as an interrupted read, not a signal.
                        let at_prompt = e.kind() == std::io::ErrorKind::Interrupted;
                        prompt_interrupted |= at_prompt;
                        let r = StepResult {
                            status: Some(if at_prompt {
                                StepStatus::Interrupted
                            } else {
                                StepStatus::Failed
                            }),
                            reason: Some(if at_prompt {
                                "interrupted at the confirmation prompt".into()
                            } else {
                                format!("confirmation failed: {e}")
                            }),
                            ..StepResult::default()
                        };
                        finish!(i, r, false);
                        continue;
                    }
                }
                slots[i] = Slot::Running;
                started_at.insert(i, Instant::now());
                let (sh, snapshot) = (shared.clone(), Arc::new(ctx.clone()));
                running.spawn(async move {
                    (
                        i,
                        step::execute_with(sh, snapshot, i, prepared, recover).await,
                    )
                });
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let (i, r) = match joined {
                    Ok(pair) => pair,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => {
                        tracing::error!("a step task failed: {e}");
                        continue;
                    }
                };
                let step = &valid.runbook.steps[i];
                let status = r.status.unwrap_or(StepStatus::Ok);
                auth_failed |= r.auth_failed;
                if status == StepStatus::Failed && step.on_failure == OnFailure::Abort {
                    stop = true;
                }
                let passable = status == StepStatus::Ok || (status == StepStatus::Failed && step.on_failure == OnFailure::Continue);
                finish!(i, r, passable);
            }
            count = interrupt.changed() => {
                stop = true;
                if count >= 2 {
                    hard_stop = true;
                    running.abort_all();
                    for (i, slot) in slots.iter_mut().enumerate() {
                        if *slot == Slot::Running {
                            *slot = Slot::Pending;
                            let elapsed = started_at.get(&i).map(Instant::elapsed).unwrap_or_default();
                            let r = StepResult { status: Some(StepStatus::Interrupted), reason: Some("aborted by a second Ctrl-C; its request may or may not have reached ESUS".into()), duration: elapsed, ..StepResult::default() };
                            let _ = shared.emit(&finished_event(&valid.runbook.steps[i].id, &r));
                            reports[i] = Some(step_report(&shared, &ctx, i, &r));
                            *slot = Slot::Done(StepStatus::Interrupted, false);
                        }
                    }
                    break;
                }
            }
        }
    }
    let interrupted = interrupt.count() > 0 || hard_stop || prompt_interrupted;
    for (i, slot) in slots.iter().enumerate() {
        if *slot == Slot::Pending {
            let status = if interrupted {
                StepStatus::Interrupted
            } else {
                StepStatus::Skipped
            };
            let r = StepResult {
                status: Some(status),
                reason: Some("not started: the run stopped".into()),
                ..StepResult::default()
            };
            let _ = shared.emit(&finished_event(&valid.runbook.steps[i].id, &r));
            reports[i] = Some(step_report(&shared, &ctx, i, &r));
        }
    }
    let failed = slots.iter().enumerate().any(|(i, s)| {
        *s == Slot::Done(StepStatus::Failed, false)
            && valid.runbook.steps[i].on_failure == OnFailure::Abort
    });
    let (outcome, msg) = if interrupted {
        (RunOutcome::Interrupted, "interrupted: in-flight requests finished, nothing new was started. Resume with `esus-ir run --resume TRANSCRIPT`.".to_string())
    } else if shared.sink_broken() {
        (
            RunOutcome::Failed,
            "stopped: the transcript could not be written".to_string(),
        )
    } else if declined {
        (
            RunOutcome::Declined,
            "stopped: a confirmation was declined; nothing further was sent".to_string(),
        )
    } else if auth_failed {
        (RunOutcome::AuthFailed, "stopped: ESUS refused the operator's credentials (expired, revoked or not allowed). Renew the token and resume.".to_string())
    } else if failed {
        (
            RunOutcome::Failed,
            "a step failed; steps that needed it were skipped".to_string(),
        )
    } else {
        (RunOutcome::Success, "all steps completed".to_string())
    };
    finish(&shared, report, outcome, msg, reports)
}

/// Asks whether to send again a non-idempotent request whose earlier outcome is unknown;
/// unattended runs never do.
async fn resend_unknown(
    shared: &Arc<Shared>,
    policy: &ApprovalPolicy,
    i: usize,
) -> std::io::Result<bool> {
    if !policy.interactive {
        return Ok(false);
    }
    let step = &shared.valid.runbook.steps[i];
    let prompt = Prompt {
        step: step.id.clone(),
        name: step.name.clone(),
        message: format!(
            "An earlier run sent `{}` ({}) and recorded no answer: it may already have happened. Check ESUS; send it again?",
            step.id, step.action
        ),
        requests: Vec::new(),
        total: 0,
        typed: None,
        drill: shared.drill,
    };
    let confirmer = shared.confirmer.clone();
    tokio::task::spawn_blocking(move || confirmer.confirm(&prompt))
        .await
        .map_err(std::io::Error::other)?
}

fn skipped(reason: String) -> StepResult {
    StepResult {
        status: Some(StepStatus::Skipped),
        reason: Some(reason),
        ..StepResult::default()
    }
}

fn done(
    shared: &Shared,
    ctx: &mut Context,
    slots: &mut [Slot],
    reports: &mut [Option<StepReport>],
    i: usize,
    r: StepResult,
    passable: bool,
) {
    let step = &shared.valid.runbook.steps[i];
    let status = r.status.unwrap_or(StepStatus::Ok);
    let _ = shared.emit(&finished_event(&step.id, &r));
    reports[i] = Some(step_report(shared, ctx, i, &r));
    ctx.set_step(&step.id, status, r.outputs, r.secret_outputs);
    slots[i] = Slot::Done(status, passable);
}

fn finished_event(id: &str, r: &StepResult) -> Event {
    let mut outputs = r.outputs.clone();
    for name in r.secret_outputs.keys() {
        outputs.insert(name.clone(), Value::from(super::event::REDACTED));
    }
    Event::StepFinished {
        step: id.to_string(),
        status: r.status.unwrap_or(StepStatus::Ok),
        reason: r.reason.clone(),
        outputs,
        duration_ms: r.duration.as_millis() as u64,
    }
}

fn step_report(shared: &Shared, ctx: &Context, i: usize, r: &StepResult) -> StepReport {
    let step = &shared.valid.runbook.steps[i];
    StepReport {
        id: step.id.clone(),
        name: display_name(shared, ctx, i),
        status: r.status.unwrap_or(StepStatus::Ok),
        reason: r.reason.clone(),
        duration_ms: r.duration.as_millis() as u64,
        outputs: r.outputs.clone(),
        evidence: r.evidence.clone(),
        secret_files: r.secret_files.clone(),
    }
}

fn finish(
    shared: &Shared,
    mut report: RunReport,
    outcome: RunOutcome,
    message: String,
    reports: Vec<Option<StepReport>>,
) -> RunReport {
    let code = outcome.exit_code() as u8;
    let _ = shared.emit(&Event::RunFinished {
        outcome,
        exit_code: code,
    });
    let order = shared.valid.graph.order();
    report.steps = order.iter().filter_map(|&i| reports[i].clone()).collect();
    report.outcome = outcome;
    report.exit_code = code;
    report.message = message;
    report
}

/// The step's name with templates rendered (secrets cannot appear: validation forbids them).
pub fn display_name(shared: &Shared, ctx: &Context, i: usize) -> String {
    let step = &shared.valid.runbook.steps[i];
    match shared.engine.render_str(&step.name, ctx.display()) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => step.name.clone(),
    }
}

/// The first event of a run.
pub fn run_started(shared: &Shared, inputs: &Inputs, meta: &RunMeta) -> Event {
    Event::RunStarted {
        runbook_name: shared.valid.runbook.name.clone(),
        runbook_sha256: crate::transcript::sha256_hex(meta.runbook_text.as_bytes()),
        runbook_text: meta.runbook_text.clone(),
        operator: meta.operator.clone(),
        host: meta.host.clone(),
        base_url: shared.client.base().to_string(),
        mode: meta.mode,
        inputs: inputs.display.clone(),
        resumes: meta.resumes.clone(),
    }
}

/// The plan: order, parallel layers, destructive steps, and the requests already known.
pub fn plan_event(shared: &Shared, ctx: &Context) -> Event {
    let valid = &shared.valid;
    let id = |i: usize| valid.runbook.steps[i].id.clone();
    let known_requests = valid
        .graph
        .order()
        .iter()
        .filter(|&&i| valid.runbook.steps[i].foreach.is_none())
        .filter_map(|&i| {
            let req = render::request(
                &shared.engine,
                ctx,
                &valid.runbook.steps[i],
                &valid.steps[i],
                None,
            )
            .ok()?;
            Some((id(i), req.view(shared.client.url(&req).as_str())))
        })
        .collect();
    Event::Plan {
        order: valid.graph.order().iter().map(|&i| id(i)).collect(),
        layers: valid
            .graph
            .layers()
            .into_iter()
            .map(|l| l.into_iter().map(id).collect())
            .collect(),
        destructive: (0..valid.runbook.steps.len())
            .filter(|&i| valid.steps[i].effect == Effect::Destructive)
            .map(id)
            .collect(),
        known_requests,
    }
}

/// Renders the step's request(s); special actions may read first (never write).
async fn prepare(shared: &Arc<Shared>, ctx: &Context, i: usize) -> Result<Prepared, StepResult> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let fail = |e: String| StepResult {
        status: Some(StepStatus::Failed),
        reason: Some(e),
        ..StepResult::default()
    };
    if let Some(expr) = &step.foreach {
        let items = match shared.engine.eval(expr, ctx.display()) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Err(format!(
                "`foreach` must give a list; `{expr}` gave {}",
                type_name(&other)
            )),
            Err(e) => Err(format!("`foreach`: {e}")),
        };
        let _ = shared.emit(&Event::StepStarted {
            step: step.id.clone(),
            items: items.as_ref().ok().map(Vec::len),
        });
        let items = items.map_err(fail)?;
        let built = if info.action.special == Special::ConsentExpire {
            let mut reqs = Vec::with_capacity(items.len());
            for item in &items {
                reqs.push(consent_put(shared, ctx, i, Some(item)).await?);
            }
            Some(reqs)
        } else {
            None
        };
        return Ok(Prepared::Many { items, built });
    }
    match info.action.special {
        Special::CheckRevoked => {
            let params = render::params(&shared.engine, ctx, step, info, None).map_err(fail)?;
            let get = crate::esus::request::build(info.action, &params).map_err(|e| fail(e.0))?;
            let client_id = params
                .display
                .get("client_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let probe = match (client_id, params.secrets.get("secret")) {
                (Some(cid), Some(secret)) if !secret.expose_secret().is_empty() => {
                    let key = SecretString::from(format!("{cid}:{}", secret.expose_secret()));
                    Some(ApiRequest {
                        auth: Auth::ApiKey(key),
                        ..ApiRequest::get(get.path.clone())
                    })
                }
                _ => None,
            };
            Ok(Prepared::Revoked { get, probe })
        }
        Special::ConsentExpire => consent_put(shared, ctx, i, None).await.map(Prepared::One),
        Special::None => render::request(&shared.engine, ctx, step, info, None)
            .map(Prepared::One)
            .map_err(fail),
    }
}

/// `consent.expire`: reads the Consent (a safe GET) and builds the PUT that sets it inactive.
async fn consent_put(
    shared: &Arc<Shared>,
    ctx: &Context,
    i: usize,
    item: Option<&Value>,
) -> Result<ApiRequest, StepResult> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let fail = |e: String| StepResult {
        status: Some(StepStatus::Failed),
        reason: Some(e),
        ..StepResult::default()
    };
    let put = render::request(&shared.engine, ctx, step, info, item).map_err(fail)?;
    let read = ApiRequest {
        method: crate::esus::actions::Method::Get,
        body: None,
        ..put.clone()
    };
    let policy = SendPolicy {
        attempts: 3,
        backoff: std::time::Duration::from_millis(500),
        idempotent: true,
        timeout: step.timeout.map(|t| t.0),
    };
    let bp = BodyPolicy {
        phi: true,
        secret_fields: &[],
    };
    let (resp, id) = match send::send(shared, &step.id, None, &read, policy, bp).await {
        Ok(Sent::Answer(r, id)) => (r, id),
        Ok(_) | Err(_) => return Err(fail(format!("could not read {}", read.path))),
    };
    let _ = send::record_response(shared, &step.id, &id, &resp, bp, None);
    if resp.status != 200 {
        return Err(fail(format!(
            "reading {} answered {}",
            read.path, resp.status
        )));
    }
    let mut consent = resp.json();
    if let Value::Object(m) = &mut consent {
        m.insert("status".into(), Value::from("inactive"));
        m.remove("meta");
    }
    // The Consent names a patient: PHI. People and the transcript see its digest, not its text.
    let wire = serde_json::to_vec(&consent).unwrap_or_default();
    let shown = serde_json::json!({
        "[phi]": "Consent body withheld from display and transcript; status set to inactive",
        "sha256": crate::transcript::sha256_hex(&wire),
    });
    Ok(ApiRequest {
        body: Some(Body::with_secret("application/fhir+json", shown, wire)),
        ..put
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Decides, asks when needed (one prompt at a time, on a blocking thread), and records the
/// approval with the digest of exactly what was shown.
async fn approve(
    shared: &Arc<Shared>,
    ctx: &Context,
    policy: &ApprovalPolicy,
    i: usize,
    prepared: &Prepared,
) -> std::io::Result<bool> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    if info.confirm == ConfirmMode::No {
        return Ok(true);
    }
    let (requests, total, digest) = shown_requests(shared, ctx, i, prepared);
    let message = match &info.confirm {
        ConfirmMode::Ask(Some(m)) => shared
            .engine
            .render_str(m, ctx.display())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| m.clone()),
        _ => format!("Run `{}` ({})?", display_name(shared, ctx, i), step.action),
    };
    let typed = match (&info.confirm, info.action.target) {
        (ConfirmMode::Typed, Some(target)) => render::params(&shared.engine, ctx, step, info, None)
            .ok()
            .and_then(|p| {
                p.display
                    .get(target)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            }),
        _ => None,
    };
    let (approved, how) = match policy.decide(&step.id, &info.confirm) {
        Decision::Approved(how) => (true, how),
        Decision::Missing => (false, ApprovalSource::Interactive),
        Decision::Ask => {
            let prompt = Prompt {
                step: step.id.clone(),
                name: display_name(shared, ctx, i),
                message: message.clone(),
                requests,
                total,
                typed,
                drill: shared.drill,
            };
            let confirmer = shared.confirmer.clone();
            let answer = tokio::task::spawn_blocking(move || confirmer.confirm(&prompt))
                .await
                .map_err(std::io::Error::other)??;
            (answer, ApprovalSource::Interactive)
        }
    };
    shared.emit(&Event::Confirmation {
        step: step.id.clone(),
        prompt: message,
        request_sha256: digest,
        approved,
        how,
    })?;
    Ok(approved)
}

/// The requests a prompt shows, how many there are, and the digest of all of them.
fn shown_requests(
    shared: &Shared,
    ctx: &Context,
    i: usize,
    prepared: &Prepared,
) -> (Vec<RequestView>, usize, String) {
    let view = |r: &ApiRequest| r.view(shared.client.url(r).as_str());
    match prepared {
        Prepared::One(r) => {
            let v = view(r);
            let d = request_digest(&v);
            (vec![v], 1, d)
        }
        Prepared::Revoked { get, probe } => {
            let v = view(get);
            let d = request_digest(&v);
            let mut shown = vec![v];
            shown.extend(probe.as_ref().map(view));
            (shown, 1 + usize::from(probe.is_some()), d)
        }
        Prepared::Many { items, built } => {
            let step = &shared.valid.runbook.steps[i];
            let info = &shared.valid.steps[i];
            let mut batch = BatchDigest::default();
            let mut shown = Vec::new();
            for (k, item) in items.iter().enumerate() {
                let request = match built {
                    Some(b) => b.get(k).cloned().ok_or(()),
                    None => {
                        render::request(&shared.engine, ctx, step, info, Some(item)).map_err(|_| ())
                    }
                };
                if let Ok(r) = request {
                    let v = view(&r);
                    batch.push(&v);
                    if shown.len() < 10_000 {
                        shown.push(v);
                    }
                }
            }
            (shown, items.len(), batch.finish())
        }
    }
}
