//! Generated machines for property tests: state trees of every kind with guarded, eventless,
//! internal and delayed transitions, raises and delayed sends.

use orca::chart::{Chart, CompileOptions, compile};
use orca::model::load::{load_machine_str, to_ron};
use orca::model::*;
use proptest::prelude::*;
use std::sync::Arc;

pub const EVENTS: [&str; 5] = ["A", "B", "C", "A.x", "D"];

/// A generated state tree, before names and targets are fixed.
#[derive(Debug, Clone)]
pub struct Gen {
    kind: u8, // 0 atomic, 1 compound, 2 parallel, 3 final, 4 shallow history, 5 deep history
    children: Vec<Gen>,
    transitions: Vec<GenT>,
    after: Option<(u64, usize)>,
    /// With counters: `entry: [Assign("n", "n + 1")]`.
    entry_assign: bool,
    /// With counters: a compound's `initial` names its history child, if it has one.
    initial_history: bool,
}

#[derive(Debug, Clone)]
pub struct GenT {
    event: Option<usize>,  // index into descriptors; None = eventless
    target: Option<usize>, // index into all states (mod count)
    guard: u8, // 0 none, 1 true, 2 false, 3 In(x), 4 !In(x); with counters 5 n < 2, 6 n % 2 == 0
    guard_state: usize,
    internal: bool,
    raise: Option<usize>,
    /// A delayed `Send` to self of an event, with a delay (ms) and a send id; cancelled by
    /// the transition's `Cancel` when `cancel` is set.
    send: Option<(usize, u64, bool)>,
    /// With counters: `Assign("n", "n + 1")` among the actions.
    assign: bool,
}

pub const DESCRIPTORS: [&str; 7] = ["A", "B", "C", "A.x", "*", "A B", "D"];

pub fn gen_t() -> impl Strategy<Value = GenT> {
    (
        prop::option::weighted(0.85, 0..DESCRIPTORS.len()),
        prop::option::weighted(0.85, any::<usize>()),
        0u8..7,
        any::<usize>(),
        any::<bool>(),
        prop::option::weighted(0.2, 0..EVENTS.len()),
        prop::option::weighted(0.15, (0..EVENTS.len(), 1u64..2000, any::<bool>())),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(event, target, guard, guard_state, internal, raise, send, assign)| GenT {
                event,
                target,
                guard,
                guard_state,
                internal,
                raise,
                send,
                assign,
            },
        )
}

pub fn gen_state() -> impl Strategy<Value = Gen> {
    let leaf = (
        prop_oneof![6 => Just(0u8), 2 => Just(3u8), 1 => Just(4u8), 1 => Just(5u8)],
        prop::collection::vec(gen_t(), 0..3),
        prop::option::weighted(0.15, (1u64..3000, any::<usize>())),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(kind, transitions, after, entry_assign)| Gen {
            kind,
            children: vec![],
            transitions,
            after,
            entry_assign,
            initial_history: false,
        });
    leaf.prop_recursive(3, 24, 4, |inner| {
        (
            prop_oneof![Just(1u8), Just(2u8)],
            prop::collection::vec(inner, 1..4),
            prop::collection::vec(gen_t(), 0..3),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.5),
        )
            .prop_map(
                |(kind, children, transitions, entry_assign, initial_history)| Gen {
                    kind,
                    children,
                    transitions,
                    after: None,
                    entry_assign,
                    initial_history,
                },
            )
    })
}

/// Turns a generated tree into a machine definition.
pub fn build(roots: &[Gen]) -> MachineDef {
    build_with(roots, false)
}

