//! The contract of the contract tests: ESUS's published types as JSON Schemas
//! (`tests/contract/esus/`, derived by `scripts/derive-esus-schemas.sh`), what ESUS's docs add
//! (`tests/contract/esus-docs-overlay.json`), and the findings tolerated today
//! (`tests/contract/esus-known-findings.json`).
//!
//! [`Contract::check`] matches each recorded exchange to its OpenAPI operation (method and path
//! template) and validates the request body, the query parameters and every 2xx response body.
//! Every violation becomes a [`Finding`] with a stable key — class, direction, operation, JSON
//! pointer (array indices as `*`), keyword — so that a list of known findings can be compared
//! with what a run found, both ways: a new finding fails, and so does a known one that is gone.
//! Messages never quote a value (`ValidationError::masked`): bodies carry tokens and secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::{Value, json};

use crate::contract_proxy::Exchange;

/// Where the committed schemas, overlay and known findings live.
pub(crate) fn contract_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

/// How a violation relates to what ESUS publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// Neither the types nor the docs overlay allow it.
    Undocumented,
    /// The types do not allow it; ESUS's docs (the overlay) do.
    DocsOnly,
    /// A method and path the types do not have at all: never tolerated.
    UnknownRoute,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Undocumented => "undocumented",
            Class::DocsOnly => "docs-only",
            Class::UnknownRoute => "unknown-route",
        }
    }
}

/// One kind of violation, with how often it occurred and one example.
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    pub(crate) key: String,
    pub(crate) class: Class,
    pub(crate) count: usize,
    pub(crate) example: String,
}

/// What [`Contract::check`] found.
#[derive(Debug, Default)]
pub(crate) struct Check {
    pub(crate) exchanges: usize,
    /// Exchanges per operationId.
    pub(crate) covered: BTreeMap<String, usize>,
    pub(crate) findings: BTreeMap<String, Finding>,
}

/// One derived schema, and the same schema with the docs overlay merged (when an overlay entry
/// touches it).
struct Schema {
    types: Validator,
    merged: Option<Validator>,
}

struct Response {
    status: u16,
    schema: Option<Schema>,
    content_types: Vec<String>,
}

struct Operation {
    id: String,
    method: String,
    segments: Vec<String>,
    request: Option<Schema>,
    request_content_types: Vec<String>,
    query: Option<Schema>,
    responses: Vec<Response>,
}

/// The operations of the index, each with its validators.
pub(crate) struct Contract {
    ops: Vec<Operation>,
    /// For operations that declare no query parameter.
    no_query: Validator,
}

