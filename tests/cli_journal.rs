//! Journals from `orca run --journal`, read by `orca log` and `orca replay` (issue #4), and a
//! crash test: a journaling run SIGKILLed at random moments loses no record it reported as
//! written. `ORCA_CRASH_RUNS` raises the number of kills (default 50).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn orca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .output()
        .expect("orca runs")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("orca-cli-journal-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fresh(name: &str) -> PathBuf {
    let p = dir().join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the order example with a journal and returns its path.
fn order_journal(name: &str) -> PathBuf {
    let j = fresh(name);
    let order = root().join("machines/order.ron");
    let out = orca(&[
        "run",
        order.to_str().unwrap(),
        "--virtual-time",
        "--event",
        "CHECKOUT",
        "--event",
        r#"PAY={"amount": 22}"#,
        "--event",
        "PACKED",
        "--event",
        "DELIVERED",
        "--journal",
        j.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    j
}

#[test]
fn a_journal_is_json_lines_with_header_steps_and_end() {
    let j = order_journal("lines.jsonl");
    let content = std::fs::read_to_string(&j).unwrap();
    let lines: Vec<Value> = content
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "{content}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64);
        assert!(l["crc"].as_str().unwrap().len() == 8);
    }
    let h = &lines[0]["header"];
    assert_eq!(h["format"], 1);
    assert_eq!(h["kind"], "machine");
    assert_eq!(
        h["source"].as_str().unwrap(),
        std::fs::read_to_string(root().join("machines/order.ron")).unwrap()
    );
    assert_eq!(h["hash"].as_str().unwrap().len(), 64);
    assert_eq!(
        lines[1]["step"]["input"],
        serde_json::json!({ "start": {} })
    );
    assert_eq!(lines[3]["step"]["input"]["event"]["name"], "PAY");
    assert_eq!(lines[3]["step"]["input"]["event"]["data"]["amount"], 22);
    assert_eq!(
        lines[3]["step"]["out"][0]["config"],
        serde_json::json!(["paid", "paid.packing"])
    );
    assert_eq!(lines[3]["step"]["out"][0]["context"]["paid"], 22);
    assert_eq!(lines[6]["end"]["ending"], "done");
}

#[test]
fn log_prints_the_timeline_readably() {
    let j = order_journal("log.jsonl");
    let out = orca(&["log", j.to_str().unwrap()]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(s.contains("journal of "), "{s}");
    assert!(s.contains("PAY {\"amount\":22}"), "{s}");
    assert!(s.contains("PAY: awaiting_payment → paid"), "{s}");
    assert!(
        s.contains("sent after.15m.awaiting_payment to #self, due at 15m"),
        "{s}"
    );
    // A transition first, then what its content did.
    let taken = s
        .find("CHECKOUT: cart → awaiting_payment")
        .expect("CHECKOUT taken");
    let sent = s.find("sent after.15m.awaiting_payment").unwrap();
    assert!(taken < sent, "{s}");
    assert!(s.contains("end: done"), "{s}");
    let out = orca(&["log", j.to_str().unwrap(), "--json"]);
    let objects: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 7);
    assert_eq!(objects[6]["end"]["ending"], "done");
}

#[test]
fn replay_rebuilds_the_timeline_and_any_moment() {
    let j = order_journal("replay.jsonl");
    let out = orca(&["replay", j.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("PACKED                   → paid.shipped   [paid.packing → paid.shipped]"),
        "{s}"
    );
    let out = orca(&["replay", j.to_str().unwrap(), "--to", "2", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["configuration"], serde_json::json!(["awaiting_payment"]));
    assert_eq!(v["seq"], 2);
    // The pending payment timeout is part of the rebuilt moment.
    assert_eq!(v["timers"][0]["due"], 900_000);
    assert_eq!(v["timers"][0]["event"], "after.15m.awaiting_payment");
    let out = orca(&["replay", j.to_str().unwrap(), "--to", "5", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["done"], true);
    assert_eq!(v["output"]["paid"], 22);
    let out = orca(&["replay", j.to_str().unwrap(), "--to", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the journal's last record is 6"));
    let out = orca(&["replay", j.to_str().unwrap(), "--json"]);
    let steps: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 6);
    assert_eq!(steps[5]["end"]["ending"], "done");
    assert_eq!(steps[4]["configuration"], serde_json::json!(["completed"]));
    assert_eq!(
        steps[4]["taken"],
        serde_json::json!(["paid.shipped → completed"])
    );
}

#[test]
fn verify_passes_on_the_same_machine_and_names_the_first_divergence_on_a_changed_one() {
    let j = order_journal("verify.jsonl");
    let out = orca(&["replay", j.to_str().unwrap(), "--verify"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("5 steps replayed"));
    // The same file, with the packing step now going straight to delivery.
    let original = std::fs::read_to_string(root().join("machines/order.ron")).unwrap();
    let changed = original.replace(r#""PACKED": "shipped""#, r##""PACKED": "#completed""##);
    assert_ne!(changed, original, "the edit applies");
    let changed_path = dir().join("order-changed.ron");
    std::fs::write(&changed_path, changed).unwrap();
    let out = orca(&[
        "replay",
        j.to_str().unwrap(),
        "--verify",
        "--machine",
        changed_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let s = text(&out.stdout);
    assert!(s.contains("divergence at record 4 (PACKED)"), "{s}");
    assert!(
        s.contains("recorded configuration: [paid, paid.shipped]"),
        "{s}"
    );
    assert!(s.contains("replayed configuration: [completed]"), "{s}");
    let out = orca(&[
        "replay",
        j.to_str().unwrap(),
        "--verify",
        "--json",
        "--machine",
        changed_path.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["divergence"]["seq"], 4);
    assert_eq!(v["divergence"]["expected"]["config"][1], "paid.shipped");
}

#[test]
fn invoked_machines_and_commands_replay_without_running_anything() {
    let j = fresh("invokes.jsonl");
    let parent = root().join("tests/fixtures/parent.ron");
    let out = orca(&[
        "run",
        parent.to_str().unwrap(),
        "--virtual-time",
        "--journal",
        j.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&orca(&["log", j.to_str().unwrap()]).stdout);
    assert!(log.contains("loaded "), "{log}");
    assert!(log.contains("child.ron"), "{log}");
    assert!(log.contains("counter"), "{log}");
    assert!(log.contains("sh finished"), "{log}");
    let out = orca(&["replay", j.to_str().unwrap(), "--verify"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    // The replay takes the command's result from the journal: the output is the same.
    let last = text(&std::fs::read(&j).unwrap()).lines().count() - 2;
    let out = orca(&[
        "replay",
        j.to_str().unwrap(),
        "--to",
        &last.to_string(),
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["output"]["shell"]["ok"], true, "{v}");
    assert_eq!(v["output"]["result"]["counted"], 3, "{v}");
}

#[test]
fn a_damaged_journal_is_a_clear_error_and_an_existing_one_is_not_overwritten() {
    let j = order_journal("damaged.jsonl");
    let content = std::fs::read_to_string(&j).unwrap();
    let mut lines: Vec<&str> = content.lines().collect();
    let third = lines[2].replacen("CHECKOUT", "CHECKOUX", 1);
    lines[2] = &third;
    let damaged = lines.join("\n") + "\n";
    std::fs::write(&j, damaged).unwrap();
    for cmd in ["replay", "log"] {
        let out = orca(&[cmd, j.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let e = text(&out.stderr);
        assert!(e.contains("line 3 (record 2): checksum mismatch"), "{e}");
    }
    // A torn tail is a warning, and the rest is readable.
    let torn = &content[..content.len() - 10];
    std::fs::write(&j, torn).unwrap();
    let out = orca(&["replay", j.to_str().unwrap(), "--verify"]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("warning: line 7: the last record is incomplete"));
    let order = root().join("machines/order.ron");
    let out = orca(&[
        "run",
        order.to_str().unwrap(),
        "--journal",
        j.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&j).unwrap(), torn);
}

/// A machine that ticks every millisecond of real time, forever.
const TICKER: &str = r#"Machine(
    context: { "n": 0 },
    states: {
        "tick": (after: { "1ms": (target: "tock", actions: [Assign("n", "n + 1")]) }),
        "tock": (after: { "1ms": (target: "tick", actions: [Assign("n", "n + 1")]) }),
    },
)"#;

fn ticker() -> PathBuf {
    let p = dir().join("ticker.ron");
    std::fs::write(&p, TICKER).unwrap();
    p
}

#[test]
fn log_follow_tails_a_journal_until_the_run_ends() {
    let j = fresh("follow.jsonl");
    let stopper = dir().join("stopper.ron");
    std::fs::write(
        &stopper,
        r#"Machine(
            context: { "n": 0 },
            states: {
                "tick": (after: { "20ms": [
                    (target: "done", guard: "n >= 10"),
                    (target: "tick", actions: [Assign("n", "n + 1")]),
                ] }),
                "done": (kind: Final),
            },
        )"#,
    )
    .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(["run", stopper.to_str().unwrap(), "--journal"])
        .arg(&j)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !j.exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = orca(&["log", "--follow", j.to_str().unwrap()]);
    assert!(run.wait().unwrap().success());
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(s.contains("tick → done"), "{s}");
    assert!(s.trim_end().ends_with("end: done"), "{s}");
}

/// A tiny deterministic generator for kill times (no extra crate for this).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_record_reported_as_written() {
    let runs: u64 = std::env::var("ORCA_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let machine = ticker();
    let mut total_acked = 0;
    for i in 0..runs {
        let j = fresh(&format!("crash-{i}.jsonl"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_orca"))
            .args(["--log-format", "json", "run"])
            .arg(&machine)
            .args(["--sync", "always", "--journal"])
            .arg(&j)
            .env("RUST_LOG", "orca::journal=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked: Option<u64> = None;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "journal synced"
                {
                    acked = acked.max(v["fields"]["seq"].as_u64());
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(5 + rng.next(120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        total_acked += acked.unwrap_or(0);
        use orca::journal::JournalError;
        let journal = match orca::journal::Journal::read_file(&j) {
            Ok(journal) => journal,
            // Killed before the header was durable: nothing was promised.
            Err(JournalError::Io { .. } | JournalError::Empty | JournalError::TornHeader)
                if acked.is_none() =>
            {
                continue;
            }
            Err(e) => panic!("run {i} (seed {seed}): {e}"),
        };
        let read = journal.records.len() as u64;
        let acked = acked.unwrap_or(0);
        assert!(
            read >= acked,
            "run {i} (seed {seed}): record {acked} was reported written, only {read} read back"
        );
        // What survived replays exactly.
        let mut runner = orca::journal::replay::runner_for(&journal.header, None).unwrap();
        let verified = orca::journal::replay::verify(&journal, &mut runner).unwrap();
        assert!(verified.is_ok(), "run {i} (seed {seed}): {verified:?}");
        let _ = std::fs::remove_file(&j);
    }
    assert!(total_acked > 0, "no run reported any record written");
}
