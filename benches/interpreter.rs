//! The hier3 workload (`benches/hier3.ron`, same as ../shared/bench/hier3) through the public
//! API, interpreted from the RON file with its CEL guard and assign.
//!
//! Run: `cargo bench --bench interpreter`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orca::chart::{CompileOptions, load_chart_file};
use orca::interpreter::{Event, Instance};
use std::hint::black_box;
use std::sync::Arc;

const PATTERN: [&str; 10] = [
    "NEXT", "NEXT", "INC", "SWAP", "NEXT", "INC", "NEXT", "SWAP", "INC", "NEXT",
];

fn bench(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/hier3.ron");
    let (chart, _) = load_chart_file(&path, &CompileOptions::default()).expect("loads");
    let chart = Arc::new(chart);
    let events: Vec<Event> = PATTERN.iter().map(|e| Event::external(*e)).collect();
    let mut g = c.benchmark_group("hier3");
    g.throughput(Throughput::Elements(10));
    g.bench_function("send_10_events", |b| {
        let mut m = Instance::new(chart.clone());
        m.start().unwrap();
        b.iter(|| {
            for e in &events {
                m.send(black_box(e.clone())).unwrap();
            }
        });
        assert_eq!(
            m.configuration_paths().last().copied(),
            Some("running.a.a2")
        );
    });
    // As examples/hier3_bench.rs sends them: names shared with the chart, events kept.
    let interned: Vec<Event> = PATTERN
        .iter()
        .map(|e| Event::external(chart.intern(e)))
        .collect();
    g.bench_function("send_ref_10_interned_events", |b| {
        let mut m = Instance::new(chart.clone());
        m.start().unwrap();
        b.iter(|| {
            for e in &interned {
                m.send_ref(black_box(e)).unwrap();
            }
        });
        assert_eq!(
            m.configuration_paths().last().copied(),
            Some("running.a.a2")
        );
    });
    g.bench_function("start_instance", |b| {
        b.iter(|| {
            let mut m = Instance::new(chart.clone());
            m.start().unwrap();
            black_box(m)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
