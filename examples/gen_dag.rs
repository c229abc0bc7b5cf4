//! Generates a DAG of N operations running `true` (mixed width and depth), as an orca
//! workflow and as the equivalent Makefile, for `benches/workflow_vs_make.sh`.
//!
//! `cargo run --release --example gen_dag -- 1000 OUT_DIR` writes `OUT_DIR/dag.ron` and
//! `OUT_DIR/Makefile`.

use std::fmt::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out).expect("output directory");
    // A fixed xorshift, so the same N always gives the same graph.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    // Layers of varying width; each task depends on 0-3 tasks of the layers before it.
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut layer_start = 0;
    while deps.len() < n {
        let width = 1 + next(40);
        let start = deps.len();
        for _ in 0..width.min(n - start) {
            let mut d: Vec<usize> = if layer_start == 0 && start == 0 {
                Vec::new()
            } else {
                (0..next(4)).map(|_| next(start.max(1))).collect()
            };
            d.sort_unstable();
            d.dedup();
            deps.push(d);
        }
        layer_start = start;
    }
    let mut ron = String::from("Workflow(id: \"dag\", tasks: {\n");
    let mut make = String::from(".PHONY: all\nall:");
    for i in 0..n {
        let _ = write!(make, " t{i}");
    }
    make.push('\n');
    for (i, d) in deps.iter().enumerate() {
        let after: Vec<String> = d.iter().map(|x| format!("\"t{x}\"")).collect();
        let _ = writeln!(
            ron,
            "  \"t{i}\": (after: [{}], run: Command([\"true\"])),",
            after.join(", ")
        );
        let pre: Vec<String> = d.iter().map(|x| format!("t{x}")).collect();
        let _ = writeln!(make, ".PHONY: t{i}\nt{i}: {}\n\t@true", pre.join(" "));
    }
    ron.push_str("})\n");
    std::fs::write(out.join("dag.ron"), ron).expect("dag.ron");
    std::fs::write(out.join("Makefile"), make).expect("Makefile");
}
