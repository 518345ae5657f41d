//! What templates see during a run: inputs and the results of finished steps.
//!
//! Two views are kept: the display view, where every secret is [`REDACTED`] and which is used for
//! everything shown or recorded, and the secret store, consulted only to render the few parameters
//! that validation proved are secret (credentials). A rendered secret is wrapped at once.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::inputs::Inputs;
use crate::event::{REDACTED, StepStatus};
use crate::template::{self, CtxValue};

/// The template context of a run.
#[derive(Debug, Clone)]
pub struct Context {
    /// Shared, never changed: a fan-out's inputs hold its every item, and the executor takes a
    /// snapshot of the context for each step it starts (issue 21: each copy grew with N).
    inputs: Arc<Map<String, Value>>,
    steps: Map<String, Value>,
    secrets: HashMap<String, SecretString>,
    display: CtxValue,
    /// Steps standing as placeholders (not run yet, in a plan made ahead of them).
    pending: std::collections::BTreeSet<String>,
    /// The operator as this leg's preflight read them (`GET /auth/me`): what `if_permitted`
    /// steps are decided on. Not visible to templates.
    operator: Option<Value>,
}

impl Context {
    /// A context holding the run's inputs.
    pub fn new(inputs: &Inputs) -> Self {
        let secrets = inputs
            .secrets
            .iter()
            .map(|(k, v)| (format!("inputs.{k}"), v.clone()))
            .collect();
        let mut c = Context {
            inputs: inputs.display.clone(),
            steps: Map::new(),
            secrets,
            display: CtxValue::UNDEFINED,
            pending: Default::default(),
            operator: None,
        };
        c.rebuild();
        c
    }

    /// Records a finished step: its status and outputs (secret ones given separately).
    pub fn set_step(
        &mut self,
        id: &str,
        status: StepStatus,
        outputs: Map<String, Value>,
        secret: HashMap<String, SecretString>,
    ) {
        let mut shown = outputs;
        for (name, value) in secret {
            shown.insert(name.clone(), Value::from(REDACTED));
            self.secrets
                .insert(format!("steps.{id}.outputs.{name}"), value);
        }
        let status = serde_json::to_value(status).unwrap_or(Value::Null);
        let mut entry = Map::new();
        entry.insert("status".into(), status);
        entry.insert("outputs".into(), Value::Object(shown));
        self.steps.insert(id.to_string(), Value::Object(entry));
        self.pending.remove(id);
        self.rebuild();
    }

    /// The output `name` of finished step `step` as recorded (secret ones redacted); none while
    /// the step stands as a placeholder.
    pub fn output(&self, step: &str, name: &str) -> Option<&Value> {
        if self.pending.contains(step) {
            return None;
        }
        self.steps.get(step)?.get("outputs")?.get(name)
    }

    /// Records who the operator is (`GET /auth/me`'s body), once the preflight has read it.
    pub fn set_operator(&mut self, me: Value) {
        self.operator = Some(me);
    }

    /// The operator as the preflight read them; none before it (or in an offline dry-run).
    pub fn operator(&self) -> Option<&Value> {
        self.operator.as_ref()
    }

    /// Whether step `id` stands as a placeholder: what reads it is not known yet.
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.contains(id)
    }

    /// Records placeholders for a step that did not run (dry-run): `<id.output>` for each output.
    pub fn set_placeholder(&mut self, id: &str, outputs: impl IntoIterator<Item = String>) {
        let shown: Map<String, Value> = outputs
            .into_iter()
            .map(|o| (o.clone(), Value::from(format!("<{id}.{o}>"))))
            .collect();
        let mut entry = Map::new();
        entry.insert("status".into(), Value::from(format!("<{id}.status>")));
        entry.insert("outputs".into(), Value::Object(shown));
        self.steps.insert(id.to_string(), Value::Object(entry));
        self.pending.insert(id.to_string());
        self.rebuild();
    }

    /// The list input `expr` names, when `expr` is exactly `inputs.NAME` and that input is a
    /// list: a fan-out over it reads the run's inputs where they are instead of a copy that a
    /// template evaluation would make (issue 21). Anything else is for the template engine.
    pub fn list_input(&self, expr: &str) -> Option<crate::plan::Items> {
        let name = expr.trim().strip_prefix("inputs.")?;
        let plain =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        (plain && self.inputs.get(name)?.is_array())
            .then(|| crate::plan::Items::Input(self.inputs.clone(), name.to_string()))
    }

    /// The display view (secrets redacted).
    pub fn display(&self) -> &CtxValue {
        &self.display
    }

    /// A view with the real secret values, for rendering a secret parameter only.
    pub fn with_secrets(&self) -> CtxValue {
        let mut root = Map::new();
        let mut inputs = (*self.inputs).clone();
        let mut steps = self.steps.clone();
        for (path, value) in &self.secrets {
            let parts: Vec<&str> = path.split('.').collect();
            let real = Value::from(value.expose_secret());
            match parts.as_slice() {
                ["inputs", name] => {
                    inputs.insert((*name).to_string(), real);
                }
                ["steps", id, "outputs", name] => {
                    if let Some(Value::Object(outs)) =
                        steps.get_mut(*id).and_then(|s| s.get_mut("outputs"))
                    {
                        let parsed = serde_json::from_str(value.expose_secret())
                            .ok()
                            .filter(|v: &Value| !v.is_string());
                        outs.insert((*name).to_string(), parsed.unwrap_or(real));
                    }
                }
                _ => {}
            }
        }
        root.insert("inputs".into(), Value::Object(inputs));
        root.insert("steps".into(), Value::Object(steps));
        template::to_ctx(&Value::Object(root))
    }

    fn rebuild(&mut self) {
        // Serialized from references (as the map `{"inputs", "steps"}` would be), not from a
        // copy of the inputs.
        self.display = CtxValue::from(minijinja::value::Serde(Root {
            inputs: &self.inputs,
            steps: &self.steps,
        }));
    }
}

/// The display view's root, `{"inputs": …, "steps": …}`, serialized as a map.
struct Root<'a> {
    inputs: &'a Map<String, Value>,
    steps: &'a Map<String, Value>,
}

impl serde::Serialize for Root<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("inputs", self.inputs)?;
        map.serialize_entry("steps", self.steps)?;
        map.end()
    }
}
