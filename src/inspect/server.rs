//! The inspector's HTTP side: the page and its assets (all in the binary), a server-sent
//! event stream per page carrying what changed, and the page's commands back to the run.
//!
//! The server runs on its own thread and tokio runtime, so a browser that reads slowly, or
//! not at all, holds up only its own stream: the run writes to the [`Hub`] and goes on.

use super::Hub;
use crate::model::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as JsonBody, Router};
use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The address `--inspect` serves on when none is given: loopback, any free port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:0";

/// How a page's commands reach the run.
pub enum Control {
    /// The page only looks (`orca inspect`, a workflow run).
    None,
    /// `orca step`: command lines for the session, which answers each.
    Step(std::sync::mpsc::Sender<PageCommand>),
    /// `orca run` of a machine: external events for the runner.
    Events(tokio::sync::mpsc::UnboundedSender<crate::interpreter::Event>),
}

/// A stepper command line sent from the page, and where its answer goes.
pub struct PageCommand {
    pub line: String,
    pub reply: oneshot::Sender<Json>,
}

/// Why the inspector could not start.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("--inspect `{addr}`: not an address to listen on ({why})")]
    BadAddress { addr: String, why: String },
    #[error("the inspector cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the inspector cannot start: {0}")]
    Start(std::io::Error),
}

/// A running inspector. Dropping it (or [`Served::stop`]) sends every page the final view
/// and stops serving.
pub struct Served {
    /// The page's address, with `?token=` when one is needed.
    pub url: String,
    /// Set when serving on a non-loopback address: requests without it get 401.
    pub token: Option<String>,
    pub addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Served {
    /// Sends every open page the final view, then stops; waits at most two seconds for
    /// pages that do not read (the run is never held up by a browser).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct App {
    hub: Arc<Hub>,
    control: Control,
    token: Option<String>,
    /// A workflow run's directory, for the operations' log tails.
    logs: Option<PathBuf>,
    stop: watch::Receiver<bool>,
    port: u16,
}

/// Parses `ADDR` as `HOST:PORT` or a bare port (on loopback).
fn resolve(addr: &str) -> Result<SocketAddr, InspectError> {
    let bad = |why: String| InspectError::BadAddress {
        addr: addr.to_string(),
        why,
    };
    let spelled = if addr.parse::<u16>().is_ok() {
        format!("127.0.0.1:{addr}")
    } else {
        addr.to_string()
    };
    spelled
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("it names no address".into()))
}

/// A token of 128 random bits, hex.
fn new_token() -> Result<String, InspectError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(InspectError::Start)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts serving `hub` on `addr` (see [`DEFAULT_ADDR`]): [`bind`], then [`Bound::serve`].
pub fn serve(
    hub: Arc<Hub>,
    addr: &str,
    control: Control,
    logs: Option<PathBuf>,
) -> Result<Served, InspectError> {
    bind(addr)?.serve(hub, control, logs)
}

/// An address taken for the inspector, not served yet: commands bind before they create
/// anything, so that an address in use or mistyped leaves nothing behind.
pub struct Bound {
    listener: std::net::TcpListener,
    local: SocketAddr,
}

