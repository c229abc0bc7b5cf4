//! Any text through the workflow loader and compiler, and as a decompose's output (parsed and
//! added to a small plan): a plan or diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orca::lifecycle::plan::Plan;
use orca::model::load_workflow::{load_workflow_str, parse_subtasks};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(w) = load_workflow_str("fuzz.ron", text) {
        let _ = Plan::compile(&w, Path::new("."));
    }
    if let Ok(defs) = parse_subtasks(text) {
        let base = r#"Workflow(id: "f", tasks: { "p": (tasks: { "s": () }) })"#;
        let w = load_workflow_str("base.ron", base).expect("the base workflow loads");
        let (mut plan, _) = Plan::compile(&w, Path::new(".")).expect("the base compiles");
        let _ = plan.add_subtasks(1, defs);
    }
});
