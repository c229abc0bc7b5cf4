//! Warnings: things that load and run but are almost certainly not what was meant.

use super::{Chart, Kind, Op, SendTarget, StateId, Transition};
use crate::model::load::LoadedMachine;
use crate::model::{Diagnostic, Diagnostics, Span};

pub(super) fn warnings(chart: &Chart, loaded: &LoadedMachine, diags: &mut Diagnostics) {
    let w = |code, span: Span, msg: String| Diagnostic::warning(code, &loaded.file, span, msg);
    let reachable = reachable(chart);
    for s in &chart.states[1..] {
        if !reachable[s.id.index()] {
            diags.push(
                w(
                    "unreachable",
                    s.span,
                    format!("state `{}` can never be entered", s.path),
                )
                .with_state(s.path.clone())
                .with_hint(
                    "no transition targets it or a descendant, and it is not an initial state",
                ),
            );
        }
    }
    for s in &chart.states {
        let ts: Vec<&Transition> = s.transitions.iter().map(|&t| chart.transition(t)).collect();
        for (j, later) in ts.iter().enumerate() {
            let shadow = ts[..j].iter().find(|earlier| {
                earlier.guard.is_none()
                    && if later.is_eventless() {
                        earlier.is_eventless()
                    } else {
                        !earlier.is_eventless()
                            && later
                                .events
                                .iter()
                                .all(|d| earlier.events.iter().any(|e| d.covered_by(e)))
                    }
            });
            if let Some(earlier) = shadow {
                let at = chart.source.line_col(earlier.span.start);
                diags.push(
                    w(
                        "shadowed",
                        later.span,
                        format!("this transition ({}) can never be taken", later.trigger),
                    )
                    .with_state(s.display_path().to_string())
                    .with_hint(format!(
                        "an earlier transition without a guard ({}, line {}) always wins",
                        earlier.trigger, at.line
                    )),
                );
            }
        }
    }
    for cycle in unguarded_eventless_cycles(chart) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&s| chart.state(s).display_path())
            .collect();
        let first = chart.state(cycle[0]);
        let span = first
            .transitions
            .iter()
            .map(|&t| chart.transition(t))
            .find(|t| t.is_eventless() && t.guard.is_none())
            .map_or(first.span, |t| t.span);
        diags.push(
            w(
                "eventless-cycle",
                span,
                format!(
                    "eventless transitions without guards loop forever: {}",
                    names.join(" → ")
                ),
            )
            .with_state(first.display_path().to_string())
            .with_hint("add a guard that becomes false, or trigger one of them with an event"),
        );
    }
    for s in &chart.states[1..] {
        if s.kind != Kind::Atomic || !reachable[s.id.index()] {
            continue;
        }
        let way_out = std::iter::once(s.id)
            .chain(chart.ancestors(s.id))
            .any(|a| !chart.state(a).transitions.is_empty() || !chart.state(a).invokes.is_empty());
        if !way_out {
            diags.push(
                w(
                    "dead-end",
                    s.span,
                    format!("state `{}` has no way out and is not final", s.path),
                )
                .with_state(s.path.clone())
                .with_hint("add a transition, or make it `kind: Final`"),
            );
        }
    }
    let invoke_ids: Vec<&str> = chart
        .states
        .iter()
        .flat_map(|s| s.invokes.iter().map(|i| i.id.as_str()))
        .collect();
    for s in &chart.states {
        let mut check = |ops: &[Op], span: Span| {
            for_each_op(ops, &mut |op| {
                if let Op::Send {
                    to: SendTarget::Invoke(id),
                    ..
                } = op
                    && !invoke_ids.contains(&id.as_str())
                {
                    diags.push(
                        w(
                            "unknown-invoke",
                            span,
                            format!("`Send` to `{id}`, which no state invokes"),
                        )
                        .with_state(s.display_path().to_string())
                        .with_hint("`to` is \"#self\", \"#parent\" or the id of an invoke"),
                    );
                }
            });
        };
        check(&s.entry, s.span);
        check(&s.exit, s.span);
        for &t in &s.transitions {
            let t = chart.transition(t);
            check(&t.actions, t.span);
        }
    }
    // `verify`: a name nothing uses is most likely a typo, which would leave the verifier
    // sending payloads nobody asked for, or starting from values nothing reads.
    for name in chart.properties.events.keys() {
        if !chart
            .transitions
            .iter()
            .any(|t| t.events.iter().any(|d| d.matches(name)))
        {
            let path = ["verify".into(), "events".into(), name.as_str().into()];
            diags.push(
                w(
                    "unknown-verify-event",
                    loaded.span(&path),
                    format!("`verify.events` names `{name}`, which no transition handles"),
                )
                .with_hint("the verifier sends only events that some transition names"),
            );
        }
    }
    for (i, start) in chart.properties.starts.iter().enumerate() {
        for name in start.keys() {
            if !chart.context.contains_key(name) {
                let path = [
                    "verify".into(),
                    "context".into(),
                    crate::model::source::Seg::Index(i),
                    name.as_str().into(),
                ];
                diags.push(
                    w(
                        "unknown-verify-context",
                        loaded.span(&path),
                        format!("`verify.context` sets `{name}`, which the machine's `context` does not declare"),
                    )
                    .with_hint("starting points replace declared values; declare it in `context`"),
                );
            }
        }
    }
}

