//! Source text, positions, and a span index over RON files.
//!
//! `ron` does not expose where each value came from, so we lex the text into a light tree of
//! where every map key, struct field and list element sits ([`Syntax`]). Diagnostics about
//! *meaning* (an unknown target, a duplicate state name) then point at the exact line and
//! column, and the fast reader (`tree_de`) deserializes the model from the same tree.

use std::borrow::Cow;
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

/// The span index of a RON text: every value, where it is, and its keyed or positional
/// children. One arena for the whole file, with keys as slices of its own copy of the text, so
/// that building and dropping it costs a few allocations rather than several per value.
#[derive(Debug, Clone, Default)]
pub struct Syntax {
    text: Box<str>,
    nodes: Vec<NodeData>,
    entries: Vec<EntryData>,
    /// Keys whose text differs from their source (escapes), unescaped.
    owned_keys: Vec<String>,
    /// Per group with many keys: (key hash, entry offset in the group), sorted, so lookups
    /// stay fast in machines with thousands of states.
    key_indexes: Vec<Vec<(u64, u32)>>,
    /// Keys that repeat an earlier key of their group: (group, offset of the first, offset
    /// of the repeat).
    duplicates: Vec<(u32, u32, u32)>,
    root: u32,
    /// Whether the text is one value, with commas exactly between the children of every
    /// group (and at most one trailing), as RON requires. The index tolerates less; the
    /// fast reader does not.
    well_formed: bool,
}

#[derive(Debug, Clone, Copy)]
struct NodeData {
    span: Span,
    /// For a struct `Name(...)`, the name; for an identifier or enum variant, itself.
    name: Option<Span>,
    first_entry: u32,
    len: u32,
    /// Into `key_indexes`, or `u32::MAX`.
    key_index: u32,
    open: u8,
    is_string: bool,
    /// How many children have keys: none, some, or all (of at least one).
    keys: Keys,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Keys {
    None,
    Some,
    All,
}

#[derive(Debug, Clone, Copy)]
enum KeyText {
    None,
    /// The key is this slice of the text.
    Raw(Span),
    /// The key is `owned_keys[i]`.
    Owned(u32),
}

#[derive(Debug, Clone, Copy)]
struct EntryData {
    key: KeyText,
    key_span: Span,
    value: u32,
}

/// A value in a [`Syntax`] index.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    tree: &'a Syntax,
    id: u32,
}

/// A child of a [`Node`]: an optional key (field name or map key) and a value.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    tree: &'a Syntax,
    data: &'a EntryData,
}

/// Groups with more keys than this get a key index.
const INDEX_KEYS_ABOVE: usize = 8;

/// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
pub const MAX_NESTING: usize = 128;

fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(key)
}

impl Syntax {
    /// The outermost value.
    pub fn root(&self) -> Node<'_> {
        Node {
            tree: self,
            id: self.root,
        }
    }

    /// [`Node::locate`] from the root.
    pub fn locate(&self, path: &[Seg]) -> (Span, bool) {
        self.root().locate(path)
    }

    /// [`Node::get`] from the root.
    pub fn get(&self, path: &[Seg]) -> Option<Node<'_>> {
        self.root().get(path)
    }

    /// Whether the text is one value written as RON requires (see the field).
    pub fn is_well_formed(&self) -> bool {
        self.well_formed
    }

    /// Whether some group repeats a key.
    pub fn has_duplicates(&self) -> bool {
        !self.duplicates.is_empty()
    }

    fn key_text(&self, key: KeyText) -> Option<&str> {
        match key {
            KeyText::None => None,
            KeyText::Raw(s) => Some(&self.text[s.start..s.end]),
            KeyText::Owned(i) => Some(&self.owned_keys[i as usize]),
        }
    }
}

