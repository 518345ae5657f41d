//! `esus-ir scopes RUNBOOK`: the least a token needs to run a runbook — the ESUS permissions its
//! steps need (from the action catalogue, as `describe` and the preflight read them), whether it
//! writes at all, and the SMART scopes to ask for when logging in for it.

use serde::Serialize;

use super::describe::{DescribeOutput, PermissionDoc, describe};
use super::output::{out, stderr_color};
use crate::bundled;
use crate::error::{Error, ExitCode};
use crate::esus::actions::Effect;
use crate::esus::permissions;
use crate::runbook;

/// Arguments of `esus-ir scopes`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir scopes access-review
  esus-ir scopes api-key-compromise --output json | jq -r '.smart_scopes | join(\" \")'")]
pub struct ScopesArgs {
    /// A runbook file or bundled runbook name.
    #[arg(value_name = "RUNBOOK")]
    pub runbook: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DescribeOutput::Text)]
    pub output: DescribeOutput,
}

/// What a runbook needs of the token that runs it.
#[derive(Debug, Clone, Serialize)]
pub struct Scopes {
    /// The runbook's `name`.
    pub runbook: String,
    /// Each permission, who must hold it, and the steps that need it.
    pub permissions: Vec<PermissionDoc>,
    /// Steps run only where the operator holds what they need (`if_permitted`).
    pub only_where_permitted: Vec<String>,
    /// The steps that change ESUS; empty: the runbook only reads.
    pub writes: Vec<String>,
    /// The SMART scopes to request (`esus-ir login --scope …`).
    pub smart_scopes: Vec<String>,
}

/// Runs `esus-ir scopes`.
pub(super) fn run(args: ScopesArgs) -> Result<ExitCode, Error> {
    let source = bundled::resolve(&args.runbook)?;
    let valid = runbook::load(&source.display, &source.text, stderr_color())?;
    let doc = describe(&valid, &source.display);
    let scopes = Scopes {
        runbook: doc.name.clone(),
        only_where_permitted: valid
            .runbook
            .steps
            .iter()
            .filter(|s| s.if_permitted)
            .map(|s| s.id.clone())
            .collect(),
        writes: valid
            .runbook
            .steps
            .iter()
            .zip(&valid.steps)
            .filter(|(_, info)| info.effect != Effect::Read)
            .map(|(s, _)| s.id.clone())
            .collect(),
        smart_scopes: smart_scopes_of(&doc),
        permissions: doc.permissions,
    };
    match args.output {
        DescribeOutput::Json => {
            let text = serde_json::to_string_pretty(&scopes)
                .map_err(|e| Error::Usage(format!("rendering JSON: {e}")))?;
            out(&format!("{text}\n"))?;
        }
        DescribeOutput::Text => out(&text(&scopes))?,
    }
    Ok(ExitCode::Success)
}

/// The SMART scopes the operator's token needs for a runbook: those of every request its steps
/// send with the operator's token (a step acting with the affected user's own token, or none,
/// is left out), its checks' further requests included.
pub fn smart_scopes_of(doc: &super::describe::Description) -> Vec<String> {
    use crate::esus::permissions::Permission;
    let mut requests: Vec<(&str, &str)> = Vec::new();
    for step in &doc.steps {
        let operators = step
            .permissions
            .iter()
            .any(|p| p.is_operator_permission() && !matches!(p, Permission::OperatorSession));
        if !operators {
            continue;
        }
        if let (Some(m), Some(p)) = (&step.method, &step.path) {
            requests.push((m.as_str(), p.as_str()));
        }
        requests.extend(step.also.iter().map(|c| (c.method, c.path)));
    }
    permissions::smart_scopes(requests)
}

/// The SMART scopes of a validated runbook (what `run --login-smart` asks for by default).
pub fn smart_scopes_for(valid: &crate::runbook::Validated) -> Vec<String> {
    smart_scopes_of(&describe(valid, ""))
}

fn text(s: &Scopes) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(t, "{} needs:", s.runbook);
    for p in &s.permissions {
        let optional: Vec<&String> = p
            .steps
            .iter()
            .filter(|id| s.only_where_permitted.contains(id))
            .collect();
        let note = if !optional.is_empty() && optional.len() == p.steps.len() {
            " — only where held: skipped otherwise"
        } else {
            ""
        };
        let _ = writeln!(
            t,
            "  {:<40} {:<14} steps {}{note}",
            p.text,
            p.holder,
            p.steps.join(", ")
        );
    }
    if s.writes.is_empty() {
        let _ = writeln!(t, "It only reads: a token that cannot write is enough.");
    } else {
        let _ = writeln!(t, "It changes ESUS in: {}", s.writes.join(", "));
    }
    let _ = writeln!(t, "SMART scopes to request: {}", s.smart_scopes.join(" "));
    t
}
