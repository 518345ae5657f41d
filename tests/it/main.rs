//! The one integration-test binary: a module per feature.

mod cli;
mod run_faults;
mod run_live;
mod run_modes;
mod run_support;
mod run_terminal;
mod sim_audit;
mod sim_auth;
mod sim_cli;
mod sim_faults;
mod sim_fhir;
mod sim_keys;
mod sim_support;
mod transcript_cli;
mod transcript_openssh;
mod transcript_report;
mod transcript_support;
mod transcript_tamper;
mod transcript_verify;
mod transcript_writer;
mod validate;
mod validate_fuzz;
mod runbooks_monitoring;
mod runbooks_session;
mod runbooks_support;
