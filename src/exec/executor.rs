//! The scheduler: runs the step graph — independent steps side by side, each destructive step
//! confirmed (one prompt at a time) with the exact request it will send, failures and Ctrl-C
//! stopping new work while running steps finish — and ends every run with the state of
//! containment, proven by the runbook's checks.
//!
//! The loop is short on purpose (ready steps → start → collect → decide); what an action does
//! lives with the action ([`super::step`] and its neighbours), asking lives in
//! [`super::confirmation`], the verdict in [`super::containment`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::approval::Decision;
use super::confirmation::{self, Answer};
use super::containment::{self, Containment, Ended};
use super::opening::{plan_event, run_started};
use super::report::{RunReport, StepReport};
use super::shared::Shared;
use super::step::{self, StepResult};
use super::token::RefreshStore;
use crate::esus::actions::Effect;
use crate::event::{Event, RunOutcome, StepStatus};
use crate::plan::context::Context;
use crate::plan::gaps;
use crate::plan::inputs::Inputs;
use crate::plan::{Condition, StepPlan, Work};
use crate::runbook::model::OnFailure;

pub use super::opening::RunMeta;
pub use super::resume::FinishedStep;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Steps running at once (at least 1).
    pub max_parallel: usize,
    /// What the run being resumed finished, and what it left unknown.
    pub resume: Option<super::resume::ResumePlan>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Pending,
    /// Its prompt is open: the operator is being asked (one step at a time).
    Asking,
    Running,
    /// Finished; `passable` means dependents may run (a skip by a false `when` is passable).
    Done(StepStatus, bool),
}

/// What a task of the run hands back: a prompt's answer, or a step's result. A prompt runs as
/// a task like a step, so the results of steps running alongside are recorded and shown when
/// they arrive — not when the operator answers — and steps that need no prompt keep starting.
enum Joined {
    Asked {
        i: usize,
        plan: Box<StepPlan>,
        answer: std::io::Result<Answer>,
    },
    Ran(usize, StepResult),
}

/// Why the run stopped starting new steps.
#[derive(Debug, Default, Clone, Copy)]
struct Stop {
    any: bool,
    declined: bool,
    auth_failed: bool,
    at_prompt: bool,
    hard: bool,
}

/// One run of a runbook.
struct Run {
    shared: Arc<Shared>,
    ctx: Context,
    slots: Vec<Slot>,
    reports: Vec<Option<StepReport>>,
    opts: RunOptions,
    running: JoinSet<Joined>,
    started_at: HashMap<usize, Instant>,
    stop: Stop,
    /// When the incident's first run began: time to containment counts from there.
    chain_began: jiff::Timestamp,
    proven: Option<(u64, String)>,
    report: RunReport,
    /// Checks whose baseline (their "before") was taken.
    baselines: std::collections::HashSet<usize>,
    /// What containment will not cover (absent inputs), said with the verdict.
    not_covered: Vec<String>,
    /// Checks that can never pass in this incident, and what a person does instead.
    by_hand: HashMap<usize, Vec<String>>,
}

