//! Printing diagnostics: one line each, with a source snippet on a terminal.

use crate::model::{Diagnostic, Severity};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use std::fmt;
use std::io::IsTerminal;

/// A [`Diagnostic`] with its file text, rendered by miette.
struct Snippet<'a> {
    diag: &'a Diagnostic,
    source: NamedSource<String>,
}

impl fmt::Debug for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.diag)
    }
}

impl fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diag;
        let sev = if d.is_error() { "error" } else { "warning" };
        write!(f, "{}:{}:{}: {sev}: {}", d.file, d.line, d.col, d.message)
    }
}

impl std::error::Error for Snippet<'_> {}

impl miette::Diagnostic for Snippet<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.diag.span;
        let len = span.len().max(1);
        let label = self
            .diag
            .state
            .as_ref()
            .map(|s| format!("in {} `{s}`", self.diag.subject.noun()));
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            label,
            SourceSpan::new(span.start.into(), len),
        ))))
    }
}

/// Writes diagnostics to stderr: with a source snippet when stderr is a terminal, else the
/// plain `FILE:LINE:COL: error: MESSAGE` form with its state and hint lines.
pub fn print(diags: &[Diagnostic], text_of: impl Fn(&str) -> Option<String>) {
    let fancy = std::io::stderr().is_terminal();
    for d in diags {
        if fancy && let Some(text) = text_of(&d.file) {
            let snippet = Snippet {
                diag: d,
                source: NamedSource::new(d.file.clone(), clamp(text, d)),
            };
            let mut out = String::new();
            let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode());
            if handler.render_report(&mut out, &snippet).is_ok() {
                eprint!("{out}");
                continue;
            }
        }
        eprintln!("{d}");
    }
}

/// miette needs the span inside the text.
fn clamp(text: String, d: &Diagnostic) -> String {
    if d.span.start < text.len() || text.is_empty() {
        text
    } else {
        text + " "
    }
}
