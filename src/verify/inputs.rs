//! What the verifier feeds a machine: every event some transition names, each with the
//! payloads that can tell its guards apart, and the passing of time.
//!
//! Payloads come from `verify: (events: { NAME: [..] })` when the file gives them. Otherwise
//! they are derived from the guards of the transitions the event can trigger: each literal a
//! guard compares `event.data` (or a field of it) against gives the literal itself and its
//! neighbours on either side (`> 0` gives -1, 0 and 1; `== "gold"` gives "gold" and ""),
//! combined field by field. An event whose guards compare nothing is sent with `null` data.

use crate::chart::fast::{BinOp, Fast};
use crate::chart::{Chart, Descriptor};
use crate::interpreter::Event;
use crate::model::Json;
use indexmap::IndexMap;
use std::fmt;

/// One thing that can happen to a machine between two stable configurations.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An external event.
    Event(Event),
    /// Time passes until the next pending timer is due.
    Tick,
    /// Context values set from outside (`verify.context`: only right after the start).
    Set(Vec<(String, Json)>),
}

impl Input {
    /// As `orca step` lines (`send NAME JSON`, `tick`, `set NAME JSON`): unlike the short
    /// form of `Display`, never mistaken for a stepper command.
    pub fn step_lines(&self) -> Vec<String> {
        match self {
            Input::Event(_) => vec![format!("send {self}")],
            Input::Tick => vec!["tick".into()],
            Input::Set(values) => values.iter().map(|(k, v)| format!("set {k} {v}")).collect(),
        }
    }
}

/// Short, as reports print a path: `NAME`, `NAME JSON`, `tick` or `set NAME JSON`.
impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Event(e) if e.data.is_null() => write!(f, "{}", e.name),
            Input::Event(e) => write!(f, "{} {}", e.name, e.data),
            Input::Tick => f.write_str("tick"),
            Input::Set(values) => {
                for (n, (name, v)) in values.iter().enumerate() {
                    let sep = if n == 0 { "" } else { "; " };
                    write!(f, "{sep}set {name} {v}")?;
                }
                Ok(())
            }
        }
    }
}

/// The name sent for "any event no descriptor names", when a `*` descriptor exists.
pub const OTHER_EVENT: &str = "orca.verify.other";

/// At most this many payloads per event name, however many literals the guards hold.
pub const MAX_PAYLOADS: usize = 16;

