//! A lost answer, settled as the action's catalogue entry (`Recovery`) says: by its exact claim
//! ([`super::claims`]), by sending it again when that is safe, or left to a person
//! ([`super::recover`]).

// A step that cannot go on ends with its `StepResult`: it is the error, built once per step.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use super::claims;
use super::outcome::{self, StepResult};
use super::recover::{Lost, resend, unknown};
use super::shared::Shared;
use crate::esus::actions::Recovery;
use crate::plan::context::Context;

/// Recovers a lost request, as the action's catalogue entry says.
pub(super) async fn recover(shared: &Arc<Shared>, ctx: &Context, lost: Lost<'_>) -> StepResult {
    let info = &shared.valid.steps[lost.index];
    let outcome = match info.recovery {
        Recovery::ClaimName => claims::created_key(shared, ctx, &lost).await,
        Recovery::SupersededBy => claims::rotated(shared, ctx, &lost).await,
        Recovery::ClaimReason => claims::subscription(shared, &lost).await,
        Recovery::Resend => {
            let note = format!("its first answer was lost ({}); sent again", lost.why);
            resend(shared, &lost, note).await
        }
        Recovery::Unknown => {
            let saw = format!(
                "`{}` has no exact claim ESUS could be asked about",
                info.action.name
            );
            unknown(shared, &lost, &saw).await
        }
    };
    match outcome {
        Ok((resp, id, note)) => {
            let mut r =
                outcome::finish_answer(shared, ctx, lost.index, &resp, &id, lost.item).await;
            if info.recovery == Recovery::ClaimName
                && r.final_status() == crate::event::StepStatus::Ok
            {
                claims::settle_claim(shared, ctx, lost.index, lost.item, lost.req, &resp, &mut r)
                    .await;
            }
            r.reason.get_or_insert(note);
            r
        }
        Err(r) => r,
    }
}
