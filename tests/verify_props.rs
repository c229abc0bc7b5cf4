//! Property tests of `orca verify`'s exploration (issue #17), over generated machines:
//! every state the explorer says is reachable is reached by replaying its path through the
//! interpreter (to the same key), and every state a random run of the verifier's inputs
//! reaches within the depth bound is in the explored set. With counters (unbounded context),
//! the same holds up to the bound.
//!
//! `PROPTEST_CASES` raises the case count (default 48).

use orca::interpreter::Instance;
use orca::verify::{self, Options, key};
use proptest::prelude::*;
use std::collections::HashSet;

mod common;
use common::machines::{build_with, chart_of, gen_state};

const DEPTH: usize = 5;

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(48), ..ProptestConfig::default() })]

    #[test]
    fn explored_states_are_reached_by_their_paths_and_hold_every_random_run(
        roots in prop::collection::vec(gen_state(), 1..4),
        counters in any::<bool>(),
        runs in prop::collection::vec(prop::collection::vec(0usize..64, 0..=DEPTH), 1..10),
    ) {
        let def = build_with(&roots, counters);
        let Some(chart) = chart_of(&def) else { return Ok(()) };
        let max_states = 100_000;
        let opts = Options { depth: Some(DEPTH), max_states, ..Options::default() };
        let report = verify::explore_with(chart.clone(), &opts, true, &mut |_| {});
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

        for run in &runs {
            let mut inst = start();
            let mut taken = Vec::new();
            key::write(&inst, &report.relevance, &mut buf);
            prop_assert!(known.contains(&buf), "the start is explored");
            for &n in run {
                let input = &report.inputs[n % report.inputs.len()];
                taken.push(input.to_string());
                let _ = verify::apply(&mut inst, input);
                key::write(&inst, &report.relevance, &mut buf);
                prop_assert!(known.contains(&buf), "not explored: the state after {:?}", taken);
            }
        }
    }
}
