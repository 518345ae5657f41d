//! One step's plan, as a value: what it sends, whether it runs, how it is approved, and what was
//! found wrong with it before anything was sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::esus::actions::Effect;
use crate::esus::request::ApiRequest;
use crate::event::RequestView;

/// Whether the step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// It has no `when`, or its `when` holds.
    Runs,
    /// Not needed, and why: "condition `…` is false", or the operator lacks the right an
    /// `if_permitted` read needs.
    Skipped(String),
    /// Decided when the step is reached, and on what: "`when`" (it reads outputs not known
    /// yet), or the operator's right (not read from ESUS yet).
    Later(String),
    /// Its `when` cannot be evaluated.
    Broken(String),
}

/// How the step is approved before it sends anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Sent without asking. `writes`: it changes ESUS (`confirm: false` on a write), so the
    /// runbook's approval is still recorded with the digest of what it sends.
    NotAsked {
        /// Whether what it sends changes ESUS.
        writes: bool,
    },
    /// Asked yes/no (or approved in advance by `--yes`/`--approve`).
    Ask {
        /// The question, rendered.
        message: String,
    },
    /// The operator types `target` (only `--approve STEP` approves it in advance).
    Typed {
        /// The question, rendered.
        message: String,
        /// What must be typed: the target's id, or for a fan-out the number of requests.
        target: String,
    },
}

impl Approval {
    /// Whether anyone is asked (or must have approved in advance).
    pub fn asks(&self) -> bool {
        !matches!(self, Approval::NotAsked { .. })
    }

    /// Whether only `--approve STEP` (never `--yes`) approves it in advance.
    pub fn typed(&self) -> bool {
        matches!(self, Approval::Typed { .. })
    }
}

/// `auth.check_sessions_ended`, ready to run.
#[derive(Debug, Clone)]
pub struct SessionCheck {
    /// The stolen access token.
    pub token: Option<SecretString>,
    /// The stolen refresh token.
    pub refresh_token: Option<SecretString>,
    /// `Some(None)`: the runbook asks about the listed sessions but none were listed.
    pub listed: Option<Option<Vec<String>>>,
    /// How many sessions `logout-all` said it ended.
    pub revoked: Option<u64>,
}

/// A fan-out whose items are known.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Every item, in order (indices are the items' numbers in records and secret files).
    pub items: Items,
    /// Items an earlier leg of the incident finished: not sent again.
    pub done: BTreeSet<usize>,
    /// Items sent at once.
    pub concurrency: usize,
}

/// A fan-out's items: a list of its own, or a list input's value read where the run's inputs
/// hold it — `foreach: inputs.ids` over 100,000 ids does not copy them (issue 21).
#[derive(Debug, Clone)]
pub enum Items {
    /// The list `foreach` gave.
    Own(Arc<Vec<Value>>),
    /// The list under this name in the run's inputs.
    Input(Arc<Map<String, Value>>, String),
}

impl std::ops::Deref for Items {
    type Target = [Value];

    fn deref(&self) -> &[Value] {
        match self {
            Items::Own(items) => items,
            Items::Input(inputs, name) => inputs
                .get(name)
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice),
        }
    }
}

impl Batch {
    /// The items this leg sends, with their numbers.
    pub fn todo(&self) -> impl Iterator<Item = (usize, &Value)> {
        self.items
            .iter()
            .enumerate()
            .filter(|(k, _)| !self.done.contains(k))
    }

    /// How many requests this leg sends.
    pub fn todo_len(&self) -> usize {
        self.items.len() - self.done.iter().filter(|k| **k < self.items.len()).count()
    }
}

/// What the step sends.
#[derive(Debug)]
pub enum Work {
    /// One exact request (for a paged read, its first page).
    One(ApiRequest),
    /// A fan-out: each item's request is rendered by [`super::Planner::item_request`], the one
    /// function the approval digest and the send both use.
    Many(Batch),
    /// `api_keys.check_revoked`: read the key, then (with the leaked secret) try it.
    Revoked {
        /// `GET /api-keys/{id}` with the operator's token.
        get: ApiRequest,
        /// The same URL authenticated by the key itself (`X-Api-Key` with its app's `X-App-Id`).
        probe: Option<ApiRequest>,
    },
    /// `auth.check_sessions_ended`: try the stolen credentials.
    Sessions(SessionCheck),
    /// Not known yet (it reads outputs of steps that have not run): the request templates, with
    /// named placeholders such as `<rotate.new_key_id>`.
    Pending(Vec<RequestView>),
    /// Nothing: the step does not run, or cannot.
    Nothing,
}

/// One step's plan.
#[derive(Debug)]
pub struct StepPlan {
    /// The step's index in the runbook.
    pub index: usize,
    /// The step id.
    pub id: String,
    /// Its display name, rendered.
    pub name: String,
    /// What the action does to ESUS.
    pub effect: Effect,
    /// Whether it runs.
    pub condition: Condition,
    /// How it is approved.
    pub approval: Approval,
    /// What it sends.
    pub work: Work,
    /// Requests it sends after its approved one, known only from the answer (a created key's
    /// rename), shown with placeholders and approved with it.
    pub follow_ups: Vec<RequestView>,
    /// Why it cannot run, found before anything was sent (a save name leaving the evidence
    /// folder, a fan-out over the cap, a header value a token cannot be, a template error).
    pub problems: Vec<String>,
    /// What people should know when reading the plan.
    pub notes: Vec<String>,
}

impl StepPlan {
    /// Whether everything it sends is known now.
    pub fn known(&self) -> bool {
        !matches!(self.work, Work::Pending(_))
    }

    /// Whether it will send something this leg (it runs, nothing stops it, its work is known).
    pub fn sends(&self) -> bool {
        self.condition == Condition::Runs
            && self.problems.is_empty()
            && !matches!(self.work, Work::Nothing | Work::Pending(_))
    }
}
