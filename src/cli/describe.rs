//! `esus-ir describe RUNBOOK`: what a runbook will ask for and do, before anyone runs it — its
//! inputs and where each value may come from, its steps in run order with the ESUS call each makes
//! and how it is confirmed, and the ESUS permissions the whole runbook needs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::output::{out, stderr_color};
use crate::bundled;
use crate::error::{Error, ExitCode};
use crate::esus::actions::{ActionSpec, Effect, Method, Special};
use crate::esus::permissions::{self, Permission};
use crate::runbook::model::{InputType, Runbook, Step};
use crate::runbook::validate::ConfirmMode;
use crate::runbook::{self, Validated};

/// Arguments of `esus-ir describe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir describe api-key-compromise
  esus-ir describe my-runbook.yaml --output json | jq '.permissions'")]
pub struct DescribeArgs {
    /// A runbook file or bundled runbook name.
    #[arg(value_name = "RUNBOOK")]
    pub runbook: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DescribeOutput::Text)]
    pub output: DescribeOutput,
}

/// Output format of `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DescribeOutput {
    /// Sentences and lists for people.
    #[default]
    Text,
    /// One JSON object, for machines.
    Json,
}

/// A runbook explained.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// The runbook's `name`.
    pub name: String,
    /// Where it was read from: a path, or `bundled:NAME`.
    pub source: String,
    /// Its `description`.
    pub description: String,
    /// Its inputs, in file order.
    pub inputs: Vec<InputDoc>,
    /// Its steps, in the order a run starts them.
    pub steps: Vec<StepDoc>,
    /// What ESUS requires, each with the steps that need it.
    pub permissions: Vec<PermissionDoc>,
}

