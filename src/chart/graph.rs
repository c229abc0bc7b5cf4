//! Drawing a chart as Mermaid (`stateDiagram-v2`) or Graphviz DOT.

use super::{Chart, Kind, StateId, Transition};
use crate::model::HistoryDepth;
use std::fmt::Write;

/// An output format for [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
    /// The structure itself as JSON ([`structure`]): what `orca inspect` lays out.
    Json,
}

/// Renders `chart` in `format`.
///
/// ```
/// use orca::chart::{CompileOptions, graph, load_chart_str};
/// let (chart, _) = load_chart_str("m.ron",
///     r#"Machine(states: { "a": (on: { "GO": "b" }), "b": (kind: Final) })"#,
///     &CompileOptions::default()).unwrap();
/// let text = graph::render(&chart, graph::Format::Mermaid);
/// assert!(text.contains("s1 --> s2 : GO"));
/// ```
pub fn render(chart: &Chart, format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(chart),
        Format::Dot => dot(chart),
        Format::Json => format!("{:#}\n", structure(chart)),
    }
}

/// The chart as data: the state tree (`path`, `name`, `kind`, `initial`, `children`) and
/// every transition (`source`, `targets`, `label`), with `""` for the root's path.
///
/// ```
/// use orca::chart::{CompileOptions, graph, load_chart_str};
/// let (chart, _) = load_chart_str("m.ron",
///     r#"Machine(states: { "a": (on: { "GO": "b" }), "b": (kind: Final) })"#,
///     &CompileOptions::default()).unwrap();
/// let v = graph::structure(&chart);
/// assert_eq!(v["states"]["children"][1]["kind"], "final");
/// assert_eq!(v["transitions"][0]["label"], "GO");
/// ```
pub fn structure(chart: &Chart) -> serde_json::Value {
    fn state(chart: &Chart, id: StateId) -> serde_json::Value {
        let s = chart.state(id);
        let kind = match s.kind {
            Kind::Atomic => "atomic",
            Kind::Compound => "compound",
            Kind::Parallel => "parallel",
            Kind::Final => "final",
            Kind::History(HistoryDepth::Shallow) => "history",
            Kind::History(HistoryDepth::Deep) => "deep-history",
        };
        serde_json::json!({
            "path": s.path,
            "name": s.name,
            "kind": kind,
            "initial": s.initial.map(|i| chart.state(i).path.clone()),
            "children": s.children.iter().map(|&c| state(chart, c)).collect::<Vec<_>>(),
        })
    }
    let transitions: Vec<serde_json::Value> = chart
        .transitions
        .iter()
        .map(|t| {
            serde_json::json!({
                "source": chart.state(t.source).path,
                "targets": t.targets.iter().map(|&s| chart.state(s).path.clone()).collect::<Vec<_>>(),
                "label": edge_label(chart, t),
                "described": chart.describe_transition(t.id),
            })
        })
        .collect();
    serde_json::json!({
        "id": chart.id,
        "states": state(chart, StateId::ROOT),
        "transitions": transitions,
    })
}

/// The label of a transition's edge: `EVENT [guard]`, `always [guard]`, `after 30s`.
pub fn edge_label(chart: &Chart, t: &Transition) -> String {
    let mut label = if t.is_eventless() {
        "always".to_string()
    } else if let Some(rest) = t.trigger.strip_prefix("after ") {
        format!("after {rest}")
    } else {
        t.events
            .iter()
            .map(|d| d.text())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(g) = t.guard {
        write!(label, " [{}]", chart.expr(g).source).ok();
    }
    if t.is_targetless() {
        label.push_str(" (targetless)");
    } else if t.internal && t.source != StateId::ROOT {
        label.push_str(" (internal)");
    }
    label
}

fn mermaid_text(s: &str) -> String {
    // Mermaid labels cannot hold `:` after the first or raw quotes; `#` starts entities.
    s.replace('"', "'")
        .replace(':', "∶")
        .replace(';', ",")
        .replace('#', "♯")
}

fn mermaid(chart: &Chart) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    if let Some(d) = &chart.description {
        writeln!(out, "    %% {}", d.replace('\n', " ")).ok();
    }
    let root = chart.root();
    if !root.transitions.is_empty() {
        writeln!(out, "    state \"(any state)\" as s0").ok();
    }
    mermaid_children(chart, StateId::ROOT, 1, &mut out);
    for t in &chart.transitions {
        let label = mermaid_text(&edge_label(chart, t));
        let targets = if t.targets.is_empty() {
            vec![t.source]
        } else {
            t.targets.clone()
        };
        for target in targets {
            writeln!(out, "    s{} --> s{} : {label}", t.source.0, target.0).ok();
        }
    }
    let finals: Vec<String> = chart
        .states
        .iter()
        .filter(|s| s.kind == Kind::Final)
        .map(|s| format!("s{}", s.id.0))
        .collect();
    let history: Vec<String> = chart
        .states
        .iter()
        .filter(|s| s.is_history())
        .map(|s| format!("s{}", s.id.0))
        .collect();
    let parallel: Vec<String> = chart
        .states
        .iter()
        .filter(|s| s.kind == Kind::Parallel)
        .map(|s| format!("s{}", s.id.0))
        .collect();
    for (class, style, ids) in [
        ("final", "fill:#ddd,stroke:#000,stroke-width:3px", finals),
        ("history", "fill:#ffe,stroke-dasharray:3 3", history),
        ("parallel", "stroke-dasharray:6 3", parallel),
    ] {
        if !ids.is_empty() {
            writeln!(out, "    classDef {class} {style}").ok();
            writeln!(out, "    class {} {class}", ids.join(",")).ok();
        }
    }
    out
}