fn read_json(path: &std::path::Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn validator(schema: &Value, what: &str) -> Validator {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("{what}: not a valid schema: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Path segments, without the trailing slash the types write on collection routes (ESUS, and
/// the simulator, treat `/roles/` and `/roles` alike: docs/esus-api.md, "Routes at a glance").
fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// The derived schemas before compiling: (operationId, direction) -> (the types' schema, the
/// same with the docs overlay merged, if an overlay entry touches it). Directions are `request`,
/// `query` and `response.<status>`.
type RawSchemas = BTreeMap<(String, String), (Value, Option<Value>)>;

/// Merges the docs overlay into the raw schemas. An entry's direction `response` means every
/// 2xx response schema of the operation.
fn merge_overlay(raw: &mut RawSchemas) {
    let overlay = read_json(&contract_dir().join("esus-docs-overlay.json"));
    for entry in overlay["entries"].as_array().expect("overlay entries") {
        let field = entry["field"].as_str().expect("overlay field");
        assert!(
            entry["source"].as_str().is_some_and(|s| !s.is_empty()),
            "overlay entry {field}: cite its source"
        );
        let at = entry["at"].as_str().expect("overlay `at`");
        let direction = entry["direction"].as_str().expect("overlay direction");
        for op in strings(&entry["operations"]) {
            let mut touched = 0;
            for ((id, dir), (types, merged)) in raw.iter_mut() {
                let dir_matches =
                    dir == direction || (direction == "response" && dir.starts_with("response."));
                if *id != op || !dir_matches {
                    continue;
                }
                touched += 1;
                let merged = merged.get_or_insert_with(|| types.clone());
                let target = merged
                    .pointer_mut(at)
                    .unwrap_or_else(|| panic!("overlay {field}: no {at} in {op}'s {dir}"));
                apply(entry, target, &format!("overlay {field}, {op}"));
            }
            assert!(
                touched > 0,
                "overlay {field}: no {direction} schema of {op}"
            );
        }
    }
}

/// One overlay entry's `add` (properties) or `append` (enum values) at its target. Each must
/// be new: when the types have it already, the entry is stale.
fn apply(entry: &Value, target: &mut Value, what: &str) {
    if let Some(add) = entry["add"].as_object() {
        let props = target.as_object_mut().expect("`at` names an object");
        for (name, schema) in add {
            assert!(
                !props.contains_key(name),
                "{what}: the types already have `{name}`: delete the entry"
            );
            props.insert(name.clone(), schema.clone());
        }
    }
    if let Some(values) = entry["append"].as_array() {
        let list = target.as_array_mut().expect("`at` names an array");
        for v in values {
            assert!(
                !list.contains(v),
                "{what}: the types already allow {v}: delete the entry"
            );
            list.push(v.clone());
        }
    }
}

impl Contract {
    /// Reads the index, every schema it names and the docs overlay.
    pub(crate) fn load() -> Contract {
        let dir = contract_dir().join("esus");
        let index = read_json(&dir.join("operations.json"));
        let ops_json = index["operations"].as_array().expect("operations");
        let mut raw = RawSchemas::new();
        for op in ops_json {
            let id = op["operationId"].as_str().expect("operationId");
            let mut files = vec![("request".to_string(), &op["request"])];
            files.push(("query".to_string(), &op["query"]));
            for r in op["responses"].as_array().expect("responses") {
                files.push((format!("response.{}", r["status"]), &r["schema"]));
            }
            for (direction, file) in files {
                if let Some(file) = file.as_str() {
                    raw.insert(
                        (id.to_string(), direction),
                        (read_json(&dir.join(file)), None),
                    );
                }
            }
        }
        merge_overlay(&mut raw);

        let schema = |id: &str, direction: &str| -> Option<Schema> {
            raw.get(&(id.to_string(), direction.to_string()))
                .map(|(types, merged)| Schema {
                    types: validator(types, &format!("{id} {direction}")),
                    merged: merged
                        .as_ref()
                        .map(|m| validator(m, &format!("{id} {direction} + docs"))),
                })
        };
        let ops = ops_json
            .iter()
            .map(|op| {
                let id = op["operationId"].as_str().expect("operationId").to_string();
                let responses = op["responses"]
                    .as_array()
                    .expect("responses")
                    .iter()
                    .map(|r| {
                        let status = r["status"].as_u64().expect("status") as u16;
                        Response {
                            status,
                            schema: schema(&id, &format!("response.{status}")),
                            content_types: strings(&r["contentTypes"]),
                        }
                    })
                    .collect();
                Operation {
                    request: schema(&id, "request"),
                    query: schema(&id, "query"),
                    method: op["method"].as_str().expect("method").to_string(),
                    segments: segments(op["path"].as_str().expect("path")),
                    request_content_types: strings(&op["requestContentTypes"]),
                    responses,
                    id,
                }
            })
            .collect();
        Contract {
            ops,
            no_query: validator(
                &json!({"type": "object", "additionalProperties": false}),
                "no query",
            ),
        }
    }

    /// Every operationId of the index.
    pub(crate) fn operation_ids(&self) -> BTreeSet<String> {
        self.ops.iter().map(|o| o.id.clone()).collect()
    }

    /// The operationId a request (method, path) goes to, if the types have it.
    pub(crate) fn operation_id(&self, method: &str, path: &str) -> Option<&str> {
        self.operation(method, path).map(|o| o.id.as_str())
    }

    /// The operation a request goes to: same method, same number of segments, every literal
    /// segment equal; of several, the one with the most literal segments (OpenAPI's rule).
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let want = segments(path);
        self.ops
            .iter()
            .filter(|o| o.method.eq_ignore_ascii_case(method) && o.segments.len() == want.len())
            .filter(|o| {
                o.segments.iter().zip(&want).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                })
            })
            .max_by_key(|o| o.segments.iter().filter(|t| !t.starts_with('{')).count())
    }

    /// Validates every exchange; see the module doc.
    pub(crate) fn check(&self, exchanges: &[Exchange]) -> Check {
        let mut check = Check {
            exchanges: exchanges.len(),
            ..Check::default()
        };
        for x in exchanges {
            let seen = format!("{} {} -> {}", x.method, x.path, x.status);
            let Some(op) = self.operation(&x.method, &x.path) else {
                let key = format!("unknown-route {} {}", x.method, x.path);
                add(
                    &mut check,
                    key,
                    Class::UnknownRoute,
                    format!("{seen}: the types have no such operation"),
                );
                continue;
            };
            *check.covered.entry(op.id.clone()).or_default() += 1;
            let mut note =
                |class: Class, direction: &str, pointer: &str, keyword: &str, msg: &str| {
                    let key = format!("{} {direction} {} {pointer} {keyword}", class.name(), op.id);
                    add(&mut check, key, class, format!("{seen}: {msg}"));
                };
            self.check_request(op, x, &mut note);
            self.check_query(op, x, &mut note);
            if (200..300).contains(&x.status) {
                check_response(op, x, &mut note);
            }
        }
        check
    }

    fn check_request(&self, op: &Operation, x: &Exchange, note: &mut Note<'_>) {
        match &op.request {
            Some(_) if x.request_body.is_empty() => note(
                Class::Undocumented,
                "request",
                "#",
                "body",
                "no body; the types declare a JSON body",
            ),
            Some(schema) => match serde_json::from_slice::<Value>(&x.request_body) {
                Ok(body) => classify(schema, &body, "request", note),
                Err(_) => note(
                    Class::Undocumented,
                    "request",
                    "#",
                    "body",
                    "the body is not JSON",
                ),
            },
            None if !x.request_body.is_empty() => {
                let declared = if op.request_content_types.is_empty() {
                    "no request body".to_string()
                } else {
                    format!("only {}", op.request_content_types.join(", "))
                };
                note(
                    Class::Undocumented,
                    "request",
                    "#",
                    "body",
                    &format!("a body, where the types declare {declared}"),
                );
            }
            None => {}
        }
    }

    fn check_query(&self, op: &Operation, x: &Exchange, note: &mut Note<'_>) {
        let mut query = serde_json::Map::new();
        for (name, value) in &x.query {
            if query.contains_key(name) {
                note(
                    Class::Undocumented,
                    "query",
                    &format!("#/{}", escape(name)),
                    "repeated",
                    "sent more than once; the types declare a single value",
                );
            } else {
                query.insert(name.clone(), Value::String(value.clone()));
            }
        }
        let query = Value::Object(query);
        match &op.query {
            Some(schema) => classify(schema, &query, "query", note),
            None => classify_with(&self.no_query, None, &query, "query", note),
        }
    }
}

