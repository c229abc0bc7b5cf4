//! Loading and validating a generated 10,000-state machine (issue #2: at most 100 ms).
//!
//! Run: `cargo bench --bench load`

use criterion::{Criterion, criterion_group, criterion_main};
use std::fmt::Write;
use std::hint::black_box;

/// 100 compound groups of 99 leaves each, plus the groups and the root: 10,001 states. Every
/// leaf has a guarded transition with an action to its next sibling and one to the next group.
pub fn generated_machine(groups: usize, leaves: usize) -> String {
    let mut s = String::from("Machine(\n  id: \"big\",\n  context: { \"n\": 0 },\n  states: {\n");
    for g in 0..groups {
        writeln!(s, "    \"g{g}\": (states: {{").unwrap();
        for l in 0..leaves {
            let next = (l + 1) % leaves;
            let next_group = (g + 1) % groups;
            writeln!(
                s,
                "      \"l{l}\": (on: {{ \"NEXT\": (target: \"l{next}\", guard: \"n < 1000\", actions: [Assign(\"n\", \"n + 1\")]), \"JUMP\": \"#g{next_group}.l{l}\" }}),"
            )
            .unwrap();
        }
        s.push_str("    }),\n");
    }
    s.push_str("  },\n)\n");
    s
}

fn bench(c: &mut Criterion) {
    let text = generated_machine(100, 99);
    let opts = orca::chart::CompileOptions::default();
    let (chart, warnings) = orca::chart::load_chart_str("big.ron", &text, &opts).expect("loads");
    assert_eq!(chart.states.len(), 10_001);
    assert!(warnings.is_empty(), "{warnings}");
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("10k_states_parse_compile_validate", |b| {
        b.iter(|| orca::chart::load_chart_str("big.ron", black_box(&text), &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
