//! The lifecycle that runs (statig, `src/lifecycle/machine.rs`) and the one users see
//! (`machines/operation.ron`, run by our SCXML interpreter) are the same machine: generated
//! policies and event sequences give the same state, phase, attempt and counters after every
//! event.
//!
//! `PROPTEST_CASES` raises the case count (default 256).

use orca::chart::{CompileOptions, load_chart_file};
use orca::interpreter::{Event as ChartEvent, Instance};
use orca::lifecycle::machine::{Event, Lifecycle, Outcome, Phase, Policy};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

fn chart() -> Arc<orca::chart::Chart> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("machines/operation.ron");
    let (chart, warnings) =
        load_chart_file(&path, &CompileOptions::default()).expect("operation.ron loads");
    assert!(warnings.is_empty(), "{warnings}");
    Arc::new(chart)
}

/// The event as the interpreter hears it: the name, and the fields as `event.data`.
fn chart_event(e: &Event) -> ChartEvent {
    let data = match e {
        Event::PhaseSucceeded {
            phase,
            output,
            subtasks,
        } => json!({"phase": phase.as_str(), "output": output, "subtasks": subtasks}),
        Event::PhaseFailed {
            phase,
            error,
            retryable,
        } => json!({"phase": phase.as_str(), "error": error, "retryable": retryable}),
        Event::ChildSettled {
            child,
            outcome,
            optional,
        } => json!({"child": child, "outcome": outcome.as_str(), "optional": optional}),
        Event::CompensationFailed { error } => json!({ "error": error }),
        _ => Value::Null,
    };
    ChartEvent::external(e.name()).with_data(data)
}

/// The leaf state of the chart's configuration, by name.
fn leaf(i: &Instance) -> String {
    let paths = i.configuration_paths();
    let last = paths.last().expect("a configuration");
    last.rsplit('.').next().unwrap().to_string()
}

fn phase_by_name(s: &str) -> Phase {
    *Phase::ALL.iter().find(|p| p.as_str() == s).unwrap()
}

fn compare(op: &Lifecycle, i: &Instance, step: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(op.state_name(), leaf(i), "state after event {}", step);
    let ctx = i.context();
    let int = |k: &str| ctx[k].as_u64().unwrap_or(u64::MAX);
    prop_assert_eq!(
        op.phase(),
        phase_by_name(ctx["phase"].as_str().unwrap()),
        "phase after event {}",
        step
    );
    prop_assert_eq!(
        op.attempt() as u64,
        int("attempt"),
        "attempt after {}",
        step
    );
    prop_assert_eq!(
        op.children_pending() as u64,
        int("children"),
        "children after {}",
        step
    );
    prop_assert_eq!(
        op.failures() as u64,
        int("failures"),
        "failures after {}",
        step
    );
    prop_assert_eq!(
        op.waiting(),
        ctx["waiting"] == json!(true),
        "waiting {}",
        step
    );
    Ok(())
}

fn phase() -> impl Strategy<Value = Phase> {
    prop::sample::select(Phase::ALL.to_vec())
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop::sample::select(vec![
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Skipped,
        Outcome::Cancelled,
    ])
}

/// Events biased towards the ones that move an operation forward, so that generated runs
/// reach Executing, retries and compensation, not only Pending.
fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => Just(Event::Start),
        12 => (phase(), 0u32..3).prop_map(|(phase, subtasks)| Event::PhaseSucceeded {
            phase,
            output: Value::Null,
            subtasks: if phase == Phase::Decompose { subtasks } else { 0 },
        }),
        4 => (phase(), any::<bool>()).prop_map(|(phase, retryable)| Event::PhaseFailed {
            phase,
            error: "generated".into(),
            retryable,
        }),
        3 => Just(Event::RetryDue),
        6 => (outcome(), any::<bool>()).prop_map(|(outcome, optional)| Event::ChildSettled {
            child: "c".into(),
            outcome,
            optional,
        }),
        1 => Just(Event::DependencyFailed),
        1 => Just(Event::Cancel),
        2 => Just(Event::TimedOut),
        2 => Just(Event::Compensate),
        1 => Just(Event::CompensationSucceeded),
        1 => Just(Event::CompensationFailed { error: "generated".into() }),
    ]
}

/// A run that walks the happy path phase by phase, with generated detours mixed in: random
/// sequences alone rarely get past the first phases.
fn guided() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((event(), any::<bool>()), 0..40).prop_map(|mixed| {
        let mut out = vec![Event::Start];
        let mut next = 0usize;
        for (e, take_detour) in mixed {
            if take_detour {
                out.push(e);
            } else {
                let phase = Phase::ALL[next % 5];
                out.push(Event::PhaseSucceeded {
                    phase,
                    output: Value::Null,
                    subtasks: u32::from(phase == Phase::Decompose),
                });
                next += 1;
            }
        }
        out
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    (1u32..4, 0u32..3, any::<bool>()).prop_map(|(max_attempts, children, fail_fast)| Policy {
        max_attempts,
        children,
        fail_fast,
    })
}

fn check(
    chart: &Arc<orca::chart::Chart>,
    policy: Policy,
    events: &[Event],
) -> Result<(), TestCaseError> {
    let mut op = Lifecycle::new(policy);
    let mut i = Instance::new(chart.clone());
    i.set_context_value("max_attempts", json!(policy.max_attempts));
    i.set_context_value("children", json!(policy.children));
    i.set_context_value("fail_fast", json!(policy.fail_fast));
    i.start().map_err(|e| TestCaseError::fail(e.to_string()))?;
    compare(&op, &i, 0)?;
    for (n, e) in events.iter().enumerate() {
        op.handle(e);
        let _ = op.take_commands();
        i.send(chart_event(e))
            .map_err(|err| TestCaseError::fail(format!("event {n} {e:?}: {err}")))?;
        compare(&op, &i, n + 1)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn statig_and_operation_ron_agree_on_random_events(
        policy in policy(),
        events in prop::collection::vec(event(), 0..40),
    ) {
        check(&chart(), policy, &events)?;
    }

    #[test]
    fn statig_and_operation_ron_agree_along_the_happy_path_with_detours(
        policy in policy(),
        events in guided(),
    ) {
        check(&chart(), policy, &events)?;
    }
}

/// The guided generator does reach every state; without this the properties above could pass
/// while exercising only the first phases.
#[test]
fn generated_runs_reach_every_state() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let policy = policy().new_tree(&mut runner).unwrap().current();
        let events = guided().new_tree(&mut runner).unwrap().current();
        let mut op = Lifecycle::new(policy);
        seen.insert(op.state_name());
        for e in &events {
            op.handle(e);
            seen.insert(op.state_name());
        }
    }
    let all = [
        "Pending",
        "Analyzing",
        "Researching",
        "Decomposing",
        "Executing",
        "Integrating",
        "Retrying",
        "Succeeded",
        "Compensating",
        "Failed",
        "Cancelled",
        "Compensated",
    ];
    for s in all {
        assert!(seen.contains(s), "no generated run reached {s}: {seen:?}");
    }
}

#[test]
fn dependency_failure_skips_in_both() {
    let chart = chart();
    check(
        &chart,
        Policy {
            max_attempts: 1,
            children: 0,
            fail_fast: true,
        },
        &[Event::DependencyFailed, Event::Start],
    )
    .unwrap();
    let mut op = Lifecycle::new(Policy {
        max_attempts: 1,
        children: 0,
        fail_fast: true,
    });
    op.handle(&Event::DependencyFailed);
    assert_eq!(op.state_name(), "Skipped");
}
