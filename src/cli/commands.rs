//! One function per subcommand: arguments in, exit code out.

use super::args::{Command, GraphFormat};
use super::output::{count, out, stderr_color};
use crate::bundled;
use crate::error::{Error, ExitCode};
use crate::graph;
use crate::runbook;

/// Runs the chosen subcommand.
pub(super) fn dispatch(
    command: Command,
    term: super::terminal::Terminal,
) -> Result<ExitCode, Error> {
    match command {
        Command::Validate { runbooks } => validate(&runbooks),
        Command::Graph {
            runbook,
            format,
            inputs,
        } => graph_cmd(&runbook, format, &inputs),
        Command::Describe(args) => super::describe::run(args),
        Command::Scopes(args) => super::scopes_cmd::run(args),
        Command::List => list(),
        Command::Show { name } => {
            out(bundled::named(&name)?.text)?;
            Ok(ExitCode::Success)
        }
        Command::Schema {
            output,
            result,
            plan,
            scope,
        } => schema(output.as_deref(), SchemaOf::pick(result, plan, scope)),
        // The two-person rule without a saved plan: the run plans, waits, then runs the plan.
        Command::Run(args) if args.require_approvals.is_some() && args.plan.is_none() => {
            super::approved_run::run(*args, term)
        }
        Command::Run(args) => super::run_cmd::run(*args, term),
        Command::Login(args) => super::login_cmd::run(args),
        Command::Plan(args) => super::plan_cmd::plan(*args, term),
        Command::Approve(args) => super::plan_cmd::approve(args),
        Command::Drill(args) => super::drill_cmd::run(*args, term),
        Command::Sim(args) => super::sim_cmd::run(args),
        Command::Keygen(args) => super::transcript_cmd::keygen(args),
        Command::Verify(args) => super::transcript_cmd::verify(args),
        Command::Report(args) => super::transcript_cmd::report(args),
        Command::Scope(args) => super::scope_cmd::scope(args),
        Command::Completions(args) => super::completions::completions(args),
        Command::Man(args) => super::completions::man(args),
    }
}

fn validate(args: &[String]) -> Result<ExitCode, Error> {
    let color = stderr_color();
    let mut bad = 0;
    for arg in args {
        let source = match bundled::resolve(arg) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
                continue;
            }
        };
        match runbook::load(&source.display, &source.text, color) {
            Ok(v) => out(&format!(
                "{}: ok ({}, {})\n",
                source.display,
                count(v.runbook.steps.len(), "step", "steps"),
                count(v.runbook.inputs.len(), "input", "inputs")
            ))?,
            Err(e) => {
                eprint!("{}", e.rendered);
                bad += 1;
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::Success
    } else {
        ExitCode::Usage
    })
}

fn graph_cmd(arg: &str, format: GraphFormat, inputs: &[String]) -> Result<ExitCode, Error> {
    let source = bundled::resolve(arg)?;
    let valid = runbook::load(&source.display, &source.text, stderr_color())?;
    let given = super::describe::graph_inputs(&valid.runbook, inputs)?;
    let format = match format {
        GraphFormat::Text => graph::GraphFormat::Text,
        GraphFormat::Dot => graph::GraphFormat::Dot,
        GraphFormat::Mermaid => graph::GraphFormat::Mermaid,
    };
    let text = valid.graph.render(format, |i| {
        let step = &valid.runbook.steps[i];
        graph::NodeLabel {
            name: format!(
                "{} ({})",
                graph::fill_inputs(&step.name, &given),
                step.action
            ),
            destructive: valid.steps[i].effect == crate::esus::actions::Effect::Destructive,
            when: step.when.clone(),
        }
    });
    out(&text)?;
    Ok(ExitCode::Success)
}

fn list() -> Result<ExitCode, Error> {
    let mut text = String::new();
    for b in bundled::BUNDLED {
        let summary = runbook::parse::parse(b.text)
            .map(|(rb, _)| {
                rb.description
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default();
        text.push_str(&format!("{:<24} {summary}\n", b.name));
    }
    out(&text)?;
    Ok(ExitCode::Success)
}

/// Which JSON Schema `esus-ir schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SchemaOf {
    /// The runbook format.
    Runbook,
    /// `run`/`drill --output json`: a result, or an error document.
    Result,
    /// `run --dry-run --output json`.
    Plan,
    /// `scope --format json`.
    Scope,
}

impl SchemaOf {
    fn pick(result: bool, plan: bool, scope: bool) -> SchemaOf {
        match (result, plan, scope) {
            (true, _, _) => SchemaOf::Result,
            (_, true, _) => SchemaOf::Plan,
            (_, _, true) => SchemaOf::Scope,
            _ => SchemaOf::Runbook,
        }
    }
}

/// What `run`/`drill --output json` prints: a run's result, a drill's score, or an error before
/// the run could start (the `kind` field tells which).
#[derive(schemars::JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)] // exists to describe the documents, not to be built
enum ResultOrError {
    Result(Box<crate::exec::report::RunReport>),
    Drill(Box<super::drill_cmd::DrillReport>),
    Error(super::ErrorDocument),
}

/// The JSON Schema text of `what`.
pub(super) fn schema_text(what: SchemaOf) -> Result<String, Error> {
    let schema = match what {
        SchemaOf::Runbook => schemars::schema_for!(runbook::Runbook),
        SchemaOf::Result => schemars::schema_for!(ResultOrError),
        SchemaOf::Plan => schemars::schema_for!(crate::exec::dry_run::PlanDocument),
        SchemaOf::Scope => schemars::schema_for!(crate::scope::Scope),
    };
    let mut text =
        serde_json::to_string_pretty(&schema).map_err(|e| Error::Usage(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

fn schema(output: Option<&std::path::Path>, what: SchemaOf) -> Result<ExitCode, Error> {
    let text = schema_text(what)?;
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?,
        None => out(&text)?,
    }
    Ok(ExitCode::Success)
}
