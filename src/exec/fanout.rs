//! `foreach`: one step fanned out over many items, `concurrency` at a time, each item its own
//! task so rendering, recording and parsing spread over the runtime's threads. Running the items
//! adds no memory per item beyond the declared outputs; what does grow with the number of items
//! is held before the first one is sent (the items themselves, the approval's covers:
//! docs/performance.md).
//!
//! Every item's outcome is durable as soon as it is known: its secret outputs are written
//! (`secrets/<step>[<k>].<name>`, 0600) before its answer is recorded, and an `item-finished`
//! record follows — so a fan-out killed half-way resumes from the items that did not finish, and
//! an item whose request went out with no answer is checked against ESUS (super::recover), never
//! sent again blindly.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::Value;

use super::outcome::{self, StepResult};
use super::resume::{BatchProgress, DoneItem};
use super::shared::Shared;
use crate::event::{Event, StepStatus};
use crate::plan::Batch;
use crate::plan::context::Context;
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;

/// Runs the items of a `foreach` step an earlier run did not finish, and gathers every item's
/// outputs (carried and new) in item order.
pub(super) async fn many(
    shared: &Arc<Shared>,
    ctx: &Arc<Context>,
    i: usize,
    plan: Batch,
    mut progress: BatchProgress,
) -> StepResult {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let total = plan.items.len();
    let mut gathered = Gathered::new(step, total);
    for (k, done) in std::mem::take(&mut progress.done) {
        if k < total && plan.done.contains(&k) {
            gathered.add_done(k, done);
        }
    }
    let todo: Vec<usize> = plan.todo().map(|(k, _)| k).collect();
    shared.progress.items_started(&step.id, todo.len());
    let progress = Arc::new(progress);
    let items = plan.items.clone();
    let per_item = futures::stream::iter(todo)
        .map(|k| {
            let task = tokio::spawn(run_item(
                shared.clone(),
                ctx.clone(),
                i,
                k,
                items.clone(),
                progress.clone(),
            ));
            async move {
                let r = task
                    .await
                    .unwrap_or_else(|e| StepResult::failed(format!("item {k}: {e}")));
                (k, r)
            }
        })
        .buffer_unordered(plan.concurrency);
    futures::pin_mut!(per_item);
    while let Some((k, r)) = per_item.next().await {
        gathered.add(k, r);
    }
    let mut result = gathered.finish(info);
    // One file per secret output with every item's value, in item order, for people handing
    // the secrets over; the per-item files are what resume relies on.
    outcome::keep_secrets(shared, step, None, &mut result);
    result
}

async fn run_item(
    shared: Arc<Shared>,
    ctx: Arc<Context>,
    i: usize,
    k: usize,
    items: crate::plan::Items,
    progress: Arc<BatchProgress>,
) -> StepResult {
    let step = &shared.valid.runbook.steps[i];
    if shared.interrupt.count() > 0 {
        return StepResult {
            status: Some(StepStatus::Interrupted),
            reason: Some("not started: the run was interrupted".into()),
            ..StepResult::default()
        };
    }
    let item = &items[k];
    let r = match shared.planner.item_request(&ctx, i, k, item) {
        Ok(req) => match progress.unknown.get(&k) {
            Some(lost) => {
                let lost = super::recover::Lost {
                    index: i,
                    req: &req,
                    item: Some((k, item)),
                    why: "the run that sent it stopped before an answer was recorded",
                    before: lost.before.clone(),
                    known: lost.known.clone(),
                };
                super::settle::recover(&shared, &ctx, lost).await
            }
            None => super::single::one(&shared, &ctx, i, req, Some((k, item))).await,
        },
        Err(e) => StepResult::failed(e),
    };
    let status = r.final_status();
    let mut outputs = r.outputs.clone();
    for name in r.secret_outputs.keys() {
        outputs.insert(name.clone(), Value::from(crate::event::REDACTED));
    }
    let _ = shared.emit(&Event::ItemFinished {
        step: step.id.clone(),
        item: k,
        status,
        reason: r.reason.clone(),
        outputs,
        secret_files: super::outcome::file_names(&r.secret_files),
    });
    shared
        .progress
        .item_finished(&step.id, status == StepStatus::Ok);
    r
}

/// The items' results, gathered into the step's.
struct Gathered<'a> {
    names: Vec<&'a String>,
    columns: Vec<Vec<Value>>,
    secret_columns: HashMap<String, Vec<Value>>,
    result: StepResult,
    failed: usize,
    interrupted: usize,
    first_error: Option<String>,
    total: usize,
    carried: std::collections::HashSet<usize>,
}

impl<'a> Gathered<'a> {
    fn new(step: &'a Step, total: usize) -> Self {
        let names: Vec<&String> = step.outputs.keys().collect();
        Gathered {
            columns: vec![vec![Value::Null; total]; names.len()],
            names,
            secret_columns: HashMap::new(),
            result: StepResult::default(),
            failed: 0,
            interrupted: 0,
            first_error: None,
            total,
            carried: std::collections::HashSet::new(),
        }
    }

    /// An item an earlier run finished.
    fn add_done(&mut self, k: usize, done: DoneItem) {
        self.carried.insert(k);
        self.put(k, &done.outputs, done.secrets);
    }

    fn add(&mut self, k: usize, r: StepResult) {
        match r.status {
            Some(StepStatus::Interrupted) => self.interrupted += 1,
            Some(StepStatus::Failed) => {
                self.failed += 1;
                self.result.auth_failed |= r.auth_failed;
                self.first_error.get_or_insert_with(|| {
                    format!("item {k}: {}", r.reason.clone().unwrap_or_default())
                });
            }
            _ => self.put(k, &r.outputs, r.secret_outputs),
        }
        self.result.evidence.extend(r.evidence);
        self.result.secret_files.extend(r.secret_files);
    }

    fn put(
        &mut self,
        k: usize,
        outputs: &serde_json::Map<String, Value>,
        secrets: HashMap<String, SecretString>,
    ) {
        for (c, name) in self.names.iter().enumerate() {
            if let Some(v) = outputs.get(name.as_str()) {
                self.columns[c][k] = v.clone();
            }
        }
        for (name, s) in secrets {
            self.secret_columns
                .entry(name)
                .or_insert_with(|| vec![Value::Null; self.total])[k] =
                Value::from(secrecy::ExposeSecret::expose_secret(&s));
        }
    }

    fn finish(mut self, info: &StepInfo) -> StepResult {
        let total = self.total;
        for (c, name) in self.names.iter().enumerate() {
            if !info.secret_outputs.contains(name.as_str()) {
                self.result.outputs.insert(
                    (*name).clone(),
                    Value::Array(std::mem::take(&mut self.columns[c])),
                );
            }
        }
        for (name, col) in self.secret_columns {
            self.result
                .secret_outputs
                .insert(name, SecretString::from(Value::Array(col).to_string()));
        }
        if self.interrupted > 0 {
            self.result.status = Some(StepStatus::Interrupted);
            self.result.reason = Some(format!(
                "interrupted: {} of {total} items not started, {} failed",
                self.interrupted, self.failed
            ));
        } else if self.failed > 0 {
            self.result.status = Some(StepStatus::Failed);
            self.result.reason = Some(format!(
                "{} of {total} items failed; first: {}",
                self.failed,
                self.first_error.unwrap_or_default()
            ));
        } else if !self.carried.is_empty() {
            self.result.reason = Some(format!(
                "{} of {total} items were finished by an earlier run and not sent again",
                self.carried.len()
            ));
        }
        self.result
    }
}
