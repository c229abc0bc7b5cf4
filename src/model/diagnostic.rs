//! Problems found in a file, with where they are and what to do about them.

use super::source::{LineCol, SourceFile, Span};
use serde::Serialize;
use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// What the path in [`Diagnostic::state`] names: a state of a machine or an operation of a
/// workflow. Only the human forms differ ("in state", "in operation"); JSON keeps the one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subject {
    #[default]
    State,
    Operation,
}

impl Subject {
    /// The word the human forms use: `state` or `operation`.
    pub fn noun(self) -> &'static str {
        match self {
            Subject::State => "state",
            Subject::Operation => "operation",
        }
    }
}

/// One problem in a file: `FILE:LINE:COL: error: MESSAGE`, the state it concerns and a hint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable kebab-case name of the problem, e.g. `unknown-target`.
    pub code: &'static str,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// The byte range in the file, for snippets.
    #[serde(skip)]
    pub span: Span,
    /// The state path concerned, if any (`#` for the root), or for a workflow the operation
    /// path (`deploy.canary`; the workflow id for the root), as [`Diagnostic::subject`] says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Whether [`Diagnostic::state`] is a state or an operation.
    #[serde(skip)]
    pub subject: Subject,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span` of `file`.
    pub fn new(
        severity: Severity,
        code: &'static str,
        file: &SourceFile,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        let LineCol { line, col } = file.line_col(span.start);
        Diagnostic {
            severity,
            code,
            message: message.into(),
            file: file.name.clone(),
            line,
            col,
            span,
            state: None,
            subject: Subject::State,
            hint: None,
        }
    }

    pub fn error(
        code: &'static str,
        file: &SourceFile,
        span: Span,
        msg: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, code, file, span, msg)
    }

    pub fn warning(
        code: &'static str,
        file: &SourceFile,
        span: Span,
        msg: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, code, file, span, msg)
    }

    pub fn with_state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self.subject = Subject::State;
        self
    }

    /// Names the workflow operation concerned (its dotted path, the workflow id for the root).
    pub fn with_operation(mut self, op: impl Into<String>) -> Self {
        self.state = Some(op.into());
        self.subject = Subject::Operation;
        self
    }

    /// Names what `path` is by `subject`.
    pub fn with_subject(self, subject: Subject, path: impl Into<String>) -> Self {
        match subject {
            Subject::State => self.with_state(path),
            Subject::Operation => self.with_operation(path),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// The one-line form `FILE:LINE:COL: error: MESSAGE`, then the state and hint lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(state) = &self.state {
            write!(f, "\n  in {} `{state}`", self.subject.noun())?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the problems found in one load, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    /// Sorts by position, keeping the order found among equals.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = if len <= 3 { 1 } else { (len / 3).max(2) };
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("gaurd", "guard"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn did_you_mean_picks_the_closest_plausible() {
        assert_eq!(
            did_you_mean("gard", ["guard", "target", "actions"]),
            Some("guard")
        );
        assert_eq!(did_you_mean("xyz", ["guard", "target"]), None);
    }

    #[test]
    fn display_has_the_documented_shape() {
        let f = SourceFile::new("m.ron", "ab\ncd");
        let d = Diagnostic::error("x", &f, Span::new(4, 5), "bad")
            .with_state("a.b")
            .with_hint("fix it");
        assert_eq!(
            d.to_string(),
            "m.ron:2:2: error: bad\n  in state `a.b`\n  hint: fix it"
        );
    }
}
