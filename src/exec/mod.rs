//! Executing a planned runbook against ESUS: confirmations, requests, outcomes, recovery.
//!
//! What a step sends is decided by [`crate::plan`]; this module sends it. The executor reports
//! what happens as a stream of [`crate::event::Event`]s; the transcript (and the terminal)
//! listen to that stream without the executor knowing their formats.

pub mod approval;
mod baseline;
mod checks;
mod claims;
mod confirmation;
pub mod containment;
pub mod dry_run;
pub mod evidence;
pub mod executor;
mod fanout;
pub mod loopback;
pub mod opening;
mod outcome;
mod paged;
pub mod plan_gate;
pub mod policy;
pub mod preflight;
pub mod progress;
mod recover;
pub mod report;
pub mod resume;
pub mod sealed;
pub mod send;
mod settle;
pub mod shared;
mod single;
pub mod smart_login;
pub mod step;
mod step_report;
pub mod token;
pub mod witness;
