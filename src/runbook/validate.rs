//! Meaning checks on a parsed runbook: ids, the step graph, actions and their parameters,
//! templates and the names they read, secrets, paths. Every problem is collected, none panics.

use std::collections::{BTreeSet, HashMap};

use regex::Regex;
use serde_json::Value;

use super::diagnostic::{Problem, Problems};
use super::model::{Confirm, InputType, Runbook, Step};
use super::refs::{RefScope, Refs};
use super::span::{SourceMap, index_path, key_path};
use crate::esus::actions::{self, ActionSpec, Effect, ParamKind, Place};
use crate::esus::paths;
use crate::graph::StepGraph;
use crate::template::{self, Engine};

/// Runbooks with more steps than this are refused (fan-out belongs in `foreach`).
pub const MAX_STEPS: usize = 500;

/// Most items one `foreach` step fans out over. `validate` refuses a `foreach` that depends on no
/// run-time value (a literal list, `range(…)`) and gives more; the executor enforces the same cap
/// at run time on lists computed from inputs and responses (a flag raises it there).
pub const MAX_FOREACH_ITEMS: usize = 10_000;

/// Why confirmation of a destructive step can never be switched off in the runbook.
const ALWAYS_APPROVED: &str =
    "destructive steps are always approved by a person or by --yes/--approve";

/// A runbook that passed every check, with what the executor needs to know about each step.
#[derive(Debug)]
pub struct Validated {
    /// The runbook as written.
    pub runbook: Runbook,
    /// Its step graph.
    pub graph: StepGraph,
    /// Facts about each step, by index.
    pub steps: Vec<StepInfo>,
}

/// What validation established about one step.
#[derive(Debug, Clone)]
pub struct StepInfo {
    /// The built-in action.
    pub action: &'static ActionSpec,
    /// Its effect (for `http`, from the method).
    pub effect: Effect,
    /// Whether it may be re-sent blindly.
    pub idempotent: bool,
    /// What settles a lost answer (for `http`, from the method).
    pub recovery: crate::esus::actions::Recovery,
    /// Whether and how to ask before running it.
    pub confirm: ConfirmMode,
    /// Outputs that are secret (declared, or derived from a secret).
    pub secret_outputs: BTreeSet<String>,
    /// Parameters whose value is (or derives from) a secret.
    pub secret_params: BTreeSet<String>,
}

/// How a step is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmMode {
    /// Never asked.
    No,
    /// Asked yes/no, with an optional message template.
    Ask(Option<String>),
    /// The operator types the target resource id.
    Typed,
}

impl Validated {
    /// The index of a step id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.runbook.steps.iter().position(|s| s.id == id)
    }
}

/// Validates a parsed runbook; `map` locates problems in `text`.
pub fn validate(runbook: Runbook, map: &SourceMap, text: &str) -> Result<Validated, Vec<Problem>> {
    validate_with(runbook, map, text, &BTreeSet::new(), true, Vec::new())
}

/// Validates what [`parse_partial`](super::parse::parse_partial) read: the structural problems it
/// found are kept, and the meaning of every step that did deserialize is still checked (broken
/// steps take part in the graph with the id and `needs` that could be read).
pub(super) fn validate_parsed(
    parsed: super::parse::Parsed,
    text: &str,
) -> Result<Validated, Vec<Problem>> {
    let super::parse::Parsed {
        runbook,
        map,
        problems,
        broken_steps,
        steps_read,
    } = parsed;
    validate_with(runbook, &map, text, &broken_steps, steps_read, problems)
}

