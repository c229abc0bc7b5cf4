//! Journal throughput on the hier3 workload (docs/performance.md):
//!
//! ```text
//! cargo run --release --example journal_bench -- [EVENTS] [DIR]
//! ```
//!
//! 1. records a hier3 run of EVENTS events (default 1,000,000) in memory;
//! 2. appends those records to a journal in DIR (default the system temp dir) with
//!    `--sync batch`, `never`, and `always` (the last on 2,000 records: one fsync each);
//! 3. replays the batch journal: reading and checking it, then rebuilding the state
//!    (`orca replay --to`), then verifying every step (`orca replay --verify`).
//!
//! Prints one line per figure.

use orca::chart::{CompileOptions, load_chart_file};
use orca::interpreter::{Event, Instance};
use orca::journal::replay::{rebuild, runner_for, verify};
use orca::journal::{Body, Detail, Header, Journal, JournalWriter, Records, SyncPolicy};
use orca::runtime::{Recorded, RunOptions, Runner, StepInput};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const PATTERN: [&str; 10] = [
    "NEXT", "NEXT", "INC", "SWAP", "NEXT", "INC", "NEXT", "SWAP", "INC", "NEXT",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir: PathBuf = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/hier3.ron");
    let source = std::fs::read_to_string(&file).expect("benches/hier3.ron");
    let (chart, _) = load_chart_file(&file, &CompileOptions::default()).expect("hier3 loads");

    // 1. The records of a real run.
    let items = Arc::new(Mutex::new(Vec::with_capacity(n + 1)));
    let sink = items.clone();
    let mut runner = Runner::new(
        Instance::new(Arc::new(chart)),
        Default::default(),
        RunOptions::default(),
    );
    runner.set_recorder(Box::new(move |r| {
        if let Recorded::Step(s) = r {
            sink.lock().unwrap().push(Body::Step(s.clone()));
        }
    }));
    let t = Instant::now();
    runner.apply(StepInput::Start {});
    for i in 0..n {
        runner.apply(StepInput::event(&Event::external(PATTERN[i % 10])));
    }
    let record_s = t.elapsed().as_secs_f64();
    assert_eq!(runner.root().context()["count"], 3 * n as u64 / 10);
    let bodies = std::mem::take(&mut *items.lock().unwrap());
    println!(
        "run with outcomes recorded: {:.0} events/s",
        n as f64 / record_s
    );

    // 2. Appending.
    let header = Header::for_machine(&file, &source, "virtual");
    let mut batch_path = None;
    for (policy, count) in [
        (SyncPolicy::Batch, bodies.len()),
        (SyncPolicy::Never, bodies.len()),
        (SyncPolicy::Always, 2_000.min(bodies.len())),
    ] {
        let path = dir.join(format!("hier3-{policy:?}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let t = Instant::now();
        let w = JournalWriter::create(&path, header.clone(), policy).expect("journal");
        for b in &bodies[..count] {
            w.append(b.clone()).expect("append");
        }
        w.close().expect("close");
        let s = t.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "append --sync {policy:?}: {count} records in {s:.3} s = {:.0} records/s ({:.1} MB/s)",
            count as f64 / s,
            bytes as f64 / s / 1e6
        );
        if policy == SyncPolicy::Batch {
            batch_path = Some(path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }

    drop(bodies);

    // 3. Replaying.
    let path = batch_path.expect("the batch journal");
    let t = Instant::now();
    let journal = Journal::read_file(&path).expect("reads back");
    let read_s = t.elapsed().as_secs_f64();
    assert_eq!(journal.records.len(), n + 1);
    println!(
        "read and check: {:.0} records/s",
        journal.records.len() as f64 / read_s
    );
    drop(journal);
    let t = Instant::now();
    let mut records = Records::open(&path, Detail::Inputs)
        .expect("a journal")
        .prefetch();
    let mut runner = runner_for(&records.header, None).expect("replay runner");
    runner.set_recording(false);
    rebuild(&mut records, &mut runner, None).expect("replays");
    let rebuild_s = t.elapsed().as_secs_f64();
    assert_eq!(runner.root().context()["count"], 3 * n as u64 / 10);
    println!(
        "replay (read, check, rebuild state; orca replay --to): {:.0} events/s",
        n as f64 / rebuild_s
    );
    // The reading side alone (one thread): read, check every checksum, decode the inputs.
    let t = Instant::now();
    let count = Records::open(&path, Detail::Inputs)
        .expect("a journal")
        .filter(Result::is_ok)
        .count();
    println!(
        "  reading side alone (read, check, decode inputs): {:.0} records/s",
        count as f64 / t.elapsed().as_secs_f64()
    );
    let journal = Journal::read_file(&path).expect("reads back");
    let t = Instant::now();
    let mut runner = runner_for(&journal.header, None).expect("replay runner");
    let steps = verify(&journal, &mut runner)
        .expect("replays")
        .expect("no divergence");
    let verify_s = t.elapsed().as_secs_f64();
    println!(
        "replay --verify (read + rebuild + compare): {:.0} events/s",
        steps as f64 / (read_s + verify_s)
    );
    if std::env::var("KEEP").is_err() {
        let _ = std::fs::remove_file(&path);
    }
}
