//! Who approves destructive steps: the operator at a prompt, or flags given in advance.
//!
//! The confirmer is a trait because it is a side-effect seam: the terminal implementation lives
//! under `cli/`, tests use scripted ones, and an unattended run never prompts at all.

use std::collections::BTreeSet;

use secrecy::SecretString;

use super::report::MissingApproval;
use crate::event::{ApprovalSource, RequestView};
use crate::plan::{Approval, Condition, StepPlan};
use crate::runbook::validate::Validated;

/// What the operator is asked.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The step id.
    pub step: String,
    /// The step's display name.
    pub name: String,
    /// The question (runbook message or a default).
    pub message: String,
    /// The exact requests that will be sent (for a foreach, the first ones).
    pub requests: Vec<RequestView>,
    /// How many requests in all (foreach batches).
    pub total: usize,
    /// For `typed`: the text the operator must type.
    pub typed: Option<String>,
    /// A drill: prompts are marked so nobody mistakes it for production.
    pub drill: bool,
}

/// Answers prompts. Implementations must show one prompt at a time.
pub trait Confirmer: Send + Sync {
    /// Asks; `Ok(true)` approves.
    fn confirm(&self, prompt: &Prompt) -> std::io::Result<bool>;

    /// Asks for a fresh operator token after the old one expired (interactive only).
    fn new_token(&self) -> Option<SecretString> {
        None
    }
}

/// A confirmer for runs that must never prompt: every question is a "no".
#[derive(Debug, Default, Clone, Copy)]
pub struct NeverPrompt;

impl Confirmer for NeverPrompt {
    fn confirm(&self, _prompt: &Prompt) -> std::io::Result<bool> {
        Ok(false)
    }
}

/// Approvals given before the run.
#[derive(Debug, Clone, Default)]
pub struct ApprovalPolicy {
    /// A person is at a terminal and may be asked.
    pub interactive: bool,
    /// `--yes`: approve every `confirm: true`/message step.
    pub yes: bool,
    /// `--approve STEP_ID`: approve these steps (typed ones included).
    pub approve: BTreeSet<String>,
    /// `run --plan`: a signed plan approves every step, for exactly the requests it allows.
    pub plan: Option<std::sync::Arc<super::plan_gate::PlanGate>>,
    /// `run --policy`: a signed policy approves the steps it names.
    pub policy: Option<std::sync::Arc<super::policy::Policy>>,
}

/// How a step gets its approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Approved in advance, by this source.
    Approved(ApprovalSource),
    /// Ask the operator.
    Ask,
    /// Needs an approval that an unattended run does not have.
    Missing,
}

impl ApprovalPolicy {
    /// Decides for one step, from how its plan says it is approved.
    pub fn decide(&self, id: &str, approval: &Approval) -> Decision {
        match approval {
            _ if self.plan.is_some() => Decision::Approved(ApprovalSource::Plan),
            _ if self.policy.as_ref().is_some_and(|p| p.approve.contains(id)) => {
                Decision::Approved(ApprovalSource::Policy)
            }
            Approval::NotAsked { .. } => Decision::Approved(ApprovalSource::NotRequired),
            _ if self.approve.contains(id) => Decision::Approved(ApprovalSource::Approve),
            Approval::Ask { .. } if self.yes => Decision::Approved(ApprovalSource::AssumeYes),
            _ if self.interactive => Decision::Ask,
            _ => Decision::Missing,
        }
    }

    /// Steps of the plan that need an approval this policy cannot give, among those that will
    /// run as far as can be told before anything is sent (a step whose condition reads earlier
    /// steps is judged when it is reached).
    pub fn missing(&self, plans: &[StepPlan]) -> Vec<MissingApproval> {
        plans
            .iter()
            .filter(|p| p.condition == Condition::Runs)
            .filter(|p| self.decide(&p.id, &p.approval) == Decision::Missing)
            .map(|p| Self::missing_one(&p.id, p.approval.typed()))
            .collect()
    }

    /// What an unattended run needs to approve step `id`.
    pub fn missing_one(id: &str, typed: bool) -> MissingApproval {
        MissingApproval {
            step: id.to_string(),
            typed,
            approve_with: if typed {
                format!("--approve {id} (typed: --yes does not approve it)")
            } else {
                format!("--yes or --approve {id}")
            },
        }
    }

