//! The command-line grammar. Only this file and its siblings under `cli/` know clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::LogFormat;

/// Incident response for compromised ESUS credentials.
#[derive(Debug, Parser)]
#[command(
    name = "esus-ir",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = TOP_EXAMPLES
)]
pub struct Cli {
    /// More tracing on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Format of tracing output on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Colour: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = super::terminal::ColorChoice::Auto, global = true)]
    pub color: super::terminal::ColorChoice,
    /// No progress on stderr: only the result, prompts and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level `--help` examples: what an engineer needs when a credential leaked at 3 a.m.
const TOP_EXAMPLES: &str = "Examples:
  esus-ir drill api-key-compromise              # rehearse against the embedded simulator
  esus-ir describe api-key-compromise           # inputs, steps, ESUS permissions needed
  esus-ir run api-key-compromise --dry-run --input key_id=k-123 --input user_id=u-1001
  ESUS_TOKEN=… esus-ir run api-key-compromise --input key_id=k-123 --input user_id=u-1001
  esus-ir verify esus-ir-runs/<run>/transcript.jsonl
  esus-ir report esus-ir-runs/<run>/transcript.jsonl --format html -o postmortem.html

Run `esus-ir list` for the bundled runbooks and `esus-ir <command> --help` for more examples.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbooks: syntax, fields, graph, templates, secrets. Exit 0 valid, 2 invalid.
    #[command(
        after_help = "Examples:\n  esus-ir validate runbooks/api-key-compromise.yaml\n  esus-ir validate api-key-compromise my-runbook.yaml"
    )]
    Validate {
        /// Runbook files or bundled runbook names.
        #[arg(required = true, value_name = "RUNBOOK")]
        runbooks: Vec<String>,
    },
    /// Show a runbook's step graph: parallel layers and destructive steps.
    #[command(
        after_help = "Examples:\n  esus-ir graph api-key-compromise\n  esus-ir graph my-runbook.yaml --format mermaid > graph.mmd\n  esus-ir graph my-runbook.yaml --format dot | dot -Tsvg > graph.svg\n  esus-ir graph api-key-compromise -i key_id=k-123 -i user_id=u-1001"
    )]
    Graph {
        /// A runbook file or bundled runbook name.
        #[arg(value_name = "RUNBOOK")]
        runbook: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
        /// Fill `{{ inputs.NAME }}` in step names with this value (not for secret inputs);
        /// repeatable. Inputs not given stay as written.
        #[arg(short, long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
    },
    /// Explain a runbook: inputs and where their values may come from, steps, ESUS permissions.
    Describe(super::describe::DescribeArgs),
    /// The least a token needs to run a runbook: ESUS permissions, writes, SMART scopes.
    Scopes(super::scopes_cmd::ScopesArgs),
    /// List the bundled runbooks.
    #[command(after_help = "Example:\n  esus-ir list")]
    List,
    /// Print a bundled runbook's YAML, as shipped: to read it, or to start a new runbook from it.
    #[command(after_help = "Examples:
  esus-ir show api-key-compromise
  esus-ir show api-key-compromise > my-runbook.yaml && esus-ir validate my-runbook.yaml

Its first line points editors at ../docs/runbook.schema.json; `esus-ir schema -o FILE` writes
that schema wherever the new runbook needs it.")]
    Show {
        /// The bundled runbook's name (`esus-ir list`).
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Print the JSON Schema of the runbook format.
    #[command(
        after_help = "Example:\n  esus-ir schema > esus-ir-runbook.schema.json\n\nThen start a runbook with:\n  # yaml-language-server: $schema=./esus-ir-runbook.schema.json"
    )]
    Schema {
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The schema of `run`/`drill --output json` results (and of the error document).
        #[arg(long, conflicts_with = "plan")]
        result: bool,
        /// The schema of `run --dry-run --output json` plans.
        #[arg(long, conflicts_with = "scope")]
        plan: bool,
        /// The schema of `scope --format json` (the breach's scope).
        #[arg(long, conflicts_with = "result")]
        scope: bool,
    },
    /// Log in to ESUS through the browser (SMART on FHIR, authorization code + PKCE).
    Login(super::login_cmd::LoginArgs),
    /// Run a runbook against ESUS: plan, confirmations, requests, signed transcript.
    Run(Box<super::run_cmd::RunArgs>),
    /// Write the plan of a run (what it would send, after the preflight) for others to approve.
    Plan(Box<super::plan_cmd::PlanArgs>),
    /// Review a plan and sign it as approved (SSHSIG, namespace esus-ir-plan).
    Approve(super::plan_cmd::ApproveArgs),
    /// Rehearse a runbook against the embedded simulator and score it.
    Drill(Box<super::drill_cmd::DrillArgs>),
    /// Serve the ESUS simulator on loopback until Ctrl-C.
    Sim(super::sim_cmd::SimArgs),
    /// Create an OpenSSH Ed25519 signing key for transcripts.
    Keygen(super::transcript_cmd::KeygenArgs),
    /// Verify signed, hash-chained transcripts and run folders. Exit 0 valid, 5 invalid, 2 usage.
    Verify(super::transcript_cmd::VerifyArgs),
    /// Render a post-mortem timeline from a transcript.
    Report(super::transcript_cmd::ReportArgs),
    /// The breach's scope from an incident's audit evidence: patients and records the
    /// compromised user touched, exports, emergency overrides, failures, sources — and anything
    /// after containment (exit 1).
    Scope(super::scope_cmd::ScopeArgs),
    /// Print a shell completion script to stdout.
    Completions(CompletionsArgs),
    /// Write man pages (esus-ir.1 and one per subcommand).
    Man(ManArgs),
}

/// Arguments of `esus-ir completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir completions bash > ~/.local/share/bash-completion/completions/esus-ir
  esus-ir completions zsh > ~/.zfunc/_esus-ir        # with fpath+=(~/.zfunc) before compinit
  esus-ir completions fish > ~/.config/fish/completions/esus-ir.fish
  esus-ir completions powershell >> $PROFILE")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Arguments of `esus-ir man`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir man | man -l -
  esus-ir man -o /usr/local/share/man/man1 && mandb")]
pub struct ManArgs {
    /// Write esus-ir.1 and one page per subcommand (esus-ir-run.1, …) into this folder (created if
    /// missing). Without it, esus-ir.1 goes to stdout.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// How `graph` draws the step graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Layers as indented text.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart, for incident documents.
    Mermaid,
}

impl Command {
    /// Whether the command writes one JSON document on stdout (`run`/`drill --output json`).
    pub fn json_output(&self) -> bool {
        use super::run_cmd::OutputFormat::Json;
        match self {
            Command::Run(a) => a.output == Json,
            Command::Drill(a) => a.output == Json,
            _ => false,
        }
    }
}