type Note<'a> = dyn FnMut(Class, &str, &str, &str, &str) + 'a;

fn add(check: &mut Check, key: String, class: Class, example: String) {
    check
        .findings
        .entry(key.clone())
        .and_modify(|f| f.count += 1)
        .or_insert(Finding {
            key,
            class,
            count: 1,
            example,
        });
}

fn check_response(op: &Operation, x: &Exchange, note: &mut Note<'_>) {
    let declared: Vec<u16> = op.responses.iter().map(|r| r.status).collect();
    let response = match op.responses.iter().find(|r| r.status == x.status) {
        Some(r) => Some(r),
        None => {
            note(
                Class::Undocumented,
                "response",
                "#",
                "status",
                &format!("answered {}; the types declare {declared:?}", x.status),
            );
            // Still hold the body to the one success shape the types give, if there is one.
            if op.responses.len() == 1 {
                op.responses.first()
            } else {
                None
            }
        }
    };
    let Some(response) = response else {
        return;
    };
    match &response.schema {
        Some(_) if x.response_body.is_empty() => note(
            Class::Undocumented,
            "response",
            "#",
            "body",
            "no body; the types declare a JSON body",
        ),
        Some(schema) => match serde_json::from_slice::<Value>(&x.response_body) {
            Ok(body) => classify(schema, &body, "response", note),
            Err(_) => note(
                Class::Undocumented,
                "response",
                "#",
                "body",
                "the body is not JSON",
            ),
        },
        None if !x.response_body.is_empty() => note(
            Class::Undocumented,
            "response",
            "#",
            "body",
            &format!(
                "a body, where the types declare no JSON body (content: {:?})",
                response.content_types
            ),
        ),
        None => {}
    }
}

