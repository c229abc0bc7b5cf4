//! The hier3 benchmark (../shared/bench/hier3) on orca, following the protocol in the header
//! of `run_all.sh`: reads N from the environment, prints a RESULT line, exits non-zero when the
//! final state or count is wrong; with `mem` prints the bytes of one idle instance.
//!
//! Run: `cargo run --release --example hier3_bench [mem]`

use orca::chart::{CompileOptions, load_chart_file};
use orca::interpreter::{Event, Instance};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes, so `mem` reports what an instance really holds.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PATTERN: [&str; 10] = [
    "NEXT", "NEXT", "INC", "SWAP", "NEXT", "INC", "NEXT", "SWAP", "INC", "NEXT",
];

fn chart() -> Arc<orca::chart::Chart> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/hier3.ron");
    let (chart, _) = load_chart_file(&path, &CompileOptions::default()).unwrap_or_else(|d| {
        eprintln!("{d}");
        std::process::exit(2)
    });
    Arc::new(chart)
}

fn run(chart: &Arc<orca::chart::Chart>, n: u64) -> (f64, Instance) {
    // Names shared with the chart, so that classifying an event compares no text.
    let events: Vec<Event> = PATTERN
        .iter()
        .map(|e| Event::external(chart.intern(e)))
        .collect();
    let mut m = Instance::new(chart.clone());
    m.start().expect("starts");
    let t0 = Instant::now();
    for _ in 0..n / 10 {
        for e in &events {
            m.send_ref(e).expect("runs");
        }
    }
    (t0.elapsed().as_nanos() as f64, m)
}

fn check(n: u64, m: &Instance) -> String {
    let fin = m
        .configuration_paths()
        .last()
        .copied()
        .unwrap_or("")
        .to_string();
    let count = m.context()["count"].as_u64().unwrap_or(u64::MAX);
    if fin != "running.a.a2" || count != 3 * n / 10 {
        eprintln!(
            "VERIFY FAILED impl=orca: got {fin} count={count}, want running.a.a2 count={}",
            3 * n / 10
        );
        std::process::exit(1);
    }
    format!("final={fin} count={count}")
}

fn main() {
    let chart = chart();
    let arg = std::env::args().nth(1).unwrap_or_default();
    if arg == "mem" {
        // Idle instances after start: the struct plus everything it allocated, averaged.
        const COUNT: usize = 100_000;
        let before = LIVE.load(Ordering::Relaxed);
        let mut all = Vec::with_capacity(COUNT);
        for _ in 0..COUNT {
            let mut m = Instance::new(chart.clone());
            m.start().expect("starts");
            all.push(m);
        }
        let total = LIVE.load(Ordering::Relaxed) - before;
        // Where the heap part comes from: creating one instance, then starting it.
        let at = LIVE.load(Ordering::Relaxed);
        let mut one = Instance::new(chart.clone());
        let created = LIVE.load(Ordering::Relaxed) - at;
        one.start().expect("starts");
        let started = LIVE.load(Ordering::Relaxed) - at - created;
        // And after work: an idle instance that has processed events holds no more.
        for e in PATTERN.iter().cycle().take(1000) {
            one.send(Event::external(*e)).expect("runs");
        }
        let worked = LIVE.load(Ordering::Relaxed) - at - created - started;
        println!(
            "MEM impl=orca bytes_per_instance={} struct={} heap_new={created} heap_start={started} heap_after_1000_events={worked}",
            total / COUNT,
            std::mem::size_of::<Instance>()
        );
        return;
    }
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let warmup: u64 = std::env::var("WARMUP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(n / 10)
        / 10
        * 10;
    if warmup > 0 {
        let (_, m) = run(&chart, warmup);
        check(warmup, &m);
    }
    let (ns, m) = run(&chart, n);
    let fin = check(n, &m);
    println!(
        "RESULT impl=orca n={n} secs={:.6} eps={:.0} ns_per_event={:.3} {fin}",
        ns / 1e9,
        n as f64 / (ns / 1e9),
        ns / n as f64
    );
}
