//! Reading a workflow file (`workflows.md`) and the subtasks a `decompose` command prints:
//! text to [`WorkflowDef`] / [`OperationDef`]s, every problem a [`Diagnostic`].
//!
//! The parsing itself is the machine loader's ([`super::load::parse_source`]); what differs is
//! said here: the field names for "did you mean" (by where the unknown field sits: the
//! workflow, an operation, a `retry`, `defaults`), what a duplicate key is, and that the
//! "state path" of a diagnostic is the operation path (`deploy.canary`), read off the syntax
//! path (`tasks / deploy / tasks / canary / ...`).

use super::diagnostic::{Diagnostic, Diagnostics, Subject, did_you_mean};
use super::load::{
    self, Format, WrongKind, check_duplicate_keys, parse_source, push_parse_error, read_source,
    report_unknown_fields, syn_path,
};
use super::source::{self, LineCol, Node, Seg, SourceFile, Span, SynPath, Syntax};
use super::workflow::{OperationDef, WorkflowDef};
use indexmap::IndexMap;
use std::path::Path;

/// A parsed workflow file: the definition, its text, and where everything in it is.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    /// The file's name and text.
    pub file: SourceFile,
    /// The workflow as written.
    pub def: WorkflowDef,
    /// Where every key and value is in the text.
    pub index: Syntax,
    /// Problems that did not stop the parse (unknown fields, duplicate keys): the plan
    /// compiler reports them with its own, so that every problem is shown at once.
    pub diagnostics: Diagnostics,
}

impl LoadedWorkflow {
    /// The span of the key (or value) at `path`, or the nearest enclosing one that exists.
    pub fn span(&self, path: &[Seg]) -> Span {
        self.index.locate(path).0
    }

    /// The workflow's id: its `id` field, else the file stem.
    pub fn id(&self) -> String {
        self.def
            .id
            .clone()
            .unwrap_or_else(|| load::default_id(&self.file.name, "workflow"))
    }
}

/// Reads and parses a workflow file from disk.
pub fn load_workflow_file(path: &Path) -> Result<LoadedWorkflow, Diagnostics> {
    load_workflow_source(read_source(path)?)
}

/// Parses workflow text; `name` is what diagnostics call the file.
///
/// ```
/// use orca::model::load_workflow::load_workflow_str;
/// let w = load_workflow_str("w.ron", r#"Workflow(tasks: { "a": (run: Shell("true")) })"#).unwrap();
/// assert!(w.def.tasks.contains_key("a"));
/// let w = load_workflow_str("w.ron", r#"Workflow(tasks: { "a": (rn: Shell("true")) })"#).unwrap();
/// assert!(w.diagnostics.to_string().contains("w.ron:1:25: error: unknown field `rn`"));
/// ```
pub fn load_workflow_str(name: &str, text: &str) -> Result<LoadedWorkflow, Diagnostics> {
    load_workflow_source(SourceFile::new(name, text))
}

/// Parses a workflow from a [`SourceFile`], reporting every unknown field and duplicate key
/// together with the first syntax or type error.
pub fn load_workflow_source(file: SourceFile) -> Result<LoadedWorkflow, Diagnostics> {
    let (def, index, diagnostics) = parse_source::<WorkflowDef>(&file, &WORKFLOW_FORMAT)?;
    Ok(LoadedWorkflow {
        file,
        def,
        index,
        diagnostics,
    })
}

/// The name diagnostics give decompose output, which has no file.
const SUBTASKS_NAME: &str = "decompose output";

/// Reads what a `decompose` command printed: a map of subtask name → operation in the
/// schema of the workflow file, as a JSON object or a RON map. Unknown fields and duplicate
/// names are errors here (a command's output has no one to read warnings); the message lists
/// every problem found, each with its line and column in the output.
///
/// ```
/// use orca::model::load_workflow::parse_subtasks;
/// let json = parse_subtasks(r#"{"eu": {"run": {"Shell": "./deploy.sh eu"}}}"#).unwrap();
/// let ron = parse_subtasks(r#"{ "eu": (run: Shell("./deploy.sh eu")) }"#).unwrap();
/// assert_eq!(json, ron);
/// assert!(parse_subtasks("[1, 2]").unwrap_err().contains("map of subtasks"));
/// ```
pub fn parse_subtasks(text: &str) -> Result<IndexMap<String, OperationDef>, String> {
    let file = SourceFile::new(SUBTASKS_NAME, text);
    let (map, diags) = match parse_subtasks_source(&file) {
        Ok((map, diags)) => (Some(map), diags),
        Err(diags) => (None, diags),
    };
    match map {
        Some(map) if diags.is_empty() => Ok(map),
        _ => Err(one_line(diags)),
    }
}