/// Runs the runbook; every path ends with a `containment` and a `run-finished` event.
pub async fn run(
    shared: Arc<Shared>,
    inputs: &Inputs,
    meta: RunMeta,
    opts: RunOptions,
) -> RunReport {
    let mut run = Run::new(shared, inputs, &meta, opts);
    if let Err(e) = run.shared.emit(&run_started(&run.shared, inputs, &meta)) {
        let why = format!("could not write the transcript: {e}");
        return run.finish(RunOutcome::Failed, why);
    }
    if let Some(p) = &run.shared.policy.policy {
        let _ = run.shared.emit(&Event::PolicyApplied {
            policy_sha256: p.digest.clone(),
            signer: p.signer.clone(),
            expires_at: p.expires.clone(),
        });
    }
    if let Some(gate) = &run.shared.policy.plan {
        let _ = run.shared.emit(&Event::PlanApproved {
            plan_sha256: gate.digest.clone(),
            approvers: gate
                .approvers
                .iter()
                .map(|a| format!("{} ({})", a.principal, a.fingerprint))
                .collect(),
            plan_created_at: gate.plan["created_at"].as_str().map(str::to_string),
            expires_at: gate.plan["expires_at"].as_str().map(str::to_string),
        });
    }
    // What earlier runs of the chain did is recorded before anything can stop this one, so a
    // resume of this run (even one that stopped at the preflight) still knows all of it.
    run.restore();
    let plans = run.plan_ahead();
    let gaps = gaps::gaps(&run.shared.valid, &inputs.display, &plans);
    run.report.not_done = gaps::sentences(&gaps);
    run.not_covered = gaps::not_covered(&gaps);
    if let Some(why) = refused(&plans) {
        return run.finish(RunOutcome::Refused, why);
    }
    if let Some(why) = over_policy_cap(&run.shared, &plans) {
        return run.finish(RunOutcome::Declined, why);
    }
    let missing = run.shared.policy.missing(&plans);
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        let why = format!(
            "refusing to start: nothing was sent. Unattended runs need approvals for: {}",
            list.join(", ")
        );
        run.report.missing_approvals = missing;
        return run.finish(RunOutcome::Declined, why);
    }
    match super::preflight::check(&run.shared).await {
        Ok(identity) => {
            run.ctx.set_operator(identity.me.clone());
            run.report.acting_as = Some(identity.me);
        }
        Err(refusal) => return run.finish(refusal.outcome, refusal.message),
    }
    let not_done = run.report.not_done.clone();
    if let Err(e) = run.shared.emit(&plan_event(&run.shared, &plans, not_done)) {
        let why = format!("could not write the transcript: {e}");
        return run.finish(RunOutcome::Failed, why);
    }
    // Each step is planned again when it starts: the plans made ahead hold a fan-out's every
    // item, and kept to the end of the run they were a copy of its inputs (issue 21).
    drop(plans);
    run.schedule().await;
    run.check_after_stop().await;
    run.close_unstarted();
    let (outcome, why) = run.outcome();
    run.finish(outcome, why)
}

/// A fan-out larger than the signed policy allows: outside the policy, refused before anything
/// is sent.
fn over_policy_cap(shared: &Shared, plans: &[StepPlan]) -> Option<String> {
    let cap = shared.policy.policy.as_ref()?.max_items?;
    let over: Vec<String> = plans
        .iter()
        .filter_map(|p| match &p.work {
            Work::Many(b) if b.items.len() > cap => {
                Some(format!("`{}` fans out over {} items", p.id, b.items.len()))
            }
            _ => None,
        })
        .collect();
    (!over.is_empty()).then(|| {
        format!(
            "refusing to start: nothing was sent. Outside the signed policy: {} (it allows {cap})",
            over.join("; ")
        )
    })
}

/// What the plan made ahead of the run found wrong in a step that will run: the run is refused
/// before anything is sent (a step whose condition is only known later is judged when reached).
pub(super) fn refused(plans: &[StepPlan]) -> Option<String> {
    let bad: Vec<String> = plans
        .iter()
        .filter(|p| matches!(p.condition, Condition::Runs | Condition::Broken(_)))
        .flat_map(|p| p.problems.iter().map(move |e| format!("`{}`: {e}", p.id)))
        .collect();
    (!bad.is_empty()).then(|| {
        format!(
            "refusing to start: nothing was sent. The plan found: {}",
            bad.join("; ")
        )
    })
}

