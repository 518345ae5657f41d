//! The plan: what every step of a run will send, decided in one place.
//!
//! A [`StepPlan`] is computed from the runbook, the inputs and what is known of earlier steps (the
//! outputs of steps that ran, or placeholders for those that have not): per step, its condition,
//! its exact request(s) where known — the request template with named placeholders where not —
//! its fan-out items (capped here, before any approval), how it is approved (typed for the worst),
//! and everything that can be checked before anything is sent (save names, header values, caps).
//! Every mode consumes it: a dry-run renders it, a live run executes it and approves its digest,
//! a resume is the same plan minus what the incident's signed records prove done. Nothing here
//! sends anything: the planner is a plain function of its inputs.

pub mod claim;
pub mod context;
pub mod digest;
pub mod gaps;
pub mod inputs;
mod planner;
pub mod render;
mod step_plan;
mod view;

pub use planner::{Planner, Shown, effective, rename_request};
pub use step_plan::{Approval, Batch, Condition, Items, SessionCheck, StepPlan, Work};
pub use view::{PlannedStep, render_text};
