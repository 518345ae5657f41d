//! Before a step that takes access away, the checks that will prove it take their "before": the
//! key is read (the incident sees it exist) and the compromised credential is tried (ESUS accepts
//! it, or does not). A check's refusal later proves something only against this — so the
//! baseline is taken from the check's own plan, the same requests the check sends after.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::outcome::{exchange, send_policy};
use super::shared::Shared;
use crate::esus::request::{ApiRequest, Auth};
use crate::plan::context::Context;
use crate::plan::{Condition, Work};

/// Takes the baseline of every check that will prove step `i` (a check that needs it, directly or
/// not) and has none yet, when the check's requests are known now. A baseline that cannot be
/// taken (its requests read steps not run yet, ESUS did not answer) is not retried: the check
/// then says "not proven" and why.
pub(super) async fn before(
    shared: &Arc<Shared>,
    ctx: &Context,
    i: usize,
    taken: &mut HashSet<usize>,
) {
    let valid = shared.valid.clone();
    if !valid.steps[i].action.contains {
        return;
    }
    for c in 0..valid.steps.len() {
        if !valid.steps[c].action.check || taken.contains(&c) || !valid.graph.is_ancestor(i, c) {
            continue;
        }
        let plan = shared.planner.step(ctx, c, &BTreeSet::new());
        if matches!(plan.condition, Condition::Skipped(_)) || !plan.problems.is_empty() {
            continue;
        }
        let reads = match plan.work {
            Work::Revoked { get, probe } => std::iter::once(get).chain(probe).collect(),
            Work::Sessions(check) => check
                .token
                .map(|t| ApiRequest {
                    auth: Auth::Bearer(t),
                    ..ApiRequest::get("/auth/sessions")
                })
                .into_iter()
                .collect(),
            _ => Vec::<ApiRequest>::new(),
        };
        if reads.is_empty() {
            continue;
        }
        taken.insert(c);
        let step = &valid.runbook.steps[c];
        let info = &valid.steps[c];
        for req in reads {
            let policy = super::send::SendPolicy {
                probe: !matches!(req.auth, Auth::Operator),
                ..send_policy(step, true)
            };
            // What the answer establishes is recorded as it arrives (`witness`); a failure here
            // only leaves the check without its "before".
            let _ = exchange(shared, step, info, &req, policy).await;
        }
    }
}
