//! Executing a validated runbook against ESUS: planning, confirmations, requests, outcomes.
//!
//! The executor reports what happens as a stream of [`event::Event`]s; the transcript (and the
//! terminal) listen to that stream without the executor knowing their formats.

pub mod approval;
pub mod context;
pub mod digest;
pub mod dry_run;
pub mod event;
pub mod evidence;
pub mod executor;
pub mod inputs;
pub mod progress;
pub mod render;
pub mod report;
pub mod resume;
pub mod send;
pub mod shared;
pub mod step;
pub mod token;