/// Diagnostics about decompose output as one line: `LINE:COL: MESSAGE (hint); ...`.
fn one_line(mut diags: Diagnostics) -> String {
    diags.sort();
    let parts: Vec<String> = diags
        .iter()
        .map(|d| {
            let mut s = format!("{}:{}: {}", d.line, d.col, d.message);
            if let Some(op) = &d.state {
                s.push_str(&format!(" in subtask `{op}`"));
            }
            if let Some(h) = &d.hint {
                s.push_str(&format!(" ({h})"));
            }
            s
        })
        .collect();
    if parts.is_empty() {
        "invalid decompose output".to_string()
    } else {
        parts.join("; ")
    }
}

fn parse_subtasks_source(
    file: &SourceFile,
) -> Result<(IndexMap<String, OperationDef>, Diagnostics), Diagnostics> {
    let text = file.text.as_str();
    let mut diags = Diagnostics::default();
    if source::is_blank(text) {
        diags.push(
            Diagnostic::error(
                "empty-output",
                file,
                Span::default(),
                "decompose printed nothing; expected a map of subtasks",
            )
            .with_hint("print `{}` when there are no subtasks"),
        );
        return Err(diags);
    }
    // JSON first: JSON text is close enough to RON that ron may accept some of it, but it
    // reads `{"Shell": "x"}` as a map where the schema wants an enum. Text that is not JSON
    // is RON, unless it has no RON struct or variant in it and so was meant as JSON.
    let json = serde_json::from_str::<serde_json::Value>(text);
    let looks_json = json.is_ok() || !text.contains('(');
    let index = source::index(text);
    let found = match &json {
        Ok(v) if !v.is_object() => Some(json_kind(v).to_string()),
        Ok(_) => None,
        Err(_) if !looks_json && index.root().open() != b'{' => Some(ron_kind(index.root())),
        Err(_) => None,
    };
    if let Some(found) = found {
        diags.push(
            Diagnostic::error(
                "not-a-map",
                file,
                index.root().span(),
                format!("expected a map of subtasks (name → operation), found {found}"),
            )
            .with_hint(r#"print e.g. {"eu": {"run": {"Shell": "./deploy.sh eu"}}}"#),
        );
        return Err(diags);
    }
    if !looks_json {
        let (map, _, diags) = parse_source(file, &SUBTASKS_FORMAT)?;
        return Ok((map, diags));
    }

    let mut ignored: Vec<SynPath> = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: Result<IndexMap<String, OperationDef>, _> =
        serde_ignored::deserialize(&mut de, |p| ignored.push(syn_path(&p)))
            .and_then(|map| de.end().map(|()| map));
    report_unknown_fields(file, &index, &ignored, &SUBTASKS_FORMAT, &mut diags);
    check_duplicate_keys(file, &index, &SUBTASKS_FORMAT, &mut diags);
    match parsed {
        Ok(map) => Ok((map, diags)),
        Err(e) => {
            let offset = file.offset(LineCol {
                line: e.line(),
                col: e.column(),
            });
            // serde_json appends " at line L column C", which our own position replaces.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg);
            let redundant = !ignored.is_empty() && msg.starts_with("missing field");
            if !redundant || diags.is_empty() {
                push_parse_error(file, offset, msg, None, &SUBTASKS_FORMAT, &mut diags);
            }
            Err(diags)
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

fn ron_kind(index: Node) -> String {
    match (index.name(), index.open()) {
        (Some(name), b'(') => format!("`{name}(...)`"),
        (_, b'[') => "a list".to_string(),
        (_, b'(') => "a struct or tuple".to_string(),
        _ => "a single value".to_string(),
    }
}

/// Where a syntax path is in the workflow schema: which struct (or map) holds the next key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The `Workflow(...)` itself.
    Workflow,
    /// A `tasks` map: its keys name operations.
    Tasks,
    Operation,
    Retry,
    Defaults,
    Env,
    /// Inside a value the schema does not look into (`input`, a command's arguments).
    Opaque,
}

/// Follows `path` from `start`, collecting the names of the operations it enters.
fn walk(start: Place, path: &[Seg]) -> (Place, Vec<&str>) {
    let mut place = start;
    let mut ops = Vec::new();
    for seg in path {
        let Seg::Key(k) = seg else {
            place = Place::Opaque;
            continue;
        };
        place = match (place, k.as_str()) {
            (Place::Workflow | Place::Operation, "tasks") => Place::Tasks,
            (Place::Tasks, name) => {
                ops.push(name);
                Place::Operation
            }
            (Place::Workflow | Place::Operation | Place::Defaults, "retry") => Place::Retry,
            (Place::Workflow, "defaults") => Place::Defaults,
            (Place::Workflow | Place::Operation, "env") => Place::Env,
            _ => Place::Opaque,
        };
    }
    (place, ops)
}

/// The operation a syntax path into a workflow file is inside, as a dotted path (`deploy.canary`),
/// or `None` for the workflow itself.
pub fn operation_of(path: &[Seg]) -> Option<String> {
    let (_, ops) = walk(Place::Workflow, path);
    (!ops.is_empty()).then(|| ops.join("."))
}

/// Field names the `Workflow(...)` and every operation have.
pub const SHARED_FIELDS: &[&str] = &[
    "description",
    "analyze",
    "research",
    "decompose",
    "run",
    "integrate",
    "compensate",
    "tasks",
    "retry",
    "timeout",
    "max_parallel",
    "on_child_failure",
    "env",
    "cwd",
    "input",
    "tags",
];

/// Field names only the `Workflow(...)` has, beside [`SHARED_FIELDS`].
pub const WORKFLOW_ONLY_FIELDS: &[&str] = &["id", "defaults"];

/// Field names only operations have, beside [`SHARED_FIELDS`].
pub const OPERATION_ONLY_FIELDS: &[&str] = &["after", "optional"];

/// Field names of a `retry: (...)`.
pub const RETRY_FIELDS: &[&str] = &["max_attempts", "initial", "factor", "max_delay", "jitter"];

/// Field names of `defaults: (...)`.
pub const DEFAULTS_FIELDS: &[&str] = &["retry", "timeout"];

/// Names other workflow tools use, which are too far from ours for "did you mean".
fn other_tools_name(field: &str) -> Option<&'static str> {
    Some(match field {
        "needs" | "depends_on" | "dependsOn" | "depends" | "requires" => "orca calls it `after`",
        "steps" | "jobs" | "stages" | "children" | "subtasks" => "orca calls it `tasks`",
        "command" | "cmd" | "script" | "exec" | "shell" => {
            "work is bound to a phase: `run: Shell(\"...\")` or `run: Command([\"prog\", ...])`"
        }
        "retries" | "attempts" => "write `retry: (max_attempts: N)`",
        "parallelism" | "concurrency" => "orca calls it `max_parallel`",
        "continue_on_error" | "allow_failure" | "ignore_errors" => "orca calls it `optional: true`",
        "environment" => "orca calls it `env`",
        "working_dir" | "workdir" | "dir" | "working_directory" => "orca calls it `cwd`",
        _ => return None,
    })
}

/// A hint for an unknown field: the field's right place if it has one elsewhere, another
/// tool's name for it, or the nearest field name of the place it is in.
fn field_hint(start: Place, path: &[Seg], field: &str) -> Option<String> {
    let (place, _) = walk(start, &path[..path.len().saturating_sub(1)]);
    let candidates: Vec<&str> = match place {
        Place::Workflow => [SHARED_FIELDS, WORKFLOW_ONLY_FIELDS].concat(),
        Place::Operation => [SHARED_FIELDS, OPERATION_ONLY_FIELDS].concat(),
        Place::Retry => RETRY_FIELDS.to_vec(),
        Place::Defaults => DEFAULTS_FIELDS.to_vec(),
        Place::Tasks | Place::Env | Place::Opaque => return None,
    };
    let known = |list: &[&str]| list.contains(&field);
    let misplaced = if known(RETRY_FIELDS) {
        Some(format!("`{field}` goes inside `retry: (...)`"))
    } else {
        match place {
            Place::Workflow if known(OPERATION_ONLY_FIELDS) => Some(format!(
                "the workflow itself has no siblings, so no `{field}`; set it on an operation in `tasks`"
            )),
            Place::Operation if field == "id" => {
                Some("an operation is named by its key in `tasks`".to_string())
            }
            Place::Operation if known(WORKFLOW_ONLY_FIELDS) => {
                Some(format!("`{field}` is set on the `Workflow(...)` itself"))
            }
            Place::Retry if known(SHARED_FIELDS) || known(WORKFLOW_ONLY_FIELDS) => {
                Some(format!("`retry` holds {}", RETRY_FIELDS.join(", ")))
            }
            Place::Defaults if known(SHARED_FIELDS) || known(WORKFLOW_ONLY_FIELDS) => {
                Some(format!("`defaults` holds {}", DEFAULTS_FIELDS.join(", ")))
            }
            _ => None,
        }
    };
    misplaced
        .or_else(|| other_tools_name(field).map(str::to_string))
        .or_else(|| {
            did_you_mean(field, candidates.iter().copied()).map(|m| format!("did you mean `{m}`?"))
        })
}

fn workflow_field_hint(path: &[Seg], field: &str) -> Option<String> {
    field_hint(Place::Workflow, path, field)
}

fn subtasks_field_hint(path: &[Seg], field: &str) -> Option<String> {
    field_hint(Place::Tasks, path, field)
}

fn duplicate_what(start: Place, group: &[Seg]) -> &'static str {
    match walk(start, group).0 {
        Place::Tasks => "task name",
        Place::Env => "environment variable",
        Place::Workflow | Place::Operation | Place::Retry | Place::Defaults => "field",
        Place::Opaque => "key",
    }
}

fn workflow_duplicate_what(group: &[Seg]) -> &'static str {
    duplicate_what(Place::Workflow, group)
}

