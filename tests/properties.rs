//! Property tests over generated machines and event sequences (issue #3):
//! every configuration is legal; the transitions of every microstep are exactly the optimal
//! enabled set an independent, naive oracle computes from the configuration before it; the
//! same inputs always give the same trace, and the same states with or without a trace
//! (without one, the interpreter's fast paths run); the microstep limit always holds.
//!
//! `PROPTEST_CASES` raises the case count (default 64).

use orca::chart::{Chart, CompileOptions, Kind, StateId, TransitionId};
use orca::interpreter::{Event, Instance, RunError, Trace};
use orca::model::load::to_ron;
use proptest::prelude::*;
use std::sync::Arc;

mod common;
use common::machines::{EVENTS, build, build_with, chart_of, gen_state};

#[derive(Debug, Clone)]
enum Input {
    Send(usize),
    Advance(u64),
}

fn inputs() -> impl Strategy<Value = Vec<Input>> {
    prop::collection::vec(
        prop_oneof![4 => (0..EVENTS.len()).prop_map(Input::Send), 1 => (0u64..4000).prop_map(Input::Advance)],
        0..25,
    )
}

/// The configuration rules of SCXML 3.11 / issue #3.
fn assert_legal(chart: &Chart, active: &[bool]) -> Result<(), String> {
    if !active[0] {
        return Err("the root is not active".into());
    }
    for s in &chart.states {
        let a = active[s.id.index()];
        if !a {
            continue;
        }
        if s.is_history() {
            return Err(format!("history state {} is active", s.path));
        }
        if let Some(p) = s.parent
            && !active[p.index()]
        {
            return Err(format!("{} is active but its parent is not", s.path));
        }
        let real: Vec<StateId> = s
            .children
            .iter()
            .copied()
            .filter(|&c| !chart.state(c).is_history())
            .collect();
        let on = real.iter().filter(|&&c| active[c.index()]).count();
        match s.kind {
            Kind::Compound if on != 1 => {
                return Err(format!(
                    "compound {} has {on} active children",
                    s.display_path()
                ));
            }
            Kind::Parallel if on != real.len() => {
                return Err(format!(
                    "parallel {} has {on} of {} children active",
                    s.path,
                    real.len()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A naive, independent rendition of SCXML's optimal enabled transition set.
fn oracle(chart: &Chart, active: &[bool], event: Option<&str>) -> Vec<TransitionId> {
    let in_state = |path: &str| chart.find(path).is_some_and(|s| active[s.index()]);
    let guard_ok = |t: &orca::chart::Transition| match t.guard {
        None => true,
        Some(g) => {
            let src = &chart.expr(g).source;
            match src.as_str() {
                "true" => true,
                "false" => false,
                s if s.starts_with("!In('#") => !in_state(&s[6..s.len() - 2]),
                s if s.starts_with("In('#") => in_state(&s[5..s.len() - 2]),
                other => panic!("unexpected guard {other}"),
            }
        }
    };
    let mut enabled = Vec::new();
    for s in &chart.states {
        if !active[s.id.index()] || !s.is_atomic() {
            continue;
        }
        let mut chain = vec![s.id];
        chain.extend(chart.ancestors(s.id));
        'found: for st in chain {
            for &t in &chart.state(st).transitions {
                let tr = chart.transition(t);
                let matches = match event {
                    None => tr.is_eventless(),
                    Some(e) => tr.events.iter().any(|d| d.matches(e)),
                };
                if matches && guard_ok(tr) {
                    if !enabled.contains(&t) {
                        enabled.push(t);
                    }
                    break 'found;
                }
            }
        }
    }
    enabled
}

/// The domain of a transition, naively: history targets stand for what they restore, and
/// give the same domain (they are children of the state they restore into).
fn domain(chart: &Chart, t: TransitionId) -> Option<StateId> {
    let tr = chart.transition(t);
    if tr.targets.is_empty() {
        return None;
    }
    let all_inside = tr
        .targets
        .iter()
        .all(|&x| chart.is_descendant(x, tr.source));
    if tr.source == StateId::ROOT
        || (tr.internal && chart.state(tr.source).kind == Kind::Compound && all_inside)
    {
        return Some(tr.source);
    }
    chart
        .ancestors(tr.source)
        .filter(|&a| a == StateId::ROOT || chart.state(a).kind == Kind::Compound)
        .find(|&a| tr.targets.iter().all(|&x| chart.is_descendant(x, a)))
}

fn exit_set(chart: &Chart, active: &[bool], t: TransitionId) -> Vec<StateId> {
    match domain(chart, t) {
        None => vec![],
        Some(d) => chart
            .states
            .iter()
            .filter(|s| active[s.id.index()] && chart.is_descendant(s.id, d))
            .map(|s| s.id)
            .collect(),
    }
}

/// SCXML `removeConflictingTransitions`, written out plainly.
fn remove_conflicts(
    chart: &Chart,
    active: &[bool],
    enabled: Vec<TransitionId>,
) -> Vec<TransitionId> {
    let mut filtered: Vec<TransitionId> = Vec::new();
    for t1 in enabled {
        let e1 = exit_set(chart, active, t1);
        let mut preempted = false;
        let mut remove = Vec::new();
        for &t2 in &filtered {
            let e2 = exit_set(chart, active, t2);
            if e1.iter().any(|s| e2.contains(s)) {
                if chart.is_descendant(chart.transition(t1).source, chart.transition(t2).source) {
                    remove.push(t2);
                } else {
                    preempted = true;
                    break;
                }
            }
        }
        if !preempted {
            filtered.retain(|t| !remove.contains(t));
            filtered.push(t1);
        }
    }
    filtered
}

/// Reads the state of an instance as a bool per state.
fn active_of(inst: &Instance) -> Vec<bool> {
    (0..inst.chart().states.len())
        .map(|i| inst.is_active(StateId(i as u32)))
        .collect()
}

/// Checks each microstep against the oracle, replaying exits and entries from the trace.
fn check_trace(chart: &Chart, before: &[bool], trace: &[Trace]) -> Result<(), String> {
    let mut active = before.to_vec();
    for rec in trace {
        if let Trace::Microstep {
            event,
            transitions,
            exited,
            entered,
        } = rec
        {
            let candidates = oracle(chart, &active, event.as_deref());
            // Every taken transition was enabled and first in its state's ancestor chain.
            for t in transitions {
                if !candidates.contains(t) {
                    return Err(format!(
                        "transition {t:?} taken but not enabled (event {event:?})"
                    ));
                }
                let src = chart.transition(*t).source;
                if !active[src.index()] {
                    return Err(format!("transition {t:?} taken from inactive source"));
                }
            }
            // And they are exactly the optimal set: candidates minus conflicting ones.
            let expected = remove_conflicts(chart, &active, candidates);
            if &expected != transitions {
                return Err(format!(
                    "event {event:?}: took {transitions:?}, the optimal enabled set is {expected:?}"
                ));
            }
            for s in exited {
                active[s.index()] = false;
            }
            for s in entered {
                active[s.index()] = true;
            }
            assert_legal(chart, &active).map_err(|e| format!("after microstep: {e}"))?;
        }
    }
    Ok(())
}

/// What a run shows after each input: the trace (when recorded), then the configuration, the
/// timers and the context.
#[derive(Debug, PartialEq)]
struct Transcript {
    traces: Vec<String>,
    states: Vec<String>,
}

fn state_of(inst: &Instance) -> String {
    // Both views of the configuration: the ordered list and the per-state flags.
    let flagged: Vec<u32> = (0..inst.chart().states.len() as u32)
        .filter(|&i| i > 0 && inst.is_active(StateId(i)))
        .collect();
    let listed: Vec<u32> = inst.configuration().map(|s| s.0).collect();
    format!(
        "{:?} {} {:?} {}",
        inst.configuration_paths(),
        if flagged == listed {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        inst.timers(),
        inst.snapshot()
    )
}

/// Runs inputs, checking every macrostep; returns a transcript for determinism checks.
/// Without a trace the interpreter takes its fast paths (plain microsteps), which only the
/// states of the transcript can show.
fn drive(chart: &Arc<Chart>, inputs: &[Input], traced: bool) -> Result<Transcript, String> {
    let mut inst = Instance::new(chart.clone());
    inst.record_trace(traced);
    let mut transcript = Transcript {
        traces: Vec::new(),
        states: Vec::new(),
    };
    let before = active_of(&inst);
    let started = inst.start();
    let trace = inst.take_trace();
    if traced {
        check_trace(chart, &before, &trace)?;
    }
    transcript.traces.push(format!("{trace:?}"));
    transcript.states.push(state_of(&inst));
    if let Err(e) = started {
        check_limit_error(&e)?;
        return Ok(transcript);
    }
    assert_legal(chart, &active_of(&inst))?;
    let mut now = 0;
    for input in inputs {
        let before = active_of(&inst);
        let r = match input {
            Input::Send(e) => inst.send(Event::external(EVENTS[*e])),
            Input::Advance(ms) => {
                now += ms;
                inst.advance_to(now)
            }
        };
        let trace = inst.take_trace();
        if traced {
            check_trace(chart, &before, &trace)?;
        }
        transcript.traces.push(format!("{trace:?}"));
        transcript.states.push(state_of(&inst));
        if let Err(e) = r {
            check_limit_error(&e)?;
            return Ok(transcript);
        }
        assert_legal(chart, &active_of(&inst))?;
    }
    Ok(transcript)
}

fn check_limit_error(e: &RunError) -> Result<(), String> {
    match e {
        RunError::MicrostepLimit { looping, .. } if !looping.is_empty() => Ok(()),
        other => Err(format!("unexpected error {other}")),
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn configurations_stay_legal_and_only_enabled_transitions_are_taken(
        roots in prop::collection::vec(gen_state(), 1..4),
        inputs in inputs(),
    ) {
        let def = build(&roots);
        if let Some(chart) = chart_of(&def) {
            let first = drive(&chart, &inputs, true);
            prop_assert!(first.is_ok(), "{}\n{}", first.unwrap_err(), to_ron(&def).unwrap());
            let first = first.unwrap();
            // The same inputs always give the same trace.
            let second = drive(&chart, &inputs, true).unwrap();
            prop_assert_eq!(&first, &second);
            // And the same states without a trace, when the fast paths run.
            let fast = drive(&chart, &inputs, false).unwrap();
            prop_assert_eq!(&first.states, &fast.states, "{}", to_ron(&def).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Machines with a context counter in guards, actions and `entry` content, and `initial`
    /// naming a history state: the quick selection and plain microsteps, which a trace turns
    /// off, reach the same states as the general algorithm with a trace. (Candidate tables
    /// are held to the oracle by the other properties, kernels by `tests/expressions.rs`.)
    #[test]
    fn fast_paths_reach_the_same_states_as_the_general_algorithm(
        roots in prop::collection::vec(gen_state(), 1..4),
        inputs in inputs(),
    ) {
        let def = build_with(&roots, true);
        if let Some(chart) = chart_of(&def) {
            let traced = drive_states(&chart, &inputs, true);
            let fast = drive_states(&chart, &inputs, false);
            prop_assert_eq!(traced, fast, "{}", to_ron(&def).unwrap());
        }
    }
}

/// The states after each input, without the oracle (which knows no counters).
fn drive_states(chart: &Arc<Chart>, inputs: &[Input], traced: bool) -> Vec<String> {
    let mut inst = Instance::new(chart.clone());
    inst.record_trace(traced);
    let mut out = vec![format!("{:?}", inst.start()), state_of(&inst)];
    let mut now = 0;
    for input in inputs {
        let r = match input {
            Input::Send(e) => inst.send(Event::external(EVENTS[*e])),
            Input::Advance(ms) => {
                now += ms;
                inst.advance_to(now)
            }
        };
        out.push(format!("{r:?}"));
        out.push(state_of(&inst));
        if r.is_err() {
            break;
        }
    }
    out
}

#[test]
fn the_microstep_limit_stops_an_unguarded_loop_and_names_it() {
    let (chart, _) = orca::chart::load_chart_str(
        "loop.ron",
        r#"Machine(states: { "a": (always: ["b"]), "b": (always: ["a"]) })"#,
        &CompileOptions::default(),
    )
    .unwrap();
    let mut inst = Instance::new(Arc::new(chart));
    match inst.start() {
        Err(RunError::MicrostepLimit { limit, looping }) => {
            assert_eq!(limit, 10_000);
            assert!(looping.contains("always in `a` (line 1)"), "{looping}");
            assert!(looping.contains("always in `b` (line 1)"), "{looping}");
        }
        other => panic!("expected the microstep limit, got {other:?}"),
    }
}