/// A half-done fan-out's finished items, and the outcomes still unknown, carried into this
/// transcript (in step and item order) until a run settles them.
fn carry_progress(shared: &Shared, plan: &super::resume::ResumePlan) {
    let mut batches: Vec<_> = plan.batches.iter().collect();
    batches.sort_by(|a, b| a.0.cmp(b.0));
    for (step, batch) in batches {
        let mut done: Vec<_> = batch.done.iter().collect();
        done.sort_by_key(|(k, _)| **k);
        for (k, item) in done {
            let _ = shared.emit(&Event::CarriedItem {
                step: step.clone(),
                item: *k,
                outputs: item.outputs.clone(),
                secret_files: item.secret_files.clone(),
            });
        }
        let mut unknown: Vec<_> = batch.unknown.iter().collect();
        unknown.sort_by_key(|(k, _)| **k);
        for (k, lost) in unknown {
            let _ = shared.emit(&unresolved(step, Some(*k), lost));
        }
    }
    let mut unknown: Vec<_> = plan.unknown.iter().collect();
    unknown.sort_by(|a, b| a.0.cmp(b.0));
    for (step, lost) in unknown {
        let _ = shared.emit(&unresolved(step, None, lost));
    }
}

fn unresolved(step: &str, item: Option<usize>, lost: &super::resume::LostWrite) -> Event {
    Event::Unresolved {
        step: step.to_string(),
        item,
        sent_at: lost.sent_at.to_string(),
        before: lost
            .before
            .clone()
            .map(|superseded_by| crate::event::Before { superseded_by }),
        known: lost.known.clone(),
    }
}

impl Run {
    fn new(shared: Arc<Shared>, inputs: &Inputs, meta: &RunMeta, opts: RunOptions) -> Run {
        let n = shared.valid.runbook.steps.len();
        let report = RunReport {
            schema_version: super::report::SCHEMA_VERSION,
            kind: "result".into(),
            incident_id: meta.incident_id.clone(),
            operator: meta.operator.clone(),
            mode: meta.mode,
            started_at: jiff::Timestamp::now().to_string(),
            finished_at: String::new(),
            contained: crate::event::ContainmentState::NotApplicable,
            time_to_containment_ms: None,
            resume_command: None,
            refresh_token_file: None,
            refresh_token_keyring: None,
            not_done: Vec::new(),
            by_hand: Vec::new(),
            next_steps: Vec::new(),
            run_id: meta.run_id.clone(),
            runbook: shared.valid.runbook.name.clone(),
            outcome: RunOutcome::Success,
            exit_code: 0,
            message: String::new(),
            steps: Vec::new(),
            run_dir: None,
            transcript: None,
            evidence_dir: Some(shared.folders.evidence.clone()),
            containment: None,
            acting_as: None,
            missing_approvals: Vec::new(),
        };
        Run {
            ctx: Context::new(inputs),
            slots: vec![Slot::Pending; n],
            reports: vec![None; n],
            opts,
            running: JoinSet::new(),
            started_at: HashMap::new(),
            stop: Stop::default(),
            chain_began: meta
                .chain_started_at
                .as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(jiff::Timestamp::now),
            proven: None,
            report,
            baselines: Default::default(),
            not_covered: Vec::new(),
            by_hand: HashMap::new(),
            shared,
        }
    }

    /// The plan of every step still to do, made before anything is sent.
    fn plan_ahead(&self) -> Vec<StepPlan> {
        let finished = self
            .opts
            .resume
            .as_ref()
            .map(|p| p.finished.keys().cloned().collect())
            .unwrap_or_default();
        self.shared.planner.ahead(&self.ctx, &finished)
    }

    /// Steps an earlier run finished: their outputs feed this one, they do not run again, and
    /// the new transcript records them as carried, so it alone says what is done.
    fn restore(&mut self) {
        let Some(plan) = self.opts.resume.clone() else {
            return;
        };
        let valid = self.shared.valid.clone();
        for c in &plan.carried {
            let _ = self.shared.emit(&Event::Carried {
                step: c.step.clone(),
                status: StepStatus::Ok,
                outputs: c.outputs.clone(),
                evidence: c.evidence.clone(),
                secret_files: c.secret_files.clone(),
                from_file: c.from_file.clone(),
                from_seq: c.from_seq,
            });
        }
        carry_progress(&self.shared, &plan);
        for fact in &plan.witnessed {
            let _ = self.shared.emit(&fact.event());
        }
        for (i, s) in valid.runbook.steps.iter().enumerate() {
            let Some((status, outputs, secrets)) = plan.finished.get(&s.id) else {
                continue;
            };
            self.ctx
                .set_step(&s.id, *status, outputs.clone(), secrets.clone());
            self.slots[i] = Slot::Done(*status, true);
            self.reports[i] = Some(StepReport {
                id: s.id.clone(),
                name: self.shared.planner.display_name(&self.ctx, i),
                status: *status,
                reason: Some("finished by an earlier run of this incident".into()),
                duration_ms: 0,
                outputs: outputs.clone(),
                evidence: Vec::new(),
                secret_files: Vec::new(),
                finding: None,
                expected: None,
            });
        }
    }

