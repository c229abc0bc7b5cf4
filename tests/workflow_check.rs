//! `orca check` and `orca graph` on workflow files (workflows.md, cli.md): the spec's example,
//! every load error with its position, message, operation and hint, and the drawings.

#[path = "common/scratch.rs"]
mod scratch;

use scratch::ScratchDir;
use std::path::Path;
use std::process::{Command, Output};

fn orca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .output()
        .expect("orca runs")
}

/// A directory of its own for each test, so that files named alike do not collide.
fn dir(name: &str) -> ScratchDir {
    ScratchDir::new("orca-wf", name)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Runs `orca check` on one file: exit code and stderr.
fn check(path: &str) -> (Option<i32>, String) {
    let out = orca(&["check", path]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_spec_example_checks_clean() {
    let out = orca(&["check", &fixture("release.ron")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = orca(&["check", "--json", &fixture("release.ron")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[test]
fn machine_files_still_check() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = orca(&[
        "check",
        &format!("{root}/machines/operation.ron"),
        &fixture("machines/notify.ron"),
        &fixture("release.ron"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const MANY: &str = r#"Workflow(
    max_parallel: 0,
    defaults: (retry: (initial: "fast"), timeout: "-5s"),
    tasks: {
        "build": (run: Shell(""), retry: (max_attempts: 0, factor: 0.5, max_delay: "1x")),
        "test": (after: ["biuld", "test"], run: Command([]), timeout: "0s"),
        "bad name": (run: Machine("missing.ron")),
        "a.b": (run: Workflow("many.ron"), retry: (factor: NaN)),
        "x": (after: ["y"]),
        "y": (after: ["z"]),
        "z": (after: ["x"], max_parallel: 0),
        "": (),
    },
)"#;

#[test]
fn every_error_is_reported_at_once_with_its_place() {
    let d = dir("many");
    let path = write(&d, "many.ron", MANY);
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    let expected = [
        (
            "2:5",
            "`max_parallel` must be at least 1",
            "many",
            Some("leave it out for no bound"),
        ),
        (
            "3:33",
            "invalid `defaults.retry.initial`: unknown unit `fast` in duration `fast` (use ms, s, m, h or d)",
            "many",
            Some("write e.g. \"250ms\""),
        ),
        (
            "3:51",
            "`defaults.timeout` is negative (`-5s`)",
            "many",
            None,
        ),
        ("5:30", "`run` has an empty shell command", "build", None),
        (
            "5:43",
            "`max_attempts` must be at least 1",
            "build",
            Some("1 means a single attempt, no retry"),
        ),
        (
            "5:60",
            "`factor` must be at least 1.0, not 0.5",
            "build",
            None,
        ),
        (
            "5:84",
            "invalid `retry.max_delay`: unknown unit `x` in duration `1x`",
            "build",
            None,
        ),
        (
            "6:26",
            "unknown operation `biuld` in `after`",
            "test",
            Some("did you mean `build`?"),
        ),
        ("6:35", "`test` is after itself", "test", None),
        ("6:57", "`run` has an empty command", "test", None),
        ("6:71", "`timeout` must be more than 0", "test", None),
        (
            "7:9",
            "operation name `bad name` contains whitespace",
            "bad name",
            None,
        ),
        (
            "7:35",
            "machine file `",
            "bad name",
            Some("relative to the directory of the workflow file"),
        ),
        ("8:9", "operation name `a.b` contains `.`", "a.b", None),
        ("8:31", "`run` runs this workflow itself", "a.b", None),
        (
            "8:52",
            "`factor` must be a finite number, not `NaN`",
            "a.b",
            None,
        ),
        (
            "9:23",
            "dependency cycle: x → y → z → x",
            "x",
            Some("remove one of these `after` entries"),
        ),
        ("11:29", "`max_parallel` must be at least 1", "z", None),
        ("12:9", "an operation name cannot be empty", "many", None),
    ];
    for (pos, message, op, hint) in expected {
        let head = format!("{path}:{pos}: error: {message}");
        let at = stderr
            .find(&head)
            .unwrap_or_else(|| panic!("missing `{head}` in\n{stderr}"));
        let rest = &stderr[at..];
        let block_end = rest[1..]
            .find(&format!("\n{path}:"))
            .map_or(rest.len(), |i| i + 1);
        let block = &rest[..block_end];
        assert!(
            block.contains(&format!("\n  in operation `{op}`")),
            "{op}: {block}"
        );
        if let Some(h) = hint {
            assert!(
                block.contains("\n  hint: ") && block.contains(h),
                "{h}: {block}"
            );
        }
    }
    assert!(stderr.contains("missing.ron` does not exist"), "{stderr}");
    assert!(
        stderr.contains("19 errors, 0 warnings in 1 file"),
        "{stderr}"
    );
}

#[test]
fn json_lists_every_diagnostic_with_the_operation() {
    let d = dir("json");
    let path = write(&d, "many.ron", MANY);
    let out = orca(&["check", "--json", &path]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let list = v.as_array().expect("a list");
    assert_eq!(list.len(), 19, "{v:#}");
    let cycle = list
        .iter()
        .find(|d| d["code"] == "dependency-cycle")
        .expect("the cycle");
    assert_eq!(cycle["line"], 9);
    assert_eq!(cycle["col"], 23);
    assert_eq!(cycle["state"], "x");
    assert_eq!(cycle["severity"], "error");
    assert_eq!(cycle["message"], "dependency cycle: x → y → z → x");
    let codes: Vec<&str> = list.iter().map(|d| d["code"].as_str().unwrap()).collect();
    for code in [
        "bad-max-parallel",
        "bad-duration",
        "empty-command",
        "bad-retry",
        "unknown-after",
        "self-dependency",
        "bad-name",
        "missing-file",
        "self-reference",
    ] {
        assert!(codes.contains(&code), "{code}: {codes:?}");
    }
}

#[test]
fn unknown_fields_are_all_reported_with_did_you_mean() {
    let d = dir("fields");
    let path = write(
        &d,
        "w.ron",
        r#"Workflow(
    max_paralel: 2,
    tasks: {
        "a": (rn: Shell("x"), retry: (max_atempts: 2), needs: []),
        "b": (after: ["a"], optional: true, tasks: { "c": (timout: "1s") }),
    },
)"#,
    );
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    for want in [
        format!(
            "{path}:2:5: error: unknown field `max_paralel`\n  in operation `w`\n  hint: did you mean `max_parallel`?"
        ),
        format!(
            "{path}:4:15: error: unknown field `rn`\n  in operation `a`\n  hint: did you mean `run`?"
        ),
        format!(
            "{path}:4:39: error: unknown field `max_atempts`\n  in operation `a`\n  hint: did you mean `max_attempts`?"
        ),
        format!(
            "{path}:4:56: error: unknown field `needs`\n  in operation `a`\n  hint: orca calls it `after`"
        ),
        format!(
            "{path}:5:60: error: unknown field `timout`\n  in operation `b.c`\n  hint: did you mean `timeout`?"
        ),
    ] {
        assert!(stderr.contains(&want), "{want}\n---\n{stderr}");
    }
    assert!(stderr.contains("5 errors"), "{stderr}");
}

#[test]
fn duplicate_task_names_are_errors() {
    let d = dir("dup");
    let path = write(
        &d,
        "w.ron",
        "Workflow(tasks: {\n    \"build\": (run: Shell(\"a\")),\n    \"build\": (run: Shell(\"b\")),\n})",
    );
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}:3:5: error: duplicate task name `build` (first at 2:5)\n  in operation `w`"
        )),
        "{stderr}"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let d = dir("syntax");
    let path = write(
        &d,
        "w.ron",
        "Workflow(\n  tasks: { \"a\": (run: Shell(\"x\") },\n)",
    );
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:2:34: error: expected comma")),
        "{stderr}"
    );

    let path = write(
        &d,
        "v.ron",
        "Workflow(tasks: { \"a\": (run: Shel(\"x\"), on_child_failure: FailFast) })",
    );
    let (_, stderr) = check(&path);
    assert!(stderr.contains("hint: did you mean `Shell`?"), "{stderr}");
}

#[test]
fn a_machine_where_a_workflow_is_expected_is_named() {
    // A workflow's `Workflow("...")` work must name a workflow: the loader says what it found.
    let wf = orca::model::load_workflow_str("m.ron", "Machine(states: { \"a\": () })");
    let e = wf.unwrap_err().to_string();
    assert!(
        e.contains("m.ron:1:1: error: this is a machine file, but a workflow was expected"),
        "{e}"
    );
    let d = dir("empty");
    let path = write(&d, "w.ron", "// nothing here\n");
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("error: file is empty"), "{stderr}");
}

#[test]
fn cycles_name_the_whole_cycle_and_only_once() {
    let d = dir("cycle");
    let path = write(
        &d,
        "w.ron",
        r#"Workflow(tasks: {
    "a": (after: ["c"]),
    "b": (after: ["a"]),
    "c": (after: ["b"]),
    "d": (tasks: { "e": (after: ["f"]), "f": (after: ["e"]) }),
})"#,
    );
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}:2:19: error: dependency cycle: a → c → b → a\n  in operation `a`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: dependency cycle: e → f → e\n  in operation `d.e`"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("dependency cycle").count(), 2, "{stderr}");
}

#[test]
fn files_are_found_relative_to_the_workflow() {
    let d = dir("files");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write(
        &d,
        "sub/m.ron",
        r#"Machine(states: { "done": (kind: Final) })"#,
    );
    write(
        &d,
        "sub/child.ron",
        r#"Workflow(tasks: { "x": (run: Shell("true")) })"#,
    );
    let path = write(
        &d,
        "w.ron",
        r#"Workflow(tasks: {
    "m": (run: Machine("sub/m.ron")),
    "c": (run: Workflow("sub/child.ron")),
    "gone": (research: Workflow("sub/nope.ron")),
    "me": (run: Workflow("./w.ron")),
    "kind": (run: Workflow("sub/m.ron"), integrate: Machine("sub/child.ron")),
})"#,
    );
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:4:33: error: workflow file `")),
        "{stderr}"
    );
    assert!(stderr.contains("sub/nope.ron` does not exist"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}:5:26: error: `run` runs this workflow itself"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{path}:6:28: error: `sub/m.ron` is a machine file, but a workflow was expected\n  in operation `kind`\n  hint: run it with `Machine(\"sub/m.ron\")`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: `sub/child.ron` is a workflow file, but a machine was expected"),
        "{stderr}"
    );
    assert!(stderr.contains("4 errors"), "{stderr}");
}

