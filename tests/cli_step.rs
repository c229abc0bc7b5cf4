//! `orca step` in scripted mode (cli.md, "The stepper"): one JSON object per command, every
//! command, bad input that does not end the session, exact back/forward, `why` on guarded,
//! shadowed and preempted transitions, and `save` writing a journal that replays.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orca-step-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `orca step FILE --json [EXTRA...]` with `script` on stdin: one object per line, and
/// the process output.
fn run_step(file: &Path, extra: &[&Path], script: &str) -> (Vec<Value>, std::process::Output) {
    let out = step_output(file, &["--json"], extra, script);
    let values = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (values, out)
}

/// Runs `orca step FILE [FLAGS] [EXTRA]` with `script` on stdin.
fn step_output(file: &Path, flags: &[&str], extra: &[&Path], script: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orca"))
        .arg("step")
        .arg(file)
        .args(flags)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn step(file: &Path, script: &str) -> Vec<Value> {
    let (values, out) = run_step(file, &[], script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    values
}

fn step_journaled(file: &Path, journal: &Path, script: &str) -> (Vec<Value>, std::process::Output) {
    run_step(file, &[Path::new("--journal"), journal], script)
}

fn order() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("machines/order.ron")
}

#[test]
fn one_object_per_command_and_bad_input_does_not_end_the_session() {
    let script = "CHECKOUT\nbogus!\nsend\nPAY {not json}\ntick 5 parsecs\nwhy\nforward\nPAY {\"amount\": 22}\n";
    let out = step(&order(), script);
    assert_eq!(out.len(), 8, "{out:?}");
    assert_eq!(
        out[0]["configuration"],
        serde_json::json!(["awaiting_payment"])
    );
    assert_eq!(out[0]["taken"][0], "cart → awaiting_payment");
    assert_eq!(out[0]["step"], 1);
    for (i, what) in [
        (1, "unknown command"),
        (2, "needs an event name"),
        (3, "is not JSON"),
        (4, "parsecs"),
        (5, "needs an event name"),
        (6, "nothing to redo"),
    ] {
        let e = out[i]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{i}: {}", out[i]));
        assert!(e.contains(what), "{i}: {e}");
        assert_eq!(out[i]["step"], 1, "a bad command changes nothing");
    }
    assert_eq!(out[7]["error"], Value::Null);
    assert_eq!(
        out[7]["configuration"],
        serde_json::json!(["paid", "paid.packing"])
    );
    assert_eq!(out[7]["context"]["paid"], 22);
}

#[test]
fn back_and_forward_rebuild_exact_moments() {
    let script = "CHECKOUT\nPAY {\"amount\": 5}\nPAY {\"amount\": 17}\nback 2\nforward\nforward\nback\nCANCEL\nforward\nhistory\n";
    let out = step(&order(), script);
    let (after_pay5, after_pay17) = (&out[1], &out[2]);
    assert_eq!(out[3]["step"], 1);
    assert_eq!(out[3]["context"], out[0]["context"]);
    assert_eq!(out[3]["configuration"], out[0]["configuration"]);
    assert_eq!(out[4]["context"], after_pay5["context"]);
    assert_eq!(out[4]["taken"], after_pay5["taken"]);
    assert_eq!(out[5]["configuration"], after_pay17["configuration"]);
    assert_eq!(out[5]["context"], after_pay17["context"]);
    // A new input after `back` drops what was undone.
    assert_eq!(out[7]["step"], 3);
    assert_eq!(out[7]["taken"][0], "awaiting_payment → refunding");
    assert!(
        out[8]["error"]
            .as_str()
            .unwrap()
            .contains("nothing to redo")
    );
    let history = out[9]["history"].as_array().unwrap();
    let inputs: Vec<&str> = history
        .iter()
        .map(|h| h["input"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        ["start", "CHECKOUT", "PAY {\"amount\":5}", "CANCEL"]
    );
}

#[test]
fn tick_fires_timers_and_timers_lists_them() {
    let out = step(&order(), "CHECKOUT\ntimers\ntick 10m\ntick\ntick\n");
    let timers = out[1]["timers"].as_array().unwrap();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0]["due"], 900_000);
    assert_eq!(out[2]["t"], 600_000);
    assert_eq!(
        out[2]["configuration"],
        serde_json::json!(["awaiting_payment"])
    );
    assert_eq!(out[3]["t"], 900_000);
    assert!(out[3]["taken"][0].as_str().unwrap().contains("refunding"));
    assert!(out[4]["error"].as_str().unwrap().contains("no timers"));
}

