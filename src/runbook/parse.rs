//! From YAML text to a typed [`Runbook`], reporting every structural problem with its place.
//!
//! serde stops at the first error, but an engineer fixing a runbook wants them all. So the text
//! is first read as a generic YAML value, then each input and each step is deserialized on its
//! own, so one broken step does not hide the problems of the next; the steps that did not
//! deserialize are kept as placeholders ([`Parsed::broken_steps`]) so that the graph, references
//! and templates of the others are still checked. An unknown field does not break its step: it is
//! reported (with the field it misspells, if any) and read past, the misspelling as the field it
//! was meant to be, so that the step's own templates and references are checked too.
//!
//! Before serde_norway (libyaml) sees the text, cheap passes refuse what would make it slow or
//! make a diagnostic leak: the size limit, key material, byte-order marks inside the text, and a
//! streaming pass over the event parser that stops at the first collection nested deeper than
//! [`MAX_DEPTH`] (libyaml's scanner is quadratic in flow nesting), at the first syntax error
//! (named plainly for tabs), and records whether the document is runbook-shaped (a mapping with
//! `version`, `name` or `steps`). A document that is not is refused without quoting any of it.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use saphyr_parser::{Event, Parser};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value as Yaml;

use super::diagnostic::Problem;
use super::model::{InputSpec, InputType, OnFailure, Runbook, Step};
use super::span::{CharOffsets, SourceMap, Span, index_path, key_path};
use super::validate::MAX_STEPS;

/// Runbooks larger than this are refused before parsing.
pub const MAX_BYTES: usize = 1024 * 1024;

/// Collections (mappings and lists, block or flow) nested deeper than this are refused before
/// the YAML parser builds anything. The bundled runbooks use at most 6 levels.
pub const MAX_DEPTH: usize = 64;

/// The top-level keys that make a YAML mapping look like a runbook (and so safe to quote).
const RUNBOOK_KEYS: [&str; 3] = ["version", "name", "steps"];

/// A runbook as far as it could be read, with the structural problems found on the way.
#[derive(Debug)]
pub struct Parsed {
    /// The runbook; broken steps and inputs are placeholders.
    pub runbook: Runbook,
    /// Spans of every node.
    pub map: SourceMap,
    /// Structural problems (unknown fields, wrong types, missing fields).
    pub problems: Vec<Problem>,
    /// Indices of steps that did not deserialize (their placeholders carry the id and `needs`
    /// when those could be read).
    pub broken_steps: BTreeSet<usize>,
    /// Whether `steps` was a list (when not, the step checks are skipped).
    pub steps_read: bool,
}

/// Parses runbook text. On failure, returns every structural problem found.
pub fn parse(text: &str) -> Result<(Runbook, SourceMap), Vec<Problem>> {
    let parsed = parse_partial(text)?;
    if parsed.problems.is_empty() {
        Ok((parsed.runbook, parsed.map))
    } else {
        Err(parsed.problems)
    }
}

/// Parses runbook text as far as it goes. `Err` means nothing could be read that is worth
/// checking further (syntax, limits, not a runbook); otherwise the structural problems are in
/// [`Parsed::problems`]. A leading byte-order mark is skipped (spans are then relative to the
/// text after it).
pub fn parse_partial(text: &str) -> Result<Parsed, Vec<Problem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    precheck(text)?;
    let value: Yaml = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let mut p = yaml_problem(text, &e);
            p.quote = shape_of_text(text).quotable();
            return Err(vec![p]);
        }
    };
    check_shape(&value)?;
    if let Some(Yaml::Sequence(steps)) = value.get("steps")
        && steps.len() > MAX_STEPS
    {
        // Refused before the source map is built: a cheap look for the `steps:` line.
        let at = text
            .match_indices("steps:")
            .map(|(i, _)| i)
            .find(|&i| i == 0 || text.as_bytes().get(i - 1) == Some(&b'\n'))
            .unwrap_or(0);
        let p = Problem::at(
            Span::new(at, "steps".len().min(text.len() - at)),
            format!(
                "{} steps; the limit is {MAX_STEPS} (nothing else is checked until this is fixed)",
                steps.len()
            ),
            "too many steps",
        )
        .help("fan out over many items with `foreach` instead of repeating steps");
        return Err(vec![p]);
    }
    let mut map = SourceMap::build(text);
    match deserialize_at::<Runbook>(value.clone(), "", &map) {
        Ok(runbook) => Ok(Parsed {
            runbook,
            map,
            problems: Vec::new(),
            broken_steps: BTreeSet::new(),
            steps_read: true,
        }),
        Err(first) => {
            let mut list = Vec::new();
            let (runbook, broken_steps, steps_read) = collect_all(value, &mut map, &mut list);
            if list.is_empty() {
                list.push(first);
            }
            Ok(Parsed {
                runbook,
                map,
                problems: list,
                broken_steps,
                steps_read,
            })
        }
    }
}