    async fn schedule(&mut self) {
        let mut interrupt = self.shared.interrupt.clone();
        loop {
            if self.shared.sink_broken() || interrupt.count() > 0 {
                self.stop.any = true;
            }
            while !self.stop.any && self.start_ready().await {}
            if self.running.is_empty() {
                return;
            }
            tokio::select! {
                joined = self.running.join_next() => {
                    if let Some(Ok(Joined::Ran(i, r))) = joined {
                        self.collect(i, r);
                    } else if let Some(Ok(Joined::Asked { i, plan, answer })) = joined {
                        self.answered(i, *plan, answer).await;
                    } else if let Some(Err(e)) = joined && !e.is_cancelled() {
                        tracing::error!("a step task failed: {e}");
                    }
                }
                count = interrupt.changed() => {
                    self.stop.any = true;
                    if count >= 2 {
                        self.abort_running();
                        return;
                    }
                }
            }
        }
    }

    /// Starts every step whose needs are done, within `max_parallel`; whether any changed.
    async fn start_ready(&mut self) -> bool {
        let order = self.shared.valid.graph.order().to_vec();
        let mut progressed = false;
        for i in order {
            if self.stop.any || self.running.len() >= self.opts.max_parallel.max(1) {
                break;
            }
            if self.slots[i] == Slot::Pending && self.needs_done(i) && self.start(i).await {
                progressed = true;
            }
        }
        progressed
    }

    fn needs_done(&self, i: usize) -> bool {
        self.shared
            .valid
            .graph
            .needs(i)
            .iter()
            .all(|&d| matches!(self.slots[d], Slot::Done(..)))
    }

    /// Takes step `i` from pending to asking, running, or done when it cannot or need not run:
    /// its plan is made now, from what the steps before it gave, and is what is approved and
    /// sent. Whether the step left pending (a step that must ask waits while another prompt is
    /// open). After a decline, no further write starts; reads (evidence, checks) still do.
    async fn start(&mut self, i: usize) -> bool {
        let shared = self.shared.clone();
        if let Some(why) = self.blocked_by(i) {
            // A check waits for the end of the run: it then reads ESUS's word on what is still
            // at risk (`check_after_stop`) instead of being skipped.
            if shared.valid.steps[i].action.check {
                return false;
            }
            self.done(i, skipped(why), false);
            return true;
        }
        let plan = shared.planner.step(&self.ctx, i, &self.done_items(i));
        if let Condition::Skipped(why) = &plan.condition {
            self.done(i, skipped(why.clone()), true);
            return true;
        }
        let asks = shared.policy.decide(&plan.id, &plan.approval) == Decision::Ask;
        if asks && self.slots.contains(&Slot::Asking) {
            return false;
        }
        if self.stop.declined && plan.effect != Effect::Read {
            let why = "not started: a confirmation was declined, so no further write is sent";
            self.done(i, skipped(why.into()), false);
            return true;
        }
        let _ = shared.emit(&Event::StepStarted {
            step: plan.id.clone(),
            items: match &plan.work {
                Work::Many(b) => Some(b.todo_len()),
                _ => None,
            },
        });
        if !plan.problems.is_empty() {
            self.fail(i, StepResult::failed(plan.problems.join("; ")));
            return true;
        }
        if asks {
            self.slots[i] = Slot::Asking;
            let ctx = Arc::new(self.ctx.clone());
            self.running.spawn(async move {
                let answer = confirmation::approve(&shared, &ctx, &shared.policy, &plan).await;
                let plan = Box::new(plan);
                Joined::Asked { i, plan, answer }
            });
            return true;
        }
        let answer = confirmation::approve(&shared, &self.ctx, &shared.policy, &plan).await;
        self.answered(i, plan, answer).await;
        true
    }

