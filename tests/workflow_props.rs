//! Properties of the workflow runtime over generated dependency graphs with generated
//! failures, run for real (`sh` tasks that log their start and end):
//! - no operation starts before its dependencies succeeded (or failed while optional);
//! - the global `max_parallel` is never exceeded;
//! - compensation runs exactly for the succeeded operations, in reverse completion order;
//! - resuming from a journal cut at any record never reruns a journaled success and ends in
//!   the same final states as the uninterrupted run;
//! - SIGKILL at random moments, then `orca resume`, until done: no journaled phase ran twice.
//!
//! `PROPTEST_CASES` (default 24) and `ORCA_CRASH_RUNS` (default 20) scale them.

mod common;
use common::scratch::ScratchDir;
use common::workflows::{orca, scratch, spawn_orca};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

#[derive(Debug, Clone)]
struct Task {
    after: Vec<usize>,
    fails: bool,
    optional: bool,
    compensable: bool,
}

#[derive(Debug, Clone)]
struct Dag {
    tasks: Vec<Task>,
    bound: u32,
    fail_fast: bool,
}

fn dag() -> impl Strategy<Value = Dag> {
    (2usize..8, 1u32..4, any::<bool>())
        .prop_flat_map(|(n, bound, fail_fast)| {
            let tasks = (0..n)
                .map(|i| {
                    (
                        prop::collection::btree_set(0..i.max(1), 0..=i.min(2)),
                        prop::bool::weighted(0.2),
                        prop::bool::weighted(0.2),
                        any::<bool>(),
                    )
                        .prop_map(
                            move |(after, fails, optional, compensable)| Task {
                                after: after.into_iter().filter(|&d| d < i).collect(),
                                fails,
                                optional,
                                compensable,
                            },
                        )
                })
                .collect::<Vec<_>>();
            (tasks, Just(bound), Just(fail_fast))
        })
        .prop_map(|(tasks, bound, fail_fast)| Dag {
            tasks,
            bound,
            fail_fast,
        })
}

fn workflow(d: &Dag) -> String {
    let mut s = format!(
        "Workflow(id: \"g\", max_parallel: {}, on_child_failure: {}, tasks: {{\n",
        d.bound,
        if d.fail_fast { "FailFast" } else { "Continue" }
    );
    for (i, t) in d.tasks.iter().enumerate() {
        let after: Vec<String> = t.after.iter().map(|a| format!("\"t{a}\"")).collect();
        let end = if t.fails {
            format!("echo end t{i} fail >> m/log; exit 1")
        } else {
            format!("echo end t{i} ok >> m/log")
        };
        s.push_str(&format!(
            "  \"t{i}\": (after: [{}], run: Shell(\"echo start t{i} >> m/log; sleep 0.0{}; {end}\"), optional: {}{}),\n",
            after.join(", "),
            i % 3,
            t.optional,
            if t.compensable {
                format!(", compensate: Shell(\"echo undo t{i} >> m/log\")")
            } else {
                String::new()
            }
        ));
    }
    s.push_str("})\n");
    s
}