/// The checks that run before serde_norway sees the text.
fn precheck(text: &str) -> Result<(), Vec<Problem>> {
    if text.len() > MAX_BYTES {
        let p = Problem::unquoted(
            Span::new(0, 1),
            format!(
                "the runbook is {} bytes; the limit is {MAX_BYTES} (1 MiB)",
                text.len()
            ),
        );
        return Err(vec![p]);
    }
    if text.contains("PRIVATE KEY-----") {
        let p = Problem::unquoted(
            Span::new(0, 1),
            "this file looks like key material (it holds a PRIVATE KEY block): it is not a runbook, and none of it is shown",
        )
        .help("check the path: a runbook is a YAML file with `version`, `name` and `steps`");
        return Err(vec![p]);
    }
    if let Some(at) = text.find('\u{feff}') {
        let line = text[..at].matches('\n').count() + 1;
        let p = Problem::at(
            Span::new(at, '\u{feff}'.len_utf8()),
            format!(
                "a byte-order mark (U+FEFF) at line {line}: only the very start of a file may have one"
            ),
            "byte-order mark",
        )
        .help("the file was probably pasted together from several files; remove the mark");
        return Err(vec![p]);
    }
    let shape = scan_structure(text)?;
    if let Some(p) = shape.problem {
        return Err(vec![p]);
    }
    Ok(())
}

/// What the streaming pass learned about the first document.
#[derive(Debug, Default)]
struct Shape {
    /// The top level is a mapping.
    mapping: bool,
    /// …with at least one of [`RUNBOOK_KEYS`] (among the keys read).
    runbook_key: bool,
    /// The first problem found (syntax or depth), with `quote` set from the shape so far.
    problem: Option<Problem>,
}

impl Shape {
    fn quotable(&self) -> bool {
        self.mapping && self.runbook_key
    }
}

/// The whole-text streaming pass: depth, syntax, tabs and shape. Linear in the text: it stops at
/// the first collection deeper than [`MAX_DEPTH`] (the event parser's own lookahead is bounded).
fn scan_structure(text: &str) -> Result<Shape, Vec<Problem>> {
    let offsets = CharOffsets::new(text);
    let mut shape = Shape::default();
    let mut depth = 0usize;
    let mut documents = 0usize;
    let mut expect_key = true;
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(x) => x,
            Err(e) => {
                let at = offsets.byte(e.marker().index());
                let mut p = scanner_problem(text, at, e.info());
                p.quote = p.quote && shape.quotable();
                shape.problem = Some(p);
                return Ok(shape);
            }
        };
        let at = offsets.byte(span.start.index());
        let node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        if node && documents == 1 && depth == 0 {
            shape.mapping = matches!(event, Event::MappingStart(..));
        }
        if node && documents == 1 && depth == 1 && shape.mapping {
            if expect_key && let Event::Scalar(key, ..) = &event {
                shape.runbook_key |= RUNBOOK_KEYS.contains(&key.as_ref());
            }
            expect_key = !expect_key;
        }
        match event {
            Event::DocumentStart(_) => documents += 1,
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    shape.problem = Some(depth_problem(text, at, shape.quotable()));
                    return Ok(shape);
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(shape)
}

