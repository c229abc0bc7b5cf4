//! Drawing a workflow plan as a Mermaid flowchart or Graphviz DOT: the operation tree as
//! nested subgraphs (an operation with subtasks, or a `decompose` that will add some, is a
//! subgraph holding its children) and an edge from each operation to those that are `after`
//! it. Labels show the work of every phase that has some; optional operations are dashed and
//! operations that can be compensated are drawn in orange. The output depends only on the
//! plan, in document order, so it is stable for diffs and tests.

use super::plan::{OpId, OpPlan, Plan};
use crate::chart::graph::{Format, dot_text};
use crate::model::workflow::{ChildFailure, Work};
use std::fmt::Write;

/// Longest command text shown in a label; longer ones are cut with `…`.
const MAX_WORK_CHARS: usize = 60;

/// Renders `plan` in `format`.
///
/// ```
/// use orca::chart::graph::Format;
/// use orca::lifecycle::{graph, plan::Plan};
/// let w = orca::model::load_workflow_str("w.ron", r#"Workflow(tasks: {
///     "build": (run: Shell("make")), "test": (after: ["build"], run: Shell("make test")) })"#).unwrap();
/// let (plan, _) = Plan::compile(&w, std::path::Path::new(".")).unwrap();
/// let text = graph::render(&plan, Format::Mermaid);
/// assert!(text.contains(r#"o2["test<br/>run: make test"]"#));
/// assert!(text.contains("o1 --> o2"));
/// ```
pub fn render(plan: &Plan, format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(plan),
        Format::Dot => dot(plan),
        Format::Json => format!("{:#}\n", structure(plan)),
    }
}

/// The plan as data: every operation in preorder with its `path` (`""` for the root),
/// `name`, `parent`, `depth`, `after` (paths) and the work of each phase that has some.
///
/// ```
/// use orca::lifecycle::{graph, plan::Plan};
/// let w = orca::model::load_workflow_str("w.ron", r#"Workflow(tasks: {
///     "build": (run: Shell("make")), "test": (after: ["build"], run: Shell("make test")) })"#).unwrap();
/// let (plan, _) = Plan::compile(&w, std::path::Path::new(".")).unwrap();
/// let v = graph::structure(&plan);
/// assert_eq!(v["ops"][2]["after"][0], "build");
/// assert_eq!(v["ops"][2]["work"]["run"], "make test");
/// ```
pub fn structure(plan: &Plan) -> serde_json::Value {
    let ops: Vec<serde_json::Value> = plan
        .preorder()
        .map(|(id, depth)| {
            let op = &plan.ops[id];
            let mut work = serde_json::Map::new();
            for (phase, w) in [
                ("analyze", &op.phases.analyze),
                ("research", &op.phases.research),
                ("decompose", &op.phases.decompose),
                ("run", &op.phases.run),
                ("integrate", &op.phases.integrate),
            ] {
                if let Some(w) = w {
                    work.insert(phase.into(), work_text(w).into());
                }
            }
            serde_json::json!({
                "path": op.path,
                "name": op.name,
                "parent": op.parent.map(|p| plan.ops[p].path.clone()),
                "depth": depth,
                "after": op.after.iter().map(|&a| plan.ops[a].path.clone()).collect::<Vec<_>>(),
                "work": work,
                "optional": op.optional,
                "dynamic": op.phases.decompose.is_some(),
            })
        })
        .collect();
    serde_json::json!({ "id": plan.id, "ops": ops })
}