/// One input.
#[derive(Debug, Clone, Serialize)]
pub struct InputDoc {
    /// Its name.
    pub name: String,
    /// `string`, `integer`, `boolean`, `list` or `secret`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether a run refuses to start without it.
    pub required: bool,
    /// Its default value.
    pub default: Option<Value>,
    /// What to supply.
    pub description: String,
    /// The regular expression a value must match in full.
    pub pattern: Option<String>,
    /// Where a value may come from; the first that has one wins. A secret never comes from the
    /// command line.
    pub sources: Vec<String>,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct StepDoc {
    /// Its id.
    pub id: String,
    /// Its name as written (templates unfilled).
    pub name: String,
    /// The built-in action.
    pub action: String,
    /// The action's one-line summary.
    pub summary: &'static str,
    /// HTTP method, when known before the run.
    pub method: Option<String>,
    /// Path template relative to the base URL (`{param}` placeholders), when known.
    pub path: Option<String>,
    /// `read`, `write` or `destructive`: of the step as a whole, its further calls included.
    pub effect: &'static str,
    /// Requests the step may send after its own (a check trying stolen credentials): why a
    /// step whose call is a GET can still be a write.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<CallDoc>,
    /// Whether it changes or removes access.
    pub destructive: bool,
    /// How it is confirmed.
    pub confirm: ConfirmDoc,
    /// Its `when:` condition.
    pub when: Option<String>,
    /// Its `foreach:` list expression.
    pub foreach: Option<String>,
    /// The steps it waits for.
    pub needs: Vec<String>,
    /// Its layer (1-based): steps of one layer may run side by side.
    pub layer: usize,
    /// What ESUS requires to send it.
    pub permissions: Vec<Permission>,
}

/// A further request of a step.
#[derive(Debug, Clone, Serialize)]
pub struct CallDoc {
    /// HTTP method.
    pub method: &'static str,
    /// Path template relative to the base URL.
    pub path: &'static str,
    /// `read`, `write` or `destructive`.
    pub effect: &'static str,
    /// When it is sent, and what it does.
    pub when: &'static str,
}

/// How a step is confirmed.
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmDoc {
    /// `none`, `yes-no` or `typed`.
    pub mode: &'static str,
    /// The prompt's message template (`yes-no` with a message).
    pub message: Option<String>,
    /// For `typed`: the parameter whose value the operator types, and that value's template.
    pub target: Option<String>,
}

/// One permission and the steps that need it.
#[derive(Debug, Clone, Serialize)]
pub struct PermissionDoc {
    /// The permission.
    pub permission: Permission,
    /// It in words, e.g. `Consent.write`.
    pub text: String,
    /// Who must hold it: `operator` (the token the run uses), `affected-user` (a token the
    /// runbook takes as an input), `none`, or `unknown`.
    pub holder: &'static str,
    /// The step ids that need it.
    pub steps: Vec<String>,
}

/// Runs `esus-ir describe`.
pub(super) fn run(args: DescribeArgs) -> Result<ExitCode, Error> {
    let source = bundled::resolve(&args.runbook)?;
    let valid = runbook::load(&source.display, &source.text, stderr_color())?;
    let doc = describe(&valid, &source.display);
    let text = match args.output {
        DescribeOutput::Json => {
            let mut json = serde_json::to_string_pretty(&doc)
                .map_err(|e| Error::Usage(format!("rendering JSON: {e}")))?;
            json.push('\n');
            json
        }
        DescribeOutput::Text => render_text(&doc),
    };
    out(&text)?;
    Ok(ExitCode::Success)
}

/// Explains a validated runbook read from `source`.
pub fn describe(valid: &Validated, source: &str) -> Description {
    let rb = &valid.runbook;
    let inputs = input_docs(rb);
    let layer_of = layer_numbers(valid);
    let mut steps = Vec::with_capacity(rb.steps.len());
    let mut needed: BTreeMap<Permission, Vec<String>> = BTreeMap::new();
    for &i in valid.graph.order() {
        let step = step_doc(valid, i, layer_of[i]);
        for p in &step.permissions {
            needed.entry(p.clone()).or_default().push(step.id.clone());
        }
        steps.push(step);
    }
    Description {
        name: rb.name.clone(),
        source: source.to_string(),
        description: rb.description.trim().to_string(),
        inputs,
        steps,
        permissions: permission_docs(needed),
    }
}

/// The runbook's inputs, in file order, each with where its value may come from.
fn input_docs(rb: &Runbook) -> Vec<InputDoc> {
    rb.inputs
        .iter()
        .map(|(name, spec)| InputDoc {
            name: name.clone(),
            kind: spec.kind.as_str(),
            required: spec.required,
            default: spec.default.clone(),
            description: spec.description.trim().to_string(),
            pattern: spec.pattern.clone(),
            sources: input_sources(name, spec.kind, spec.env.as_deref(), spec),
        })
        .collect()
}

/// Each step's layer, 1-based and indexed by the step's position in the file, so a reader can
/// tell which steps may run side by side.
fn layer_numbers(valid: &Validated) -> Vec<usize> {
    let mut layer_of = vec![0; valid.runbook.steps.len()];
    for (k, layer) in valid.graph.layers().iter().enumerate() {
        for &i in layer {
            layer_of[i] = k + 1;
        }
    }
    layer_of
}

/// The step at position `i` explained: its call, effect, confirmation, conditions and the
/// permissions ESUS requires for it.
fn step_doc(valid: &Validated, i: usize, layer: usize) -> StepDoc {
    let step = &valid.runbook.steps[i];
    let info = &valid.steps[i];
    let (method, path) = call_of(step, info.action);
    StepDoc {
        id: step.id.clone(),
        name: step.name.clone(),
        action: step.action.clone(),
        summary: info.action.summary,
        method,
        path,
        effect: effect_word(info.effect),
        also: further_calls(info.action),
        destructive: info.effect == Effect::Destructive,
        confirm: confirm_doc(step, info.action, &info.confirm),
        when: step.when.clone(),
        foreach: step.foreach.clone(),
        needs: valid
            .graph
            .needs(i)
            .iter()
            .map(|&n| valid.graph.id(n).to_string())
            .collect(),
        layer,
        permissions: permissions::for_step(info.action, &step.with),
    }
}

fn effect_word(effect: Effect) -> &'static str {
    match effect {
        Effect::Read => "read",
        Effect::Write => "write",
        Effect::Destructive => "destructive",
    }
}

/// What a check sends besides its own GET (as exec/checks.rs sends it). The catalogue's effect is
/// the step's as a whole; without these, `auth.check_sessions_ended` read "GET …  (write)".
fn further_calls(action: &ActionSpec) -> Vec<CallDoc> {
    match action.special {
        Special::None => Vec::new(),
        Special::CheckRevoked => vec![CallDoc {
            method: "GET",
            path: action.path,
            effect: "read",
            when: "as the leaked key itself, when its secret is given: it must be refused",
        }],
        Special::CheckSessions => vec![
            CallDoc {
                method: "POST",
                path: "/auth/refresh",
                effect: "write",
                when: "with the stolen refresh token, when given: one that still works is used up",
            },
            CallDoc {
                method: "POST",
                path: "/auth/logout-all",
                effect: "destructive",
                when: "only when that refresh worked: the new tokens log out every session they reach",
            },
        ],
    }
}

