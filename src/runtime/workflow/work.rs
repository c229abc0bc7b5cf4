//! Doing one phase's work: a shell line, a program, a statechart or a nested workflow, with
//! its stdin document, environment, logs, output cap and cancellation.

use super::super::process::{GRACE, exit_code, joined, stop_group};
use super::super::spawn::{Child, Input, Spec};
use super::super::{Clock, Ending, RunOptions, Runner};
use crate::chart::load_chart_file;
use crate::interpreter::{Host, Instance};
use crate::model::Json;
use crate::model::workflow::Work;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// A phase's stdout beyond this is a failure ("floods stdout"), not a memory problem: the
/// same bound as an invoked command's capture.
pub const MAX_OUTPUT: usize = super::super::process::MAX_CAPTURE;

/// Everything a piece of work needs to run (serializable: a worker elsewhere may run it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Job {
    pub work: Work,
    /// The JSON document on stdin (and a machine's `input`).
    pub stdin: Json,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Where stdout and stderr are kept: `<stem>.stdout` (when not empty), `<stem>.stderr`.
    pub log_stem: PathBuf,
    /// The directory relative `Machine`/`Workflow` paths resolve from.
    pub base_dir: PathBuf,
}

/// How work ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WorkResult {
    /// `output`: stdout parsed as JSON, else the text; `text`: stdout as it was.
    Succeeded {
        output: Json,
        text: String,
    },
    Failed {
        error: String,
        retryable: bool,
    },
}

/// Runs a job to its end, or until `cancel` fires (the process group gets SIGTERM, then
/// SIGKILL after [`GRACE`]).
/// `spawned` hears the process group of a started process (the engine keeps a list, so that
/// a resumed run can stop what a killed runner left behind).
pub async fn perform(
    job: Job,
    cancel: oneshot::Receiver<()>,
    spawned: impl FnOnce(u32),
) -> WorkResult {
    match &job.work {
        Work::Shell(line) => {
            let argv = vec!["sh".to_string(), "-c".to_string(), line.clone()];
            run_process(&job, argv, true, cancel, spawned, GRACE).await
        }
        Work::Command(argv) => run_process(&job, argv.clone(), false, cancel, spawned, GRACE).await,
        Work::Workflow(file) => {
            let exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    return WorkResult::Failed {
                        error: format!("cannot find the orca executable: {e}"),
                        retryable: false,
                    };
                }
            };
            let path = job.base_dir.join(file);
            let run_dir = log_path(&job.log_stem, "run");
            let argv = vec![
                exe.display().to_string(),
                "run".into(),
                path.display().to_string(),
                "--run-dir".into(),
                run_dir.display().to_string(),
                "--output".into(),
            ];
            // A nested orca stops its own commands (SIGTERM, then SIGKILL after GRACE)
            // when it gets SIGTERM: give it the time to, before it is killed itself.
            run_process(
                &job,
                argv,
                false,
                cancel,
                spawned,
                GRACE * 2 + Duration::from_secs(1),
            )
            .await
        }
        Work::Machine(file) => {
            let path = job.base_dir.join(file);
            tokio::select! {
                r = run_machine(path, job.stdin.clone()) => r,
                _ = cancel => WorkResult::Failed { error: "cancelled".into(), retryable: false },
            }
        }
    }
}

