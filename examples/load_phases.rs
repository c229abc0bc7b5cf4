//! Where loading the generated 10,000-state machine of `benches/load.rs` spends its time:
//! the span index, the RON parse (with the index, unknown fields and duplicate keys), the
//! compile (with validation), and dropping the results. Medians of 7 rounds.
//!
//! Run: `cargo run --release --example load_phases` (or `... -- --write big.ron` to write the
//! machine instead, for timing `orca check big.ron`)

#[path = "../benches/gen_machine.rs"]
mod gen_machine;

use std::time::{Duration, Instant};

// The allocator of the `orca` binary, so that the phases cost what `orca check` pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let text = gen_machine::generated_machine(100, 99);
    // `load_phases --write FILE` writes the machine, to time `orca check FILE` as a whole.
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, file] = &args[..]
        && flag == "--write"
    {
        std::fs::write(file, &text).expect("writes the machine");
        return;
    }
    let (mut index, mut parse, mut compile, mut drop_all) = (vec![], vec![], vec![], vec![]);
    for _ in 0..7 {
        let t = Instant::now();
        let idx = orca::model::source::index(&text);
        index.push(t.elapsed());
        drop(idx);
        let t = Instant::now();
        let loaded = orca::model::load::load_machine_str("big.ron", &text).expect("parses");
        parse.push(t.elapsed());
        let t = Instant::now();
        let (chart, _) = orca::chart::compile(&loaded, &Default::default()).expect("compiles");
        compile.push(t.elapsed());
        assert_eq!(chart.states.len(), 10_001);
        let t = Instant::now();
        drop(chart);
        drop(loaded);
        drop_all.push(t.elapsed());
    }
    println!(
        "span index {:?} (part of the parse); parse {:?}; compile and validate {:?}; drop {:?}",
        median(index),
        median(parse),
        median(compile),
        median(drop_all)
    );
}