fn subtasks_duplicate_what(group: &[Seg]) -> &'static str {
    duplicate_what(Place::Tasks, group)
}

/// The operation a syntax path is in; the workflow's root is called by the workflow id (its
/// `id` as written, else the file stem), as everywhere users read operation paths.
fn workflow_subject(file: &SourceFile, index: &Syntax, path: &[Seg]) -> Option<(Subject, String)> {
    let path = operation_of(path).unwrap_or_else(|| {
        index
            .get(&["id".into()])
            .and_then(|n| n.string())
            .unwrap_or_else(|| load::default_id(&file.name, "workflow"))
    });
    Some((Subject::Operation, path))
}

/// The subtask a syntax path into decompose output is in, relative to the decomposing
/// operation; nothing for the map itself.
fn subtasks_subject(_: &SourceFile, _: &Syntax, path: &[Seg]) -> Option<(Subject, String)> {
    let (_, ops) = walk(Place::Tasks, path);
    (!ops.is_empty()).then(|| (Subject::Operation, ops.join(".")))
}

const WORKFLOW_FORMAT: Format = Format {
    empty_hint: "a workflow file holds one `Workflow(...)`, see workflows.md",
    wrong_kind: Some(WrongKind {
        name: "Machine",
        code: "machine-not-workflow",
        message: "this is a machine file, but a workflow was expected",
        hint: "a workflow runs a machine as the work of a phase: `run: Machine(\"file.ron\")`",
    }),
    rewrite_calls: false,
    nesting_hint: "nesting is limited to 128 levels; move deep subtrees into `Workflow(\"file.ron\")` work",
    variant_hint: "work is `Shell(\"...\")`, `Command([...])`, `Machine(\"file.ron\")` or `Workflow(\"file.ron\")`; `on_child_failure` is `FailFast` or `Continue`",
    field_hint: workflow_field_hint,
    subject: workflow_subject,
    duplicate_what: workflow_duplicate_what,
};