/// Validates `value` against the types and, for what they reject, against types + docs.
fn classify(schema: &Schema, value: &Value, direction: &str, note: &mut Note<'_>) {
    classify_with(
        &schema.types,
        schema.merged.as_ref(),
        value,
        direction,
        note,
    );
}

fn classify_with(
    types: &Validator,
    merged: Option<&Validator>,
    value: &Value,
    direction: &str,
    note: &mut Note<'_>,
) {
    let types = violations(types, value);
    if types.is_empty() {
        return;
    }
    let merged = match merged {
        Some(m) => violations(m, value),
        None => types.clone(),
    };
    for ((pointer, keyword), msg) in &merged {
        note(Class::Undocumented, direction, pointer, keyword, msg);
    }
    for ((pointer, keyword), msg) in &types {
        if !merged.contains_key(&(pointer.clone(), keyword.clone())) {
            note(Class::DocsOnly, direction, pointer, keyword, msg);
        }
    }
}

/// (pointer, keyword) -> a masked message, for every violation.
fn violations(validator: &Validator, value: &Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for e in validator.iter_errors(value) {
        expand(&e, value, &mut out);
    }
    out
}

/// JSON pointer escaping of one segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `#` + the instance path with array indices as `*`.
fn pointer(path: &str) -> String {
    let mut out = String::from("#");
    for seg in path.split('/').skip(1) {
        out.push('/');
        out.push_str(if seg.parse::<usize>().is_ok() {
            "*"
        } else {
            seg
        });
    }
    out
}

/// Turns one error into findings: one per unexpected or missing property, and for `anyOf` the
/// errors of the branch of the right type (`entity` is `{…} | null`: an object with an extra
/// field is reported at that field, not as "matches no branch").
fn expand(e: &ValidationError<'_>, root: &Value, out: &mut BTreeMap<(String, String), String>) {
    let at = pointer(e.instance_path.as_str());
    match &e.kind {
        // `additionalProperties: false` with no `properties` is reported as a false schema at
        // the object, for its first key only: every key of it is unexpected.
        ValidationErrorKind::FalseSchema
            if e.schema_path.as_str().ends_with("/additionalProperties") =>
        {
            let keys = root
                .pointer(e.instance_path.as_str())
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            for name in keys {
                out.insert(
                    (
                        format!("{at}/{}", escape(&name)),
                        "additionalProperties".into(),
                    ),
                    format!("`{name}` is not in the schema (it declares none)"),
                );
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                out.insert(
                    (
                        format!("{at}/{}", escape(name)),
                        "additionalProperties".into(),
                    ),
                    format!("`{name}` is not in the schema (closed object)"),
                );
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.insert(
                (format!("{at}/{}", escape(name)), "required".into()),
                format!("required `{name}` is missing"),
            );
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let same_type = |branch: &&Vec<ValidationError<'static>>| {
                !branch.iter().any(|b| {
                    b.instance_path.as_str() == e.instance_path.as_str()
                        && matches!(b.kind, ValidationErrorKind::Type { .. })
                })
            };
            match context.iter().filter(same_type).min_by_key(|b| b.len()) {
                Some(branch) => branch.iter().for_each(|b| expand(b, root, out)),
                None => {
                    out.insert((at, "anyOf".into()), e.masked().to_string());
                }
            }
        }
        _ => {
            let keyword = e
                .schema_path
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            out.insert((at, keyword), e.masked().to_string());
        }
    }
}