/// The shape of a text that serde_norway refused (the streaming pass already accepted it).
fn shape_of_text(text: &str) -> Shape {
    scan_structure(text).unwrap_or_default()
}

fn depth_problem(text: &str, at: usize, quote: bool) -> Problem {
    let line = text.get(..at).map_or(1, |t| t.matches('\n').count() + 1);
    let mut p = Problem::at(
        Span::new(at, usize::from(at < text.len())),
        format!(
            "nesting deeper than {MAX_DEPTH} levels at line {line}: runbooks are refused past {MAX_DEPTH} levels of lists and mappings"
        ),
        "too deeply nested",
    );
    p.quote = quote;
    p
}

/// A problem for the event parser's error `info` at byte `at`.
fn scanner_problem(text: &str, at: usize, info: &str) -> Problem {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    if let Some((tab, line)) = indentation_tab(text, line_start, info.contains("tab")) {
        return Problem::at(
            Span::new(tab, 1),
            format!(
                "a tab character is used for indentation at line {line}; YAML indents with spaces"
            ),
            "tab",
        )
        .help("replace the tab with spaces (most editors can show tabs and convert them)");
    }
    if info.contains("recursion limit") {
        return depth_problem(text, at, true);
    }
    let message = info
        .strip_prefix("while ")
        .map_or(info.to_string(), |rest| {
            // "while parsing a flow sequence, expected ',' or ']'" → "expected ',' or ']' (while …)"
            match rest.split_once(", ") {
                Some((ctx, what)) => format!("{what} (while {ctx})"),
                None => info.to_string(),
            }
        });
    Problem::at(
        Span::new(at, usize::from(at < text.len())),
        format!("YAML: {message}"),
        "YAML syntax",
    )
}

/// The first tab in the indentation of the line starting at `line_start` or, when the parser
/// named a tab (it may do so while still reading the line before), of the next two lines.
/// Returns its byte offset and 1-based line.
fn indentation_tab(text: &str, line_start: usize, named: bool) -> Option<(usize, usize)> {
    let first_line = text[..line_start].matches('\n').count() + 1;
    let lines = if named { 3 } else { 1 };
    let mut start = line_start;
    for n in 0..lines {
        let rest = text.get(start..)?;
        let line = rest.split('\n').next().unwrap_or(rest);
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(tab) = line[..indent].find('\t') {
            return Some((start + tab, first_line + n));
        }
        start += line.len() + 1;
        if start > text.len() {
            break;
        }
    }
    None
}

/// Refuses a document that is not runbook-shaped, without quoting it.
fn check_shape(value: &Yaml) -> Result<(), Vec<Problem>> {
    let what = match value {
        Yaml::Mapping(m) => {
            if RUNBOOK_KEYS.iter().any(|k| m.contains_key(*k)) {
                return Ok(());
            }
            "it is a YAML mapping without `version`, `name` or `steps`"
        }
        Yaml::Null => "it is empty",
        Yaml::Sequence(_) => "its top level is a list",
        Yaml::Tagged(_) => "its top level is a tagged value",
        Yaml::Bool(_) | Yaml::Number(_) | Yaml::String(_) => {
            "its top level is a single value, not a mapping"
        }
    };
    let p = Problem::unquoted(
        Span::new(0, 1),
        format!(
            "this file is not a runbook: {what} (a runbook is a mapping of `version`, `name` and `steps`); none of it is shown"
        ),
    )
    .help("check the path; `esus-ir list` shows the bundled runbooks");
    Err(vec![p])
}

/// The top level with inputs and steps left generic, so each can be checked on its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to be type-checked, not read
struct Outline {
    version: u32,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    inputs: IndexMap<String, Yaml>,
    steps: Vec<Yaml>,
    #[serde(default)]
    evidence: super::model::EvidencePolicy,
}

