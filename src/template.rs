//! Templates and expressions over inputs and step outputs, in a strict engine.
//!
//! Runbook strings such as `"{{ inputs.key_id }}"` are minijinja templates; `when`, `foreach` and
//! `outputs` are minijinja expressions. Undefined names are errors, never empty strings: a typo in
//! a key id must stop a run, not send `DELETE /api-keys/`. A string that is exactly one
//! `{{ expression }}` keeps the expression's type, so `grace_hours: "{{ 0 }}"` is the number 0.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, Value as JValue};
use serde_json::Value;

/// A template or expression that failed to compile or evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What went wrong, in the engine's words.
    pub message: String,
    /// Byte range inside the template text, when the engine knows it.
    pub range: Option<std::ops::Range<usize>>,
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        let mut message = e
            .detail()
            .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
        if message.is_empty() {
            message = e.to_string();
        }
        TemplateError {
            message,
            range: e.range(),
        }
    }
}

/// The template engine with esus-ir's settings and helper functions.
pub struct Engine {
    env: Environment<'static>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A strict engine with the runbook helpers (`now()`, the filters `days_since`, `days_ago`
    /// and `each`, and the tests `older_than`, `containing` and `matching`).
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // A hostile runbook must not spin forever inside a template.
        env.set_fuel(Some(100_000));
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_function("now", || jiff::Timestamp::now().to_string());
        env.add_filter("days_since", days_since);
        env.add_filter("days_ago", days_ago);
        env.add_test("older_than", older_than);
        env.add_test("containing", containing);
        env.add_test("matching", matching);
        env.add_filter("each", each);
        Engine { env }
    }

    /// Compiles a template and returns the dotted names it reads (`inputs.key_id`, `item`, …).
    pub fn template_refs(&self, source: &str) -> Result<BTreeSet<String>, TemplateError> {
        let tmpl = self.env.template_from_str(source)?;
        Ok(tmpl.undeclared_variables(true).into_iter().collect())
    }

    /// Compiles an expression and returns the dotted names it reads.
    pub fn expr_refs(&self, source: &str) -> Result<BTreeSet<String>, TemplateError> {
        let expr = self.env.compile_expression(source)?;
        Ok(expr.undeclared_variables(true).into_iter().collect())
    }

    /// Renders a template string. A string that is exactly one `{{ expr }}` keeps its type.
    pub fn render_str(&self, source: &str, ctx: &JValue) -> Result<Value, TemplateError> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(Value::String(source.to_string()));
        }
        if let Some(inner) = single_expression(source) {
            return self.eval(inner, ctx);
        }
        let rendered = self.env.render_str(source, ctx.clone())?;
        Ok(Value::String(rendered))
    }

    /// Renders every string inside a JSON value (object keys stay literal).
    pub fn render_value(&self, value: &Value, ctx: &JValue) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) => self.render_str(s, ctx)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_value(v, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(v, ctx)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Evaluates an expression to JSON.
    pub fn eval(&self, source: &str, ctx: &JValue) -> Result<Value, TemplateError> {
        // `{{ item }}`, `{{ item.id }}`, `{{ inputs.key_id }}`: the value is looked up the way the
        // engine's own instructions look it up, without compiling the expression again for each
        // of a fan-out's items. Anything else, and a name that is not there (whose error the
        // engine words), goes through the engine.
        if let Some(found) = dotted_lookup(source, ctx) {
            return serde_json::to_value(&found).map_err(|e| TemplateError {
                message: e.to_string(),
                range: None,
            });
        }
        let expr = self.env.compile_expression(source)?;
        let out = expr.eval(ctx.clone())?;
        if out.is_undefined() {
            return Err(TemplateError {
                message: format!("`{}` is undefined", source.trim()),
                range: None,
            });
        }
        serde_json::to_value(&out).map_err(|e| TemplateError {
            message: e.to_string(),
            range: None,
        })
    }

    /// Evaluates an expression (with the engine's fuel) and counts the items of the list it gives,
    /// reading at most `cap + 1` of them, so a lazily repeated list is never built. `Ok(Err(kind))`
    /// when the value is not a list (`kind` names its type).
    pub fn count_items(
        &self,
        source: &str,
        ctx: &JValue,
        cap: usize,
    ) -> Result<Result<usize, String>, TemplateError> {
        use minijinja::value::ValueKind;
        let expr = self.env.compile_expression(source)?;
        let out = expr.eval(ctx.clone())?;
        match out.kind() {
            ValueKind::Seq | ValueKind::Iterable => {
                if let Some(n) = out.len() {
                    return Ok(Ok(n));
                }
                let items = out.try_iter()?;
                Ok(Ok(items.take(cap.saturating_add(1)).count()))
            }
            ValueKind::Undefined => Err(TemplateError {
                message: format!("`{}` is undefined", source.trim()),
                range: None,
            }),
            other => Ok(Err(other.to_string())),
        }
    }

    /// Evaluates a condition; strict, so an undefined name is an error rather than false.
    pub fn eval_bool(&self, source: &str, ctx: &JValue) -> Result<bool, TemplateError> {
        let expr = self.env.compile_expression(source)?;
        let out = expr.eval(ctx.clone())?;
        if out.is_undefined() {
            return Err(TemplateError {
                message: format!("`{}` is undefined", source.trim()),
                range: None,
            });
        }
        Ok(out.is_true())
    }
}

