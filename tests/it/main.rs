//! The one integration-test binary: a module per feature.

mod sim_audit;
mod sim_auth;
mod sim_cli;
mod sim_faults;
mod sim_fhir;
mod sim_hooks;
mod sim_keys;
mod sim_support;
