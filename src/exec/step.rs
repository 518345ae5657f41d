//! Running one planned step: the dispatch on what its plan says it sends. What every action
//! shares is in [`super::outcome`]; one request in [`super::single`]; paged audit pulls, fan-outs,
//! containment checks and lost-answer recovery in their own modules ([`super::paged`],
//! [`super::fanout`], [`super::checks`], [`super::settle`]).

use std::sync::Arc;
use std::time::Instant;

pub use super::outcome::StepResult;
use super::shared::Shared;
use crate::event::StepStatus;
use crate::plan::Work;
use crate::plan::context::Context;

/// How a planned step is run, beyond what its plan says.
#[derive(Debug, Default)]
pub struct Running {
    /// An earlier leg sent this step's request that is not safe to repeat and recorded no
    /// answer that settles it: its exact claim is checked before anything is sent.
    pub lost: Option<super::resume::LostWrite>,
    /// What an earlier leg did with a fan-out's items (their lost answers).
    pub batch: super::resume::BatchProgress,
    /// A containment check run after the run stopped: it must only read (a stolen refresh
    /// token is not tried: trying it would use it up).
    pub after_stop: bool,
}

/// Runs step `i` as planned: its work is what the plan decided, sent as it is.
pub async fn execute(
    shared: Arc<Shared>,
    ctx: Arc<Context>,
    i: usize,
    work: Work,
    how: Running,
) -> StepResult {
    let started = Instant::now();
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let mut result = match work {
        Work::One(req) if info.action.paged => super::paged::pull(&shared, &ctx, i, req).await,
        Work::One(req) => match how.lost {
            Some(lost) => {
                let lost = super::recover::Lost {
                    index: i,
                    req: &req,
                    item: None,
                    why: "the run that sent it stopped before an answer was recorded",
                    before: lost.before,
                    known: lost.known,
                };
                super::settle::recover(&shared, &ctx, lost).await
            }
            None => super::single::one(&shared, &ctx, i, req, None).await,
        },
        Work::Many(batch) => super::fanout::many(&shared, &ctx, i, batch, how.batch).await,
        Work::Revoked { get, probe } => {
            super::checks::revoked(&shared, &ctx, step, info, get, probe).await
        }
        Work::Sessions(check) => {
            super::checks::sessions(&shared, &ctx, step, info, check, !how.after_stop).await
        }
        Work::Pending(_) | Work::Nothing => {
            StepResult::failed(format!("`{}` has nothing known to send", step.id))
        }
    };
    if result.status.is_none() {
        result.status = Some(StepStatus::Ok);
    }
    result.duration = started.elapsed();
    result
}