/// The value of an expression that is only a dotted name (`item`, `item.id`, `steps.a.outputs`),
/// found in `ctx` by the lookups the engine makes for it (a name in the context, then each
/// attribute): `None` when the expression is anything else or a part is missing or undefined.
fn dotted_lookup(source: &str, ctx: &JValue) -> Option<JValue> {
    let mut parts = source.trim().split('.');
    let first = parts.next()?;
    if !is_plain_name(first) || KEYWORDS.contains(&first) {
        return None;
    }
    let mut value = ctx.get_attr(first).ok()?;
    for part in parts {
        if value.is_undefined() || !is_plain_name(part) {
            return None;
        }
        value = value.get_attr(part).ok()?;
    }
    (!value.is_undefined()).then_some(value)
}

/// Words the engine reads as constants or operators, never as names.
const KEYWORDS: &[&str] = &[
    "true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if", "else",
    "loop", "self", "super", "varargs", "kwargs",
];

fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Converts JSON into a template context value (done once; clones of it are cheap).
pub fn to_ctx(json: &Value) -> JValue {
    JValue::from(minijinja::value::Serde(json))
}

/// `base` with `name` bound to `value` on top, without copying `base`.
pub fn bind(base: &JValue, name: &str, value: JValue) -> JValue {
    let mut map = std::collections::BTreeMap::new();
    map.insert(name.to_string(), value);
    minijinja::context! { ..JValue::from(map), ..base.clone() }
}

pub use minijinja::Value as CtxValue;

/// The inner expression of a string that is exactly `{{ expr }}`, if it is one.
pub fn single_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

/// The block tags a runbook template may use: conditions only. Loops, macros, `set`,
/// `include`/`import`/`extends` and the rest are refused by `validate`, so a runbook cannot reach
/// for files, recurse or loop.
pub const ALLOWED_TAGS: &[&str] = &["if", "elif", "else", "endif", "raw", "endraw"];

/// Refuses what runbook templates and expressions have no use for and that reach beyond their
/// values: block tags other than [`ALLOWED_TAGS`], and names with `__` (Python-style internals
/// such as `__class__`). `expression`: the whole text is code (`when`, `foreach`, `outputs`).
pub fn check_restricted(source: &str, expression: bool) -> Result<(), String> {
    const DUNDER: &str = "names with `__` (template internals) are not allowed";
    if expression {
        return if source.contains("__") {
            Err(DUNDER.into())
        } else {
            Ok(())
        };
    }
    let mut rest = source;
    while let Some(start) = rest.find("{{").into_iter().chain(rest.find("{%")).min() {
        let is_tag = rest[start..].starts_with("{%");
        let after = &rest[start + 2..];
        let close = if is_tag { "%}" } else { "}}" };
        let end = after.find(close).unwrap_or(after.len());
        let code = &after[..end];
        if is_tag {
            let word: String = code
                .trim_start_matches(['-', '+', '~'])
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !ALLOWED_TAGS.contains(&word.as_str()) {
                return Err(format!(
                    "`{{% {word} %}}` is not allowed in runbook templates: only `{{{{ expressions }}}}` and `if`/`elif`/`else`/`endif` blocks"
                ));
            }
        }
        if code.contains("__") {
            return Err(DUNDER.into());
        }
        rest = after.get(end + close.len()..).unwrap_or_default();
    }
    Ok(())
}

