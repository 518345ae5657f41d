//! Runbook problems with a place in the file, and the one renderer that draws them.
//!
//! Every problem names a YAML path; the [`SourceMap`] turns it into a span, and miette draws
//! `file:line:column`, the source line and a caret underline.

use std::sync::Arc;

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
}

impl Problem {
    /// A problem at a span.
    pub fn at(span: Span, message: impl Into<String>, label: impl Into<String>) -> Self {
        Problem {
            span,
            message: message.into(),
            label: label.into(),
            help: None,
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

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Drawn {
    message: String,
    src: NamedSource<Arc<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl miette::Diagnostic for Drawn {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

/// Renders problems in `text` (shown as `name`) with snippets; colour only when asked.
pub fn render(name: &str, text: &str, problems: &[Problem], color: bool) -> String {
    let src = Arc::new(text.to_string());
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for p in problems {
        let (line, col) = line_col(text, p.span.offset);
        let drawn = Drawn {
            message: format!("{name}:{line}:{col}: {}", p.message),
            src: NamedSource::new(name, src.clone()),
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
    out.push_str(&format!(
        "{name}: {n} problem{}\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
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