/// Deserializes each part on its own, reporting every problem, and returns the runbook as far as
/// it could be read (placeholders for broken steps and inputs), the broken step indices and
/// whether `steps` was a list.
fn collect_all(
    value: Yaml,
    map: &mut SourceMap,
    problems: &mut Vec<Problem>,
) -> (Runbook, BTreeSet<usize>, bool) {
    // Check the outline with inputs/steps replaced by placeholders of the right shape, so an
    // error inside a step is not reported twice.
    let (inputs, steps) = match &value {
        Yaml::Mapping(m) => (m.get("inputs").cloned(), m.get("steps").cloned()),
        _ => (None, None),
    };
    let text_of = |key: &str| value.get(key).and_then(Yaml::as_str).map(str::to_string);
    let mut runbook = Runbook {
        version: value
            .get("version")
            .and_then(Yaml::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1),
        name: text_of("name")
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "?".into()),
        description: text_of("description").unwrap_or_default(),
        inputs: IndexMap::new(),
        steps: Vec::new(),
        evidence: Default::default(),
    };
    let mut outline = value;
    if let (Yaml::Mapping(m), Some(Yaml::Sequence(_))) = (&mut outline, &steps) {
        // The steps are checked one by one below; the outline is read again for each unknown
        // top-level field, and need not copy them each time.
        m.insert(Yaml::String("steps".into()), Yaml::Sequence(Vec::new()));
    }
    if let Some(outline) = deserialize_reading_on::<Outline>(outline, "", map, problems) {
        runbook.evidence = outline.evidence;
    }
    if let Some(Yaml::Mapping(inputs)) = inputs {
        for (k, v) in inputs {
            let Some(name) = k.as_str() else { continue };
            let spec = deserialize_reading_on::<InputSpec>(
                v.clone(),
                &key_path("inputs", name),
                map,
                problems,
            )
            .unwrap_or_else(|| placeholder_input(&v));
            runbook.inputs.insert(name.to_string(), spec);
        }
    }
    let mut broken = BTreeSet::new();
    let steps_read = matches!(steps, Some(Yaml::Sequence(_)));
    if let Some(Yaml::Sequence(steps)) = steps {
        for (i, v) in steps.into_iter().enumerate() {
            match deserialize_reading_on::<Step>(v.clone(), &index_path("steps", i), map, problems)
            {
                Some(step) => runbook.steps.push(step),
                None => {
                    broken.insert(i);
                    runbook.steps.push(placeholder_step(&v, i));
                }
            }
        }
    }
    (runbook, broken, steps_read)
}

/// An input that did not deserialize: its type when it can be read (so secrets stay secret).
fn placeholder_input(v: &Yaml) -> InputSpec {
    let kind = match v.get("type").and_then(Yaml::as_str) {
        Some("secret") => InputType::Secret,
        Some("integer") => InputType::Integer,
        Some("boolean") => InputType::Boolean,
        Some("list") => InputType::List,
        _ => InputType::String,
    };
    InputSpec {
        kind,
        description: String::new(),
        required: false,
        default: None,
        pattern: None,
        env: None,
    }
}

/// A step that did not deserialize: its id, `needs` and output names when they can be read, so
/// the graph and the references of the other steps are still checked.
fn placeholder_step(v: &Yaml, i: usize) -> Step {
    let id = v
        .get("id")
        .and_then(Yaml::as_str)
        .map_or_else(|| format!("#{}", i + 1), str::to_string);
    let needs = match v.get("needs") {
        None => None,
        Some(Yaml::Sequence(list)) => Some(
            list.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
        ),
        Some(_) => Some(Vec::new()),
    };
    let outputs = match v.get("outputs") {
        Some(Yaml::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str())
            .map(|k| (k.to_string(), super::model::OutputSpec::Expr(String::new())))
            .collect(),
        _ => IndexMap::new(),
    };
    Step {
        id,
        name: "?".into(),
        action: String::new(),
        with: IndexMap::new(),
        needs,
        when: None,
        if_permitted: false,
        confirm: None,
        outputs,
        expect: Vec::new(),
        retry: None,
        timeout: None,
        on_failure: OnFailure::Abort,
        foreach: v.get("foreach").and_then(Yaml::as_str).map(str::to_string),
        concurrency: None,
        save: None,
    }
}