fn validate_with(
    runbook: Runbook,
    map: &SourceMap,
    text: &str,
    broken: &BTreeSet<usize>,
    steps_read: bool,
    structural: Vec<Problem>,
) -> Result<Validated, Vec<Problem>> {
    let mut p = Problems::new(map);
    p.list = structural;
    check_top(&runbook, steps_read, &mut p);
    check_inputs(&runbook, &mut p);
    let graph = build_graph(&runbook, broken, &mut p);
    let engine = Engine::new();
    let mut refs = Refs::new(&runbook, graph.as_ref(), &engine, text, broken);
    let mut steps = Vec::with_capacity(runbook.steps.len());
    let order: Vec<usize> = graph.as_ref().map_or_else(
        || (0..runbook.steps.len()).collect(),
        |g| g.order().to_vec(),
    );
    let mut infos: HashMap<usize, StepInfo> = HashMap::new();
    for i in order {
        if broken.contains(&i) {
            continue;
        }
        if let Some(info) = check_step(&runbook, i, &mut refs, &mut p) {
            refs.set_secret_outputs(i, info.secret_outputs.clone());
            infos.insert(i, info);
        }
    }
    check_save_names(&runbook, broken, &infos, &mut p);
    for i in 0..runbook.steps.len() {
        if let Some(info) = infos.remove(&i) {
            steps.push(info);
        }
    }
    match graph {
        Some(graph) if p.list.is_empty() && steps.len() == runbook.steps.len() => Ok(Validated {
            runbook,
            graph,
            steps,
        }),
        _ => {
            let mut list = p.list;
            list.sort_by_key(|x| x.span.offset);
            list.dedup();
            Err(list)
        }
    }
}

fn check_top(rb: &Runbook, steps_read: bool, p: &mut Problems<'_>) {
    if rb.version != 1 {
        p.value(
            "version",
            format!("unsupported runbook version {}", rb.version),
            "only version 1 exists",
        );
    }
    if rb.name.trim().is_empty() {
        p.value("name", "the runbook name is empty", "give it a name");
    }
    if rb.steps.is_empty() && steps_read {
        p.key("steps", "a runbook needs at least one step", "no steps");
    }
    if rb.steps.len() > MAX_STEPS {
        p.key(
            "steps",
            format!("{} steps; the limit is {MAX_STEPS}", rb.steps.len()),
            "too many steps",
        )
        .with_help("fan out over many items with `foreach` instead of repeating steps");
    }
}

fn check_inputs(rb: &Runbook, p: &mut Problems<'_>) {
    let name_re = ident_re();
    let env_re = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("static regex");
    for (name, spec) in &rb.inputs {
        let path = key_path("inputs", name);
        if !name_re.is_match(name) {
            p.key(
                &path,
                format!("input name `{name}` must match [a-z_][a-z0-9_]*"),
                "invalid input name",
            );
        }
        if let Some(default) = &spec.default {
            if spec.kind == InputType::Secret {
                p.value(
                    &key_path(&path, "default"),
                    format!("secret input `{name}` cannot have a default"),
                    "secrets never live in runbooks",
                )
                .with_help(
                    "supply it at run time from its `env` variable, --secret-file or the prompt",
                );
            } else if !value_has_type(default, spec.kind) {
                p.value(
                    &key_path(&path, "default"),
                    format!("the default of `{name}` is not a {}", spec.kind.as_str()),
                    "wrong type",
                );
            }
        }
        if let Some(pattern) = &spec.pattern {
            let ppath = key_path(&path, "pattern");
            if !matches!(spec.kind, InputType::String | InputType::Secret) {
                p.value(
                    &ppath,
                    format!(
                        "`pattern` only applies to string inputs; `{name}` is {}",
                        spec.kind.as_str()
                    ),
                    "not a string input",
                );
            }
            match Regex::new(&format!("^(?:{pattern})$")) {
                Err(e) => {
                    p.value(
                        &ppath,
                        format!(
                            "invalid pattern for `{name}`: {}",
                            first_line(&e.to_string())
                        ),
                        "not a regular expression",
                    );
                }
                Ok(re) => {
                    if let Some(Value::String(d)) = &spec.default
                        && !re.is_match(d)
                    {
                        p.value(
                            &key_path(&path, "default"),
                            format!("the default of `{name}` does not match its pattern"),
                            "does not match",
                        );
                    }
                }
            }
        }
        if let Some(env) = &spec.env
            && !env_re.is_match(env)
        {
            p.value(
                &key_path(&path, "env"),
                format!("`{env}` is not an environment variable name"),
                "invalid name",
            );
        }
    }
}

