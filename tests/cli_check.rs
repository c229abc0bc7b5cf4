//! `orca check` and `orca graph` as users call them (cli.md): output forms and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn orca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .output()
        .expect("orca runs")
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orca-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"Machine(states: { "a": (on: { "GO": "b" }), "b": (kind: Final) })"#;
const WARN: &str = r#"Machine(states: { "a": (on: { "GO": "b" }), "b": (kind: Final), "lost": (on: { "X": "a" }) })"#;
const BAD: &str = "Machine(states: {\n  \"a\": (on: { \"GO\": \"nowhere\" }),\n})";

#[test]
fn check_exit_codes() {
    let good = write("good.ron", GOOD);
    let warn = write("warn.ron", WARN);
    let bad = write("bad.ron", BAD);
    assert_eq!(
        orca(&["check", good.to_str().unwrap()]).status.code(),
        Some(0)
    );
    assert_eq!(
        orca(&["check", warn.to_str().unwrap()]).status.code(),
        Some(0)
    );
    assert_eq!(
        orca(&["check", "--deny-warnings", warn.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        orca(&["check", bad.to_str().unwrap()]).status.code(),
        Some(1)
    );
    assert_eq!(
        orca(&["check", "/nonexistent/x.ron"]).status.code(),
        Some(2)
    );
    assert_eq!(orca(&["check"]).status.code(), Some(2));
    assert_eq!(orca(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn check_prints_file_line_col_with_state_and_hint() {
    let bad = write("bad2.ron", BAD);
    let out = orca(&["check", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:2:21: error: unknown target `nowhere`\n  in state `a`\n  hint:",
        bad.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn check_reports_all_files_and_json_is_a_list() {
    let bad = write("bad3.ron", BAD);
    let warn = write("warn3.ron", WARN);
    let out = orca(&[
        "check",
        "--json",
        bad.to_str().unwrap(),
        warn.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let list = v.as_array().expect("a list");
    assert_eq!(list.len(), 2, "{v}");
    assert_eq!(list[0]["severity"], "error");
    assert_eq!(list[0]["code"], "unknown-target");
    assert_eq!(list[0]["line"], 2);
    assert_eq!(list[0]["col"], 21);
    assert_eq!(list[0]["state"], "a");
    assert_eq!(list[1]["severity"], "warning");
    assert_eq!(list[1]["code"], "unreachable");
}

#[test]
fn graph_formats() {
    let good = write(
        "g.ron",
        r##"Machine(states: {
        "p": (kind: Parallel, states: {
            "r1": (states: { "x": (on: { "GO": (target: "y", guard: "true") }), "y": (always: ["#done"]) }),
            "r2": (states: { "h": (kind: History(Deep)), "z": (after: { "1s": "z" }) }),
        }),
        "done": (kind: Final),
    })"##,
    );
    let out = orca(&["graph", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(m.starts_with("stateDiagram-v2\n"), "{m}");
    assert!(m.contains("state \"p ‖\" as s1"), "{m}");
    assert!(
        m.contains("    --\n"),
        "parallel regions are separated: {m}"
    );
    assert!(m.contains("[*] --> s3"), "initial markers: {m}");
    assert!(m.contains("s3 --> s4 : GO [true]"), "{m}");
    assert!(m.contains("s4 --> s8 : always"), "{m}");
    assert!(m.contains("s7 --> s7 : after 1s"), "{m}");
    assert!(m.contains("H* (h)"), "{m}");
    assert!(m.contains("class s8 final"), "{m}");

    let out_path = good.with_extension("dot");
    let out = orca(&[
        "graph",
        good.to_str().unwrap(),
        "--format",
        "dot",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let d = std::fs::read_to_string(&out_path).unwrap();
    assert!(d.starts_with("digraph"), "{d}");
    assert!(d.contains("subgraph cluster_s1"), "{d}");
    assert!(d.contains("(parallel)"), "{d}");
    assert!(d.contains("peripheries=2"), "{d}");
    assert!(d.contains("label=\"always\", style=dashed"), "{d}");

    let bad = write("gbad.ron", BAD);
    assert_eq!(
        orca(&["graph", bad.to_str().unwrap()]).status.code(),
        Some(2)
    );
}

#[test]
fn workflow_files_are_told_from_machines() {
    // `check` and `graph` take both kinds, by the file's outermost name (tests/workflow_check.rs
    // has the details); a machine loader given a workflow says what it got.
    let wf = write("wf.ron", r#"Workflow(id: "w", tasks: { "a": () })"#);
    let out = orca(&["graph", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("flowchart LR\n"));
    assert_eq!(
        orca(&["check", wf.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let e = orca::model::load_machine_str("wf.ron", r#"Workflow(id: "w", tasks: {})"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("this is a workflow file"), "{e}");
}
