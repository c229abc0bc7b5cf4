//! Property tests of `orca verify`'s exploration (issue #17), over generated machines:
//! every state the explorer says is reachable is reached by replaying its path through the
//! interpreter (to the same key), and every state a random run of the verifier's inputs
//! reaches within the depth bound is in the explored set. With counters (unbounded context),
//! the same holds up to the bound.
//!
//! `PROPTEST_CASES` raises the case count (default 48).

use orca::chart::{CompileOptions, load_chart_str};
use orca::interpreter::{Event, Instance, Preview};
use orca::verify::key::{self, Layout};
use orca::verify::{self, Input, Options, Report};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;

mod common;
use common::machines::{build_with, chart_of, gen_state, quick_kind};

const DEPTH: usize = 5;

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(48), ..ProptestConfig::default() })]

    #[test]
    fn explored_states_are_reached_by_their_paths_and_hold_every_random_run(
        roots in prop::collection::vec(gen_state(), 1..4),
        counters in any::<bool>(),
        quick in any::<bool>(),
        runs in prop::collection::vec(prop::collection::vec(0usize..64, 0..=DEPTH), 1..10),
    ) {
        let mut roots = roots;
        if quick {
            quick_kind(&mut roots);
        }
        let def = build_with(&roots, counters);
        let Some(chart) = chart_of(&def) else { return Ok(()) };
        let max_states = 100_000;
        let opts = Options { depth: Some(DEPTH), max_states, ..Options::default() };
        let report = verify::explore_with(chart.clone(), &opts, true, &mut |_| {});
        same_without_previews(&chart, &opts, &report)?;
        prop_assert!(report.states < max_states, "the state bound must not cut the depth bound short");
        prop_assert_eq!(report.state_paths.len(), report.states);
        let known: HashSet<&Vec<u8>> = report.state_keys.iter().collect();
        prop_assert_eq!(known.len(), report.states, "keys are distinct");

        let start = || {
            let mut i = Instance::new(chart.clone());
            let _ = i.start();
            i
        };
        let mut buf = Vec::new();
        for (path, want) in report.state_paths.iter().zip(&report.state_keys) {
            let mut inst = start();
            for input in path {
                let _ = verify::apply(&mut inst, input);
            }
            key::write(&inst, &report.relevance, &mut buf);
            prop_assert_eq!(&buf, want, "path {:?}", path.iter().map(ToString::to_string).collect::<Vec<_>>());
        }

        let (mut preview, mut want, mut layout) = (Preview::default(), Vec::new(), Layout::default());
        for run in &runs {
            let mut inst = start();
            let mut taken = Vec::new();
            key::write(&inst, &report.relevance, &mut buf);
            prop_assert!(known.contains(&buf), "the start is explored");
            for &n in run {
                let input = &report.inputs[n % report.inputs.len()];
                taken.push(input.to_string());
                // Where the step can be previewed, the preview says where it leads.
                if let Input::Event(e) = input
                    && let Some(class) = chart.event_class(&e.name)
                    && inst.preview(class, &mut preview)
                {
                    layout.write(&inst, &report.relevance);
                    prop_assert_eq!(layout.key(), &buf[..]);
                    layout.previewed(&preview, &report.relevance, &mut buf);
                    let mut stepped = inst.clone();
                    stepped.observe(true);
                    let _ = verify::apply(&mut stepped, input);
                    key::write(&stepped, &report.relevance, &mut want);
                    prop_assert_eq!(&buf, &want, "previewed wrongly: the step after {:?}", taken);
                    let observed = stepped.observed().map(|o| o.taken.clone()).unwrap_or_default();
                    prop_assert_eq!(observed, preview.taken.into_iter().collect::<Vec<_>>());
                }
                let _ = verify::apply(&mut inst, input);
                key::write(&inst, &report.relevance, &mut buf);
                prop_assert!(known.contains(&buf), "not explored: the state after {:?}", taken);
            }
        }
    }
}

/// Previewing steps is only a shortcut: without it, the same exploration (states, paths,
/// steps, depth, bound and findings).
fn same_without_previews(
    chart: &Arc<orca::chart::Chart>,
    opts: &Options,
    report: &Report,
) -> Result<(), TestCaseError> {
    let stepped = verify::explore_with(
        chart.clone(),
        &Options {
            preview: false,
            ..opts.clone()
        },
        true,
        &mut |_| {},
    );
    prop_assert_eq!(&stepped.state_keys, &report.state_keys);
    prop_assert_eq!(strings(&stepped.state_paths), strings(&report.state_paths));
    prop_assert_eq!(
        (stepped.steps, stepped.depth, stepped.bounded),
        (report.steps, report.depth, report.bounded)
    );
    prop_assert_eq!(findings(&stepped), findings(report));
    Ok(())
}

fn strings(paths: &[Vec<Input>]) -> Vec<Vec<String>> {
    paths
        .iter()
        .map(|p| p.iter().map(ToString::to_string).collect())
        .collect()
}

