//! Running a workflow: one event loop that delivers lifecycle events to operations, a
//! scheduler that starts operations when their dependencies succeeded and a slot is free, and
//! the work each phase runs.
//!
//! Every event an operation hears goes through [`Engine::deliver`]: the lifecycle decides,
//! the event and the state it led to go to the [`WorkflowRecorder`] (the journal), and only
//! then are the lifecycle's commands carried out. Replaying those records
//! ([`Engine::replay`]) rebuilds every operation without running anything, which is how
//! `orca resume` continues a run: phases whose success is recorded are answered from the
//! record, never run again.

pub mod work;

use crate::lifecycle::machine::{Command, Event, Lifecycle, Outcome, Phase, Policy};
use crate::lifecycle::plan::{OpId, Plan};
use crate::model::Json;
use crate::model::workflow::{ChildFailure, OperationDef, Work};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use work::{Job, WorkResult};

/// One delivered event, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The operation's dotted path (empty for the root).
    pub op: String,
    pub event: Event,
    /// The lifecycle state the event led to.
    pub state: String,
    /// The phase attempt after the event.
    #[serde(default)]
    pub attempt: u32,
}

/// What a workflow journal holds, in order: delivered events, and the points where a
/// resumed run made operations that had not succeeded run again.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Op(OpRecord),
    /// [`Engine::reset_for_rerun`] with these operation paths as `from`.
    Rerun {
        from: Vec<String>,
    },
}

/// Where the engine's records go. Errors stop the run: a run that cannot be journaled must
/// not go on doing work it could not resume.
pub trait WorkflowRecorder {
    fn record(&mut self, rec: &OpRecord) -> Result<(), String>;
    /// A resumed run reruns what did not succeed (and `from`).
    fn rerun(&mut self, from: &[String]) -> Result<(), String>;
    /// Called before new work starts: everything recorded so far must survive a crash of
    /// this process from here on.
    fn barrier(&mut self) -> Result<(), String>;
}

/// A change worth showing: an operation entered a new lifecycle state.
#[derive(Debug, Clone)]
pub struct Change {
    pub op: OpId,
    pub path: String,
    pub event: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub phase: Phase,
    pub attempt: u32,
    /// Since the operation started (0 before).
    pub elapsed_ms: u64,
    /// The failure that caused it, if any.
    pub error: Option<String>,
    /// Operations in the plan now (it grows when a decompose adds subtasks).
    pub ops: usize,
    /// The operation's output, when it just succeeded and the observer
    /// [wants outputs](Observer::wants_outputs).
    pub output: Option<Json>,
}

/// Hears every lifecycle change (the CLI's progress view).
pub trait Observer {
    fn change(&mut self, c: &Change);
    /// The engine is about to wait for work or timers: a moment to flush buffered output.
    fn idle(&mut self) {}
    /// The run is over.
    fn finish(&mut self) {}
    /// Whether changes to `Succeeded` carry the operation's output (a copy per operation,
    /// so only for observers that show it).
    fn wants_outputs(&self) -> bool {
        false
    }
}

/// A piece of work handed to [`Dispatch`]: which operation, phase and attempt it is, and
/// what to run.
#[derive(Debug, Clone)]
pub struct DispatchedWork {
    /// The operation's path as `orca status` shows it (the workflow id for the root).
    pub op: String,
    /// `analyze`, ..., `integrate`, or `compensate`.
    pub what: &'static str,
    pub attempt: u32,
    /// How many times the run was made to run again (`rerun` records) before this work:
    /// with `op`, `what` and `attempt` it names the work uniquely within a run, across
    /// restarts of the process that coordinates it.
    pub generation: u32,
    /// The tags a worker needs to run it (the operation's and its ancestors').
    pub tags: Vec<String>,
    pub job: Job,
}

/// Runs work somewhere other than this process (workers sharing a database). Without one,
/// the engine runs work itself.
pub trait Dispatch {
    /// Starts `work`; the future ends with its result. `cancel` fires when the engine stops
    /// the work (a timeout, a cancel): the work must be stopped wherever it runs.
    fn dispatch(
        &mut self,
        work: DispatchedWork,
        cancel: oneshot::Receiver<()>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = WorkResult>>>;
}

/// Options of a workflow run.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub run_id: String,
    pub run_dir: PathBuf,
    /// Overrides the workflow's `max_parallel` (commands at once, whole run).
    pub max_parallel: Option<u32>,
    /// Compensate succeeded operations after a cancel too (not only after a failure).
    pub compensate_on_cancel: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnding {
    Succeeded,
    Failed,
    Cancelled,
}

impl RunEnding {
    /// As the journal's end record and the summary say it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnding::Succeeded => "succeeded",
            RunEnding::Failed => "failed",
            RunEnding::Cancelled => "cancelled",
        }
    }
}

/// What an operation is doing right now, beyond its lifecycle state.
#[derive(Default)]
struct OpRun {
    life: Option<Lifecycle>,
    /// Phase outputs by phase name (`analyze`, ..., `integrate`), and `compensate`.
    outputs: IndexMap<&'static str, Json>,
    /// Successes known from the journal: the phase is answered from here, not run.
    recorded: HashMap<Phase, Json>,
    /// Dependencies (`after`) that have not succeeded yet.
    unmet: usize,
    /// Siblings that wait for this one.
    dependents: Vec<OpId>,
    children_started: bool,
    /// Children started and not settled.
    running_children: u32,
    /// Children whose dependencies are met, waiting for a slot, in document order.
    ready: BTreeSet<OpId>,
    /// The parent has heard this one's `ChildSettled`.
    reported: bool,
    /// Cancels the running work; its token tells its result from a stale one.
    work: Option<oneshot::Sender<()>>,
    token: u64,
    /// Work waiting for a global slot.
    queued: bool,
    timer: Option<tokio::task::JoinHandle<()>>,
    started: Option<Instant>,
    elapsed_ms: u64,
    error: Option<String>,
    /// Static subtasks (decompose adds more at run time).
    static_children: u32,
    /// It has settled once (later settlements are its compensation's).
    settled_once: bool,
    /// A succeeded child of a parent that runs again: it reports when the parent asks.
    report_again: bool,
    /// The subtasks its decompose added, as recorded (kept across reruns: the plan keeps
    /// them, and a decompose that runs again must print the same).
    decomposed: Option<Json>,
}

/// Messages from work, timers and signals to the event loop.
enum Msg {
    Done {
        op: OpId,
        token: u64,
        result: WorkResult,
    },
    Timeout {
        op: OpId,
        token: u64,
    },
    RetryDue {
        op: OpId,
        token: u64,
    },
    Cancel,
    /// Work started a process group.
    Spawned {
        token: u64,
        pid: u32,
    },
}

/// What a unit of work is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Phase(Phase, u32),
    Compensate,
}

