//! The run's containment verdict, from its containment checks only.
//!
//! A runbook's check steps (`api_keys.check_revoked`, `auth.check_sessions_ended`) ask ESUS
//! whether the credential is dead; the run is `contained` only when every check that applied
//! passed. A check that failed, was declined, interrupted or never reached leaves the run
//! `not contained`, whatever else succeeded: the absence of an error proves nothing.

use serde::Serialize;

use super::step_report::{StepReport, status_words};
use crate::event::{CheckFinding, ContainmentState, StepStatus};
use crate::runbook::Validated;

/// What the run proved.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Containment {
    /// contained, not-contained or not-applicable.
    pub state: ContainmentState,
    /// One line for people, leading every summary.
    pub summary: String,
    /// Each check and what it found.
    pub checks: Vec<CheckFinding>,
    /// Milliseconds from the start to the moment the last check proved containment.
    pub time_to_containment_ms: Option<u64>,
    /// When containment was proven (RFC 3339).
    pub at: Option<String>,
    /// What it does not cover: containment steps an absent input turned off or ran without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_covered: Vec<String>,
}

/// How a step ended, as containment needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    /// Its report line, when it ended.
    pub report: Option<&'a StepReport>,
    /// Skipped by its own false `when` (not for want of a step it needs).
    pub not_needed: bool,
}

