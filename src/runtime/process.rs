//! Invoked commands: each in its own process group, output captured (bounded), stopped with
//! SIGTERM and then SIGKILL.

use super::spawn::{Child, Input, Spec};
use crate::model::Json;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

/// Output beyond this many bytes per stream is read and dropped, so a flood cannot exhaust
/// memory.
pub const MAX_CAPTURE: usize = 16 << 20;

/// How long a cancelled command has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// How a command ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Exit status, or `-signal` when killed by a signal, or -1 when it could not start.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// Why it could not be started, if so.
    pub spawn_error: Option<String>,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        self.status == 0 && self.spawn_error.is_none()
    }

    /// The event data of `done.invoke`/`error.invoke`: stdout parsed as JSON when it parses.
    pub fn data(&self) -> Json {
        let stdout = serde_json::from_str::<Json>(self.stdout.trim())
            .unwrap_or_else(|_| Json::String(self.stdout.clone()));
        let mut data =
            serde_json::json!({ "status": self.status, "stdout": stdout, "stderr": self.stderr });
        if let Some(e) = &self.spawn_error {
            data["error"] = Json::String(e.clone());
        }
        data
    }
}

/// A running command: dropping the cancel sender stops it.
pub struct Running {
    cancel: Option<oneshot::Sender<()>>,
}

impl Running {
    /// Stops the command (SIGTERM to its group, SIGKILL after [`GRACE`]).
    pub fn cancel(mut self) {
        if let Some(c) = self.cancel.take() {
            let _ = c.send(());
        }
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_CAPTURE.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

pub(crate) fn signal_group(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group; no memory is touched.
    unsafe {
        libc::kill(-(pid as i32), sig);
    }
}

/// Spawns `argv` (or `sh -c line`) with `stdin` as its input; reports to `done` with `tag`.
pub fn spawn<T: Send + 'static>(
    argv: Vec<String>,
    stdin: Option<String>,
    env: Vec<(String, String)>,
    tag: T,
    done: mpsc::UnboundedSender<(T, Finished)>,
) -> Running {
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let finished = run(argv, stdin, env, cancel_rx).await;
        let _ = done.send((tag, finished));
    });
    Running {
        cancel: Some(cancel_tx),
    }
}

async fn run(
    argv: Vec<String>,
    stdin: Option<String>,
    env: Vec<(String, String)>,
    mut cancel: oneshot::Receiver<()>,
) -> Finished {
    let Some((program, args)) = argv.split_first() else {
        return Finished {
            status: -1,
            stdout: String::new(),
            stderr: String::new(),
            spawn_error: Some("empty command".into()),
        };
    };
    let mut child = match Child::spawn(&Spec {
        program,
        args,
        env: &env,
        cwd: None,
        stdin: stdin
            .as_ref()
            .map_or(Input::Null, |s| Input::Bytes(s.as_bytes())),
    }) {
        Ok(c) => c,
        Err(e) => {
            return Finished {
                status: -1,
                stdout: String::new(),
                stderr: String::new(),
                spawn_error: Some(format!("cannot start `{program}`: {e}")),
            };
        }
    };
    let pid = child.id();
    let out = tokio::spawn(read_capped(child.stdout.take().expect("piped")));
    let err = tokio::spawn(read_capped(child.stderr.take().expect("piped")));
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        _ = &mut cancel => stop_group(&mut child, pid, GRACE).await,
    };
    let status = exit_code(status);
    let stdout = joined(out).await;
    let stderr = joined(err).await;
    Finished {
        status,
        stdout,
        stderr,
        spawn_error: None,
    }
}

/// An exit status as a number: the code, `-signal` when killed by one, -1 when unknown.
pub(crate) fn exit_code(status: Option<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.map_or(-1, |s| s.code().unwrap_or_else(|| -s.signal().unwrap_or(0)))
}

/// Stops a command's process group: SIGTERM, then SIGKILL after `grace`; its exit status.
pub(crate) async fn stop_group(
    child: &mut Child,
    pid: u32,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    signal_group(pid, libc::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            signal_group(pid, libc::SIGKILL);
            child.wait().await.ok()
        }
    }
}

/// What a reader task read, waiting at most [`GRACE`]: descendants that kept the pipes open
/// must not hold the caller forever.
pub(crate) async fn joined<T: Default>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(GRACE, task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}