fn check_log(
    d: &Dag,
    log: &[String],
    exit: Option<i32>,
    succeeded: &[usize],
) -> Result<(), TestCaseError> {
    let mut ended: BTreeMap<usize, bool> = BTreeMap::new();
    let mut running: BTreeSet<usize> = BTreeSet::new();
    let mut undone: Vec<usize> = Vec::new();
    let num = |w: &str| w.trim_start_matches('t').parse::<usize>().unwrap();
    for line in log {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["start", t] => {
                let t = num(t);
                for &dep in &d.tasks[t].after {
                    let ok = ended.get(&dep).copied();
                    prop_assert!(
                        ok == Some(true) || ok == Some(false) && d.tasks[dep].optional,
                        "t{} started before its dependency t{} succeeded: {:?}",
                        t,
                        dep,
                        log
                    );
                }
                running.insert(t);
                prop_assert!(
                    running.len() as u32 <= d.bound,
                    "more than {} at once: {:?}",
                    d.bound,
                    log
                );
            }
            ["end", t, how] => {
                let t = num(t);
                running.remove(&t);
                ended.insert(t, *how == "ok");
            }
            ["undo", t] => undone.push(num(t)),
            _ => prop_assert!(false, "unexpected line {}", line),
        }
    }
    let root_failed = exit == Some(1);
    // Completion order is the order in which orca learned of each success (the journal),
    // not the order the commands wrote their last line: two commands that end together are
    // reaped in either order, and one that finishes just as fail-fast cancels it was never
    // seen to succeed.
    let expected: Vec<usize> = if root_failed {
        succeeded
            .iter()
            .rev()
            .copied()
            .filter(|&t| d.tasks[t].compensable)
            .collect()
    } else {
        Vec::new()
    };
    prop_assert_eq!(undone, expected, "compensation: {:?} {:?}", log, succeeded);
    // The run fails exactly when a non-optional task failed.
    let hard_failure = ended.iter().any(|(&t, &ok)| !ok && !d.tasks[t].optional);
    prop_assert_eq!(root_failed, hard_failure, "exit {:?}: {:?}", exit, log);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_dags_respect_dependencies_bounds_and_compensation(d in dag()) {
        let dir = scratch("dag");
        std::fs::write(dir.join("w.ron"), workflow(&d)).unwrap();
        let o = orca(&dir, &["run", "w.ron", "--run-dir", "run"]);
        let log: Vec<String> = std::fs::read_to_string(dir.join("m/log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        prop_assert!(matches!(o.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&o.stderr));
        check_log(&d, &log, o.status.code(), &succeeded_in_order(&dir))?;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The tasks (`tN`) in the order the journal records them succeeding.
fn succeeded_in_order(dir: &Path) -> Vec<usize> {
    let journal = std::fs::read_to_string(dir.join("run/journal.jsonl")).unwrap_or_default();
    let mut out = Vec::new();
    for line in journal.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["op"]["state"] == "Succeeded"
            && let Some(t) = v["op"]["op"].as_str().and_then(|p| p.strip_prefix('t'))
            && let Ok(n) = t.parse::<usize>()
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

/// Final states by operation, from `orca status --json`.
fn states(dir: &Path) -> BTreeMap<String, String> {
    let o = orca(dir, &["status", "run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["op"].as_str().unwrap().to_string(),
                o["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(operation, phase)` pairs.
type Successes = BTreeSet<(String, String)>;

/// `(operation, phase)` pairs whose success the journal holds.
fn journaled_successes(journal: &str) -> Successes {
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let op = &v["op"];
            let ev = &op["event"]["PhaseSucceeded"];
            Some((
                op["op"].as_str()?.to_string(),
                ev.get("phase")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn marker_counts(dir: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in std::fs::read_to_string(dir.join("m/ran"))
        .unwrap_or_default()
        .lines()
    {
        *m.entry(l.to_string()).or_default() += 1;
    }
    m
}

const CUT_WORKFLOW: &str = r#"Workflow(id: "c", on_child_failure: Continue, tasks: {
    "a": (analyze: Shell("echo a/analyze >> m/ran"), run: Shell("echo a/execute >> m/ran")),
    "b": (after: ["a"], run: Shell("echo b/execute >> m/ran; exit 1")),
    "c": (after: ["b"], run: Shell("echo c/execute >> m/ran")),
    "d": (run: Shell("echo d/execute >> m/ran"), tasks: {
        "e": (run: Shell("echo d.e/execute >> m/ran")),
        "f": (after: ["e"], run: Shell("echo d.f/execute >> m/ran")),
    }, integrate: Shell("echo d/integrate >> m/ran")),
})"#;

#[test]
fn resuming_from_a_journal_cut_at_any_record_never_reruns_a_success() {
    let whole = first_run("cut-whole", CUT_WORKFLOW, 1);
    let expected = states(&whole);
    let journal = std::fs::read_to_string(whole.join("run/journal.jsonl")).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    // Every cut: the header alone, ..., all but the end record.
    for keep in 1..lines.len() {
        let dir = scratch("cut");
        std::fs::write(dir.join("w.ron"), CUT_WORKFLOW).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let cut: String = lines[..keep].iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join("run/journal.jsonl"), &cut).unwrap();
        let done_before = journaled_successes(&cut);
        let o = orca(&dir, &["resume", "run"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "cut at {keep}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let ran = marker_counts(&dir);
        for (op, phase) in &done_before {
            let key = format!("{op}/{phase}");
            assert_eq!(
                ran.get(&key),
                None,
                "cut at {keep}: {key} ran again although journaled"
            );
        }
        assert_eq!(states(&dir), expected, "cut at {keep}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn sigkill_at_random_moments_then_resume_never_reruns_a_journaled_phase() {
    let runs: usize = std::env::var("ORCA_CRASH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let wf = r#"Workflow(id: "k", max_parallel: 3, tasks: {
        "a": (run: Shell("echo a/execute >> m/ran; sleep 0.05")),
        "b": (run: Shell("echo b/execute >> m/ran; sleep 0.03")),
        "c": (after: ["a"], run: Shell("echo c/execute >> m/ran; sleep 0.04"), integrate: Shell("echo c/integrate >> m/ran")),
        "d": (after: ["b", "c"], run: Shell("echo d/execute >> m/ran; sleep 0.02")),
        "e": (after: ["d"], analyze: Shell("echo e/analyze >> m/ran"), run: Shell("echo e/execute >> m/ran")),
        "f": (run: Shell("echo f/execute >> m/ran; sleep 0.06")),
    })"#;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    for n in 0..runs {
        let dir = scratch(&format!("kill{n}"));
        std::fs::write(dir.join("w.ron"), wf).unwrap();
        let mut resumed = false;
        let mut finished = false;
        let mut previous: Option<(Successes, BTreeMap<String, usize>)> = None;
        for round in 0..20 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let delay = std::time::Duration::from_millis(seed % 180);
            let args: Vec<&str> = if resumed {
                vec!["resume", "run"]
            } else {
                vec!["run", "w.ron", "--run-dir", "run"]
            };
            let mut child = Command::new(env!("CARGO_BIN_EXE_orca"))
                .args(&args)
                .current_dir(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();

            std::thread::sleep(delay);
            let status = match child.try_wait().unwrap() {
                Some(s) => Some(s),
                None if round < 19 => {
                    child.kill().unwrap(); // SIGKILL
                    let _ = child.wait();
                    None
                }
                None => Some(child.wait().unwrap()),
            };
            // Orphaned commands of the killed runner finish their marker writes.
            std::thread::sleep(std::time::Duration::from_millis(80));
            let journal =
                std::fs::read_to_string(dir.join("run/journal.jsonl")).unwrap_or_default();
            let now = marker_counts(&dir);
            // What was journaled when the previous round was killed never ran again.
            if let Some((done, before)) = &previous {
                for (op, phase) in done {
                    let key = format!("{op}/{phase}");
                    assert_eq!(
                        now.get(&key),
                        before.get(&key),
                        "run {n} round {round}: {key} ran again after its success was journaled"
                    );
                }
            }
            previous = Some((journaled_successes(&journal), now));
            // Killed before its journal had a header: the run never started; start it again.
            resumed = journal.contains('\n');
            if let Some(s) = status {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                assert_eq!(s.code(), Some(0), "run {n} round {round} failed: {err}");
                finished = true;
                break;
            }
        }
        assert!(finished, "run {n} did not finish in 20 rounds");
        let ran = marker_counts(&dir);
        for k in [
            "a/execute",
            "b/execute",
            "c/execute",
            "c/integrate",
            "d/execute",
            "e/analyze",
            "e/execute",
            "f/execute",
        ] {
            assert!(ran.contains_key(k), "run {n}: {k} never ran");
        }
        let st = states(&dir);
        assert!(st.values().all(|s| s == "Succeeded"), "run {n}: {st:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `orca resume run` in `dir`, failing the test if it does not end within 30 s.
fn resume_within_deadline(dir: &Path, what: &str) -> Output {
    let mut child = spawn_orca(dir, &["resume", "run"]);
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > 30 {
            let _ = child.kill();
            panic!("{what}: the resume hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A scratch directory where `wf` ran once as `w.ron` (run directory `run`), ending `exit`.
fn first_run(tag: &str, wf: &str, exit: i32) -> ScratchDir {
    let dir = scratch(tag);
    std::fs::write(dir.join("w.ron"), wf).unwrap();
    let o = orca(&dir, &["run", "w.ron", "--run-dir", "run"]);
    assert_eq!(
        o.status.code(),
        Some(exit),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    dir
}

/// Resumes every cut of `journal` from `first_cut` lines on (the header alone, ..., all but
/// its last record) in a
/// fresh directory prepared by `setup`: each ends, with `exit`, in the final states of the
/// whole journal, and `check` sees what its commands left.
fn every_cut_of(
    tag: &str,
    journal: &str,
    first_cut: usize,
    wf: &str,
    setup: &dyn Fn(&Path),
    exit: i32,
    check: &dyn Fn(usize, &Path),
) {
    let whole = scratch(&format!("{tag}-cut-whole"));
    std::fs::write(whole.join("w.ron"), wf).unwrap();
    std::fs::create_dir_all(whole.join("run")).unwrap();
    std::fs::write(whole.join("run/journal.jsonl"), journal).unwrap();
    let expected = states(&whole);
    let lines: Vec<&str> = journal.lines().collect();
    for keep in first_cut.max(1)..lines.len() {
        let dir = scratch(&format!("{tag}-cut"));
        std::fs::write(dir.join("w.ron"), wf).unwrap();
        setup(&dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let cut: String = lines[..keep].iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join("run/journal.jsonl"), &cut).unwrap();
        let o = resume_within_deadline(&dir, &format!("cut at {keep}"));
        assert_eq!(
            o.status.code(),
            Some(exit),
            "cut at {keep}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(states(&dir), expected, "cut at {keep}");
        check(keep, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&whole);
}

#[test]
fn a_resume_cut_anywhere_after_reruns_ends_like_the_whole_journal() {
    // A failed run, a resume that reruns what failed, and one that reruns `b` (--from) and
    // `p`, whose decompose runs again: the journal holds rerun records, and parents that
    // hear their kept children again.
    let wf = r#"Workflow(id: "r", on_child_failure: Continue, tasks: {
        "a": (run: Shell("true")),
        "b": (after: ["a"], run: Shell("test -e ok")),
        "c": (after: ["b"], run: Shell("true")),
        "p": (decompose: Shell("echo '{\"x\": {\"run\": {\"Shell\": \"true\"}}}'"), tasks: { "e": (run: Shell("true")) }),
    })"#;
    let whole = first_run("rerun-whole", wf, 1);
    std::fs::write(whole.join("ok"), "").unwrap();
    let o = orca(&whole, &["resume", "run"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = orca(&whole, &["resume", "run", "--from", "b", "--from", "p"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A resume of a run that succeeded runs nothing.
    let o = orca(&whole, &["resume", "run"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("succeeded already"));
    let journal = std::fs::read_to_string(whole.join("run/journal.jsonl")).unwrap();
    assert_eq!(journal.matches("\"rerun\"").count(), 2);
    // Cuts inside the first run end as that run did (the test above); from the first rerun
    // on, every resume succeeded, so every cut must end succeeded.
    let first_rerun = journal
        .lines()
        .position(|l| l.contains("\"rerun\""))
        .unwrap();
    every_cut_of(
        "rerun",
        &journal,
        first_rerun + 1,
        wf,
        &|dir| std::fs::write(dir.join("ok"), "").unwrap(),
        0,
        &|_, _| {},
    );
}

#[test]
fn a_resume_cut_anywhere_in_a_rollback_compensates_the_rest_in_order() {
    let wf = r#"Workflow(id: "s", tasks: {
        "a": (run: Shell("true"), compensate: Shell("echo undo-a >> m/undo")),
        "b": (after: ["a"], run: Shell("true"), compensate: Shell("echo undo-b >> m/undo")),
        "g": (after: ["b"], tasks: { "h": (run: Shell("true"), compensate: Shell("echo undo-h >> m/undo")) }),
        "c": (after: ["g"], run: Shell("exit 1")),
    })"#;
    let whole = first_run("rollback-whole", wf, 1);
    let undo = std::fs::read_to_string(whole.join("m/undo")).unwrap();
    assert_eq!(undo, "undo-h\nundo-b\nundo-a\n", "reverse completion order");
    let journal = std::fs::read_to_string(whole.join("run/journal.jsonl")).unwrap();
    every_cut_of("rollback", &journal, 1, wf, &|_| {}, 1, &|keep, dir| {
        // What the resume compensated keeps the order: a suffix of h, b, a, each once.
        let undo = std::fs::read_to_string(dir.join("m/undo")).unwrap_or_default();
        let done: Vec<&str> = undo.lines().collect();
        let all = ["undo-h", "undo-b", "undo-a"];
        let order: Vec<Option<usize>> = done
            .iter()
            .map(|d| all.iter().position(|a| a == d))
            .collect();
        assert!(
            order.iter().all(Option::is_some) && order.windows(2).all(|w| w[0] < w[1]),
            "cut at {keep}: compensations {done:?}"
        );
    });
}