    /// Acts on the answer for step `i`: runs it when approved.
    async fn answered(&mut self, i: usize, plan: StepPlan, answer: std::io::Result<Answer>) {
        match answer {
            Ok(Answer::Yes) => {}
            Ok(Answer::No) => return self.decline(i, "declined by the operator"),
            Ok(Answer::Missing(what)) => {
                let why = format!("not approved: this unattended run has no approval for {what}");
                self.report.missing_approvals.push(what);
                return self.decline(i, &why);
            }
            Ok(Answer::Cannot(why)) => return self.fail(i, StepResult::failed(why)),
            Ok(Answer::OutsidePlan(why)) => return self.decline(i, &why),
            Err(e) => return self.prompt_failed(i, &e),
        }
        let shared = self.shared.clone();
        super::baseline::before(&shared, &self.ctx, i, &mut self.baselines).await;
        self.slots[i] = Slot::Running;
        self.started_at.insert(i, Instant::now());
        let snapshot = Arc::new(self.ctx.clone());
        let how = self.running_how(&plan.id);
        self.running.spawn(async move {
            let r = step::execute(shared, snapshot, i, plan.work, how).await;
            Joined::Ran(i, r)
        });
    }

    /// Items of step `i`'s fan-out an earlier leg finished.
    fn done_items(&self, i: usize) -> std::collections::BTreeSet<usize> {
        let id = &self.shared.valid.runbook.steps[i].id;
        self.opts
            .resume
            .as_ref()
            .and_then(|p| p.batches.get(id))
            .map(|b| b.done.keys().copied().collect())
            .unwrap_or_default()
    }

    /// What an earlier leg left unsettled for step `id`.
    fn running_how(&self, id: &str) -> step::Running {
        let resume = self.opts.resume.as_ref();
        step::Running {
            lost: resume.and_then(|p| p.unknown.get(id).cloned()),
            batch: resume
                .and_then(|p| p.batches.get(id).cloned())
                .unwrap_or_default(),
            after_stop: false,
        }
    }

    /// Why step `i` cannot run because a step it needs did not succeed.
    fn blocked_by(&self, i: usize) -> Option<String> {
        let valid = &self.shared.valid;
        valid
            .graph
            .needs(i)
            .iter()
            .find_map(|&d| match self.slots[d] {
                Slot::Done(st, false) => Some(format!(
                    "needs `{}`, which {}",
                    valid.runbook.steps[d].id,
                    super::report::status_words(st)
                )),
                _ => None,
            })
    }

    fn fail(&mut self, i: usize, r: StepResult) {
        let on_failure = self.shared.valid.runbook.steps[i].on_failure;
        self.stop.any |= on_failure == OnFailure::Abort;
        self.stop.auth_failed |= r.auth_failed;
        self.done(i, r, on_failure == OnFailure::Continue);
    }

    /// A declined (or, unattended, unapproved) step: it and what needs it do not run, and no
    /// further write is sent — but reads that do not need it (evidence, checks) still run.
    fn decline(&mut self, i: usize, why: &str) {
        self.stop.declined = true;
        let r = StepResult {
            status: Some(StepStatus::Declined),
            reason: Some(why.into()),
            ..StepResult::default()
        };
        self.done(i, r, false);
    }

    /// A prompt that could not be answered; Ctrl-C at a prompt arrives as an interrupted read.
    fn prompt_failed(&mut self, i: usize, e: &std::io::Error) {
        self.stop.any = true;
        let at_prompt = e.kind() == std::io::ErrorKind::Interrupted;
        self.stop.at_prompt |= at_prompt;
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
        self.done(i, r, false);
    }

