//! `orca verify`, `orca test-paths` and `orca step --script` as users call them (issue #17):
//! planted bugs are found and their counterexamples replay to the violation, correct
//! versions prove clean, bounds say so with exit 3, bad properties are load errors.

use serde_json::Value;
#[path = "common/scratch.rs"]
mod scratch;

use scratch::ScratchDir;
use std::path::Path;
use std::process::{Command, Output};

fn orca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("orca runs")
}

fn dir(name: &str) -> ScratchDir {
    ScratchDir::new("orca-verify", name)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// `orca verify --json FILE` with counterexamples in `dir`: the exit code and the report.
fn verify(file: &str, dir: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let cex = dir.join("cex");
    let mut args = vec![
        "verify",
        "--json",
        "--counterexamples",
        cex.to_str().unwrap(),
        file,
    ];
    args.extend_from_slice(extra);
    let out = orca(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value =
        serde_json::from_str(text.lines().next().unwrap_or("null")).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code(), report)
}

/// The state a journal ends in, as `orca replay --json` prints it.
fn replayed_end(journal: &str) -> Value {
    let out = orca(&["replay", journal, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

fn finding<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {report}"))
}

fn configuration(state: &Value) -> Vec<String> {
    state["configuration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A door whose OPEN forgets to check the lock.
const DOOR: &str = r#"Machine(
    id: "door",
    context: { "locked": false },
    states: {
        "closed": (on: {
            "OPEN": (target: "opened" GUARD),
            "LOCK": (actions: [Assign("locked", "true")]),
            "UNLOCK": (actions: [Assign("locked", "false")]),
        }),
        "opened": (on: { "CLOSE": "closed" }),
    },
    invariants: { "a locked door stays shut": "!(In('opened') && locked)" },
)"#;

#[test]
fn a_missing_guard_is_found_and_its_counterexample_replays_to_the_violation() {
    let d = dir("guard");
    let buggy = write(&d, "door.ron", &DOOR.replace(" GUARD", ""));
    let (code, report) = verify(&buggy, &d, &[]);
    assert_eq!(code, Some(1), "{report}");
    let f = finding(&report, "invariant");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["path"], serde_json::json!(["LOCK", "OPEN"]));
    let end = replayed_end(f["journal"].as_str().unwrap());
    assert_eq!(configuration(&end), ["opened"]);
    assert_eq!(end["context"]["locked"], true);
    // The journal is the machine's own: it verifies against the file.
    let out = orca(&[
        "replay",
        f["journal"].as_str().unwrap(),
        "--verify",
        "--machine",
        &buggy,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let fixed = write(
        &d,
        "door-fixed.ron",
        &DOOR.replace(" GUARD", ", guard: \"!locked\""),
    );
    let (code, report) = verify(&fixed, &d, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["findings"], serde_json::json!([]));
    assert_eq!(
        report["states"], 3,
        "closed, locked or not; opened only unlocked"
    );
}

/// A vault whose FORCE goes to the wrong state.
const VAULT: &str = r#"Machine(
    id: "vault",
    context: { "code_ok": false },
    states: {
        "locked": (on: {
            "CODE": (target: "unlocked", guard: "event.data.code == 4711", actions: [Assign("code_ok", "true")]),
            "FORCE": "TARGET",
        }),
        "unlocked": (on: { "OPEN": "open", "LOCK": (target: "locked", actions: [Assign("code_ok", "false")]) }),
        "open": (on: { "CLOSE": "unlocked" }),
        "alarm": (on: { "RESET": "locked" }),
    },
    invariants: { "open only with the code": "!In('open') || code_ok" },
    never_reach: [],
)"#;

#[test]
fn a_wrong_target_is_found_with_payloads_from_the_guards() {
    let d = dir("target");
    let buggy = write(&d, "vault.ron", &VAULT.replace("TARGET", "open"));
    let (code, report) = verify(&buggy, &d, &[]);
    assert_eq!(code, Some(1), "{report}");
    let f = finding(&report, "invariant");
    assert_eq!(f["path"], serde_json::json!(["FORCE"]));
    let end = replayed_end(f["journal"].as_str().unwrap());
    assert_eq!(configuration(&end), ["open"]);
    assert_eq!(end["context"]["code_ok"], false);

    let fixed = write(&d, "vault-fixed.ron", &VAULT.replace("TARGET", "alarm"));
    let (code, report) = verify(&fixed, &d, &["--deny-findings"]);
    assert_eq!(code, Some(0), "{report}");
    // The right code came from the guard's literal: `open` was reached the honest way.
    assert_eq!(report["findings"], serde_json::json!([]));
}

#[test]
fn never_reach_and_always_can_reach_are_checked() {
    let d = dir("reach");
    // Yellow goes back to green: red is never reached again.
    let light = r#"Machine(
        id: "light",
        states: {
            "green": (after: { "30s": "yellow" }),
            "yellow": (after: { "3s": "YELLOW_TO" }),
            "red": (after: { "20s": "green" }),
            "broken": (),
        },
        on: { "SMASH": "broken" },
        never_reach: ["NEVER"],
        always_can_reach: ["red"],
    )"#;
    let buggy = write(
        &d,
        "light.ron",
        &light
            .replace("YELLOW_TO", "green")
            .replace("NEVER", "yellow"),
    );
    let (code, report) = verify(&buggy, &d, &[]);
    assert_eq!(code, Some(1), "{report}");
    let never = finding(&report, "never_reach");
    assert_eq!(never["path"], serde_json::json!(["tick"]));
    let end = replayed_end(never["journal"].as_str().unwrap());
    assert_eq!(configuration(&end), ["yellow"]);
    let lost = finding(&report, "always_can_reach");
    assert_eq!(
        lost["path"],
        serde_json::json!([]),
        "red is lost from the start"
    );
    assert!(lost["message"].as_str().unwrap().contains("`red`"));

    // Fixed, the broken light is still a trap for `red`: SMASH is the shortest way there.
    let fixed = write(
        &d,
        "light-fixed.ron",
        &light.replace("YELLOW_TO", "red").replace("NEVER", "broken"),
    );
    let (code, report) = verify(&fixed, &d, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        finding(&report, "never_reach")["path"],
        serde_json::json!(["SMASH"])
    );
    assert_eq!(
        finding(&report, "always_can_reach")["path"],
        serde_json::json!(["SMASH"])
    );
}

/// A trip booked as a statechart saga; on a failure the bookings are undone in COMPENSATION
/// order.
const SAGA: &str = r#"Machine(
    id: "trip",
    context: { "flight": "none", "hotel": "none" },
    states: {
        "booking_flight": (on: {
            "OK": (target: "booking_hotel", actions: [Assign("flight", "'booked'")]),
            "FAIL": "failed",
        }),
        "booking_hotel": (on: {
            "OK": (target: "booked", actions: [Assign("hotel", "'booked'")]),
            "FAIL": "compensating",
        }),
        "booked": (on: { "CANCEL_TRIP": (target: "compensating") }),
        "compensating": (
            initial: "FIRST",
            states: {
                "undo_hotel": (
                    entry: [If(guard: "hotel == 'booked'", then: [Assign("hotel", "'cancelled'")])],
                    on: { "DONE": "NEXT_AFTER_HOTEL" },
                ),
                "undo_flight": (
                    entry: [If(guard: "flight == 'booked'", then: [Assign("flight", "'cancelled'")])],
                    on: { "DONE": "NEXT_AFTER_FLIGHT" },
                ),
                "end": (kind: Final),
            },
            on: { "done.state.compensating": "failed" },
        ),
        "failed": (kind: Final),
    },
    invariants: {
        "the flight is cancelled only after the hotel": "!(flight == 'cancelled' && hotel == 'booked')",
    },
)"#;

#[test]
fn a_compensation_in_the_wrong_order_is_found() {
    let d = dir("saga");
    let buggy = write(
        &d,
        "trip.ron",
        &SAGA
            .replace("FIRST", "undo_flight")
            .replace("NEXT_AFTER_FLIGHT", "undo_hotel")
            .replace("NEXT_AFTER_HOTEL", "end"),
    );
    let (code, report) = verify(&buggy, &d, &[]);
    assert_eq!(code, Some(1), "{report}");
    let f = finding(&report, "invariant");
    assert_eq!(f["path"], serde_json::json!(["OK", "OK", "CANCEL_TRIP"]));
    let end = replayed_end(f["journal"].as_str().unwrap());
    assert_eq!(end["context"]["flight"], "cancelled");
    assert_eq!(end["context"]["hotel"], "booked");

    let fixed = write(
        &d,
        "trip-fixed.ron",
        &SAGA
            .replace("FIRST", "undo_hotel")
            .replace("NEXT_AFTER_HOTEL", "undo_flight")
            .replace("NEXT_AFTER_FLIGHT", "end"),
    );
    let (code, report) = verify(&fixed, &d, &["--deny-findings"]);
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn a_bound_says_so_with_exit_3_and_names_the_growing_value() {
    let d = dir("bound");
    let counter = write(
        &d,
        "counter.ron",
        r#"Machine(context: { "n": 0 }, states: {
            "a": (on: { "T": (target: "b", guard: "n >= 0", actions: [Assign("n", "n + 1")]) }),
            "b": (on: { "T": "a" }),
        })"#,
    );
    let (code, report) = verify(&counter, &d, &["--max-states", "300"]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(report["complete"], false);
    assert_eq!(report["states"], 300, "the bound is exact");
    assert!(report["frontier"].as_u64().unwrap() > 0);
    let g = finding(&report, "unbounded_growth");
    assert!(g["message"].as_str().unwrap().contains("`n` grows"));
    // Warnings fail only when denied; a bound still is no proof.
    let (code, _) = verify(&counter, &d, &["--max-states", "300", "--deny-findings"]);
    assert_eq!(code, Some(1));
    let (code, report) = verify(&counter, &d, &["--depth", "4"]);
    assert_eq!(code, Some(3));
    assert_eq!(report["depth"], 4);
    // A depth bound past the last new state proves as much as no bound.
    let small = write(
        &d,
        "small.ron",
        r#"Machine(states: { "a": (on: { "GO": "b" }), "b": (on: { "GO": "a" }) })"#,
    );
    let (code, report) = verify(&small, &d, &["--depth", "1"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["complete"], true);
    let (code, _) = verify(&small, &d, &["--depth", "0"]);
    assert_eq!(code, Some(3));

    let text = orca(&[
        "verify",
        &counter,
        "--max-states",
        "300",
        "--counterexamples",
        d.join("c").to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(out.contains("BOUNDED"), "{out}");
}

#[test]
fn values_nothing_depends_on_do_not_multiply_states() {
    let d = dir("slice");
    let m = write(
        &d,
        "log.ron",
        r#"Machine(context: { "seen": 0 }, states: {
            "a": (on: { "T": (target: "b", actions: [Assign("seen", "seen + 1"), Log("seen")]) }),
            "b": (on: { "T": "a" }),
        })"#,
    );
    let (code, report) = verify(&m, &d, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["states"], 2);
    assert_eq!(report["ignored"], serde_json::json!(["seen"]));
    let (code, report) = verify(&m, &d, &["--exact", "--max-states", "100"]);
    assert_eq!(code, Some(3), "{report}");
}

#[test]
fn warnings_name_never_taken_transitions_errors_and_deadlocks() {
    let d = dir("warn");
    let m = write(
        &d,
        "w.ron",
        r#"Machine(context: { "x": 1 }, states: {
            "a": (on: {
                "GO": (target: "stuck", actions: [Assign("x", "x / 0")]),
                "NEVER": (target: "a", guard: "x > 5"),
            }),
            "stuck": (),
        })"#,
    );
    let (code, report) = verify(&m, &d, &[]);
    assert_eq!(code, Some(0), "warnings alone pass: {report}");
    assert_eq!(finding(&report, "never_taken")["severity"], "warning");
    assert!(
        finding(&report, "never_taken")["message"]
            .as_str()
            .unwrap()
            .contains("a → a")
    );
    assert_eq!(
        finding(&report, "error_execution")["path"],
        serde_json::json!(["GO"])
    );
    assert_eq!(
        finding(&report, "deadlock")["path"],
        serde_json::json!(["GO"])
    );
    let (code, _) = verify(&m, &d, &["--deny-findings"]);
    assert_eq!(code, Some(1));
}

#[test]
fn bad_properties_are_load_errors_with_positions() {
    let d = dir("bad");
    let m = write(
        &d,
        "bad.ron",
        "Machine(states: { \"a\": () },\n    invariants: { \"x\": \"a +\" },\n    never_reach: [\"nowhere\"],\n)",
    );
    let out = orca(&["verify", &m]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.ron:2:"), "{err}");
    assert!(err.contains("invalid expression"), "{err}");
    assert!(err.contains("bad.ron:3:"), "{err}");
    assert!(
        err.contains("`nowhere` in `never_reach` names no state"),
        "{err}"
    );
    // `orca check` reports them the same way.
    assert_eq!(orca(&["check", &m]).status.code(), Some(1));
    assert_eq!(
        orca(&["verify", "/nonexistent/x.ron"]).status.code(),
        Some(2)
    );
}

#[test]
fn shipped_machines_and_workflows_verify_clean() {
    let d = dir("shipped");
    let mut files: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/machines"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ron"))
            .map(|p| p.display().to_string())
            .collect();
    files.sort();
    for f in &files {
        let (code, report) = verify(f, &d, &["--deny-findings"]);
        assert_eq!(code, Some(0), "{f}: {report}");
        assert_eq!(report["complete"], true, "{f}");
    }
}

