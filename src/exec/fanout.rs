//! `foreach`: one step fanned out over many items, `concurrency` at a time, each item its own
//! task so rendering, recording and parsing spread over the runtime's threads. Memory stays flat
//! in the number of items except for the declared outputs.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::Value;

use super::context::Context;
use super::event::StepStatus;
use super::render;
use super::shared::Shared;
use super::step::{self, StepResult};
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;

/// Runs every item of a `foreach` step and gathers their outputs in item order.
pub(super) async fn many(
    shared: &Arc<Shared>,
    ctx: &Arc<Context>,
    step: &Step,
    info: &StepInfo,
    items: Vec<Value>,
) -> StepResult {
    let total = items.len();
    shared.progress.items_started(&step.id, total);
    let concurrency = step.concurrency.unwrap_or(1).max(1) as usize;
    let index = shared.valid.index_of(&step.id).unwrap_or(0);
    let per_item = futures::stream::iter(items.into_iter().enumerate())
        .map(|(k, item)| {
            let task = tokio::spawn(run_item(shared.clone(), ctx.clone(), index, k, item));
            async move {
                let r = task
                    .await
                    .unwrap_or_else(|e| StepResult::failed(format!("item {k}: {e}")));
                (k, r)
            }
        })
        .buffer_unordered(concurrency);
    futures::pin_mut!(per_item);
    let mut batch = Batch::new(step, total);
    while let Some((k, r)) = per_item.next().await {
        batch.add(k, r);
    }
    batch.finish(info)
}

async fn run_item(
    shared: Arc<Shared>,
    ctx: Arc<Context>,
    index: usize,
    k: usize,
    item: Value,
) -> StepResult {
    let step = &shared.valid.runbook.steps[index];
    let info = &shared.valid.steps[index];
    if shared.interrupt.count() > 0 {
        return StepResult {
            status: Some(StepStatus::Interrupted),
            ..StepResult::default()
        };
    }
    let r = match render::request(&shared.engine, &ctx, step, info, Some(&item)) {
        Ok(req) => step::one(&shared, &ctx, step, info, req, Some((k, &item))).await,
        Err(e) => StepResult::failed(format!("item {k}: {e}")),
    };
    shared
        .progress
        .item_finished(&step.id, r.final_status() == StepStatus::Ok);
    r
}

/// The items' results, gathered into the step's.
struct Batch<'a> {
    names: Vec<&'a String>,
    columns: Vec<Vec<Value>>,
    secret_columns: HashMap<String, Vec<Value>>,
    result: StepResult,
    failed: usize,
    interrupted: usize,
    first_error: Option<String>,
    total: usize,
}

impl<'a> Batch<'a> {
    fn new(step: &'a Step, total: usize) -> Self {
        let names: Vec<&String> = step.outputs.keys().collect();
        Batch {
            columns: vec![vec![Value::Null; total]; names.len()],
            names,
            secret_columns: HashMap::new(),
            result: StepResult::default(),
            failed: 0,
            interrupted: 0,
            first_error: None,
            total,
        }
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
            _ => {
                for (c, name) in self.names.iter().enumerate() {
                    if let Some(v) = r.outputs.get(name.as_str()) {
                        self.columns[c][k] = v.clone();
                    }
                }
                for (name, s) in r.secret_outputs {
                    self.secret_columns
                        .entry(name)
                        .or_insert_with(|| vec![Value::Null; self.total])[k] =
                        Value::from(secrecy::ExposeSecret::expose_secret(&s));
                }
            }
        }
        self.result.evidence.extend(r.evidence);
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
        }
        self.result
    }
}
