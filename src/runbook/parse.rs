//! From YAML text to a typed [`Runbook`], reporting every structural problem with its place.
//!
//! serde stops at the first error, but an engineer fixing a runbook wants them all. So the text
//! is first read as a generic YAML value (syntax, alias bombs and nesting limits are enforced
//! here by serde_norway), then each input and each step is deserialized on its own, so one
//! broken step does not hide the problems of the next.

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value as Yaml;

use super::diagnostic::{Problem, Problems};
use super::model::{InputSpec, Runbook, Step};
use super::span::{SourceMap, Span, index_path, key_path};

/// Runbooks larger than this are refused before parsing.
pub const MAX_BYTES: usize = 1024 * 1024;

/// Parses runbook text. On failure, returns every structural problem found.
pub fn parse(text: &str) -> Result<(Runbook, SourceMap), Vec<Problem>> {
    if text.len() > MAX_BYTES {
        let p = Problem::at(
            Span::new(0, 1),
            format!(
                "the runbook is {} bytes; the limit is {MAX_BYTES} (1 MiB)",
                text.len()
            ),
            "file too large",
        );
        return Err(vec![p]);
    }
    let value: Yaml = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(vec![yaml_problem(text, &e)]),
    };
    let map = SourceMap::build(text);
    match deserialize_at::<Runbook>(value.clone(), "", &map) {
        Ok(runbook) => Ok((runbook, map)),
        Err(first) => {
            let mut problems = Problems::new(&map);
            collect_all(value, &mut problems);
            if problems.list.is_empty() {
                problems.list.push(first);
            }
            Err(problems.list)
        }
    }
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
}

fn collect_all(value: Yaml, problems: &mut Problems<'_>) {
    // Check the outline with inputs/steps replaced by placeholders of the right shape, so an
    // error inside a step is not reported twice.
    let (inputs, steps) = match &value {
        Yaml::Mapping(m) => (m.get("inputs").cloned(), m.get("steps").cloned()),
        _ => (None, None),
    };
    if let Err(p) = deserialize_at::<Outline>(value, "", problems.map()) {
        problems.list.push(p);
    }
    if let Some(Yaml::Mapping(inputs)) = inputs {
        for (k, v) in inputs {
            let Some(name) = k.as_str() else { continue };
            if let Err(p) =
                deserialize_at::<InputSpec>(v, &key_path("inputs", name), problems.map())
            {
                problems.list.push(p);
            }
        }
    }
    if let Some(Yaml::Sequence(steps)) = steps {
        for (i, v) in steps.into_iter().enumerate() {
            if let Err(p) = deserialize_at::<Step>(v, &index_path("steps", i), problems.map()) {
                problems.list.push(p);
            }
        }
    }
}

/// Deserializes `value` (found at `base`) into `T`, turning an error into a located problem.
fn deserialize_at<T: DeserializeOwned>(
    value: Yaml,
    base: &str,
    map: &SourceMap,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = base.to_string();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            path = match seg {
                Segment::Seq { index } => index_path(&path, *index),
                Segment::Map { key } => key_path(&path, key),
                Segment::Enum { variant } => key_path(&path, variant),
                Segment::Unknown => break,
            };
        }
        let message = e.inner().to_string();
        schema_problem(map, &path, message)
    })
}

fn schema_problem(map: &SourceMap, path: &str, message: String) -> Problem {
    if let Some(field) = quoted_after(&message, "unknown field `") {
        let at = key_path(path, field);
        let span = if map.has_key(&at) {
            map.key(&at)
        } else {
            map.key(path)
        };
        return Problem::at(span, message.clone(), "unknown field")
            .help("remove it, or check its spelling against docs/runbook-format.md");
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
