//! The live inspector, in a real Chromium: `orca run --inspect`, `orca step --inspect` and
//! `orca inspect` pages followed, clicked and moved back and forth; and what it refuses.

#[path = "common/browser.rs"]
mod browser;

use browser::Browser;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn orca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orca"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("orca-inspect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An orca process serving a page: its URL (from the `inspect:` line on stderr), its
/// stdin, and its stdout lines as they come.
struct Served {
    child: Child,
    url: String,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    fn start(cmd: &mut Command) -> Served {
        let mut child = cmd
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("orca starts");
        let (url_tx, url_rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("inspect: http") {
                    let _ = url_tx.send(format!("http{url}"));
                }
                keep.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let (out_tx, out_rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if out_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let url = url_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("orca printed no inspect URL: {}", stderr.lock().unwrap()));
        Served {
            stdin: child.stdin.take(),
            child,
            url,
            stdout: out_rx,
            stderr,
        }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next stdout line (waiting up to 15 s).
    fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no output; stderr: {}", self.stderr.lock().unwrap()))
    }

    fn interrupt(&self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
    }

    fn wait(&mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "orca did not exit; stderr: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots for the docs go, when asked for (`ORCA_SCREENSHOTS=docs`).
fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("ORCA_SCREENSHOTS").map(|d| root().join(d))
}

const DESCRIBE: &str = "return {active: [...document.querySelectorAll('#diagram .state.active')].map(g => g.dataset.state), \
    log: [...document.querySelectorAll('#log tbody tr')].map(r => r.textContent), \
    banner: document.getElementById('ended').textContent, \
    moment: document.getElementById('moment').textContent};";

#[tokio::test]
async fn a_machine_run_is_followed_and_driven_from_the_page() {
    let mut run = Served::start(orca().args(["run", "machines/order.ron", "--inspect"]));
    let b = Browser::start().await;
    b.goto(&run.url).await;
    b.wait_for("#diagram .state[data-state='cart'].active")
        .await;
    assert_eq!(b.active_states().await, vec!["cart"]);

    // An event sent from the page: the run takes it, the diagram and the log follow.
    b.click("button.event[data-event='CHECKOUT']").await;
    b.until(
        "awaiting_payment to be lit",
        "return [...document.querySelectorAll('#diagram .state.active')].map(g => g.dataset.state).join() === 'awaiting_payment';",
        DESCRIBE,
    )
    .await;
    let log = b.eval("return [...document.querySelectorAll('#log tbody tr')].map(r => r.textContent).join('\\n');").await;
    assert!(
        log.as_str()
            .unwrap()
            .contains("CHECKOUTcart → awaiting_payment"),
        "{log}"
    );

    // With data: a payment that covers the total.
    b.type_into("#event-data", r#"{"amount": 30}"#).await;
    b.click("button.event[data-event='PAY']").await;
    b.until(
        "paid.packing to be lit",
        "return [...document.querySelectorAll('#diagram .state.active')].some(g => g.dataset.state === 'paid.packing');",
        DESCRIBE,
    )
    .await;
    assert_eq!(b.active_states().await, vec!["paid", "paid.packing"]);
    let context = b
        .eval("return document.querySelector('#context li[data-key=paid]').textContent;")
        .await;
    assert_eq!(context, "paid: 30");
    if let Some(dir) = screenshot_dir() {
        b.screenshot(&dir.join("inspect-machine.png")).await;
    }

    // The timeline goes back through the run without touching it.
    b.eval("const t = document.getElementById('timeline'); t.value = String(Number(t.value) - 2); t.dispatchEvent(new Event('input')); return true;").await;
    b.until(
        "the moment before the payment",
        "return [...document.querySelectorAll('#diagram .state.active')].map(g => g.dataset.state).join() === 'awaiting_payment';",
        DESCRIBE,
    )
    .await;
    let row = b
        .eval("return document.querySelector('#log tr.current').textContent;")
        .await;
    assert!(row.as_str().unwrap().contains("CHECKOUT"), "{row}");
    // Back to live: the run itself went on.
    b.click("#follow").await;
    b.until(
        "live again",
        "return [...document.querySelectorAll('#diagram .state.active')].some(g => g.dataset.state === 'paid.packing');",
        DESCRIBE,
    )
    .await;

    // The run ends (Ctrl-C): the page says so and keeps what it showed.
    run.interrupt();
    assert_eq!(run.wait(), 130);
    b.until(
        "the ending",
        "return document.getElementById('ended').textContent.includes('interrupted') && document.getElementById('connection').textContent.includes('stopped serving');",
        DESCRIBE,
    )
    .await;
    assert_eq!(b.active_states().await, vec!["paid", "paid.packing"]);
    b.close().await;
}

#[tokio::test]
async fn a_stepper_session_is_shared_by_the_terminal_and_the_page() {
    let mut step = Served::start(orca().args([
        "step",
        "machines/order.ron",
        "--json",
        "--inspect",
        "127.0.0.1:0",
    ]));
    let b = Browser::start().await;
    b.goto(&step.url).await;
    b.wait_for("#diagram .state[data-state='cart'].active")
        .await;

    // From the terminal: the page follows.
    step.send_line("CHECKOUT");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(
        reply["configuration"],
        serde_json::json!(["awaiting_payment"])
    );
    b.until(
        "the terminal's step on the page",
        "return [...document.querySelectorAll('#diagram .state.active')].map(g => g.dataset.state).join() === 'awaiting_payment';",
        DESCRIBE,
    )
    .await;

    // `why` on hover, from the session itself.
    b.wait_for("button.event[data-event='PAY']").await;
    b.eval("document.querySelector(\"button.event[data-event='PAY']\").dispatchEvent(new Event('mouseenter')); return true;").await;
    b.until(
        "the why text",
        "return document.getElementById('why').textContent.includes('guard');",
        "return document.getElementById('why').textContent;",
    )
    .await;

    // From the page, with data: the terminal's session took it.
    b.type_into("#event-data", r#"{"amount": 50}"#).await;
    b.click("button.event[data-event='PAY']").await;
    b.until(
        "paid.packing",
        "return [...document.querySelectorAll('#diagram .state.active')].some(g => g.dataset.state === 'paid.packing');",
        DESCRIBE,
    )
    .await;
    step.send_line("context");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(reply["context"]["paid"], 50);
    assert_eq!(
        reply["configuration"],
        serde_json::json!(["paid", "paid.packing"])
    );

    // Back from the page: the terminal's session went back too.
    b.click("#back").await;
    b.until(
        "one step back",
        "return [...document.querySelectorAll('#diagram .state.active')].map(g => g.dataset.state).join() === 'awaiting_payment';",
        DESCRIBE,
    )
    .await;
    step.send_line("context");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(
        reply["configuration"],
        serde_json::json!(["awaiting_payment"])
    );
    assert_eq!(reply["step"], 1);

    // Back from the terminal, forward from the page's timeline.
    step.send_line("back");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(reply["configuration"], serde_json::json!(["cart"]));
    b.until(
        "cart again",
        "return [...document.querySelectorAll('#diagram .state.active')].map(g => g.dataset.state).join() === 'cart';",
        DESCRIBE,
    )
    .await;
    b.eval("const t = document.getElementById('timeline'); t.value = t.max; t.dispatchEvent(new Event('change')); return true;").await;
    b.until(
        "forward to the end of the line",
        "return [...document.querySelectorAll('#diagram .state.active')].some(g => g.dataset.state === 'paid.packing');",
        DESCRIBE,
    )
    .await;
    step.send_line("context");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(reply["step"], 2);

    // The page may not end the session or write files.
    let refused = b
        .eval("return fetch('api/command', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({line: 'save /tmp/x.journal'})}).then(r => r.json()).then(r => r.error);")
        .await;
    assert!(refused.as_str().unwrap().contains("terminal"), "{refused}");

    // The end of input ends the session; the page says so.
    assert_eq!(step.wait(), 0);
    b.until(
        "the ending",
        "return document.getElementById('connection').textContent.includes('stopped serving');",
        DESCRIBE,
    )
    .await;
    b.close().await;
}

/// A workflow whose first operation waits for the test to create `go` in `dir`, and whose
/// last waits for `go2`, so that the page sees them at work.
fn gated_workflow(dir: &Path) -> String {
    format!(
        r#"Workflow(
    id: "gated",
    tasks: {{
        "fetch": (run: Shell("while [ ! -e '{go}' ]; do sleep 0.05; done; echo '{{\"rows\": 3}}'")),
        "build": (after: ["fetch"], run: Shell("echo building >&2; sleep 0.3; echo '{{\"ok\": true}}'")),
        "test": (after: ["build"], run: Shell("echo testing >&2; while [ ! -e '{go2}' ]; do sleep 0.05; done")),
    }},
)"#,
        go = dir.join("go").display(),
        go2 = dir.join("go2").display()
    )
}

#[tokio::test]
async fn a_workflow_run_turns_its_operations_to_succeeded() {
    let dir = scratch("wf");
    let file = dir.join("gated.ron");
    std::fs::write(&file, gated_workflow(&dir)).unwrap();
    let run_dir = dir.join("run");
    let mut run = Served::start(orca().args([
        "run",
        file.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--inspect",
    ]));
    let b = Browser::start().await;
    b.goto(&run.url).await;
    b.wait_for("#ops tr[data-op='fetch']").await;
    // Live: something is running before everything has succeeded.
    b.until(
        "an operation at work",
        "return [...document.querySelectorAll('#ops tr')].some(r => ['Executing', 'Analyzing', 'Integrating', 'Researching'].includes(r.dataset.state));",
        "return [...document.querySelectorAll('#ops tr')].map(r => r.dataset.op + ':' + r.dataset.state);",
    )
    .await;
    assert_eq!(
        b.eval("return document.querySelector(\"#ops tr[data-op='build']\").dataset.state;")
            .await,
        "Pending"
    );
    b.click("#ops tr[data-op='build']").await;
    std::fs::write(dir.join("go"), "").unwrap();
    // The build's output shows as soon as it succeeded, while the run goes on.
    b.until(
        "the build's output, live",
        "return document.getElementById('detail-output').textContent.includes('\"ok\": true') && document.getElementById('ended').hidden;",
        "return [document.getElementById('ended').textContent, document.getElementById('detail-output').textContent];",
    )
    .await;
    b.until(
        "the test at work",
        "return document.querySelector(\"#ops tr[data-op='test']\").dataset.state === 'Executing';",
        "return [...document.querySelectorAll('#ops tr')].map(r => r.dataset.op + ':' + r.dataset.state);",
    )
    .await;
    std::fs::write(dir.join("go2"), "").unwrap();
    b.until(
        "every operation succeeded",
        "return ['', 'fetch', 'build', 'test'].every(op => document.querySelector(`#ops tr[data-op='${op}']`).dataset.state === 'Succeeded');",
        "return [...document.querySelectorAll('#ops tr')].map(r => r.dataset.op + ':' + r.dataset.state);",
    )
    .await;
    assert_eq!(run.wait(), 0);
    b.until(
        "the ending and the output",
        "return document.getElementById('ended').textContent.includes('succeeded') && document.getElementById('detail-output').textContent.includes('\"ok\": true');",
        "return [document.getElementById('ended').textContent, document.getElementById('detail-output').textContent];",
    )
    .await;
    // The Gantt bars: one per operation that ran, in time order.
    let bars = b
        .eval("return ['fetch', 'build', 'test'].map(op => parseFloat(document.querySelector(`#ops tr[data-op='${op}'] .bar`).style.left));")
        .await;
    let lefts: Vec<f64> = serde_json::from_value(bars).unwrap();
    assert!(lefts[0] < lefts[1] && lefts[1] < lefts[2], "{lefts:?}");
    if let Some(dir) = screenshot_dir() {
        b.screenshot(&dir.join("inspect-workflow.png")).await;
    }

    // The recorded run, afterwards: the same states, and the build's log tail.
    let shown = Served::start(orca().args(["inspect", run_dir.to_str().unwrap()]));
    b.goto(&shown.url).await;
    b.until(
        "the recorded run",
        "return ['fetch', 'build', 'test'].every(op => { const r = document.querySelector(`#ops tr[data-op='${op}']`); return r && r.dataset.state === 'Succeeded'; });",
        "return [...document.querySelectorAll('#ops tr')].map(r => r.dataset.op + ':' + r.dataset.state);",
    )
    .await;
    b.click("#ops tr[data-op='build']").await;
    b.until(
        "the log tail",
        "return document.getElementById('detail-logs').textContent.includes('building');",
        "return document.getElementById('detail-logs').textContent;",
    )
    .await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failed_run_offers_its_resume_command() {
    let dir = scratch("failed");
    let file = dir.join("fails.ron");
    std::fs::write(
        &file,
        r#"Workflow(id: "fails", tasks: { "ok": (run: Shell("true")), "bad": (after: ["ok"], run: Shell("exit 3")) })"#,
    )
    .unwrap();
    let run_dir = dir.join("run");
    let st = orca()
        .args(["run", file.to_str().unwrap(), "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    let shown = Served::start(orca().args(["inspect", run_dir.to_str().unwrap()]));
    let b = Browser::start().await;
    b.goto(&shown.url).await;
    let resume = b.wait_for("#resume").await.text().await.unwrap();
    assert_eq!(resume, format!("orca resume {}", run_dir.display()));
    b.until(
        "the failed operation",
        "return document.querySelector(\"#ops tr[data-op='bad']\").dataset.state === 'Failed';",
        "return [...document.querySelectorAll('#ops tr')].map(r => r.dataset.op + ':' + r.dataset.state);",
    )
    .await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A machine journal from `orca run`, for `orca inspect`.
fn machine_journal(dir: &Path) -> PathBuf {
    let j = dir.join("order.journal");
    let st = orca()
        .current_dir(root())
        .args([
            "run",
            "machines/order.ron",
            "--event",
            "CHECKOUT",
            "--event",
            r#"PAY={"amount": 40}"#,
            "--journal",
        ])
        .arg(&j)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    j
}

#[tokio::test]
async fn a_machine_journal_is_shown_and_its_timeline_moves() {
    let dir = scratch("journal");
    let j = machine_journal(&dir);
    let shown = Served::start(orca().arg("inspect").arg(&j));
    let b = Browser::start().await;
    b.goto(&shown.url).await;
    b.wait_for("#diagram .state[data-state='paid.packing'].active")
        .await;
    assert!(
        b.eval("return document.getElementById('ended').textContent;")
            .await
            .as_str()
            .unwrap()
            .contains("idle")
    );
    // Recorded: no events to send.
    assert_eq!(
        b.eval("return [...document.querySelectorAll('button.event')].every(x => x.disabled);")
            .await,
        true
    );
    b.click("#log tbody tr[data-step='0']").await;
    b.until(
        "the start",
        "return [...document.querySelectorAll('#diagram .state.active')].map(g => g.dataset.state).join() === 'cart';",
        DESCRIBE,
    )
    .await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw HTTP GET: the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    get_as(addr, addr, path)
}

/// A raw HTTP GET naming `host` in its `Host` header.
fn get_as(addr: &str, host: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text[9..12].parse().unwrap();
    (code, text)
}

#[tokio::test]
async fn beyond_loopback_a_token_is_required() {
    let dir = scratch("token");
    let j = machine_journal(&dir);
    let shown = Served::start(orca().arg("inspect").arg(&j).arg("0.0.0.0:0"));
    let (host, token) = shown
        .url
        .strip_prefix("http://")
        .and_then(|u| u.split_once("/?token="))
        .expect("a URL with a token");
    assert_eq!(token.len(), 32);
    let port = host.rsplit(':').next().unwrap();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(get(&addr, "/").0, 401);
    assert_eq!(get(&addr, "/api/view").0, 401);
    assert_eq!(
        get(&addr, "/?token=0123456789abcdef0123456789abcdef").0,
        401
    );
    assert_eq!(get(&addr, &format!("/api/view?token={token}")).0, 200);

    // In the browser: the wrong token is refused, the right one opens the page, whose own
    // requests then carry it.
    let b = Browser::start().await;
    b.goto(&format!("http://{addr}/?token=wrong")).await;
    let body = b.eval("return document.body.textContent;").await;
    assert!(body.as_str().unwrap().contains("needs the token"), "{body}");
    b.goto(&format!("http://{addr}/?token={token}")).await;
    b.wait_for("#diagram .state[data-state='paid.packing'].active")
        .await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn on_loopback_only_loopback_names_are_served() {
    let dir = scratch("rebinding");
    let j = machine_journal(&dir);
    let shown = Served::start(orca().arg("inspect").arg(&j));
    let addr = shown
        .url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap()
        .to_string();
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(get(&addr, "/api/view").0, 200);
    let (code, page) = get_as(&addr, &format!("localhost:{port}"), "/");
    assert_eq!(code, 200);
    // Not to be framed by another site.
    let headers = page.to_ascii_lowercase();
    assert!(headers.contains("x-frame-options: deny"), "{page}");
    assert!(headers.contains("frame-ancestors 'none'"), "{page}");
    // A name made to resolve to 127.0.0.1 (DNS rebinding) gets nothing.
    let (code, body) = get_as(&addr, &format!("attacker.example:{port}"), "/api/view");
    assert_eq!(code, 403, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_address_in_use_or_an_unreadable_journal_is_a_clear_error() {
    let dir = scratch("bad");
    let j = machine_journal(&dir);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = orca().arg("inspect").arg(&j).arg(&addr).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = orca()
        .current_dir(root())
        .args(["run", "machines/order.ron", "--inspect", "not an address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an address"));

    // Nothing is created when the address cannot be had: no journal, no run.
    let journal = dir.join("never.journal");
    let out = orca()
        .current_dir(root())
        .args(["run", "machines/order.ron", "--inspect", &addr, "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!journal.exists());
    let run_dir = dir.join("never-run");
    let out = orca()
        .current_dir(root())
        .args([
            "run",
            "machines/fanout.ron",
            "--inspect",
            &addr,
            "--run-dir",
        ])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!run_dir.exists());
    let out = orca()
        .current_dir(root())
        .args([
            "step",
            "machines/order.ron",
            "--inspect",
            &addr,
            "--journal",
        ])
        .arg(&journal)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!journal.exists());

    let garbage = dir.join("garbage.journal");
    std::fs::write(&garbage, "this is not a journal\n").unwrap();
    let out = orca().arg("inspect").arg(&garbage).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("garbage.journal"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = orca()
        .arg("inspect")
        .arg(dir.join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_simulated_workflow_is_answered_from_the_terminal_and_the_page() {
    let dir = scratch("wfstep");
    let file = dir.join("two.ron");
    std::fs::write(
        &file,
        r#"Workflow(id: "two", tasks: { "a": (run: Shell("make a")), "b": (after: ["a"], run: Shell("make b")) })"#,
    )
    .unwrap();
    let mut step =
        Served::start(orca().args(["step", file.to_str().unwrap(), "--json", "--inspect"]));
    let b = Browser::start().await;
    b.goto(&step.url).await;
    let state = |op: &str| {
        format!(
            "return (document.querySelector(\"#ops tr[data-op='{op}']\") || {{dataset: {{}}}}).dataset.state;"
        )
    };
    const OPS: &str = "return [...document.querySelectorAll('#ops tr')].map(r => r.dataset.op + ':' + r.dataset.state);";
    // The page answers for `a`, with an output.
    b.wait_for(".would[data-op='a'] button.ok").await;
    b.type_into("#wf-data", r#"{"v": 1}"#).await;
    b.click(".would[data-op='a'] button.ok").await;
    b.until(
        "a succeeded",
        &format!("{} === 'Succeeded';", state("a").trim_end_matches(';')),
        OPS,
    )
    .await;
    b.wait_for(".would[data-op='b']").await;
    // The terminal's session took it.
    step.send_line("tree");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(reply["step"], 1);
    assert_eq!(reply["operations"][1]["state"], "Succeeded");
    assert_eq!(reply["would_run"][0]["op"], "b");
    // The terminal answers for `b`; the page follows.
    step.send_line("ok b");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(reply["operations"][0]["state"], "Succeeded");
    b.until(
        "b succeeded",
        &format!("{} === 'Succeeded';", state("b").trim_end_matches(';')),
        OPS,
    )
    .await;
    b.click("#ops tr[data-op='a']").await;
    b.until(
        "the output of a",
        "return document.getElementById('detail-output').textContent.includes('\"v\": 1');",
        "return document.getElementById('detail-output').textContent;",
    )
    .await;
    // Back from the page: `b` waits again, in both views.
    b.click("#wf-back").await;
    b.wait_for(".would[data-op='b']").await;
    step.send_line("tree");
    let reply: serde_json::Value = serde_json::from_str(&step.next_line()).unwrap();
    assert_eq!(reply["step"], 1);
    assert_eq!(reply["would_run"][0]["op"], "b");
    assert_eq!(step.wait(), 0);
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn graph_json_is_the_structure_the_page_draws() {
    let out = orca()
        .current_dir(root())
        .args(["graph", "machines/order.ron", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "order");
    let paid = v["states"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "paid")
        .unwrap();
    assert_eq!(paid["kind"], "compound");
    assert_eq!(paid["initial"], "paid.packing");
    assert!(
        v["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["described"] == "cart → awaiting_payment"
                && t["label"] == "CHECKOUT [total > 0]")
    );
    let out = orca()
        .current_dir(root())
        .args(["graph", "machines/release.ron", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ops"][0]["path"], "");
    assert!(v["ops"].as_array().unwrap().len() > 3);
}

#[test]
fn an_inspected_workflow_stepper_says_an_error_once_where_it_would_without_the_page() {
    let dir = scratch("wferr");
    let file = dir.join("one.ron");
    std::fs::write(
        &file,
        r#"Workflow(id: "one", tasks: { "a": (run: Shell("make a")) })"#,
    )
    .unwrap();
    let said = |inspect: bool| {
        let mut cmd = orca();
        cmd.args(["step", file.to_str().unwrap()]);
        if inspect {
            cmd.arg("--inspect");
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"ok nowhere\n").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (plain_out, plain_err) = said(false);
    let (out, err) = said(true);
    assert_eq!(plain_out.matches("error:").count(), 1, "{plain_out}");
    assert!(!plain_err.contains("nowhere"), "{plain_err}");
    assert_eq!(out.matches("error:").count(), 1, "{out}");
    assert!(out.contains("nowhere"), "{out}");
    assert!(!err.contains("nowhere"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
