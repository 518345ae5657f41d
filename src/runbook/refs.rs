//! Checking what templates and expressions read: every name must exist, data may only flow
//! along `needs`, and anything derived from a secret is treated as secret.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::diagnostic::Problems;
use super::model::{InputType, Runbook, Step};
use super::span::{Span, index_path, key_path};
use super::validate::ident_re;
use crate::esus::actions::ActionSpec;
use crate::graph::StepGraph;
use crate::template::{Engine, TemplateError};

/// Global functions a template may call.
const GLOBALS: &[&str] = &[
    "now",
    "range",
    "dict",
    "namespace",
    "loop",
    "true",
    "false",
    "none",
];

/// Whether a name an expression reads is fixed before the run (a global function or constant),
/// so that an expression reading only such names can be evaluated by `validate`.
pub(super) fn is_constant_name(name: &str) -> bool {
    let head = name.split('.').next().unwrap_or(name);
    GLOBALS.contains(&head) && head != "loop"
}

/// Which names a template may read where it appears.
#[derive(Debug, Clone, Copy)]
pub(super) struct RefScope {
    step: usize,
    item: bool,
    response: bool,
    display: bool,
}

impl RefScope {
    /// `when` and `foreach`: inputs and earlier steps only.
    pub(super) fn plain(step: usize) -> Self {
        RefScope {
            step,
            item: false,
            response: false,
            display: false,
        }
    }

    /// Text shown to people (`name`, confirm messages, `save`): no secrets.
    pub(super) fn display(step: usize, s: &Step) -> Self {
        RefScope {
            step,
            item: s.foreach.is_some(),
            response: false,
            display: true,
        }
    }

    /// Action parameters.
    pub(super) fn with(step: usize, s: &Step) -> Self {
        RefScope {
            step,
            item: s.foreach.is_some(),
            response: false,
            display: false,
        }
    }

    fn output(step: usize, s: &Step) -> Self {
        RefScope {
            step,
            item: s.foreach.is_some(),
            response: true,
            display: false,
        }
    }
}

/// The reference checker for one runbook.
pub(super) struct Refs<'a> {
    rb: &'a Runbook,
    graph: Option<&'a StepGraph>,
    engine: &'a Engine,
    text: &'a str,
    ids: HashMap<&'a str, usize>,
    secret_inputs: BTreeSet<String>,
    secret_outputs: HashMap<usize, BTreeSet<String>>,
    broken: &'a BTreeSet<usize>,
}

impl<'a> Refs<'a> {
    pub(super) fn new(
        rb: &'a Runbook,
        graph: Option<&'a StepGraph>,
        engine: &'a Engine,
        text: &'a str,
        broken: &'a BTreeSet<usize>,
    ) -> Self {
        let mut ids = HashMap::new();
        for (i, s) in rb.steps.iter().enumerate() {
            ids.entry(s.id.as_str()).or_insert(i);
        }
        let secret_inputs = rb
            .inputs
            .iter()
            .filter(|(_, s)| s.kind == InputType::Secret)
            .map(|(n, _)| n.clone())
            .collect();
        Refs {
            rb,
            graph,
            engine,
            text,
            ids,
            secret_inputs,
            secret_outputs: HashMap::new(),
            broken,
        }
    }

