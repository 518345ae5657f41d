//! The one integration-test binary: a module per feature.

mod transcript_cli;
mod transcript_openssh;
mod transcript_report;
mod transcript_support;
mod transcript_tamper;
mod transcript_verify;
mod transcript_writer;