/// Unknown fields read past in one part (the outline, an input, a step) before the part is given
/// up as broken: each is a new deserialization, and a hostile file may hold thousands.
const MAX_UNKNOWN_FIELDS: usize = 32;

/// Deserializes `value` (found at `base`) into `T`, reporting every problem into `problems`.
/// An unknown field is reported and then read past, and the part read again, so that a misspelt
/// key neither hides the next one nor keeps the rest of its step (its graph, references and
/// templates) from being checked. A misspelling is read as the field it was meant to be, and
/// `map` learns to find that field at the misspelt key. `None` when another problem makes the
/// part unreadable.
fn deserialize_reading_on<T: DeserializeOwned>(
    mut value: Yaml,
    base: &str,
    map: &mut SourceMap,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    for _ in 0..=MAX_UNKNOWN_FIELDS {
        let e = match serde_path_to_error::deserialize(value.clone()) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut segments = segments(e.path());
        let message = e.inner().to_string();
        problems.push(schema_problem(
            map,
            &path_of(base, &segments),
            message.clone(),
        ));
        let field = quoted_after(&message, "unknown field `")?;
        // The error's path ends at the unknown key itself; its mapping is one step up.
        if matches!(segments.last(), Some(Segment::Key(k)) if k == field) {
            segments.pop();
        }
        let meant = super::validate::suggest(field, &expected_fields(&message));
        match move_key(&mut value, &segments, field, meant) {
            Some(Some(meant)) => {
                let parent = path_of(base, &segments);
                map.alias(&key_path(&parent, meant), &key_path(&parent, field));
            }
            Some(None) => {}
            None => return None,
        }
    }
    None
}

/// Deserializes `value` (found at `base`) into `T`, turning the first error into a located problem.
fn deserialize_at<T: DeserializeOwned>(
    value: Yaml,
    base: &str,
    map: &SourceMap,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = path_of(base, &segments(e.path()));
        schema_problem(map, &path, e.inner().to_string())
    })
}

/// A step into a YAML value: an item of a list, or an entry of a mapping.
enum Segment {
    Index(usize),
    Key(String),
}

/// The steps from a deserialized value to the place of an error.
fn segments(at: &serde_path_to_error::Path) -> Vec<Segment> {
    use serde_path_to_error::Segment as S;
    at.iter()
        .map_while(|seg| match seg {
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Map { key } | S::Enum { variant: key } => Some(Segment::Key(key.clone())),
            S::Unknown => None,
        })
        .collect()
}

/// The source-map path reached by `segments` from `base`.
fn path_of(base: &str, segments: &[Segment]) -> String {
    segments
        .iter()
        .fold(base.to_string(), |path, seg| match seg {
            Segment::Index(i) => index_path(&path, *i),
            Segment::Key(k) => key_path(&path, k),
        })
}

/// Takes `field` out of the mapping reached by `segments`, and puts its value under `meant` (the
/// field it is a misspelling of) when that is not there already: the value is then checked where
/// its author meant it, and a misspelt required field does not break its step. Returns the field
/// the value moved to, if any; `None` when there is no such field to take out.
fn move_key<'k>(
    value: &mut Yaml,
    segments: &[Segment],
    field: &str,
    meant: Option<&'k str>,
) -> Option<Option<&'k str>> {
    let mut node = value;
    for seg in segments {
        node = match (seg, node) {
            (Segment::Index(i), Yaml::Sequence(items)) => items.get_mut(*i)?,
            (Segment::Key(k), Yaml::Mapping(m)) => m.get_mut(k.as_str())?,
            _ => return None,
        };
    }
    let Yaml::Mapping(m) = node else {
        return None;
    };
    let v = m.remove(field)?;
    let meant = meant.filter(|k| !m.contains_key(*k));
    if let Some(k) = meant {
        m.insert(Yaml::String(k.to_string()), v);
    }
    Some(meant)
}

