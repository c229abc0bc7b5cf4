//! Workflows on PostgreSQL with `orca worker` processes: the same outcomes as the file
//! store, workers and coordinators killed, late results refused, the server restarted, bad
//! addresses. Needs a real PostgreSQL (tests/common/pg.rs): it fails when none can be had.

mod common;

use common::pg::{self, Server};
use common::workflows::scratch;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn orca_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orca"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("ORCA_STORE");
    cmd
}

fn orca(dir: &Path, args: &[&str]) -> Output {
    orca_cmd(dir, args).output().expect("orca runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn worker(dir: &Path, url: &str, extra: &[&str]) -> Child {
    let mut args = vec!["worker", "--store", url];
    args.extend_from_slice(extra);
    orca_cmd(dir, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orca worker starts")
}

fn stop(mut c: Child) -> Output {
    // SIGTERM: the worker finishes what it holds and says what it did.
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "a worker did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.wait_with_output().unwrap()
}

fn kill9(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// `orca status --json` of a run: (operation, state, output) for each operation.
fn outcome(dir: &Path, args: &[&str]) -> Vec<(String, String, Value)> {
    let mut a = vec!["status"];
    a.extend_from_slice(args);
    a.push("--json");
    let o = orca(dir, &a);
    assert!(o.status.success(), "status: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["op"].as_str().unwrap().to_string(),
                op["state"].as_str().unwrap().to_string(),
                op["output"].clone(),
            )
        })
        .collect()
}

/// Waits until `sql` answers `want`; panics saying `what` did not happen by `deadline`.
fn until_sql(url: &str, sql: &str, want: &str, what: &str, deadline: Instant) {
    while pg::psql(url, sql) != want {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_of(dir: &Path, run: &str, url: &str) -> String {
    let o = orca(dir, &["status", run, "--store", url, "--json"]);
    assert!(o.status.success(), "status: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["status"].as_str().unwrap().to_string()
}

/// The shipped workflows end the same through 3 workers and a coordinator that only
/// coordinates as in one process with the file store: states, outputs, exit status.
#[test]
fn shipped_workflows_end_alike_on_both_stores() {
    let server = pg::server();
    for name in ["release", "fanout", "saga"] {
        let url = server.database(name);
        let dir = scratch(&format!("pg-shipped-{name}"));
        let file = format!("machines/{name}.ron");
        let on_files = orca(
            &repo(),
            &[
                "run",
                &file,
                "--run-dir",
                dir.join("files").to_str().unwrap(),
            ],
        );
        let workers: Vec<Child> = (0..3)
            .map(|_| worker(&repo(), &url, &["--concurrency", "2"]))
            .collect();
        let pg_dir = dir.join("pg").join(name);
        let on_pg = orca(
            &repo(),
            &[
                "run",
                &file,
                "--store",
                &url,
                "--workers",
                "0",
                "--run-dir",
                pg_dir.to_str().unwrap(),
            ],
        );
        let mut ran = 0;
        for w in workers {
            let out = stop(w);
            let said = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(out.status.success(), "worker: {said}");
            ran += said
                .lines()
                .find(|l| l.starts_with("worker "))
                .and_then(|l| l.split(": ran ").nth(1))
                .and_then(|s| s.split(',').next())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("worker said: {said}"));
        }
        assert_eq!(
            on_files.status.code(),
            on_pg.status.code(),
            "{name}: files {} / postgres {}",
            text(&on_files),
            text(&on_pg)
        );
        assert!(ran > 0, "{name}: the workers ran nothing");
        let a = outcome(&repo(), &[dir.join("files").to_str().unwrap()]);
        let b = outcome(&repo(), &[name, "--store", &url]);
        assert_eq!(a, b, "{name}: the stores disagree");
        // The work went through the table, every piece once.
        let rows = pg::psql(
            &url,
            "SELECT count(*), count(*) FILTER (WHERE state = 'done'), max(claims) FROM orca_work",
        );
        let parts: Vec<u64> = rows.split('|').map(|x| x.parse().unwrap()).collect();
        assert_eq!(parts[0], parts[1], "{name}: work left undone: {rows}");
        assert_eq!(parts[0], ran as u64, "{name}: {rows}");
        assert_eq!(parts[2], 1, "{name}: work claimed twice: {rows}");
    }
}

/// A run's journal is kept one row per group of lines written together; rows of one line
/// each (as orca wrote them before) read the same: `orca log` and `orca status` say the same
/// of both.
#[test]
fn journal_rows_of_one_line_read_like_groups() {
    let server = pg::server();
    let url = server.database("lines");
    let dir = scratch("pg-lines");
    let ran = orca(
        &repo(),
        &[
            "run",
            "machines/fanout.ron",
            "--store",
            &url,
            "--run-dir",
            dir.join("fanout").to_str().unwrap(),
        ],
    );
    assert!(ran.status.success(), "run: {}", text(&ran));
    let count = |sql: &str| -> u64 { pg::psql(&url, sql).parse().unwrap() };
    let lines_sql =
        "SELECT sum(length(line) - length(replace(line, E'\\n', ''))) FROM orca_journal";
    let lines = count(lines_sql);
    let rows = count("SELECT count(*) FROM orca_journal");
    assert!(rows < lines, "{rows} rows for {lines} lines: not grouped");
    let log = |what: &str| {
        let o = orca(&repo(), &["log", "fanout", "--store", &url, "--json"]);
        assert!(o.status.success(), "log ({what}): {}", text(&o));
        (o.stdout, outcome(&repo(), &["fanout", "--store", &url]))
    };
    let grouped = log("groups");
    pg::psql(
        &url,
        "BEGIN; \
         CREATE TEMP TABLE split AS SELECT j.run_id, j.seq + t.n - 1 AS seq, t.l || E'\\n' AS line \
           FROM orca_journal j, regexp_split_to_table(rtrim(j.line, E'\\n'), E'\\n') WITH ORDINALITY AS t(l, n); \
         DELETE FROM orca_journal; INSERT INTO orca_journal SELECT * FROM split; COMMIT",
    );
    assert_eq!(count("SELECT count(*) FROM orca_journal"), lines);
    assert_eq!(count(lines_sql), lines);
    let single = log("one line a row");
    assert!(!grouped.0.is_empty());
    assert_eq!(
        grouped, single,
        "the journal reads differently one line a row"
    );
}

/// A database at schema version 1 (a row trigger notified results with the run's name only)
/// is migrated by the next run; results then come in their notifications (`ID RESULT`), and
/// one too long for a notification comes as `ID` alone and is read from the table.
#[test]
fn results_come_in_their_notifications_and_long_ones_are_read() {
    use std::io::{BufRead, BufReader, Read, Write};
    let server = pg::server();
    let url = server.database("notify");
    let dir = scratch("pg-notify");
    std::fs::write(
        dir.join("first.ron"),
        r#"Workflow(id: "first", tasks: { "a": (run: Shell("echo '{\"n\": 1}'")) })"#,
    )
    .unwrap();
    let o = orca(&dir, &["run", "first.ron", "--store", &url]);
    assert!(o.status.success(), "{}", text(&o));
    // As orca left a database before schema version 2.
    pg::psql(
        &url,
        "UPDATE orca_schema SET version = 1; \
         CREATE FUNCTION orca_work_done() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_notify('orca_done', NEW.run_id); RETURN NULL; END $$; \
         CREATE TRIGGER orca_work_done AFTER UPDATE OF state ON orca_work \
         FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION orca_work_done()",
    );
    let o = orca(&dir, &["runs", "--store", &url]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("version 1"), "{}", text(&o));

    let mut listen = Command::new("psql")
        .args([url.as_str(), "-X", "-A", "-t"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("psql runs");
    let mut to_psql = listen.stdin.take().unwrap();
    let mut from_psql = BufReader::new(listen.stdout.take().unwrap());
    writeln!(to_psql, "LISTEN orca_done;").unwrap();
    let mut said = String::new();
    from_psql.read_line(&mut said).unwrap();
    assert_eq!(said.trim(), "LISTEN");

    let long = "x".repeat(9000);
    std::fs::write(
        dir.join("long.sh"),
        format!("printf '{{\"s\": \"%s\"}}\\n' {long}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("second.ron"),
        format!(
            r#"Workflow(id: "second", tasks: {{ "long": (run: Shell("sh {}")), "short": (run: Shell("echo '{{\"n\": 2}}'")) }})"#,
            dir.join("long.sh").display()
        ),
    )
    .unwrap();
    let mut coordinator = coordinate(&dir, "second.ron", &url, "second");
    let w = worker(&dir, &url, &["--concurrency", "2"]);
    let out = wait_for(&mut coordinator, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    let _ = stop(w);
    writeln!(to_psql, "SELECT 1;").unwrap();
    drop(to_psql);
    let mut rest = String::new();
    from_psql.read_to_string(&mut rest).unwrap();
    let _ = listen.wait();
    let payloads: Vec<&str> = rest
        .lines()
        .filter_map(|l| l.split(" with payload \"").nth(1))
        .filter_map(|p| p.rsplit_once("\" received"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(payloads.len(), 2, "{rest}");
    let id_only = |p: &&str| p.chars().all(|c| c.is_ascii_digit());
    assert_eq!(payloads.iter().filter(|p| id_only(p)).count(), 1, "{rest}");
    assert!(
        payloads.iter().any(|p| {
            p.split_once(' ')
                .is_some_and(|(id, r)| id.parse::<i64>().is_ok() && r.contains("Succeeded"))
        }),
        "{rest}"
    );

    let ops = outcome(&dir, &["second", "--store", &url]);
    let output = |name: &str| ops.iter().find(|o| o.0 == name).unwrap().2.clone();
    assert_eq!(output("long"), serde_json::json!({ "s": long }));
    assert_eq!(output("short"), serde_json::json!({ "n": 2 }));
    assert_eq!(pg::psql(&url, "SELECT version FROM orca_schema"), "2");
    assert_eq!(
        pg::psql(
            &url,
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'orca_work_done'"
        ),
        "0"
    );
}

/// Work whose job this orca cannot read is recorded as failed, not to be retried, by the
/// worker that claimed it, which goes on working.
#[test]
fn unreadable_work_is_recorded_as_failed() {
    let server = pg::server();
    let url = server.database("unreadable");
    let dir = scratch("pg-unreadable");
    let w = worker(&dir, &url, &["--concurrency", "2"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    until_sql(
        &url,
        "SELECT to_regclass('orca_work') IS NOT NULL",
        "t",
        "the worker made no schema",
        deadline,
    );
    pg::psql(
        &url,
        "INSERT INTO orca_work (run_id, op, what, attempt, generation, ordinal, job) VALUES \
         ('x', 'a', 'execute', 1, 0, 0, 'not a job'), ('x', 'b', 'execute', 1, 0, 1, '{}'); \
         NOTIFY orca_ready",
    );
    until_sql(
        &url,
        "SELECT count(*) FROM orca_work WHERE state = 'done'",
        "2",
        "the work was not recorded",
        deadline,
    );
    let out = stop(w);
    assert!(out.status.success(), "{}", text(&out));
    for result in pg::psql(&url, "SELECT result FROM orca_work ORDER BY op").lines() {
        let v: Value = serde_json::from_str(result).unwrap();
        let failed = &v["Failed"];
        assert_eq!(failed["retryable"], false, "{result}");
        assert!(
            failed["error"]
                .as_str()
                .unwrap()
                .contains("cannot read this work"),
            "{result}"
        );
    }
}

/// A wrong URL, a refused connection, a database without the schema or with a newer one:
/// one line, exit 2, no password shown, nothing written.
#[test]
fn bad_stores_are_one_clear_line_and_exit_2() {
    let server = pg::server();
    let dir = scratch("pg-bad");
    let wf = repo().join("machines/release.ron");
    let wf = wf.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "runs".into(),
                "--store".into(),
                "postgresql://u:hunter2@h:port/d".into(),
            ],
            "invalid",
        ),
        (
            vec![
                "run".into(),
                wf.into(),
                "--store".into(),
                "postgresql://u:hunter2@127.0.0.1:1/d".into(),
            ],
            "cannot connect",
        ),
        (
            vec![
                "runs".into(),
                "--store".into(),
                "mysql://u:hunter2@h/d".into(),
            ],
            "not a store address",
        ),
        (
            vec![
                "worker".into(),
                "--store".into(),
                pg::with_database(&server.url, "no_such_db")
                    .replace("postgres@", "postgres:hunter2@"),
            ],
            "does not exist",
        ),
    ];
    for (args, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = orca(&dir, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("hunter2"),
            "{args:?} shows the password: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // No schema: reading commands refuse and create nothing.
    let empty = server.database("empty");
    for args in [
        vec!["runs", "--store", &empty],
        vec!["status", "r1", "--store", &empty],
        vec!["log", "r1", "--store", &empty],
        vec!["resume", "r1", "--store", &empty],
    ] {
        let o = orca(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains("no orca schema"),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert_eq!(
        pg::psql(
            &empty,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    // A schema from a newer orca: refused before anything is written.
    let newer = server.database("newer");
    let o = orca(&dir, &["runs", "--store", &newer]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::write(
        dir.join("one.ron"),
        r#"Workflow(id: "one", tasks: { "a": (run: Shell("true")) })"#,
    )
    .unwrap();
    let made = orca(&dir, &["run", "one.ron", "--store", &newer]);
    assert!(made.status.success(), "{}", text(&made));
    pg::psql(&newer, "UPDATE orca_schema SET version = 99");
    for args in [
        vec!["run", wf, "--store", &newer],
        vec!["runs", "--store", &newer],
        vec!["worker", "--store", &newer],
    ] {
        let o = orca(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("newer than this orca"), "{}", text(&o));
    }
    assert_eq!(pg::psql(&newer, "SELECT count(*) FROM orca_runs"), "1");
}

/// A worker frozen (SIGSTOP) past its lease: the work is retried elsewhere under the retry
/// policy, and the frozen worker's result, when it thaws, is refused and counted.
#[test]
fn a_late_result_from_an_expired_lease_is_refused() {
    let server = pg::server();
    let url = server.database("late");
    let dir = scratch("pg-late");
    std::fs::write(
        dir.join("late.ron"),
        r#"Workflow(id: "late", defaults: (retry: (max_attempts: 3, initial: "10ms", jitter: false)),
            tasks: { "slow": (run: Shell("echo $ORCA_ATTEMPT >> attempts; sleep 1.5; echo '{\"attempt\":'$ORCA_ATTEMPT'}'")) })"#,
    )
    .unwrap();
    let mut coordinator = coordinate(&dir, "late.ron", &url, "late");
    let frozen = worker(&dir, &url, &["--lease", "300ms", "--concurrency", "1"]);
    // Wait until it runs the work, then freeze it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("attempts").exists() {
        assert!(Instant::now() < deadline, "the work never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe {
        libc::kill(frozen.id() as i32, libc::SIGSTOP);
    }
    // A lease long enough that a loaded machine's late heartbeat does not lose it.
    let second = worker(&dir, &url, &["--lease", "10s", "--concurrency", "1"]);
    let out = wait_for(&mut coordinator, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    unsafe {
        libc::kill(frozen.id() as i32, libc::SIGCONT);
    }
    let frozen_said = stop(frozen);
    let _ = stop(second);
    let said = String::from_utf8_lossy(&frozen_said.stderr);
    assert!(said.contains("refused 1 late result"), "{said}");
    let row = pg::psql(
        &url,
        "SELECT sum(late), sum(expired), count(*) FILTER (WHERE state = 'done') FROM orca_work",
    );
    assert_eq!(row, "1|1|1", "late, expired, done");
    let attempts = std::fs::read_to_string(dir.join("attempts")).unwrap();
    assert_eq!(attempts, "1\n2\n", "the second attempt ran the work again");
    let ops = outcome(&dir, &["late", "--store", &url]);
    let slow = ops.iter().find(|o| o.0 == "slow").unwrap();
    assert_eq!(slow.1, "Succeeded");
    assert_eq!(slow.2, serde_json::json!({"attempt": 2}));
}

/// `orca run FILE --store URL --workers 0` as run NAME: it only coordinates.
fn coordinate(dir: &Path, file: &str, url: &str, name: &str) -> Child {
    orca_cmd(
        dir,
        &[
            "run",
            file,
            "--store",
            url,
            "--workers",
            "0",
            "--run-dir",
            &format!("runs/{name}"),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn wait_for(c: &mut Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while c.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("a process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Output {
        status: c.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut o) = c.stdout.take() {
        let _ = o.read_to_end(&mut out.stdout);
    }
    if let Some(mut e) = c.stderr.take() {
        let _ = e.read_to_end(&mut out.stderr);
    }
    out
}

/// `chain.ron`: `n` operations, each after the one before, each appending its number to
/// `done`.
fn write_chain(dir: &Path, n: usize) {
    let tasks: String = (0..n)
        .map(|i| {
            let after = if i > 0 {
                format!(", after: [\"t{}\"]", i - 1)
            } else {
                String::new()
            };
            format!("\"t{i}\": (run: Shell(\"sleep 0.05; echo {i} >> done\"){after}),\n")
        })
        .collect();
    std::fs::write(
        dir.join("chain.ron"),
        format!("Workflow(id: \"chain\", tasks: {{ {tasks} }})"),
    )
    .unwrap();
}

/// Waits until `n` operations of the chain are done.
fn wait_for_done(dir: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(dir.join("done")).map_or(0, |s| s.lines().count()) < n {
        assert!(Instant::now() < deadline, "the run did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The chain's operations in the order they finished, a repeat (work run again) counted once.
fn chain_done(dir: &Path) -> Vec<u32> {
    let done = std::fs::read_to_string(dir.join("done")).unwrap();
    let mut seen: Vec<u32> = done.lines().map(|l| l.parse().unwrap()).collect();
    seen.dedup();
    seen
}

/// PostgreSQL restarted in the middle of a run: workers and coordinator reconnect and the
/// run finishes.
#[test]
fn a_run_survives_a_restart_of_the_database() {
    let own = Server::start("restart");
    let url = own.database("restart");
    let dir = scratch("pg-restart");
    write_chain(&dir, 40);
    let mut coordinator = coordinate(&dir, "chain.ron", &url, "chain");
    let w = worker(&dir, &url, &["--lease", "5s"]);
    wait_for_done(&dir, 5);
    own.pg_ctl("restart");
    let out = wait_for(&mut coordinator, Duration::from_secs(60));
    let _ = stop(w);
    assert!(out.status.success(), "{}", text(&out));
    let seen = chain_done(&dir);
    assert_eq!(seen, (0..40).collect::<Vec<_>>(), "in dependency order");
    assert_eq!(status_of(&dir, "chain", &url), "succeeded");
}

/// A standby coordinator (`resume --wait`) takes over when the coordinator is killed.
#[test]
fn a_standby_coordinator_takes_over() {
    let server = pg::server();
    let url = server.database("standby");
    let dir = scratch("pg-standby");
    write_chain(&dir, 30);
    let args = ["--store", &url, "--workers", "0"];
    let mut first = orca_cmd(&dir, &["run", "chain.ron", "--run-dir", "runs/chain"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let w = worker(&dir, &url, &["--lease", "1s"]);
    wait_for_done(&dir, 3);
    // While the first holds the run, a plain resume is refused and a standby waits.
    let refused = orca(
        &dir,
        &["resume", "chain", "--store", &url, "--workers", "0"],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("in use by another orca process"));
    let mut standby = orca_cmd(&dir, &["resume", "chain", "--wait"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        standby.try_wait().unwrap().is_none(),
        "the standby did not wait"
    );
    kill9(&mut first);
    let out = wait_for(&mut standby, Duration::from_secs(60));
    let _ = stop(w);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status_of(&dir, "chain", &url), "succeeded");
    let seen = chain_done(&dir);
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
}

/// Two runs share one worker: the one started second is not stuck behind all of the
/// first's work, and `orca runs` lists both with their state.
#[test]
fn runs_on_one_store_share_the_workers_fairly() {
    let server = pg::server();
    let url = server.database("fair");
    let dir = scratch("pg-fair");
    let wide = |id: &str, n: usize| {
        let tasks: String = (0..n)
            .map(|i| format!("\"t{i}\": (run: Shell(\"sleep 0.02; echo {id} >> order\")),\n"))
            .collect();
        format!("Workflow(id: \"{id}\", tasks: {{ {tasks} }})")
    };
    std::fs::write(dir.join("big.ron"), wide("big", 60)).unwrap();
    std::fs::write(dir.join("small.ron"), wide("small", 5)).unwrap();
    let mut big = coordinate(&dir, "big.ron", &url, "big");
    // All of big's work is queued before small starts (once the coordinator made the
    // tables).
    let deadline = Instant::now() + Duration::from_secs(20);
    until_sql(
        &url,
        "SELECT to_regclass('orca_work') IS NOT NULL",
        "t",
        "no schema was created",
        deadline,
    );
    until_sql(
        &url,
        "SELECT count(*) FROM orca_work WHERE run_id = 'big'",
        "60",
        "big's work was not queued",
        deadline,
    );
    let mut small = coordinate(&dir, "small.ron", &url, "small");
    let deadline = Instant::now() + Duration::from_secs(20);
    until_sql(
        &url,
        "SELECT count(*) FROM orca_work WHERE run_id = 'small'",
        "5",
        "small's work was not queued",
        deadline,
    );
    let listed = orca(&dir, &["runs", "--store", &url, "--json"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.lines().all(|l| l.contains("\"running\"")),
        "{listed}"
    );
    let w = worker(&dir, &url, &["--concurrency", "1"]);
    assert!(
        wait_for(&mut small, Duration::from_secs(60))
            .status
            .success()
    );
    assert!(wait_for(&mut big, Duration::from_secs(60)).status.success());
    let _ = stop(w);
    let order = std::fs::read_to_string(dir.join("order")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    let last_small = lines.iter().rposition(|l| *l == "small").unwrap();
    assert!(
        last_small < 20,
        "small waited behind big's work: its last piece ran {last_small}th"
    );
    let listed = orca(&dir, &["runs", "--store", &url]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(
        listed.lines().filter(|l| l.contains("succeeded")).count(),
        2,
        "{listed}"
    );
}

/// Work of a tagged operation waits for a worker with the tag.
#[test]
fn tagged_work_goes_to_workers_with_the_tags() {
    let server = pg::server();
    let url = server.database("tags");
    let dir = scratch("pg-tags");
    std::fs::write(
        dir.join("tags.ron"),
        r#"Workflow(id: "tags", tasks: {
            "plain": (run: Shell("echo plain >> ran")),
            "gpu": (tags: ["gpu"], run: Shell("echo \"gpu $ORCA_IDEMPOTENCY_KEY\" >> ran")),
        })"#,
    )
    .unwrap();
    let mut c = coordinate(&dir, "tags.ron", &url, "tags");
    let plain = worker(&dir, &url, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(dir.join("ran")).is_ok_and(|s| s.contains("plain")) {
        assert!(Instant::now() < deadline, "the plain work did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        c.try_wait().unwrap().is_none(),
        "the run ended without its gpu work"
    );
    assert_eq!(
        pg::psql(&url, "SELECT state FROM orca_work WHERE op = 'gpu'"),
        "ready"
    );
    let gpu = worker(&dir, &url, &["--tags", "gpu,fast"]);
    assert!(wait_for(&mut c, Duration::from_secs(30)).status.success());
    let _ = stop(plain);
    let _ = stop(gpu);
    let ran = std::fs::read_to_string(dir.join("ran")).unwrap();
    assert!(ran.contains("gpu tags/gpu/execute/1/0"), "{ran}");
}

/// 4 workers over a 500-operation DAG: a random worker is SIGKILLed every ~200 ms and
/// restarted, the coordinator is killed twice and resumed. Every operation succeeds once in
/// the record, no operation starts before its dependencies, and an operation runs twice
/// only when a lease ran out (counted).
#[test]
fn workers_and_coordinator_killed_over_a_500_operation_dag() {
    const N: usize = 500;
    let server = pg::server();
    let url = server.database("crash");
    let dir = scratch("pg-crash");
    std::fs::create_dir_all(dir.join("m")).unwrap();
    // Each operation checks that its dependencies left their marks, logs its start, works
    // a little and leaves its own mark.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut deps: Vec<Vec<usize>> = Vec::new();
    let mut tasks = String::new();
    for i in 0..N {
        let mut d: Vec<usize> = Vec::new();
        if i > 0 {
            for _ in 0..(next() % 3) {
                let back = 1 + (next() as usize % 40).min(i - 1);
                let dep = i - back;
                if !d.contains(&dep) {
                    d.push(dep);
                }
            }
        }
        let checks: String = d
            .iter()
            .map(|x| format!("[ -f m/t{x} ] || echo t{i} >> violations; "))
            .collect();
        let after: Vec<String> = d.iter().map(|x| format!("\"t{x}\"")).collect();
        tasks.push_str(&format!(
            "\"t{i}\": (after: [{}], run: Shell(\"{checks}echo t{i} >> starts; sleep 0.0{}; touch m/t{i}\")),\n",
            after.join(", "),
            5 + next() % 5
        ));
        deps.push(d);
    }
    std::fs::write(
        dir.join("dag.ron"),
        format!(
            "Workflow(id: \"dag\", defaults: (retry: (max_attempts: 10, initial: \"20ms\")), tasks: {{ {tasks} }})"
        ),
    )
    .unwrap();
    let coordinator = |first: bool| {
        let args: Vec<&str> = if first {
            vec!["run", "dag.ron", "--run-dir", "runs/dag"]
        } else {
            vec!["resume", "dag"]
        };
        orca_cmd(&dir, &args)
            .args(["--store", &url, "--workers", "0", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let start_worker = || worker(&dir, &url, &["--lease", "1s", "--concurrency", "4"]);
    let mut workers: Vec<Child> = (0..4).map(|_| start_worker()).collect();
    let mut c = coordinator(true);
    let t0 = Instant::now();
    let mut kills = 0;
    let mut coordinator_kills = 0;
    let mut rng = 12345u64;
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(status) = c.try_wait().unwrap() {
            if coordinator_kills == 2 {
                break status;
            }
            panic!("the coordinator ended ({status}) before it was killed twice");
        }
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = (rng >> 33) as usize % workers.len();
        kill9(&mut workers[w]);
        workers[w] = start_worker();
        kills += 1;
        let elapsed = t0.elapsed();
        if (coordinator_kills == 0 && elapsed > Duration::from_millis(1200))
            || (coordinator_kills == 1 && elapsed > Duration::from_millis(2600))
        {
            kill9(&mut c);
            coordinator_kills += 1;
            c = coordinator(false);
        }
        assert!(
            elapsed < Duration::from_secs(180),
            "the run did not finish in 3 minutes"
        );
    };
    for w in workers {
        let _ = stop(w);
    }
    let out = wait_for(&mut c, Duration::from_secs(5));
    assert!(outcome.success(), "the last coordinator: {}", text(&out));
    assert!(kills >= 5, "only {kills} workers were killed");
    assert_eq!(status_of(&dir, "dag", &url), "succeeded");
    // Exactly one recorded success per operation, in the journal and in the work table.
    let log = orca(&dir, &["log", "dag", "--store", &url, "--json"]);
    let mut successes = vec![0; N];
    for line in String::from_utf8_lossy(&log.stdout).lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        let op = &v["op"];
        if op["event"]["PhaseSucceeded"]["phase"] == "execute"
            && let Some(i) = op["op"].as_str().and_then(|o| o.strip_prefix('t'))
        {
            successes[i.parse::<usize>().unwrap()] += 1;
        }
    }
    assert!(
        successes.iter().all(|&n| n == 1),
        "successes per operation: {:?}",
        successes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != 1)
            .collect::<Vec<_>>()
    );
    let done = pg::psql(
        &url,
        "SELECT count(DISTINCT op) FROM orca_work WHERE op LIKE 't%' AND state = 'done' AND result LIKE '{\"Succeeded\"%'",
    );
    assert_eq!(done, N.to_string());
    // Dependencies were never violated.
    let violations = std::fs::read_to_string(dir.join("violations")).unwrap_or_default();
    assert!(
        violations.is_empty(),
        "started before a dependency: {violations}"
    );
    // Ran twice only where a lease ran out.
    let starts = std::fs::read_to_string(dir.join("starts")).unwrap();
    let mut ran = vec![0u32; N];
    for l in starts.lines() {
        ran[l[1..].parse::<usize>().unwrap()] += 1;
    }
    assert!(ran.iter().all(|&n| n >= 1));
    let expired: std::collections::HashMap<usize, u32> = pg::psql(
        &url,
        "SELECT op, sum(expired) FROM orca_work WHERE op LIKE 't%' GROUP BY op HAVING sum(expired) > 0",
    )
    .lines()
    .filter(|l| !l.is_empty())
    .map(|l| {
        let (op, n) = l.split_once('|').unwrap();
        (op[1..].parse().unwrap(), n.parse().unwrap())
    })
    .collect();
    let mut twice = 0;
    for (i, &n) in ran.iter().enumerate() {
        if n > 1 {
            twice += 1;
            let allowed = 1 + expired.get(&i).copied().unwrap_or(0);
            assert!(
                n <= allowed,
                "t{i} ran {n} times with {} expired lease(s)",
                allowed - 1
            );
        }
    }
    eprintln!(
        "crash test: {kills} workers killed, coordinator killed twice; {twice} operations ran twice, {} leases expired",
        expired.values().sum::<u32>()
    );
    let verify = orca(&dir, &["replay", "dag", "--store", &url, "--verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[derive(Debug, Clone)]
struct GenTask {
    after: Vec<usize>,
    fails: bool,
    flaky: bool,
    optional: bool,
    compensable: bool,
}

fn gen_workflow() -> impl proptest::strategy::Strategy<Value = Vec<GenTask>> {
    use proptest::prelude::*;
    (2usize..9).prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                (
                    prop::collection::btree_set(0..i.max(1), 0..=i.min(2)),
                    prop::bool::weighted(0.15),
                    prop::bool::weighted(0.25),
                    prop::bool::weighted(0.2),
                    any::<bool>(),
                )
                    .prop_map(
                        move |(after, fails, flaky, optional, compensable)| GenTask {
                            after: after.into_iter().filter(|&d| d < i).collect(),
                            fails,
                            flaky,
                            optional,
                            compensable,
                        },
                    )
            })
            .collect::<Vec<_>>()
    })
}

fn gen_text(tasks: &[GenTask]) -> String {
    let mut s = String::from(
        "Workflow(id: \"g\", on_child_failure: Continue, defaults: (retry: (max_attempts: 2, initial: \"5ms\", jitter: false)), tasks: {\n",
    );
    for (i, t) in tasks.iter().enumerate() {
        let after: Vec<String> = t.after.iter().map(|a| format!("\"t{a}\"")).collect();
        // Flaky: fails its first attempt; the retry succeeds.
        let body = if t.fails {
            "exit 1".to_string()
        } else if t.flaky {
            format!(
                "[ $ORCA_ATTEMPT -gt 1 ] || exit 3; echo '{{\\\"t\\\": {i}, \\\"attempt\\\": '$ORCA_ATTEMPT'}}'"
            )
        } else {
            format!("echo '{{\\\"t\\\": {i}}}'")
        };
        let compensate = if t.compensable {
            format!(", compensate: Shell(\"echo undo {i}\")")
        } else {
            String::new()
        };
        s.push_str(&format!(
            "  \"t{i}\": (after: [{}], run: Shell(\"{body}\"), optional: {}{compensate}),\n",
            after.join(", "),
            t.optional
        ));
    }
    s.push_str("})\n");
    s
}

/// Generated workflows (dependencies, failures, retries, optional operations,
/// compensation) end in the same operation states and outputs on both stores. Failures
/// do not cancel siblings here (`Continue`): with `FailFast`, which siblings a failure
/// catches still running depends on timing, on either store.
#[test]
fn generated_workflows_end_alike_on_both_stores() {
    use proptest::prelude::*;
    let server = pg::server();
    let url = server.database("differential");
    let dir = scratch("pg-differential");
    let workers: Vec<Child> = (0..2).map(|_| worker(&dir, &url, &[])).collect();
    let case = std::sync::atomic::AtomicU32::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: common::cases(8),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&gen_workflow(), |tasks| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let file = format!("g{case}.ron");
        std::fs::write(dir.join(&file), gen_text(&tasks)).unwrap();
        let files_dir = format!("runs/files{case}");
        let a = orca(&dir, &["run", &file, "--run-dir", &files_dir]);
        let pg_name = format!("g{case}");
        let b = orca(
            &dir,
            &[
                "run",
                &file,
                "--store",
                &url,
                "--workers",
                "0",
                "--run-dir",
                &format!("runs/{pg_name}"),
            ],
        );
        prop_assert_eq!(
            a.status.code(),
            b.status.code(),
            "{}\n{}",
            text(&a),
            text(&b)
        );
        prop_assert_eq!(
            outcome(&dir, &[&files_dir]),
            outcome(&dir, &[&pg_name, "--store", &url])
        );
        Ok(())
    });
    for w in workers {
        let _ = stop(w);
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