/// The method and path a step sends, when known before the run: a built-in action's own, or
/// an `http` step's when written as literals (a template is only known at run time).
fn call_of(step: &Step, action: &ActionSpec) -> (Option<String>, Option<String>) {
    let literal = |k: &str| step.with.get(k).and_then(Value::as_str).map(str::to_string);
    if action.name == "http" {
        (
            literal("method").map(|m| m.to_ascii_uppercase()),
            literal("path"),
        )
    } else {
        (
            Some(action.method.as_str().to_string()),
            Some(action.path.to_string()),
        )
    }
}

/// How a step is confirmed; a typed confirmation names the parameter the operator types back.
fn confirm_doc(step: &Step, action: &ActionSpec, confirm: &ConfirmMode) -> ConfirmDoc {
    match confirm {
        ConfirmMode::No => ConfirmDoc {
            mode: "none",
            message: None,
            target: None,
        },
        ConfirmMode::Ask(message) => ConfirmDoc {
            mode: "yes-no",
            message: message.clone(),
            target: None,
        },
        ConfirmMode::Typed => ConfirmDoc {
            mode: "typed",
            message: None,
            target: action.target.map(|t| match step.with.get(t) {
                Some(Value::String(v)) => format!("{t} = {v}"),
                Some(v) => format!("{t} = {v}"),
                None => t.to_string(),
            }),
        },
    }
}

/// Each permission the runbook needs, with who must hold it and the steps that need it.
fn permission_docs(needed: BTreeMap<Permission, Vec<String>>) -> Vec<PermissionDoc> {
    needed
        .into_iter()
        .map(|(permission, steps)| PermissionDoc {
            text: permission.to_string(),
            holder: match permission {
                Permission::Admin
                | Permission::SystemAdmin
                | Permission::Fhir { .. }
                | Permission::OperatorSession => "operator",
                Permission::OwnSession => "affected-user",
                Permission::NoBearer => "none",
                Permission::Unknown => "unknown",
            },
            permission,
            steps,
        })
        .collect()
}

/// Where a run looks for an input's value, in the order it looks (exec::inputs::resolve).
fn input_sources(
    name: &str,
    kind: InputType,
    env: Option<&str>,
    spec: &crate::runbook::model::InputSpec,
) -> Vec<String> {
    let upper = format!("$ESUS_IR_INPUT_{}", name.to_ascii_uppercase());
    let mut sources = Vec::new();
    if kind == InputType::Secret {
        sources.push(format!("--secret-file {name}=PATH"));
        sources.push(upper);
        if let Some(e) = env {
            sources.push(format!("${e}"));
        }
        if spec.required {
            sources.push("a hidden prompt (interactive runs)".into());
        }
    } else {
        sources.push(format!("--input {name}=VALUE"));
        sources.push("--inputs-file FILE".into());
        sources.push(upper);
        if let Some(e) = env {
            sources.push(format!("${e}"));
        }
        if let Some(d) = &spec.default {
            sources.push(format!("the default {d}"));
        }
    }
    sources
}

/// The text form.
pub fn render_text(d: &Description) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", d.name, d.source);
    if !d.description.is_empty() {
        out.push('\n');
        for line in d.description.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    render_inputs(&mut out, &d.inputs);
    out.push_str("\nSteps (in run order; steps in one layer may run side by side):\n");
    for (n, s) in d.steps.iter().enumerate() {
        render_step(&mut out, n + 1, s);
    }
    render_permissions(&mut out, &d.permissions);
    out.push_str(
        "\nDestructive steps ask first unless approved with --yes (not typed ones) or --approve STEP.\n",
    );
    out
}

