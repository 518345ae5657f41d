//! Executing a validated runbook against ESUS: planning, confirmations, requests, outcomes.
//!
//! The executor reports what happens as a stream of [`event::Event`]s; the transcript (and the
//! terminal) listen to that stream without the executor knowing their formats.

pub mod event;
pub mod inputs;
pub mod approval;
pub mod context;
pub mod evidence;
pub mod token;
pub mod progress;
pub mod digest;
