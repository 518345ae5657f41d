//! Where things are in a runbook file: a map from YAML paths to byte spans.
//!
//! serde reads the runbook into typed values but forgets positions; diagnostics about meaning
//! (duplicate ids, cycles, bad references) still need to point at a line and column. This module
//! walks the same text once with an event parser and remembers the span of every node and every
//! mapping key under a path such as `steps[2].needs[0]`. It only runs after serde accepted the
//! YAML, so alias bombs and deep nesting were already refused.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// A byte range in the runbook text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (at least 1 when the text is not empty).
    pub len: usize,
}

impl Span {
    /// A span covering `len` bytes from `offset`.
    pub fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.offset, span.len).into()
    }
}

/// The path of a mapping entry under `parent`.
pub fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of a sequence item under `parent`.
pub fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Spans of every node and key in one YAML document, by path.
#[derive(Debug, Default)]
pub struct SourceMap {
    nodes: HashMap<String, Span>,
    keys: HashMap<String, Span>,
    /// Paths the parser reads under another name than the file spells them (a misspelt field
    /// read as the field it was meant to be), to the path as written.
    aliases: HashMap<String, String>,
    text_len: usize,
}

enum Frame {
    Seq {
        path: String,
        next: usize,
        start: usize,
    },
    Map {
        path: String,
        key: Option<String>,
        start: usize,
    },
}

impl SourceMap {
    /// Indexes `text`. A text the event parser rejects yields an empty map; lookups then fall back
    /// to the start of the file.
    pub fn build(text: &str) -> SourceMap {
        let offsets = CharOffsets::new(text);
        let mut map = SourceMap {
            text_len: text.len(),
            ..SourceMap::default()
        };
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let start = offsets.byte(span.start.index());
            let end = offsets.byte(span.end.index()).max(start);
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { path, key, .. }) = stack.last_mut()
                        && key.is_none()
                    {
                        let k = key_path(path, &value);
                        map.keys.insert(k.clone(), Span::new(start, end - start));
                        *key = Some(k);
                        continue;
                    }
                    let path = next_path(&mut stack);
                    map.nodes.insert(path, Span::new(start, end - start));
                }
                Event::Alias(_) => {
                    let path = next_path(&mut stack);
                    map.nodes.insert(path, Span::new(start, end - start));
                }
                Event::SequenceStart(..) => {
                    let path = next_path(&mut stack);
                    stack.push(Frame::Seq {
                        path,
                        next: 0,
                        start,
                    });
                }
                Event::MappingStart(..) => {
                    let path = next_path(&mut stack);
                    stack.push(Frame::Map {
                        path,
                        key: None,
                        start,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some(Frame::Seq { path, start, .. } | Frame::Map { path, start, .. }) =
                        stack.pop()
                    {
                        map.nodes
                            .insert(path, Span::new(start, end.max(start) - start));
                    }
                }
                _ => {}
            }
        }
        map
    }

    /// From now on, finds what is asked for at `meant` (and below it) at `written`.
    pub fn alias(&mut self, meant: &str, written: &str) {
        self.aliases.insert(meant.to_string(), written.to_string());
    }

    /// `path` as the file spells it: an aliased ancestor replaced by where it is written.
    fn written<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        let mut p = path;
        while !self.aliases.is_empty() {
            if let Some(w) = self.aliases.get(p) {
                return format!("{w}{}", &path[p.len()..]).into();
            }
            match parent(p) {
                Some(up) => p = up,
                None => break,
            }
        }
        path.into()
    }

    /// The span of the value at `path`, or of its nearest recorded ancestor.
    pub fn node(&self, path: &str) -> Span {
        let path = self.written(path);
        let mut p = path.as_ref();
        loop {
            if let Some(span) = self.nodes.get(p) {
                return self.trim(*span);
            }
            match parent(p) {
                Some(up) => p = up,
                None => return Span::new(0, self.text_len.min(1)),
            }
        }
    }

    /// The span of the key of the mapping entry at `path`, or else of the value.
    pub fn key(&self, path: &str) -> Span {
        match self.keys.get(self.written(path).as_ref()) {
            Some(span) => self.trim(*span),
            None => self.node(path),
        }
    }

    /// Whether a mapping entry exists at `path`.
    pub fn has_key(&self, path: &str) -> bool {
        self.keys.contains_key(self.written(path).as_ref())
    }

    fn trim(&self, span: Span) -> Span {
        // Block containers end where the next token starts; keep underlines on one line's worth.
        let len = span
            .len
            .clamp(1, 80)
            .min(self.text_len.saturating_sub(span.offset).max(1));
        Span::new(span.offset, len)
    }
}

/// The path a new node takes under the innermost open container.
fn next_path(stack: &mut [Frame]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Seq { path, next, .. }) => {
            let p = index_path(path, *next);
            *next += 1;
            p
        }
        Some(Frame::Map { path, key, .. }) => match key.take() {
            Some(k) => k,
            // A non-scalar key: its contents get a path nobody looks up.
            None => {
                *key = Some(key_path(path, "?"));
                key_path(path, "?")
            }
        },
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Converts the event parser's character indices into byte offsets.
pub(super) struct CharOffsets {
    table: Option<Vec<usize>>,
    len: usize,
}

impl CharOffsets {
    pub(super) fn new(text: &str) -> Self {
        let table = (!text.is_ascii()).then(|| text.char_indices().map(|(b, _)| b).collect());
        CharOffsets {
            table,
            len: text.len(),
        }
    }

    pub(super) fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "version: 1\nsteps:\n  - id: a\n    needs: [b, c]\n  - id: é\n    with: {x: 1}\n";

    fn at(span: Span) -> &'static str {
        &DOC[span.offset..span.offset + span.len]
    }

    #[test]
    fn finds_values_keys_and_items_by_path() {
        let map = SourceMap::build(DOC);
        assert_eq!(at(map.node("version")), "1");
        assert_eq!(at(map.key("steps[0].needs")), "needs");
        assert_eq!(at(map.node("steps[0].needs[1]")), "c");
        assert_eq!(at(map.node("steps[1].id")), "é");
        assert_eq!(at(map.node("steps[1].with.x")), "1");
    }

    #[test]
    fn an_alias_finds_a_field_where_it_is_written() {
        let mut map = SourceMap::build(DOC);
        map.alias("steps[1].options", "steps[1].with");
        assert_eq!(at(map.key("steps[1].options")), "with");
        assert_eq!(at(map.node("steps[1].options.x")), "1");
        assert!(map.has_key("steps[1].options.x"));
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_ancestor() {
        let map = SourceMap::build(DOC);
        assert_eq!(map.node("steps[1].with.nope"), map.node("steps[1].with"));
        assert_eq!(map.node("nothing").offset, 0);
    }
}
