//! Lifecycle and scheduling overhead of the workflow engine, without commands
//! (docs/performance.md):
//!
//! ```text
//! cargo run --release --example workflow_bench -- [OPERATIONS] [DIR]
//! ```
//!
//! Builds a workflow of OPERATIONS (default 10,000) operations with no work, in groups of
//! 100 under parents, each depending on up to two earlier siblings, and runs it through the
//! engine: once without a journal and once journaled to DIR with `--sync never`. Every
//! operation still goes through all five phases (each a journaled transition), its parent
//! hears it settle, and its dependents are released. Prints µs per operation and the peak
//! memory of the process.

use orca::journal::workflow::WorkflowJournal;
use orca::journal::{Header, JournalWriter, SyncPolicy};
use orca::lifecycle::plan::Plan;
use orca::model::load_workflow::load_workflow_str;
use orca::runtime::workflow::{Engine, EngineOptions, RunEnding};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn workflow(n: usize) -> String {
    let mut s = String::from("Workflow(id: \"bench\", tasks: {\n");
    let groups = n.div_ceil(100);
    for g in 0..groups {
        let _ = writeln!(s, "  \"g{g}\": (tasks: {{");
        for i in 0..100.min(n - g * 100) {
            let after: Vec<String> = [i.wrapping_sub(1), i.wrapping_sub(7)]
                .into_iter()
                .filter(|&d| d < i && i % 3 != 0)
                .map(|d| format!("\"t{d}\""))
                .collect();
            let _ = writeln!(s, "    \"t{i}\": (after: [{}]),", after.join(", "));
        }
        s.push_str("  }),\n");
    }
    s.push_str("})\n");
    s
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run(plan: Plan, dir: &Path, journal: Option<&str>) -> (f64, usize) {
    let ops = plan.ops.len();
    let mut engine = Engine::new(
        plan,
        EngineOptions {
            run_id: "bench".into(),
            run_dir: dir.to_path_buf(),
            max_parallel: None,
            compensate_on_cancel: false,
        },
    );
    if let Some(source) = journal {
        let path = dir.join("journal.jsonl");
        let _ = std::fs::remove_file(&path);
        let header = Header::for_workflow(Path::new("bench.ron"), source, "bench");
        let w = JournalWriter::create(&path, header, SyncPolicy::Never).expect("journal");
        engine.set_recorder(Box::new(WorkflowJournal::new(w)));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let t0 = Instant::now();
    let ending = local.block_on(&rt, engine.run());
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(ending, RunEnding::Succeeded);
    (secs, ops)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir: PathBuf = args.next().map(PathBuf::from).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("orca-wfbench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).expect("bench directory");
    let text = workflow(n);
    let load = Instant::now();
    let loaded = load_workflow_str("bench.ron", &text).expect("loads");
    let (plan, _) = Plan::compile(&loaded, Path::new(".")).expect("compiles");
    println!(
        "compile: {} operations in {:.1} ms",
        plan.ops.len(),
        load.elapsed().as_secs_f64() * 1e3
    );
    let (secs, ops) = run(plan.clone(), &dir, None);
    println!(
        "engine, no journal: {ops} operations in {:.1} ms = {:.2} µs/operation",
        secs * 1e3,
        secs * 1e6 / ops as f64
    );
    let (secs, ops) = run(plan, &dir, Some(&text));
    println!(
        "engine, journal (--sync never): {ops} operations in {:.1} ms = {:.2} µs/operation",
        secs * 1e3,
        secs * 1e6 / ops as f64
    );
    println!("peak RSS: {:.1} MiB", peak_rss_kib() as f64 / 1024.0);
    let _ = std::fs::remove_dir_all(&dir);
}