fn build_graph(rb: &Runbook, broken: &BTreeSet<usize>, p: &mut Problems<'_>) -> Option<StepGraph> {
    let id_re = Regex::new(r"^[a-z0-9_-]{1,64}$").expect("static regex");
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut ok = true;
    for (i, step) in rb.steps.iter().enumerate() {
        let path = key_path(&index_path("steps", i), "id");
        if !id_re.is_match(&step.id) {
            p.value(
                &path,
                format!(
                    "step id `{}` must be 1–64 characters of [a-z0-9_-]",
                    step.id
                ),
                "invalid id",
            );
            ok = false;
        }
        if let Some(&j) = first.get(step.id.as_str()) {
            p.value(
                &path,
                format!(
                    "duplicate step id `{}` (first used by step {} of the file)",
                    step.id,
                    j + 1
                ),
                "duplicate id",
            )
            .with_help("step ids must be unique; rename one of them");
            ok = false;
        } else {
            first.insert(&step.id, i);
        }
        if step.name.trim().is_empty() && !broken.contains(&i) {
            p.value(
                &key_path(&index_path("steps", i), "name"),
                format!("step `{}` has an empty name", step.id),
                "empty name",
            );
        }
    }
    let mut needs = Vec::with_capacity(rb.steps.len());
    for (i, step) in rb.steps.iter().enumerate() {
        let mut mine = Vec::new();
        match &step.needs {
            None if i > 0 => mine.push(i - 1),
            None => {}
            Some(list) => {
                for (j, need) in list.iter().enumerate() {
                    match first.get(need.as_str()) {
                        Some(&k) => mine.push(k),
                        None => {
                            let known: Vec<&str> = rb.steps.iter().map(|s| s.id.as_str()).collect();
                            let hint =
                                suggest(need, &known).map(|s| format!("did you mean `{s}`?"));
                            let pr = p.value(
                                &index_path(&key_path(&index_path("steps", i), "needs"), j),
                                format!("step `{}` needs `{need}`, which is not a step", step.id),
                                "unknown step",
                            );
                            if let Some(h) = hint {
                                pr.with_help(h);
                            }
                            ok = false;
                        }
                    }
                }
            }
        }
        needs.push(mine);
    }
    if !ok {
        return None;
    }
    match StepGraph::new(rb.steps.iter().map(|s| s.id.clone()).collect(), needs) {
        Ok(g) => Some(g),
        Err(cycle) => {
            let start = cycle
                .0
                .first()
                .and_then(|id| first.get(id.as_str()))
                .copied()
                .unwrap_or(0);
            let spath = index_path("steps", start);
            let at = if p.map().has_key(&key_path(&spath, "needs")) {
                key_path(&spath, "needs")
            } else {
                key_path(&spath, "id")
            };
            p.value(&at, format!("the steps wait for each other in a cycle: {cycle}"), "cycle starts here")
                .with_help("each arrow reads \"waits for\"; remove one of these needs (a step without `needs` waits for the one before it)");
            None
        }
    }
}