/// Turns a generated tree into a machine definition; with `counters`, a context counter `n`
/// that guards test and actions and `entry` content increment, and compound states whose
/// `initial` is their history child.
pub fn build_with(roots: &[Gen], counters: bool) -> MachineDef {
    let mut paths = Vec::new();
    fn collect(g: &Gen, prefix: &str, i: usize, out: &mut Vec<String>) {
        let name = format!("{prefix}s{i}");
        out.push(name.clone());
        for (j, c) in g.children.iter().enumerate() {
            collect(c, &format!("{name}."), j, out);
        }
    }
    for (i, g) in roots.iter().enumerate() {
        collect(g, "", i, &mut paths);
    }
    fn def(g: &Gen, paths: &[String], counters: bool) -> StateDef {
        let kind = match g.kind {
            1 => None,
            2 => Some(StateKind::Parallel),
            3 => Some(StateKind::Final),
            4 => Some(StateKind::History(HistoryDepth::Shallow)),
            5 => Some(StateKind::History(HistoryDepth::Deep)),
            _ => None,
        };
        let history = matches!(g.kind, 4 | 5);
        let mut s = StateDef {
            kind,
            ..StateDef::default()
        };
        if history {
            return s;
        }
        for (j, c) in g.children.iter().enumerate() {
            s.states.insert(format!("s{j}"), def(c, paths, counters));
        }
        let assign_n = || Action::Assign("n".into(), "n + 1".into());
        if counters && g.entry_assign {
            s.entry.push(assign_n());
        }
        if counters
            && g.kind == 1
            && g.initial_history
            && let Some(j) = g.children.iter().position(|c| matches!(c.kind, 4 | 5))
        {
            s.initial = Some(format!("s{j}"));
        }
        for t in &g.transitions {
            let target = t
                .target
                .map(|i| vec![format!("#{}", paths[i % paths.len()])])
                .unwrap_or_default();
            let guard = match t.guard {
                1 => Some("true".to_string()),
                2 => Some("false".to_string()),
                3 => Some(format!("In('#{}')", paths[t.guard_state % paths.len()])),
                4 => Some(format!("!In('#{}')", paths[t.guard_state % paths.len()])),
                5 if counters => Some("n < 2".to_string()),
                6 if counters => Some("n % 2 == 0".to_string()),
                _ => None,
            };
            let mut actions: Vec<Action> = t
                .raise
                .map(|e| {
                    vec![Action::Raise(RaiseArgs {
                        event: EVENTS[e].into(),
                        data: None,
                    })]
                })
                .unwrap_or_default();
            if counters && t.assign {
                actions.push(assign_n());
            }
            if let Some((e, ms, cancel)) = t.send {
                // A fixed id: a second send replaces nothing, a cancel removes all with it.
                if cancel {
                    actions.push(Action::Cancel("d".into()));
                }
                actions.push(Action::Send(SendArgs {
                    event: EVENTS[e].into(),
                    delay: Some(DurationText(format!("{ms}ms"))),
                    id: Some("d".into()),
                    ..SendArgs::default()
                }));
            }
            let td = TransitionDef {
                target,
                guard,
                actions,
                internal: t.internal,
                description: None,
            };
            match t.event {
                None => s.always.0.push(td),
                Some(d) => {
                    s.on.entry(DESCRIPTORS[d].to_string())
                        .or_default()
                        .0
                        .push(td)
                }
            }
        }
        if let Some((ms, target)) = g.after {
            s.after.insert(
                DurationText(format!("{ms}ms")),
                Transitions(vec![TransitionDef::to(format!(
                    "#{}",
                    paths[target % paths.len()]
                ))]),
            );
        }
        if g.kind == 3 {
            s.on.clear();
            s.always.0.clear();
            s.after.clear();
            s.output = Some("1".into());
        }
        s
    }
    let mut m = MachineDef::default();
    for (i, g) in roots.iter().enumerate() {
        m.states.insert(format!("s{i}"), def(g, &paths, counters));
    }
    if counters {
        m.context.insert("n".into(), 0.into());
    }
    m
}

/// Compiles a generated machine; machines the generator got wrong (e.g. a history state as the
/// only child) are skipped by returning None.
pub fn chart_of(def: &MachineDef) -> Option<Arc<Chart>> {
    let text = to_ron(def).ok()?;
    let loaded = load_machine_str("gen.ron", &text).ok()?;
    compile(&loaded, &CompileOptions::default())
        .ok()
        .map(|(c, _)| Arc::new(c))
}

/// Makes generated trees the kind the interpreter's quick path takes (and the verifier
/// previews): no parallel states (they become compound) and no eventless transitions (they
/// get an event). History, finals, timers, raises and sends stay, for the cases a preview
/// must leave to the step.
#[allow(dead_code)]
pub fn quick_kind(roots: &mut [Gen]) {
    for g in roots {
        if g.kind == 2 {
            g.kind = 1;
        }
        for t in &mut g.transitions {
            t.event.get_or_insert(0);
        }
        quick_kind(&mut g.children);
    }
}