/// A finding the test tolerates today, from `tests/contract/esus-known-findings.json`.
#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub(crate) finding: String,
    pub(crate) reason: String,
    pub(crate) issue: String,
}

/// Reads the known findings; routes the types lack can never be listed.
pub(crate) fn known_findings() -> Vec<Known> {
    let file = contract_dir().join("esus-known-findings.json");
    let v = read_json(&file);
    let mut seen = BTreeSet::new();
    v["known"]
        .as_array()
        .expect("`known` list")
        .iter()
        .map(|k| {
            let known = Known {
                finding: k["finding"].as_str().expect("finding").to_string(),
                reason: k["reason"].as_str().expect("reason").to_string(),
                issue: k["issue"].as_str().expect("issue").to_string(),
            };
            assert!(
                !known.reason.is_empty() && !known.issue.is_empty(),
                "{}: give a reason and an issue",
                known.finding
            );
            assert!(
                !known.finding.starts_with("unknown-route"),
                "{}: a route the types do not have is never a known finding",
                known.finding
            );
            assert!(
                seen.insert(known.finding.clone()),
                "{} listed twice",
                known.finding
            );
            known
        })
        .collect()
}

/// A check held against the known findings.
pub(crate) struct Verdict {
    /// Found and not known: each fails the test.
    pub(crate) new: Vec<Finding>,
    /// Known and not found any more: each fails the test (shrink the list).
    pub(crate) gone: Vec<Known>,
    /// The report, for the test's output whatever the verdict.
    pub(crate) report: String,
}

impl Verdict {
    pub(crate) fn passed(&self) -> bool {
        self.new.is_empty() && self.gone.is_empty()
    }
}

/// Compares a check with the known findings and writes the report.
pub(crate) fn verdict(check: &Check, known: &[Known]) -> Verdict {
    use std::fmt::Write as _;
    let by_key: BTreeMap<&str, &Known> = known.iter().map(|k| (k.finding.as_str(), k)).collect();
    let new: Vec<Finding> = check
        .findings
        .values()
        .filter(|f| !by_key.contains_key(f.key.as_str()))
        .cloned()
        .collect();
    let gone: Vec<Known> = known
        .iter()
        .filter(|k| !check.findings.contains_key(&k.finding))
        .cloned()
        .collect();

    let mut r = String::new();
    let _ = writeln!(
        r,
        "contract: {} exchanges, {} operations",
        check.exchanges,
        check.covered.len()
    );
    for (op, n) in &check.covered {
        let _ = writeln!(r, "  {op} x{n}");
    }
    let _ = writeln!(r, "findings: {}", check.findings.len());
    for f in check.findings.values() {
        match by_key.get(f.key.as_str()) {
            Some(k) => {
                let _ = writeln!(
                    r,
                    "  known  {} (x{}): {} [{}]",
                    f.key, f.count, k.reason, k.issue
                );
            }
            None => {
                let _ = writeln!(r, "  NEW    {} (x{})", f.key, f.count);
            }
        }
        let _ = writeln!(r, "         e.g. {}", f.example);
    }
    if !gone.is_empty() {
        let _ = writeln!(
            r,
            "known findings that no longer occur (delete them from tests/contract/esus-known-findings.json):"
        );
        for k in &gone {
            let _ = writeln!(r, "  GONE   {} [{}]", k.finding, k.issue);
        }
    }
    Verdict {
        new,
        gone,
        report: r,
    }
}