fn check_step(
    rb: &Runbook,
    i: usize,
    refs: &mut Refs<'_>,
    p: &mut Problems<'_>,
) -> Option<StepInfo> {
    let step = &rb.steps[i];
    let sp = index_path("steps", i);
    let Some(action) = actions::lookup(&step.action) else {
        let names: Vec<&str> = actions::ACTIONS.iter().map(|a| a.name).collect();
        let help = match suggest(&step.action, &names) {
            Some(s) => format!("did you mean `{s}`? (`esus-ir schema` lists every action)"),
            None => "see docs/runbook-format.md for the built-in actions".into(),
        };
        p.value(
            &key_path(&sp, "action"),
            format!("unknown action `{}`", step.action),
            "unknown action",
        )
        .with_help(help);
        return None;
    };
    let method = step.with.get("method").and_then(Value::as_str);
    let effect = action.effect_with(method);
    let idempotent = action.idempotent_with(method);
    let secret_params = check_params(step, action, &sp, refs, p);
    if action.name == "http" {
        check_http(step, &sp, p);
    }
    check_header_lines(step, &sp, p);
    let confirm = confirm_mode(step, action, effect, &sp, refs, p);
    check_policy(step, action, idempotent, &sp, p);
    refs.check_template(
        &step.name,
        &key_path(&sp, "name"),
        RefScope::display(i, step),
        p,
    );
    if let Some(when) = &step.when {
        let path = key_path(&sp, "when");
        if refs.check_expr(when, &path, RefScope::plain(i), p) && {
            // Whether a secret was supplied (`inputs.token is not none`) is known for real; only
            // its value is a placeholder. So presence tests may look at a secret, nothing else.
            let rest = presence_re().replace_all(when, "true");
            let mut scratch = Problems::new(p.map());
            refs.check_expr(&rest, &path, RefScope::plain(i), &mut scratch)
        } {
            p.value(
                &path,
                format!("the `when` of step `{}` reads a secret value", step.id),
                "secret in a condition",
            )
            .with_help("conditions are evaluated against the `[secret]` placeholder, never the real value, so a secret can only be tested with `is none` / `is not none`");
        }
    }
    if step.if_permitted && action.check {
        p.value(
            &key_path(&sp, "if_permitted"),
            format!(
                "step `{}` is a containment check: `if_permitted` would turn a proof it cannot make into \"not needed\"",
                step.id
            ),
            "if_permitted on a check",
        )
        .with_help("a containment check the operator may not run must leave the run NOT proven: remove `if_permitted`");
    } else if step.if_permitted && effect != Effect::Read {
        p.value(
            &key_path(&sp, "if_permitted"),
            format!(
                "step `{}` writes: `if_permitted` would skip it quietly for an operator without the right",
                step.id
            ),
            "if_permitted on a write",
        )
        .with_help("`if_permitted` is for evidence an operator may lack the right to read (ESUS's audit-chain check); a write the operator cannot send must stop the run: remove `if_permitted`");
    }
    if let Some(foreach) = &step.foreach {
        let path = key_path(&sp, "foreach");
        if refs.check_expr(foreach, &path, RefScope::plain(i), p) {
            p.value(
                &path,
                format!("the `foreach` of step `{}` reads a secret value", step.id),
                "secret in a foreach",
            )
            .with_help("lists are computed against the `[secret]` placeholder, never the real value; fan out over ids, not secrets");
        } else {
            check_constant_foreach(foreach, &path, refs, p);
        }
    }
    if let Some(save) = &step.save {
        let path = key_path(&sp, "save");
        if refs.check_template(save, &path, RefScope::display(i, step), p)
            && !template::is_template(save)
            && let Err(why) = paths::check_save_name(save)
        {
            p.value(
                &path,
                format!("`save: {save}` is refused: {why}"),
                "leaves the evidence folder",
            );
        }
    }
    let secret_outputs = refs.check_outputs(step, action, i, &sp, p);
    Some(StepInfo {
        action,
        effect,
        idempotent,
        recovery: action.recovery_with(method),
        confirm,
        secret_outputs,
        secret_params,
    })
}

/// A `foreach` that reads no run-time value always gives the same list: compute it now and refuse
/// it when it is not a list or longer than [`MAX_FOREACH_ITEMS`].
fn check_constant_foreach(src: &str, path: &str, refs: &Refs<'_>, p: &mut Problems<'_>) {
    let Ok(names) = refs.engine().expr_refs(src) else {
        return;
    };
    if !names.iter().all(|n| super::refs::is_constant_name(n)) {
        return;
    }
    let ctx = template::to_ctx(&Value::Object(serde_json::Map::new()));
    match refs.engine().count_items(src, &ctx, MAX_FOREACH_ITEMS) {
        Ok(Ok(n)) if n > MAX_FOREACH_ITEMS => {
            p.value(
                path,
                format!(
                    "this `foreach` gives more than {MAX_FOREACH_ITEMS} items; one step fans out over at most {MAX_FOREACH_ITEMS}"
                ),
                "too many items",
            )
            .with_help("split the work, or compute the list from inputs (the run-time cap can be raised by a flag)");
        }
        Ok(Ok(_)) => {}
        Ok(Err(kind)) => {
            p.value(
                path,
                format!("`foreach` must give a list; `{}` gives {kind}", src.trim()),
                "not a list",
            );
        }
        Err(e) => {
            p.value(
                path,
                format!("this `foreach` cannot be computed: {}", e.message),
                "always fails",
            );
        }
    }
}