    pub(super) fn engine(&self) -> &'a Engine {
        self.engine
    }

    pub(super) fn index_of(&self, id: &str) -> usize {
        self.ids.get(id).copied().unwrap_or(0)
    }

    pub(super) fn set_secret_outputs(&mut self, step: usize, outputs: BTreeSet<String>) {
        self.secret_outputs.insert(step, outputs);
    }

    /// Checks a template string; false when it does not compile.
    pub(super) fn check_template(
        &self,
        src: &str,
        path: &str,
        scope: RefScope,
        p: &mut Problems<'_>,
    ) -> bool {
        if let Err(why) = crate::template::check_restricted(src, false) {
            p.value(path, format!("template: {why}"), "not allowed");
            return false;
        }
        match self.engine.template_refs(src) {
            Ok(refs) => {
                self.check_refs(&refs, path, scope, p);
                true
            }
            Err(e) => {
                self.syntax_problem(&e, path, p);
                false
            }
        }
    }

    /// Checks an expression; returns whether its value is secret.
    pub(super) fn check_expr(
        &self,
        src: &str,
        path: &str,
        scope: RefScope,
        p: &mut Problems<'_>,
    ) -> bool {
        if let Err(why) = crate::template::check_restricted(src, true) {
            p.value(path, format!("expression: {why}"), "not allowed");
            return false;
        }
        match self.engine.expr_refs(src) {
            Ok(refs) => self.check_refs(&refs, path, scope, p),
            Err(e) => {
                self.syntax_problem(&e, path, p);
                false
            }
        }
    }

    /// Checks every string in a parameter value; returns whether any part is secret.
    pub(super) fn check_value(
        &self,
        value: &Value,
        path: &str,
        scope: RefScope,
        p: &mut Problems<'_>,
    ) -> bool {
        match value {
            Value::String(s) => {
                if let Err(why) = crate::template::check_restricted(s, false) {
                    p.value(path, format!("template: {why}"), "not allowed");
                    return false;
                }
                match self.engine.template_refs(s) {
                    Ok(refs) => self.check_refs(&refs, path, scope, p),
                    Err(e) => {
                        self.syntax_problem(&e, path, p);
                        false
                    }
                }
            }
            Value::Array(items) => {
                let mut secret = false;
                for (i, v) in items.iter().enumerate() {
                    secret |= self.check_value(v, &index_path(path, i), scope, p);
                }
                secret
            }
            Value::Object(map) => {
                let mut secret = false;
                for (k, v) in map {
                    secret |= self.check_value(v, &key_path(path, k), scope, p);
                }
                secret
            }
            _ => false,
        }
    }

    /// Checks a step's outputs and returns the names of those that are secret.
    pub(super) fn check_outputs(
        &self,
        step: &Step,
        action: &ActionSpec,
        i: usize,
        sp: &str,
        p: &mut Problems<'_>,
    ) -> BTreeSet<String> {
        let mut secret = BTreeSet::new();
        let op = key_path(sp, "outputs");
        let ident = ident_re();
        for (name, spec) in &step.outputs {
            let path = key_path(&op, name);
            if !ident.is_match(name) {
                p.key(
                    &path,
                    format!("output name `{name}` must match [a-z_][a-z0-9_]*"),
                    "invalid output name",
                );
            }
            let vpath = if p.map().has_key(&key_path(&path, "value")) {
                key_path(&path, "value")
            } else {
                path.clone()
            };
            if let Err(why) = crate::template::check_restricted(spec.expr(), true) {
                p.value(&vpath, format!("expression: {why}"), "not allowed");
                continue;
            }
            let refs = match self.engine.expr_refs(spec.expr()) {
                Ok(r) => r,
                Err(e) => {
                    self.syntax_problem(&e, &vpath, p);
                    continue;
                }
            };
            let derived = self.check_refs(&refs, &vpath, RefScope::output(i, step), p);
            let reads_secret_field = refs.iter().any(|r| {
                r == "response"
                    || action.secret_fields.iter().any(|f| {
                        r == &format!("response.{f}") || r.starts_with(&format!("response.{f}."))
                    })
            }) && !action.secret_fields.is_empty();
            if reads_secret_field && !spec.declared_secret() {
                p.value(&vpath, format!("output `{name}` reads the secret that `{}` returns, but is not marked secret", action.name), "secret output")
                    .with_help(format!("write it as `{name}: {{ value: {}, secret: true }}`", spec.expr()));
            }
            if spec.declared_secret() || derived || reads_secret_field {
                secret.insert(name.clone());
            }
        }
        secret
    }

    /// Reports names that do not exist or may not be read here; returns whether any is secret.
    fn check_refs(
        &self,
        refs: &BTreeSet<String>,
        path: &str,
        scope: RefScope,
        p: &mut Problems<'_>,
    ) -> bool {
        let mut secret = false;
        for r in refs {
            let parts: Vec<&str> = r.split('.').collect();
            match parts[0] {
                "inputs" => secret |= self.check_input_ref(&parts, path, p),
                "steps" => secret |= self.check_step_ref(&parts, path, scope, p),
                "item" | "index" if scope.item => {}
                "item" | "index" => {
                    p.value(
                        path,
                        format!(
                            "`{}` only exists inside a `foreach` step's parameters and outputs",
                            parts[0]
                        ),
                        "no item here",
                    );
                }
                "response" | "status" if scope.response => {}
                "response" | "status" => {
                    p.value(
                        path,
                        format!("`{}` only exists in `outputs`", parts[0]),
                        "no response here",
                    )
                    .with_help("declare an output and read it as `steps.ID.outputs.NAME`");
                }
                g if GLOBALS.contains(&g) => {}
                other => {
                    p.value(path, format!("unknown name `{other}`"), "undefined")
                        .with_help("templates read `inputs.NAME`, `steps.ID.outputs.NAME`, `steps.ID.status`, and `item` in foreach steps");
                }
            }
        }
        if secret && scope.display {
            p.value(path, "a secret value would be displayed here", "secret in displayed text")
                .with_help("names, confirm messages and file names are shown and recorded; keep secrets out of them");
        }
        secret
    }

    fn check_input_ref(&self, parts: &[&str], path: &str, p: &mut Problems<'_>) -> bool {
        let Some(name) = parts.get(1) else {
            return !self.secret_inputs.is_empty();
        };
        if !self.rb.inputs.contains_key(*name) {
            let known: Vec<&str> = self.rb.inputs.keys().map(String::as_str).collect();
            let pr = p.value(
                path,
                format!("undefined input `{name}`"),
                "not declared under `inputs`",
            );
            match super::validate::suggest(name, &known) {
                Some(s) => pr.with_help(format!("did you mean `{s}`?")),
                None => pr.with_help(format!(
                    "declared inputs: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )),
            }
            return false;
        }
        self.secret_inputs.contains(*name)
    }

    fn check_step_ref(
        &self,
        parts: &[&str],
        path: &str,
        scope: RefScope,
        p: &mut Problems<'_>,
    ) -> bool {
        let Some(id) = parts.get(1) else {
            p.value(
                path,
                "read a step as `steps.ID.outputs.NAME` or `steps.ID.status`",
                "whole `steps` map",
            );
            return false;
        };
        let Some(&target) = self.ids.get(id) else {
            let known: Vec<&str> = self.ids.keys().copied().collect();
            let pr = p.value(path, format!("there is no step `{id}`"), "unknown step");
            if let Some(s) = super::validate::suggest(id, &known) {
                pr.with_help(format!("did you mean `{s}`?"));
            }
            return false;
        };
        let me = &self.rb.steps[scope.step].id;
        if target == scope.step {
            p.value(
                path,
                format!("step `{me}` reads its own outputs"),
                "self-reference",
            )
            .with_help("inside `outputs`, read the response as `response`");
            return false;
        }
        if let Some(g) = self.graph
            && !g.is_ancestor(target, scope.step)
        {
            p.value(path, format!("step `{me}` reads `steps.{id}`, but does not wait for `{id}`"), "not an ancestor")
                .with_help(format!("data flows only along `needs`: add `{id}` to the `needs` of `{me}` (directly or through a step it needs)"));
            return false;
        }
        match parts.get(2).copied() {
            None => {
                p.value(
                    path,
                    format!("read step `{id}` as `steps.{id}.outputs.NAME` or `steps.{id}.status`"),
                    "incomplete reference",
                );
                false
            }
            Some("status") => false,
            // A step that did not deserialize has its own problem; what it outputs is unknown.
            Some("outputs") if self.broken.contains(&target) => false,
            Some("outputs") => {
                let outputs = &self.rb.steps[target].outputs;
                let secret = self.secret_outputs.get(&target);
                match parts.get(3) {
                    None => secret.is_some_and(|s| !s.is_empty()),
                    Some(name) if outputs.contains_key(*name) => {
                        secret.is_some_and(|s| s.contains(*name))
                    }
                    Some(name) => {
                        let known: Vec<&str> = outputs.keys().map(String::as_str).collect();
                        p.value(
                            path,
                            format!("step `{id}` has no output `{name}`"),
                            "undefined output",
                        )
                        .with_help(format!(
                            "its outputs: {}",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ));
                        false
                    }
                }
            }
            Some(other) => {
                p.value(path, format!("`steps.{id}.{other}` does not exist; use `steps.{id}.outputs.NAME` or `steps.{id}.status`"), "unknown field");
                false
            }
        }
    }

    fn syntax_problem(&self, e: &TemplateError, path: &str, p: &mut Problems<'_>) {
        let node = p.map().node(path);
        let span = match (&e.range, self.text.as_bytes().get(node.offset)) {
            // Inside a plain or quoted one-line scalar, the engine's range maps onto the file.
            (Some(r), Some(first)) if !matches!(first, b'|' | b'>') => {
                let quote = usize::from(matches!(first, b'"' | b'\''));
                let start = node.offset + quote + r.start;
                let len = (r.end.saturating_sub(r.start)).max(1);
                if start + len <= self.text.len() {
                    Span::new(start, len)
                } else {
                    node
                }
            }
            _ => node,
        };
        p.span(
            span,
            format!("template syntax: {}", e.message),
            "template error",
        );
    }
}
