//! Reading a machine file: bytes to [`MachineDef`], every problem a [`Diagnostic`].

use super::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use super::machine::MachineDef;
use super::source::{self, LineCol, Node, Seg, SourceFile, Span, SynPath};
use ron::extensions::Extensions;

/// Files larger than this are refused rather than read into memory and parsed.
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// A parsed machine file: the definition, its text, and where everything in it is.
#[derive(Debug, Clone)]
pub struct LoadedMachine {
    pub file: SourceFile,
    pub def: MachineDef,
    pub index: Node,
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

/// Looks at the outermost struct name: `Machine(...)`, `Workflow(...)`, or neither.
pub fn detect_kind(text: &str) -> FileKind {
    match source::index(text).name.as_deref() {
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

/// Reads and parses a machine file from disk.
pub fn load_machine_file(path: &std::path::Path) -> Result<LoadedMachine, Diagnostics> {
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
    load_machine_source(decode(&name, bytes)?)
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

/// Parses a machine from a [`SourceFile`], reporting every unknown field and duplicate key
/// together with the first syntax or type error.
pub fn load_machine_source(file: SourceFile) -> Result<LoadedMachine, Diagnostics> {
    let mut diags = Diagnostics::default();
    let at_start = Span::default();
    if source::is_blank(&file.text) {
        diags.push(
            Diagnostic::error("empty-file", &file, at_start, "file is empty")
                .with_hint("a machine file holds one `Machine(...)`, see docs/machines.md"),
        );
        return Err(diags);
    }
    let index = source::index(&file.text);
    if index.name.as_deref() == Some("Workflow") {
        diags.push(
            Diagnostic::error(
                "workflow-not-machine",
                &file,
                index.span,
                "this is a workflow file, but a machine was expected",
            )
            .with_hint(
                "`orca run` and `orca check` take workflows; `Machine(...)` files are statecharts",
            ),
        );
        return Err(diags);
    }

    let rewrite = source::rewrite_call_shorthand(&file.text);
    let text = rewrite
        .as_ref()
        .map_or(file.text.as_str(), |r| r.text.as_str());
    let opts = ron_options();
    let mut ignored: Vec<SynPath> = Vec::new();
    let parsed = match ron::Deserializer::from_str_with_options(text, &opts) {
        Ok(mut de) => {
            let r: Result<MachineDef, _> =
                serde_ignored::deserialize(&mut de, |p| ignored.push(syn_path(&p)));
            r.map_err(|e| de.span_error(e))
                .and_then(|def| de.end().map(|()| def).map_err(|e| de.span_error(e)))
        }
        Err(e) => Err(e),
    };

    for path in &ignored {
        let (span, _) = index.locate(path);
        let Some(Seg::Key(field)) = path.last() else {
            continue;
        };
        let mut d = Diagnostic::error(
            "unknown-field",
            &file,
            span,
            format!("unknown field `{field}`"),
        );
        if let Some(s) = state_of(path) {
            d = d.with_state(s);
        }
        if let Some(hint) = other_tools_name(field) {
            d = d.with_hint(hint);
        } else if let Some(m) = did_you_mean(field, FIELD_NAMES.iter().copied()) {
            d = d.with_hint(format!("did you mean `{m}`?"));
        }
        diags.push(d);
    }
    check_duplicate_keys(&file, &index, &mut Vec::new(), &mut diags);

    match parsed {
        Ok(def) => Ok(LoadedMachine {
            file,
            def,
            index,
            diagnostics: diags,
        }),
        Err(e) => {
            let pos = LineCol {
                line: e.span.start.line,
                col: e.span.start.col,
            };
            let mut offset = SourceFile::new("", text).offset(pos);
            if let Some(rw) = &rewrite {
                offset = rw.original_offset(offset);
            }
            let msg = match &e.code {
                ron::Error::ExceededRecursionLimit => {
                    format!(
                        "nesting is deeper than the limit of {} levels",
                        source::MAX_NESTING
                    )
                }
                code => code.to_string(),
            };
            let variant_hint = match &e.code {
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
                let mut d = Diagnostic::error(
                    "syntax",
                    &file,
                    Span::new(offset, offset),
                    ron_message(&msg),
                );
                if let Some(h) = variant_hint.or_else(|| ron_hint(&msg).map(str::to_string)) {
                    d = d.with_hint(h);
                }
                diags.push(d);
            }
            diags.sort();
            Err(diags)
        }
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

fn ron_hint(msg: &str) -> Option<&'static str> {
    if msg.starts_with("nesting is deeper") {
        Some("nesting is limited to 128 levels; flatten the machine or invoke a child machine")
    } else if msg.contains("Expected option") || msg.contains("Unexpected missing field") {
        None
    } else if msg.contains("enum variant") {
        Some("see docs/machines.md for the actions, state kinds and invoke sources")
    } else {
        None
    }
}

/// Converts serde_ignored's path to ours, looking through `Some` and newtype wrappers.
fn syn_path(p: &serde_ignored::Path) -> SynPath {
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
/// them; this reports them with the state they are in.
fn check_duplicate_keys<'a>(
    file: &SourceFile,
    node: &'a Node,
    path: &mut Vec<&'a str>,
    diags: &mut Diagnostics,
) {
    for &(first, dup) in &node.duplicates {
        let (Some((key, _)), Some((_, span))) = (&node.entries[first].key, &node.entries[dup].key)
        else {
            continue;
        };
        let first_at = node.entries[first]
            .key
            .as_ref()
            .map_or(Span::default(), |(_, s)| *s);
        let first = file.line_col(first_at.start);
        let what = match path.last() {
            Some(&"states") => "state name",
            Some(&"on") => "event",
            Some(&"context") => "context entry",
            _ => "key",
        };
        let syn: SynPath = path.iter().map(|k| Seg::Key((*k).to_string())).collect();
        let mut d = Diagnostic::error(
            "duplicate-key",
            file,
            *span,
            format!("duplicate {what} `{key}` (first at {first})"),
        )
        .with_hint("each name may appear once under one parent; merge the two");
        if let Some(s) = state_of(&syn) {
            d = d.with_state(s);
        }
        diags.push(d);
    }
    for entry in &node.entries {
        if entry.value.entries.is_empty() {
            continue;
        }
        // Positional entries do not name states; only keys matter for the state path.
        path.push(entry.key.as_ref().map_or("", |(k, _)| k.as_str()));
        check_duplicate_keys(file, &entry.value, path, diags);
        path.pop();
    }
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