/// Judges containment from how each step ended; `proven` is (ms since start, RFC 3339) of the
/// last check to pass.
pub fn assess(
    valid: &Validated,
    ended: &[Ended<'_>],
    proven: Option<(u64, String)>,
) -> Containment {
    let is_check = |i: usize| valid.steps[i].action.check;
    let checks: Vec<usize> = (0..valid.steps.len()).filter(|&i| is_check(i)).collect();
    if checks.is_empty() {
        return without_checks(valid, ended);
    }
    let mut findings = Vec::new();
    let mut held = Vec::new();
    let mut broken = Vec::new();
    for &i in &checks {
        let id = &valid.runbook.steps[i].id;
        let e = ended[i];
        let status = e.report.map_or(StepStatus::Skipped, |r| r.status);
        let detail = detail(e, id);
        findings.push(CheckFinding {
            step: id.clone(),
            status,
            detail: detail.clone(),
        });
        match status {
            StepStatus::Ok => held.push(detail),
            StepStatus::Skipped if e.not_needed => {}
            _ => broken.push(detail),
        }
    }
    let contained = broken.is_empty() && !held.is_empty();
    let (state, summary) = if contained {
        (ContainmentState::Contained, held.join("; "))
    } else if broken.is_empty() {
        (
            ContainmentState::NotApplicable,
            "no containment check applied (each one's condition was false)".into(),
        )
    } else {
        let mut why = broken.join("; ");
        let undone = undone_actions(valid, ended);
        if !undone.is_empty() {
            why.push_str(&format!("; not done: {}", undone.join(", ")));
        }
        (ContainmentState::NotContained, why)
    };
    let (ms, at) = match (contained, proven) {
        (true, Some((ms, at))) => (Some(ms), Some(at)),
        _ => (None, None),
    };
    Containment {
        state,
        summary,
        checks: findings,
        time_to_containment_ms: ms,
        at,
        not_covered: Vec::new(),
    }
}

/// What a check found, or why it could not tell.
fn detail(e: Ended<'_>, id: &str) -> String {
    let Some(r) = e.report else {
        return format!("not verified: `{id}` never ran");
    };
    match (&r.finding, r.status) {
        (Some(f), _) => f.clone(),
        (None, StepStatus::Interrupted) => {
            format!("not verified: `{id}` did not run (the run was interrupted)")
        }
        (None, StepStatus::Skipped | StepStatus::Declined) => format!(
            "not verified: `{id}` did not run ({})",
            r.reason.as_deref().unwrap_or("the run stopped")
        ),
        (None, s) => match &r.reason {
            Some(reason) => format!("`{id}` {}: {reason}", status_words(s)),
            None => format!("`{id}` {}", status_words(s)),
        },
    }
}

/// A runbook without checks makes no claim — even when it takes access away, nothing it did was
/// proven, so it says so instead of "contained".
fn without_checks(valid: &Validated, ended: &[Ended<'_>]) -> Containment {
    let acted = (0..valid.steps.len()).any(|i| {
        valid.steps[i].action.contains
            && ended[i].report.is_some_and(|r| r.status == StepStatus::Ok)
    });
    let summary = if acted {
        "this runbook takes access away but has no containment check, so nothing was proven (add api_keys.check_revoked or auth.check_sessions_ended to prove it)"
    } else {
        "this runbook makes no containment claim"
    };
    Containment {
        state: ContainmentState::NotApplicable,
        summary: summary.to_string(),
        checks: Vec::new(),
        time_to_containment_ms: None,
        at: None,
        not_covered: Vec::new(),
    }
}

/// Containment actions that did not succeed, by display name and what became of them.
fn undone_actions(valid: &Validated, ended: &[Ended<'_>]) -> Vec<String> {
    (0..valid.steps.len())
        .filter(|&i| valid.steps[i].action.contains && !ended[i].not_needed)
        .filter_map(|i| {
            let r = ended[i].report?;
            (r.status != StepStatus::Ok).then(|| format!("{} ({})", r.name, status_words(r.status)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StepStatus;

    fn valid() -> Validated {
        let text = r#"
version: 1
name: t
inputs:
  key: {type: string, required: true}
steps:
  - id: delete
    name: Delete the key
    action: api_keys.delete
    with: {id: "{{ inputs.key }}"}
  - id: check
    name: Prove it
    action: api_keys.check_revoked
    with: {id: "{{ inputs.key }}"}
"#;
        crate::runbook::check(text).expect("valid")
    }

    fn report(id: &str, status: StepStatus, finding: Option<&str>) -> StepReport {
        StepReport {
            id: id.into(),
            name: format!("step {id}"),
            status,
            reason: None,
            duration_ms: 0,
            outputs: Default::default(),
            evidence: Vec::new(),
            secret_files: Vec::new(),
            finding: finding.map(str::to_string),
            expected: None,
        }
    }

    #[test]
    fn only_a_passing_check_makes_a_run_contained() {
        let v = valid();
        let delete = report("delete", StepStatus::Ok, None);
        let check = report("check", StepStatus::Ok, Some("key k-1 is gone"));
        let ended = [
            Ended {
                report: Some(&delete),
                not_needed: false,
            },
            Ended {
                report: Some(&check),
                not_needed: false,
            },
        ];
        let c = assess(&v, &ended, Some((4200, "2026-12-02T03:12:09Z".into())));
        assert_eq!(c.state, ContainmentState::Contained);
        assert_eq!(c.summary, "key k-1 is gone");
        assert_eq!(c.time_to_containment_ms, Some(4200));

        let failed = report("check", StepStatus::Failed, Some("key k-1 is still active"));
        let ended = [
            Ended {
                report: Some(&delete),
                not_needed: false,
            },
            Ended {
                report: Some(&failed),
                not_needed: false,
            },
        ];
        let c = assess(&v, &ended, None);
        assert_eq!(c.state, ContainmentState::NotContained);
        assert!(c.summary.contains("still active"), "{}", c.summary);

        let declined = report("delete", StepStatus::Declined, None);
        let ended = [
            Ended {
                report: Some(&declined),
                not_needed: false,
            },
            Ended {
                report: None,
                not_needed: false,
            },
        ];
        let c = assess(&v, &ended, Some((1, "x".into())));
        assert_eq!(
            c.state,
            ContainmentState::NotContained,
            "a check that never ran proves nothing"
        );
        assert!(
            c.summary.contains("never ran") && c.summary.contains("step delete (declined)"),
            "{}",
            c.summary
        );
        assert_eq!(c.time_to_containment_ms, None);
    }
}
