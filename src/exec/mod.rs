//! Executing a validated runbook against ESUS: planning, confirmations, requests, outcomes.
//!
//! The executor reports what happens as a stream of [`crate::event::Event`]s; the transcript (and the
//! terminal) listen to that stream without the executor knowing their formats.

pub mod approval;
mod checks;
mod confirmation;
pub mod containment;
pub mod context;
pub mod digest;
pub mod dry_run;
pub mod evidence;
pub mod executor;
mod fanout;
pub mod inputs;
mod paged;
pub mod plan;
pub mod preflight;
pub mod prepare;
pub mod progress;
mod recover;
pub mod render;
pub mod report;
pub mod resume;
pub mod send;
pub mod shared;
pub mod step;
pub mod token;
