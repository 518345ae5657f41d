//! Runbook problems with a place in the file, and the one renderer that draws them.
//!
//! Every problem names a YAML path; the [`SourceMap`] turns it into a span, and miette draws
//! `file:line:column`, the source line and a caret underline.
//!
//! Rendering is linear in the file: the line index is built once, each snippet is drawn from a
//! window of a few lines (not from the whole file), and at most [`MAX_RENDERED`] problems are drawn.
//! A problem marked unquoted (a file that is not a runbook, or looks like key material) is drawn
//! with its place and message only, never with a line of the file.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use super::span::{SourceMap, Span};

/// One problem found in a runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub span: Span,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The short note under the caret.
    pub label: String,
    /// What to do about it, when there is something useful to say.
    pub help: Option<String>,
    /// Whether the rendered diagnostic may show the source line (false for files that are not
    /// runbooks, whose text may be anything, such as a key).
    pub quote: bool,
}

impl Problem {
    /// A problem at a span.
    pub fn at(span: Span, message: impl Into<String>, label: impl Into<String>) -> Self {
        Problem {
            span,
            message: message.into(),
            label: label.into(),
            help: None,
            quote: true,
        }
    }

    /// A problem whose diagnostic never shows the file's text.
    pub fn unquoted(span: Span, message: impl Into<String>) -> Self {
        Problem {
            quote: false,
            ..Problem::at(span, message, "")
        }
    }

    /// Adds advice.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Collects problems against paths in one file.
pub struct Problems<'a> {
    map: &'a SourceMap,
    /// The problems so far, in the order found.
    pub list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    /// An empty collection for a file indexed by `map`.
    pub fn new(map: &'a SourceMap) -> Self {
        Problems {
            map,
            list: Vec::new(),
        }
    }

    /// A problem with the value at `path`.
    pub fn value(
        &mut self,
        path: &str,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> &mut Problem {
        self.list
            .push(Problem::at(self.map.node(path), message, label));
        self.last()
    }

    /// A problem with the key of the entry at `path`.
    pub fn key(
        &mut self,
        path: &str,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> &mut Problem {
        self.list
            .push(Problem::at(self.map.key(path), message, label));
        self.last()
    }

    /// A problem at an explicit span.
    pub fn span(
        &mut self,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> &mut Problem {
        self.list.push(Problem::at(span, message, label));
        self.last()
    }

    fn last(&mut self) -> &mut Problem {
        let n = self.list.len() - 1;
        &mut self.list[n]
    }

    /// The source map behind these problems.
    pub fn map(&self) -> &SourceMap {
        self.map
    }
}

impl Problem {
    /// Sets advice in place.
    pub fn with_help(&mut self, help: impl Into<String>) {
        self.help = Some(help.into());
    }
}

/// At most this many problems are drawn; the rest are counted ("and N more").
pub const MAX_RENDERED: usize = 100;

/// Lines longer than this are not quoted (the message still gives line and column).
const MAX_QUOTED_LINE: usize = 1000;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Drawn {
    message: String,
    src: Option<NamedSource<Window>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl miette::Diagnostic for Drawn {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.src.as_ref()?;
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

/// A few lines of the file, with their place in it, so miette never reads the whole file.
#[derive(Debug)]
struct Window {
    text: String,
    /// Byte offset of `text` in the file.
    base: usize,
    /// 0-based line number of the first line of `text`.
    line0: usize,
}

impl miette::SourceCode for Window {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let offset = span.offset().saturating_sub(self.base).min(self.text.len());
        let local = SourceSpan::new(offset.into(), span.len());
        let inner = self.text.as_str().read_span(&local, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new(
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + self.base).into(),
                inner.span().len(),
            ),
            inner.line() + self.line0,
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// Where each line of a text starts: built once, then any offset's line and column is cheap.
pub struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    /// Indexes `text`.
    pub fn new(text: &'t str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { text, starts }
    }

    /// 0-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// Byte range of a 0-based line, without its newline.
    fn line_range(&self, line: usize) -> (usize, usize) {
        let start = self.starts.get(line).copied().unwrap_or(self.text.len());
        let end = self
            .starts
            .get(line + 1)
            .map_or(self.text.len(), |&n| n.saturating_sub(1));
        (start, end.max(start))
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char(self.text, offset.min(self.text.len()));
        let line = self.line_of(offset);
        let (start, _) = self.line_range(line);
        let before = self.text.get(start..offset).unwrap_or_default();
        // A leading byte-order mark takes no column.
        let before = before.strip_prefix('\u{feff}').unwrap_or(before);
        (line + 1, before.chars().count() + 1)
    }

    /// The lines around a span (one before, one after), unless a line is too long to quote.
    fn window(&self, span: crate::runbook::span::Span) -> Option<Window> {
        let first = self
            .line_of(span.offset.min(self.text.len()))
            .saturating_sub(1);
        let last_line = self.line_of((span.offset + span.len).min(self.text.len()));
        let last = (last_line + 1).min(self.starts.len() - 1);
        if (first..=last).any(|l| {
            let (a, b) = self.line_range(l);
            b - a > MAX_QUOTED_LINE
        }) {
            return None;
        }
        let (base, _) = self.line_range(first);
        let (_, end) = self.line_range(last);
        let text = self.text.get(base..end)?.to_string();
        Some(Window {
            text,
            base,
            line0: first,
        })
    }
}

fn floor_char(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Renders problems in `text` (shown as `name`) with snippets; colour only when asked. At most
/// [`MAX_RENDERED`] are drawn, then a line counts the rest.
pub fn render(name: &str, text: &str, problems: &[Problem], color: bool) -> String {
    let index = LineIndex::new(text);
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for p in problems.iter().take(MAX_RENDERED) {
        let (line, col) = index.line_col(p.span.offset);
        let src = if p.quote {
            index.window(p.span).map(|w| NamedSource::new(name, w))
        } else {
            None
        };
        let drawn = Drawn {
            message: format!("{name}:{line}:{col}: {}", p.message),
            src,
            labels: vec![LabeledSpan::new_primary_with_span(
                Some(p.label.clone()),
                SourceSpan::from(p.span),
            )],
            help: p.help.clone(),
        };
        if handler.render_report(&mut out, &drawn).is_err() {
            out.push_str(&drawn.message);
        }
        out.push('\n');
    }
    let n = problems.len();
    if n > MAX_RENDERED {
        out.push_str(&format!(
            "{name}: … and {} more problems not shown (fix these first)\n",
            n - MAX_RENDERED
        ));
    }
    out.push_str(&format!(
        "{name}: {n} problem{}\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a: 1\nbé: x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 5), (2, 1));
        assert_eq!(line_col(text, text.find('x').expect("x")), (2, 5));
    }
}