fn schema_problem(map: &SourceMap, path: &str, message: String) -> Problem {
    if let Some(field) = quoted_after(&message, "unknown field `") {
        let at = key_path(path, field);
        let span = if map.has_key(&at) {
            map.key(&at)
        } else {
            map.key(path)
        };
        let known = expected_fields(&message);
        return match super::validate::suggest(field, &known) {
            Some(s) => Problem::at(span, format!("unknown field `{field}`"), "unknown field")
                .help(format!("did you mean `{s}`?")),
            None => Problem::at(span, message.clone(), "unknown field")
                .help("remove it, or check its spelling against docs/runbook-format.md"),
        };
    }
    if let Some(field) = quoted_after(&message, "missing field `") {
        let where_ = if path.is_empty() {
            "the runbook".to_string()
        } else {
            format!("`{path}`")
        };
        return Problem::at(
            map.node(path),
            format!("{where_} is missing the required field `{field}`"),
            format!("`{field}` missing here"),
        );
    }
    Problem::at(map.node(path), message, "wrong type or value")
}

/// The field names serde lists after "expected one of" (or "expected") in an unknown-field message.
fn expected_fields(message: &str) -> Vec<&str> {
    let Some((_, list)) = message.split_once(", expected ") else {
        return Vec::new();
    };
    list.split('`').skip(1).step_by(2).collect()
}

fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn yaml_problem(text: &str, e: &serde_yaml::Error) -> Problem {
    let offset = e.location().map_or(0, |l| l.index().min(text.len()));
    let mut message = e.to_string();
    // serde_norway appends "at line L column C"; the renderer shows the place already.
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    let len = usize::from(offset < text.len());
    let label = if message.contains("recursion limit") || message.contains("repetition limit") {
        "refused: too deeply nested or too many alias expansions"
    } else {
        "YAML syntax"
    };
    Problem::at(Span::new(offset, len), format!("YAML: {message}"), label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(usize, usize, String)> {
        let list = parse(text).expect_err("should fail");
        list.into_iter()
            .map(|p| {
                let (l, c) = super::super::diagnostic::line_col(text, p.span.offset);
                (l, c, p.message)
            })
            .collect()
    }

    #[test]
    fn every_broken_step_is_reported_not_just_the_first() {
        let text = "version: 1\nname: t\nsteps:\n  - id: a\n    name: A\n    action: http\n    colour: red\n  - id: b\n    name: B\n    action: http\n    retry: {attempts: many}\n";
        let got = problems(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].0, got[0].1), (7, 5));
        assert!(got[0].2.contains("unknown field `colour`"));
        assert_eq!((got[1].0, got[1].1), (11, 23));
        assert!(got[1].2.contains("invalid type"), "{}", got[1].2);
    }

    #[test]
    fn every_unknown_field_of_a_step_is_reported_and_a_misspelling_named() {
        let text = "version: 1\nname: t\nsteps:\n  - id: a\n    name: A\n    action: http\n    colour: red\n    confrim: true\n";
        let got = problems(text);
        let places: Vec<(usize, usize)> = got.iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(places, [(7, 5), (8, 5)], "{got:?}");
        let list = parse(text).expect_err("unknown fields");
        assert_eq!(list[1].message, "unknown field `confrim`");
        assert_eq!(list[1].help.as_deref(), Some("did you mean `confirm`?"));
        assert!(list[0].message.contains("expected one of"), "{got:?}");
    }

    #[test]
    fn yaml_syntax_errors_point_at_the_line() {
        let got = problems("version: 1\nname: [unclosed\nsteps: []\n");
        assert_eq!(got.len(), 1);
        assert!(got[0].2.starts_with("YAML: "), "{}", got[0].2);
        assert!(got[0].0 >= 2, "{got:?}");
    }

    #[test]
    fn a_missing_top_level_field_is_named() {
        let got = problems("version: 1\nsteps: []\n");
        assert!(got[0].2.contains("required field `name`"), "{got:?}");
    }
}
