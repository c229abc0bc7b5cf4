//! `orca run WORKFLOW.ron`, `orca resume`, `orca status`: every field and failure path of
//! workflows.md with small shell scripts. Marker files prove what ran, how often and in which
//! order.

mod common;
use common::workflows::{orca, scratch, spawn_orca};
use std::path::Path;
use std::process::{Command, Output};

/// Writes `w.ron` and runs it with its run directory at `run`.
fn run_wf(dir: &Path, text: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("w.ron"), text).unwrap();
    let mut args = vec!["run", "w.ron", "--run-dir", "run"];
    args.extend_from_slice(extra);
    orca(dir, &args)
}

/// One operation's object in `status --json` or `replay --json` output.
fn operation(v: &serde_json::Value, op: &str) -> serde_json::Value {
    v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op"] == op)
        .unwrap_or_else(|| panic!("no operation {op} in {v}"))
        .clone()
}

fn lines(dir: &Path, marker: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join("m").join(marker))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Starts `orca run w.ron --run-dir run` in `dir` in the background (output piped) and
/// waits until the marker file `marker` has a line, i.e. the run is under way.
fn start_run(dir: &Path, marker: &str) -> std::process::Child {
    let child = spawn_orca(dir, &["run", "w.ron", "--run-dir", "run"]);
    let t0 = std::time::Instant::now();
    while lines(dir, marker).is_empty() && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn dependencies_order_and_the_global_bound() {
    let dir = scratch("order");
    // Each task logs its start and end; with max_parallel 1 nothing overlaps, and `c` starts
    // only after both of its dependencies ended.
    let task = |n: &str| format!("echo start {n} >> m/log; sleep 0.05; echo end {n} >> m/log");
    let wf = format!(
        r#"Workflow(id: "w", max_parallel: 1, tasks: {{
            "a": (run: Shell("{a}")),
            "b": (run: Shell("{b}")),
            "c": (after: ["a", "b"], run: Shell("{c}")),
        }})"#,
        a = task("a"),
        b = task("b"),
        c = task("c")
    );
    let o = run_wf(&dir, &wf, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = lines(&dir, "log");
    assert_eq!(log.len(), 6, "{log:?}");
    for pair in log.chunks(2) {
        assert!(
            pair[0].starts_with("start") && pair[1].starts_with("end"),
            "overlap: {log:?}"
        );
    }
    assert_eq!(log[4], "start c", "{log:?}");
}

#[test]
fn phases_get_the_stdin_document_and_environment_and_pass_outputs() {
    let dir = scratch("data");
    let wf = r#"Workflow(id: "w", tasks: {
        "p": (
            input: {"k": 1},
            env: {"MY_VAR": "mine"},
            analyze: Shell("echo '{\"found\": 3}'"),
            run: Shell("cat > m/stdin; env | grep -E '^(ORCA_|MY_VAR)' | sort > m/env; echo plain text"),
            tasks: { "kid": (run: Shell("echo '[1, 2]'")) },
            integrate: Shell("cat > m/integrate-stdin; echo '\"merged\"'"),
        ),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m/stdin")).unwrap()).unwrap();
    assert_eq!(doc["operation"], "p");
    assert_eq!(doc["phase"], "execute");
    assert_eq!(doc["attempt"], 1);
    assert_eq!(doc["input"], serde_json::json!({"k": 1}));
    assert_eq!(doc["outputs"]["analyze"], serde_json::json!({"found": 3}));
    assert!(doc["run"].as_str().is_some_and(|r| !r.is_empty()));
    let env = std::fs::read_to_string(dir.join("m/env")).unwrap();
    for want in [
        "MY_VAR=mine",
        "ORCA_OPERATION=p",
        "ORCA_PHASE=execute",
        "ORCA_ATTEMPT=1",
        "ORCA_RUN_ID=",
        "ORCA_RUN_DIR=/",
    ] {
        assert!(env.contains(want), "{want} missing in {env}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m/integrate-stdin")).unwrap())
            .unwrap();
    assert_eq!(doc["phase"], "integrate");
    assert_eq!(
        doc["outputs"]["execute"], "plain text",
        "stdout that is not JSON is text"
    );
    assert_eq!(doc["children"]["kid"]["status"], "succeeded");
    assert_eq!(doc["children"]["kid"]["output"], serde_json::json!([1, 2]));
    // Every attempt's stdout and stderr are kept under the run directory.
    let kept = std::fs::read_to_string(dir.join("run/logs/p.execute-1.stdout")).unwrap();
    assert_eq!(kept.trim(), "plain text");
    // The root's output for nesting: `--output`.
    let wf = r#"Workflow(id: "w", run: Shell("echo '{\"v\": 7}'"))"#;
    std::fs::write(dir.join("w2.ron"), wf).unwrap();
    let o = orca(&dir, &["run", "w2.ron", "--run-dir", "run2", "--output"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), r#"{"v":7}"#);
}