/// A workflow run.
pub struct Engine {
    plan: Plan,
    ops: Vec<OpRun>,
    opts: EngineOptions,
    recorder: Option<Box<dyn WorkflowRecorder>>,
    observer: Option<Box<dyn Observer>>,
    dispatch: Option<Box<dyn Dispatch>>,
    /// Resets for a rerun so far ([`DispatchedWork::generation`]).
    generation: u32,
    queue: VecDeque<(OpId, Event)>,
    /// Work waiting for a global slot, in the order it asked.
    waiting_work: VecDeque<(OpId, Purpose, u64)>,
    /// Tokens of work whose process may still be running; each holds a global slot.
    in_flight: std::collections::HashSet<u64>,
    global_bound: usize,
    /// Succeeded operations in the order they succeeded (compensation runs it backwards).
    completed: Vec<OpId>,
    /// Operations still to compensate, next first.
    to_compensate: VecDeque<OpId>,
    compensating: bool,
    compensation_begun: bool,
    /// Parents whose ready children may now start.
    dirty: BTreeSet<OpId>,
    replaying: bool,
    cancelled: bool,
    next_token: u64,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    rng: u64,
    failure: Option<String>,
    /// `processes` in the run directory: `+PGID` when a command starts, `-PGID` when it is
    /// gone, so a resumed run can stop what a killed runner left running.
    processes: Option<std::fs::File>,
    process_notes: String,
    pids: HashMap<u64, u32>,
    /// The logs directory exists.
    logs_ready: bool,
    /// It was made by this engine: no earlier attempt's logs can be in the way.
    logs_fresh: bool,
    run_dir_abs: Option<PathBuf>,
    /// Operations by path (`deploy.canary`, the root by ""), for replaying records.
    by_path: HashMap<String, OpId>,
    /// A simulation's virtual clock and timers (retry backoffs, phase timeouts).
    sim_now: u64,
    sim_timers: Vec<SimTimer>,
    /// Simulating (`orca step WORKFLOW`): work that would run waits here for an answer.
    simulated: Option<std::collections::BTreeMap<OpId, (Purpose, u64)>>,
}

/// A timer of a simulation; stale when the operation's token moved on.
#[derive(Debug, Clone, Copy)]
struct SimTimer {
    due: u64,
    op: OpId,
    token: u64,
    timeout: bool,
}

/// A piece of work a simulated run is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub struct WouldRun {
    pub op: OpId,
    pub path: String,
    /// `analyze`, ..., `integrate`, or `compensate`.
    pub what: &'static str,
    pub attempt: u32,
    /// The work as written (`Shell("cargo test")`).
    pub work: String,
}

impl Engine {
    /// An engine over a compiled plan; nothing runs until [`Engine::run`].
    pub fn new(plan: Plan, opts: EngineOptions) -> Engine {
        let (tx, rx) = mpsc::unbounded_channel();
        let global_bound = opts
            .max_parallel
            .or(plan.max_parallel)
            .map_or(usize::MAX, |n| n.max(1) as usize);
        let seed = seed();
        let mut e = Engine {
            ops: Vec::new(),
            plan,
            opts,
            recorder: None,
            observer: None,
            dispatch: None,
            generation: 0,
            queue: VecDeque::new(),
            waiting_work: VecDeque::new(),
            in_flight: Default::default(),
            global_bound,
            completed: Vec::new(),
            to_compensate: VecDeque::new(),
            compensating: false,
            compensation_begun: false,
            dirty: BTreeSet::new(),
            replaying: false,
            cancelled: false,
            next_token: 1,
            tx,
            rx,
            rng: seed,
            failure: None,
            processes: None,
            process_notes: String::new(),
            pids: HashMap::new(),
            logs_ready: false,
            logs_fresh: false,
            run_dir_abs: None,
            simulated: None,
            sim_now: 0,
            sim_timers: Vec::new(),
            by_path: HashMap::new(),
        };
        e.adopt_new_ops(0);
        e
    }

    pub fn set_recorder(&mut self, r: Box<dyn WorkflowRecorder>) {
        self.recorder = Some(r);
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.opts.run_id
    }

    /// Work runs through `d` instead of in this process.
    pub fn set_dispatch(&mut self, d: Box<dyn Dispatch>) {
        self.dispatch = Some(d);
    }

    pub fn set_observer(&mut self, o: Box<dyn Observer>) {
        self.observer = Some(o);
    }

