//! Reading a machine file: bytes to [`MachineDef`], every problem a [`Diagnostic`].

use super::diagnostic::{Diagnostic, Diagnostics, Subject, did_you_mean};
use super::machine::MachineDef;
use super::source::{self, LineCol, Node, Seg, SourceFile, Span, SynPath, Syntax};
use ron::extensions::Extensions;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Files larger than this are refused rather than read into memory and parsed.
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// A parsed machine file: the definition, its text, and where everything in it is.
#[derive(Debug, Clone)]
pub struct LoadedMachine {
    pub file: SourceFile,
    pub def: MachineDef,
    pub index: Syntax,
    /// Problems that did not stop the parse (unknown fields, duplicate keys): the compiler
    /// reports them with its own, so that every problem is shown at once.
    pub diagnostics: Diagnostics,
}

impl LoadedMachine {
    /// The span of the key (or value) at `path`, or the nearest enclosing one that exists.
    pub fn span(&self, path: &[Seg]) -> Span {
        self.index.locate(path).0
    }
}

/// What a RON file holds, judged by its first identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Machine,
    Workflow,
    Unknown,
}

/// Looks at the outermost struct name: `Machine(...)`, `Workflow(...)`, or neither. Only the
/// name counts, so a file with a syntax error is still told by its kind's loader.
pub fn detect_kind(text: &str) -> FileKind {
    match source::first_name(text) {
        Some("Machine") => FileKind::Machine,
        Some("Workflow") => FileKind::Workflow,
        _ => FileKind::Unknown,
    }
}

/// Hints for field names that XState or SCXML users bring along, which are too far from ours
/// for "did you mean" to find.
fn other_tools_name(field: &str) -> Option<&'static str> {
    Some(match field {
        "type" => {
            "orca calls it `kind`: `kind: Parallel`, `Final`, `History(Shallow)` or `History(Deep)`"
        }
        "cond" => "orca calls it `guard`",
        "onEntry" | "onentry" => "orca calls it `entry`",
        "onExit" | "onexit" => "orca calls it `exit`",
        _ => return None,
    })
}

/// Every field name the machine format has, for "did you mean" hints.
const FIELD_NAMES: &[&str] = &[
    "id",
    "initial",
    "context",
    "states",
    "on",
    "always",
    "after",
    "entry",
    "exit",
    "invoke",
    "description",
    "kind",
    "output",
    "target",
    "tags",
    "meta",
    "guard",
    "actions",
    "internal",
    "event",
    "data",
    "delay",
    "delay_expr",
    "to",
    "label",
    "expr",
    "then",
    "else_if",
    "else",
    "items",
    "item",
    "index",
    "do",
    "name",
    "args",
    "src",
    "input",
    "auto_forward",
    "invariants",
    "never_reach",
    "always_can_reach",
    "verify",
    "events",
];

/// The RON options every orca file is read with: `implicit_some` and unwrapped variant
/// newtypes (so `Raise(event: "E")` needs no extra parentheses).
pub fn ron_options() -> ron::Options {
    ron::Options::default()
        .with_default_extension(Extensions::IMPLICIT_SOME | Extensions::UNWRAP_VARIANT_NEWTYPES)
        .with_recursion_limit(source::MAX_NESTING)
}

/// Turns raw bytes into text, or a diagnostic that says where the first bad byte is.
pub fn decode(name: &str, bytes: Vec<u8>) -> Result<SourceFile, Diagnostics> {
    if bytes.len() > MAX_FILE_BYTES {
        let f = SourceFile::new(name, "");
        return Err(Diagnostics(vec![
            Diagnostic::error(
                "file-too-large",
                &f,
                Span::default(),
                format!(
                    "file is {} bytes; the limit is {} bytes",
                    bytes.len(),
                    MAX_FILE_BYTES
                ),
            )
            .with_hint("split the machine into invoked child machines"),
        ]));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(name, text)),
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let prefix_len = String::from_utf8_lossy(&e.as_bytes()[..good]).len();
            let f = SourceFile::new(name, text);
            Err(Diagnostics(vec![Diagnostic::error(
                "not-utf8",
                &f,
                Span::new(prefix_len, prefix_len + 1),
                format!("file is not UTF-8 text (invalid byte at offset {good})"),
            )]))
        }
    }
}

/// Reads a file from disk into a [`SourceFile`]; the diagnostics say why it could not be.
pub fn read_source(path: &Path) -> Result<SourceFile, Diagnostics> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        let f = SourceFile::new(name.clone(), "");
        Diagnostics(vec![Diagnostic::error(
            "io",
            &f,
            Span::default(),
            format!("cannot read file: {e}"),
        )])
    })?;
    decode(&name, bytes)
}

