//! The terminal edge: argument parsing, logging set-up, rendering errors, choosing exit codes.
//!
//! Nothing below this module sees clap types; each command turns its arguments into plain
//! settings and calls the library.

mod approved_run;
mod args;
mod browser;
mod commands;
mod completions;
pub mod confirm;
pub mod describe;
pub mod drill_cmd;
pub mod login_cmd;
pub mod operator;
mod output;
pub mod plan_cmd;
mod plan_wait;
mod prompt;
mod resume_source;
pub mod run_cmd;
mod run_folder;
mod run_inputs;
mod runtime;
pub mod scope_cmd;
pub mod scopes_cmd;
mod sign_args;
pub mod sim_cmd;
pub mod terminal;
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
            if !e.use_stderr() {
                return ExitCode::Success.into();
            }
            if wants_json(std::env::args()) {
                error_document(ExitCode::Usage, &usage_message(&e));
            }
            return ExitCode::Usage.into();
        }
    };
    let json = cli.command.json_output();
    let term = terminal::Terminal {
        color: cli.color,
        quiet: cli.quiet,
    };
    init_tracing(cli.verbose, cli.log_format, term.stderr_styles().enabled());
    let code = match commands::dispatch(cli.command, term) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            if json {
                error_document(err.exit_code(), &err.to_string());
            }
            err.exit_code()
        }
    };
    code.into()
}

/// Whether a command line asks `run` or `drill` for `--output json` (read before clap could
/// parse it, so that even a usage error answers with a JSON document).
fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    let command = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let json = args
        .windows(2)
        .any(|w| w[0] == "--output" && w[1] == "json")
        || args.iter().any(|a| a == "--output=json");
    json && matches!(command.map(String::as_str), Some("run" | "drill"))
}

/// clap's message for a usage error as one line, without the usage and `--help` lines: what was
/// wrong, naming the argument as typed, and clap's suggestion ("a similar argument exists:
/// '--yes'"), so that a machine reading the JSON error learns what a person reads on stderr.
fn usage_message(e: &clap::Error) -> String {
    // `StyledStr`'s Display is plain text: no colour codes reach the JSON.
    let rendered = e.render().to_string();
    let text = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .fold(String::new(), |text, line| match text.chars().last() {
            None => line.to_string(),
            // "the following required arguments were not provided:" continues on the next line.
            Some(':') => format!("{text} {line}"),
            Some(_) => format!("{text}; {line}"),
        });
    match text.strip_prefix("error: ") {
        Some(rest) => rest.to_string(),
        None if text.is_empty() => e.kind().to_string(),
        None => text,
    }
}

/// The one JSON document on stdout when a run could not even start.
fn error_document(code: ExitCode, message: &str) {
    let doc = ErrorDocument {
        schema_version: crate::exec::report::SCHEMA_VERSION,
        kind: "error".into(),
        outcome: code.word().into(),
        exit_code: code as u8,
        error: message.to_string(),
    };
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    );
}

/// `--output json` when a run could not start (usage, input, credentials, a bad transcript): the
/// same versioned document family as a run's result (`esus-ir schema --result`).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorDocument {
    /// Version of this document format (1); it changes only when a field changes meaning or goes away.
    pub schema_version: u32,
    /// Always `error`.
    #[schemars(extend("const" = "error"))]
    pub kind: String,
    /// `usage-error`, `auth-failed`, `unreachable`, `invalid`, `failed`, …
    pub outcome: String,
    /// The process exit code.
    pub exit_code: u8,
    /// What went wrong, for people (never a secret).
    pub error: String,
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

/// Tracing goes to stderr, coloured only when stderr may be (`--color`, NO_COLOR, a terminal):
/// paging tools and CI capture stderr into logs, where escape codes are noise.
fn init_tracing(verbose: u8, format: LogFormat, color: bool) {
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
        .with_writer(std::io::stderr)
        .with_ansi(color);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
