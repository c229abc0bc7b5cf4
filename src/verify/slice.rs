//! Which context values can change what a machine does, so that the rest (counters that are
//! only logged or output, say) do not multiply the states explored.
//!
//! A name is *relevant* when a guard, an `If` condition, a `Foreach` list, a computed delay or
//! an invariant reads it, or when it is assigned from an expression and the assigned name is
//! relevant (a fixpoint). When a relevant expression reads `event`, whatever becomes event
//! data (`Raise`/`Send` data, final outputs) is relevant too. A `Call` to a host action could
//! read anything, so it makes every name relevant. The others are kept in keys by their JSON
//! type only: two states that differ in them alone behave alike.

use super::key::Relevance;
use crate::chart::{Chart, ExprId, Op, for_each_op};
use std::collections::BTreeSet;

/// The relevance of every context name of `chart`.
pub fn relevance(chart: &Chart) -> Relevance {
    let mut roots: Vec<ExprId> = Vec::new();
    let mut assigns: Vec<(&str, ExprId)> = Vec::new();
    let mut foreach: Vec<(&str, Option<&str>, ExprId)> = Vec::new();
    let mut event_data: Vec<ExprId> = Vec::new();
    let mut calls = false;
    let mut blocks: Vec<&[Op]> = Vec::new();
    for s in &chart.states {
        blocks.push(&s.entry);
        blocks.push(&s.exit);
        event_data.extend(s.output);
    }
    for t in &chart.transitions {
        roots.extend(t.guard);
        blocks.push(&t.actions);
    }
    roots.extend(chart.properties.invariants.iter().map(|i| i.expr));
    for ops in blocks {
        for_each_op(ops, &mut |op| match op {
            Op::Raise { data, .. } => event_data.extend(*data),
            Op::Send {
                data, delay_expr, ..
            } => {
                event_data.extend(*data);
                roots.extend(*delay_expr);
            }
            Op::Assign {
                location, value, ..
            } => assigns.push((location[0].as_str(), *value)),
            Op::If { branches, .. } => roots.extend(branches.iter().map(|(g, _)| *g)),
            Op::Foreach {
                items, item, index, ..
            } => {
                // The list decides how often the body runs: always relevant.
                roots.push(*items);
                foreach.push((item.as_str(), index.as_deref(), *items));
            }
            Op::Call { .. } => calls = true,
            Op::Cancel(_) | Op::Log { .. } => {}
        });
    }
    if calls {
        return everything(chart);
    }
    let mut relevant: BTreeSet<&str> = BTreeSet::new();
    let mut event_read = false;
    for &e in &roots {
        add(chart, e, &mut relevant, &mut event_read);
    }
    let mut data_added = false;
    loop {
        let mut grew = false;
        for &(name, value) in &assigns {
            if relevant.contains(name) {
                grew |= add(chart, value, &mut relevant, &mut event_read);
            }
        }
        for &(item, index, items) in &foreach {
            if relevant.contains(item) || index.is_some_and(|i| relevant.contains(i)) {
                grew |= add(chart, items, &mut relevant, &mut event_read);
            }
        }
        if event_read && !data_added {
            data_added = true;
            grew = true;
            for &e in &event_data {
                add(chart, e, &mut relevant, &mut event_read);
            }
        }
        if !grew {
            break;
        }
    }
    Relevance {
        slots: chart
            .context
            .keys()
            .map(|k| relevant.contains(k.as_str()))
            .collect(),
        others: relevant
            .iter()
            .filter(|n| !chart.context.contains_key(**n))
            .map(|n| n.to_string())
            .collect(),
        all: false,
        shape: false,
    }
}

/// Adds what `e` reads to `relevant`; whether anything was new.
fn add<'c>(
    chart: &'c Chart,
    e: ExprId,
    relevant: &mut BTreeSet<&'c str>,
    event_read: &mut bool,
) -> bool {
    let mut grew = false;
    for v in &chart.expr(e).variables {
        if v == "event" {
            *event_read = true;
        } else {
            grew |= relevant.insert(v.as_str());
        }
    }
    grew
}

/// Every name relevant: exact exploration.
pub fn everything(chart: &Chart) -> Relevance {
    Relevance {
        slots: vec![true; chart.context.len()],
        others: Vec::new(),
        all: true,
        shape: false,
    }
}

/// The context names whose values do not take part in keys, for the report.
pub fn ignored(chart: &Chart, rel: &Relevance) -> Vec<String> {
    if rel.all {
        return Vec::new();
    }
    chart
        .context
        .keys()
        .zip(&rel.slots)
        .filter(|(_, r)| !**r)
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{CompileOptions, load_chart_str};

    fn rel(text: &str) -> (Chart, Relevance) {
        let (chart, _) = load_chart_str("s.ron", text, &CompileOptions::default()).unwrap();
        let r = relevance(&chart);
        (chart, r)
    }

    #[test]
    fn values_only_logged_are_not_relevant() {
        let (c, r) = rel(
            r#"Machine(context: { "n": 0, "cycles": 0, "limit": 3 }, states: {
            "a": (on: { "T": (target: "b", guard: "n < limit", actions: [Assign("n", "n + 1")]) },
                  entry: [Assign("cycles", "cycles + 1"), Log("cycles")]),
            "b": (on: { "T": "a" }),
        })"#,
        );
        assert_eq!(ignored(&c, &r), ["cycles"]);
    }

    #[test]
    fn relevance_flows_back_through_assignments() {
        let (c, r) = rel(r#"Machine(context: { "a": 0, "b": 0, "c": 0 }, states: {
            "s": (on: { "T": (guard: "a > 1", actions: [Assign("a", "b"), Assign("b", "c + 1")]) }),
        })"#);
        assert!(ignored(&c, &r).is_empty());
    }

    #[test]
    fn event_data_is_relevant_when_a_guard_reads_the_event() {
        let (c, r) = rel(r#"Machine(context: { "x": 0, "y": 0 }, states: {
            "s": (on: {
                "T": (actions: [Raise(event: "U", data: "x")]),
                "U": (guard: "event.data > 2", target: "t"),
            }, entry: [Log("y")]),
            "t": (),
        })"#);
        assert_eq!(ignored(&c, &r), ["y"]);
    }

    #[test]
    fn invariants_make_names_relevant() {
        let (c, r) = rel(r#"Machine(context: { "n": 0 }, states: {
            "s": (on: { "T": (actions: [Assign("n", "n + 1")]) }),
        }, invariants: { "small": "n < 5" })"#);
        assert!(ignored(&c, &r).is_empty());
    }
}