/// Reads and parses a machine file from disk.
pub fn load_machine_file(path: &Path) -> Result<LoadedMachine, Diagnostics> {
    load_machine_source(read_source(path)?)
}

/// Parses machine text; `name` is what diagnostics call the file.
///
/// ```
/// let m = orca::model::load_machine_str("m.ron", r#"Machine(states: { "a": () })"#).unwrap();
/// assert!(m.def.states.contains_key("a"));
/// let m = orca::model::load_machine_str("m.ron", "Machine(stats: {})").unwrap();
/// assert!(m.diagnostics.to_string().contains("m.ron:1:9: error: unknown field `stats`"));
/// ```
pub fn load_machine_str(name: &str, text: &str) -> Result<LoadedMachine, Diagnostics> {
    load_machine_source(SourceFile::new(name, text))
}

/// How machine files differ from the other formats [`parse_source`] reads.
const MACHINE_FORMAT: Format = Format {
    empty_hint: "a machine file holds one `Machine(...)`, see docs/machines.md",
    wrong_kind: Some(WrongKind {
        name: "Workflow",
        code: "workflow-not-machine",
        message: "this is a workflow file, but a machine was expected",
        hint: "`orca run` and `orca check` take workflows; `Machine(...)` files are statecharts",
    }),
    rewrite_calls: true,
    nesting_hint: "nesting is limited to 128 levels; flatten the machine or invoke a child machine",
    variant_hint: "see docs/machines.md for the actions, state kinds and invoke sources",
    field_hint: machine_field_hint,
    subject: machine_subject,
    duplicate_what: machine_duplicate_what,
};

fn machine_field_hint(_path: &[Seg], field: &str) -> Option<String> {
    if let Some(hint) = other_tools_name(field) {
        return Some(hint.to_string());
    }
    did_you_mean(field, FIELD_NAMES.iter().copied()).map(|m| format!("did you mean `{m}`?"))
}

fn machine_subject(_file: &SourceFile, _index: &Syntax, path: &[Seg]) -> Option<(Subject, String)> {
    state_of(path).map(|s| (Subject::State, s))
}

fn machine_duplicate_what(group: &[Seg]) -> &'static str {
    match group.last() {
        Some(Seg::Key(k)) if k == "states" => "state name",
        Some(Seg::Key(k)) if k == "on" => "event",
        Some(Seg::Key(k)) if k == "context" => "context entry",
        _ => "key",
    }
}

/// Parses a machine from a [`SourceFile`], reporting every unknown field and duplicate key
/// together with the first syntax or type error.
pub fn load_machine_source(file: SourceFile) -> Result<LoadedMachine, Diagnostics> {
    let (def, index, diagnostics) = parse_source::<MachineDef>(&file, &MACHINE_FORMAT)?;
    Ok(LoadedMachine {
        file,
        def,
        index,
        diagnostics,
    })
}

/// The state or operation a syntax path into a file (with its span index) is inside.
pub(crate) type SubjectOf = fn(&SourceFile, &Syntax, &[Seg]) -> Option<(Subject, String)>;

/// The other kind of file, found where one kind was expected.
pub(crate) struct WrongKind {
    /// Its outermost struct name.
    pub name: &'static str,
    pub code: &'static str,
    pub message: &'static str,
    pub hint: &'static str,
}

/// What differs between the formats [`parse_source`] reads (machines, workflows, decompose
/// output): the words of their messages and how a syntax path names what it is in.
pub(crate) struct Format {
    pub empty_hint: &'static str,
    pub wrong_kind: Option<WrongKind>,
    /// Whether to accept `Call("name", args: [..])` (machines.md's shorthand).
    pub rewrite_calls: bool,
    pub nesting_hint: &'static str,
    /// The hint for an unknown enum variant that is not close to a known one.
    pub variant_hint: &'static str,
    /// The hint for an unknown field at `path` (which ends with the field).
    pub field_hint: fn(&[Seg], &str) -> Option<String>,
    /// The state or operation a syntax path is inside.
    pub subject: SubjectOf,
    /// What the keys of the group at a syntax path are, for "duplicate X" messages.
    pub duplicate_what: fn(&[Seg]) -> &'static str,
}