/// Takes `addr` (`HOST:PORT` or a port).
pub fn bind(addr: &str) -> Result<Bound, InspectError> {
    let wanted = resolve(addr)?;
    let listener = std::net::TcpListener::bind(wanted).map_err(|source| InspectError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let local = listener.local_addr().map_err(InspectError::Start)?;
    listener
        .set_nonblocking(true)
        .map_err(InspectError::Start)?;
    Ok(Bound { listener, local })
}

impl Bound {
    /// Serves `hub` here until the [`Served`] is stopped or dropped.
    pub fn serve(
        self,
        hub: Arc<Hub>,
        control: Control,
        logs: Option<PathBuf>,
    ) -> Result<Served, InspectError> {
        let Bound { listener, local } = self;
        start_serving(listener, local, hub, control, logs)
    }
}

fn start_serving(
    listener: std::net::TcpListener,
    local: SocketAddr,
    hub: Arc<Hub>,
    control: Control,
    logs: Option<PathBuf>,
) -> Result<Served, InspectError> {
    let token = if local.ip().is_loopback() {
        None
    } else {
        Some(new_token()?)
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let app = Arc::new(App {
        hub,
        control,
        token: token.clone(),
        logs,
        stop: stop_rx.clone(),
        port: local.port(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(InspectError::Start)?;
    std::thread::Builder::new()
        .name("orca-inspect".into())
        .spawn(move || {
            let span = tracing::info_span!("inspect", addr = %local);
            let _entered = span.enter();
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "the inspector cannot listen");
                        return;
                    }
                };
                let mut stop = stop_rx;
                let served =
                    axum::serve(listener, router(app)).with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    });
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "the inspector stopped");
                }
            });
            let _ = done_tx.send(());
        })
        .map_err(InspectError::Start)?;
    let host = match local {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    let url = match &token {
        Some(t) => format!("http://{host}/?token={t}"),
        None => format!("http://{host}/"),
    };
    Ok(Served {
        url,
        token,
        addr: local,
        stop: Some(stop_tx),
        done: Some(done_rx),
    })
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(|| asset(APP_JS, "text/javascript")))
        .route("/assets/app.css", get(|| asset(APP_CSS, "text/css")))
        .route("/assets/elk.js", get(|| asset(ELK_JS, "text/javascript")))
        .route(
            "/assets/elk-LICENSE.md",
            get(|| asset(ELK_LICENSE, "text/markdown; charset=utf-8")),
        )
        .route("/api/structure", get(structure))
        .route("/api/view", get(view))
        .route("/api/stream", get(stream))
        .route("/api/command", post(command))
        .route("/api/event", post(event))
        .route("/api/logs", get(logs))
        .layer(axum::middleware::from_fn_with_state(app.clone(), authorize))
        .with_state(app)
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ELK_JS: &str = include_str!("assets/vendor/elkjs/elk.bundled.js");
const ELK_LICENSE: &str = include_str!("assets/vendor/elkjs/LICENSE.md");

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// The token's cookie is named per port: cookies ignore ports, and two inspectors on one
/// host must not overwrite each other's.
fn cookie_name(port: u16) -> String {
    format!("orca_token_{port}")
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The token of a request: `?token=` or the cookie the page got with it.
fn presented(req: &Request, port: u16) -> Option<String> {
    let cookie = format!("{}=", cookie_name(port));
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    from_query.or_else(|| {
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(cookie.as_str()).map(str::to_string))
    })
}

/// Whether the request's `Host` names the machine itself.
fn loopback_host(req: &Request) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    // `HOST:PORT`, `[V6]:PORT` or a bare name.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// With a token (non-loopback), refuses requests that do not present it; the page gets it
/// as a cookie so that its own requests carry it.
async fn authorize(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut res = check(&app, req, next).await;
    // Not to be framed by another site (clicks on the page's buttons drive the run).
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    res
}

async fn check(app: &App, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        // On loopback, only pages that asked for a loopback name: a site whose name was made
        // to resolve to 127.0.0.1 (DNS rebinding) cannot drive the run from a browser.
        if !loopback_host(&req) {
            return (
                StatusCode::FORBIDDEN,
                "orca inspect: open this inspector as 127.0.0.1, localhost or [::1]\n",
            )
                .into_response();
        }
        return next.run(req).await;
    };
    match presented(&req, app.port) {
        Some(t) if same(&t, token) => {
            let mut res = next.run(req).await;
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{}={token}; HttpOnly; SameSite=Strict; Path=/",
                cookie_name(app.port)
            )) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            "orca inspect: this inspector needs the token it printed at start (open the URL with ?token=)\n",
        )
            .into_response(),
    }
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn structure(State(app): State<Arc<App>>) -> Response {
    JsonBody(app.hub.structure()).into_response()
}

#[derive(serde::Deserialize)]
struct Since {
    #[serde(default)]
    from: u64,
    #[serde(default)]
    generation: u64,
    #[serde(default)]
    structure_version: u64,
    #[serde(default = "no_limit")]
    limit: usize,
}

fn no_limit() -> usize {
    usize::MAX
}

/// A machine page's stream carries at most this many of the newest steps at a time.
const STREAM_TAIL: u64 = 200;

/// A page gets at most one message per this long: a run's bursts reach it coalesced.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

async fn view(State(app): State<Arc<App>>, Query(q): Query<Since>) -> Response {
    JsonBody(
        app.hub
            .view(q.from, q.generation, q.structure_version, q.limit),
    )
    .into_response()
}