#[test]
fn graph_mermaid_draws_the_tree_and_dependencies() {
    let out = orca(&["graph", &fixture("release.ron")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(m.starts_with("flowchart LR\n"), "{m}");
    for want in [
        "    subgraph o0 [\"release\"]\n",
        "        o1[\"build-api<br/>run: cargo build -p api\"]\n",
        "        o2[\"build-web<br/>run: npm run build\"]\n",
        "        o3[\"test<br/>run: cargo test\"]\n",
        "        subgraph o4 [\"deploy<br/>analyze: ./preflight.sh<br/>research: ./inventory.sh<br/>decompose: ./plan-regions.sh<br/>integrate: ./summarize.sh<br/>compensate: ./rollback.sh all<br/>max_parallel: 2\"]\n",
        "            o5[\"canary<br/>run: ./deploy.sh canary<br/>compensate: ./rollback.sh canary\"]\n",
        "            o4_decomposed([\"subtasks from decompose\"]):::dynamic\n",
        "        o6[\"notify (optional)<br/>run: machine machines/notify.ron\"]\n",
        "    o1 --> o3\n    o2 --> o3\n    o3 --> o4\n    o4 --> o6\n",
        "    class o6 optional\n",
        "    class o4,o5 compensable\n",
    ] {
        assert!(m.contains(want), "{want}\n---\n{m}");
    }
    // The same input draws the same text.
    let again = orca(&["graph", &fixture("release.ron")]);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn graph_dot_draws_clusters_and_edges() {
    let d = dir("dot");
    let out_path = d.join("release.dot");
    let out = orca(&[
        "graph",
        &fixture("release.ron"),
        "--format",
        "dot",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let g = std::fs::read_to_string(&out_path).unwrap();
    assert!(g.starts_with("digraph \"release\" {\n"), "{g}");
    for want in [
        "    subgraph cluster_o0 {\n",
        "        subgraph cluster_o4 {\n",
        "            o4 [shape=point, style=invis];\n",
        "        o1 [label=\"build-api\\nrun: cargo build -p api\", style=\"rounded\"];\n",
        "o5 [label=\"canary\\nrun: ./deploy.sh canary\\ncompensate: ./rollback.sh canary\", style=\"rounded\", color=darkorange];",
        "o6 [label=\"notify (optional)\\nrun: machine machines/notify.ron\", style=\"rounded,dashed\"];",
        "    o1 -> o3;\n",
        "    o3 -> o4 [lhead=cluster_o4];\n",
        "    o4 -> o6 [ltail=cluster_o4];\n",
    ] {
        assert!(g.contains(want), "{want}\n---\n{g}");
    }
    assert!(g.ends_with("}\n"));
}

#[test]
fn graph_of_an_invalid_workflow_reports_and_exits_2() {
    let d = dir("graphbad");
    let path = write(&d, "w.ron", r#"Workflow(tasks: { "a": (after: ["b"]) })"#);
    let out = orca(&["graph", &path]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{path}:1:33: error: unknown operation `b` in `after`"
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn warnings_do_not_fail_unless_denied() {
    let d = dir("warn");
    let path = write(
        &d,
        "w.ron",
        r#"Workflow(tasks: {
    "a": (run: Shell("x"), max_parallel: 2),
    "b": (after: ["a", "a"], retry: (initial: "5s", max_delay: "1s")),
})"#,
    );
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(0), "{stderr}");
    for want in [
        format!(
            "{path}:2:28: warning: `max_parallel` has no effect: `a` has no subtasks\n  in operation `a`"
        ),
        format!("{path}:3:24: warning: `a` is named twice in `after`"),
        format!(
            "{path}:3:64: warning: `max_delay` (1s) is less than `initial` (5s): every retry waits 1s"
        ),
    ] {
        assert!(stderr.contains(&want), "{want}\n---\n{stderr}");
    }
    let out = orca(&["check", "--deny-warnings", &path]);
    assert_eq!(out.status.code(), Some(1));
}
