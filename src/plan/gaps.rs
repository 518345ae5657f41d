//! What will not be done, and why: an optional input nobody gave (the compromised session's
//! token, the leaked secret) turns off the steps that read it, or leaves them running without it.
//! Said before the plan and in the result, and the containment line names what it does not cover
//! — the absence of a step is never a silent "contained".

use serde_json::Value;

use super::{Condition, StepPlan};
use crate::runbook::Validated;

/// One step an absent input changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The input nobody gave.
    pub input: String,
    /// The step's id.
    pub step: String,
    /// The step's display name.
    pub name: String,
    /// The step will not run (its condition reads the input and is false); otherwise it runs
    /// without the input.
    pub skipped: bool,
    /// The step takes access away or proves it gone: its absence narrows what "contained" means.
    pub containment: bool,
}

/// The steps of `plans` that an optional input absent from `inputs` (the inputs as displayed:
/// `null` when not given) turns off or runs without, in plan order.
pub fn gaps(
    valid: &Validated,
    inputs: &serde_json::Map<String, Value>,
    plans: &[StepPlan],
) -> Vec<Gap> {
    let absent: Vec<&String> = valid
        .runbook
        .inputs
        .iter()
        .filter(|(name, spec)| {
            !spec.required && inputs.get(name.as_str()).is_none_or(Value::is_null)
        })
        .map(|(name, _)| name)
        .collect();
    let mut out = Vec::new();
    for plan in plans {
        let step = &valid.runbook.steps[plan.index];
        let info = &valid.steps[plan.index];
        let when = step.when.as_deref().unwrap_or_default();
        let with = serde_json::to_string(&step.with).unwrap_or_default();
        let body = format!("{with} {}", step.foreach.as_deref().unwrap_or_default());
        let skipped = matches!(plan.condition, Condition::Skipped(_));
        for input in &absent {
            let read_by_when = mentions(when, input);
            if (skipped && read_by_when) || (!skipped && mentions(&body, input)) {
                out.push(Gap {
                    input: (*input).clone(),
                    step: plan.id.clone(),
                    name: plan.name.clone(),
                    skipped,
                    containment: info.action.check || info.action.contains,
                });
            }
        }
    }
    out
}

/// One sentence per absent input: what it turns off, or what runs without it.
pub fn sentences(gaps: &[Gap]) -> Vec<String> {
    let mut inputs: Vec<&str> = gaps.iter().map(|g| g.input.as_str()).collect();
    inputs.dedup();
    inputs.sort_unstable();
    inputs.dedup();
    inputs
        .into_iter()
        .map(|input| {
            let what: Vec<String> = gaps
                .iter()
                .filter(|g| g.input == input)
                .map(|g| {
                    if g.skipped {
                        format!("`{}` ({}) will NOT run", g.step, g.name)
                    } else {
                        format!("`{}` ({}) runs without it", g.step, g.name)
                    }
                })
                .collect();
            format!("no `{input}` given: {}", what.join("; "))
        })
        .collect()
}

/// What "contained" does not cover, from the gaps of containment steps.
pub fn not_covered(gaps: &[Gap]) -> Vec<String> {
    gaps.iter()
        .filter(|g| g.containment)
        .map(|g| {
            if g.skipped {
                format!(
                    "`{}` ({}) did not run: no `{}` given",
                    g.step, g.name, g.input
                )
            } else {
                format!("`{}` ({}) ran without `{}`", g.step, g.name, g.input)
            }
        })
        .collect()
}

/// Whether `text` reads `inputs.NAME` (not a longer name that starts the same).
fn mentions(text: &str, name: &str) -> bool {
    let needle = format!("inputs.{name}");
    text.match_indices(&needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Planner;
    use crate::plan::context::Context;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn plans(valid: &Arc<Validated>, inputs: &crate::plan::inputs::Inputs) -> Vec<StepPlan> {
        let base = url::Url::parse("https://esus.example").expect("url");
        let planner = Planner::new(valid.clone(), base, 10_000, "0123456789");
        planner.ahead(&Context::new(inputs), &BTreeSet::new())
    }

    #[test]
    fn an_absent_optional_input_names_the_steps_it_turns_off_or_runs_without() {
        let valid = Arc::new(
            crate::runbook::check(
                "version: 1\nname: t\ninputs:\n  key_id: {type: string, required: true}\n  session_token: {type: secret, description: the session}\n  leaked_secret: {type: secret}\n  session_token_2: {type: secret}\nsteps:\n  - {id: logout, name: Log out, action: auth.logout, when: inputs.session_token is not none, with: {token: '{{ inputs.session_token }}'}}\n  - {id: proof, name: Prove dead, action: api_keys.check_revoked, needs: [], with: {id: '{{ inputs.key_id }}', secret: '{{ inputs.leaked_secret }}'}}\n  - {id: read, name: Read, action: api_keys.get, needs: [], with: {id: '{{ inputs.key_id }}'}}\n",
            )
            .expect("valid"),
        );
        let mut given = crate::plan::inputs::Inputs::default();
        std::sync::Arc::make_mut(&mut given.display).insert("key_id".into(), Value::from("k-1"));
        for absent in ["session_token", "leaked_secret", "session_token_2"] {
            std::sync::Arc::make_mut(&mut given.display).insert(absent.into(), Value::Null);
        }
        let found = gaps(&valid, &given.display, &plans(&valid, &given));
        let seen: Vec<(&str, &str, bool)> = found
            .iter()
            .map(|g| (g.input.as_str(), g.step.as_str(), g.skipped))
            .collect();
        assert_eq!(
            seen,
            [
                ("session_token", "logout", true),
                ("leaked_secret", "proof", false)
            ],
            "`session_token_2` is read by nothing; `key_id` was given"
        );
        assert!(found.iter().all(|g| g.containment));
        let said = sentences(&found);
        assert_eq!(
            said,
            [
                "no `leaked_secret` given: `proof` (Prove dead) runs without it",
                "no `session_token` given: `logout` (Log out) will NOT run",
            ]
        );
        assert_eq!(not_covered(&found).len(), 2);
        // Given, nothing is missing.
        std::sync::Arc::make_mut(&mut given.display)
            .insert("session_token".into(), Value::from("[secret]"));
        std::sync::Arc::make_mut(&mut given.display)
            .insert("leaked_secret".into(), Value::from("[secret]"));
        let found = gaps(&valid, &given.display, &plans(&valid, &given));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_mention_is_the_whole_name() {
        assert!(mentions("inputs.token is not none", "token"));
        assert!(mentions("{{ inputs.token }}", "token"));
        assert!(!mentions("inputs.token_2", "token"));
        assert!(!mentions("steps.x.inputs.token", "token"));
        assert!(!mentions("myinputs.token", "token"));
    }
}