/// Per page: a view of what it has not seen each time the hub changes (a burst of changes
/// is one message), and a last one when the inspector stops.
async fn stream(
    State(app): State<Arc<App>>,
    Query(q): Query<Since>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    struct Cursor {
        app: Arc<App>,
        rx: watch::Receiver<u64>,
        stop: watch::Receiver<bool>,
        from: u64,
        generation: u64,
        structure_version: u64,
        /// Whether the hub moved since the last message (the first message is due).
        due: bool,
        finished: bool,
        tail: u64,
        last: Option<tokio::time::Instant>,
    }
    let rx = app.hub.subscribe();
    let stop = app.stop.clone();
    let tail = match app.hub.subject() {
        super::Subject::Machine => STREAM_TAIL,
        // A workflow's page tallies every change.
        super::Subject::Workflow => u64::MAX,
    };
    let cursor = Cursor {
        app,
        rx,
        stop,
        from: q.from,
        generation: q.generation,
        structure_version: q.structure_version,
        due: true,
        finished: false,
        tail,
        last: None,
    };
    let s = futures_util::stream::unfold(cursor, |mut c| async move {
        if c.finished {
            return None;
        }
        if !c.due {
            tokio::select! {
                changed = c.rx.changed() => {
                    if changed.is_err() { c.finished = true; }
                }
                _ = c.stop.wait_for(|s| *s) => { c.finished = true; }
            }
        }
        if let Some(last) = c.last
            && !c.finished
        {
            tokio::select! {
                _ = tokio::time::sleep_until(last + MIN_INTERVAL) => {}
                _ = c.stop.wait_for(|s| *s) => { c.finished = true; }
            }
        }
        c.last = Some(tokio::time::Instant::now());
        if *c.stop.borrow() {
            c.finished = true;
        }
        c.rx.borrow_and_update();
        let v = c.app.hub.view_tail(
            c.from,
            c.generation,
            c.structure_version,
            super::PAGE_ITEMS,
            c.tail,
        );
        c.structure_version = v["structure_version"].as_u64().unwrap_or(0);
        let total = v["total"].as_u64().unwrap_or(0);
        let got = v["items"].as_array().map_or(0, Vec::len) as u64;
        c.generation = v["generation"].as_u64().unwrap_or(0);
        c.from = v["from"].as_u64().unwrap_or(0) + got;
        // More to send than one message holds: go again without waiting.
        c.due = c.from < total;
        if c.finished && c.due {
            c.finished = false;
        }
        let name = if c.finished { "final" } else { "view" };
        Some((Ok(SseEvent::default().event(name).data(v.to_string())), c))
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}

#[derive(serde::Deserialize)]
struct Line {
    line: String,
}

async fn command(State(app): State<Arc<App>>, JsonBody(body): JsonBody<Line>) -> Response {
    let Control::Step(tx) = &app.control else {
        return (
            StatusCode::CONFLICT,
            "this run is not a stepper session: only `orca step --inspect` takes commands\n",
        )
            .into_response();
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    if tx
        .send(PageCommand {
            line: body.line,
            reply: reply_tx,
        })
        .is_err()
    {
        return (StatusCode::GONE, "the session has ended\n").into_response();
    }
    match tokio::time::timeout(Duration::from_secs(30), reply_rx).await {
        Ok(Ok(v)) => JsonBody(v).into_response(),
        Ok(Err(_)) => (StatusCode::GONE, "the session has ended\n").into_response(),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the session did not answer within 30 s\n",
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct PageEvent {
    name: String,
    #[serde(default)]
    data: Json,
}

async fn event(State(app): State<Arc<App>>, JsonBody(body): JsonBody<PageEvent>) -> Response {
    let Control::Events(tx) = &app.control else {
        return (
            StatusCode::CONFLICT,
            "this run takes no events from the page\n",
        )
            .into_response();
    };
    if body.name.is_empty() || body.name.chars().any(char::is_whitespace) {
        return (
            StatusCode::BAD_REQUEST,
            "an event name is non-empty and has no spaces\n",
        )
            .into_response();
    }
    if app.hub.ended() {
        return (StatusCode::GONE, "the run has ended\n").into_response();
    }
    let ev = crate::interpreter::Event::external(body.name.as_str()).with_data(body.data);
    match tx.send(ev) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => (StatusCode::GONE, "the run has ended\n").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct LogsOf {
    op: String,
}

/// The last bytes kept of each log file shown.
const LOG_TAIL: u64 = 16 * 1024;

/// The tails of an operation's log files (`logs/<op>.<phase>-<attempt>.stdout|stderr`),
/// oldest first. The operation is matched against the directory's names, never joined
/// into a path, so no request reads outside the run's logs.
async fn logs(State(app): State<Arc<App>>, Query(q): Query<LogsOf>) -> Response {
    let Some(dir) = app.logs.as_ref().map(|d| d.join("logs")) else {
        return JsonBody(serde_json::json!([])).into_response();
    };
    let name = if q.op.is_empty() { "_root" } else { &q.op };
    let prefix = format!("{name}.");
    let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let rest = file.strip_prefix(&prefix)?;
            // `deploy.` must not match `deploy.canary.run-1.stdout`: a phase has no dot.
            if rest.split('.').count() != 2 {
                return None;
            }
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, file, e.path()))
        })
        .collect();
    files.sort();
    let tails: Vec<Json> = files
        .into_iter()
        .map(|(_, file, path)| serde_json::json!({ "file": file, "tail": tail(&path) }))
        .collect();
    JsonBody(Json::Array(tails)).into_response()
}

fn tail(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
    let mut buf = Vec::new();
    let _ = f.take(LOG_TAIL).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
