//! The inspector under load (docs/performance.md, "Inspector"):
//!
//! 1. Throughput: `orca run benches/counter.ron --events FILE` (EVENTS events, as fast as
//!    they go) without `--inspect`, with `--inspect` and no page, and with a Chromium page
//!    following the run. Median wall time of RUNS runs each.
//! 2. A steady 1,000 events/s posted to an inspected run for SECONDS seconds with a page
//!    open: how many messages the page got for them (coalescing), its longest gap between
//!    animation frames (responsiveness), how far behind it was when the sending stopped,
//!    and the orca process's CPU time with and without the page.
//!
//! `cargo bench --bench inspect_load [-- EVENTS RUNS SECONDS]` (defaults 1000000 5 10).
//! Needs chromium and chromedriver, like the browser tests.

#[path = "../tests/common/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn orca() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orca"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn events_file(n: usize) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("orca-inspect-load-{n}.events"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..n {
        writeln!(f, "{}", if i % 10 == 9 { "FLIP" } else { "TICK" }).unwrap();
    }
    writeln!(f, "STOP").unwrap();
    f.flush().unwrap();
    path
}

/// Starts `cmd` and returns it with the URL it printed; the caller waits for it.
#[allow(clippy::zombie_processes)]
fn start_inspected(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orca starts");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("orca printed no URL");
        }
        if let Some(url) = line.trim().strip_prefix("inspect: ") {
            let url = url.to_string();
            // Keep draining stderr so that the process never blocks on it.
            std::thread::spawn(move || for _ in err.lines() {});
            return (child, url);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// User + system CPU seconds of a process so far (/proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Posts `rate` events a second for `seconds` over one keep-alive connection.
async fn send_steadily(url: &str, rate: u64, seconds: u64) -> u64 {
    use hyper_util::client::legacy::Client;
    let client: Client<_, String> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let uri: hyper::Uri = format!("{url}api/event").parse().unwrap();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        let due = start + Duration::from_micros(sent * 1_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let name = if sent % 10 == 9 { "FLIP" } else { "TICK" };
        let req = hyper::Request::post(uri.clone())
            .header("content-type", "application/json")
            .body(format!(r#"{{"name":"{name}"}}"#))
            .unwrap();
        let res = client.request(req).await.expect("the event is posted");
        assert_eq!(res.status(), 202);
        sent += 1;
    }
    sent
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let events: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let file = events_file(events);
    let file_arg = file.to_str().unwrap().to_string();

    // 1. Throughput.
    let b = browser::Browser::start().await;
    let mut plain = Vec::new();
    let mut alone = Vec::new();
    let mut watched = Vec::new();
    for _ in 0..runs {
        plain.push(
            timed(
                orca().args(["run", "benches/counter.ron", "--events", &file_arg]),
                None,
            )
            .await,
        );
        let inspect = [
            "run",
            "benches/counter.ron",
            "--events",
            &file_arg,
            "--inspect",
        ];
        alone.push(timed(orca().args(inspect), None).await);
        watched.push(timed(orca().args(inspect), Some(&b)).await);
    }
    let result = |v: &[(f64, f64, f64)]| median(v.iter().map(|x| x.0).collect());
    let exit = |v: &[(f64, f64, f64)]| median(v.iter().map(|x| x.1).collect());
    let p = result(&plain);
    println!("throughput, {events} events, median of {runs} (result printed / process exited):");
    for (name, v) in [
        ("without --inspect       ", &plain),
        ("--inspect, no page      ", &alone),
        ("--inspect, page attached", &watched),
    ] {
        let r = result(v);
        println!(
            "  {name} {r:.3} s / {:.3} s  {:>10.0} events/s  ({:+.1}%)",
            exit(v),
            events as f64 / r,
            (p / r - 1.0) * 100.0
        );
    }
    let attach = median(watched.iter().map(|x| x.2).collect());
    println!("  the page was attached {attach:.3} s after the start");

    // 2. A steady 1,000 events/s with a page open.
    for with_page in [false, true] {
        let (mut child, url) =
            start_inspected(orca().args(["run", "benches/counter.ron", "--inspect"]));
        if with_page {
            b.goto(&url).await;
            b.wait_for("#diagram .state.active").await;
            // Longest gap between animation frames, and messages received, from now on.
            b.eval(
                "window.__gap = 0; window.__msgs = 0; let last = performance.now(); \
                 (function tick(t) { window.__gap = Math.max(window.__gap, t - last); last = t; requestAnimationFrame(tick); })(last); \
                 const es = S.source; es.addEventListener('view', () => window.__msgs++); return true;",
            )
            .await;
        }
        let cpu0 = cpu_seconds(child.id());
        let sent = send_steadily(&url, 1000, seconds).await;
        let stopped = Instant::now();
        let cpu = cpu_seconds(child.id()) - cpu0;
        if with_page {
            // Steps: the start, and per event the event and, on a real clock, the time
            // that passed before it (at most one each).
            b.until(
                "the page to catch up",
                &format!(
                    "return [...document.querySelectorAll('#context li')].some(li => li.dataset.key === 'n' && Number(li.textContent.split(': ')[1]) === {});",
                    sent - sent / 10
                ),
                "return document.getElementById('context').textContent;",
            )
            .await;
            let behind = stopped.elapsed().as_secs_f64();
            let gap = b.eval("return window.__gap;").await.as_f64().unwrap_or(0.0);
            let msgs = b.eval("return window.__msgs;").await.as_u64().unwrap_or(0);
            println!(
                "1,000 events/s for {seconds} s, page open: {sent} events in {msgs} messages ({:.1} events a message), longest frame gap {gap:.0} ms, caught up {:.0} ms after the last event; orca used {cpu:.2} CPU-s",
                sent as f64 / msgs.max(1) as f64,
                behind * 1000.0
            );
        } else {
            println!(
                "1,000 events/s for {seconds} s, no page: {sent} events; orca used {cpu:.2} CPU-s"
            );
        }
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let _ = child.wait();
    }
    b.close().await;
    let _ = std::fs::remove_file(&file);
}

/// Runs `cmd` to its end: seconds until it printed its result (`done: ...`), until it
/// exited, and until `page` (when given) loaded the inspector.
async fn timed(cmd: &mut Command, page: Option<&browser::Browser>) -> (f64, f64, f64) {
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orca starts");
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if line.starts_with("done:") {
                let _ = tx.send(t.elapsed().as_secs_f64());
            }
        }
    });
    let mut attached = 0.0;
    if let Some(b) = page {
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while err.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(url) = line.trim().strip_prefix("inspect: ") {
                b.goto(url).await;
                attached = t.elapsed().as_secs_f64();
                break;
            }
            line.clear();
        }
        std::thread::spawn(move || for _ in err.lines() {});
    }
    let st = child.wait().unwrap();
    let exited = t.elapsed().as_secs_f64();
    assert!(st.success(), "orca failed: {st}");
    let result = rx.recv().expect("the result line");
    (result, exited, attached)
}