/// Whether a string contains template syntax at all.
pub fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// `"2024-01-01T00:00:00Z" | days_since` → whole days from then to now.
fn days_since(ts: String) -> Result<i64, minijinja::Error> {
    let then: jiff::Timestamp = ts.parse().map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("a value is not an RFC 3339 time: {e}"),
        )
    })?;
    Ok(jiff::Timestamp::now().duration_since(then).as_secs() / 86_400)
}

/// Most days `days_ago` and `older_than` accept (a century): keeps the arithmetic in range.
const MAX_DAYS: i64 = 36_500;

fn day_count(days: i64) -> Result<jiff::SignedDuration, minijinja::Error> {
    if !(0..=MAX_DAYS).contains(&days) {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{days} days: expected 0 to {MAX_DAYS}"),
        ));
    }
    Ok(jiff::SignedDuration::from_secs(days * 86_400))
}

/// `7 | days_ago` → the RFC 3339 time seven days before now (for audit `date` filters). A filter,
/// not a function, so that the validator's list of global names stays as it is.
fn days_ago(days: i64) -> Result<String, minijinja::Error> {
    let then = jiff::Timestamp::now()
        .checked_sub(day_count(days)?)
        .map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })?;
    Ok(then.to_string())
}

/// `created is older_than(90)` → whether an RFC 3339 time lies more than 90 days before now
/// (`older_than(0)`: in the past). An absent (undefined or none) time is never older; a value that
/// is not an RFC 3339 time is an error, so a renamed field cannot silently pass a review.
fn older_than(value: JValue, days: i64) -> Result<bool, minijinja::Error> {
    let span = day_count(days)?;
    if value.is_undefined() || value.is_none() {
        return Ok(false);
    }
    let text = value.as_str().ok_or_else(|| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "older_than: a {} value is not an RFC 3339 time",
                value.kind()
            ),
        )
    })?;
    let then: jiff::Timestamp = text.parse().map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("older_than: a value is not an RFC 3339 time: {e}"),
        )
    })?;
    Ok(jiff::Timestamp::now().duration_since(then) > span)
}

/// `scopes is containing("*")` → whether a list holds the value (or a text holds the substring).
/// An absent value contains nothing.
fn containing(value: JValue, needle: JValue) -> Result<bool, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(false);
    }
    if let Some(text) = value.as_str() {
        return Ok(needle.as_str().is_some_and(|n| text.contains(n)));
    }
    let items = value.try_iter().map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "containing: a {} value is neither a list nor text",
                value.kind()
            ),
        )
    })?;
    Ok(items.into_iter().any(|item| item == needle))
}

/// `name is matching("^key[0-9]*$")` → whether the text matches the regular expression (Rust
/// `regex` syntax: linear time, so a hostile pattern cannot stall a run). Absent values do not match.
fn matching(value: JValue, pattern: String) -> Result<bool, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(false);
    }
    let re = regex::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("matching: bad pattern: {e}"),
            )
        })?;
    Ok(value.as_str().is_some_and(|t| re.is_match(t)))
}

/// The most items `each` describes: a list longer than this is refused, not cut.
const EACH_AT_MOST: usize = 10_000;

/// `subs | each("{id} → {channel.endpoint}: created in the window")` → one line of text per
/// item: each `{path}` replaced by the item's value at that dotted path (`{}` is the item
/// itself), for findings that say, one by one, what they are and why. A path the item lacks is
/// shown as `?`, never an error: a finding is still reported when ESUS leaves a field out.
fn each(value: JValue, pattern: String) -> Result<Vec<String>, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(Vec::new());
    }
    let items = value.try_iter().map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("each: a {} value is not a list", value.kind()),
        )
    })?;
    let mut out = Vec::new();
    for item in items {
        if out.len() == EACH_AT_MOST {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("each: more than {EACH_AT_MOST} items"),
            ));
        }
        out.push(describe(&item, &pattern));
    }
    Ok(out)
}

fn describe(item: &JValue, pattern: &str) -> String {
    let mut text = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            rest = &rest[open..];
            break;
        };
        let path = &after[..close];
        if path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            text.push_str(&at_path(item, path));
        } else {
            text.push('{');
            text.push_str(path);
            text.push('}');
        }
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    text
}

