//! Carrying out what instances ask for: the clock (virtual or real), invoked child machines
//! (in process) and commands (processes), and routing events between them.
//!
//! One [`Runner`] drives a tree of instances on one tokio task. Time is virtual (delayed
//! events fire in order without waiting) or real (the runner sleeps until the next one).
//!
//! Every change to the tree enters through [`Runner::apply`] as one [`StepInput`]: an event,
//! a clock advance, a command's result. The tree is deterministic given those inputs, which
//! is what the journal records and replay feeds back ([`Runner::replaying`]).

pub mod process;
pub mod spawn;
pub mod step;
pub mod workflow;

pub use step::{Define, Micro, Note, Outcome, Step, StepInput, status_text};

use crate::chart::{Chart, CompileOptions, InvokeSrc, load_chart_str};
use crate::interpreter::{Effect, Event, EventKind, Host, Instance, Status};
use crate::model::Json;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    /// A command in a replay: its result comes from the journal.
    Replayed,
}

/// What a run hands its recorder: a machine file loaded by an invoke (before the step that
/// uses it), or a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Define(Define),
    Step(Step),
}

/// Receives every [`Recorded`] item of a run, in order (the journal writer).
pub type Recorder = Box<dyn FnMut(&Recorded) + Send>;

/// Sees every input as it is applied, before it is (the live inspector, which replays
/// them elsewhere: nothing is recorded for it here).
pub trait InputTap: Send {
    fn input(&mut self, input: &StepInput);
    /// The run is about to wait or to end: a moment to hand over what was buffered.
    fn idle(&mut self) {}
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
    /// Whether steps carry outcomes (instances record traces).
    recording: bool,
    recorder: Option<Recorder>,
    tap: Option<Box<dyn InputTap>>,
    /// External events arriving while the run goes on (`orca run --inspect`): while the
    /// sender lives, an idle run waits for them instead of ending.
    live: Option<mpsc::UnboundedReceiver<Event>>,
    /// Replaying a journal: commands are not started, their results are inputs.
    replay: bool,
    /// Stepping: commands are not started either (their results are inputs), but invoked
    /// machines are loaded from their files.
    simulate: bool,
    /// Machine files loaded by invokes, by resolved path: loaded once per run.
    charts: HashMap<PathBuf, Arc<Chart>>,
    /// Effects of the current step, by instance name.
    notes: Vec<(String, Note)>,
    /// Outcomes of children that ended during the current step.
    ended: Vec<Outcome>,
    /// Each instance's context as last recorded, so that outcomes carry it only on change.
    contexts: HashMap<String, IndexMap<String, Json>>,
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
            recording: false,
            recorder: None,
            tap: None,
            live: None,
            replay: false,
            simulate: false,
            charts: HashMap::new(),
            notes: Vec::new(),
            ended: Vec::new(),
            contexts: HashMap::new(),
        }
    }

    /// Hands every step (with its outcomes) and every loaded child definition to `recorder`.
    pub fn set_recorder(&mut self, recorder: Recorder) {
        self.set_recording(true);
        self.recorder = Some(recorder);
    }

    /// Shows every input to `tap` as it is applied. Unlike a recorder this costs the run
    /// no outcomes: the inputs are all a replay needs.
    pub fn set_input_tap(&mut self, tap: Box<dyn InputTap>) {
        self.tap = Some(tap);
    }

    /// Events that arrive while the run goes on: [`Runner::run`] delivers them as they come
    /// and, while `events` has a sender, waits for more rather than ending idle.
    pub fn set_live_inputs(&mut self, events: mpsc::UnboundedReceiver<Event>) {
        self.live = Some(events);
    }

    /// No more live events: those sent from now on are refused at their sender.
    pub fn stop_live_inputs(&mut self) {
        self.live = None;
    }

    /// Whether [`Runner::apply`] returns the outcomes of each step (replays that only
    /// rebuild state run faster without).
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
        self.root.record_trace(on);
        for c in &mut self.children {
            if let ChildKind::Machine(m) = &mut c.kind {
                m.record_trace(on);
            }
        }
    }

    /// A runner that replays a journal: commands are not started (their results are
    /// [`StepInput::Finished`] inputs) and invoked machines come from [`Runner::define`].
    pub fn replaying(root: Instance, host: Arc<Host>) -> Runner {
        let mut r = Runner::new(root, host, RunOptions::default());
        r.replay = true;
        r.set_recording(true);
        r
    }

    /// A runner for stepping by hand: virtual time only, and invoked commands are not started;
    /// they end when a [`StepInput::Finished`] says so.
    pub fn simulating(root: Instance, host: Arc<Host>) -> Runner {
        let mut r = Runner::new(root, host, RunOptions::default());
        r.simulate = true;
        r.set_recording(true);
        r
    }

    /// Makes a recorded machine definition available to invokes, as it was when recorded.
    pub fn define(&mut self, d: &Define) -> Result<(), String> {
        let opts: CompileOptions = self.host.compile_options();
        let (chart, _) = load_chart_str(&d.file, &d.source, &opts)
            .map_err(|e| format!("cannot load {}: {}", d.file, e.to_string().trim()))?;
        self.charts.insert(PathBuf::from(&d.file), Arc::new(chart));
        Ok(())
    }

    /// The instance at an invoke path (`[]` for the root), if it is a running machine.
    pub fn instance(&self, path: &[String]) -> Option<&Instance> {
        if path.is_empty() {
            return Some(&self.root);
        }
        self.children
            .iter()
            .find(|c| c.path == path)
            .and_then(|c| match &c.kind {
                ChildKind::Machine(m) => Some(m.as_ref()),
                _ => None,
            })
    }

    /// The invoke paths of every running child (machines and commands), in start order.
    pub fn children(&self) -> impl Iterator<Item = (&[String], bool)> {
        self.children
            .iter()
            .map(|c| (c.path.as_slice(), matches!(c.kind, ChildKind::Machine(_))))
    }

    /// Applies one input to the tree and returns what it did. Every change to a run goes
    /// through here, so a run is the sequence of its inputs.
    pub fn apply(&mut self, input: StepInput) -> Step {
        let span = tracing::debug_span!("step", input = %input.describe());
        let _g = span.enter();
        let t = self.root.now();
        if let Some(tap) = &mut self.tap {
            tap.input(&input);
        }
        match &input {
            StepInput::Start {} => {
                let _ = self.root.start();
                self.route(Vec::new());
            }
            StepInput::Event { .. } => {
                let event = input.to_event().expect("an event input");
                if let Err(e) = self.root.send(event) {
                    tracing::warn!(error = %e, "event not delivered");
                }
                self.route(Vec::new());
            }
            StepInput::Advance { to } => self.advance_all(*to),
            StepInput::Finished { path, ok, data } => {
                self.process_finished(path.clone(), *ok, data.clone())
            }
            StepInput::Set { name, value } => {
                self.root.set_context_value(name, value.clone());
            }
        }
        let out = if self.recording {
            self.collect_outcomes()
        } else {
            Vec::new()
        };
        let step = Step { t, input, out };
        if let Some(rec) = &mut self.recorder {
            let item = Recorded::Step(step);
            rec(&item);
            let Recorded::Step(step) = item else {
                unreachable!()
            };
            return step;
        }
        step
    }

    fn collect_outcomes(&mut self) -> Vec<Outcome> {
        let mut notes = std::mem::take(&mut self.notes);
        let mut take_notes = |name: &str| -> Vec<Note> {
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut notes)
                .into_iter()
                .partition(|(n, _)| n == name);
            notes = rest;
            mine.into_iter().map(|(_, n)| n).collect()
        };
        let mut out = Vec::new();
        let contexts = &mut self.contexts;
        let mut with_context = |mut o: Outcome, inst: &Instance| {
            if contexts.get(&o.instance) != Some(inst.context()) {
                contexts.insert(o.instance.clone(), inst.context().clone());
                o.context = serde_json::to_value(inst.context()).ok();
            }
            o
        };
        let root_notes = take_notes("#");
        let root = Outcome::of("#".into(), &mut self.root, root_notes);
        out.push(with_context(root, &self.root));
        for c in &mut self.children {
            if let ChildKind::Machine(m) = &mut c.kind {
                let name = c.path.join("/");
                let notes = take_notes(&name);
                let o = Outcome::of(name, m, notes);
                if !o.notes.is_empty() {
                    out.push(with_context(o, m));
                }
            }
        }
        out.append(&mut self.ended);
        // The root's outcome is kept even when empty: it carries the configuration.
        out
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

    /// On a real clock, records the time that passed before an input arrives, so that the
    /// input is applied (and replayed) at the time it happened.
    fn catch_up(&mut self) {
        if self.opts.clock == Clock::Real {
            let now = self.now_ms();
            if now > self.root.now() {
                self.apply(StepInput::Advance { to: now });
            }
        }
    }

    /// Starts the root and delivers `inputs` in order, then runs until done, idle or bounded.
    pub async fn run(&mut self, inputs: Vec<Input>) -> Ending {
        let end = self.run_inputs(inputs).await;
        self.tap_idle();
        end
    }

    fn tap_idle(&mut self) {
        if let Some(tap) = &mut self.tap {
            tap.idle();
        }
    }

    async fn run_inputs(&mut self, inputs: Vec<Input>) -> Ending {
        self.apply(StepInput::Start {});
        for input in inputs {
            if let Some(end) = self.finished() {
                return end;
            }
            if let (Clock::Virtual, Some(at)) = (self.opts.clock, input.at_ms)
                && let Some(end) = self.advance_virtual(Some(at))
            {
                return end;
            }
            self.catch_up();
            self.apply(StepInput::event(&input.event));
            // Let finished commands report before the next input, as a user would see them.
            self.collect_processes();
        }
        self.run_to_end().await
    }

    /// How the root stands: `Some` once it is done or failed.
    pub fn finished(&self) -> Option<Ending> {
        match self.root.status() {
            Status::Done => Some(Ending::Done),
            Status::Failed(e) => Some(Ending::Failed(e.clone())),
            _ => None,
        }
    }

    /// Runs until the root is done, nothing is pending, or a bound is hit.
    async fn run_to_end(&mut self) -> Ending {
        loop {
            self.tap_idle();
            if let Some(end) = self.finished() {
                self.cancel_all();
                return end;
            }
            let next_timer = self.next_due();
            let processes = self
                .children
                .iter()
                .any(|c| matches!(c.kind, ChildKind::Process(_)));
            if next_timer.is_none() && !processes && self.live.is_none() {
                return Ending::Idle;
            }
            match self.opts.clock {
                Clock::Virtual if next_timer.is_none() && !processes => {
                    // Only live events can move the run now.
                    let ev = Self::recv_live(&mut self.live).await;
                    self.take_live(ev);
                }
                Clock::Virtual => {
                    // Commands run in real time even on a virtual clock: wait for them first.
                    if processes {
                        let live = self.live.is_some();
                        tokio::select! {
                            msg = self.proc_rx.recv() => {
                                if let Some((path, fin)) = msg { self.finished_input(path, fin); }
                            }
                            ev = Self::recv_live(&mut self.live), if live => self.take_live(ev),
                        }
                        continue;
                    }
                    if let Some(end) = self.advance_virtual(None) {
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
                    let live = self.live.is_some();
                    tokio::select! {
                        msg = self.proc_rx.recv() => {
                            if let Some((path, fin)) = msg { self.finished_input(path, fin); }
                        }
                        _ = sleep => {
                            let now = self.now_ms();
                            self.apply(StepInput::Advance { to: now });
                        }
                        ev = Self::recv_live(&mut self.live), if live => self.take_live(ev),
                    }
                }
            }
        }
    }

    async fn recv_live(live: &mut Option<mpsc::UnboundedReceiver<Event>>) -> Option<Event> {
        match live {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Applies a live event; `None` means no more will come, and the run may go idle.
    fn take_live(&mut self, ev: Option<Event>) {
        match ev {
            Some(ev) => {
                self.catch_up();
                self.apply(StepInput::event(&ev));
                self.collect_processes();
            }
            None => self.live = None,
        }
    }

    /// A command's end, as an input.
    fn finished_input(&mut self, path: Vec<String>, fin: process::Finished) {
        if !self.children.iter().any(|c| c.path == path) {
            return; // cancelled meanwhile
        }
        self.catch_up();
        self.apply(StepInput::Finished {
            path,
            ok: fin.succeeded(),
            data: fin.data(),
        });
    }

    /// Advances virtual time to the next due timer (or to `until`, firing everything due by
    /// then). Returns an ending if a bound was hit or the machine stopped.
    fn advance_virtual(&mut self, until: Option<u64>) -> Option<Ending> {
        loop {
            let next = self.next_due();
            let target = match (next, until) {
                (Some(n), Some(u)) if n <= u => n,
                (Some(n), None) => n,
                (_, Some(u)) => {
                    if u > self.root.now() {
                        self.apply(StepInput::Advance { to: u });
                    }
                    return self.finished();
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
            self.apply(StepInput::Advance { to: target });
            if let Some(end) = self.finished() {
                return Some(end);
            }
            // Without a point to reach, one timer is one step.
            until?;
        }
    }

    /// The earliest due timer of any instance.
    pub fn next_due(&self) -> Option<u64> {
        let children = self.children.iter().filter_map(|c| match &c.kind {
            ChildKind::Machine(m) => m.next_due(),
            _ => None,
        });
        self.root.next_due().into_iter().chain(children).min()
    }

    /// Moves every instance's clock to `now`, routing what that causes.
    fn advance_all(&mut self, now: u64) {
        if let Err(e) = self.root.advance_to(now) {
            tracing::warn!(error = %e, "instance stopped");
        }
        self.route(Vec::new());
        let mut i = 0;
        while let Some(child) = self.children.get_mut(i) {
            let path = child.path.clone();
            if let ChildKind::Machine(m) = &mut child.kind {
                let _ = m.advance_to(now);
                self.route(path.clone());
            }
            // Routing may have removed children: continue after this one, wherever it is now.
            i = match self.children.iter().position(|c| c.path == path) {
                Some(p) => p + 1,
                None => i,
            };
        }
    }

    fn collect_processes(&mut self) {
        while let Ok((path, fin)) = self.proc_rx.try_recv() {
            self.finished_input(path, fin);
        }
    }

    fn process_finished(&mut self, path: Vec<String>, ok: bool, data: Json) {
        let Some(pos) = self.children.iter().position(|c| c.path == path) else {
            return; // cancelled meanwhile
        };
        if matches!(self.children[pos].kind, ChildKind::Machine(_)) || path.is_empty() {
            return; // not a command: a corrupt or edited journal
        }
        self.children.remove(pos);
        let id = path.last().cloned().unwrap_or_default();
        let name = if ok {
            format!("done.invoke.{id}")
        } else {
            format!("error.invoke.{id}")
        };
        let mut event = Event::new(name, data, EventKind::External);
        let meta = event.meta_mut();
        meta.invokeid = Some(id.clone());
        meta.origin = Some(id);
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
                _ => None,
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

    fn note(&mut self, instance: &str, note: Note) {
        if self.recording {
            self.notes.push((instance.to_string(), note));
        }
    }

    /// Carries out the effects of the instance at `path` (and, recursively, what they cause).
    fn route(&mut self, path: Vec<String>) {
        let Some(inst) = self.instance_mut(&path) else {
            return;
        };
        let effects = inst.take_effects();
        let (done, failed) = (inst.is_done(), matches!(inst.status(), Status::Failed(_)));
        if effects.is_empty() && (path.is_empty() || !(done || failed)) {
            return; // the common case: nothing to carry out
        }
        let output = inst.output().cloned();
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
                Effect::Log { label, value } => {
                    self.note(
                        &name,
                        Note::Log {
                            label: label.clone(),
                            value: value.clone(),
                        },
                    );
                    self.notices.push(Notice::Log {
                        instance: name.clone(),
                        label,
                        value,
                    })
                }
                Effect::SendToParent { event } => {
                    if path.is_empty() {
                        self.notices.push(Notice::ToParent { event });
                    } else {
                        let id = path.last().cloned();
                        let mut event = event;
                        let meta = event.meta_mut();
                        meta.origin = id.clone();
                        meta.invokeid = id;
                        self.deliver(&path[..path.len() - 1], event);
                    }
                }
                Effect::SendToInvoke { invoke, event } => {
                    let mut child = path.clone();
                    child.push(invoke);
                    self.deliver(&child, event);
                }
                Effect::Invoke { id, src, input, .. } => {
                    self.note(
                        &name,
                        Note::Invoke {
                            id: id.clone(),
                            src: src.to_string(),
                        },
                    );
                    self.start_child(&path, id, src, input)
                }
                Effect::CancelInvoke { id } => {
                    self.note(&name, Note::CancelInvoke(id.clone()));
                    let mut child = path.clone();
                    child.push(id);
                    self.cancel_subtree(&child);
                }
                Effect::Call { name: call, args } => {
                    self.note(
                        &name,
                        Note::Call {
                            name: call.clone(),
                            args: args.clone(),
                        },
                    );
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
            let meta = event.meta_mut();
            meta.invokeid = Some(id.clone());
            meta.origin = Some(id);
            self.deliver(&path[..path.len() - 1], event);
        }
    }

    /// The chart of an invoked machine file: from this run's cache, else from disk (and then
    /// recorded, so that a replay uses the same text).
    fn child_chart(&mut self, file: &Path) -> Result<Arc<Chart>, String> {
        if let Some(c) = self.charts.get(file) {
            return Ok(c.clone());
        }
        if self.replay {
            return Err(format!(
                "{} was not recorded in the journal",
                file.display()
            ));
        }
        let bytes =
            std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let source = String::from_utf8(bytes)
            .map_err(|_| format!("{} is not UTF-8 text", file.display()))?;
        let def = Define {
            file: file.display().to_string(),
            source,
        };
        self.define(&def)?;
        if let Some(rec) = &mut self.recorder {
            rec(&Recorded::Define(def));
        }
        Ok(self.charts[file].clone())
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
            event.meta_mut().invokeid = Some(id.clone());
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
                let chart = match self.child_chart(&file) {
                    Ok(c) => c,
                    Err(message) => return fail(self, message),
                };
                let mut child = Instance::with_host(chart, self.host.clone());
                child.record_trace(self.recording);
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
        if self.replay || self.simulate {
            self.children.push(Child {
                path,
                kind: ChildKind::Replayed,
            });
            return;
        }
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
            match c.kind {
                ChildKind::Process(p) => p.cancel(),
                ChildKind::Machine(mut m) if self.recording => {
                    let name = c.path.join("/");
                    self.contexts.remove(&name);
                    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.notes)
                        .into_iter()
                        .partition(|(n, _)| *n == name);
                    self.notes = rest;
                    let notes = mine.into_iter().map(|(_, n)| n).collect();
                    let mut o = Outcome::of(name, &mut m, notes);
                    if o.status == "running" {
                        o.status = "cancelled".into();
                    }
                    self.ended.push(o);
                }
                _ => {}
            }
        }
    }

    /// Stops every child (the root ended or the run was interrupted).
    pub fn cancel_all(&mut self) {
        self.cancel_subtree(&[]);
    }
}
