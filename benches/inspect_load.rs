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
    let mut attach = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let st = orca()
            .args(["run", "benches/counter.ron", "--events", &file_arg])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        plain.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let (mut child, _url) = start_inspected(orca().args([
            "run",
            "benches/counter.ron",
            "--events",
            &file_arg,
            "--inspect",
        ]));
        // Without a page and with the events delivered, the run waits for the page's
        // events: Ctrl-C ends it once the last step is in.
        wait_for_steps(&mut child, events, None).await;
        alone.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let (mut child, url) = start_inspected(orca().args([
            "run",
            "benches/counter.ron",
            "--events",
            &file_arg,
            "--inspect",
        ]));
        b.goto(&url).await;
        attach.push(t.elapsed().as_secs_f64());
        wait_for_steps(&mut child, events, Some(&url)).await;
        watched.push(t.elapsed().as_secs_f64());
    }
    let (p, a, w) = (median(plain), median(alone), median(watched));
    println!("throughput, {events} events, median of {runs}:");
    println!(
        "  without --inspect        {p:.3} s  {:>10.0} events/s",
        events as f64 / p
    );
    println!(
        "  --inspect, no page       {a:.3} s  {:>10.0} events/s  ({:+.1}%)",
        events as f64 / a,
        (p / a - 1.0) * 100.0
    );
    println!(
        "  --inspect, page attached {w:.3} s  {:>10.0} events/s  ({:+.1}%; page attached after {:.3} s)",
        events as f64 / w,
        (p / w - 1.0) * 100.0,
        median(attach)
    );

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

/// Waits until the inspected run has taken its `events` (its view's total reaches them),
/// then interrupts it and waits for it to exit.
async fn wait_for_steps(child: &mut Child, events: usize, _page: Option<&str>) {
    let url = {
        // The same address the page uses; asked without a browser.
        let port = find_port(child.id());
        format!("127.0.0.1:{port}")
    };
    loop {
        if let Some(total) = view_total(&url) {
            // At least one step per event, plus the start.
            if total as usize > events {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let _ = child.wait();
}

/// The port a process listens on, from /proc/net/tcp (its only listening socket).
fn find_port(pid: u32) -> u16 {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(String::from)
        })
        .collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for line in tcp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
            let port = f[1].rsplit(':').next().unwrap();
            return u16::from_str_radix(port, 16).unwrap();
        }
    }
    panic!("process {pid} listens on no TCP port");
}

/// The number of steps an inspected run has shown, from its view.
fn view_total(addr: &str) -> Option<u64> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    // Items from far past the end: only the header comes back.
    write!(
        s,
        "GET /api/view?from=18446744073709551615&structure_version=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["total"].as_u64()
}