impl<'a> Node<'a> {
    fn data(&self) -> &'a NodeData {
        &self.tree.nodes[self.id as usize]
    }

    /// The text of the file the index is of.
    pub fn text(&self) -> &'a str {
        &self.tree.text
    }

    /// Where the value is written.
    pub fn span(&self) -> Span {
        self.data().span
    }

    /// The opening delimiter of a group: `(`, `[` or `{`; 0 for an atom.
    pub fn open(&self) -> u8 {
        self.data().open
    }

    /// For a struct `Name(...)`, the name; for an identifier or enum variant, itself.
    pub fn name(&self) -> Option<&'a str> {
        self.data().name.map(|s| &self.tree.text[s.start..s.end])
    }

    /// Whether the value is a string literal.
    pub fn is_string(&self) -> bool {
        self.data().is_string
    }

    /// The unescaped value of a string literal.
    pub fn string(&self) -> Option<String> {
        self.is_string()
            .then(|| unquote(&self.tree.text, self.span()).into_owned())
    }

    /// The number of children.
    pub fn len(&self) -> usize {
        self.data().len as usize
    }

    /// Whether every child has a key, and there is at least one: a struct or map.
    pub fn is_keyed(&self) -> bool {
        self.data().keys == Keys::All
    }

    /// Whether no child has a key: a list, tuple or wrapper (or an atom, or empty).
    pub fn is_positional(&self) -> bool {
        self.data().keys == Keys::None
    }

    /// Whether the value has no children (an atom or an empty group).
    pub fn is_empty(&self) -> bool {
        self.data().len == 0
    }

    /// The `i`-th child.
    pub fn entry(&self, i: usize) -> Option<Entry<'a>> {
        let d = self.data();
        (i < d.len as usize).then(|| Entry {
            tree: self.tree,
            data: &self.tree.entries[d.first_entry as usize + i],
        })
    }

    /// The children in document order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + 'a {
        let d = self.data();
        let tree = self.tree;
        tree.entries[d.first_entry as usize..(d.first_entry + d.len) as usize]
            .iter()
            .map(move |data| Entry { tree, data })
    }

    /// Keys of this group that repeat an earlier one: (offset of the first, of the repeat).
    pub fn duplicates(&self) -> impl Iterator<Item = (usize, usize)> + 'a {
        let id = self.id;
        self.tree
            .duplicates
            .iter()
            .filter(move |d| d.0 == id)
            .map(|&(_, a, b)| (a as usize, b as usize))
    }

    /// The child under `key` (first occurrence), or the `i`-th positional child.
    fn child(&self, seg: &Seg) -> Option<Entry<'a>> {
        match seg {
            Seg::Key(k) => self.keyed(k),
            Seg::Index(i) => self.entry(*i),
        }
    }

    /// The child under `key` (first occurrence).
    pub fn keyed(&self, key: &str) -> Option<Entry<'a>> {
        let d = self.data();
        if d.key_index != u32::MAX {
            let index = &self.tree.key_indexes[d.key_index as usize];
            let h = key_hash(key);
            let from = index.partition_point(|&(x, _)| x < h);
            return index[from..]
                .iter()
                .take_while(|&&(x, _)| x == h)
                .map(|&(_, i)| self.entry(i as usize).expect("indexed entry"))
                .find(|e| e.key() == Some(key));
        }
        self.entries().find(|e| e.key() == Some(key))
    }

    /// The child under `key`, looking through `Some(...)` and newtype wrappers as [`get`]
    /// does.
    ///
    /// [`get`]: Node::get
    pub fn field(&self, key: &str) -> Option<Entry<'a>> {
        self.through(|n| n.keyed(key))
    }

    /// Follows `path` as far as it goes; returns the span of the deepest key (or value)
    /// reached and whether the whole path was found.
    pub fn locate(&self, path: &[Seg]) -> (Span, bool) {
        let mut node = *self;
        let mut best = self.span();
        for seg in path {
            let found = match seg {
                // A first element is the wrapper's own, not one inside it.
                Seg::Index(0) => node.child(seg),
                _ => node.through(|n| n.child(seg)),
            };
            match found {
                Some(e) => {
                    best = e.key_span().unwrap_or(e.value().span());
                    node = e.value();
                }
                None => return (best, false),
            }
        }
        (best, true)
    }

    /// The node at `path`, if all of it exists.
    pub fn get(&self, path: &[Seg]) -> Option<Node<'a>> {
        let mut node = *self;
        for seg in path {
            node = node.through(|n| n.child(seg))?.value();
        }
        Some(node)
    }

    /// The first child `find` finds here or, failing that, inside `Some(x)` and newtype
    /// variants, which wrap the value a path means.
    fn through(&self, find: impl Fn(&Node<'a>) -> Option<Entry<'a>>) -> Option<Entry<'a>> {
        let mut cur = *self;
        loop {
            if let Some(e) = find(&cur) {
                return Some(e);
            }
            cur = cur.wrapped()?;
        }
    }

    /// The value inside a one-element positional wrapper (`Some(x)`, a newtype variant).
    fn wrapped(&self) -> Option<Node<'a>> {
        let d = self.data();
        if d.len != 1 {
            return None;
        }
        let e = self.entry(0)?;
        e.key_span().is_none().then(|| e.value())
    }
}