/// Reads `file` as RON into `T` through `serde_ignored`: every unknown field and duplicate
/// key is reported, with the first syntax or type error, and positions in the file. On
/// success returns the value, the span index and the problems that did not stop the parse
/// (the caller's validation reports them with its own, so that all are shown at once).
pub(crate) fn parse_source<T: DeserializeOwned>(
    file: &SourceFile,
    format: &Format,
) -> Result<(T, Syntax, Diagnostics), Diagnostics> {
    let mut diags = Diagnostics::default();
    if source::is_blank(&file.text) {
        diags.push(
            Diagnostic::error("empty-file", file, Span::default(), "file is empty")
                .with_hint(format.empty_hint),
        );
        return Err(diags);
    }
    let index = source::index(&file.text);
    if let Some(wrong) = &format.wrong_kind
        && index.root().name() == Some(wrong.name)
    {
        diags.push(
            Diagnostic::error(wrong.code, file, index.root().span(), wrong.message)
                .with_hint(wrong.hint),
        );
        return Err(diags);
    }

    let (parsed, ignored) = match read_fast::<T>(&index) {
        Some((def, ignored)) => (Ok(def), ignored),
        None => read_ron::<T>(&file.text, format),
    };
    report_unknown_fields(file, &index, &ignored, format, &mut diags);
    check_duplicate_keys(file, &index, format, &mut diags);

    match parsed {
        Ok(def) => Ok((def, index, diags)),
        Err((offset, code)) => {
            let msg = match &code {
                ron::Error::ExceededRecursionLimit => {
                    format!(
                        "nesting is deeper than the limit of {} levels",
                        source::MAX_NESTING
                    )
                }
                code => code.to_string(),
            };
            let variant_hint = match &code {
                ron::Error::NoSuchEnumVariant {
                    expected, found, ..
                } => did_you_mean(found, expected.iter().copied())
                    .map(|m| format!("did you mean `{m}`?")),
                _ => None,
            };
            // An unknown field already reported makes a "missing field" error redundant noise,
            // but keep any other error: it is a second, independent problem.
            let redundant = !ignored.is_empty() && msg.contains("Unexpected missing field");
            if !redundant || diags.is_empty() {
                push_parse_error(file, offset, &msg, variant_hint, format, &mut diags);
            }
            diags.sort();
            Err(diags)
        }
    }
}

/// Reads `T` from the span index (see `tree_de`), with the paths of unknown fields; `None`
/// when the fast reader does not handle the text, which `ron` then reads.
pub(crate) fn read_fast<T: DeserializeOwned>(index: &Syntax) -> Option<(T, Vec<SynPath>)> {
    if !index.is_well_formed() {
        return None;
    }
    let mut ignored = Vec::new();
    let de = super::tree_de::TreeDe::new(index.root());
    let value = serde_ignored::deserialize(de, |p| ignored.push(syn_path(&p))).ok()?;
    Some((value, ignored))
}

/// Reads `T` with `ron`, with the paths of unknown fields; an error comes with its offset in
/// `text`. The call shorthand (which the fast reader refuses) is rewritten first.
fn read_ron<T: DeserializeOwned>(
    text: &str,
    format: &Format,
) -> (Result<T, (usize, ron::Error)>, Vec<SynPath>) {
    let rewrite = format
        .rewrite_calls
        .then(|| source::rewrite_call_shorthand(text))
        .flatten();
    let read = rewrite.as_ref().map_or(text, |r| r.text.as_str());
    let mut ignored: Vec<SynPath> = Vec::new();
    let parsed = match ron::Deserializer::from_str_with_options(read, &ron_options()) {
        Ok(mut de) => {
            let r: Result<T, _> =
                serde_ignored::deserialize(&mut de, |p| ignored.push(syn_path(&p)));
            r.map_err(|e| de.span_error(e))
                .and_then(|def| de.end().map(|()| def).map_err(|e| de.span_error(e)))
        }
        Err(e) => Err(e),
    };
    let parsed = parsed.map_err(|e| {
        let pos = LineCol {
            line: e.span.start.line,
            col: e.span.start.col,
        };
        let offset = SourceFile::new("", read).offset(pos);
        let offset = rewrite
            .as_ref()
            .map_or(offset, |rw| rw.original_offset(offset));
        (offset, e.code)
    });
    (parsed, ignored)
}

/// The fast reader alone: the machine when it handles `text`, else `None`. For tests that
/// hold it to `ron`, which must read the same machine from any text it accepts.
#[doc(hidden)]
pub fn read_machine_fast(text: &str) -> Option<MachineDef> {
    read_fast(&source::index(text)).map(|(def, _)| def)
}

/// Reports a syntax or type error at `offset` with a hint where one helps.
pub(crate) fn push_parse_error(
    file: &SourceFile,
    offset: usize,
    msg: &str,
    variant_hint: Option<String>,
    format: &Format,
    diags: &mut Diagnostics,
) {
    let mut d = Diagnostic::error("syntax", file, Span::new(offset, offset), ron_message(msg));
    let hint = if msg.starts_with("nesting is deeper") {
        Some(format.nesting_hint.to_string())
    } else if msg.contains("Expected option") || msg.contains("Unexpected missing field") {
        None
    } else if msg.contains("enum variant") {
        variant_hint.or_else(|| Some(format.variant_hint.to_string()))
    } else {
        variant_hint
    };
    if let Some(h) = hint {
        d = d.with_hint(h);
    }
    diags.push(d);
}

