//! Carrying out what instances ask for: the clock (virtual or real), invoked child machines
//! (in process) and commands (processes), and routing events between them.
//!
//! One [`Runner`] drives a tree of instances on one tokio task. Time is virtual (delayed
//! events fire in order without waiting) or real (the runner sleeps until the next one).

pub mod process;

use crate::chart::{CompileOptions, InvokeSrc, load_chart_file};
use crate::interpreter::{Effect, Event, EventKind, Host, Instance, RunError, Status};
use crate::model::Json;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Invoked machines nested deeper than this fail with `error.invoke`.
pub const MAX_INVOKE_DEPTH: usize = 16;

/// How time passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Delayed events fire in order, without waiting.
    Virtual,
    /// Delayed events fire when their time comes.
    Real,
}

/// An input to a run: an event, at a virtual time (virtual clock only) or as soon as possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub at_ms: Option<u64>,
    pub event: Event,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub clock: Clock,
    /// Stop a virtual-time run when time would pass this point.
    pub until_ms: Option<u64>,
    /// Stop after this many delayed events (a machine may cycle forever).
    pub max_timer_events: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            clock: Clock::Virtual,
            until_ms: None,
            max_timer_events: 1_000_000,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Reached a top-level final state.
    Done,
    /// Nothing left to do: no events, timers or running children.
    Idle,
    /// Stopped at the time or event bound with work still pending.
    Bounded(String),
    /// Stopped on an error.
    Failed(String),
}

/// Something that happened during a run, for the caller to show.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Log {
        instance: String,
        label: Option<String>,
        value: Json,
    },
    /// An event sent to `#parent` by the top-level machine.
    ToParent { event: Event },
}

enum ChildKind {
    Machine(Box<Instance>),
    Process(process::Running),
}

struct Child {
    /// The path of invoke ids from the root: `["w", "inner"]`.
    path: Vec<String>,
    kind: ChildKind,
}

/// Drives a root instance and everything it invokes.
pub struct Runner {
    root: Instance,
    children: Vec<Child>,
    host: Arc<Host>,
    opts: RunOptions,
    started: Instant,
    timer_events: u64,
    notices: Vec<Notice>,
    proc_tx: mpsc::UnboundedSender<(Vec<String>, process::Finished)>,
    proc_rx: mpsc::UnboundedReceiver<(Vec<String>, process::Finished)>,
}

impl Runner {
    pub fn new(root: Instance, host: Arc<Host>, opts: RunOptions) -> Runner {
        let (proc_tx, proc_rx) = mpsc::unbounded_channel();
        Runner {
            root,
            children: Vec::new(),
            host,
            opts,
            started: Instant::now(),
            timer_events: 0,
            notices: Vec::new(),
            proc_tx,
            proc_rx,
        }
    }

    pub fn root(&self) -> &Instance {
        &self.root
    }