/// A statechart as phase work: its context takes the `input` map's entries; it succeeds when
/// it reaches a final state (not one tagged `failure`), with the machine's output.
async fn run_machine(path: PathBuf, doc: Json) -> WorkResult {
    let host = Arc::new(Host::default());
    let chart = match load_chart_file(&path, &host.compile_options()) {
        Ok((c, _)) => Arc::new(c),
        Err(d) => {
            return WorkResult::Failed {
                error: format!("{}: {}", path.display(), d),
                retryable: false,
            };
        }
    };
    let mut root = Instance::with_host(chart.clone(), host.clone());
    if let Some(Json::Object(m)) = doc.get("input") {
        for (k, v) in m {
            root.set_context_value(k, v.clone());
        }
    }
    let mut runner = Runner::new(
        root,
        host,
        RunOptions {
            clock: Clock::Real,
            ..RunOptions::default()
        },
    );
    // An `error.*` event that reaches the machine's root with no transition for it fails the
    // work (workflows.md), with the message of the error that raised it.
    let unhandled: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let seen = unhandled.clone();
    let mut last_error = String::new();
    runner.set_recorder(Box::new(move |r| {
        let super::super::Recorded::Step(step) = r else {
            return;
        };
        for out in step.out.iter().filter(|o| o.instance == "#") {
            for note in &out.notes {
                match note {
                    super::super::Note::Error(m) => last_error = m.clone(),
                    super::super::Note::Ignored(e) if e.starts_with("error.") => {
                        let mut u = seen.lock().expect("unhandled lock");
                        if u.is_none() {
                            *u = Some(if last_error.is_empty() {
                                format!("`{e}` reached the machine's root unhandled")
                            } else {
                                format!("`{e}` reached the machine's root unhandled: {last_error}")
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }));
    let ending = runner.run(Vec::new()).await;
    if let Some(e) = unhandled.lock().expect("unhandled lock").take() {
        return WorkResult::Failed {
            error: e,
            retryable: false,
        };
    }
    let inst = runner.root();
    let finals: Vec<&str> = inst
        .configuration()
        .filter(|&s| chart.state(s).tags.iter().any(|t| t == "failure"))
        .map(|s| chart.state(s).display_path())
        .collect();
    match ending {
        Ending::Done if finals.is_empty() => WorkResult::Succeeded {
            output: inst.output().cloned().unwrap_or(Json::Null),
            text: String::new(),
        },
        Ending::Done => WorkResult::Failed {
            error: format!(
                "the machine ended in `{}`, tagged failure",
                finals.join(", ")
            ),
            retryable: true,
        },
        Ending::Failed(e) => WorkResult::Failed {
            error: format!("the machine failed: {e}"),
            retryable: true,
        },
        Ending::Idle | Ending::Bounded(_) => WorkResult::Failed {
            error: format!(
                "the machine stopped in {} without reaching a final state",
                inst.configuration_paths().join(", ")
            ),
            retryable: false,
        },
    }
}

async fn run_process(
    job: &Job,
    argv: Vec<String>,
    shell: bool,
    mut cancel: oneshot::Receiver<()>,
    spawned: impl FnOnce(u32),
    grace: Duration,
) -> WorkResult {
    let Some((program, args)) = argv.split_first() else {
        return WorkResult::Failed {
            error: "empty command".into(),
            retryable: false,
        };
    };
    // Both streams are read and kept as logs after the command ends, each only when it
    // is not empty: most commands print little or nothing, and creating a file costs more
    // than starting the command.
    let out_path = log_path(&job.log_stem, "stdout");
    let err_path = log_path(&job.log_stem, "stderr");
    let doc = job.stdin.to_string();
    let mut child = match Child::spawn(&Spec {
        program,
        args,
        env: &job.env,
        cwd: job.cwd.as_deref(),
        stdin: Input::Bytes(doc.as_bytes()),
    }) {
        Ok(c) => c,
        Err(e) => {
            return WorkResult::Failed {
                error: format!("cannot start `{program}`: {e}"),
                retryable: false,
            };
        }
    };
    let pid = child.id();
    spawned(pid);
    let (flood_tx, mut flood_rx) = oneshot::channel::<()>();
    let out = tokio::task::spawn_local(keep(child.stdout.take().expect("piped"), Some(flood_tx)));
    let err = tokio::task::spawn_local(keep(child.stderr.take().expect("piped"), None));
    let mut flooded = false;
    let mut cancelled = false;
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        _ = &mut cancel => { cancelled = true; stop_group(&mut child, pid, grace).await }
        Ok(()) = &mut flood_rx => { flooded = true; stop_group(&mut child, pid, grace).await }
    };
    let stdout = joined(out).await;
    let stderr = joined(err).await;
    for (path, bytes) in [(&out_path, &stdout), (&err_path, &stderr)] {
        if !bytes.is_empty()
            && let Err(e) = std::fs::write(path, bytes)
        {
            tracing::warn!(path = %path.display(), "cannot keep the log: {e}");
        }
    }
    if flooded {
        return WorkResult::Failed {
            error: format!(
                "stdout exceeded {} MiB; the command was stopped",
                MAX_OUTPUT >> 20
            ),
            retryable: false,
        };
    }
    if cancelled {
        return WorkResult::Failed {
            error: "cancelled".into(),
            retryable: false,
        };
    }
    let code = exit_code(status);
    if code != 0 {
        let why = if code < 0 {
            format!("killed by signal {}", -code)
        } else {
            format!("exit status {code}")
        };
        // `sh` says 127 for a command it cannot find and 126 for one it cannot execute:
        // trying again will not help.
        let permanent = shell && (code == 127 || code == 126);
        let stderr_tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(400)..])
            .trim()
            .to_string();
        let tail = if stderr_tail.is_empty() {
            String::new()
        } else {
            format!(": {}", last_line(&stderr_tail))
        };
        return WorkResult::Failed {
            error: format!("{why}{tail}"),
            retryable: !permanent,
        };
    }
    let text = String::from_utf8_lossy(&stdout).into_owned();
    let output = match serde_json::from_str::<Json>(text.trim()) {
        Ok(v) => v,
        Err(_) if text.trim().is_empty() => Json::Null,
        Err(_) => Json::String(text.trim_end().to_string()),
    };
    WorkResult::Succeeded { output, text }
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s)
}

/// `STEM.ext`: the stem holds dots (`deploy.canary.execute-1`), so no `with_extension`.
pub fn log_path(stem: &std::path::Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Reads a stream into memory up to [`MAX_OUTPUT`]. Past that, `flood` (stdout) fires so the
/// command is stopped; without one (stderr) the rest is dropped and the log says so. Either
/// way the stream is read to its end, so the command never blocks on a full pipe.
async fn keep<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    mut flood: Option<oneshot::Sender<()>>,
) -> Vec<u8> {
    // Read straight into the kept bytes' spare room: no zeroed buffer, no copy. Most
    // commands print little, so the room starts small and doubles.
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = false;
    let mut scratch: Vec<u8> = Vec::new();
    loop {
        let read = if kept.len() < MAX_OUTPUT {
            kept.reserve(kept.len().clamp(1024, 1 << 20));
            r.read_buf(&mut kept).await
        } else {
            scratch.clear();
            scratch.reserve(16 << 10);
            r.read_buf(&mut scratch).await
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) if kept.len() > MAX_OUTPUT || !scratch.is_empty() => {
                kept.truncate(MAX_OUTPUT);
                dropped = true;
                if let Some(f) = flood.take() {
                    let _ = f.send(());
                }
            }
            Ok(_) => {}
        }
    }
    if dropped {
        kept.extend_from_slice(
            format!(
                "\n[orca: output beyond {} MiB was dropped]\n",
                MAX_OUTPUT >> 20
            )
            .as_bytes(),
        );
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(len: usize) -> (Vec<u8>, bool) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let data = vec![b'x'; len];
        let (tx, mut rx) = oneshot::channel();
        let out = rt.block_on(keep(&data[..], Some(tx)));
        (out, rx.try_recv().is_ok())
    }

    #[test]
    fn output_up_to_the_cap_is_kept_whole_and_beyond_it_floods() {
        let (out, flooded) = kept(5000);
        assert_eq!((out.len(), flooded), (5000, false));
        let (out, flooded) = kept(MAX_OUTPUT);
        assert_eq!((out.len(), flooded), (MAX_OUTPUT, false));
        let (out, flooded) = kept(MAX_OUTPUT + 1);
        assert!(flooded);
        assert!(out.starts_with(&vec![b'x'; MAX_OUTPUT]));
        assert!(String::from_utf8_lossy(&out[MAX_OUTPUT..]).contains("was dropped"));
    }
}