    /// Tells the observer the run is over and drops it.
    pub fn finish_observer(&mut self) {
        if let Some(mut o) = self.observer.take() {
            o.finish();
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The lifecycle state of an operation.
    pub fn state(&self, op: OpId) -> &'static str {
        self.life(op).state_name()
    }

    pub fn attempt(&self, op: OpId) -> u32 {
        self.life(op).attempt()
    }

    pub fn phase(&self, op: OpId) -> Phase {
        self.life(op).phase()
    }

    /// Milliseconds the operation has run (so far, if it still runs).
    pub fn elapsed_ms(&self, op: OpId) -> u64 {
        let o = &self.ops[op];
        match (o.started, self.life(op).is_running()) {
            (Some(t), true) => t.elapsed().as_millis() as u64,
            _ => o.elapsed_ms,
        }
    }

    /// The last failure of an operation.
    pub fn error(&self, op: OpId) -> Option<&str> {
        self.ops[op].error.as_deref()
    }

    /// An operation's output: its `integrate` output, else its `run` output.
    pub fn output(&self, op: OpId) -> Json {
        let o = &self.ops[op].outputs;
        o.get("integrate")
            .filter(|v| !v.is_null())
            .or_else(|| o.get("execute"))
            .cloned()
            .unwrap_or(Json::Null)
    }

    /// The logs of an operation's attempts, as a pattern:
    /// `RUN_DIR/logs/deploy.canary.*` (`<op>.<phase>-<attempt>.stdout` and `.stderr`).
    pub fn logs_of(&self, op: OpId) -> String {
        format!(
            "{}.*",
            self.opts
                .run_dir
                .join("logs")
                .join(self.log_name(op))
                .display()
        )
    }

    fn log_name(&self, op: OpId) -> &str {
        let p = &self.plan.ops[op].path;
        if p.is_empty() { "_root" } else { p }
    }

    fn life(&self, op: OpId) -> &Lifecycle {
        self.ops[op]
            .life
            .as_ref()
            .expect("every operation has a lifecycle")
    }

    /// Creates run state for plan operations from `from` on (the plan grows when a
    /// `decompose` adds subtasks).
    fn adopt_new_ops(&mut self, from: OpId) {
        for id in from..self.plan.ops.len() {
            let p = &self.plan.ops[id];
            let static_children = p.children.len() as u32;
            let policy = Policy {
                max_attempts: p.retry.max_attempts.max(1),
                children: static_children,
                fail_fast: p.on_child_failure == ChildFailure::FailFast,
            };
            self.ops.push(OpRun {
                life: Some(Lifecycle::new(policy)),
                unmet: p.after.len(),
                static_children,
                ..OpRun::default()
            });
        }
        for id in from..self.plan.ops.len() {
            self.by_path.insert(self.plan.ops[id].path.clone(), id);
            for &d in &self.plan.ops[id].after.clone() {
                self.ops[d].dependents.push(id);
            }
        }
    }

    /// Makes this a simulation: nothing runs; work waits in [`Engine::would_run`] until
    /// [`Engine::answer`] says how it ended. Drive it with [`Engine::begin`], `answer` and
    /// [`Engine::cancel_op`] instead of [`Engine::run`].
    pub fn simulate(&mut self) {
        self.simulated = Some(Default::default());
        // Jitter from a fixed seed: going back in a session replays the same delays.
        self.rng = 0x9e37_79b9_7f4a_7c15;
    }

    /// A simulation's virtual time, in ms since it began.
    pub fn sim_now(&self) -> u64 {
        self.sim_now
    }

    /// A simulation's pending timers, soonest first: `(due ms, operation, is a timeout)`.
    pub fn sim_timers(&self) -> Vec<(u64, OpId, bool)> {
        let mut t: Vec<(u64, OpId, bool)> = self
            .sim_timers
            .iter()
            .filter(|t| self.timer_live(t))
            .map(|t| (t.due, t.op, t.timeout))
            .collect();
        t.sort();
        t
    }

    /// A retry timer lives while its operation waits in Retrying; a timeout while the work
    /// it was armed for still runs.
    fn timer_live(&self, t: &SimTimer) -> bool {
        self.ops[t.op].token == t.token
            && if t.timeout {
                self.ops[t.op].work.is_some()
            } else {
                self.state(t.op) == "Retrying"
            }
    }

    /// Advances a simulation's clock by `by` ms, or to its next timer: retries come due,
    /// running work times out. Returns the new time.
    pub fn sim_tick(&mut self, by: Option<u64>) -> Result<u64, String> {
        let target = match by {
            Some(ms) => self.sim_now.saturating_add(ms),
            None => self
                .sim_timers()
                .first()
                .map(|t| t.0)
                .ok_or("no timer is pending: nothing to tick to")?,
        };
        loop {
            // The next live timer due by the target, in time order (then as armed).
            let timers = std::mem::take(&mut self.sim_timers);
            self.sim_timers = timers.into_iter().filter(|t| self.timer_live(t)).collect();
            let Some(i) = (0..self.sim_timers.len())
                .filter(|&i| self.sim_timers[i].due <= target)
                .min_by_key(|&i| (self.sim_timers[i].due, i))
            else {
                break;
            };
            let t = self.sim_timers.remove(i);
            self.sim_now = t.due;
            if t.timeout {
                self.handle(Msg::Timeout {
                    op: t.op,
                    token: t.token,
                });
            } else {
                self.queue.push_back((t.op, Event::RetryDue));
            }
            self.pump();
        }
        self.sim_now = target;
        Ok(target)
    }

    /// Starts a simulated run (or continues a replayed one): delivers what is due.
    pub fn begin(&mut self) {
        self.reconcile();
        self.pump();
    }

    /// The work a simulation waits for, in operation order.
    pub fn would_run(&self) -> Vec<WouldRun> {
        let Some(sim) = &self.simulated else {
            return Vec::new();
        };
        sim.iter()
            .map(|(&op, &(purpose, _))| {
                let (what, attempt, work) = match purpose {
                    Purpose::Phase(p, a) => (p.as_str(), a, self.phase_work(op, p)),
                    Purpose::Compensate => ("compensate", 1, self.plan.ops[op].compensate.as_ref()),
                };
                WouldRun {
                    op,
                    path: self.plan.display_path(op).to_string(),
                    what,
                    attempt,
                    work: work
                        .map(crate::lifecycle::graph::work_text)
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Operations whose work waits for a free slot (the global `max_parallel`).
    pub fn queued(&self) -> Vec<OpId> {
        self.waiting_work
            .iter()
            .filter(|&&(op, _, token)| self.ops[op].token == token)
            .map(|&(op, _, _)| op)
            .collect()
    }

    /// A simulated piece of work ends: `ok OP` or `fail OP`.
    pub fn answer(&mut self, op: OpId, result: WorkResult) -> Result<(), String> {
        let Some(sim) = &mut self.simulated else {
            return Err("not a simulation".into());
        };
        let Some((_, token)) = sim.remove(&op) else {
            return Err(format!(
                "`{}` is not running anything (it is {})",
                self.plan.display_path(op),
                self.state(op)
            ));
        };
        self.in_flight.remove(&token);
        self.ops[op].work = None;
        self.work_finished(op, result);
        self.pump();
        Ok(())
    }

    /// Cancels one operation (and what it contains), as a signal cancels the root.
    pub fn cancel_op(&mut self, op: OpId) {
        self.queue.push_back((op, Event::Cancel));
        self.pump();
    }

    /// Rebuilds every operation from recorded events without running anything. Successes
    /// become answers for [`Engine::run`]; whatever was in flight runs again.
    pub fn replay<I: IntoIterator<Item = Entry>>(&mut self, records: I) -> Result<u64, String> {
        let mut n = 0;
        for entry in records {
            n += 1;
            self.replay_entry(&entry)
                .map_err(|e| format!("record {n}: {e}"))?;
        }
        Ok(n)
    }

    /// Replays one recorded entry (see [`Engine::replay`]). An error says how the
    /// workflow as it is now disagrees with the record.
    pub fn replay_entry(&mut self, entry: &Entry) -> Result<(), String> {
        self.replaying = true;
        let result = self.replay_one(entry);
        self.replaying = false;
        result
    }

    fn replay_one(&mut self, entry: &Entry) -> Result<(), String> {
        let rec = match entry {
            Entry::Op(rec) => rec,
            Entry::Rerun { from } => {
                let mut ids = Vec::new();
                for f in from {
                    match self.plan.find(f) {
                        Some(id) => ids.push(id),
                        None => {
                            return Err(format!(
                                "a rerun from `{f}`, which the workflow does not have"
                            ));
                        }
                    }
                }
                self.reset(&ids);
                return Ok(());
            }
        };
        let Some(&op) = self.by_path.get(&rec.op) else {
            return Err(format!(
                "the journal names operation `{}`, which the workflow does not have",
                rec.op
            ));
        };
        self.deliver(op, rec.event.clone());
        if let Some(f) = self.failure.take() {
            return Err(f);
        }
        let got = self.state(op);
        if got != rec.state {
            return Err(format!(
                "`{}` {} led to {} when recorded, but to {} now",
                self.plan.display_path(op),
                rec.event.name(),
                rec.state,
                got
            ));
        }
        Ok(())
    }

    /// Makes operations that did not succeed run again (a failed or cancelled run being
    /// resumed), and `from` with everything that depends on it. Succeeded operations keep
    /// their outputs; the phases of the others whose success was recorded are not rerun,
    /// except where `from` asks.
    /// The caller journals it first ([`WorkflowRecorder::rerun`]), so a replay does the same.
    pub fn reset_for_rerun(&mut self, from: &[OpId]) {
        self.reset(from);
    }

    fn reset(&mut self, from: &[OpId]) {
        self.generation += 1;
        let mut reset: BTreeSet<OpId> = (0..self.ops.len())
            .filter(|&id| self.life(id).outcome() != Some(Outcome::Succeeded))
            .collect();
        // `--from`: those, what depends on them, and everything inside all of it.
        let mut forced: BTreeSet<OpId> = BTreeSet::new();
        let mut stack: Vec<OpId> = Vec::new();
        for &f in from {
            stack.push(f);
            stack.extend(self.plan.dependents(f));
        }
        while let Some(x) = stack.pop() {
            if forced.insert(x) {
                stack.extend(self.plan.ops[x].children.iter().copied());
            }
        }
        reset.extend(forced.iter().copied());
        // Whoever contains a rerun operation runs again too, to hear its children.
        for id in reset.clone() {
            let mut p = self.plan.ops[id].parent;
            while let Some(x) = p {
                reset.insert(x);
                p = self.plan.ops[x].parent;
            }
        }
        for &id in &reset {
            let p = &self.plan.ops[id];
            let policy = Policy {
                max_attempts: p.retry.max_attempts.max(1),
                children: self.ops[id].static_children,
                fail_fast: p.on_child_failure == ChildFailure::FailFast,
            };
            let compensated = self.life(id).outcome() == Some(Outcome::Compensated);
            let o = &mut self.ops[id];
            if forced.contains(&id) || compensated {
                o.recorded.clear();
            }
            // A parent gathers its children's outputs again.
            o.recorded.remove(&Phase::Integrate);
            o.outputs.clear();
            o.life = Some(Lifecycle::new(policy));
            o.children_started = false;
            o.running_children = 0;
            o.ready.clear();
            o.reported = false;
            o.settled_once = false;
            o.report_again = false;
            o.error = None;
            o.started = None;
            o.elapsed_ms = 0;
        }
        for &id in &reset {
            for c in self.plan.ops[id].children.clone() {
                if !reset.contains(&c) {
                    self.ops[c].report_again = true;
                }
            }
        }
        for id in 0..self.ops.len() {
            let unmet = self.plan.ops[id]
                .after
                .iter()
                .filter(|&&d| !self.dependency_ok(d))
                .count();
            self.ops[id].unmet = unmet;
        }
        self.completed.retain(|c| !reset.contains(c));
    }

    fn dependency_ok(&self, d: OpId) -> bool {
        match self.life(d).outcome() {
            Some(Outcome::Succeeded) => true,
            Some(Outcome::Failed) => self.plan.ops[d].optional,
            _ => false,
        }
    }

    /// Runs to the end: the root settles (and compensation, if any, finishes) and no work
    /// is left running. Needs a `LocalSet` (work runs on local tasks).
    pub async fn run(&mut self) -> RunEnding {
        let span = tracing::info_span!("workflow", id = %self.plan.id, run = %self.opts.run_id);
        let _g = span.enter();
        // Signals cancel the run; they are handled here, not by the process default.
        let tx = self.tx.clone();
        let signals = tokio::task::spawn_local(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if tx.send(Msg::Cancel).is_err() {
                    return;
                }
            }
        });
        self.stop_leftovers().await;
        self.reconcile();
        self.pump();
        while !self.finished() {
            if let Some(o) = &mut self.observer {
                o.idle();
            }
            self.flush_process_notes();
            let Some(msg) = self.rx.recv().await else {
                break;
            };
            self.handle(msg);
            // Take whatever else is ready before deciding, so bursts are handled together.
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
            }
            self.pump();
        }
        self.flush_process_notes();
        signals.abort();
        // The root's outcome decides: a failure that came before a Ctrl-C stays a failure.
        let ending = match self.life(0).outcome() {
            Some(Outcome::Succeeded) => RunEnding::Succeeded,
            Some(Outcome::Cancelled) => RunEnding::Cancelled,
            _ if self.failure.is_none() && self.cancelled && self.life(0).outcome().is_none() => {
                RunEnding::Cancelled
            }
            _ => RunEnding::Failed,
        };
        tracing::info!(?ending, "workflow ended");
        ending
    }

    /// Succeeded operations in the order they succeeded.
    pub fn completed(&self) -> &[OpId] {
        &self.completed
    }

    /// Whether the run is over: the root settled, compensation done, nothing running.
    pub fn is_finished(&self) -> bool {
        self.finished()
    }

    /// A simulation's state, for `orca verify`: equal for two simulations that will go on
    /// alike. Tokens and the clock are left out; pending timers count by how far off they are.
    pub fn sim_key(&self) -> String {
        use std::fmt::Write;
        let mut k = String::new();
        let _ = write!(k, "{}#", self.plan.ops.len());
        for (op, run) in self.ops.iter().enumerate() {
            let l = self.life(op);
            let _ = write!(
                k,
                "{}/{}/{}/{}/{}/{}/{:?}/{}/{}/{}/{}/{}/{}|",
                l.state_name(),
                l.phase().as_str(),
                l.attempt(),
                l.children_pending(),
                l.failures(),
                l.waiting(),
                run.ready,
                run.running_children,
                run.unmet,
                run.reported,
                run.settled_once,
                run.queued,
                run.children_started,
            );
        }
        let _ = write!(
            k,
            "c{:?}t{:?}{}{}{}{}q{}",
            self.completed,
            self.to_compensate,
            self.compensating,
            self.compensation_begun,
            self.cancelled,
            self.failure.is_some(),
            self.queue.len(),
        );
        let waiting: Vec<(OpId, Purpose)> = self
            .waiting_work
            .iter()
            .filter(|&&(op, _, token)| self.ops[op].token == token)
            .map(|&(op, p, _)| (op, p))
            .collect();
        let _ = write!(k, "w{waiting:?}");
        if let Some(sim) = &self.simulated {
            let running: Vec<(OpId, Purpose)> = sim.iter().map(|(&op, &(p, _))| (op, p)).collect();
            let _ = write!(k, "s{running:?}");
        }
        // Timers by how far off they are (several due together fire together), and the
        // jitter generator, which decides the delays of retries still to come.
        let now = self.sim_now;
        let timers: Vec<(u64, OpId, bool)> = self
            .sim_timers()
            .into_iter()
            .map(|(due, op, t)| (due.saturating_sub(now), op, t))
            .collect();
        let _ = write!(k, "T{timers:?}r{}", self.rng);
        k
    }

    /// The journal could not be written: why the run stopped.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn finished(&self) -> bool {
        let root_settled = self.life(0).outcome().is_some() && !self.life(0).is_running();
        root_settled
            && self.queue.is_empty()
            && self.in_flight.is_empty()
            && !self.compensating
            && self.to_compensate.is_empty()
            || (self.failure.is_some() && self.in_flight.is_empty())
    }

    /// After a replay: whatever was decided but not yet delivered when the run stopped is
    /// delivered now; work that had started without a recorded end starts again.
    fn reconcile(&mut self) {
        if self.state(0) == "Pending" {
            self.queue.push_back((0, Event::Start));
            return;
        }
        // A compensation that was under way finishes before the next one starts.
        if (0..self.ops.len()).any(|id| self.state(id) == "Compensating") {
            self.compensating = true;
        }
        for id in 0..self.ops.len() {
            let life = self.life(id);
            let state = life.state_name();
            let (phase, attempt) = (life.phase(), life.attempt());
            match state {
                "Analyzing" | "Researching" | "Decomposing" | "Integrating" => {
                    self.perform(id, Command::RunPhase { phase, attempt });
                }
                "Executing" if !life.waiting() => {
                    self.perform(id, Command::RunPhase { phase, attempt });
                }
                "Executing" => {
                    self.dirty.insert(id);
                }
                "Retrying" => self.queue.push_back((id, Event::RetryDue)),
                "Compensating" => self.perform(id, Command::RunCompensation),
                _ => {}
            }
            if let Some(outcome) = self.life(id).outcome()
                && !self.ops[id].reported
            {
                self.settled(id, outcome);
            }
            if matches!(state, "Failed" | "Cancelled") {
                // Its running children were being cancelled (a compensation is not).
                for &c in &self.plan.ops[id].children.clone() {
                    if self.life(c).outcome().is_none() && self.state(c) != "Compensating" {
                        self.queue.push_back((c, Event::Cancel));
                    }
                }
            }
            // A child that succeeded before a rerun of its parent, whose report the parent
            // was about to hear again when the run stopped.
            if self.ops[id].report_again
                && let Some(parent) = self.plan.ops[id].parent
                && self.ops[parent].children_started
                && let Some(outcome) = self.life(id).outcome()
            {
                self.ops[id].report_again = false;
                self.report(id, outcome);
            }
        }
        let root = self.life(0).outcome();
        if root == Some(Outcome::Failed) && self.completed.iter().any(|&c| self.compensable(c)) {
            self.begin_compensation();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Spawned { token, pid } => {
                self.pids.insert(token, pid);
                self.note_process('+', pid);
            }
            Msg::Done { op, token, result } => {
                self.in_flight.remove(&token);
                if let Some(pid) = self.pids.remove(&token) {
                    self.note_process('-', pid);
                }
                if self.ops[op].token != token || self.ops[op].work.is_none() {
                    return; // stopped: only its slot mattered
                }
                self.ops[op].work = None;
                self.work_finished(op, result);
            }
            Msg::Timeout { op, token } => {
                if self.ops[op].token == token && self.ops[op].work.is_some() {
                    self.ops[op].error = Some(match self.plan.ops[op].timeout_ms {
                        Some(ms) => format!("timed out after {}", crate::model::DurationMs(ms)),
                        None => "timed out".into(),
                    });
                    self.queue.push_back((op, Event::TimedOut));
                    // Stopped now, not when TimedOut is delivered: a result that comes in
                    // the same batch is stale and must not act (a decompose adding subtasks).
                    self.stop_work(op);
                }
            }
            Msg::RetryDue { op, token } => {
                if self.ops[op].token == token {
                    self.queue.push_back((op, Event::RetryDue));
                }
            }
            Msg::Cancel => {
                if !self.cancelled {
                    tracing::warn!("cancelling the run");
                    self.cancelled = true;
                    self.queue.push_back((0, Event::Cancel));
                } else {
                    // A second Ctrl-C: stop compensating too.
                    self.to_compensate.clear();
                    for id in 0..self.ops.len() {
                        if self.state(id) == "Compensating" {
                            self.queue.push_back((id, Event::Cancel));
                        }
                    }
                }
            }
        }
    }

    fn work_finished(&mut self, op: OpId, result: WorkResult) {
        if let Some(t) = self.ops[op].timer.take() {
            t.abort();
        }
        let compensating = self.state(op) == "Compensating";
        let phase = self.phase(op);
        let event = match (compensating, result) {
            (true, WorkResult::Succeeded { output, .. }) => {
                self.ops[op].outputs.insert("compensate", output);
                Event::CompensationSucceeded
            }
            (true, WorkResult::Failed { error, .. }) => {
                self.ops[op].error = Some(format!("compensation: {error}"));
                Event::CompensationFailed { error }
            }
            (false, WorkResult::Succeeded { output, text }) => {
                if phase == Phase::Decompose {
                    match self.decomposed(op, &text) {
                        Ok((subtasks, output)) => Event::PhaseSucceeded {
                            phase,
                            output,
                            subtasks,
                        },
                        Err(error) => {
                            self.ops[op].error = Some(error.clone());
                            Event::PhaseFailed {
                                phase,
                                error,
                                retryable: false,
                            }
                        }
                    }
                } else {
                    Event::PhaseSucceeded {
                        phase,
                        output,
                        subtasks: 0,
                    }
                }
            }
            (false, WorkResult::Failed { error, retryable }) => {
                self.ops[op].error = Some(format!("{}: {error}", phase.as_str()));
                Event::PhaseFailed {
                    phase,
                    error,
                    retryable,
                }
            }
        };
        self.queue.push_back((op, event));
    }

    /// Validates a decompose's output and adds the subtasks to the plan. The recorded
    /// output is the subtasks as JSON, so a replay adds the same ones.
    fn decomposed(&mut self, op: OpId, text: &str) -> Result<(u32, Json), String> {
        if text.trim().is_empty() {
            return Ok((0, Json::Object(Default::default())));
        }
        let defs = crate::model::load_workflow::parse_subtasks(text)
            .map_err(|e| format!("decompose printed invalid subtasks: {e}"))?;
        let json = serde_json::to_value(&defs).map_err(|e| e.to_string())?;
        // Run again (a resumed run): its subtasks are in the plan already.
        if let Some(before) = &self.ops[op].decomposed {
            return if *before == json {
                Ok((self.dynamic_children(op), json))
            } else {
                Err(format!(
                    "decompose printed other subtasks than when it ran before in this run ({}); a run's operations cannot change, start a new run",
                    defs.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            };
        }
        let n = self.add_subtasks(op, defs)?;
        Ok((n, json))
    }

    fn add_subtasks(
        &mut self,
        op: OpId,
        defs: IndexMap<String, OperationDef>,
    ) -> Result<u32, String> {
        let n = defs.len() as u32;
        let before = self.plan.ops.len();
        self.plan
            .add_subtasks(op, defs)
            .map_err(|e| format!("decompose printed invalid subtasks: {e}"))?;
        self.adopt_new_ops(before);
        Ok(n)
    }

    /// Delivers queued events until none are left, then starts what may start.
    fn pump(&mut self) {
        loop {
            while let Some((op, ev)) = self.queue.pop_front() {
                self.deliver(op, ev);
                if self.failure.is_some() {
                    self.stop_everything();
                    return;
                }
            }
            self.schedule();
            self.start_waiting_work();
            if self.queue.is_empty() {
                break;
            }
        }
    }

    /// One event to one operation: decide, record, then act.
    fn deliver(&mut self, op: OpId, event: Event) {
        // A span per operation's event: what it runs under `phase` spans, what it decides here.
        let span = tracing::debug_span!("operation", op = %self.plan.display_path(op), event = event.name());
        let _entered = span.enter();
        let from = self.state(op);
        let was_waiting = self.life(op).waiting();
        // A success counts only for the phase being worked on; a late one is ignored.
        let accepted = matches!(&event, Event::PhaseSucceeded { phase, .. }
            if from == phase.state_name() && !was_waiting);
        let life = self.ops[op].life.as_mut().expect("lifecycle");
        life.handle(&event);
        let commands = life.take_commands();
        let to = life.state_name();
        let attempt = life.attempt();
        let phase = life.phase();
        if matches!(event, Event::Start)
            && from == "Pending"
            && to != "Pending"
            && let Some(parent) = self.plan.ops[op].parent
        {
            let p = &mut self.ops[parent];
            p.running_children += 1;
            p.ready.remove(&op);
        }
        // Outputs and known successes follow the events, so a replay restores them too.
        if accepted
            && let Event::PhaseSucceeded {
                phase: p,
                output,
                subtasks,
            } = &event
        {
            self.ops[op].outputs.insert(p.as_str(), output.clone());
            self.ops[op].recorded.insert(*p, output.clone());
            if *p == Phase::Decompose && *subtasks > 0 {
                self.ops[op].decomposed = Some(output.clone());
            }
            if self.replaying && *p == Phase::Decompose && *subtasks > 0 {
                self.replay_subtasks(op, output);
            }
        }
        if self.replaying {
            if let Event::ChildSettled { child, .. } = &event
                && let Some(c) = self.child_named(op, child)
            {
                self.ops[c].reported = true;
                self.ops[c].report_again = false;
            }
            for c in commands {
                self.bookkeeping(op, &c);
            }
            return;
        }
        let rec = OpRecord {
            op: self.plan.ops[op].path.clone(),
            event: event.clone(),
            state: to.to_string(),
            attempt,
        };
        if let Some(r) = &mut self.recorder
            && let Err(e) = r.record(&rec)
        {
            self.failure = Some(format!("cannot write the journal: {e}"));
            return;
        }
        tracing::debug!(op = %self.plan.display_path(op), event = event.name(), from, to, "delivered");
        if from != to {
            self.changed(op, event.name(), from, to, phase, attempt);
        }
        for c in commands {
            self.perform(op, c);
        }
    }

    fn child_named(&self, op: OpId, name: &str) -> Option<OpId> {
        self.plan.ops[op]
            .children
            .iter()
            .copied()
            .find(|&c| self.plan.ops[c].name == name)
    }

    /// A recorded decompose output: the same subtasks join the plan again.
    fn replay_subtasks(&mut self, op: OpId, output: &Json) {
        let defs: IndexMap<String, OperationDef> = match serde_json::from_value(output.clone()) {
            Ok(d) => d,
            Err(e) => {
                self.failure = Some(format!("the journal's decompose output does not read: {e}"));
                return;
            }
        };
        // Already in the plan when the same engine replays twice.
        if defs.keys().all(|k| self.child_named(op, k).is_some()) {
            return;
        }
        if let Err(e) = self.add_subtasks(op, defs) {
            self.failure = Some(format!("the journal's decompose output: {e}"));
        }
    }

    /// What every command changes in the engine's own counts, with or without running.
    fn bookkeeping(&mut self, op: OpId, c: &Command) {
        match c {
            Command::RunPhase { .. } if self.ops[op].started.is_none() => {
                self.ops[op].started = Some(Instant::now());
            }
            Command::StartChildren => {
                self.ops[op].children_started = true;
                for &ch in &self.plan.ops[op].children {
                    if self.ops[ch].unmet == 0 && self.state(ch) == "Pending" {
                        self.ops[op].ready.insert(ch);
                    }
                }
                self.dirty.insert(op);
            }
            Command::Settled(outcome) => {
                let o = &mut self.ops[op];
                if std::mem::replace(&mut o.settled_once, true) {
                    return;
                }
                if let Some(t) = o.started {
                    o.elapsed_ms = t.elapsed().as_millis() as u64;
                }
                if *outcome == Outcome::Succeeded {
                    self.completed.push(op);
                }
                if let Some(parent) = self.plan.ops[op].parent
                    && self.ops[op].started.is_some()
                {
                    let p = &mut self.ops[parent];
                    p.running_children = p.running_children.saturating_sub(1);
                    self.dirty.insert(parent);
                }
                if matches!(outcome, Outcome::Succeeded | Outcome::Failed) {
                    let ok = self.dependency_ok(op);
                    for d in self.ops[op].dependents.clone() {
                        if ok {
                            let dep = &mut self.ops[d];
                            dep.unmet = dep.unmet.saturating_sub(1);
                            if dep.unmet == 0
                                && let Some(parent) = self.plan.ops[d].parent
                                && self.ops[parent].children_started
                                && self.state(d) == "Pending"
                            {
                                self.ops[parent].ready.insert(d);
                                self.dirty.insert(parent);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Carries out one command of an operation's lifecycle.
    fn perform(&mut self, op: OpId, c: Command) {
        self.bookkeeping(op, &c);
        match c {
            Command::RunPhase { phase, attempt } => {
                let work = self.phase_work(op, phase);
                if let Some(output) = self.ops[op].recorded.get(&phase).cloned() {
                    // Its success is journaled: answer from the record, never run it again.
                    let subtasks = if phase == Phase::Decompose {
                        self.dynamic_children(op)
                    } else {
                        0
                    };
                    self.queue.push_back((
                        op,
                        Event::PhaseSucceeded {
                            phase,
                            output,
                            subtasks,
                        },
                    ));
                } else if work.is_none() {
                    self.queue.push_back((
                        op,
                        Event::PhaseSucceeded {
                            phase,
                            output: Json::Null,
                            subtasks: 0,
                        },
                    ));
                } else {
                    self.enqueue_work(op, Purpose::Phase(phase, attempt));
                }
            }
            Command::ScheduleRetry { attempt, .. } if self.simulated.is_some() => {
                // A simulation's clock is virtual: the backoff waits for `tick`.
                let delay = self.backoff(op, attempt).as_millis() as u64;
                let token = self.fresh_token(op);
                self.sim_timers.push(SimTimer {
                    due: self.sim_now + delay,
                    op,
                    token,
                    timeout: false,
                });
            }
            Command::ScheduleRetry { attempt, .. } => {
                let delay = self.backoff(op, attempt);
                let token = self.fresh_token(op);
                let tx = self.tx.clone();
                self.ops[op].timer = Some(tokio::task::spawn_local(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Msg::RetryDue { op, token });
                }));
            }
            Command::StopWork => self.stop_work(op),
            Command::StartChildren => {
                // Children that succeeded in an earlier run report at once.
                for ch in self.plan.ops[op].children.clone() {
                    if std::mem::take(&mut self.ops[ch].report_again)
                        && let Some(outcome) = self.life(ch).outcome()
                    {
                        self.report(ch, outcome);
                    }
                }
            }
            Command::CancelChildren => {
                for ch in self.plan.ops[op].children.clone() {
                    if self.life(ch).outcome().is_none() {
                        self.queue.push_back((ch, Event::Cancel));
                    }
                }
            }
            Command::RunCompensation => {
                if self.plan.ops[op].compensate.is_some() {
                    self.enqueue_work(op, Purpose::Compensate);
                } else {
                    self.queue.push_back((op, Event::CompensationSucceeded));
                }
            }
            Command::Settled(outcome) => self.settled(op, outcome),
        }
    }

    /// Subtasks a recorded decompose added (those after the static ones).
    fn dynamic_children(&self, op: OpId) -> u32 {
        (self.plan.ops[op].children.len() as u32).saturating_sub(self.ops[op].static_children)
    }

    fn phase_work(&self, op: OpId, phase: Phase) -> Option<&Work> {
        self.plan.ops[op].phases.get(phase)
    }

    /// An operation reached a final state: its parent hears it, its dependents learn
    /// whether they may run, and the run ends or rolls back when it is the root.
    fn settled(&mut self, op: OpId, outcome: Outcome) {
        self.stop_work(op);
        if let Some(t) = self.ops[op].timer.take() {
            t.abort();
        }
        if self.ops[op].reported {
            // It had settled before: this is the end of its compensation (compensated,
            // failed or cancelled). Go on with the next; the run has failed anyway.
            self.compensation_step_done();
            return;
        }
        if !self.dependency_ok(op) {
            for d in self.ops[op].dependents.clone() {
                if self.state(d) == "Pending" {
                    self.queue.push_back((d, Event::DependencyFailed));
                }
            }
        }
        self.report(op, outcome);
        if op == 0 {
            let compensate = outcome == Outcome::Failed
                || outcome == Outcome::Cancelled && self.opts.compensate_on_cancel;
            if compensate {
                self.begin_compensation();
            }
        }
    }

    fn report(&mut self, op: OpId, outcome: Outcome) {
        self.ops[op].reported = true;
        if let Some(parent) = self.plan.ops[op].parent {
            self.queue.push_back((
                parent,
                Event::ChildSettled {
                    child: self.plan.ops[op].name.clone(),
                    outcome,
                    optional: self.plan.ops[op].optional,
                },
            ));
        }
    }

    fn compensable(&self, op: OpId) -> bool {
        self.plan.ops[op].compensate.is_some() && self.state(op) == "Succeeded"
    }

    /// Compensates succeeded operations one at a time, latest success first.
    fn begin_compensation(&mut self) {
        if self.compensation_begun {
            return;
        }
        self.compensation_begun = true;
        self.to_compensate = self
            .completed
            .iter()
            .rev()
            .copied()
            .filter(|&c| self.compensable(c))
            .collect();
        // One at a time: a compensation still under way (a resumed run) goes first.
        if !self.compensating {
            self.compensation_step_done();
        }
    }

    fn compensation_step_done(&mut self) {
        self.compensating = false;
        if let Some(next) = self.to_compensate.pop_front() {
            self.compensating = true;
            self.queue.push_back((next, Event::Compensate));
        }
    }

    fn fresh_token(&mut self, op: OpId) -> u64 {
        self.next_token += 1;
        self.ops[op].token = self.next_token;
        self.next_token
    }

    fn enqueue_work(&mut self, op: OpId, purpose: Purpose) {
        let token = self.fresh_token(op);
        self.ops[op].queued = true;
        self.waiting_work.push_back((op, purpose, token));
    }

    /// Starts queued work while global slots are free.
    fn start_waiting_work(&mut self) {
        let mut barrier_done = false;
        while self.in_flight.len() < self.global_bound {
            let Some((op, purpose, token)) = self.waiting_work.pop_front() else {
                break;
            };
            if self.ops[op].token != token {
                continue; // stopped while it waited
            }
            if !barrier_done {
                // What led here must survive a crash before the work's effects can happen.
                if let Some(r) = &mut self.recorder
                    && let Err(e) = r.barrier()
                {
                    self.failure = Some(format!("cannot write the journal: {e}"));
                    return;
                }
                barrier_done = true;
            }
            self.ops[op].queued = false;
            self.spawn_work(op, purpose, token);
        }
    }

    fn spawn_work(&mut self, op: OpId, purpose: Purpose, token: u64) {
        if let Some(sim) = &mut self.simulated {
            let (cancel_tx, _) = oneshot::channel();
            self.ops[op].work = Some(cancel_tx);
            self.in_flight.insert(token);
            sim.insert(op, (purpose, token));
            if let (Purpose::Phase(..), Some(ms)) = (purpose, self.plan.ops[op].timeout_ms) {
                self.sim_timers.push(SimTimer {
                    due: self.sim_now + ms,
                    op,
                    token,
                    timeout: true,
                });
            }
            return;
        }
        let plan_op = &self.plan.ops[op];
        let (work, phase_name, attempt) = match purpose {
            Purpose::Phase(phase, attempt) => {
                (self.phase_work(op, phase).cloned(), phase.as_str(), attempt)
            }
            Purpose::Compensate => (plan_op.compensate.clone(), "compensate", 1),
        };
        let Some(work) = work else {
            return;
        };
        // One directory for all logs: a directory per operation costs a mkdir each.
        let dir = self.opts.run_dir.join("logs");
        let (cancel_tx, cancel_rx) = oneshot::channel();
        self.ops[op].work = Some(cancel_tx);
        self.in_flight.insert(token);
        let made = if self.logs_ready {
            Ok(())
        } else {
            self.logs_fresh = !dir.exists();
            std::fs::create_dir_all(&dir)
        };
        self.logs_ready = made.is_ok();
        if let Err(e) = made {
            let _ = self.tx.send(Msg::Done {
                op,
                token,
                result: WorkResult::Failed {
                    error: format!("cannot create {}: {e}", dir.display()),
                    retryable: false,
                },
            });
            return;
        }
        let children: serde_json::Map<String, Json> = plan_op
            .children
            .iter()
            .map(|&c| {
                let status = self.life(c).outcome().map_or("pending", Outcome::as_str);
                (
                    self.plan.ops[c].name.clone(),
                    serde_json::json!({"status": status, "output": self.output(c)}),
                )
            })
            .collect();
        let outputs: serde_json::Map<String, Json> = self.ops[op]
            .outputs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        let operation = self.plan.display_path(op).to_string();
        let stdin = serde_json::json!({
            "run": self.opts.run_id,
            "operation": operation,
            "phase": phase_name,
            "attempt": attempt,
            "input": plan_op.input,
            "outputs": outputs,
            "children": children,
        });
        let mut env: Vec<(String, String)> = plan_op
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("ORCA_RUN_ID".into(), self.opts.run_id.clone()));
        env.push(("ORCA_OPERATION".into(), operation));
        env.push(("ORCA_PHASE".into(), phase_name.into()));
        env.push(("ORCA_ATTEMPT".into(), attempt.to_string()));
        // The same for every execution of this attempt (a rerun after a lost worker or a
        // crash), different for every other: what a command keys its effects on.
        env.push((
            "ORCA_IDEMPOTENCY_KEY".into(),
            format!(
                "{}/{}/{phase_name}/{attempt}/{}",
                self.opts.run_id,
                self.plan.display_path(op),
                self.generation
            ),
        ));
        // Absolute, so that a command with its own `cwd` still finds it.
        let run_dir = self
            .run_dir_abs
            .get_or_insert_with(|| {
                std::path::absolute(&self.opts.run_dir)
                    .unwrap_or_else(|_| self.opts.run_dir.clone())
            })
            .clone();
        env.push(("ORCA_RUN_DIR".into(), run_dir.display().to_string()));
        let job = Job {
            work,
            stdin,
            env,
            cwd: plan_op.cwd.clone(),
            log_stem: {
                let name = format!("{}.{phase_name}-{attempt}", self.log_name(op));
                if self.logs_fresh {
                    dir.join(name)
                } else {
                    free_stem(&dir, &name)
                }
            },
            base_dir: self.plan.base_dir.clone(),
        };
        let tx = self.tx.clone();
        let span = tracing::info_span!("phase", op = %self.plan.display_path(op), phase = phase_name, attempt);
        if let Some(d) = &mut self.dispatch {
            let mut job = job;
            // A worker elsewhere resolves nothing against this process's directory.
            job.log_stem = run_dir
                .join("logs")
                .join(job.log_stem.file_name().unwrap_or_default());
            job.base_dir = std::path::absolute(&job.base_dir).unwrap_or(job.base_dir);
            if let Some(cwd) = &job.cwd {
                job.cwd = Some(std::path::absolute(cwd).unwrap_or_else(|_| cwd.clone()));
            }
            let fut = d.dispatch(
                DispatchedWork {
                    op: self.plan.display_path(op).to_string(),
                    what: phase_name,
                    attempt,
                    generation: self.generation,
                    tags: self.plan.ops[op].tags.clone(),
                    job,
                },
                cancel_rx,
            );
            tokio::task::spawn_local(tracing::Instrument::instrument(
                async move {
                    let result = fut.await;
                    let _ = tx.send(Msg::Done { op, token, result });
                },
                span,
            ));
        } else {
            tokio::task::spawn_local(async move {
                let started = tx.clone();
                let spawned = move |pid| {
                    let _ = started.send(Msg::Spawned { token, pid });
                };
                let result =
                    tracing::Instrument::instrument(work::perform(job, cancel_rx, spawned), span)
                        .await;
                let _ = tx.send(Msg::Done { op, token, result });
            });
        }
        if let (Purpose::Phase(..), Some(ms)) = (purpose, self.plan.ops[op].timeout_ms) {
            let tx = self.tx.clone();
            self.ops[op].timer = Some(tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let _ = tx.send(Msg::Timeout { op, token });
            }));
        }
    }

    fn note_process(&mut self, sign: char, pid: u32) {
        use std::fmt::Write;
        if self.processes.is_some() {
            let _ = writeln!(self.process_notes, "{sign}{pid}");
        }
    }

    /// Writes the process notes gathered since the last wait, in one `write`: a runner
    /// killed while it waits has them on the file.
    fn flush_process_notes(&mut self) {
        use std::io::Write;
        if let Some(f) = &mut self.processes
            && !self.process_notes.is_empty()
        {
            let _ = f.write_all(self.process_notes.as_bytes());
            self.process_notes.clear();
        }
    }

    /// Commands a killed runner left running are stopped before anything runs again:
    /// SIGTERM to their process groups, SIGKILL to what is left after the grace period.
    async fn stop_leftovers(&mut self) {
        let path = self.opts.run_dir.join("processes");
        let mut live: BTreeSet<u32> = BTreeSet::new();
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let (sign, pid) = line.split_at(line.len().min(1));
            match (sign, pid.parse::<u32>()) {
                ("+", Ok(p)) if p > 1 => {
                    live.insert(p);
                }
                ("-", Ok(p)) => {
                    live.remove(&p);
                }
                _ => {}
            }
        }
        let exists = |p: u32| {
            // SAFETY: signal 0 only asks whether the process group exists.
            let signalable = unsafe { libc::kill(-(p as i32), 0) == 0 };
            signalable && group_has_living_member(p)
        };
        live.retain(|&p| exists(p));
        if !live.is_empty() {
            tracing::warn!(groups = ?live, "stopping commands left running by an earlier runner");
            for &p in &live {
                crate::runtime::process::signal_group(p, libc::SIGTERM);
            }
            let t0 = Instant::now();
            while live.iter().any(|&p| exists(p)) && t0.elapsed() < crate::runtime::process::GRACE {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for &p in &live {
                if exists(p) {
                    crate::runtime::process::signal_group(p, libc::SIGKILL);
                }
            }
        }
        self.processes = std::fs::File::create(&path).ok();
    }

    /// Stops an operation's running or queued work; its result, if it comes, is stale.
    fn stop_work(&mut self, op: OpId) {
        if let Some((_, token)) = self.simulated.as_mut().and_then(|s| s.remove(&op)) {
            // Nothing runs: the slot is free at once.
            self.in_flight.remove(&token);
        }
        if let Some(cancel) = self.ops[op].work.take() {
            let _ = cancel.send(());
            // The work still counts against the slots until its process is gone; its
            // result arrives with the old token and only frees the slot.
        }
        if self.ops[op].queued {
            self.ops[op].queued = false;
            self.ops[op].token = 0;
        }
    }

    /// Starts ready children within their parent's bound.
    fn schedule(&mut self) {
        if self.replaying {
            return;
        }
        while let Some(parent) = self.dirty.pop_first() {
            if !self.ops[parent].children_started || self.life(parent).outcome().is_some() {
                continue;
            }
            let bound = self.plan.ops[parent]
                .max_parallel
                .map_or(u32::MAX, |n| n.max(1));
            while self.ops[parent].running_children < bound {
                let Some(ch) = self.ops[parent].ready.pop_first() else {
                    break;
                };
                if self.state(ch) != "Pending" {
                    continue;
                }
                self.deliver(ch, Event::Start);
                if self.failure.is_some() {
                    return;
                }
            }
        }
    }

    /// The delay before `attempt`: exponential from `initial`, capped, with jitter (half
    /// the delay plus a random part of the other half) so that retries do not stampede.
    fn backoff(&mut self, op: OpId, attempt: u32) -> Duration {
        let r = self.plan.ops[op].retry;
        let exp = attempt.saturating_sub(2).min(63) as i32;
        let ms = (r.initial_ms as f64 * r.factor.powi(exp)).min(r.max_delay_ms as f64);
        let ms = if r.jitter {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let frac = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
            ms / 2.0 + ms / 2.0 * frac
        } else {
            ms
        };
        Duration::from_millis(ms.max(0.0) as u64)
    }

    fn changed(
        &mut self,
        op: OpId,
        event: &'static str,
        from: &'static str,
        to: &'static str,
        phase: Phase,
        attempt: u32,
    ) {
        let Some(wants_outputs) = self.observer.as_ref().map(|o| o.wants_outputs()) else {
            return;
        };
        let o = &self.ops[op];
        let elapsed_ms = o.started.map_or(0, |t| t.elapsed().as_millis() as u64);
        let error = matches!(to, "Failed" | "Retrying")
            .then(|| o.error.clone())
            .flatten();
        let output = (wants_outputs && to == "Succeeded").then(|| self.output(op));
        let Some(obs) = &mut self.observer else {
            return;
        };
        obs.change(&Change {
            op,
            path: self.plan.display_path(op).to_string(),
            event,
            from,
            to,
            phase,
            attempt,
            elapsed_ms,
            error,
            ops: self.plan.ops.len(),
            output,
        });
    }

    /// The journal failed: stop all work, start nothing.
    fn stop_everything(&mut self) {
        self.waiting_work.clear();
        self.queue.clear();
        for id in 0..self.ops.len() {
            self.stop_work(id);
        }
    }
}

/// Whether a process group has a member that is not a zombie. A killed runner's commands are
/// reparented, and their zombies wait for a reaper that may be slow: they still count as the
/// group's members for `kill(-pgid, 0)`, but nothing is left to stop.
fn group_has_living_member(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true; // no /proc: trust kill(2)
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut f = rest.split_whitespace();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|g| g.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
}

/// `dir/name`, or `dir/name-r2`, `-r3`, ... when an earlier run of this run directory (before a
/// resume) already kept logs under that name: every attempt's logs are kept.
fn free_stem(dir: &std::path::Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !work::log_path(&first, "stderr").exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{name}-r{n}")))
        .find(|p| !work::log_path(p, "stderr").exists())
        .expect("a free name")
}

/// A seed for retry jitter; it need not be reproducible, since `RetryDue` is journaled.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 32)) | 1
}
