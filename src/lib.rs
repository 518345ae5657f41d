//! esus-ir: incident response for compromised ESUS credentials.
//!
//! The pipeline reads from the module names: a YAML [`runbook`] is parsed and validated into a
//! [`graph::StepGraph`], [`template`]s resolve values, the [`exec`] module runs steps against the
//! ESUS API through [`esus`], and the [`transcript`] records a signed, hash-chained account of the
//! run. [`sim`] is an in-process ESUS simulator for drills and tests. [`cli`] is the terminal edge.

pub mod bundled;
pub mod cli;
pub mod error;
pub mod esus;
pub mod event;
pub mod exec;
pub mod graph;
pub mod plan;
pub mod runbook;
pub mod scope;
pub mod sim;
pub mod template;
pub mod transcript;

pub use error::{Error, ExitCode};