#[test]
fn retries_with_backoff_until_success_and_exhaustion() {
    let dir = scratch("retry");
    // Fails on the first two attempts, succeeds on the third.
    let wf = r#"Workflow(id: "w", defaults: (retry: (max_attempts: 3, initial: "10ms", jitter: false)), tasks: {
        "flaky": (run: Shell("echo attempt; echo x >> m/tries; test $(wc -l < m/tries) -ge 3")),
        "hopeless": (run: Shell("echo x >> m/hopeless; exit 1"), retry: (max_attempts: 2), optional: true),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lines(&dir, "tries").len(), 3);
    assert_eq!(
        lines(&dir, "hopeless").len(),
        2,
        "max_attempts: 2 is two attempts"
    );
    assert!(dir.join("run/logs/flaky.execute-3.stdout").exists());
    assert!(!dir.join("run/logs/flaky.execute-4.stdout").exists());
    // Not on a terminal: one line per lifecycle change, `[seconds] operation from → to`,
    // then the attempt after the first and the error.
    let out = String::from_utf8_lossy(&o.stdout);
    let flaky: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once("s] flaky "))
        .map(|(secs, rest)| {
            let (whole, ms) = secs.trim_start().split_once('.').unwrap();
            assert!(whole.parse::<u64>().is_ok() && ms.len() == 3, "{secs}");
            assert_eq!(
                secs.len(),
                8,
                "seconds right-aligned in 8 columns: {secs:?}"
            );
            rest.trim_start()
        })
        .collect();
    assert_eq!(
        flaky,
        [
            "Pending → Analyzing",
            "Analyzing → Researching",
            "Researching → Decomposing",
            "Decomposing → Executing",
            "Executing → Retrying  (execute: exit status 1)",
            "Retrying → Executing attempt 2",
            "Executing → Retrying attempt 2  (execute: exit status 1)",
            "Retrying → Executing attempt 3",
            "Executing → Integrating",
            "Integrating → Succeeded",
        ],
        "{out}"
    );
    let first = out.lines().find(|l| l.contains("] flaky ")).unwrap();
    assert_eq!(
        first.find("Pending").unwrap() - first.find("flaky").unwrap(),
        25,
        "names padded to 24 columns: {first:?}"
    );
}