    /// `--approve` names that are not steps of the runbook.
    pub fn unknown_steps(&self, valid: &Validated) -> Vec<String> {
        self.approve
            .iter()
            .filter(|id| valid.index_of(id).is_none())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ask() -> Approval {
        Approval::Ask {
            message: "m".into(),
        }
    }

    fn typed() -> Approval {
        Approval::Typed {
            message: "m".into(),
            target: "k-1".into(),
        }
    }

    #[test]
    fn typed_steps_need_approve_by_name_even_with_yes() {
        let yes = ApprovalPolicy {
            yes: true,
            ..ApprovalPolicy::default()
        };
        assert_eq!(yes.decide("rotate", &typed()), Decision::Missing);
        assert_eq!(
            yes.decide("rotate", &ask()),
            Decision::Approved(ApprovalSource::AssumeYes)
        );
        let named = ApprovalPolicy {
            approve: ["rotate".to_string()].into(),
            ..ApprovalPolicy::default()
        };
        assert_eq!(
            named.decide("rotate", &typed()),
            Decision::Approved(ApprovalSource::Approve)
        );
        assert_eq!(named.decide("delete", &ask()), Decision::Missing);
        let person = ApprovalPolicy {
            interactive: true,
            yes: true,
            ..ApprovalPolicy::default()
        };
        assert_eq!(person.decide("rotate", &typed()), Decision::Ask);
        assert_eq!(
            person.decide("x", &Approval::NotAsked { writes: true }),
            Decision::Approved(ApprovalSource::NotRequired)
        );
    }

    fn plans(text: &str) -> Vec<StepPlan> {
        let valid = Arc::new(crate::runbook::check(text).expect("valid runbook"));
        let base = url::Url::parse("http://127.0.0.1:1").expect("url");
        let planner = crate::plan::Planner::new(valid, base, 0, "incident");
        let ctx = crate::plan::context::Context::new(&crate::plan::inputs::Inputs::default());
        planner.ahead(&ctx, &Default::default())
    }

    const TWO: &str = "version: 1\nname: t\nsteps:\n  - {id: delete, name: D, action: api_keys.delete, with: {id: k-1}}\n  - {id: cut, name: C, action: admin.remove_user, with: {id: u-1}, confirm: typed}\n";

    #[test]
    fn a_destructive_step_is_always_asked_whatever_its_runbook_says() {
        let mut valid = crate::runbook::check(TWO).expect("valid runbook");
        valid.steps[0].confirm = crate::runbook::validate::ConfirmMode::No;
        let base = url::Url::parse("http://127.0.0.1:1").expect("url");
        let planner = crate::plan::Planner::new(Arc::new(valid), base, 0, "incident");
        let ctx = crate::plan::context::Context::new(&crate::plan::inputs::Inputs::default());
        let plans = planner.ahead(&ctx, &Default::default());
        assert!(plans[0].approval.asks(), "{:?}", plans[0].approval);
        let missing = ApprovalPolicy::default().missing(&plans);
        assert!(
            missing.iter().any(|m| m.step == "delete"),
            "no `confirm: false` slips past: {missing:?}"
        );
    }

    #[test]
    fn steps_that_change_nothing_or_only_add_keep_their_runbooks_confirmation() {
        let p = plans(
            "version: 1\nname: t\nsteps:\n  - {id: read, name: R, action: api_keys.get, with: {id: k-1}}\n  - {id: add, name: A, action: api_keys.create, with: {name: n, scopes: [Patient.read]}}\n  - {id: ask, name: Q, action: api_keys.get, with: {id: k-1}, confirm: true}\n",
        );
        assert_eq!(p[0].approval, Approval::NotAsked { writes: false });
        assert_eq!(p[1].approval, Approval::NotAsked { writes: true });
        assert!(p[2].approval.asks(), "an explicit confirm is kept");
        let missing: Vec<String> = ApprovalPolicy::default()
            .missing(&p)
            .into_iter()
            .map(|m| m.step)
            .collect();
        assert_eq!(
            missing,
            ["ask"],
            "only the step that asks needs an approval"
        );
    }

    #[test]
    fn an_untyped_missing_approval_is_satisfied_by_yes() {
        let m = ApprovalPolicy::missing_one("delete", false);
        assert_eq!(m.step, "delete");
        assert!(!m.typed);
        assert_eq!(m.approve_with, "--yes or --approve delete");
        let t = ApprovalPolicy::missing_one("cut", true);
        assert!(t.typed);
        assert_eq!(
            t.approve_with,
            "--approve cut (typed: --yes does not approve it)"
        );
    }

    #[test]
    fn unattended_runs_report_every_missing_approval_and_typed_ones_need_their_name() {
        let p = plans(TWO);
        let yes = ApprovalPolicy {
            yes: true,
            ..ApprovalPolicy::default()
        };
        let missing = yes.missing(&p);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].step, "cut");
        assert!(missing[0].typed && missing[0].approve_with.contains("--approve cut"));
        let named = ApprovalPolicy {
            yes: true,
            approve: ["cut".to_string(), "nope".to_string()].into(),
            ..ApprovalPolicy::default()
        };
        assert!(named.missing(&p).is_empty());
        let valid = crate::runbook::check(TWO).expect("valid");
        assert_eq!(named.unknown_steps(&valid), ["nope"]);
        assert!(yes.unknown_steps(&valid).is_empty());
    }

    #[test]
    fn a_typed_fan_out_types_the_number_of_requests() {
        let p = plans(
            "version: 1\nname: t\nsteps:\n  - {id: rm, name: R, action: api_keys.delete, foreach: \"['k-1','k-2','k-3']\", with: {id: \"{{ item }}\"}, confirm: typed}\n",
        );
        assert_eq!(
            p[0].approval,
            Approval::Typed {
                message: "Run `R` (api_keys.delete)?".into(),
                target: "3".into()
            }
        );
        let yes = ApprovalPolicy {
            yes: true,
            ..ApprovalPolicy::default()
        };
        assert_eq!(
            yes.missing(&p).len(),
            1,
            "--yes never approves a typed step"
        );
    }

    #[test]
    fn the_never_prompting_confirmer_never_approves_and_offers_no_token() {
        let p = Prompt {
            step: "delete".into(),
            name: "D".into(),
            message: "m".into(),
            requests: Vec::new(),
            total: 0,
            typed: None,
            drill: false,
        };
        assert!(!NeverPrompt.confirm(&p).expect("answers"));
        assert!(NeverPrompt.new_token().is_none());
    }
}