#[test]
fn workflows_are_explored_over_every_outcome() {
    let d = dir("wf");
    let (code, report) = verify("machines/saga.ron", &d, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report["ends"]["succeeded"].as_u64().unwrap() >= 1);
    assert!(report["ends"]["failed"].as_u64().unwrap() >= 1);
    // A bound on a workflow says so too.
    let (code, report) = verify("machines/release.ron", &d, &["--max-states", "20"]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(report["complete"], false);
}

#[test]
fn test_paths_reach_every_state_and_take_every_transition() {
    let d = dir("paths");
    let out = orca(&["test-paths", "machines/media_player.ron", "--json"]);
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    let states: Vec<&str> = list
        .iter()
        .filter(|p| p["kind"] == "state")
        .map(|p| p["target"].as_str().unwrap())
        .collect();
    for s in [
        "player.stopped",
        "player.playing.chorus",
        "player.paused",
        "settings.equalizer",
    ] {
        assert!(states.contains(&s), "{s} in {states:?}");
    }
    let menu = list.iter().find(|p| p["target"] == "settings").unwrap();
    assert_eq!(menu["steps"], serde_json::json!(["send MENU"]));

    let out = orca(&[
        "test-paths",
        "machines/media_player.ron",
        "--check",
        "--output",
        d.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("{} passed, 0 failed", list.len())),
        "{text}"
    );
    // The written scripts run in `orca step --script`.
    let chorus = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .starts_with("# state player.playing.chorus")
        })
        .unwrap();
    let out = orca(&[
        "step",
        "machines/media_player.ron",
        "--json",
        "--script",
        chorus.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let last: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(
        configuration(&last).contains(&"player.playing.chorus".to_string()),
        "{last}"
    );
}

#[test]
fn typos_in_verify_are_warnings() {
    let d = dir("typo");
    let m = write(
        &d,
        "t.ron",
        r#"Machine(context: { "n": 0 }, states: { "a": (on: { "PAY": "b" }), "b": () },
            verify: (events: { "PAYY": [1] }, context: [{ "m": 1 }]))"#,
    );
    let out = orca(&["check", &m]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`verify.events` names `PAYY`, which no transition handles"),
        "{err}"
    );
    assert!(err.contains("`verify.context` sets `m`"), "{err}");
    assert_eq!(
        orca(&["check", "--deny-warnings", &m]).status.code(),
        Some(1)
    );
}

