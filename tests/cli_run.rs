//! `orca run` as cli.md describes it: events, virtual time, JSON, exit codes, invokes.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn orca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .output()
        .expect("orca runs")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orca-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_readme_example_reaches_its_final_state() {
    let order = root().join("machines/order.ron");
    let out = orca(&[
        "run",
        order.to_str().unwrap(),
        "--event",
        "CHECKOUT",
        "--event",
        r#"PAY={"amount": 22}"#,
        "--event",
        "PACKED",
        "--event",
        "DELIVERED",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_of(&out);
    assert_eq!(v["configuration"], json!(["completed"]));
    assert_eq!(v["done"], true);
    assert_eq!(
        v["output"],
        json!({"paid": 22, "tier": "silver", "total": 22})
    );
}

#[test]
fn a_bounded_virtual_run_succeeds_and_prints_the_configuration() {
    let order = root().join("machines/order.ron");
    let out = orca(&[
        "run",
        order.to_str().unwrap(),
        "--event",
        "CHECKOUT",
        "--virtual-time",
        "--until",
        "1m",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("configuration:\n  awaiting_payment\n"),
        "{text}"
    );
    assert!(text.contains("idle") || text.contains("stopped"), "{text}");
}

#[test]
fn virtual_time_fires_delayed_events_in_order() {
    let m = temp(
        "timed.ron",
        r#"Machine(context: {"log": []}, states: {
        "a": (entry: [Send(event: "two", delay: "2s"), Send(event: "one", delay: "1s")],
              on: { "one": (actions: [Assign("log", "log + ['one']")]),
                    "two": (target: "end", actions: [Assign("log", "log + ['two']")]) }),
        "end": (kind: Final, output: "log"),
    })"#,
    );
    let out = orca(&["run", m.to_str().unwrap(), "--virtual-time", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_of(&out)["output"], json!(["one", "two"]));
}

#[test]
fn events_file_with_times() {
    let m = root().join("machines/traffic_light.ron");
    let events = temp(
        "ev.txt",
        "# a pedestrian at 5 s\n@5s BUTTON\n\n@6s POWER_LOST\n@10s POWER_RESTORED\n",
    );
    let out = orca(&[
        "run",
        m.to_str().unwrap(),
        "--virtual-time",
        "--events",
        events.to_str().unwrap(),
        "--until",
        "12s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_of(&out);
    // The outage interrupted yellow with a waiting pedestrian; history restores both.
    assert_eq!(
        v["configuration"],
        json!([
            "operating",
            "operating.light",
            "operating.light.yellow",
            "operating.pedestrian",
            "operating.pedestrian.waiting"
        ])
    );
}

#[test]
fn a_runaway_machine_fails_with_exit_1() {
    let m = temp(
        "loop.ron",
        r#"Machine(states: { "a": (always: ["b"]), "b": (always: ["a"]) })"#,
    );
    let out = orca(&["run", m.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert!(v["error"].as_str().unwrap().contains("microsteps"), "{v}");
}

#[test]
fn bad_input_is_exit_2() {
    let bad = temp(
        "bad.ron",
        r#"Machine(states: { "a": (on: { "X": "nowhere" }) })"#,
    );
    assert_eq!(orca(&["run", bad.to_str().unwrap()]).status.code(), Some(2));
    let good = root().join("machines/order.ron");
    assert_eq!(
        orca(&["run", good.to_str().unwrap(), "--event", "PAY={not json"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        orca(&["run", good.to_str().unwrap(), "--event", ""])
            .status
            .code(),
        Some(2)
    );
    let ev = temp("bad-events.txt", "@soon X\n");
    assert_eq!(
        orca(&[
            "run",
            good.to_str().unwrap(),
            "--events",
            ev.to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn invoked_machine_and_command_report_back() {
    let parent = root().join("tests/fixtures/parent.ron");
    let out = orca(&["run", parent.to_str().unwrap(), "--virtual-time", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert_eq!(v["configuration"], json!(["finished"]), "{v}");
    assert_eq!(
        v["output"]["ticks"], 3,
        "events from the child reach the parent"
    );
    assert_eq!(
        v["output"]["result"],
        json!({"counted": 3}),
        "done.invoke carries the child's output"
    );
    assert_eq!(
        v["output"]["shell"],
        json!({"ok": true}),
        "a command's stdout is parsed as JSON"
    );
}

#[test]
fn a_command_that_cannot_start_is_error_invoke() {
    let m = temp(
        "nocmd.ron",
        r#"Machine(states: {
        "run": (invoke: [(id: "x", src: Command(["/nonexistent/program"]))],
                on: { "error.invoke.x": "failed", "done.invoke.x": "ok" }),
        "failed": (kind: Final, output: "'failed'"), "ok": (kind: Final),
    })"#,
    );
    let out = orca(&["run", m.to_str().unwrap(), "--json"]);
    assert_eq!(json_of(&out)["output"], "failed");
}

#[test]
fn leaving_a_state_kills_its_command() {
    let marker = std::env::temp_dir().join(format!("orca-killed-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let m = temp(
        "kill.ron",
        &format!(
            r#"Machine(states: {{
        "busy": (invoke: [(id: "slow", src: Shell("sleep 3; touch {}"))], after: {{ "200ms": "done" }}),
        "done": (kind: Final),
    }})"#,
            marker.display()
        ),
    );
    let started = std::time::Instant::now();
    let out = orca(&["run", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the run does not wait for the cancelled command"
    );
    std::thread::sleep(std::time::Duration::from_millis(3500));
    assert!(
        !marker.exists(),
        "the cancelled command's process group was killed"
    );
}
