//! Rendering a step's parameters into an exact request: the display rendering (secrets as
//! `[secret]`) is what people see and the transcript records; only parameters that validation
//! proved secret are rendered again with real values, and wrapped as secrets at once.

use secrecy::SecretString;
use serde_json::Value;

use super::context::Context;
use crate::esus::request::{self, ApiRequest, Params};
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;
use crate::template::{self, CtxValue, Engine};

/// Renders `step.with` for one call (`item` bound for `foreach` steps).
pub fn params(
    engine: &Engine,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    item: Option<&Value>,
) -> Result<Params, String> {
    let display = bind_item(ctx.display(), item);
    let real = (!info.secret_params.is_empty()).then(|| bind_item(&ctx.with_secrets(), item));
    let mut out = Params::default();
    for (name, value) in &step.with {
        let shown = engine
            .render_value(value, &display)
            .map_err(|e| format!("`with.{name}`: {e}"))?;
        if let (true, Some(real)) = (info.secret_params.contains(name), &real) {
            let secret = engine.render_value(value, real).map_err(|_| {
                format!("`with.{name}`: could not be rendered (secret value not shown)")
            })?;
            match secret {
                Value::Null => {}
                Value::String(s) => {
                    out.secrets.insert(name.clone(), SecretString::from(s));
                }
                other => {
                    out.secrets
                        .insert(name.clone(), SecretString::from(other.to_string()));
                }
            }
        }
        out.display.insert(name.clone(), shown);
    }
    Ok(out)
}

/// Renders parameters and builds the request.
pub fn request(
    engine: &Engine,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    item: Option<&Value>,
) -> Result<ApiRequest, String> {
    let p = params(engine, ctx, step, info, item)?;
    request::build(info.action, &p).map_err(|e| e.0)
}

/// The context with `item` bound, when there is one.
pub fn bind_item(base: &CtxValue, item: Option<&Value>) -> CtxValue {
    match item {
        Some(v) => template::bind(base, "item", template::to_ctx(v)),
        None => base.clone(),
    }
}