impl<'a> Entry<'a> {
    /// The field name or map key, unescaped; none for a positional child.
    pub fn key(&self) -> Option<&'a str> {
        self.tree.key_text(self.data.key)
    }

    /// The key as written, quotes and escapes included.
    pub fn key_text_raw(&self) -> Option<&'a str> {
        self.key_span().map(|s| &self.tree.text[s.start..s.end])
    }

    /// Where the key is written.
    pub fn key_span(&self) -> Option<Span> {
        (!matches!(self.data.key, KeyText::None)).then_some(self.data.key_span)
    }

    /// The value.
    pub fn value(&self) -> Node<'a> {
        Node {
            tree: self.tree,
            id: self.data.value,
        }
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
    /// A block comment ran to the end of the text unclosed.
    unclosed_comment: bool,
    /// The token [`Lexer::peek`] read, and the position after it: taken by the next `next`.
    peeked: Option<(Option<(Tok, Span)>, usize)>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            src: text.as_bytes(),
            pos: 0,
            unclosed_comment: false,
            peeked: None,
        }
    }

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
                self.unclosed_comment |= depth > 0;
            } else {
                return;
            }
        }
    }

    fn next(&mut self) -> Option<(Tok, Span)> {
        if let Some((tok, after)) = self.peeked.take() {
            self.pos = after;
            return tok;
        }
        self.lex()
    }

    fn lex(&mut self) -> Option<(Tok, Span)> {
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

    /// The next token, read once however often it is peeked at.
    fn peek(&mut self) -> Option<(Tok, Span)> {
        if let Some((tok, _)) = self.peeked {
            return tok;
        }
        let save = self.pos;
        let tok = self.lex();
        self.peeked = Some((tok, self.pos));
        self.pos = save;
        tok
    }
}

/// Whether the text holds nothing but whitespace and comments.
pub fn is_blank(text: &str) -> bool {
    Lexer::new(text).next().is_none()
}

/// The first identifier of a text, past comments and `#![...]` attributes: the outermost
/// struct name of a RON file even when the rest does not parse.
pub fn first_name(text: &str) -> Option<&str> {
    let mut lx = Lexer::new(text);
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

/// Values nested deeper than this are left to `ron` (the text is not [`Syntax::is_well_formed`]):
/// `ron` counts about two levels per group against its limit of [`MAX_NESTING`], and its
/// message is the one users should see.
const FAST_NESTING: usize = MAX_NESTING / 4;

/// Builds the span index of a RON text. On text it does not understand it returns what it
/// has so far, marked as not well formed; it never panics and never recurses deeper than
/// [`MAX_NESTING`].
pub fn index(text: &str) -> Syntax {
    let mut lx = Lexer::new(text);
    let mut b = TreeBuilder {
        tree: Syntax {
            text: text.into(),
            well_formed: true,
            ..Syntax::default()
        },
        pending: Vec::new(),
    };
    // A file may start with `#![enable(...)]` attributes; those other than the extensions
    // orca enables anyway change how RON reads, which the fast reader leaves to `ron`.
    while lx.src[lx.pos..].starts_with(b"#![") || {
        lx.skip_trivia();
        lx.src[lx.pos..].starts_with(b"#![")
    } {
        let start = lx.pos;
        while lx.pos < lx.src.len() && lx.src[lx.pos] != b']' {
            lx.pos += 1;
        }
        b.tree.well_formed &= only_default_extensions(&text[start..lx.pos]);
        lx.pos = (lx.pos + 2).min(lx.src.len());
    }
    match b.value(&mut lx, 0) {
        Some(root) => {
            b.tree.root = root;
            b.tree.well_formed &= lx.next().is_none();
        }
        None => {
            b.tree.well_formed = false;
            b.tree.nodes.push(NodeData::atom(Span::default()));
            b.tree.root = b.tree.nodes.len() as u32 - 1;
        }
    }
    b.tree.well_formed &= !lx.unclosed_comment;
    b.tree
}

/// Whether an attribute (`#![enable(...)` up to its closing bracket) names only extensions
/// orca enables anyway (`load::ron_options`).
fn only_default_extensions(attribute: &str) -> bool {
    attribute
        .strip_prefix("#![enable(")
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|names| {
            (names.split(',').map(str::trim))
                .all(|n| matches!(n, "implicit_some" | "unwrap_variant_newtypes" | ""))
        })
}