fn findings(r: &Report) -> Vec<(String, Vec<String>)> {
    r.findings
        .iter()
        .map(|f| {
            (
                f.message.clone(),
                f.path.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

/// Guards over the counter machines' two integers: most decided by kernels; `In` and a
/// division by zero are not, and leave the step to the interpreter.
const GUARDS: [&str; 10] = [
    "",
    "x < 3",
    "y >= 1",
    "x + y <= 4",
    "x % 2 == 0",
    "!(x == y)",
    "x < 3 && y > 0",
    "x > 0 || y > 0",
    "In('#s0')",
    "x / y > 0",
];

/// Actions: integer assignments that read earlier ones, an overflow, a division by zero, a
/// string, a log and a raise.
const ACTIONS: [&str; 10] = [
    r#"Assign("x", "x + 1")"#,
    r#"Assign("x", "x - 1")"#,
    r#"Assign("y", "x * 2")"#,
    r#"Assign("y", "y + x")"#,
    r#"Assign("x", "y")"#,
    r#"Assign("x", "9223372036854775807 + x")"#,
    r#"Assign("y", "x / y")"#,
    r#"Assign("y", "'s'")"#,
    r#"Log("x")"#,
    r#"Raise("C")"#,
];

/// One transition: event, target (none, or a state by index), guard, actions (mostly
/// integer assignments).
fn gen_counter_transition() -> impl Strategy<Value = (usize, String)> {
    (
        0usize..3,
        prop::option::weighted(0.7, 0usize..8),
        prop_oneof![4 => 0usize..8, 1 => 8usize..10],
        prop::collection::vec(prop_oneof![8 => 0usize..5, 1 => 5usize..10], 0..4),
    )
        .prop_map(|(event, target, guard, actions)| {
            let target = target.map_or(String::new(), |t| format!("target: \"#{}\", ", PATHS[t]));
            let guard = match GUARDS[guard] {
                "" => String::new(),
                g => format!("guard: {g:?}, "),
            };
            let actions: Vec<&str> = actions.iter().map(|&a| ACTIONS[a]).collect();
            (
                event,
                format!("({target}{guard}actions: [{}])", actions.join(", ")),
            )
        })
}

/// The counter machines' states: `s0`..`s3` at the top, `s1` and `s2` compound.
const PATHS: [&str; 8] = ["s0", "s1", "s1.a", "s1.b", "s2", "s2.a", "s2.b", "s3"];

/// A machine of the kind the verifier previews: compound states, guarded transitions whose
/// actions assign integers, and a few things a preview must leave to the step (entry
/// content, a final state, `In`, overflow, division by zero, strings, logs, raises).
fn gen_counter_machine() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::collection::vec(gen_counter_transition(), 0..4), 8),
        prop::collection::vec(prop::bool::weighted(0.15), 8),
        any::<bool>(),
    )
        .prop_map(|(on, entry, last_final)| {
            let state = |i: usize, inner: &str| {
                let entry = if entry[i] { r#"entry: [Assign("y", "y + 1")], "# } else { "" };
                let kind = if i == 7 && last_final { "kind: Final, " } else { "" };
                // Several transitions on one event: a list, the first enabled wins.
                let on: Vec<String> = ["A", "B", "C"]
                    .iter()
                    .enumerate()
                    .filter(|(e, _)| on[i].iter().any(|t| t.0 == *e))
                    .map(|(e, name)| {
                        let all: Vec<&str> =
                            on[i].iter().filter(|t| t.0 == e).map(|t| t.1.as_str()).collect();
                        format!("\"{name}\": [{}]", all.join(", "))
                    })
                    .collect();
                format!("({kind}{entry}{inner}on: {{{}}})", on.join(", "))
            };
            let compound = |i: usize| {
                let inner = format!(
                    "states: {{\"a\": {}, \"b\": {}}}, ",
                    state(i + 1, ""),
                    state(i + 2, "")
                );
                state(i, &inner)
            };
            format!(
                "Machine(id: \"counters\", context: {{\"x\": 0, \"y\": 0}}, states: {{\"s0\": {}, \"s1\": {}, \"s2\": {}, \"s3\": {}}})",
                state(0, ""),
                compound(1),
                compound(4),
                state(7, "")
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(64), ..ProptestConfig::default() })]

    /// The verifier's previews (see `Instance::preview`) on machines built for them: every
    /// preview gives the key and the transition the step gives, and an exploration with
    /// previews finds what one that steps every input finds.
    #[test]
    fn previews_say_what_the_step_does(
        text in gen_counter_machine(),
        runs in prop::collection::vec(prop::collection::vec(0usize..3, 0..12), 1..6),
    ) {
        let loaded = load_chart_str("counters.ron", &text, &CompileOptions::default());
        let chart = Arc::new(loaded.map_err(|d| TestCaseError::fail(d.to_string()))?.0);
        let opts = Options { depth: Some(8), max_states: 20_000, exact: true, ..Options::default() };
        let report = verify::explore_with(chart.clone(), &opts, true, &mut |_| {});
        same_without_previews(&chart, &opts, &report)?;

        let (mut preview, mut key, mut want) = (Preview::default(), Vec::new(), Vec::new());
        let mut layout = Layout::default();
        for run in &runs {
            let mut inst = Instance::new(chart.clone());
            let _ = inst.start();
            for &e in run {
                let name = ["A", "B", "C"][e];
                let event = Event::external(name);
                if let Some(class) = chart.event_class(name)
                    && inst.preview(class, &mut preview)
                {
                    layout.write(&inst, &report.relevance);
                    layout.previewed(&preview, &report.relevance, &mut key);
                    let mut after = inst.clone();
                    after.observe(true);
                    let _ = after.send_ref(&event);
                    key::write(&after, &report.relevance, &mut want);
                    prop_assert_eq!(&key, &want, "{} after {:?}", name, run);
                    let taken = after.observed().map(|o| o.taken.clone()).unwrap_or_default();
                    prop_assert_eq!(taken, preview.taken.into_iter().collect::<Vec<_>>());
                }
                let _ = inst.send_ref(&event);
            }
        }
    }
}