#[test]
fn a_script_with_a_failing_command_fails() {
    let d = dir("script");
    let ok = write(&d, "ok.steps", "# a comment\nsend PLAY\n\nsend PAUSE\n");
    let bad = write(&d, "bad.steps", "send PLAY\nset volume {\n");
    let run = |script: &str| {
        orca(&[
            "step",
            "machines/media_player.ron",
            "--json",
            "--script",
            script,
        ])
        .status
        .code()
    };
    assert_eq!(run(&ok), Some(0));
    assert_eq!(run(&bad), Some(1));
}

#[test]
fn test_paths_bring_every_operation_to_every_state_it_can_reach() {
    let out = orca(&["test-paths", "machines/saga.ron", "--json"]);
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    let find = |op: &str, state: &str| {
        list.iter()
            .find(|p| p["target"] == op && p["state"] == state)
            .unwrap_or_else(|| panic!("no path for {op} {state}"))
    };
    assert_eq!(
        find("flight", "Failed")["steps"],
        serde_json::json!(["fail flight"])
    );
    assert_eq!(
        find("flight", "Compensating")["steps"],
        serde_json::json!(["ok flight", "tick"]),
        "hotel and car time out together: the run fails and rolls the flight back (a failed hotel alone waits for the car, on_child_failure: Continue)"
    );
    let out = orca(&["test-paths", "machines/saga.ron", "--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("{} passed, 0 failed", list.len())),
        "{text}"
    );
}

#[test]
fn a_heartbeat_is_not_a_deadlock() {
    let d = dir("heartbeat");
    let m = write(
        &d,
        "h.ron",
        r#"Machine(states: { "beating": (after: { "5s": "beating" }) })"#,
    );
    let (code, report) = verify(&m, &d, &["--deny-findings"]);
    assert_eq!(code, Some(0), "{report}");
    let stuck = write(
        &d,
        "s.ron",
        r#"Machine(states: { "a": (on: { "GO": "b" }), "b": () })"#,
    );
    let (_, report) = verify(&stuck, &d, &[]);
    assert_eq!(
        finding(&report, "deadlock")["path"],
        serde_json::json!(["GO"])
    );
}