/// Calls `f` on every op, including those nested in `If` and `Foreach`.
pub(crate) fn for_each_op<'a>(ops: &'a [Op], f: &mut impl FnMut(&'a Op)) {
    for op in ops {
        f(op);
        match op {
            Op::If {
                branches,
                otherwise,
            } => {
                for (_, b) in branches {
                    for_each_op(b, f);
                }
                for_each_op(otherwise, f);
            }
            Op::Foreach { body, .. } => for_each_op(body, f),
            _ => {}
        }
    }
}

/// The states entered by default when `s` is entered: `s`, and down the initial children
/// (all children of a parallel state).
fn default_entry(chart: &Chart, s: StateId, out: &mut Vec<StateId>) {
    out.push(s);
    let st = chart.state(s);
    match st.kind {
        Kind::Compound => {
            if let Some(i) = st.initial {
                default_entry(chart, i, out);
            }
        }
        Kind::Parallel => {
            for &c in &st.children {
                if !chart.state(c).is_history() {
                    default_entry(chart, c, out);
                }
            }
        }
        Kind::History(_) => {
            // Entering history may restore any descendant of its parent that was active.
            for &d in &st.history_default {
                default_entry(chart, d, out);
            }
        }
        _ => {}
    }
}

/// States that some run can enter.
fn reachable(chart: &Chart) -> Vec<bool> {
    let mut seen = vec![false; chart.states.len()];
    let mut stack = Vec::new();
    default_entry(chart, StateId::ROOT, &mut stack);
    while let Some(s) = stack.pop() {
        if std::mem::replace(&mut seen[s.index()], true) {
            continue;
        }
        let st = chart.state(s);
        // Entering a state means its ancestors are active too.
        if let Some(p) = st.parent {
            stack.push(p);
        }
        // Deep history can restore any descendant that was active, which is already counted.
        for &t in &st.transitions {
            for &target in &chart.transition(t).targets {
                let mut entered = Vec::new();
                default_entry(chart, target, &mut entered);
                stack.extend(entered);
            }
        }
    }
    seen
}

/// Cycles among states linked by eventless transitions without guards: state `a` links to
/// every state that taking such a transition from `a` makes active.
fn unguarded_eventless_cycles(chart: &Chart) -> Vec<Vec<StateId>> {
    let n = chart.states.len();
    let mut edges: Vec<Vec<StateId>> = vec![Vec::new(); n];
    for t in &chart.transitions {
        if !t.is_eventless() || t.guard.is_some() {
            continue;
        }
        if t.targets.is_empty() {
            // Enabled again right after it is taken: a one-state loop.
            edges[t.source.index()].push(t.source);
        }
        for &target in &t.targets {
            let mut entered = Vec::new();
            default_entry(chart, target, &mut entered);
            entered.extend(chart.ancestors(target));
            edges[t.source.index()].extend(entered);
        }
    }
    // Tarjan-free: report each strongly connected cycle once via DFS colouring.
    let mut cycles = Vec::new();
    let mut colour = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut stack: Vec<StateId> = Vec::new();
    fn dfs(
        s: StateId,
        edges: &[Vec<StateId>],
        colour: &mut [u8],
        stack: &mut Vec<StateId>,
        cycles: &mut Vec<Vec<StateId>>,
    ) {
        colour[s.index()] = 1;
        stack.push(s);
        for &t in &edges[s.index()] {
            match colour[t.index()] {
                0 => dfs(t, edges, colour, stack, cycles),
                1 => {
                    let from = stack.iter().position(|&x| x == t).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(t);
                    cycles.push(cycle);
                }
                _ => {}
            }
        }
        stack.pop();
        colour[s.index()] = 2;
    }
    for s in 0..n {
        if colour[s] == 0 && !edges[s].is_empty() {
            dfs(
                StateId(s as u32),
                &edges,
                &mut colour,
                &mut stack,
                &mut cycles,
            );
        }
    }
    cycles
}