/// The inputs for `chart`: events, then `Tick`, then one `Set` per `verify.context` entry.
pub fn inputs(chart: &Chart) -> Vec<Input> {
    let mut names: Vec<&str> = Vec::new();
    for t in &chart.transitions {
        for d in &t.events {
            if let Descriptor::Prefix(name) = d
                && is_external(name)
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
    }
    // A `*` transition also hears events no descriptor names: one fresh name stands for
    // them all.
    let any = chart
        .transitions
        .iter()
        .any(|t| t.events.contains(&Descriptor::Any));
    if any {
        names.push(OTHER_EVENT);
    }
    let mut out = Vec::new();
    for name in names {
        let payloads = match chart.properties.events.get(name) {
            Some(given) => given.clone(),
            None => derived_payloads(chart, name),
        };
        let interned = chart.intern(name);
        for data in payloads {
            out.push(Input::Event(
                Event::external(interned.clone()).with_data(data),
            ));
        }
    }
    out.push(Input::Tick);
    for start in &chart.properties.starts {
        out.push(Input::Set(
            start.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
    }
    out
}

/// Platform events (`done.state.*`, `error.execution`) come from the interpreter, not from
/// outside; `done.invoke.*` and `error.invoke.*` come from invoked children, the environment.
fn is_external(name: &str) -> bool {
    let first = name.split('.').next().unwrap_or(name);
    match first {
        "done" => name.starts_with("done.invoke."),
        "error" => name.starts_with("error.invoke.") || name.starts_with("error.communication"),
        _ => true,
    }
}

/// The event names whose derived payloads were cut at [`MAX_PAYLOADS`]: their guards'
/// literals combine into more payloads than are tried. A report says so; `verify.events`
/// chooses them instead.
pub fn cut_events(chart: &Chart) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for t in &chart.transitions {
        for d in &t.events {
            if let Descriptor::Prefix(name) = d
                && !chart.properties.events.contains_key(name)
                && !names.contains(name)
                && fields(chart, name)
                    .values()
                    .try_fold(1usize, |n, v| n.checked_mul(v.len()))
                    .is_none_or(|n| n > MAX_PAYLOADS)
            {
                names.push(name.clone());
            }
        }
    }
    names
}

/// Field path (empty: the data itself) → the values the guards of `name`'s transitions
/// compare it against, with their neighbours.
fn fields(chart: &Chart, name: &str) -> IndexMap<Vec<String>, Vec<Json>> {
    let mut fields: IndexMap<Vec<String>, Vec<Json>> = IndexMap::new();
    for t in &chart.transitions {
        if !t.events.iter().any(|d| d.matches(name)) {
            continue;
        }
        if let Some(g) = t.guard
            && let Some(f) = &chart.expr(g).fast
        {
            comparisons(f, &mut fields);
        }
    }
    fields
}

/// Payloads for `name` from the literals its guards compare `event.data` against.
fn derived_payloads(chart: &Chart, name: &str) -> Vec<Json> {
    let fields = fields(chart, name);
    if fields.is_empty() {
        return vec![Json::Null];
    }
    let mut payloads = vec![Json::Null];
    for (path, values) in &fields {
        let mut next = Vec::new();
        for p in &payloads {
            for v in values {
                if next.len() >= MAX_PAYLOADS {
                    break;
                }
                next.push(with_field(p.clone(), path, v.clone()));
            }
        }
        payloads = next;
    }
    payloads
}

fn with_field(base: Json, path: &[String], v: Json) -> Json {
    let Some((first, rest)) = path.split_first() else {
        return v;
    };
    let mut map = match base {
        Json::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let inner = map.remove(first).unwrap_or(Json::Null);
    map.insert(first.clone(), with_field(inner, rest, v));
    Json::Object(map)
}

/// The field of `event.data` an expression reads, if it is one: `event.data` → `[]`,
/// `event.data.amount` → `["amount"]`.
fn data_path(e: &Fast) -> Option<Vec<String>> {
    match e {
        Fast::Select(inner, field) if matches!(**inner, Fast::Event) => {
            (field == "data").then(Vec::new)
        }
        Fast::Select(inner, field) => {
            let mut p = data_path(inner)?;
            p.push(field.clone());
            Some(p)
        }
        Fast::Index(inner, key) => match &**key {
            Fast::Str(k) => {
                let mut p = data_path(inner)?;
                p.push(k.clone());
                Some(p)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The literal and its neighbours, for a comparison.
fn around(lit: &Fast) -> Vec<Json> {
    match lit {
        Fast::Int(i) => [i.checked_sub(1), Some(*i), i.checked_add(1)]
            .into_iter()
            .flatten()
            .map(Json::from)
            .collect(),
        Fast::Double(d) => [d - 1.0, *d, d + 1.0]
            .into_iter()
            .filter_map(|x| serde_json::Number::from_f64(x).map(Json::Number))
            .collect(),
        Fast::Str(s) if s.is_empty() => vec![Json::from(""), Json::from("x")],
        Fast::Str(s) => vec![Json::from(s.as_str()), Json::from("")],
        Fast::Bool(_) => vec![Json::Bool(true), Json::Bool(false)],
        Fast::Null => vec![Json::Null],
        _ => Vec::new(),
    }
}

fn comparisons(e: &Fast, out: &mut IndexMap<Vec<String>, Vec<Json>>) {
    let mut note = |path: Vec<String>, values: Vec<Json>| {
        // A comparison with something other than a literal (`> limit`) suggests no value.
        if values.is_empty() {
            return;
        }
        let slot = out.entry(path).or_default();
        for v in values {
            if !slot.contains(&v) {
                slot.push(v);
            }
        }
    };
    match e {
        Fast::Bin(op, a, b) if is_comparison(*op) => {
            if let Some(p) = data_path(a) {
                note(p, around(b));
            } else if let Some(p) = data_path(b) {
                note(p, around(a));
            }
        }
        // `event.data.flag` used as a condition on its own.
        e if data_path(e).is_some() => {
            if let Some(p) = data_path(e) {
                note(p, vec![Json::Bool(true), Json::Bool(false)]);
            }
        }
        Fast::Not(x) | Fast::Neg(x) => comparisons(x, out),
        Fast::And(a, b) | Fast::Or(a, b) | Fast::Bin(_, a, b) => {
            comparisons(a, out);
            comparisons(b, out);
        }
        Fast::Cond(a, b, c) => {
            comparisons(a, out);
            comparisons(b, out);
            comparisons(c, out);
        }
        _ => {}
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{CompileOptions, load_chart_str};

    fn names(text: &str) -> Vec<String> {
        let (chart, _) = load_chart_str("i.ron", text, &CompileOptions::default()).unwrap();
        inputs(&chart).iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn guards_on_event_data_give_the_literals_and_their_neighbours() {
        let got = names(
            r#"Machine(states: { "a": (on: {
                "PAY": [(target: "b", guard: "event.data.amount > 0")],
                "GO": "b",
                "done.state.a": "b",
                "error.execution": "b",
            }), "b": () })"#,
        );
        assert_eq!(
            got,
            [
                r#"PAY {"amount":-1}"#,
                r#"PAY {"amount":0}"#,
                r#"PAY {"amount":1}"#,
                "GO",
                "tick"
            ]
        );
    }

    #[test]
    fn a_wildcard_adds_an_event_no_descriptor_names() {
        let got =
            names(r#"Machine(states: { "a": (on: { "GO": "b", "*": "c" }), "b": (), "c": () })"#);
        assert_eq!(got, ["GO", OTHER_EVENT, "tick"]);
    }

    #[test]
    fn a_comparison_with_a_variable_leaves_the_other_payloads() {
        let got = names(
            r#"Machine(context: { "limit": 3 }, states: { "a": (on: { "E": (target: "b", guard: "event.data.n > limit || event.data.k == 'x'") }), "b": () })"#,
        );
        assert_eq!(got, [r#"E {"k":"x"}"#, r#"E {"k":""}"#, "tick"]);
    }

    #[test]
    fn payloads_past_the_limit_are_cut_and_said() {
        let (chart, _) = load_chart_str(
            "i.ron",
            r#"Machine(states: { "a": (on: { "E": (target: "b", guard: "event.data.a == 1 && event.data.b == 2 && event.data.c == 3") }), "b": () })"#,
            &CompileOptions::default(),
        )
        .unwrap();
        assert_eq!(inputs(&chart).len(), MAX_PAYLOADS + 1);
        assert_eq!(cut_events(&chart), ["E"]);
    }

    #[test]
    fn payloads_given_in_the_file_win() {
        let got = names(
            r#"Machine(states: { "a": (on: { "PAY": (target: "b", guard: "event.data.amount > 0") }), "b": () },
               verify: (events: { "PAY": [{ "amount": 22 }] }))"#,
        );
        assert_eq!(got, [r#"PAY {"amount":22}"#, "tick"]);
    }

    #[test]
    fn several_fields_are_combined() {
        let got = names(
            r#"Machine(states: { "a": (on: { "E": (target: "b", guard: "event.data.k == 'x' && event.data.n >= 2") }), "b": () })"#,
        );
        assert_eq!(got.len(), 2 * 3 + 1);
        assert!(got.contains(&r#"E {"k":"x","n":2}"#.to_string()));
        assert!(got.contains(&r#"E {"k":"","n":1}"#.to_string()));
    }
}