fn mermaid_children(chart: &Chart, parent: StateId, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    let p = chart.state(parent);
    if let Some(init) = p.initial {
        writeln!(out, "{pad}[*] --> s{}", init.0).ok();
    }
    for (i, &c) in p.children.iter().enumerate() {
        if p.kind == Kind::Parallel && i > 0 {
            writeln!(out, "{pad}--").ok();
        }
        let s = chart.state(c);
        let label = match s.kind {
            Kind::History(HistoryDepth::Shallow) => format!("H ({})", s.name),
            Kind::History(HistoryDepth::Deep) => format!("H* ({})", s.name),
            Kind::Parallel => format!("{} ‖", s.name),
            _ => s.name.clone(),
        };
        writeln!(out, "{pad}state \"{}\" as s{}", mermaid_text(&label), c.0).ok();
        if !s.children.is_empty() {
            writeln!(out, "{pad}state s{} {{", c.0).ok();
            mermaid_children(chart, c, depth + 1, out);
            writeln!(out, "{pad}}}").ok();
        }
        if let Some(d) = &s.description {
            writeln!(
                out,
                "{pad}note right of s{}: {}",
                c.0,
                mermaid_text(&d.replace('\n', " "))
            )
            .ok();
        }
    }
}

/// Escapes text for a double-quoted DOT string.
pub(crate) fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot(chart: &Chart) -> String {
    let mut out = String::new();
    writeln!(out, "digraph \"{}\" {{", dot_text(&chart.id)).ok();
    out.push_str("    compound=true;\n    rankdir=LR;\n    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n");
    if !chart.root().transitions.is_empty() {
        out.push_str("    s0 [label=\"(any state)\", shape=plaintext];\n");
    }
    dot_children(chart, StateId::ROOT, 1, &mut out);
    for t in &chart.transitions {
        let label = dot_text(&edge_label(chart, t));
        let style = if t.is_eventless() {
            ", style=dashed"
        } else {
            ""
        };
        let targets = if t.targets.is_empty() {
            vec![t.source]
        } else {
            t.targets.clone()
        };
        for target in targets {
            let (from, ltail) = dot_anchor(chart, t.source);
            let (to, lhead) = dot_anchor(chart, target);
            let mut attrs = format!("label=\"{label}\"{style}");
            if let Some(c) = ltail {
                write!(attrs, ", ltail={c}").ok();
            }
            if let Some(c) = lhead {
                write!(attrs, ", lhead={c}").ok();
            }
            writeln!(out, "    {from} -> {to} [{attrs}];").ok();
        }
    }
    out.push_str("}\n");
    out
}

/// A node to attach edges to: the state's node, or for a cluster its initial point.
fn dot_anchor(chart: &Chart, s: StateId) -> (String, Option<String>) {
    if s == StateId::ROOT {
        return ("s0".into(), None);
    }
    if chart.state(s).children.is_empty() {
        (format!("s{}", s.0), None)
    } else {
        (format!("i{}", s.0), Some(format!("cluster_s{}", s.0)))
    }
}

fn dot_children(chart: &Chart, parent: StateId, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    let p = chart.state(parent);
    if parent != StateId::ROOT || p.initial.is_some() {
        // The initial marker doubles as the cluster's anchor for edges.
        let shape = if p.kind == Kind::Parallel {
            "point, style=invis"
        } else {
            "point"
        };
        writeln!(out, "{pad}i{} [shape={shape}];", parent.0).ok();
        if let Some(init) = p.initial {
            let (to, lhead) = dot_anchor(chart, init);
            let lhead = lhead.map(|c| format!(" [lhead={c}]")).unwrap_or_default();
            writeln!(out, "{pad}i{} -> {to}{lhead};", parent.0).ok();
        }
    }
    for &c in &p.children {
        let s = chart.state(c);
        if s.children.is_empty() {
            let attrs = match s.kind {
                Kind::Final => format!("label=\"{}\", peripheries=2", dot_text(&s.name)),
                Kind::History(HistoryDepth::Shallow) => "label=\"H\", shape=circle".to_string(),
                Kind::History(HistoryDepth::Deep) => "label=\"H*\", shape=circle".to_string(),
                _ => format!("label=\"{}\"", dot_text(&s.name)),
            };
            writeln!(out, "{pad}s{} [{attrs}];", c.0).ok();
        } else {
            writeln!(out, "{pad}subgraph cluster_s{} {{", c.0).ok();
            let (label, style) = if s.kind == Kind::Parallel {
                (format!("{} ‖ (parallel)", s.name), "dashed")
            } else {
                (s.name.clone(), "rounded")
            };
            writeln!(
                out,
                "{pad}    label=\"{}\"; style={style};",
                dot_text(&label)
            )
            .ok();
            dot_children(chart, c, depth + 1, out);
            writeln!(out, "{pad}}}").ok();
        }
    }
}
