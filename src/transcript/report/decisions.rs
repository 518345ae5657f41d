//! Approvals, declines and prompts nobody answered, as a post-mortem reads them from a leg's
//! records — and how long each prompt kept a person waiting.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use serde_json::Value;

use super::fields::{field, or_unknown};
use crate::transcript::record::Record;

/// What became of a prompt (or of an approval taken from flags or the runbook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Approved.
    Approved,
    /// Declined by the operator, or no approval was given (`missing`).
    Declined,
    /// The run was interrupted (Ctrl-C) while the prompt was open: nobody answered.
    Interrupted,
}

/// One approval, decline or unanswered prompt.
#[derive(Debug, Clone)]
pub struct DecisionRow {
    /// The step asked about.
    pub step: String,
    /// The record that holds it (`confirmation`, or the interrupted step's `step-finished`).
    pub seq: u64,
    /// When it was answered (or the prompt abandoned).
    pub ts: String,
    /// When a person was asked: for an interactive prompt, when it opened (below); else `None`,
    /// since nobody waited.
    pub asked: Option<String>,
    /// What became of it.
    pub decision: Decision,
    /// `interactive`, `assume-yes`, `approve`, `not-required`, `missing`; empty when interrupted.
    pub how: String,
    /// The approval's number in its transcript.
    pub approval: Option<u64>,
    /// The digest of what was shown: what an approval signs.
    pub request_sha256: Option<String>,
}

/// When prompts opened. No record marks the moment a prompt appears, but it appears as soon as its
/// step starts (the step is signed first), and only one prompt is up at a time — so a prompt
/// opened at the later of its step's `step-started` and the previous interactive answer.
#[derive(Default)]
pub(super) struct Prompts {
    started: HashMap<String, String>,
    sent: HashSet<String>,
    answered: HashSet<String>,
    last_answer: Option<String>,
}

impl Prompts {
    pub(super) fn started(&mut self, r: &Record) {
        self.started.insert(field(r, "step"), r.ts.clone());
    }

    pub(super) fn sent(&mut self, r: &Record) {
        self.sent.insert(field(r, "step"));
    }

    fn opened(&self, step: &str) -> Option<String> {
        let start = self.started.get(step);
        match (start, &self.last_answer) {
            (Some(s), Some(a)) => Some(later(s, a).to_string()),
            (Some(s), None) => Some(s.clone()),
            (None, a) => a.clone(),
        }
    }

    pub(super) fn answered(&mut self, r: &Record) -> DecisionRow {
        let step = field(r, "step");
        let how = field(r, "how");
        let approved = r.data.get("approved") == Some(&Value::Bool(true));
        let asked = (how == "interactive").then(|| self.opened(&step)).flatten();
        if how == "interactive" {
            self.last_answer = Some(r.ts.clone());
        }
        self.answered.insert(step.clone());
        DecisionRow {
            step,
            seq: r.seq,
            ts: r.ts.clone(),
            asked,
            decision: if approved {
                Decision::Approved
            } else {
                Decision::Declined
            },
            how,
            approval: r.data.get("approval").and_then(Value::as_u64),
            request_sha256: r.str_field("request_sha256").map(str::to_string),
        }
    }

    /// A destructive step interrupted after it started, before any answer and before it sent
    /// anything, was at its prompt (or waiting its turn for one) when Ctrl-C came: the executor
    /// asks before it sends and never sends unasked.
    pub(super) fn abandoned(&self, r: &Record, destructive: &[String]) -> Option<DecisionRow> {
        let step = field(r, "step");
        let at_prompt = field(r, "status") == "interrupted"
            && self.started.contains_key(&step)
            && destructive.contains(&step)
            && !self.answered.contains(&step)
            && !self.sent.contains(&step);
        at_prompt.then(|| DecisionRow {
            asked: self.opened(&step),
            step,
            seq: r.seq,
            ts: r.ts.clone(),
            decision: Decision::Interrupted,
            how: String::new(),
            approval: None,
            request_sha256: None,
        })
    }
}

/// The later of two timestamps (the first when either does not parse).
fn later<'a>(a: &'a str, b: &'a str) -> &'a str {
    match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
        (Ok(x), Ok(y)) if y > x => b,
        _ => a,
    }
}

/// Who made a decision, for people: the leg's operator at the prompt or by a flag, the runbook
/// for a `confirm: false` step, or nobody (an unattended run with no approval, or Ctrl-C at the
/// prompt).
pub fn decided_by(operator: &str, how: &str) -> String {
    let operator = or_unknown(operator);
    match how {
        "interactive" => format!("{operator} at the prompt"),
        "assume-yes" => format!("{operator} by --yes"),
        "approve" => format!("{operator} by --approve"),
        "not-required" => "the runbook (confirm: false)".to_string(),
        "plan" => "the signed plan (its approvers: see Approved by)".to_string(),
        "policy" => "the signed policy (its signer: see Approved by)".to_string(),
        "missing" => "nobody: an unattended run, no approval given".to_string(),
        "" => "nobody: Ctrl-C while the prompt was open".to_string(),
        other => format!("{operator} ({other})"),
    }
}