/// The value of a double-quoted string literal, as `ron` reads it: borrowed when it has no
/// escapes. `None` for forms this does not read (raw strings, `\x` and `\u` escapes).
pub(crate) fn ron_string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '"' => '"',
            '\'' => '\'',
            '\\' => '\\',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => '\0',
            _ => return None,
        });
    }
    Some(Cow::Owned(out))
}

/// A string literal's value, leniently: as `ron` reads it where [`ron_string`] can, else
/// the text between the quotes.
fn unquote(text: &str, span: Span) -> Cow<'_, str> {
    let raw = &text[span.start..span.end];
    ron_string(raw).unwrap_or_else(|| {
        Cow::Owned(
            (raw.trim_start_matches('r')
                .trim_matches('#')
                .trim_matches('"'))
            .to_string(),
        )
    })
}

impl NodeData {
    fn atom(span: Span) -> Self {
        NodeData {
            span,
            name: None,
            first_entry: 0,
            len: 0,
            key_index: u32::MAX,
            open: 0,
            is_string: false,
            keys: Keys::None,
        }
    }
}

struct TreeBuilder {
    tree: Syntax,
    /// Entries of the groups being read, innermost last; a group's move to the arena, in one
    /// piece, when it closes.
    pending: Vec<EntryData>,
}

impl TreeBuilder {
    fn push(&mut self, node: NodeData) -> u32 {
        self.tree.nodes.push(node);
        self.tree.nodes.len() as u32 - 1
    }

    fn value(&mut self, lx: &mut Lexer, depth: usize) -> Option<u32> {
        if depth > MAX_NESTING {
            return None;
        }
        self.tree.well_formed &= depth <= FAST_NESTING;
        let (tok, span) = lx.next()?;
        match tok {
            Tok::Str => Some(self.push(NodeData {
                is_string: true,
                ..NodeData::atom(span)
            })),
            Tok::Ident => {
                if let Some((Tok::Open(b'('), _)) = lx.peek() {
                    lx.next();
                    let id = self.group(lx, span.start, b'(', depth)?;
                    self.tree.nodes[id as usize].name = Some(span);
                    Some(id)
                } else {
                    Some(self.push(NodeData {
                        name: Some(span),
                        ..NodeData::atom(span)
                    }))
                }
            }
            Tok::Open(c) => self.group(lx, span.start, c, depth),
            Tok::Other => Some(self.push(NodeData::atom(span))),
            _ => None,
        }
    }

    /// The text of a key node: a string's value, an identifier, else the raw text.
    fn key_of(&mut self, id: u32) -> KeyText {
        let n = self.tree.nodes[id as usize];
        if n.is_string {
            match unquote(&self.tree.text, n.span) {
                Cow::Borrowed(_) => KeyText::Raw(Span::new(n.span.start + 1, n.span.end - 1)),
                Cow::Owned(k) => {
                    self.tree.owned_keys.push(k);
                    KeyText::Owned(self.tree.owned_keys.len() as u32 - 1)
                }
            }
        } else if let (Some(name), 0) = (n.name, n.len) {
            KeyText::Raw(name)
        } else {
            KeyText::Raw(n.span)
        }
    }

    /// Reads the inside of a group up to its closing delimiter: `key: value` entries (struct
    /// fields, map keys) or positional values, separated by commas.
    fn group(&mut self, lx: &mut Lexer, start: usize, open: u8, depth: usize) -> Option<u32> {
        let close = match open {
            b'(' => b')',
            b'[' => b']',
            _ => b'}',
        };
        let base = self.pending.len();
        // A comma is due after each child, and only there.
        let mut comma_due = false;
        loop {
            match lx.peek()? {
                (Tok::Close(c), span) if c == close => {
                    lx.next();
                    return Some(self.close(base, Span::new(start, span.end), open));
                }
                (Tok::Comma, _) => {
                    lx.next();
                    self.tree.well_formed &= comma_due;
                    comma_due = false;
                    continue;
                }
                _ => self.tree.well_formed &= !comma_due,
            }
            comma_due = true;
            let first = self.value(lx, depth + 1)?;
            if let Some((Tok::Colon, _)) = lx.peek() {
                lx.next();
                let key = self.key_of(first);
                let key_span = self.tree.nodes[first as usize].span;
                // The key's own node is not kept: entries hold the key.
                if first as usize == self.tree.nodes.len() - 1 {
                    self.tree.nodes.pop();
                }
                let value = self.value(lx, depth + 1)?;
                self.pending.push(EntryData {
                    key,
                    key_span,
                    value,
                });
            } else {
                self.pending.push(EntryData {
                    key: KeyText::None,
                    key_span: Span::default(),
                    value: first,
                });
            }
        }
    }

