//! Loading and validating a generated 10,000-state machine (issue #2: at most 100 ms).
//!
//! Run: `cargo bench --bench load`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

// The allocator of the `orca` binary, so that the figure is what `orca check` pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "gen_machine.rs"]
mod gen_machine;
use gen_machine::generated_machine;

fn bench(c: &mut Criterion) {
    let text = generated_machine(100, 99);
    let opts = orca::chart::CompileOptions::default();
    let (chart, warnings) = orca::chart::load_chart_str("big.ron", &text, &opts).expect("loads");
    assert_eq!(chart.states.len(), 10_001);
    assert!(warnings.is_empty(), "{warnings}");
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("10k_states_parse_compile_validate", |b| {
        // The chart is kept, as a program that loads one keeps it: freeing it is not loading.
        b.iter_with_large_drop(|| {
            orca::chart::load_chart_str("big.ron", black_box(&text), &opts).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