    fn collect(&mut self, i: usize, r: StepResult) {
        let step = &self.shared.valid.runbook.steps[i];
        let status = r.final_status();
        self.stop.auth_failed |= r.auth_failed;
        if status == StepStatus::Failed && step.on_failure == OnFailure::Abort {
            self.stop.any = true;
        }
        let passable = status == StepStatus::Ok
            || (status == StepStatus::Failed && step.on_failure == OnFailure::Continue);
        self.done(i, r, passable);
    }

    /// A second Ctrl-C: running steps are aborted; their requests may or may not have arrived.
    fn abort_running(&mut self) {
        self.stop.hard = true;
        self.running.abort_all();
        for i in 0..self.slots.len() {
            if self.slots[i] == Slot::Asking {
                let r = StepResult {
                    status: Some(StepStatus::Interrupted),
                    reason: Some("interrupted at the confirmation prompt".into()),
                    ..StepResult::default()
                };
                self.done(i, r, false);
                continue;
            }
            if self.slots[i] != Slot::Running {
                continue;
            }
            let elapsed = self
                .started_at
                .get(&i)
                .map(Instant::elapsed)
                .unwrap_or_default();
            let r = StepResult {
                status: Some(StepStatus::Interrupted),
                reason: Some(
                    "aborted by a second Ctrl-C; its request may or may not have reached ESUS"
                        .into(),
                ),
                duration: elapsed,
                ..StepResult::default()
            };
            self.done(i, r, false);
        }
    }

    fn interrupted(&self) -> bool {
        self.shared.interrupt.count() > 0 || self.stop.hard || self.stop.at_prompt
    }

    /// After a stop (a decline, a failure, refused credentials), the containment checks that did
    /// not run are run anyway — they only read — so the run ends with ESUS's word on what is
    /// still at risk ("key k-1001 is still active"), not a guess. Never after Ctrl-C.
    async fn check_after_stop(&mut self) {
        let stopped = self.stop.declined || self.stop.auth_failed || self.failed();
        if !stopped || self.interrupted() || self.shared.sink_broken() {
            return;
        }
        let valid = self.shared.valid.clone();
        // Steps that will not start are known as such to the checks' templates (a check may
        // read `steps.logout_all.status`), instead of being undefined.
        for i in 0..valid.steps.len() {
            if self.slots[i] == Slot::Pending && !valid.steps[i].action.check {
                let id = &valid.runbook.steps[i].id;
                self.ctx
                    .set_step(id, StepStatus::Skipped, Map::new(), HashMap::new());
            }
        }
        for i in valid.graph.order().to_vec() {
            if valid.steps[i].action.check && self.slots[i] == Slot::Pending {
                self.check_one_after_stop(i).await;
            }
        }
    }

    async fn check_one_after_stop(&mut self, i: usize) {
        let plan = self.shared.planner.step(&self.ctx, i, &Default::default());
        if let Condition::Skipped(why) = &plan.condition {
            return self.done(i, skipped(why.clone()), true);
        }
        let _ = self.shared.emit(&Event::StepStarted {
            step: plan.id.clone(),
            items: None,
        });
        let mut r = if plan.problems.is_empty() && plan.known() {
            let ctx = Arc::new(self.ctx.clone());
            let how = step::Running {
                after_stop: true,
                ..step::Running::default()
            };
            step::execute(self.shared.clone(), ctx, i, plan.work, how).await
        } else {
            let why = if plan.problems.is_empty() {
                "what it reads is not known: the steps it needs did not run".to_string()
            } else {
                plan.problems.join("; ")
            };
            let mut r = StepResult::failed(why.clone());
            r.finding = Some(format!("`{}` could not run after the stop: {why}", plan.id));
            r
        };
        let note = "checked after the run stopped";
        r.reason = Some(match r.reason.take() {
            Some(why) => format!("{why} ({note})"),
            None => note.to_string(),
        });
        let status = r.final_status();
        self.done(i, r, status == StepStatus::Ok);
    }

