//! Source text, positions, and a span index over RON files.
//!
//! `ron` deserializes our model but does not expose where each value came from, so after a
//! successful parse we lex the same text once more and build a light tree of where every map
//! key, struct field and list element sits. Diagnostics about *meaning* (an unknown target, a
//! duplicate state name) then point at the exact line and column.

use std::fmt;

/// A loaded source file: its display name and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

/// A byte range in a [`SourceFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// Line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text[start..]
            .char_indices()
            .take_while(|(i, _)| start + i < offset)
            .count();
        LineCol {
            line: line + 1,
            col: col + 1,
        }
    }

    /// Byte offset of a 1-based line and column (clamped to the text).
    pub fn offset(&self, pos: LineCol) -> usize {
        let Some(&start) = self.line_starts.get(pos.line.saturating_sub(1)) else {
            return self.text.len();
        };
        self.text[start..]
            .char_indices()
            .nth(pos.col.saturating_sub(1))
            .map(|(i, _)| start + i)
            .unwrap_or(self.text.len())
    }
}

/// One step of a path into the syntax tree: a field or map key, or a position in a list/tuple.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_string())
    }
}
impl From<String> for Seg {
    fn from(s: String) -> Self {
        Seg::Key(s)
    }
}
impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// A path into a file's syntax tree, e.g. `states / closed / on / OPEN / target`.
pub type SynPath = Vec<Seg>;

/// A value in the syntax tree: where it is, and its keyed or positional children.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub span: Span,
    /// For a struct `Name(...)`, the name; for an enum variant `Raise(...)`, the variant.
    pub name: Option<String>,
    pub entries: Vec<Entry>,
    /// For a string atom, its unescaped value (used for map keys).
    pub string: Option<String>,
    /// The opening delimiter of a group: `(`, `[` or `{`; 0 for an atom.
    pub open: u8,
    /// For groups with many keys: key → index of its first entry, so lookups stay O(1) in
    /// machines with thousands of states.
    pub key_index: Option<Box<KeyIndex>>,
    /// Keys that repeat an earlier key of this group: (index of the first, index of the repeat).
    pub duplicates: Vec<(usize, usize)>,
}

/// Key → index of its first entry in a group (keys are short and trusted: a fast hash).
pub type KeyIndex = std::collections::HashMap<String, usize, foldhash::fast::RandomState>;

/// Groups with more keys than this get a [`Node::key_index`].
const INDEX_KEYS_ABOVE: usize = 8;

/// A child of a [`Node`]: an optional key (field name or map key) and a value.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: Option<(String, Span)>,
    pub value: Node,
}

/// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
pub const MAX_NESTING: usize = 128;

impl Node {
    /// The child under `key` (first occurrence), or the `i`-th positional child.
    pub fn child(&self, seg: &Seg) -> Option<&Entry> {
        match seg {
            Seg::Key(k) => match &self.key_index {
                Some(index) => index.get(k).map(|&i| &self.entries[i]),
                None => self
                    .entries
                    .iter()
                    .find(|e| e.key.as_ref().is_some_and(|(n, _)| n == k)),
            },
            Seg::Index(i) => self.entries.get(*i),
        }
    }

    /// Follows `path` as far as it goes; returns the span of the deepest key (or value)
    /// reached and whether the whole path was found.
    pub fn locate(&self, path: &[Seg]) -> (Span, bool) {
        let mut node = self;
        let mut best = self.span;
        for seg in path {
            // `Some(x)` and newtype variants wrap the value we mean: look through them.
            let mut cur = node;
            while cur.child(seg).is_none()
                && cur.entries.len() == 1
                && cur.entries[0].key.is_none()
                && !matches!(seg, Seg::Index(0))
            {
                cur = &cur.entries[0].value;
            }
            match cur.child(seg) {
                Some(e) => {
                    best = e.key.as_ref().map(|(_, s)| *s).unwrap_or(e.value.span);
                    node = &e.value;
                }
                None => return (best, false),
            }
        }
        (best, true)
    }