#[test]
fn a_timeout_stops_the_command_and_fails_the_attempt() {
    let dir = scratch("timeout");
    let wf = r#"Workflow(id: "w", tasks: {
        "slow": (run: Shell("echo begun; sleep 5; echo finished >> m/slow"), timeout: "200ms", retry: (max_attempts: 2, initial: "10ms")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("slow failed: timed out after 200ms"), "{out}");
    assert!(
        dir.join("run/logs/slow.execute-2.stdout").exists(),
        "a timeout is retryable"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(lines(&dir, "slow").is_empty(), "the command was stopped");
}

#[test]
fn fail_fast_cancels_running_siblings_and_starts_no_more() {
    let dir = scratch("failfast");
    let wf = r#"Workflow(id: "w", max_parallel: 2, tasks: {
        "long": (run: Shell("sleep 3; echo done >> m/long")),
        "bad": (run: Shell("exit 1")),
        "later": (after: ["long"], run: Shell("echo ran >> m/later")),
        "queued": (run: Shell("echo ran >> m/queued")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("bad failed: execute: exit status 1"), "{out}");
    assert!(
        lines(&dir, "long").is_empty(),
        "the running sibling was stopped"
    );
    assert!(lines(&dir, "later").is_empty() && lines(&dir, "queued").is_empty());
    let st = orca(&dir, &["status", "run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let state = |op: &str| operation(&v, op)["state"].clone();
    assert_eq!(state("long"), "Cancelled");
    assert_eq!(state("queued"), "Cancelled");
    assert_eq!(state("w"), "Failed");
}

#[test]
fn continue_runs_independent_branches_and_skips_dependents() {
    let dir = scratch("continue");
    let wf = r#"Workflow(id: "w", on_child_failure: Continue, tasks: {
        "bad": (run: Shell("exit 1")),
        "dep": (after: ["bad"], run: Shell("echo ran >> m/dep")),
        "dep2": (after: ["dep"], run: Shell("echo ran >> m/dep2")),
        "free": (run: Shell("sleep 0.2; echo ran >> m/free")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(lines(&dir, "free"), vec!["ran"]);
    assert!(lines(&dir, "dep").is_empty() && lines(&dir, "dep2").is_empty());
    assert!(text(&o).contains("2 skipped"), "{}", text(&o));
}

#[test]
fn an_optional_failure_neither_fails_the_parent_nor_skips_dependents() {
    let dir = scratch("optional");
    let wf = r#"Workflow(id: "w", tasks: {
        "extra": (run: Shell("exit 1"), optional: true),
        "next": (after: ["extra"], run: Shell("echo ran >> m/next")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lines(&dir, "next"), vec!["ran"]);
}

#[test]
fn compensation_runs_for_succeeded_operations_in_reverse_completion_order() {
    let dir = scratch("saga");
    let wf = r#"Workflow(id: "w", tasks: {
        "one": (run: Shell("echo one >> m/log"), compensate: Shell("echo undo-one >> m/log")),
        "two": (after: ["one"], run: Shell("echo two >> m/log"), compensate: Shell("echo undo-two >> m/log")),
        "plain": (after: ["two"], run: Shell("echo plain >> m/log")),
        "three": (after: ["plain"], run: Shell("echo three >> m/log; exit 1"), compensate: Shell("echo undo-three >> m/log")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        lines(&dir, "log"),
        vec!["one", "two", "plain", "three", "undo-two", "undo-one"],
        "the failed one is not compensated; the others backwards"
    );
}

#[test]
fn decompose_adds_subtasks_at_run_time_and_bad_ones_fail_the_operation() {
    let dir = scratch("decompose");
    let wf = r#"Workflow(id: "w", tasks: {
        "fan": (
            decompose: Shell("printf '{\"x\": {\"run\": {\"Shell\": \"echo x >> m/log\"}}, \"y\": {\"after\": [\"x\"], \"run\": {\"Shell\": \"echo y >> m/log\"}}}'"),
            tasks: { "fixed": (run: Shell("echo fixed >> m/fixed")) },
            integrate: Shell("cat > m/integrate"),
        ),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lines(&dir, "log"), vec!["x", "y"]);
    assert_eq!(lines(&dir, "fixed"), vec!["fixed"]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m/integrate")).unwrap()).unwrap();
    assert_eq!(doc["children"].as_object().unwrap().len(), 3);

    // RON works too; invalid and cyclic subtasks fail the operation with the reason.
    for (name, printed, why) in [
        ("ron", r#"{"r": (run: Shell("echo r >> m/ron"))}"#, ""),
        (
            "invalid",
            r#"{"a": (rnu: Shell("true"))}"#,
            "unknown field `rnu`",
        ),
        (
            "cycle",
            r#"{"a": (after: ["b"]), "b": (after: ["a"])}"#,
            "cycle",
        ),
        ("notmap", "[1, 2]", "decompose printed invalid subtasks"),
    ] {
        std::fs::write(dir.join(format!("{name}.txt")), printed).unwrap();
        let wf = format!(r#"Workflow(id: "w", decompose: Shell("cat {name}.txt"))"#);
        std::fs::write(dir.join(format!("{name}.ron")), wf).unwrap();
        let o = orca(
            &dir,
            &[
                "run",
                &format!("{name}.ron"),
                "--run-dir",
                &format!("run-{name}"),
            ],
        );
        if why.is_empty() {
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            assert_eq!(lines(&dir, "ron"), vec!["r"]);
        } else {
            assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
            assert!(text(&o).contains(why), "{name}: {}", text(&o));
        }
    }
}

#[test]
fn bad_commands_fail_clearly_and_never_hang() {
    let dir = scratch("bad");
    let wf = r#"Workflow(id: "w", on_child_failure: Continue, defaults: (retry: (max_attempts: 3, initial: "10ms")), tasks: {
        "missing": (run: Command(["/nonexistent/tool", "x"])),
        "missing-sh": (run: Shell("no-such-command-anywhere")),
        "flood": (run: Shell("yes orca | head -c 20000000")),
        "not-json": (run: Shell("echo '{broken'")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("missing failed: execute: cannot start `/nonexistent/tool`"),
        "{out}"
    );
    assert!(
        out.contains("missing-sh failed: execute: exit status 127"),
        "{out}"
    );
    assert!(
        out.contains("flood failed: execute: stdout exceeded 16 MiB"),
        "{out}"
    );
    assert!(
        !out.contains("not-json failed"),
        "invalid JSON is text output: {out}"
    );
    // Not retried: they cannot get better.
    assert!(dir.join("run/logs/missing-sh.execute-1.stderr").exists());
    assert!(!dir.join("run/logs/missing-sh.execute-2.stderr").exists());
    assert!(dir.join("run/logs/flood.execute-1.stdout").exists());
    assert!(!dir.join("run/logs/flood.execute-2.stdout").exists());
}

#[test]
fn machine_work_succeeds_on_a_final_state_and_fails_on_a_failure_tag() {
    let dir = scratch("machine");
    std::fs::write(
        dir.join("ok.ron"),
        r#"Machine(context: {"n": 0}, states: { "a": (always: [(target: "done", actions: [Assign("n", "n + 1")])]), "done": (kind: Final, output: "{'n': n, 'k': k}") })"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.ron"),
        r#"Machine(states: { "a": (always: "broken"), "broken": (kind: Final, tags: ["failure"]) })"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("err.ron"),
        r#"Machine(context: {"n": 0}, states: { "a": (entry: [Assign("n", "n + missing")], after: {"10ms": "done"}), "done": (kind: Final) })"#,
    )
    .unwrap();
    let wf = r#"Workflow(id: "w", on_child_failure: Continue, tasks: {
        "erring": (run: Machine("err.ron")),
        "good": (run: Machine("ok.ron"), input: {"k": "given"}),
        "after-good": (after: ["good"], run: Shell("cat > m/doc")),
        "bad": (run: Machine("bad.ron")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("bad failed: execute: the machine ended in `broken`"),
        "{}",
        text(&o)
    );
    // An error event no transition takes fails the work, although the machine went on to a
    // final state.
    assert!(
        text(&o).contains(
            "erring failed: execute: `error.execution` reached the machine's root unhandled"
        ),
        "{}",
        text(&o)
    );
    let st = orca(&dir, &["status", "run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let good = operation(&v, "good");
    assert_eq!(good["state"], "Succeeded");
    assert!(
        good["duration_ms"].is_u64(),
        "status gives durations: {good}"
    );
    assert_eq!(good["output"], serde_json::json!({"n": 1, "k": "given"}));
}

#[test]
fn sigterm_cancels_kills_process_groups_and_exits_130() {
    let dir = scratch("cancel");
    std::fs::write(
        dir.join("w.ron"),
        r#"Workflow(id: "w", tasks: {
            "long": (run: Shell("echo started >> m/long; sleep 5 & wait; echo finished >> m/long")),
        })"#,
    )
    .unwrap();
    let child = start_run(&dir, "long");
    // SAFETY: kill(2) on the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert_eq!(lines(&dir, "long"), vec!["started"]);
    let st = orca(&dir, &["status", "run"]);
    let s = String::from_utf8_lossy(&st.stdout);
    assert!(
        s.contains("cancelled") && s.contains("long") && s.contains("Cancelled"),
        "{s}"
    );
}

#[test]
fn resume_reruns_only_what_did_not_succeed_and_refuses_a_changed_file() {
    let dir = scratch("resume");
    let wf = r#"Workflow(id: "w", on_child_failure: Continue, tasks: {
        "a": (run: Shell("echo a >> m/log")),
        "b": (after: ["a"], run: Shell("echo b >> m/log; test -e m/ok")),
        "c": (after: ["b"], run: Shell("echo c >> m/log")),
        "d": (analyze: Shell("echo d-analyze >> m/log"), run: Shell("echo d >> m/log")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    std::fs::write(dir.join("m/ok"), "").unwrap();
    let o = orca(&dir, &["resume", "run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut log = lines(&dir, "log");
    log.sort();
    assert_eq!(
        log,
        vec!["a", "b", "b", "c", "d", "d-analyze"],
        "a and d kept their success"
    );

    // --from reruns that one and its dependents.
    let o = orca(&dir, &["resume", "run", "--from", "b"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lines(&dir, "log").len(), 8);

    // A changed file is refused, naming the change, unless --force.
    std::fs::write(dir.join("w.ron"), wf.replace("echo c", "echo C")).unwrap();
    let o = orca(&dir, &["resume", "run", "--from", "c"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("changed since run") && text(&o).contains("echo C"),
        "{}",
        text(&o)
    );
    let o = orca(&dir, &["resume", "run", "--from", "c", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lines(&dir, "log").last().map(String::as_str), Some("C"));

    // The journal holds every event; status and log read it.
    let st = orca(&dir, &["status", "run"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("succeeded"));
    let lg = orca(&dir, &["log", "run/journal.jsonl"]);
    let lg = String::from_utf8_lossy(&lg.stdout);
    assert!(
        lg.contains("b  PhaseFailed (exit status 1) → Failed"),
        "{lg}"
    );
    assert!(
        lg.contains("resumed: what did not succeed, and b, run again"),
        "{lg}"
    );
}

#[test]
fn json_prints_one_object_per_change_and_a_summary() {
    let dir = scratch("json");
    let o = run_wf(
        &dir,
        r#"Workflow(id: "w", tasks: { "a": (run: Shell("true")) })"#,
        &["--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let objs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(
        objs.iter()
            .any(|v| v["op"] == "a" && v["to"] == "Succeeded")
    );
    assert_eq!(objs.last().unwrap()["summary"], "succeeded");
}

#[test]
fn invalid_workflows_exit_2_with_diagnostics() {
    let dir = scratch("invalid");
    let o = run_wf(
        &dir,
        r#"Workflow(id: "w", tasks: { "a": (after: ["b"]), "b": (after: ["a"]) })"#,
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("w.ron:1:"), "{}", text(&o));
}

#[test]
fn resume_keeps_every_attempts_logs_and_force_sticks() {
    let dir = scratch("logs");
    let wf = r#"Workflow(id: "w", tasks: { "a": (run: Shell("echo try >&2; test -e m/ok")) })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    std::fs::write(dir.join("m/ok"), "").unwrap();
    let o = orca(&dir, &["resume", "run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(dir.join("run/logs/a.execute-1.stderr").exists());
    assert!(
        dir.join("run/logs/a.execute-1-r2.stderr").exists(),
        "the resumed attempt did not overwrite the first"
    );
    // A forced resume records the new file: the next resume needs no --force.
    std::fs::write(dir.join("w.ron"), wf.replace("echo try", "echo again")).unwrap();
    let o = orca(&dir, &["resume", "run", "--from", "a", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = orca(&dir, &["resume", "run", "--from", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn resume_stops_commands_a_killed_runner_left_running() {
    let dir = scratch("orphans");
    std::fs::write(
        dir.join("w.ron"),
        r#"Workflow(id: "w", tasks: { "slow": (run: Shell("echo start >> m/log; sleep 3; echo end >> m/log")) })"#,
    )
    .unwrap();
    let mut child = start_run(&dir, "log");
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL: the command's process group lives on
    child.wait().unwrap();
    let o = orca(&dir, &["resume", "run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The old command was stopped before the phase ran again: one `end`, from the rerun.
    assert_eq!(lines(&dir, "log"), vec!["start", "start", "end"]);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = scratch("pipe");
    let wf =
        r#"Workflow(id: "w", tasks: { "a": (run: Shell("true")), "b": (run: Shell("true")) })"#;
    std::fs::write(dir.join("w.ron"), wf).unwrap();
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' run w.ron --run-dir run | head -c 10 > /dev/null",
            env!("CARGO_BIN_EXE_orca")
        ))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        text(&o)
    );
}

#[test]
fn replay_rebuilds_any_moment_and_verify_finds_the_first_divergence() {
    let dir = scratch("replay");
    let wf = r#"Workflow(id: "w", tasks: {
        "a": (run: Shell("echo a >> m/log; test $(wc -l < m/log) -ge 2"), retry: (max_attempts: 2, initial: "10ms")),
        "b": (after: ["a"], run: Shell("true")),
    })"#;
    let o = run_wf(&dir, wf, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = orca(&dir, &["replay", "run/journal.jsonl", "--verify"]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    // The moment `a` first failed: it waits to retry, `b` has not started.
    let j = std::fs::read_to_string(dir.join("run/journal.jsonl")).unwrap();
    let seq = j
        .lines()
        .find(|l| l.contains("\"PhaseFailed\""))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["seq"].as_u64().unwrap())
        .unwrap();
    let at = orca(
        &dir,
        &[
            "replay",
            "run/journal.jsonl",
            "--to",
            &seq.to_string(),
            "--json",
        ],
    );
    let at: serde_json::Value = serde_json::from_slice(&at.stdout).unwrap();
    let state = |op: &str| operation(&at, op)["state"].clone();
    assert_eq!(state("a"), "Retrying");
    assert_eq!(state("b"), "Pending");
    // Against a definition without retries the failure leads elsewhere: exit 1, naming it.
    std::fs::write(
        dir.join("strict.ron"),
        wf.replace("max_attempts: 2", "max_attempts: 1"),
    )
    .unwrap();
    let v = orca(
        &dir,
        &[
            "replay",
            "run/journal.jsonl",
            "--verify",
            "--machine",
            "strict.ron",
        ],
    );
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(
        text(&v).contains(&format!(
            "record {seq}: `a` PhaseFailed led to Retrying when recorded, but to Failed now"
        )),
        "{}",
        text(&v)
    );
}

#[test]
fn a_run_in_progress_cannot_be_resumed_beside_itself() {
    let dir = scratch("locked");
    std::fs::write(
        dir.join("w.ron"),
        r#"Workflow(id: "w", tasks: { "a": (run: Shell("echo go >> m/log; sleep 1")), "b": (after: ["a"], run: Shell("true")) })"#,
    )
    .unwrap();
    let child = start_run(&dir, "log");
    let o = orca(&dir, &["resume", "run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("in use by another orca process"),
        "{}",
        text(&o)
    );
    let first = child.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "the running run was left alone"
    );
    let v = orca(&dir, &["replay", "run/journal.jsonl", "--verify"]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "one writer, one journal: {}",
        text(&v)
    );
}

#[test]
fn commands_start_with_default_signals_but_what_the_runner_ignored() {
    let dir = scratch("signals");
    std::fs::write(
        dir.join("w.ron"),
        // The program itself, not a shell: a shell blocks signals now and then for itself.
        r#"Workflow(id: "w", tasks: { "t": (run: Command(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])) })"#,
    )
    .unwrap();
    // As under `nohup`: the runner is started with SIGHUP ignored.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' HUP; exec '{}' run w.ron --run-dir run",
            env!("CARGO_BIN_EXE_orca")
        ))
        .current_dir(&dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let status = std::fs::read_to_string(dir.join("run/logs/t.execute-1.stdout")).unwrap();
    let masks: std::collections::HashMap<String, u64> = status
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap())
        })
        .collect();
    let bit = |sig: i32| 1u64 << (sig - 1);
    assert_ne!(
        masks["SigIgn"] & bit(libc::SIGHUP),
        0,
        "ignored stays ignored"
    );
    assert_eq!(
        masks["SigIgn"] & bit(libc::SIGPIPE),
        0,
        "SIGPIPE at its default"
    );
    assert_eq!(
        masks["SigIgn"] & bit(libc::SIGINT),
        0,
        "the runner's handlers are not ignores"
    );
    assert_eq!(masks["SigBlk"], 0, "nothing blocked");
}

#[test]
fn a_run_killed_before_its_header_is_started_again_not_resumed() {
    let dir = scratch("headerless");
    std::fs::write(
        dir.join("w.ron"),
        r#"Workflow(id: "w", tasks: { "a": (run: Shell("echo ran >> m/log")) })"#,
    )
    .unwrap();
    // What a runner killed in the middle of writing its header leaves.
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("run/journal.jsonl"), r#"{"seq":0,"wall":1,"hea"#).unwrap();
    let o = orca(&dir, &["resume", "run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("stopped before it started"),
        "{}",
        text(&o)
    );
    let o = run_wf(
        &dir,
        &std::fs::read_to_string(dir.join("w.ron")).unwrap(),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lines(&dir, "log"), ["ran"]);
    let o = orca(&dir, &["status", "run"]);
    assert!(text(&o).contains("succeeded"), "{}", text(&o));
}