/// The inputs section: each input's type, whether it is required, and where its value may
/// come from (a secret never from the command line).
fn render_inputs(out: &mut String, inputs: &[InputDoc]) {
    out.push_str("\nInputs");
    if inputs.is_empty() {
        out.push_str(": none\n");
    } else {
        out.push_str(" (each value comes from the first source listed that has one):\n");
    }
    for i in inputs {
        let need = if i.required { "required" } else { "optional" };
        let _ = writeln!(out, "  {}  {}, {need}", i.name, i.kind);
        if !i.description.is_empty() {
            let _ = writeln!(out, "      {}", one_line(&i.description));
        }
        if let Some(p) = &i.pattern {
            let _ = writeln!(out, "      pattern: {p}");
        }
        let never = if i.kind == "secret" {
            "; never from the command line"
        } else {
            ""
        };
        let _ = writeln!(out, "      from: {}{never}", i.sources.join(", "));
    }
}

/// One step, numbered `n` in run order: its call and effect, how it is confirmed, its
/// conditions and what ESUS requires for it.
fn render_step(out: &mut String, n: usize, s: &StepDoc) {
    let _ = writeln!(
        out,
        "  {}. {}  [layer {}]  {}",
        n,
        s.id,
        s.layer,
        one_line(&s.name)
    );
    let call = match (&s.method, &s.path) {
        (Some(m), Some(p)) => format!("{m} {p}"),
        (None, Some(p)) => format!("(method set at run time) {p}"),
        (Some(m), None) => format!("{m} (path set at run time)"),
        (None, None) => "(set at run time)".into(),
    };
    let effect = if s.destructive {
        "DESTRUCTIVE"
    } else if !s.also.is_empty() && s.method.as_deref() == Some(Method::Get.as_str()) {
        // The GET itself reads; what writes is listed under it.
        "read"
    } else {
        s.effect
    };
    let _ = writeln!(out, "       {}: {call}  ({effect})", s.action);
    for c in &s.also {
        let _ = writeln!(
            out,
            "         then {} {}  ({}) — {}",
            c.method, c.path, c.effect, c.when
        );
    }
    let _ = writeln!(out, "       confirm: {}", confirm_text(&s.confirm));
    if let Some(w) = &s.when {
        let _ = writeln!(out, "       when: {}", one_line(w));
    }
    if let Some(f) = &s.foreach {
        let _ = writeln!(out, "       foreach: {}", one_line(f));
    }
    if !s.needs.is_empty() {
        let _ = writeln!(out, "       needs: {}", s.needs.join(", "));
    }
    let perms: Vec<String> = s.permissions.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "       ESUS requires: {}", perms.join(" + "));
}

/// How a step is confirmed, in words.
fn confirm_text(c: &ConfirmDoc) -> String {
    match c.mode {
        "yes-no" => match &c.message {
            Some(m) => format!("asks yes/no: \"{}\"", one_line(m)),
            None => "asks yes/no".into(),
        },
        "typed" => format!(
            "the operator types the target{}",
            c.target
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        ),
        _ => "not asked".into(),
    }
}

/// The permissions section, aligned: each permission, who must hold it, and its steps.
fn render_permissions(out: &mut String, permissions: &[PermissionDoc]) {
    out.push_str("\nESUS permissions this runbook needs:\n");
    let width = permissions
        .iter()
        .map(|p| p.text.chars().count())
        .max()
        .unwrap_or(0);
    for p in permissions {
        let who = match p.holder {
            "operator" => "operator's token",
            "affected-user" => "a token given as an input, not the operator's",
            "none" => "no token",
            _ => "cannot be told before the run",
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {who}; steps: {}",
            p.text,
            p.steps.join(", ")
        );
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `graph -i NAME=VALUE` against the runbook's inputs: unknown names and secret inputs
/// (argv is visible to other users) are usage errors.
pub(super) fn graph_inputs(rb: &Runbook, pairs: &[String]) -> Result<Vec<(String, String)>, Error> {
    let mut given = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--input `{pair}`: expected NAME=VALUE")))?;
        let name = name.trim();
        match rb.inputs.get(name) {
            None => {
                let names: Vec<&str> = rb.inputs.keys().map(String::as_str).collect();
                return Err(Error::Usage(format!(
                    "--input {name}: the runbook has no input `{name}` (it has: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            Some(spec) if spec.kind == InputType::Secret => {
                return Err(Error::Usage(format!(
                    "--input {name}: `{name}` is secret and cannot be given on the command line"
                )));
            }
            Some(_) => given.push((name.to_string(), value.to_string())),
        }
    }
    Ok(given)
}