#[test]
fn set_context_tree_events_help_reset_quit() {
    let out = step(
        &order(),
        "set discount 5\ncontext\ntree\nevents\nhelp\nreset\nquit\nCHECKOUT\n",
    );
    assert_eq!(out.len(), 7, "nothing after quit: {out:?}");
    assert_eq!(out[0]["context"]["discount"], 5);
    assert_eq!(out[0]["step"], 1);
    let events: Vec<&str> = out[3]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["CHECKOUT", "CANCEL"]);
    assert_eq!(out[3]["events"][0]["holds"], true);
    assert_eq!(out[5]["step"], 0);
    assert_eq!(out[5]["context"]["discount"], 2);
}

#[test]
fn why_explains_guards_shadowing_and_preemption() {
    let m = temp(
        "why.ron",
        r##"Machine(
    initial: "p",
    context: { "n": 1 },
    states: {
        "p": (
            kind: Parallel,
            states: {
                "r1": (initial: "x", states: {
                    "x": (on: { "GO": [ (target: "#out", guard: "n > 5"), "#out", "x" ] }),
                }),
                "r2": (initial: "y", states: { "y": (on: { "GO": "y2" }), "y2": () }),
            },
        ),
        "out": (),
    },
)"##,
    );
    let out = step(&m, "why GO\nwhy NOPE\n");
    let why = out[0]["why"].as_array().unwrap();
    let verdicts: Vec<String> = why
        .iter()
        .map(|w| match &w["verdict"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o.keys().next().unwrap().clone(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(
        verdicts,
        ["guard_false", "enabled", "shadowed", "preempted"]
    );
    assert_eq!(why[0]["reads"], serde_json::json!([["n", 1]]));
    assert_eq!(why[3]["from"], "p.r2.y");
    assert!(
        why[3]["verdict"]["preempted"]["by"]
            .as_str()
            .unwrap()
            .contains("out")
    );
    assert_eq!(out[1]["why"], serde_json::json!([]));
}

#[test]
fn a_saved_session_replays_and_verifies() {
    let j = std::env::temp_dir().join(format!("orca-step-save-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&j);
    let script = format!(
        "CHECKOUT\nPAY {{\"amount\": 5}}\nback\ntick 15m\nsave {}\nsave {}\n",
        j.display(),
        j.display()
    );
    let out = step(&order(), &script);
    assert_eq!(out[4]["error"], Value::Null);
    assert!(
        out[5]["error"].as_str().unwrap().contains("exists"),
        "{}",
        out[5]
    );
    let replay = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(["replay", j.to_str().unwrap(), "--verify"])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let to = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(["replay", j.to_str().unwrap(), "--to", "3", "--json"])
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&to.stdout).unwrap();
    assert_eq!(state["configuration"], out[3]["configuration"]);
    assert_eq!(state["context"], out[3]["context"]);
    let _ = std::fs::remove_file(&j);
}

fn replay(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orca"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_journaled_session_with_back_and_forward_replays_every_moment() {
    let j = std::env::temp_dir().join(format!("orca-step-j-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&j);
    let script =
        "CHECKOUT\nPAY {\"amount\": 5}\nback\nCANCEL\nback 2\nforward\ntick 15m\nreset\nCHECKOUT\n";
    let (out, o) = step_journaled(&order(), &j, script);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j_str = j.to_str().unwrap();
    let verify = replay(&[j_str, "--verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // The journal's records: start, then one record per command (a step or a rewind).
    let timeline = replay(&[j_str, "--json"]);
    let moments: Vec<Value> = String::from_utf8_lossy(&timeline.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(moments.len(), 1 + out.len());
    for (i, (m, s)) in moments[1..].iter().zip(&out).enumerate() {
        assert_eq!(m["configuration"], s["configuration"], "command {i}");
        assert_eq!(m["context"], s["context"], "command {i}");
        // And `--to` rebuilds the same moment from the stream.
        let seq = m["seq"].as_u64().unwrap().to_string();
        let to = replay(&[j_str, "--to", &seq, "--json"]);
        let at: Value = serde_json::from_slice(&to.stdout).unwrap();
        assert_eq!(at["configuration"], s["configuration"], "--to {seq}");
        assert_eq!(at["t"], s["t"], "--to {seq}");
    }
    let _ = std::fs::remove_file(&j);
}

#[test]
fn stepping_continues_a_journal_and_refuses_to_rewind_a_run() {
    let j = std::env::temp_dir().join(format!("orca-step-c-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&j);
    let (_, o) = step_journaled(&order(), &j, "CHECKOUT\nPAY {\"amount\": 5}\n");
    assert!(o.status.success());
    let (out, o) = step_journaled(&order(), &j, "history\nback\nPAY {\"amount\": 17}\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        out[0]["history"].as_array().unwrap().len(),
        3,
        "start, CHECKOUT, PAY"
    );
    assert_eq!(out[1]["context"]["paid"], 0);
    assert_eq!(
        out[2]["configuration"],
        serde_json::json!(["awaiting_payment"])
    );
    assert_eq!(out[2]["context"]["paid"], 17);
    assert!(replay(&[j.to_str().unwrap(), "--verify"]).status.success());
    let _ = std::fs::remove_file(&j);

    // A journal of `orca run` can be continued, but not rewound.
    let run = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args([
            "run",
            order().to_str().unwrap(),
            "--virtual-time",
            "--until",
            "1m",
        ])
        .args(["--event", "CHECKOUT", "--journal", j.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (out, _) = step_journaled(&order(), &j, "back\nPAY {\"amount\": 22}\n");
    assert!(
        out[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot record going back")
    );
    assert_eq!(
        out[1]["configuration"],
        serde_json::json!(["paid", "paid.packing"])
    );
    assert!(replay(&[j.to_str().unwrap(), "--verify"]).status.success());

    // Another version of the machine is refused.
    let changed = temp(
        "order.ron",
        &std::fs::read_to_string(order())
            .unwrap()
            .replace("15m", "20m"),
    );
    let (_, o) = step_journaled(&changed, &j, "tree\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another version"));
    let _ = std::fs::remove_file(&j);
}

#[test]
fn an_unknown_event_is_an_error_with_the_nearest_name_and_changes_nothing() {
    let out = step(&order(), "CHEKOUT\nsend NOPE {\"x\": 1}\nCHECKOUT\n");
    let e = out[0]["error"].as_str().unwrap();
    assert!(e.contains("unknown event `CHEKOUT`"), "{e}");
    assert!(e.contains("did you mean `CHECKOUT`?"), "{e}");
    assert_eq!(out[0]["step"], 0);
    assert!(
        out[1]["error"]
            .as_str()
            .unwrap()
            .contains("unknown event `NOPE`")
    );
    assert_eq!(out[2]["step"], 1, "the session went on");
}

fn op_state(v: &Value, op: &str) -> String {
    v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op"] == op)
        .unwrap_or_else(|| panic!("no {op} in {v}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_workflow_is_simulated_and_answered_by_hand() {
    let wf = temp(
        "sim.ron",
        r#"Workflow(id: "sim", max_parallel: 1, tasks: {
            "a": (run: Shell("touch never-a"), retry: (max_attempts: 2), compensate: Shell("undo a")),
            "b": (run: Shell("touch never-b")),
            "c": (after: ["a", "b"], run: Shell("touch never-c")),
        })"#,
    );
    let (v, out) = run_step(
        &wf,
        &[],
        "ok b\nfail a disk full\nok b\ntick\nok a {\"n\": 1}\nback 2\nforward 2\nok nosuch\nfail c\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v.len(), 9);
    // One slot: `a` runs and `b` waits, so answering for `b` is an error that changes nothing.
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap()
            .contains("`b` is not running anything")
    );
    assert_eq!(
        v[0]["would_run"].as_array().unwrap().len(),
        1,
        "max_parallel 1"
    );
    assert_eq!(v[0]["would_run"][0]["op"], "a");
    assert_eq!(v[0]["would_run"][0]["work"], "touch never-a");
    // A retryable failure with an attempt left: `a` waits out its backoff on the virtual
    // clock while `b`, which was waiting for the slot, runs.
    assert!(v[1]["changes"].as_array().unwrap().iter().any(|c| {
        c.as_str()
            .unwrap()
            .contains("Retrying (execute: disk full)")
    }));
    assert_eq!(v[1]["would_run"][0]["op"], "b");
    assert_eq!(v[1]["timers"][0]["op"], "a");
    assert_eq!(v[1]["timers"][0]["kind"], "retry");
    assert_eq!(v[2]["would_run"].as_array().unwrap().len(), 0);
    assert_eq!(v[2]["done"], false, "a timer is pending");
    // `tick` goes to the retry: attempt 2 of `a`.
    assert_eq!(v[3]["now_ms"], v[1]["timers"][0]["due_ms"]);
    assert_eq!(v[3]["would_run"][0]["op"], "a");
    assert_eq!(v[3]["would_run"][0]["attempt"], 2);
    assert_eq!(op_state(&v[4], "a"), "Succeeded");
    assert_eq!(v[4]["would_run"][0]["op"], "c");
    // back 2 returns to the moment before the tick; forward 2 comes back exactly.
    assert_eq!(v[5]["step"], 2);
    assert_eq!(op_state(&v[5], "a"), "Retrying");
    assert_eq!(v[6]["operations"], v[4]["operations"]);
    assert_eq!(v[6]["would_run"], v[4]["would_run"]);
    assert!(
        v[7]["error"]
            .as_str()
            .unwrap()
            .contains("no operation `nosuch`")
    );
    // Nothing was executed: the commands' files do not exist.
    for f in ["never-a", "never-b", "never-c"] {
        assert!(!wf.parent().unwrap().join(f).exists());
    }
    // `c` fails (one attempt), so the root fails and `a`, which succeeded, is compensated:
    // its compensation would run.
    assert_eq!(op_state(&v[8], "sim"), "Failed");
    assert_eq!(op_state(&v[8], "a"), "Compensating");
    assert_eq!(v[8]["would_run"][0]["phase"], "compensate");
    assert_eq!(v[8]["would_run"][0]["op"], "a");
}

#[test]
fn a_simulated_phase_times_out_on_the_virtual_clock() {
    let wf = temp(
        "simtimeout.ron",
        r#"Workflow(id: "t", tasks: { "slow": (run: Shell("sleep 100"), timeout: "1m") })"#,
    );
    let (v, _) = run_step(&wf, &[], "tick 30s\ntick\ntick\n");
    assert_eq!(op_state(&v[0], "slow"), "Executing");
    assert_eq!(v[0]["timers"][0]["kind"], "timeout");
    assert_eq!(v[1]["now_ms"], 60000);
    assert_eq!(op_state(&v[1], "slow"), "Failed");
    assert!(
        v[1]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("timed out after 1m"))
    );
    assert!(
        v[2]["error"]
            .as_str()
            .unwrap()
            .contains("no timer is pending")
    );
}

#[test]
fn tree_with_a_path_shows_every_state_under_it_with_the_active_ones_marked() {
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("machines/order.ron");
    let out = step_output(&order, &[], &[], "tree cart\ntree shipped\ntree shiped\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("* cart"), "{text}");
    assert!(
        text.contains("  paid.shipped"),
        "a unique name finds its path: {text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no state `shiped`; did you mean"), "{err}");
}

#[test]
fn a_file_that_cannot_be_read_is_a_usage_error() {
    let missing =
        std::env::temp_dir().join(format!("orca-step-missing-{}.ron", std::process::id()));
    let o = step_output(&missing, &["--json"], &[], "");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot read") && err.contains("orca-step-missing"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}