    /// What happened since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn now_ms(&self) -> u64 {
        match self.opts.clock {
            Clock::Virtual => self.root.now(),
            Clock::Real => self.started.elapsed().as_millis() as u64,
        }
    }

    /// Starts the root and delivers `inputs` in order, then runs until done, idle or bounded.
    pub async fn run(&mut self, inputs: Vec<Input>) -> Ending {
        if let Err(e) = self.root.start() {
            return Ending::Failed(e.to_string());
        }
        self.route(Vec::new());
        for input in inputs {
            if let Some(end) = self.finished() {
                return end;
            }
            if let (Clock::Virtual, Some(at)) = (self.opts.clock, input.at_ms)
                && let Some(end) = self.advance_virtual(Some(at)).await
            {
                return end;
            }
            if let Err(e) = self.root.send(input.event) {
                return Ending::Failed(e.to_string());
            }
            self.route(Vec::new());
            // Let finished commands report before the next input, as a user would see them.
            self.collect_processes();
        }
        self.run_to_end().await
    }

    fn finished(&self) -> Option<Ending> {
        match self.root.status() {
            Status::Done => Some(Ending::Done),
            Status::Failed(e) => Some(Ending::Failed(e.clone())),
            _ => None,
        }
    }

    /// Runs until the root is done, nothing is pending, or a bound is hit.
    async fn run_to_end(&mut self) -> Ending {
        loop {
            if let Some(end) = self.finished() {
                self.cancel_all();
                return end;
            }
            let next_timer = self.next_due();
            let processes = self
                .children
                .iter()
                .any(|c| matches!(c.kind, ChildKind::Process(_)));
            if next_timer.is_none() && !processes {
                return Ending::Idle;
            }
            match self.opts.clock {
                Clock::Virtual => {
                    // Commands run in real time even on a virtual clock: wait for them first.
                    if processes {
                        if let Some((path, fin)) = self.proc_rx.recv().await {
                            self.process_finished(path, fin);
                        }
                        continue;
                    }
                    if let Some(end) = self.advance_virtual(None).await {
                        return end;
                    }
                }
                Clock::Real => {
                    let wait = next_timer.map(|due| due.saturating_sub(self.now_ms()));
                    let sleep = async {
                        match wait {
                            Some(ms) => {
                                tokio::time::sleep(std::time::Duration::from_millis(ms)).await
                            }
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        msg = self.proc_rx.recv() => {
                            if let Some((path, fin)) = msg { self.process_finished(path, fin); }
                        }
                        _ = sleep => {
                            let now = self.now_ms();
                            if let Err(e) = self.advance_all(now) {
                                return Ending::Failed(e.to_string());
                            }
                        }
                    }
                }
            }
        }
    }

    /// Advances virtual time to the next due timer (or to `until`, firing everything due by
    /// then). Returns an ending if a bound was hit or the machine stopped.
    async fn advance_virtual(&mut self, until: Option<u64>) -> Option<Ending> {
        loop {
            let next = self.next_due();
            let target = match (next, until) {
                (Some(n), Some(u)) if n <= u => n,
                (Some(n), None) => n,
                (_, Some(u)) => {
                    return self
                        .advance_all(u.max(self.root.now()))
                        .err()
                        .map(|e| Ending::Failed(e.to_string()));
                }
                (None, None) => return None,
            };
            if let Some(limit) = self.opts.until_ms
                && target > limit
            {
                return Some(Ending::Bounded(format!(
                    "virtual time limit {limit} ms reached"
                )));
            }
            self.timer_events += 1;
            if self.timer_events > self.opts.max_timer_events {
                return Some(Ending::Bounded(format!(
                    "stopped after {} delayed events at virtual time {} ms",
                    self.opts.max_timer_events,
                    self.root.now()
                )));
            }
            if let Err(e) = self.advance_all(target) {
                return Some(Ending::Failed(e.to_string()));
            }
            if let Some(end) = self.finished() {
                return Some(end);
            }
            // Without a point to reach, one timer is one step.
            until?;
        }
    }

    /// The earliest due timer of any instance.
    fn next_due(&self) -> Option<u64> {
        let children = self.children.iter().filter_map(|c| match &c.kind {
            ChildKind::Machine(m) => m.next_due(),
            ChildKind::Process(_) => None,
        });
        self.root.next_due().into_iter().chain(children).min()
    }

    /// Moves every instance's clock to `now`, routing what that causes.
    fn advance_all(&mut self, now: u64) -> Result<(), RunError> {
        self.root.advance_to(now)?;
        self.route(Vec::new());
        for i in 0..self.children.len() {
            let Some(child) = self.children.get_mut(i) else {
                break;
            };
            let path = child.path.clone();
            if let ChildKind::Machine(m) = &mut child.kind {
                let _ = m.advance_to(now);
                self.route(path);
            }
        }
        Ok(())
    }

    fn collect_processes(&mut self) {
        while let Ok((path, fin)) = self.proc_rx.try_recv() {
            self.process_finished(path, fin);
        }
    }

    fn process_finished(&mut self, path: Vec<String>, fin: process::Finished) {
        let Some(pos) = self.children.iter().position(|c| c.path == path) else {
            return; // cancelled meanwhile
        };
        self.children.remove(pos);
        let id = path.last().cloned().unwrap_or_default();
        let name = if fin.succeeded() {
            format!("done.invoke.{id}")
        } else {
            format!("error.invoke.{id}")
        };
        let mut event = Event::new(name, fin.data(), EventKind::External);
        event.invokeid = Some(id.clone());
        event.origin = Some(id);
        self.deliver(&path[..path.len() - 1], event);
    }

    fn instance_mut(&mut self, path: &[String]) -> Option<&mut Instance> {
        if path.is_empty() {
            return Some(&mut self.root);
        }
        self.children
            .iter_mut()
            .find(|c| c.path == path)
            .and_then(|c| match &mut c.kind {
                ChildKind::Machine(m) => Some(m.as_mut()),
                ChildKind::Process(_) => None,
            })
    }

    /// Delivers an event to the instance at `path` and routes the consequences.
    fn deliver(&mut self, path: &[String], event: Event) {
        let Some(inst) = self.instance_mut(path) else {
            return;
        };
        if let Err(e) = inst.send(event) {
            tracing::warn!(instance = %path.join("/"), error = %e, "instance stopped");
        }
        self.route(path.to_vec());
    }

    /// Carries out the effects of the instance at `path` (and, recursively, what they cause).
    fn route(&mut self, path: Vec<String>) {
        let Some(inst) = self.instance_mut(&path) else {
            return;
        };
        let effects = inst.take_effects();
        let (done, failed, output) = (
            inst.is_done(),
            matches!(inst.status(), Status::Failed(_)),
            inst.output().cloned(),
        );
        let failure = match inst.status() {
            Status::Failed(e) => Some(e.clone()),
            _ => None,
        };
        let name = if path.is_empty() {
            "#".to_string()
        } else {
            path.join("/")
        };
        for effect in effects {
            match effect {
                Effect::Log { label, value } => self.notices.push(Notice::Log {
                    instance: name.clone(),
                    label,
                    value,
                }),
                Effect::SendToParent { event } => {
                    if path.is_empty() {
                        self.notices.push(Notice::ToParent { event });
                    } else {
                        let id = path.last().cloned();
                        let mut event = event;
                        event.origin = id.clone();
                        event.invokeid = id;
                        self.deliver(&path[..path.len() - 1], event);
                    }
                }
                Effect::SendToInvoke { invoke, event } => {
                    let mut child = path.clone();
                    child.push(invoke);
                    self.deliver(&child, event);
                }
                Effect::Invoke { id, src, input, .. } => self.start_child(&path, id, src, input),
                Effect::CancelInvoke { id } => {
                    let mut child = path.clone();
                    child.push(id);
                    self.cancel_subtree(&child);
                }
                Effect::Call { name: call, args } => {
                    tracing::warn!(%call, ?args, "host action not available in this runner");
                }
            }
        }
        // A child machine that ended reports to its parent.
        if !path.is_empty() && (done || failed) {
            self.cancel_subtree(&path);
            let id = path.last().cloned().unwrap_or_default();
            let (ev, data) = if done {
                (format!("done.invoke.{id}"), output.unwrap_or(Json::Null))
            } else {
                (
                    format!("error.invoke.{id}"),
                    serde_json::json!({ "message": failure.unwrap_or_default() }),
                )
            };
            let mut event = Event::new(ev, data, EventKind::External);
            event.invokeid = Some(id.clone());
            event.origin = Some(id);
            self.deliver(&path[..path.len() - 1], event);
        }
    }

    fn start_child(&mut self, parent: &[String], id: String, src: InvokeSrc, input: Option<Json>) {
        let mut path = parent.to_vec();
        path.push(id.clone());
        let fail = |this: &mut Runner, message: String| {
            let mut event = Event::new(
                format!("error.invoke.{id}"),
                serde_json::json!({ "message": message }),
                EventKind::External,
            );
            event.invokeid = Some(id.clone());
            this.deliver(parent, event);
        };
        match src {
            InvokeSrc::Machine(file) => {
                if path.len() > MAX_INVOKE_DEPTH {
                    return fail(
                        self,
                        format!("invoked machines nest deeper than {MAX_INVOKE_DEPTH}"),
                    );
                }
                let opts: CompileOptions = self.host.compile_options();
                let chart = match load_chart_file(&file, &opts) {
                    Ok((c, _)) => c,
                    Err(d) => {
                        return fail(
                            self,
                            format!("cannot load {}: {}", file.display(), d.to_string().trim()),
                        );
                    }
                };
                let mut child = Instance::with_host(Arc::new(chart), self.host.clone());
                if let Some(Json::Object(m)) = &input {
                    for (k, v) in m {
                        child.set_context_value(k, v.clone());
                    }
                }
                let now = self.root.now();
                let _ = child.advance_to(now);
                let started = child.start();
                self.children.push(Child {
                    path: path.clone(),
                    kind: ChildKind::Machine(Box::new(child)),
                });
                if let Err(e) = started {
                    tracing::warn!(error = %e, "child failed at start");
                }
                self.route(path);
            }
            InvokeSrc::Command(argv) => self.spawn(path, argv, input),
            InvokeSrc::Shell(line) => self.spawn(path, vec!["sh".into(), "-c".into(), line], input),
            InvokeSrc::Workflow(file) => fail(
                self,
                format!(
                    "workflow invokes are not supported by this runner ({})",
                    file.display()
                ),
            ),
        }
    }

    fn spawn(&mut self, path: Vec<String>, argv: Vec<String>, input: Option<Json>) {
        let stdin = input.map(|v| v.to_string());
        let env = vec![("ORCA_INVOKE_ID".to_string(), path.join("/"))];
        let running = process::spawn(argv, stdin, env, path.clone(), self.proc_tx.clone());
        self.children.push(Child {
            path,
            kind: ChildKind::Process(running),
        });
    }

    /// Stops the child at `path` and everything below it.
    fn cancel_subtree(&mut self, path: &[String]) {
        let (gone, kept): (Vec<Child>, Vec<Child>) = std::mem::take(&mut self.children)
            .into_iter()
            .partition(|c| c.path.starts_with(path));
        self.children = kept;
        for c in gone {
            if let ChildKind::Process(p) = c.kind {
                p.cancel();
            }
        }
    }

    /// Stops every child (the root ended or the run was interrupted).
    pub fn cancel_all(&mut self) {
        self.cancel_subtree(&[]);
    }
}