/// Two steps saving evidence to the same literal name would collide (evidence is never
/// overwritten, so the second would land under another name than the runbook says).
fn check_save_names(
    rb: &Runbook,
    broken: &BTreeSet<usize>,
    infos: &HashMap<usize, StepInfo>,
    p: &mut Problems<'_>,
) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    // Explicit names first, so a collision is reported at a `save` the runbook wrote.
    let mut named: Vec<(usize, String, bool)> = Vec::new();
    for (i, step) in rb.steps.iter().enumerate() {
        if broken.contains(&i) {
            continue;
        }
        match &step.save {
            Some(save) if !template::is_template(save) => {
                named.push((i, save.trim_start_matches("./").to_string(), true));
            }
            None if infos.get(&i).is_some_and(|info| info.action.paged) => {
                named.push((i, format!("{}.json", step.id), false));
            }
            _ => {}
        }
    }
    named.sort_by_key(|(_, _, explicit)| !explicit);
    for (i, name, explicit) in named {
        match seen.get(&name) {
            Some(&j) => {
                let (at, other) = if explicit { (i, j) } else { (j, i) };
                p.value(
                    &key_path(&index_path("steps", at), "save"),
                    format!(
                        "steps `{}` and `{}` both save their evidence to `{name}`",
                        rb.steps[other].id, rb.steps[at].id
                    ),
                    "evidence name used twice",
                )
                .with_help("evidence is never overwritten: give each step its own `save` name (a paged step without `save` uses `ID.json`)");
            }
            None => {
                seen.insert(name, i);
            }
        }
    }
}

fn check_params(
    step: &Step,
    action: &ActionSpec,
    sp: &str,
    refs: &mut Refs<'_>,
    p: &mut Problems<'_>,
) -> BTreeSet<String> {
    let wp = key_path(sp, "with");
    let mut secret_params = BTreeSet::new();
    for (name, value) in &step.with {
        let path = key_path(&wp, name);
        let Some(param) = action.param(name) else {
            let names: Vec<&str> = action.params.iter().map(|x| x.name).collect();
            let list = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            p.key(
                &path,
                format!("`{}` has no parameter `{name}`", action.name),
                "unknown parameter",
            )
            .with_help(format!("its parameters: {list}"));
            continue;
        };
        let secret = refs.check_value(
            value,
            &path,
            RefScope::with(refs.index_of(&step.id), step),
            p,
        );
        if secret {
            secret_params.insert(name.clone());
        }
        if param.kind == ParamKind::Secret {
            if !secret {
                p.value(&path, format!("`{name}` is a credential: it must come from a secret input or a secret output, never a literal"), "not a secret")
                    .with_help("declare an input with `type: secret` and use `{{ inputs.NAME }}`");
            }
            continue;
        }
        if secret
            && (matches!(param.place, Place::Path | Place::Query)
                || (action.name == "http" && matches!(name.as_str(), "path" | "query")))
        {
            p.value(
                &path,
                format!(
                    "`{name}` would put a secret value into the URL, where it is logged and shown"
                ),
                "secret in URL",
            );
            continue;
        }
        if !literal_fits(value, param.kind) {
            p.value(
                &path,
                format!(
                    "`{name}` of `{}` must be {}",
                    action.name,
                    kind_words(param.kind)
                ),
                "wrong type",
            );
        }
    }
    for param in action.params.iter().filter(|x| x.required) {
        if !step.with.contains_key(param.name) {
            let at = if p.map().has_key(&wp) {
                wp.clone()
            } else {
                key_path(sp, "action")
            };
            p.key(
                &at,
                format!(
                    "`{}` needs the parameter `{}` under `with`",
                    action.name, param.name
                ),
                "missing parameter",
            );
        }
    }
    secret_params
}

fn check_http(step: &Step, sp: &str, p: &mut Problems<'_>) {
    let wp = key_path(sp, "with");
    if let Some(Value::String(m)) = step.with.get("method")
        && !template::is_template(m)
        && actions::Method::parse(m).is_none()
    {
        p.value(
            &key_path(&wp, "method"),
            format!("`{m}` is not one of GET, POST, PUT, PATCH, DELETE"),
            "unknown method",
        );
    }
    if let Some(Value::String(path)) = step.with.get("path") {
        let literal: String = literal_parts(path);
        if let Err(why) = paths::check_relative_path(if template::is_template(path) {
            "/x"
        } else {
            path
        })
        .and_then(|()| {
            if template::is_template(path)
                && (literal.contains("://")
                    || literal.starts_with("//")
                    || literal.contains("..")
                    || literal.contains('\\'))
            {
                Err("the path's literal text could leave the base URL".into())
            } else if literal.chars().any(|c| c.is_control() || c.is_whitespace()) {
                Err("the path contains whitespace or control characters (CR/LF)".into())
            } else if literal.contains('@') {
                Err("`@` in a path looks like `user@host`".into())
            } else {
                Ok(())
            }
        }) {
            p.value(
                &key_path(&wp, "path"),
                format!("`http` path `{path}` is refused: {why}"),
                "leaves the base URL",
            )
            .with_help(
                "`http` only reaches ESUS: give a path such as `/api-keys/{{ inputs.key_id }}`",
            );
        }
    }
}