fn at_path(item: &JValue, path: &str) -> String {
    let mut v = item.clone();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        v = match v.get_attr(part) {
            Ok(next) if !next.is_undefined() && !next.is_none() => next,
            _ => return "?".into(),
        };
    }
    if v.is_undefined() || v.is_none() {
        return "?".into();
    }
    if let Some(text) = v.as_str() {
        return text.to_string();
    }
    // A list reads as one ("user.created, user.mfa_disabled"), not as Python's repr.
    if v.kind() == minijinja::value::ValueKind::Seq
        && let Ok(items) = v.try_iter()
    {
        let parts: Vec<String> = items
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect();
        return parts.join(", ");
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> JValue {
        to_ctx(
            &json!({"inputs": {"key_id": "k-1", "n": 0}, "steps": {"rotate": {"outputs": {"new_key_id": "k-2"}}}}),
        )
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_dotted_name_is_found_as_the_engine_finds_it_and_everything_else_is_left_to_the_engine() {
        let engine = Engine::new();
        let base = to_ctx(&json!({
            "inputs": {"key_id": "k-1", "n": 0, "list": [1, 2], "none": null, "nested": {"a": {"b": true}}},
            "item": {"id": "x", "true": 1},
            "now": "shadowed",
            // Keys a context may hold but an expression can never name.
            "true": "a key, not the constant",
            "none": "a key, not the constant",
        }));
        let ctx = bind(&base, "item", to_ctx(&json!("the item")));
        let through_engine = |source: &str| -> Option<Value> {
            let out = engine
                .env
                .compile_expression(source)
                .ok()?
                .eval(ctx.clone())
                .ok()?;
            (!out.is_undefined()).then(|| serde_json::to_value(&out).unwrap())
        };
        let found = [
            "item",
            " item ",
            "inputs",
            "inputs.key_id",
            "inputs.n",
            "inputs.list",
            "inputs.none",
            "inputs.nested.a.b",
            "now",
        ];
        for source in found {
            let fast = dotted_lookup(source, &ctx).map(|v| serde_json::to_value(&v).unwrap());
            assert!(fast.is_some(), "{source}");
            assert_eq!(fast, through_engine(source), "{source}");
            assert_eq!(engine.eval(source, &ctx).ok(), fast, "{source}");
        }
        // Not plain names, keywords, missing parts, attributes of a string: the engine decides.
        let left = [
            "true",
            "none",
            "inputs.list.0",
            "inputs.missing",
            "missing",
            "item.id",
            "inputs.key_id.x",
            "inputs.key_id | upper",
            "inputs['key_id']",
            "inputs.n + 1",
            "",
            "inputs..n",
            "1abc",
            "range",
        ];
        for source in left {
            assert!(dotted_lookup(source, &ctx).is_none(), "{source}");
        }
        assert_eq!(engine.eval("true", &ctx).unwrap(), json!(true));
        assert!(engine.eval("inputs.missing", &ctx).is_err());
    }

    #[test]
    fn bound_names_shadow_the_base_without_losing_it() {
        let e = Engine::new();
        let c = bind(&ctx(), "item", JValue::from("k-9"));
        assert_eq!(
            e.render_str("{{ item }}/{{ inputs.key_id }}", &c),
            Ok(json!("k-9/k-1"))
        );
    }

    #[test]
    fn single_expressions_keep_their_type_and_mixed_text_renders_a_string() {
        let e = Engine::new();
        assert_eq!(e.render_str("{{ inputs.n }}", &ctx()), Ok(json!(0)));
        assert_eq!(
            e.render_str("/api-keys/{{ inputs.key_id }}", &ctx()),
            Ok(json!("/api-keys/k-1"))
        );
        assert_eq!(e.render_str("plain", &ctx()), Ok(json!("plain")));
        assert_eq!(
            e.render_value(
                &json!({"a": ["{{ steps.rotate.outputs.new_key_id }}"]}),
                &ctx()
            ),
            Ok(json!({"a": ["k-2"]}))
        );
    }

    #[test]
    fn undefined_names_are_errors_not_empty_strings() {
        let e = Engine::new();
        assert!(
            e.render_str("/api-keys/{{ inputs.kye_id }}", &ctx())
                .is_err()
        );
        assert!(e.eval("inputs.kye_id", &ctx()).is_err());
        assert!(e.eval_bool("inputs.kye_id", &ctx()).is_err());
        assert!(
            e.eval_bool("inputs.kye_id is defined", &ctx())
                .is_ok_and(|b| !b)
        );
    }

    #[test]
    fn refs_list_the_dotted_names_read() {
        let e = Engine::new();
        let refs = e
            .template_refs("{{ inputs.key_id }}-{{ steps.rotate.outputs.new_key_id | upper }}")
            .expect("refs");
        assert!(refs.contains("inputs.key_id"));
        assert!(refs.contains("steps.rotate.outputs.new_key_id"));
        let refs = e
            .expr_refs("response.items | selectattr('active') | list")
            .expect("refs");
        assert!(refs.contains("response.items"));
        assert!(e.template_refs("{{ inputs.key_id").is_err());
    }

    #[test]
    fn review_helpers_select_keys_by_age_scope_and_name() {
        let e = Engine::new();
        let old = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(100 * 86_400))
            .expect("time")
            .to_string();
        let new = jiff::Timestamp::now().to_string();
        let later = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(86_400))
            .expect("time")
            .to_string();
        let c = to_ctx(&json!({"keys": [
            {"id": "a", "name": "key1", "scopes": ["*"], "createdAt": old},
            {"id": "b", "name": "prod-ehr-2024", "scopes": ["Patient.read"], "createdAt": new,
             "expiresAt": later},
        ]}));
        let ids = |expr: &str| e.eval(&format!("{expr} | map(attribute='id') | list"), &c);
        assert_eq!(
            ids("keys | selectattr('createdAt', 'older_than', 90)"),
            Ok(json!(["a"]))
        );
        assert_eq!(
            ids("keys | selectattr('createdAt', 'older_than', 0)"),
            Ok(json!(["a", "b"]))
        );
        assert_eq!(
            ids("keys | selectattr('expiresAt', 'older_than', 0)"),
            Ok(json!([])),
            "an absent time is not old"
        );
        assert_eq!(
            ids("keys | rejectattr('expiresAt', 'defined')"),
            Ok(json!(["a"]))
        );
        assert_eq!(
            ids("keys | selectattr('scopes', 'containing', '*')"),
            Ok(json!(["a"]))
        );
        assert_eq!(
            ids("keys | selectattr('name', 'matching', '^key[0-9]*$')"),
            Ok(json!(["a"]))
        );
        assert!(e.eval("'x' is older_than(1)", &c).is_err(), "not a time");
        assert!(e.eval("'x' is matching('(')", &c).is_err(), "bad pattern");
        let subs = to_ctx(&json!({"subs": [
            {"id": "s-1", "channel": {"endpoint": "https://x.example/h"}, "events": ["a", "b"]},
            {"id": "s-2"}
        ], "ids": ["k-1", "k-2"]}));
        assert_eq!(
            e.eval(
                "subs | each('{id} -> {channel.endpoint} ({events}): outside {x y}')",
                &subs
            )
            .expect("each"),
            json!([
                "s-1 -> https://x.example/h (a, b): outside {x y}",
                "s-2 -> ? (?): outside {x y}"
            ])
        );
        assert_eq!(
            e.eval("ids | each('key {} (created ' ~ 'by u-1)')", &subs)
                .expect("each"),
            json!(["key k-1 (created by u-1)", "key k-2 (created by u-1)"])
        );
        assert!(e.eval("5 | each('{}')", &subs).is_err(), "not a list");
        assert_eq!(e.eval("'abc' is containing('b')", &c), Ok(json!(true)));
    }

    #[test]
    fn days_ago_is_an_rfc3339_time_in_the_past_and_bounded() {
        let e = Engine::new();
        let c = ctx();
        let seven = e.eval("7 | days_ago", &c).expect("days_ago");
        let then: jiff::Timestamp = seven.as_str().expect("text").parse().expect("rfc 3339");
        let days = jiff::Timestamp::now().duration_since(then).as_secs() / 86_400;
        assert_eq!(days, 7);
        assert_eq!(e.eval("7 | days_ago | days_since", &c), Ok(json!(7)));
        assert!(e.eval("-1 | days_ago", &c).is_err());
        assert!(e.eval("99999999 | days_ago", &c).is_err());
    }
}