    /// Steps that never started: interrupted by Ctrl-C, else skipped because the run stopped.
    fn close_unstarted(&mut self) {
        let status = if self.interrupted() {
            StepStatus::Interrupted
        } else {
            StepStatus::Skipped
        };
        for i in 0..self.slots.len() {
            if self.slots[i] == Slot::Pending {
                let r = StepResult {
                    status: Some(status),
                    reason: Some("not started: the run stopped".into()),
                    ..StepResult::default()
                };
                self.done(i, r, false);
            }
        }
    }

    /// A step that failed and stopped the run.
    fn failed(&self) -> bool {
        let steps = &self.shared.valid.runbook.steps;
        self.slots.iter().enumerate().any(|(i, s)| {
            *s == Slot::Done(StepStatus::Failed, false) && steps[i].on_failure == OnFailure::Abort
        })
    }

    /// Steps that failed and let the run go on (`on_failure: continue`), in plan order.
    fn continued_failures(&self) -> Vec<String> {
        let steps = &self.shared.valid.runbook.steps;
        self.shared
            .valid
            .graph
            .order()
            .iter()
            .filter(|&&i| self.slots[i] == Slot::Done(StepStatus::Failed, true))
            .map(|&i| steps[i].id.clone())
            .collect()
    }

    fn outcome(&self) -> (RunOutcome, String) {
        if self.interrupted() {
            let what = if self.stop.hard {
                "interrupted: the requests in flight were aborted (they may or may not have reached ESUS); nothing new was started"
            } else {
                "interrupted: the requests in flight finished; nothing new was started"
            };
            return (RunOutcome::Interrupted, what.to_string());
        }
        if self.shared.sink_broken() {
            let why = "stopped: the transcript could not be written";
            return (RunOutcome::Failed, why.to_string());
        }
        if self.stop.declined {
            let why = "stopped: a confirmation was declined; no further write was sent (reads that did not need it still ran)";
            return (RunOutcome::Declined, why.to_string());
        }
        if self.stop.auth_failed {
            let why = "stopped: ESUS refused the operator's credentials (expired, revoked or not allowed). Renew the token and resume";
            return (RunOutcome::AuthFailed, why.to_string());
        }
        if self.failed() {
            let why = "a step failed; steps that needed it were skipped";
            return (RunOutcome::Failed, why.to_string());
        }
        let continued = self.continued_failures();
        if !continued.is_empty() {
            let why = format!(
                "completed with failures: {} failed and the run went on (`on_failure: continue`)",
                continued.join(", ")
            );
            return (RunOutcome::CompletedWithFailures, why);
        }
        (RunOutcome::Success, "all steps completed".to_string())
    }

    /// Every way a step ends comes here: its event, its report line, its outputs.
    fn done(&mut self, i: usize, r: StepResult, passable: bool) {
        let shared = self.shared.clone();
        let step = &shared.valid.runbook.steps[i];
        let status = r.final_status();
        if shared.valid.steps[i].action.check && status == StepStatus::Ok {
            let now = jiff::Timestamp::now();
            let ms = now.duration_since(self.chain_began).as_millis().max(0) as u64;
            self.proven = Some((ms, now.to_string()));
        }
        if !r.by_hand.is_empty() {
            self.by_hand.insert(i, r.by_hand.clone());
        }
        let _ = shared.emit(&finished_event(&step.id, &r));
        self.reports[i] = Some(step_report(&shared, &self.ctx, i, &r));
        self.ctx
            .set_step(&step.id, status, r.outputs, r.secret_outputs);
        self.slots[i] = Slot::Done(status, passable);
    }