/// One `unknown-field` error for each path serde passed over.
pub(crate) fn report_unknown_fields(
    file: &SourceFile,
    index: &Syntax,
    ignored: &[SynPath],
    format: &Format,
    diags: &mut Diagnostics,
) {
    for path in ignored {
        let (span, _) = index.locate(path);
        let Some(Seg::Key(field)) = path.last() else {
            continue;
        };
        let mut d = Diagnostic::error(
            "unknown-field",
            file,
            span,
            format!("unknown field `{field}`"),
        );
        if let Some((subject, s)) = (format.subject)(file, index, path) {
            d = d.with_subject(subject, s);
        }
        if let Some(hint) = (format.field_hint)(path, field) {
            d = d.with_hint(hint);
        }
        diags.push(d);
    }
}

/// ron's messages, made to read like the rest of ours.
fn ron_message(msg: &str) -> String {
    let msg = msg.trim_end_matches('.');
    let mut chars = msg.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "invalid RON".to_string(),
    }
}

/// Converts serde_ignored's path to ours, looking through `Some` and newtype wrappers.
pub(crate) fn syn_path(p: &serde_ignored::Path) -> SynPath {
    use serde_ignored::Path;
    let mut out = Vec::new();
    fn walk(p: &Path, out: &mut SynPath) {
        match p {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    walk(p, &mut out);
    out
}

/// The dotted path of the state a syntax path is inside (`#` for the root).
pub fn state_of(path: &[Seg]) -> Option<String> {
    let mut names = Vec::new();
    let mut i = 0;
    while i + 1 < path.len() {
        match (&path[i], &path[i + 1]) {
            (Seg::Key(k), Seg::Key(name)) if k == "states" => {
                names.push(name.as_str());
                i += 2;
            }
            _ => break,
        }
    }
    Some(if names.is_empty() {
        "#".to_string()
    } else {
        names.join(".")
    })
}

/// Duplicate keys under one parent are an error, not "last one wins". The span index found
/// them; this reports them with the state or operation they are in.
pub(crate) fn check_duplicate_keys(
    file: &SourceFile,
    index: &Syntax,
    format: &Format,
    diags: &mut Diagnostics,
) {
    // Paths are built only in the (rare) files that repeat a key.
    if index.has_duplicates() {
        report_duplicates(file, index, index.root(), &mut Vec::new(), format, diags);
    }
}

fn report_duplicates(
    file: &SourceFile,
    index: &Syntax,
    node: Node,
    path: &mut SynPath,
    format: &Format,
    diags: &mut Diagnostics,
) {
    for (first, dup) in node.duplicates() {
        let (Some(first), Some(dup)) = (node.entry(first), node.entry(dup)) else {
            continue;
        };
        let (Some(key), Some(first_at), Some(span)) =
            (first.key(), first.key_span(), dup.key_span())
        else {
            continue;
        };
        let first = file.line_col(first_at.start);
        let what = (format.duplicate_what)(path);
        let mut d = Diagnostic::error(
            "duplicate-key",
            file,
            span,
            format!("duplicate {what} `{key}` (first at {first})"),
        )
        .with_hint("each name may appear once under one parent; merge the two");
        if let Some((subject, s)) = (format.subject)(file, index, path) {
            d = d.with_subject(subject, s);
        }
        diags.push(d);
    }
    for (i, entry) in node.entries().enumerate() {
        if entry.value().is_empty() {
            continue;
        }
        path.push(match entry.key() {
            Some(k) => Seg::Key(k.to_string()),
            None => Seg::Index(i),
        });
        report_duplicates(file, index, entry.value(), path, format, diags);
        path.pop();
    }
}

/// The name a file gives its machine or workflow when it sets no `id`: the file stem.
pub fn default_id(file_name: &str, fallback: &str) -> String {
    Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

/// Prints a machine back as RON that [`load_machine_str`] reads to an equal [`MachineDef`].
///
/// ```
/// use orca::model::load::{load_machine_str, to_ron};
/// let m = load_machine_str("m.ron", r#"Machine(states: { "a": (on: { "GO": "a" }) })"#).unwrap();
/// let again = load_machine_str("m.ron", &to_ron(&m.def).unwrap()).unwrap();
/// assert_eq!(m.def, again.def);
/// ```
pub fn to_ron(def: &MachineDef) -> Result<String, ron::Error> {
    let pretty = ron::ser::PrettyConfig::new()
        .struct_names(true)
        .extensions(Extensions::IMPLICIT_SOME | Extensions::UNWRAP_VARIANT_NEWTYPES);
    ron_options().to_string_pretty(def, pretty)
}
