//! Who approves destructive steps: the operator at a prompt, or flags given in advance.
//!
//! The confirmer is a trait because it is a side-effect seam: the terminal implementation lives
//! under `cli/`, tests use scripted ones, and an unattended run never prompts at all.

use std::collections::BTreeSet;

use secrecy::SecretString;

use super::report::MissingApproval;
use crate::esus::actions::Effect;
use crate::event::{ApprovalSource, RequestView};
use crate::runbook::validate::{ConfirmMode, StepInfo, Validated};

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
    /// Decides for one step.
    pub fn decide(&self, id: &str, mode: &ConfirmMode) -> Decision {
        match mode {
            ConfirmMode::No => Decision::Approved(ApprovalSource::NotRequired),
            _ if self.approve.contains(id) => Decision::Approved(ApprovalSource::Approve),
            ConfirmMode::Ask(_) if self.yes => Decision::Approved(ApprovalSource::AssumeYes),
            _ if self.interactive => Decision::Ask,
            _ => Decision::Missing,
        }
    }

    /// The confirmation a step really gets: a destructive step is always asked (or approved in
    /// advance), whatever its runbook says — validate refuses `confirm: false` there, and this is
    /// the same rule at run time, so no other path to the executor can switch it off.
    pub fn effective(info: &StepInfo) -> ConfirmMode {
        match &info.confirm {
            ConfirmMode::No if info.effect == Effect::Destructive => ConfirmMode::Ask(None),
            other => other.clone(),
        }
    }

    /// Steps that need an approval this policy cannot give, among those that `might_run`
    /// (checked before anything is sent; a step whose condition is only known at run time is
    /// judged when it is reached).
    pub fn missing(
        &self,
        valid: &Validated,
        might_run: impl Fn(usize) -> bool,
    ) -> Vec<MissingApproval> {
        valid
            .runbook
            .steps
            .iter()
            .zip(&valid.steps)
            .enumerate()
            .filter(|(i, (s, info))| {
                self.decide(&s.id, &Self::effective(info)) == Decision::Missing && might_run(*i)
            })
            .map(|(_, (s, info))| Self::missing_one(&s.id, &Self::effective(info)))
            .collect()
    }

    /// What an unattended run needs to approve step `id`.
    pub fn missing_one(id: &str, mode: &ConfirmMode) -> MissingApproval {
        let typed = *mode == ConfirmMode::Typed;
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

    #[test]
    fn typed_steps_need_approve_by_name_even_with_yes() {
        let yes = ApprovalPolicy {
            yes: true,
            ..ApprovalPolicy::default()
        };
        assert_eq!(yes.decide("rotate", &ConfirmMode::Typed), Decision::Missing);
        assert_eq!(
            yes.decide("rotate", &ConfirmMode::Ask(None)),
            Decision::Approved(ApprovalSource::AssumeYes)
        );
        let named = ApprovalPolicy {
            approve: ["rotate".to_string()].into(),
            ..ApprovalPolicy::default()
        };
        assert_eq!(
            named.decide("rotate", &ConfirmMode::Typed),
            Decision::Approved(ApprovalSource::Approve)
        );
        assert_eq!(
            named.decide("delete", &ConfirmMode::Ask(None)),
            Decision::Missing
        );
        let person = ApprovalPolicy {
            interactive: true,
            yes: true,
            ..ApprovalPolicy::default()
        };
        assert_eq!(person.decide("rotate", &ConfirmMode::Typed), Decision::Ask);
        assert_eq!(
            person.decide("x", &ConfirmMode::No),
            Decision::Approved(ApprovalSource::NotRequired)
        );
    }

    fn valid(text: &str) -> Validated {
        crate::runbook::check(text).expect("valid runbook")
    }

    const TWO: &str = "version: 1\nname: t\nsteps:\n  - {id: delete, name: D, action: api_keys.delete, with: {id: k-1}}\n  - {id: cut, name: C, action: admin.remove_user, with: {id: u-1}, confirm: typed}\n";

    #[test]
    fn a_destructive_step_is_always_asked_whatever_its_runbook_says() {
        let mut v = valid(TWO);
        v.steps[0].confirm = ConfirmMode::No;
        assert_eq!(
            ApprovalPolicy::effective(&v.steps[0]),
            ConfirmMode::Ask(None)
        );
        let unattended = ApprovalPolicy::default();
        let missing = unattended.missing(&v, |_| true);
        assert!(
            missing.iter().any(|m| m.step == "delete"),
            "no `confirm: false` slips past: {missing:?}"
        );
    }

    #[test]
    fn steps_that_change_nothing_or_only_add_keep_their_runbooks_confirmation() {
        let v = valid(
            "version: 1\nname: t\nsteps:\n  - {id: read, name: R, action: api_keys.get, with: {id: k-1}}\n  - {id: add, name: A, action: api_keys.create, with: {name: n, scopes: [Patient.read]}}\n  - {id: ask, name: Q, action: api_keys.get, with: {id: k-1}, confirm: true}\n",
        );
        assert_eq!(v.steps[0].effect, Effect::Read);
        assert_eq!(v.steps[1].effect, Effect::Write);
        assert_eq!(ApprovalPolicy::effective(&v.steps[0]), ConfirmMode::No);
        assert_eq!(ApprovalPolicy::effective(&v.steps[1]), ConfirmMode::No);
        assert_eq!(
            ApprovalPolicy::effective(&v.steps[2]),
            ConfirmMode::Ask(None),
            "an explicit confirm is kept"
        );
        let unattended = ApprovalPolicy::default();
        let missing: Vec<String> = unattended
            .missing(&v, |_| true)
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
        let m = ApprovalPolicy::missing_one("delete", &ConfirmMode::Ask(None));
        assert_eq!(m.step, "delete");
        assert!(!m.typed);
        assert_eq!(m.approve_with, "--yes or --approve delete");
        let t = ApprovalPolicy::missing_one("cut", &ConfirmMode::Typed);
        assert!(t.typed);
        assert_eq!(
            t.approve_with,
            "--approve cut (typed: --yes does not approve it)"
        );
    }

    #[test]
    fn unattended_runs_report_every_missing_approval_and_typed_ones_need_their_name() {
        let v = valid(TWO);
        let yes = ApprovalPolicy {
            yes: true,
            ..ApprovalPolicy::default()
        };
        let missing = yes.missing(&v, |_| true);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].step, "cut");
        assert!(missing[0].typed && missing[0].approve_with.contains("--approve cut"));
        assert!(
            yes.missing(&v, |i| i != 1).is_empty(),
            "a step that will not run is not judged"
        );
        let named = ApprovalPolicy {
            yes: true,
            approve: ["cut".to_string(), "nope".to_string()].into(),
            ..ApprovalPolicy::default()
        };
        assert!(named.missing(&v, |_| true).is_empty());
        assert_eq!(named.unknown_steps(&v), ["nope"]);
        assert!(yes.unknown_steps(&v).is_empty());
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