const SUBTASKS_FORMAT: Format = Format {
    empty_hint: "print `{}` when there are no subtasks",
    wrong_kind: None,
    rewrite_calls: false,
    nesting_hint: "nesting is limited to 128 levels",
    variant_hint: WORKFLOW_FORMAT.variant_hint,
    field_hint: subtasks_field_hint,
    subject: subtasks_subject,
    duplicate_what: subtasks_duplicate_what,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workflow::{Defaults, RetryDef, Work};

    /// The fields `value` serializes (all set) are exactly those of `lists`.
    fn assert_fields(value: impl serde::Serialize, lists: &[&[&str]]) {
        let v = serde_json::to_value(value).unwrap();
        let mut got: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = lists.concat();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    /// The field lists used for hints are the serde types' fields, no more, no fewer.
    #[test]
    fn field_lists_match_the_types() {
        let work = Some(Work::Shell("x".into()));
        let retry = RetryDef {
            max_attempts: Some(1),
            initial: Some(crate::model::DurationText("1s".into())),
            factor: Some(2.0),
            max_delay: Some(crate::model::DurationText("1s".into())),
            jitter: Some(true),
        };
        let op = OperationDef {
            description: Some("d".into()),
            analyze: work.clone(),
            research: work.clone(),
            decompose: work.clone(),
            run: work.clone(),
            integrate: work.clone(),
            compensate: work.clone(),
            tasks: [("t".to_string(), OperationDef::default())].into(),
            after: vec!["a".into()],
            retry: Some(retry.clone()),
            timeout: Some(crate::model::DurationText("1s".into())),
            max_parallel: Some(1),
            on_child_failure: Some(Default::default()),
            optional: true,
            env: [("A".to_string(), "b".to_string())].into(),
            cwd: Some(".".into()),
            input: Some(serde_json::json!(1)),
            tags: vec!["t".into()],
        };
        assert_fields(&op, &[SHARED_FIELDS, OPERATION_ONLY_FIELDS]);

        let wf = WorkflowDef {
            id: Some("w".into()),
            defaults: Some(Defaults {
                retry: Some(retry.clone()),
                timeout: Some(crate::model::DurationText("1s".into())),
            }),
            description: op.description.clone(),
            analyze: work.clone(),
            research: work.clone(),
            decompose: work.clone(),
            run: work.clone(),
            integrate: work.clone(),
            compensate: work.clone(),
            tasks: op.tasks.clone(),
            retry: Some(retry.clone()),
            timeout: op.timeout.clone(),
            max_parallel: Some(1),
            on_child_failure: Some(Default::default()),
            env: op.env.clone(),
            cwd: Some(".".into()),
            input: Some(serde_json::json!(1)),
            tags: vec!["t".into()],
        };
        assert_fields(&wf, &[SHARED_FIELDS, WORKFLOW_ONLY_FIELDS]);

        assert_fields(&retry, &[RETRY_FIELDS]);
        assert_fields(wf.defaults.as_ref().unwrap(), &[DEFAULTS_FIELDS]);
    }

    #[test]
    fn operation_paths_come_from_syntax_paths() {
        let p: SynPath = vec![
            "tasks".into(),
            "deploy".into(),
            "tasks".into(),
            "canary".into(),
            "run".into(),
        ];
        assert_eq!(operation_of(&p).as_deref(), Some("deploy.canary"));
        assert_eq!(operation_of(&["defaults".into(), "retry".into()]), None);
        // A task may be called `tasks`: the path alternates between maps and operations.
        let p: SynPath = vec!["tasks".into(), "tasks".into(), "tasks".into(), "x".into()];
        assert_eq!(operation_of(&p).as_deref(), Some("tasks.x"));
    }

    #[test]
    fn unknown_fields_get_hints_for_where_they_are() {
        let text = r#"Workflow(
    afer: [],
    tasks: {
        "a": (rn: Shell("x"), retry: (max_atempts: 2), max_attempts: 3, needs: []),
    },
    defaults: (timeuot: "1s"),
)"#;
        let w = load_workflow_str("w.ron", text).unwrap();
        let all = w.diagnostics.to_string();
        for want in [
            "w.ron:2:5: error: unknown field `afer`\n  in operation `w`",
            "w.ron:4:15: error: unknown field `rn`\n  in operation `a`\n  hint: did you mean `run`?",
            "unknown field `max_atempts`\n  in operation `a`\n  hint: did you mean `max_attempts`?",
            "unknown field `max_attempts`\n  in operation `a`\n  hint: `max_attempts` goes inside `retry: (...)`",
            "unknown field `needs`\n  in operation `a`\n  hint: orca calls it `after`",
            "unknown field `timeuot`\n  in operation `w`\n  hint: did you mean `timeout`?",
        ] {
            assert!(all.contains(want), "{want}\n---\n{all}");
        }
        assert_eq!(w.diagnostics.len(), 6, "{all}");
    }

    #[test]
    fn machine_files_and_empty_files_are_refused() {
        let e = load_workflow_str("m.ron", "Machine(states: {})").unwrap_err();
        assert_eq!(e.0[0].code, "machine-not-workflow");
        assert!(e.to_string().contains("this is a machine file"), "{e}");
        let e = load_workflow_str("m.ron", "  // nothing\n").unwrap_err();
        assert_eq!(e.0[0].code, "empty-file");
    }

    #[test]
    fn duplicate_task_names_and_env_keys() {
        let text =
            "Workflow(tasks: {\n  \"a\": (),\n  \"a\": (env: { \"X\": \"1\", \"X\": \"2\" }),\n})";
        let w = load_workflow_str("w.ron", text).unwrap();
        let all = w.diagnostics.to_string();
        assert!(
            all.contains(
                "w.ron:3:3: error: duplicate task name `a` (first at 2:3)\n  in operation `w`"
            ),
            "{all}"
        );
        assert!(
            all.contains("duplicate environment variable `X` (first at 3:16)\n  in operation `a`"),
            "{all}"
        );
    }

    #[test]
    fn subtasks_from_json_and_ron() {
        let json = r#"{
  "eu": {"run": {"Command": ["./deploy.sh", "eu"]}, "retry": {"max_attempts": 2}},
  "us": {"after": ["eu"], "run": {"Shell": "./deploy.sh us"}, "timeout": 1000}
}"#;
        let map = parse_subtasks(json).unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["eu", "us"]);
        assert_eq!(map["us"].after, ["eu"]);
        assert_eq!(map["eu"].retry.as_ref().unwrap().max_attempts, Some(2));
        let ron = r#"{ "eu": (run: Command(["./deploy.sh", "eu"]), retry: (max_attempts: 2)),
            "us": Operation(after: ["eu"], run: Shell("./deploy.sh us"), timeout: 1000) }"#;
        assert_eq!(parse_subtasks(ron).unwrap(), map);
        assert!(parse_subtasks("{}").unwrap().is_empty());
    }

    #[test]
    fn subtasks_report_every_unknown_field() {
        let e = parse_subtasks(r#"{"eu": {"rn": {"Shell": "x"}, "retry": {"atempts": 2}}}"#)
            .unwrap_err();
        assert!(
            e.contains("1:9: unknown field `rn` in subtask `eu` (did you mean `run`?)"),
            "{e}"
        );
        assert!(e.contains("unknown field `atempts` in subtask `eu`"), "{e}");
        let e = parse_subtasks("{ \"eu\": (rn: Shell(\"x\"), tasks: { \"x\": (aftr: []) }) }")
            .unwrap_err();
        assert!(e.contains("unknown field `rn` in subtask `eu`"), "{e}");
        assert!(
            e.contains("unknown field `aftr` in subtask `eu.x` (did you mean `after`?)"),
            "{e}"
        );
    }

    #[test]
    fn subtasks_that_are_not_a_map_say_so() {
        for (text, found) in [
            ("[1, 2]", "found a list"),
            ("\"x\"", "found a string"),
            ("42", "found a number"),
            ("Workflow(tasks: {})", "found `Workflow(...)`"),
            ("[(run: Shell(\"x\"))]", "found a list"),
        ] {
            let e = parse_subtasks(text).unwrap_err();
            assert!(e.contains("expected a map of subtasks"), "{text}: {e}");
            assert!(e.contains(found), "{text}: {e}");
        }
        let e = parse_subtasks("   \n").unwrap_err();
        assert!(e.contains("decompose printed nothing"), "{e}");
        let e = parse_subtasks(r#"{"a": {"run": {"Shell": "x"}},}"#).unwrap_err();
        assert!(e.starts_with("1:"), "{e}");
        let e = parse_subtasks(r#"{"a": {"run": {"Bash": "x"}}}"#).unwrap_err();
        assert!(e.contains("Bash"), "{e}");
        let e = parse_subtasks(r#"{"a": {}, "a": {}}"#).unwrap_err();
        assert!(e.contains("duplicate task name `a`"), "{e}");
        let e = parse_subtasks("{ \"a\": (run: Shel(\"x\")) }").unwrap_err();
        assert!(e.contains("did you mean `Shell`?"), "{e}");
    }
}