    /// When every step ended and each that failed is a check that can never pass in this
    /// incident, a resume would ask ESUS the same questions and get the same answers: what is
    /// left is done by hand. Otherwise (a step that did not run, was declined, interrupted, or
    /// failed in a way another try may change) nothing: a resume can still help.
    fn by_hand_only(&self) -> Vec<String> {
        let mut steps = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let stopped = self.reports[i]
                .as_ref()
                .and_then(|r| r.reason.as_deref())
                .is_some_and(|r| r.starts_with("not started"));
            match slot {
                Slot::Done(StepStatus::Ok | StepStatus::Skipped, _) if !stopped => {}
                Slot::Done(StepStatus::Failed, _) if self.by_hand.contains_key(&i) => {
                    for s in &self.by_hand[&i] {
                        if !steps.contains(s) {
                            steps.push(s.clone());
                        }
                    }
                }
                _ => return Vec::new(),
            }
        }
        steps
    }

    fn containment(&self) -> Containment {
        let ended: Vec<Ended<'_>> = (0..self.slots.len())
            .map(|i| Ended {
                report: self.reports[i].as_ref(),
                not_needed: self.slots[i] == Slot::Done(StepStatus::Skipped, true),
            })
            .collect();
        containment::assess(&self.shared.valid, &ended, self.proven.clone())
    }

    fn finish(mut self, mut outcome: RunOutcome, mut message: String) -> RunReport {
        let mut c = self.containment();
        if c.state != crate::event::ContainmentState::NotApplicable {
            c.not_covered = std::mem::take(&mut self.not_covered);
        }
        if outcome == RunOutcome::Success && c.state == crate::event::ContainmentState::NotContained
        {
            outcome = RunOutcome::Failed;
            message = "every step ran, but containment was NOT proven".into();
        }
        let _ = self.shared.emit(&Event::Containment {
            state: c.state,
            summary: c.summary.clone(),
            checks: c.checks.clone(),
            time_to_containment_ms: c.time_to_containment_ms,
            at: c.at.clone(),
            not_covered: c.not_covered.clone(),
        });
        let code = outcome.exit_code() as u8;
        let _ = self.shared.emit(&Event::RunFinished {
            outcome,
            exit_code: code,
        });
        let order = self.shared.valid.graph.order();
        self.report.steps = order
            .iter()
            .filter_map(|&i| self.reports[i].clone())
            .collect();
        self.report.outcome = outcome;
        self.report.exit_code = code;
        self.report.message = message;
        self.report.contained = c.state;
        self.report.time_to_containment_ms = c.time_to_containment_ms;
        self.report.finished_at = jiff::Timestamp::now().to_string();
        self.report.containment = Some(c);
        match self.shared.token.saved_refresh() {
            Some(RefreshStore::File(p)) => self.report.refresh_token_file = Some(p),
            Some(RefreshStore::Keyring(entry)) => self.report.refresh_token_keyring = Some(entry),
            None => {}
        }
        self.report.by_hand = self.by_hand_only();
        self.report
    }
}

fn skipped(reason: String) -> StepResult {
    StepResult {
        status: Some(StepStatus::Skipped),
        reason: Some(reason),
        ..StepResult::default()
    }
}

fn finished_event(id: &str, r: &StepResult) -> Event {
    let mut outputs = r.outputs.clone();
    for name in r.secret_outputs.keys() {
        outputs.insert(name.clone(), Value::from(crate::event::REDACTED));
    }
    Event::StepFinished {
        step: id.to_string(),
        status: r.final_status(),
        reason: r.reason.clone(),
        outputs,
        duration_ms: r.duration.as_millis() as u64,
        finding: r.finding.clone(),
        expected: r.expected,
        secret_files: super::outcome::file_names(&r.secret_files),
        evidence: r.evidence.clone(),
    }
}

fn step_report(shared: &Shared, ctx: &Context, i: usize, r: &StepResult) -> StepReport {
    let step = &shared.valid.runbook.steps[i];
    StepReport {
        id: step.id.clone(),
        name: shared.planner.display_name(ctx, i),
        status: r.final_status(),
        reason: r.reason.clone(),
        duration_ms: r.duration.as_millis() as u64,
        outputs: r.outputs.clone(),
        evidence: r.evidence.clone(),
        secret_files: r.secret_files.clone(),
        finding: r.finding.clone(),
        expected: r.expected,
    }
}