    /// The node at `path`, if all of it exists.
    pub fn get(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            let mut cur = node;
            while cur.child(seg).is_none() && cur.entries.len() == 1 && cur.entries[0].key.is_none()
            {
                cur = &cur.entries[0].value;
            }
            node = &cur.child(seg)?.value;
        }
        Some(node)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Open(u8),
    Close(u8),
    Comma,
    Colon,
    Str,
    Ident,
    Other,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// Skips whitespace and comments (block comments nest, as in RON).
    fn skip_trivia(&mut self) {
        loop {
            while self.pos < self.src.len() && self.src[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.src[self.pos..].starts_with(b"//") {
                while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else if self.src[self.pos..].starts_with(b"/*") {
                let mut depth = 0usize;
                while self.pos < self.src.len() {
                    if self.src[self.pos..].starts_with(b"/*") {
                        depth += 1;
                        self.pos += 2;
                    } else if self.src[self.pos..].starts_with(b"*/") {
                        depth -= 1;
                        self.pos += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        self.pos += 1;
                    }
                }
            } else {
                return;
            }
        }
    }

    fn next(&mut self) -> Option<(Tok, Span)> {
        self.skip_trivia();
        let start = self.pos;
        let &c = self.src.get(self.pos)?;
        self.pos += 1;
        let tok = match c {
            b'(' | b'[' | b'{' => Tok::Open(c),
            b')' | b']' | b'}' => Tok::Close(c),
            b',' => Tok::Comma,
            b':' => Tok::Colon,
            b'"' => {
                self.skip_quoted(b'"');
                Tok::Str
            }
            b'\'' => {
                self.skip_quoted(b'\'');
                Tok::Other
            }
            b'r' if matches!(self.src.get(self.pos), Some(b'"' | b'#')) => {
                let hashes = self.src[self.pos..]
                    .iter()
                    .take_while(|&&b| b == b'#')
                    .count();
                self.pos += hashes;
                if self.src.get(self.pos) == Some(&b'"') {
                    self.pos += 1;
                    let close: Vec<u8> = std::iter::once(b'"')
                        .chain(std::iter::repeat_n(b'#', hashes))
                        .collect();
                    while self.pos < self.src.len() && !self.src[self.pos..].starts_with(&close) {
                        self.pos += 1;
                    }
                    self.pos = (self.pos + close.len()).min(self.src.len());
                }
                Tok::Str
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                while self
                    .src
                    .get(self.pos)
                    .is_some_and(|b| *b == b'_' || b.is_ascii_alphanumeric())
                {
                    self.pos += 1;
                }
                Tok::Ident
            }
            _ => {
                while self
                    .src
                    .get(self.pos)
                    .is_some_and(|b| !b.is_ascii_whitespace() && !b"()[]{},:\"".contains(b))
                {
                    self.pos += 1;
                }
                Tok::Other
            }
        };
        Some((tok, Span::new(start, self.pos)))
    }

    fn skip_quoted(&mut self, q: u8) {
        while self.pos < self.src.len() {
            match self.src[self.pos] {
                b'\\' => self.pos += 2,
                b if b == q => {
                    self.pos += 1;
                    return;
                }
                _ => self.pos += 1,
            }
        }
        self.pos = self.src.len();
    }

    fn peek(&mut self) -> Option<(Tok, Span)> {
        let save = self.pos;
        let t = self.next();
        self.pos = save;
        t
    }
}

/// Whether the text holds nothing but whitespace and comments.
pub fn is_blank(text: &str) -> bool {
    Lexer {
        src: text.as_bytes(),
        pos: 0,
    }
    .next()
    .is_none()
}

/// The first identifier of a text, past comments and `#![...]` attributes: the outermost
/// struct name of a RON file even when the rest does not parse.
pub fn first_name(text: &str) -> Option<&str> {
    let mut lx = Lexer {
        src: text.as_bytes(),
        pos: 0,
    };
    while let Some((tok, span)) = lx.next() {
        match tok {
            Tok::Ident => return Some(&text[span.start..span.end]),
            // `#![enable(...)]`: the lexer reads `#!` as one token, then the bracketed group.
            Tok::Other if text[span.start..].starts_with("#!") => {
                let mut depth = 0usize;
                while let Some((t, _)) = lx.next() {
                    match t {
                        Tok::Open(_) => depth += 1,
                        Tok::Close(_) => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => return None,
        }
    }
    None
}

/// Builds the span index of a RON text that `ron` has already accepted. On text it does not
/// understand it returns what it has so far; it never panics and never recurses deeper than
/// [`MAX_NESTING`].
pub fn index(text: &str) -> Node {
    let mut lx = Lexer {
        src: text.as_bytes(),
        pos: 0,
    };
    // A file may start with `#![enable(...)]` attributes.
    while lx.src[lx.pos..].starts_with(b"#![") || {
        lx.skip_trivia();
        lx.src[lx.pos..].starts_with(b"#![")
    } {
        while lx.pos < lx.src.len() && lx.src[lx.pos] != b']' {
            lx.pos += 1;
        }
        lx.pos = (lx.pos + 2).min(lx.src.len());
    }
    parse_value(&mut lx, text, 0).unwrap_or_default()
}

fn unquote(text: &str, span: Span) -> String {
    let raw = &text[span.start..span.end];
    // Plain strings are JSON-compatible for what matters here (keys are simple names).
    serde_json::from_str::<String>(raw).unwrap_or_else(|_| {
        raw.trim_start_matches('r')
            .trim_matches('#')
            .trim_matches('"')
            .to_string()
    })
}

fn parse_value(lx: &mut Lexer, text: &str, depth: usize) -> Option<Node> {
    if depth > MAX_NESTING {
        return None;
    }
    let (tok, span) = lx.next()?;
    match tok {
        Tok::Str => Some(Node {
            span,
            string: Some(unquote(text, span)),
            ..Node::default()
        }),
        Tok::Ident => {
            if let Some((Tok::Open(b'('), _)) = lx.peek() {
                lx.next();
                let mut node = parse_group(lx, text, b')', depth)?;
                node.span.start = span.start;
                node.open = b'(';
                node.name = Some(text[span.start..span.end].to_string());
                Some(node)
            } else {
                Some(Node {
                    span,
                    name: Some(text[span.start..span.end].to_string()),
                    ..Node::default()
                })
            }
        }
        Tok::Open(c) => {
            let close = match c {
                b'(' => b')',
                b'[' => b']',
                _ => b'}',
            };
            let mut node = parse_group(lx, text, close, depth)?;
            node.span.start = span.start;
            node.open = c;
            Some(node)
        }
        Tok::Other => Some(Node {
            span,
            ..Node::default()
        }),
        _ => None,
    }
}

/// Finds repeated keys and, for large groups, builds the key index.
fn index_keys(node: &mut Node) {
    let keyed = node.entries.iter().filter(|e| e.key.is_some()).count();
    if keyed > INDEX_KEYS_ABOVE {
        let mut index = KeyIndex::with_capacity_and_hasher(keyed, Default::default());
        for (i, e) in node.entries.iter().enumerate() {
            if let Some((k, _)) = &e.key {
                if let Some(&first) = index.get(k) {
                    node.duplicates.push((first, i));
                } else {
                    index.insert(k.clone(), i);
                }
            }
        }
        node.key_index = Some(Box::new(index));
    } else if keyed > 1 {
        for i in 1..node.entries.len() {
            let Some((k, _)) = &node.entries[i].key else {
                continue;
            };
            if let Some(first) = node.entries[..i]
                .iter()
                .position(|e| e.key.as_ref().is_some_and(|(n, _)| n == k))
            {
                node.duplicates.push((first, i));
            }
        }
    }
}

/// Parses the inside of a group up to `close`: `key: value` entries (struct fields, map keys)
/// or positional values, separated by commas.
fn parse_group(lx: &mut Lexer, text: &str, close: u8, depth: usize) -> Option<Node> {
    let mut node = Node::default();
    loop {
        match lx.peek()? {
            (Tok::Close(c), span) if c == close => {
                lx.next();
                node.span.end = span.end;
                index_keys(&mut node);
                return Some(node);
            }
            (Tok::Comma, _) => {
                lx.next();
                continue;
            }
            _ => {}
        }
        let first = parse_value(lx, text, depth + 1)?;
        if let Some((Tok::Colon, _)) = lx.peek() {
            lx.next();
            let value = parse_value(lx, text, depth + 1)?;
            let key = first
                .string
                .clone()
                .or_else(|| {
                    (first.entries.is_empty())
                        .then(|| first.name.clone())
                        .flatten()
                })
                .unwrap_or_else(|| text[first.span.start..first.span.end].to_string());
            node.entries.push(Entry {
                key: Some((key, first.span)),
                value,
            });
        } else {
            node.entries.push(Entry {
                key: None,
                value: first,
            });
        }
    }
}

/// Text rewritten before parsing, with the insertions made, to map positions back.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub text: String,
    /// `(offset in the original text, inserted length)`, in increasing order.
    pub inserts: Vec<(usize, usize)>,
}

impl Rewrite {
    /// Maps a byte offset in the rewritten text back to the original text.
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shift = 0;
        for &(at, len) in &self.inserts {
            let start = at + shift; // where this insertion sits in the rewritten text
            if offset < start {
                break;
            }
            if offset < start + len {
                return at;
            }
            shift += len;
        }
        offset - shift
    }
}

/// `Call("name", args: [..])`, as machines.md writes it, mixes a positional and a named
/// argument, which RON does not allow. Rewrite it to `Call(name: "name", args: [..])` before
/// parsing; [`Rewrite::original_offset`] maps error positions back.
pub fn rewrite_call_shorthand(text: &str) -> Option<Rewrite> {
    let mut lx = Lexer {
        src: text.as_bytes(),
        pos: 0,
    };
    let mut window: Vec<(Tok, Span)> = Vec::with_capacity(6);
    let mut inserts = Vec::new();
    while let Some(t) = lx.next() {
        if window.len() == 6 {
            window.remove(0);
        }
        window.push(t);
        if let [
            (Tok::Ident, call),
            (Tok::Open(b'('), _),
            (Tok::Str, name),
            (Tok::Comma, _),
            (Tok::Ident, args),
            (Tok::Colon, _),
        ] = window[..]
            && &text[call.start..call.end] == "Call"
            && &text[args.start..args.end] == "args"
        {
            inserts.push((name.start, "name: ".len()));
        }
    }
    if inserts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + inserts.len() * 6);
    let mut last = 0;
    for &(at, _) in &inserts {
        out.push_str(&text[last..at]);
        out.push_str("name: ");
        last = at;
    }
    out.push_str(&text[last..]);
    Some(Rewrite { text: out, inserts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let f = SourceFile::new("x", "ab\nçd\n");
        assert_eq!(f.line_col(0), LineCol { line: 1, col: 1 });
        assert_eq!(f.line_col(3), LineCol { line: 2, col: 1 });
        assert_eq!(f.line_col(5), LineCol { line: 2, col: 2 });
        assert_eq!(f.offset(LineCol { line: 2, col: 2 }), 5);
    }

    #[test]
    fn index_locates_keys_through_nesting() {
        let text = r#"Machine(
    // comment (with parens)
    states: { "a": (on: { "GO": "b" }), "b": State(kind: Final) },
    /* nested /* block */ comment */
    entry: [Raise("x"), Log(label: "l", expr: "1")],
)"#;
        let f = SourceFile::new("t", text);
        let root = index(text);
        let (span, found) = root.locate(&["states".into(), "a".into(), "on".into(), "GO".into()]);
        assert!(found);
        assert_eq!(f.line_col(span.start), LineCol { line: 3, col: 27 });
        let (span, found) = root.locate(&["entry".into(), 1.into(), "expr".into()]);
        assert!(found);
        assert_eq!(&text[span.start..span.end], "expr");
        let (_, found) = root.locate(&["states".into(), "zzz".into()]);
        assert!(!found);
    }

    #[test]
    fn call_shorthand_is_rewritten_and_positions_map_back() {
        let text = "[Call(\"f\", args: [\"1\"]), Call(\"g\", args: [])]";
        let rw = rewrite_call_shorthand(text).unwrap();
        assert_eq!(
            rw.text,
            "[Call(name: \"f\", args: [\"1\"]), Call(name: \"g\", args: [])]"
        );
        let g = rw.text.find("\"g\"").unwrap();
        assert_eq!(rw.original_offset(g), text.find("\"g\"").unwrap());
        assert_eq!(rw.original_offset(0), 0);
        assert!(rewrite_call_shorthand("[Call(\"f\")]").is_none());
    }

    #[test]
    fn first_name_looks_past_comments_and_attributes() {
        assert_eq!(first_name("// c\nWorkflow(tasks: { oops"), Some("Workflow"));
        assert_eq!(
            first_name("#![enable(implicit_some)]\n/* x */ Machine("),
            Some("Machine")
        );
        assert_eq!(first_name("{ \"a\": 1 }"), None);
        assert_eq!(first_name(""), None);
    }

    #[test]
    fn index_survives_garbage_and_deep_nesting() {
        let _ = index("((((((((");
        let _ = index(&"[".repeat(100_000));
        let _ = index("\"unterminated");
        let _ = index("r##\"x");
        let _ = index("/* open");
    }
}