/// Literal strings inside a `header` parameter (subscription channel headers) may not hold CR or
/// LF: one header each, never a smuggled second one.
fn check_header_lines(step: &Step, sp: &str, p: &mut Problems<'_>) {
    let Some(value) = step.with.get("header") else {
        return;
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if items
        .iter()
        .any(|v| v.as_str().is_some_and(|s| s.contains(['\r', '\n'])))
    {
        p.value(
            &key_path(&key_path(sp, "with"), "header"),
            "a header holds a line break (CR/LF), which would smuggle in another header",
            "line break in a header",
        );
    }
}

/// The text of a template outside its `{{ }}` / `{% %}` blocks.
fn literal_parts(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(start) = rest.find(['{']) {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let close = if after.starts_with("{{") {
            "}}"
        } else if after.starts_with("{%") {
            "%}"
        } else {
            ""
        };
        if close.is_empty() {
            out.push('{');
            rest = &after[1..];
            continue;
        }
        match after.find(close) {
            Some(end) => rest = &after[end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

fn confirm_mode(
    step: &Step,
    action: &ActionSpec,
    effect: Effect,
    sp: &str,
    refs: &mut Refs<'_>,
    p: &mut Problems<'_>,
) -> ConfirmMode {
    let cp = key_path(sp, "confirm");
    match &step.confirm {
        None => {
            if effect == Effect::Destructive {
                ConfirmMode::Ask(None)
            } else {
                ConfirmMode::No
            }
        }
        Some(Confirm::Bool(true)) => ConfirmMode::Ask(None),
        Some(Confirm::Bool(false)) if effect == Effect::Destructive => {
            p.value(
                &cp,
                format!(
                    "step `{}` is destructive (`{}`) and cannot switch off confirmation: {ALWAYS_APPROVED}",
                    step.id, action.name
                ),
                "confirm: false on a destructive step",
            )
            .with_help("remove `confirm: false`; an unattended run approves with --yes (or --approve STEP_ID)");
            ConfirmMode::Ask(None)
        }
        Some(Confirm::Bool(false)) => ConfirmMode::No,
        Some(Confirm::Typed) => {
            // A fan-out types the number of requests it sends; one request, its target's id.
            if action.target.is_none() && step.foreach.is_none() {
                p.value(
                    &cp,
                    format!(
                        "`confirm: typed` needs a resource id to type, and `{}` has none",
                        action.name
                    ),
                    "nothing to type",
                )
                .with_help("use `confirm: true` or a message instead");
            }
            ConfirmMode::Typed
        }
        Some(Confirm::Message(m)) => {
            let i = refs.index_of(&step.id);
            refs.check_template(m, &cp, RefScope::display(i, step), p);
            ConfirmMode::Ask(Some(m.clone()))
        }
    }
}

fn check_policy(
    step: &Step,
    action: &ActionSpec,
    idempotent: bool,
    sp: &str,
    p: &mut Problems<'_>,
) {
    for (j, code) in step.expect.iter().enumerate() {
        let at = index_path(&key_path(sp, "expect"), j);
        if !(100..=599).contains(code) {
            p.value(&at, format!("{code} is not an HTTP status"), "not 100–599");
        } else if let Some(why) = action.expect_refused(*code) {
            p.value(&at, why, "a refusal cannot be expected")
                .with_help("let the step fail, or use `on_failure: continue`; the containment check decides whether the credential is dead");
        }
    }
    if let Some(retry) = &step.retry {
        let rp = key_path(sp, "retry");
        if !(1..=10).contains(&retry.attempts) {
            p.value(
                &key_path(&rp, "attempts"),
                format!("retry attempts must be 1–10, not {}", retry.attempts),
                "out of range",
            );
        }
        if !idempotent && retry.attempts > 1 {
            p.key(&rp, format!("`{}` is not idempotent and is never re-sent blindly", action.name), "retry not allowed")
                .with_help("esus-ir checks the server's state when the outcome of such a request is unknown; remove `retry`");
        }
    }
    if let Some(t) = step.timeout
        && (t.0.is_zero() || t.0 > std::time::Duration::from_secs(3600))
    {
        p.value(
            &key_path(sp, "timeout"),
            "timeout must be between 1ms and 1h",
            "out of range",
        );
    }
    match (&step.foreach, step.concurrency) {
        (None, Some(_)) => {
            p.key(
                &key_path(sp, "concurrency"),
                "`concurrency` only applies to `foreach` steps",
                "no foreach",
            );
        }
        (Some(_), Some(c)) if !(1..=256).contains(&c) => {
            p.value(
                &key_path(sp, "concurrency"),
                format!("concurrency must be 1–256, not {c}"),
                "out of range",
            );
        }
        _ => {}
    }
}

fn value_has_type(v: &Value, kind: InputType) -> bool {
    match kind {
        InputType::String | InputType::Secret => v.is_string(),
        InputType::Integer => v.is_i64() || v.is_u64(),
        InputType::Boolean => v.is_boolean(),
        InputType::List => v.is_array(),
    }
}

fn literal_fits(v: &Value, kind: ParamKind) -> bool {
    if let Value::String(s) = v
        && template::is_template(s)
    {
        return true;
    }
    match kind {
        ParamKind::String => v.is_string() || v.is_number(),
        ParamKind::Integer => v.is_i64() || v.is_u64(),
        ParamKind::Boolean => v.is_boolean(),
        ParamKind::List => v.is_array(),
        ParamKind::Object => v.is_object(),
        ParamKind::Any | ParamKind::Secret => true,
    }
}

fn kind_words(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::String => "text",
        ParamKind::Integer => "a whole number",
        ParamKind::Boolean => "true or false",
        ParamKind::List => "a list",
        ParamKind::Object => "a mapping",
        ParamKind::Any | ParamKind::Secret => "a value",
    }
}

/// `inputs.X is not none`, `steps.ID.outputs.X is defined`, …: tests of presence only.
fn presence_re() -> Regex {
    Regex::new(
        r"\b(?:inputs|steps)(?:\.[A-Za-z0-9_-]+)+\s+is\s+(?:not\s+)?(?:none|defined|undefined)\b",
    )
    .expect("static regex")
}

/// `[a-z_][a-z0-9_]*`: names usable as `inputs.NAME` in templates.
pub(super) fn ident_re() -> Regex {
    Regex::new(r"^[a-z_][a-z0-9_]*$").expect("static regex")
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

/// The closest known name within a small edit distance.
pub fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < word.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("api_keys.rotat", &["api_keys.rotate", "api_keys.delete"]),
            Some("api_keys.rotate")
        );
        assert_eq!(suggest("zzz", &["api_keys.rotate"]), None);
    }

    #[test]
    fn if_permitted_is_for_reads_only() {
        let read = "version: 1\nname: t\nsteps:\n  - {id: chain, name: C, action: audit.verify_chain, if_permitted: true}\n";
        assert!(crate::runbook::check(read).is_ok());
        let write = "version: 1\nname: t\nsteps:\n  - {id: rm, name: R, action: api_keys.delete, with: {id: k-1}, if_permitted: true}\n";
        let Err(problems) = crate::runbook::check(write) else {
            panic!("an if_permitted write is refused")
        };
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("`if_permitted` would skip it quietly")),
            "{problems:?}"
        );
        let check = "version: 1\nname: t\nsteps:\n  - {id: dead, name: D, action: api_keys.check_revoked, with: {id: k-1}, if_permitted: true}\n";
        let Err(problems) = crate::runbook::check(check) else {
            panic!("an if_permitted check is refused")
        };
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("is a containment check")),
            "{problems:?}"
        );
    }

    #[test]
    fn literal_parts_drop_template_blocks() {
        assert_eq!(
            literal_parts("/a/{{ x }}/b{% if y %}c{% endif %}"),
            "/a//bc"
        );
    }
}
