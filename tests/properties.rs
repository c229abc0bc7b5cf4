//! Property tests over generated machines and event sequences (issue #3):
//! every configuration is legal; the transitions of every microstep are exactly the optimal
//! enabled set an independent, naive oracle computes from the configuration before it; the
//! same inputs always give the same trace; the microstep limit always holds.
//!
//! `PROPTEST_CASES` raises the case count (default 64).

use orca::chart::{Chart, CompileOptions, Kind, StateId, TransitionId};
use orca::interpreter::{Event, Instance, RunError, Trace};
use orca::model::load::to_ron;
use proptest::prelude::*;
use std::sync::Arc;

mod common;
use common::machines::{EVENTS, build, chart_of, gen_state};

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

/// Runs inputs, checking every macrostep; returns a transcript for determinism checks.
fn drive(chart: &Arc<Chart>, inputs: &[Input]) -> Result<Vec<String>, String> {
    let mut inst = Instance::new(chart.clone());
    inst.record_trace(true);
    let mut transcript = Vec::new();
    let before = active_of(&inst);
    let started = inst.start();
    let trace = inst.take_trace();
    check_trace(chart, &before, &trace)?;
    transcript.push(format!("{trace:?}"));
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
        check_trace(chart, &before, &trace)?;
        transcript.push(format!(
            "{trace:?} {:?} {:?}",
            inst.configuration_paths(),
            inst.timers()
        ));
        if let Err(e) = r {
            check_limit_error(&e)?;
            return Ok(transcript);
        }
        assert_legal(chart, &active_of(&inst))?;
    }
    transcript.push(format!("{}", inst.snapshot()));
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
            let first = drive(&chart, &inputs);
            prop_assert!(first.is_ok(), "{}\n{}", first.unwrap_err(), to_ron(&def).unwrap());
            // The same inputs always give the same trace.
            let second = drive(&chart, &inputs).unwrap();
            prop_assert_eq!(first.unwrap(), second);
        }
    }
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
