//! The terminal edge: argument parsing, logging set-up, rendering errors, choosing exit codes.
//!
//! Nothing below this module sees clap types; each command turns its arguments into plain
//! settings and calls the library.

mod args;
mod commands;
mod completions;
pub mod confirm;
pub mod describe;
pub mod drill_cmd;
pub mod run_cmd;
pub mod sim_cmd;
pub mod transcript_cmd;
pub mod ui;

use std::io::Write;

use clap::Parser;

use crate::error::{Error, ExitCode};

pub use args::{Cli, Command};

/// Runs the program with the process arguments and returns its exit code.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::Usage.into()
            } else {
                ExitCode::Success.into()
            };
        }
    };
    init_tracing(cli.verbose, cli.log_format);
    let code = match commands::dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            err.exit_code()
        }
    };
    code.into()
}

/// Renders an error once, at the edge, on stderr.
fn report(err: &Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = match err {
        // Runbook diagnostics arrive fully rendered, source snippets included.
        Error::Runbook(e) => writeln!(stderr, "{e}"),
        other => writeln!(stderr, "error: {other}"),
    };
}

/// Log format for `-v` / `RUST_LOG` tracing on stderr.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn init_tracing(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "esus_ir=info",
        2 => "esus_ir=debug",
        _ => "esus_ir=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
