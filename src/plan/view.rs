//! A plan as people (and `--output json`) read it: every step, what it would send, how it is
//! approved, and why it might not run.

use serde::Serialize;

use super::planner::Planner;
use super::step_plan::{Approval, StepPlan, Work};
use crate::esus::actions::Effect;
use crate::event::RequestView;

/// Requests of a fan-out listed in a plan (every one counts in the approval digest).
const LISTED: usize = 50;

/// One step of a plan.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlannedStep {
    /// Step id.
    pub id: String,
    /// Step name.
    pub name: String,
    /// Whether the action changes ESUS's state: `read`, `write` or `destructive`.
    pub effect: &'static str,
    /// Whether a live run would ask first.
    pub confirm: bool,
    /// For `confirm: typed`, what the operator types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed: Option<String>,
    /// Conditions and fan-out notes.
    pub notes: Vec<String>,
    /// Why the step cannot run, found before anything was sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The requests a live run would send (for a fan-out, the first ones); templates where the
    /// request reads steps that have not run (`<rotate.new_key_id>`).
    pub requests: Vec<RequestView>,
    /// The requests read answers of steps not run yet: templates (`<new-key-id>`), not exact.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub templated: bool,
    /// Requests it sends after these, from their answers (a created key's rename).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<RequestView>,
    /// Fan-out size when known.
    pub items: Option<usize>,
    /// For a signed plan: the digest of each request of the fan-out (every item, not only the
    /// first listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items_sha256: Vec<String>,
    /// `--dry-run=reads` sent this GET for real.
    pub sent: bool,
    /// An earlier leg of the incident finished it: it is not sent again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

impl PlannedStep {
    /// How a plan shows one step.
    pub fn of(planner: &Planner, plan: &StepPlan) -> PlannedStep {
        let requests = match &plan.work {
            Work::One(r) => vec![planner.view(r)],
            Work::Revoked { get, probe } => std::iter::once(get)
                .chain(probe.as_ref())
                .map(|r| planner.view(r))
                .collect(),
            Work::Sessions(_) => Vec::new(),
            Work::Many(_) => Vec::new(),
            Work::Pending(views) => views.clone(),
            Work::Nothing => Vec::new(),
        };
        PlannedStep {
            id: plan.id.clone(),
            name: plan.name.clone(),
            effect: match plan.effect {
                Effect::Read => "read",
                Effect::Write => "write",
                Effect::Destructive => "destructive",
            },
            confirm: plan.approval.asks(),
            typed: match &plan.approval {
                Approval::Typed { target, .. } => Some(target.clone()),
                _ => None,
            },
            notes: plan.notes.clone(),
            problems: plan.problems.clone(),
            requests,
            templated: matches!(plan.work, Work::Pending(_)),
            follow_ups: plan.follow_ups.clone(),
            items: match &plan.work {
                Work::Many(b) => Some(b.todo_len()),
                _ => None,
            },
            items_sha256: Vec::new(),
            sent: false,
            done: false,
        }
    }

    /// Lists the first requests of a fan-out, rendered by the planner's one item function —
    /// and, with `bind`, the digest of every one of them.
    pub fn list_items(
        &mut self,
        planner: &Planner,
        ctx: &super::context::Context,
        plan: &StepPlan,
        bind: bool,
    ) {
        let Work::Many(b) = &plan.work else {
            return;
        };
        let take = if bind { usize::MAX } else { LISTED };
        for (k, item) in b.todo().take(take) {
            match planner.item_request(ctx, plan.index, k, item) {
                Ok(r) => {
                    let view = planner.view(&r);
                    if bind {
                        self.items_sha256
                            .push(crate::transcript::request_digest(&view));
                    }
                    if self.requests.len() < LISTED {
                        self.requests.push(view);
                    }
                }
                Err(e) => {
                    self.problems.push(e);
                    if self.problems.len() >= LISTED {
                        break;
                    }
                }
            }
        }
    }
}

/// A plan as text for stdout.
pub fn render_text(steps: &[PlannedStep]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("DRY RUN — nothing below was sent");
    if steps.iter().any(|s| s.sent) {
        out.push_str(" (except the read-only GETs marked \"sent\")");
    }
    out.push('\n');
    for (n, s) in steps.iter().enumerate() {
        let mark = if s.effect == "destructive" {
            " [destructive]"
        } else {
            ""
        };
        let confirm = match (&s.typed, s.confirm) {
            (Some(t), _) => format!(" [asks first: type {t}]"),
            (None, true) => " [asks first]".to_string(),
            (None, false) => String::new(),
        };
        let done = if s.done {
            " [done by an earlier leg]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\n{}. {} — {}{mark}{confirm}{done}",
            n + 1,
            s.id,
            s.name
        );
        for p in &s.problems {
            let _ = writeln!(out, "   ! cannot run: {p}");
        }
        for note in &s.notes {
            let _ = writeln!(out, "   # {note}");
        }
        for r in s.requests.iter().chain(&s.follow_ups) {
            let _ = writeln!(out, "   {} {}", r.method, r.url);
            for (k, v) in &r.headers {
                let _ = writeln!(out, "     {k}: {v}");
            }
            if let Some(b) = &r.body {
                let _ = writeln!(out, "     {b}");
            }
        }
        if let Some(n) = s.items.filter(|&n| n > s.requests.len()) {
            let _ = writeln!(out, "   … and {} more", n - s.requests.len());
        }
    }
    out
}