/// How work reads in a label: the command line, or the file a machine or workflow runs.
pub fn work_text(work: &Work) -> String {
    let text = match work {
        Work::Shell(s) => s.trim().to_string(),
        Work::Command(argv) => argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.chars().any(|c| c.is_whitespace() || c == '\'') {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Work::Machine(f) => format!("machine {f}"),
        Work::Workflow(f) => format!("workflow {f}"),
    };
    // One line: a label is no place for a script's newlines.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > MAX_WORK_CHARS {
        let cut: String = text.chars().take(MAX_WORK_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The lines of an operation's label: its name (with `(optional)`), each phase's work, its
/// compensation, and the settings about its children that differ from the defaults.
fn label_lines(plan: &Plan, id: OpId) -> Vec<String> {
    let op = &plan.ops[id];
    let mut lines = vec![if op.optional {
        format!("{} (optional)", op.name)
    } else {
        op.name.clone()
    }];
    for (phase, work) in op.phases.iter() {
        lines.push(format!("{phase}: {}", work_text(work)));
    }
    if let Some(c) = &op.compensate {
        lines.push(format!("compensate: {}", work_text(c)));
    }
    let mut settings = Vec::new();
    if let Some(n) = op.max_parallel {
        settings.push(format!("max_parallel: {n}"));
    }
    if op.on_child_failure == ChildFailure::Continue {
        settings.push("on_child_failure: Continue".to_string());
    }
    if !settings.is_empty() {
        lines.push(settings.join(", "));
    }
    lines
}

/// Whether an operation is drawn as a subgraph: it has children, or may get some.
fn is_group(op: &OpPlan) -> bool {
    !op.children.is_empty() || op.phases.decompose.is_some()
}

/// The `after` edges, prerequisite first, in document order of the dependent.
fn edges(plan: &Plan) -> impl Iterator<Item = (OpId, OpId)> + '_ {
    plan.ops
        .iter()
        .enumerate()
        .flat_map(|(id, op)| op.after.iter().map(move |&dep| (dep, id)))
}

/// Text inside a quoted Mermaid label. Mermaid reads `#name;` as an entity and labels as
/// HTML, so `#` goes first (the others are written with it), then quotes and markup.
fn mermaid_text(s: &str) -> String {
    s.replace('#', "#35;")
        .replace('"', "#quot;")
        .replace('&', "#amp;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    tree(&Mermaid, plan, 0, 1, &mut out);
    for (from, to) in edges(plan) {
        writeln!(out, "    o{from} --> o{to}").ok();
    }
    let classes = [
        (
            "optional",
            "stroke-dasharray:5 5",
            plan.ops.iter().map(|o| o.optional).collect::<Vec<_>>(),
        ),
        (
            "compensable",
            "stroke:#c60,stroke-width:2px",
            plan.ops.iter().map(|o| o.compensate.is_some()).collect(),
        ),
    ];
    for (class, style, marked) in classes {
        let ids: Vec<String> = marked
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(i, _)| format!("o{i}"))
            .collect();
        if !ids.is_empty() {
            writeln!(out, "    classDef {class} {style}").ok();
            writeln!(out, "    class {} {class}", ids.join(",")).ok();
        }
    }
    if plan.ops.iter().any(|o| o.phases.decompose.is_some()) {
        out.push_str("    classDef dynamic stroke-dasharray:2 4,color:#666\n");
    }
    out
}

/// What differs between the formats in drawing the operation tree; [`tree`] walks it.
trait TreeSyntax {
    /// The label of an operation from its lines, escaped.
    fn label(&self, lines: &[String]) -> String;
    /// An operation without children.
    fn leaf(&self, pad: &str, id: OpId, op: &OpPlan, label: &str, out: &mut String);
    /// The start of a subgraph for an operation with children.
    fn open(&self, pad: &str, id: OpId, op: &OpPlan, label: &str, out: &mut String);
    /// The placeholder for the subtasks a `decompose` adds at run time.
    fn decomposed(&self, pad: &str, id: OpId, out: &mut String);
    fn close(&self, pad: &str, out: &mut String);
}

/// Draws `id` and its descendants, depth-first in document order.
fn tree(syntax: &dyn TreeSyntax, plan: &Plan, id: OpId, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    let op = &plan.ops[id];
    let label = syntax.label(&label_lines(plan, id));
    if !is_group(op) {
        syntax.leaf(&pad, id, op, &label, out);
        return;
    }
    syntax.open(&pad, id, op, &label, out);
    for &c in &op.children {
        tree(syntax, plan, c, depth + 1, out);
    }
    if op.phases.decompose.is_some() {
        syntax.decomposed(&pad, id, out);
    }
    syntax.close(&pad, out);
}

struct Mermaid;

impl TreeSyntax for Mermaid {
    fn label(&self, lines: &[String]) -> String {
        let lines: Vec<String> = lines.iter().map(|l| mermaid_text(l)).collect();
        lines.join("<br/>")
    }
    fn leaf(&self, pad: &str, id: OpId, _: &OpPlan, label: &str, out: &mut String) {
        writeln!(out, "{pad}o{id}[\"{label}\"]").ok();
    }
    fn open(&self, pad: &str, id: OpId, _: &OpPlan, label: &str, out: &mut String) {
        writeln!(out, "{pad}subgraph o{id} [\"{label}\"]").ok();
    }
    fn decomposed(&self, pad: &str, id: OpId, out: &mut String) {
        writeln!(
            out,
            "{pad}    o{id}_decomposed([\"subtasks from decompose\"]):::dynamic"
        )
        .ok();
    }
    fn close(&self, pad: &str, out: &mut String) {
        writeln!(out, "{pad}end").ok();
    }
}

fn dot(plan: &Plan) -> String {
    let mut out = String::new();
    writeln!(out, "digraph \"{}\" {{", dot_text(&plan.id)).ok();
    out.push_str(
        "    compound=true;\n    rankdir=LR;\n    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    tree(&Dot, plan, 0, 1, &mut out);
    for (from, to) in edges(plan) {
        // A subgraph is reached through its anchor node, the edge clipped at its border.
        let mut attrs = Vec::new();
        if is_group(&plan.ops[from]) {
            attrs.push(format!("ltail=cluster_o{from}"));
        }
        if is_group(&plan.ops[to]) {
            attrs.push(format!("lhead=cluster_o{to}"));
        }
        if attrs.is_empty() {
            writeln!(out, "    o{from} -> o{to};").ok();
        } else {
            writeln!(out, "    o{from} -> o{to} [{}];", attrs.join(", ")).ok();
        }
    }
    out.push_str("}\n");
    out
}

struct Dot;

impl Dot {
    /// The style and colour attributes that mark optional and compensable operations.
    fn marks(op: &OpPlan) -> (String, &'static str) {
        let style = if op.optional {
            "rounded,dashed"
        } else {
            "rounded"
        };
        let color = if op.compensate.is_some() {
            "darkorange"
        } else {
            ""
        };
        (format!("style=\"{style}\""), color)
    }
}

impl TreeSyntax for Dot {
    fn label(&self, lines: &[String]) -> String {
        let lines: Vec<String> = lines.iter().map(|l| dot_text(l)).collect();
        lines.join("\\n")
    }
    fn leaf(&self, pad: &str, id: OpId, op: &OpPlan, label: &str, out: &mut String) {
        let (style, color) = Dot::marks(op);
        let color = if color.is_empty() {
            String::new()
        } else {
            format!(", color={color}")
        };
        writeln!(out, "{pad}o{id} [label=\"{label}\", {style}{color}];").ok();
    }
    fn open(&self, pad: &str, id: OpId, op: &OpPlan, label: &str, out: &mut String) {
        let (style, color) = Dot::marks(op);
        let color = if color.is_empty() {
            String::new()
        } else {
            format!(" color={color};")
        };
        writeln!(out, "{pad}subgraph cluster_o{id} {{").ok();
        writeln!(out, "{pad}    label=\"{label}\"; {style};{color}").ok();
        // The anchor edges to and from the cluster attach to.
        writeln!(out, "{pad}    o{id} [shape=point, style=invis];").ok();
    }
    fn decomposed(&self, pad: &str, id: OpId, out: &mut String) {
        writeln!(
            out,
            "{pad}    o{id}_decomposed [label=\"subtasks from decompose\", style=\"rounded,dashed\", fontcolor=gray40];"
        )
        .ok();
    }
    fn close(&self, pad: &str, out: &mut String) {
        writeln!(out, "{pad}}}").ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_reads_as_a_command_line() {
        assert_eq!(
            work_text(&Work::Shell("  cargo\n test ".into())),
            "cargo test"
        );
        assert_eq!(
            work_text(&Work::Command(vec!["echo".into(), "a b".into(), "".into()])),
            "echo 'a b' ''"
        );
        assert_eq!(work_text(&Work::Machine("m.ron".into())), "machine m.ron");
        let long = work_text(&Work::Shell("x".repeat(100)));
        assert_eq!(long.chars().count(), MAX_WORK_CHARS);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn mermaid_labels_cannot_break_out() {
        assert_eq!(
            mermaid_text(r#"a "b" <c> #d;"#),
            "a #quot;b#quot; #lt;c#gt; #35;d;"
        );
    }
}