    /// Moves a closed group's entries to the arena, finds repeated keys, and indexes the keys
    /// of large groups.
    fn close(&mut self, base: usize, span: Span, open: u8) -> u32 {
        let first_entry = self.tree.entries.len() as u32;
        let len = self.pending.len() - base;
        let keyed = self.pending[base..]
            .iter()
            .filter(|e| !matches!(e.key, KeyText::None))
            .count();
        self.tree.entries.extend(self.pending.drain(base..));
        let id = self.push(NodeData {
            first_entry,
            len: len as u32,
            open,
            keys: match keyed {
                0 => Keys::None,
                k if k == len => Keys::All,
                _ => Keys::Some,
            },
            ..NodeData::atom(span)
        });
        let tree = &self.tree;
        let group = &tree.entries[first_entry as usize..];
        let mut dups = Vec::new();
        let mut key_index = None;
        if keyed > INDEX_KEYS_ABOVE {
            let mut index: Vec<(u64, u32)> = group
                .iter()
                .enumerate()
                .filter_map(|(i, e)| Some((key_hash(tree.key_text(e.key)?), i as u32)))
                .collect();
            index.sort_unstable();
            // Equal keys have equal hashes, so repeats sit in one run of the sorted index.
            let mut run = 0;
            while run < index.len() {
                let end = run + index[run..].partition_point(|x| x.0 == index[run].0);
                for j in run + 1..end {
                    let key = tree.key_text(group[index[j].1 as usize].key);
                    if let Some(first) = index[run..j]
                        .iter()
                        .find(|x| tree.key_text(group[x.1 as usize].key) == key)
                    {
                        dups.push((id, first.1, index[j].1));
                    }
                }
                run = end;
            }
            key_index = Some(index);
        } else if keyed > 1 {
            for i in 1..group.len() {
                let Some(k) = tree.key_text(group[i].key) else {
                    continue;
                };
                if let Some(first) = group[..i]
                    .iter()
                    .position(|e| tree.key_text(e.key) == Some(k))
                {
                    dups.push((id, first as u32, i as u32));
                }
            }
        }
        self.tree.duplicates.extend(dups);
        if let Some(index) = key_index {
            self.tree.key_indexes.push(index);
            self.tree.nodes[id as usize].key_index = self.tree.key_indexes.len() as u32 - 1;
        }
        id
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
    let mut lx = Lexer::new(text);
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
        let root = root.root();
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
    fn keys_are_found_and_repeats_reported_in_small_and_large_groups() {
        for n in [3, 40] {
            let mut text = String::from("{");
            for i in 0..n {
                text.push_str(&format!("\"k{i}\": {i}, "));
            }
            // A repeat, and a key with an escape (found by its unescaped value).
            text.push_str("\"k1\": 99, \"a\\\"b\": (x: 1), }");
            let tree = index(&text);
            let root = tree.root();
            assert_eq!(root.len(), n + 2);
            let dups: Vec<_> = root.duplicates().collect();
            assert_eq!(dups, vec![(1, n)], "{n} keys");
            let k1 = root.keyed("k1").unwrap();
            assert_eq!(&text[k1.value().span().start..k1.value().span().end], "1");
            let last = format!("k{}", n - 1);
            assert!(root.keyed(&last).is_some());
            assert!(root.keyed("zz").is_none());
            let (span, found) = tree.locate(&["a\"b".into(), "x".into()]);
            assert!(found);
            assert_eq!(&text[span.start..span.end], "x");
        }
        assert!(!index("{\"a\": 1, \"b\": 2}").has_duplicates());
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
