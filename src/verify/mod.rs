//! Model checking of machines: `orca verify` and `orca test-paths`.
//!
//! The explorer runs the interpreter itself, breadth first, from the initial configuration:
//! every stable state is cloned once per [`Input`] (each event some transition names, with the
//! payloads of [`inputs`], and the passing of time to the next timer), and each state reached
//! is reduced to a canonical key ([`key`]) so that equal states are explored once. Breadth
//! first makes every path it reports a shortest one.
//!
//! What it checks on the way: the machine's `invariants` and `never_reach` in every state,
//! `error.execution` and the microstep limit on every step, and which transitions are ever
//! taken. Once the whole space is explored, `always_can_reach` and, for machines with a
//! top-level final state, whether a final state stays reachable (traps), over the graph of
//! states; and states where nothing can happen any more (deadlocks). An exploration cut short
//! by `--depth` or `--max-states` says so: a bound proves nothing beyond it.
//!
//! Pure like the interpreter: no clock, no I/O. Levels are expanded in parallel (rayon) and
//! merged in one thread in input order, so the result does not depend on the thread count.
//!
//! ```
//! use orca::chart::{CompileOptions, load_chart_str};
//! use orca::verify::{explore, Options, FindingKind};
//! use std::sync::Arc;
//!
//! let (chart, _) = load_chart_str("door.ron", r#"Machine(
//!     context: { "opens": 0 },
//!     states: {
//!         "closed": (on: { "OPEN": (target: "opened", actions: [Assign("opens", "opens + 1")]) }),
//!         "opened": (on: { "CLOSE": "closed" }),
//!     },
//!     invariants: { "few opens": "opens < 3" },
//! )"#, &CompileOptions::default()).unwrap();
//! let report = explore(Arc::new(chart), &Options::default());
//! let f = &report.findings[0];
//! assert!(matches!(&f.kind, FindingKind::Invariant { name } if name == "few opens"));
//! let path: Vec<String> = f.path.iter().map(|i| i.to_string()).collect();
//! assert_eq!(path, ["OPEN", "CLOSE", "OPEN", "CLOSE", "OPEN"]);
//! ```

mod growth;
pub mod inputs;
pub mod key;
pub mod paths;
pub mod slice;
mod store;
pub mod workflow;

pub use inputs::Input;

use crate::chart::{Chart, EventClass, Kind, TransitionId};
use crate::interpreter::{Instance, Observed, Preview, Status};
use key::{Layout, Relevance};
use rayon::prelude::*;
use std::sync::Arc;
use store::Store;

/// Bounds and switches of an exploration.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after paths of this many inputs.
    pub depth: Option<usize>,
    /// Stop after this many distinct states.
    pub max_states: usize,
    /// Keep every context value in keys (no slicing, see [`slice`]).
    pub exact: bool,
    /// States per parallel batch.
    pub batch: usize,
    /// Work out the simplest steps' results without stepping a copy (see
    /// [`Instance::preview`]); off only to compare the two.
    pub preview: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            depth: None,
            max_states: 1_000_000,
            exact: false,
            batch: 4096,
            preview: true,
        }
    }
}

/// How an exploration is going, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub states: usize,
    pub frontier: usize,
    pub depth: usize,
    /// Bytes held by the set of explored states.
    pub bytes: usize,
}

/// What an exploration found.
#[derive(Debug, Clone, PartialEq)]
pub enum FindingKind {
    /// An invariant is false (or fails to evaluate) in a reachable state.
    Invariant { name: String },
    /// A `never_reach` state is active in a reachable state.
    NeverReach { state: String },
    /// From a reachable state, an `always_can_reach` state can no longer become active.
    CannotReach { state: String },
    /// From a reachable state, no top-level final state can be reached any more.
    Trap,
    /// A reachable state that is not final where no input changes anything.
    Deadlock,
    /// A transition no explored path takes.
    NeverTaken { transition: TransitionId },
    /// Executable content can fail (`error.execution`), with this message.
    ExecutionError { message: String },
    /// A macrostep can exceed the microstep limit.
    Loop { message: String },
    /// A context value grows along a cycle of inputs that can be repeated forever.
    UnboundedGrowth { name: String },
    /// Workflows: an operation started before its dependencies allowed it.
    DependencyOrder { operation: String },
    /// Workflows: a compensation began while an operation that succeeded later was not
    /// yet compensated.
    CompensationOrder { operation: String },
    /// Workflows: a failed run ended with these operations still succeeded, not undone.
    Uncompensated { operations: Vec<String> },
}

/// One finding, with the shortest inputs that lead from the start to it (empty for
/// [`FindingKind::NeverTaken`] and for what the start itself does).
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    /// What a person reads.
    pub message: String,
    pub path: Vec<Input>,
    /// Errors are properties the file declares; warnings are what the verifier notices.
    pub error: bool,
    /// Where in the file: the invariant, the state or the transition concerned.
    pub span: Option<crate::model::Span>,
}

/// The result of [`explore`].
#[derive(Debug, Clone)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Distinct states explored.
    pub states: usize,
    /// Inputs applied: edges of the state graph, self-loops and duplicates included.
    pub steps: u64,
    /// The longest shortest path explored.
    pub depth: usize,
    /// `Some(frontier size)` when a bound stopped the exploration before the end.
    pub bounded: Option<usize>,
    /// Bytes held by the set of explored states at the end.
    pub bytes: usize,
    /// Context names left out of the keys (see [`slice`]).
    pub ignored: Vec<String>,
    /// The inputs driven, as [`Input`]s.
    pub inputs: Vec<Input>,
    /// For each transition, the shortest path that takes it (`None`: never taken).
    pub transition_paths: Vec<Option<Vec<Input>>>,
    /// For each chart state, the shortest path that makes it active (`None`: never).
    pub active_paths: Vec<Option<Vec<Input>>>,
    /// The shortest path to each distinct state and its key, when asked for
    /// ([`explore_with`]).
    pub state_paths: Vec<Vec<Input>>,
    pub state_keys: Vec<Vec<u8>>,
    /// Which context values the keys hold (see [`slice`]).
    pub relevance: Relevance,
}

/// Explores `chart` with `opts`.
pub fn explore(chart: Arc<Chart>, opts: &Options) -> Report {
    explore_with(chart, opts, false, &mut |_| {})
}

/// Where a state came from: its parent state and the input that led there.
#[derive(Clone, Copy)]
struct Origin {
    parent: u32,
    input: u32,
}

const NO_PARENT: u32 = u32::MAX;

/// At most this many distinct `error.execution` messages are reported.
const MAX_ERRORS: usize = 10;

/// What one input did to one state, computed in a worker. Small (32 bytes): there is one
/// for most inputs, and what is rarely there is in `extra`; the state it came from and where
/// that sits in its batch are its expansion's.
struct Succ {
    input: u32,
    /// The state reached, when it was known already (else `UNKNOWN` and its key is `key`).
    target: u32,
    /// Where the new state's key is in its expansion's `keys` (when it was not known), and
    /// its hash.
    key: (u32, u32),
    hash: u32,
    extra: Option<Box<Extra>>,
}

/// What a step rarely brings: something observed for the first time, an error, a failed
/// invariant that reads `event` (the state alone cannot say; the others are checked once per
/// new state, when it is built).
struct Extra {
    observed: Observed,
    failed: Option<String>,
    event_invariants: Vec<usize>,
}

const UNKNOWN: u32 = u32::MAX;

/// What the merge made of a step.
enum Merged {
    /// A new state, with this number.
    New(u32),
    /// A state already known.
    Known,
    /// A new state turned away at `--max-states`.
    Refused,
}

/// [`explore`], calling `progress` after each batch; with `paths`, the report also holds a
/// shortest path to every distinct state.
pub fn explore_with(
    chart: Arc<Chart>,
    opts: &Options,
    paths: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Report {
    let span = tracing::info_span!("verify", machine = %chart.id);
    let _g = span.enter();
    let rel = if opts.exact {
        slice::everything(&chart)
    } else {
        slice::relevance(&chart)
    };
    let inputs = inputs::inputs(&chart);
    let event_invariants: Vec<usize> = chart
        .properties
        .invariants
        .iter()
        .enumerate()
        .filter(|(_, i)| chart.expr(i.expr).reads_event())
        .map(|(n, _)| n)
        .collect();
    // A step checked against an invariant that reads `event` is taken, not previewed.
    let classes: Vec<Option<EventClass>> = inputs
        .iter()
        .map(|i| match i {
            Input::Event(e) if opts.preview && event_invariants.is_empty() => {
                chart.event_class(&e.name)
            }
            _ => None,
        })
        .collect();
    let mut x = Explorer {
        chart: chart.clone(),
        rel,
        inputs,
        previews: classes.iter().any(Option::is_some),
        classes,
        store: Store::default(),
        origins: Vec::new(),
        findings: Vec::new(),
        first_taken: vec![None; chart.transitions.len()],
        errors_seen: Vec::new(),
        invariant_failed: vec![false; chart.properties.invariants.len()],
        never_reached: vec![false; chart.properties.never_reach.len()],
        first_active: vec![None; chart.states.len()],
        edges: Vec::new(),
        keep_edges: !chart.properties.always_can_reach.is_empty() || has_final(&chart),
        deadlocks: 0,
        steps: 0,
        bounded: None,
        depth: 0,
        loop_found: false,
        max_states: opts.max_states,
        refused: 0,
        done: Vec::new(),
        goals: vec![Vec::new(); chart.properties.always_can_reach.len()],
        event_invariants,
    };
    // On one of the pool's threads: the merge between parallel steps then takes that thread's
    // core instead of a third thread's, which two cores would share with a waiting worker.
    rayon::scope(|_| {
        let _g = span.enter();
        x.run(opts, progress)
    });
    let ignored = slice::ignored(&chart, &x.rel);
    x.finish(paths, ignored)
}

/// The state graph's edges reversed (compressed rows), to ask which states can still reach
/// a goal: traps, `always_can_reach`, workflows that cannot end.
pub(crate) struct Reverse {
    starts: Vec<u32>,
    from: Vec<u32>,
}

impl Reverse {
    /// `edges` as (from, to) between states numbered below `n`.
    pub(crate) fn new(n: usize, edges: &[(u32, u32)]) -> Reverse {
        let mut starts = vec![0u32; n + 1];
        for &(_, to) in edges {
            starts[to as usize + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut fill = starts.clone();
        let mut from = vec![0u32; edges.len()];
        for &(f, to) in edges {
            from[fill[to as usize] as usize] = f;
            fill[to as usize] += 1;
        }
        Reverse { starts, from }
    }

    /// Per state, whether some path leads from it to a state where `goal` holds.
    pub(crate) fn can_reach(&self, goal: Vec<bool>) -> Vec<bool> {
        let mut can = goal;
        let mut queue: Vec<u32> = (0..can.len() as u32).filter(|&i| can[i as usize]).collect();
        while let Some(s) = queue.pop() {
            let (a, b) = (self.starts[s as usize], self.starts[s as usize + 1]);
            for &p in &self.from[a as usize..b as usize] {
                if !can[p as usize] {
                    can[p as usize] = true;
                    queue.push(p);
                }
            }
        }
        can
    }
}

/// Applies one input to an instance, as the stepper would (`Tick` with nothing pending does
/// nothing).
pub fn apply(inst: &mut Instance, input: &Input) -> Result<(), crate::interpreter::RunError> {
    match input {
        Input::Event(e) => inst.send_ref(e),
        Input::Tick => match inst.next_due() {
            Some(due) => inst.advance_to(due),
            None => Ok(()),
        },
        Input::Set(values) => {
            for (name, v) in values {
                inst.set_context_value(name, v.clone());
            }
            Ok(())
        }
    }
}

/// Whether no transition of `inst`'s configuration matches `event`, whatever its guards say
/// (the chart's candidate tables; a `*` descriptor matches everything): then the event is
/// ignored and leaves the state as it was, and the explorer need not try it.
fn surely_ignored(chart: &Chart, inst: &Instance, event: &crate::interpreter::Event) -> bool {
    let class = chart.event_class(&event.name);
    inst.configuration().all(|s| {
        let st = chart.state(s);
        !st.is_atomic()
            || match class {
                Some(c) => st.candidates(c).is_some_and(<[TransitionId]>::is_empty),
                None => !st.selects_any,
            }
    })
}

fn has_final(chart: &Chart) -> bool {
    chart
        .root()
        .children
        .iter()
        .any(|&c| chart.state(c).kind == Kind::Final)
}

struct Explorer {
    chart: Arc<Chart>,
    rel: Relevance,
    inputs: Vec<Input>,
    /// Per input: the event's class, when its steps may be previewed.
    classes: Vec<Option<EventClass>>,
    /// Whether any input's steps may be previewed.
    previews: bool,
    store: Store,
    origins: Vec<Origin>,
    findings: Vec<Finding>,
    /// Per transition: the edge that first took it.
    first_taken: Vec<Option<Origin>>,
    errors_seen: Vec<String>,
    invariant_failed: Vec<bool>,
    never_reached: Vec<bool>,
    /// Per chart state: the first explored state where it is active.
    first_active: Vec<Option<u32>>,
    /// (from, to) for every edge between distinct states, when traps are to be checked.
    edges: Vec<(u32, u32)>,
    keep_edges: bool,
    deadlocks: usize,
    steps: u64,
    /// Indices of invariants that read `event`, checked on every step.
    event_invariants: Vec<usize>,
    bounded: Option<usize>,
    depth: usize,
    /// A microstep-limit finding was made (one is enough).
    loop_found: bool,
    /// `--max-states`, and how many new states were turned away at it.
    max_states: usize,
    refused: usize,
    /// Per state, when edges are kept: whether it is done, and whether each
    /// `always_can_reach` state is active.
    done: Vec<bool>,
    goals: Vec<Vec<bool>>,
}

/// A new state to build after the merge: its number (`UNKNOWN`: refused), where its parent
/// sits in the batch, the input, the parent's number, and how many findings there were
/// after its step was merged.
struct Build {
    id: u32,
    pos: u32,
    input: u32,
    parent: u32,
    findings: usize,
}

/// States of a level with their numbers. Boxed: they move between vectors (built, joined,
/// kept as spares) as pointers rather than as a few hundred bytes each.
type Level = Vec<(u32, Box<Instance>)>;

/// Going through states scattered in memory: asks for the fields of the one after next and
/// for what the next one's fields point to (its own fields were asked for a step earlier),
/// so that copying them does not wait for memory.
fn prefetch_ahead(next: Option<&Instance>, after_next: Option<&Instance>) {
    if let Some(s) = after_next {
        s.prefetch();
    }
    if let Some(s) = next {
        s.prefetch_data();
    }
}

/// A worker's reusable buffers: the copy each input is applied to, its key, a preview, the
/// key of the state expanded with its parts (written at its first previewed step), and the
/// previewed steps whose lookups are to come.
#[derive(Default)]
struct Scratch {
    inst: Option<Instance>,
    key: Vec<u8>,
    preview: Preview,
    layout: Layout,
    pending: Pending,
}

/// Previewed steps of one state, looked up together: each one's table memory is asked for
/// as its key is made, so that the lookups wait for memory all at once rather than one
/// after another.
#[derive(Default)]
struct Pending {
    steps: Vec<PendingStep>,
    keys: Vec<u8>,
}

struct PendingStep {
    input: u32,
    taken: TransitionId,
    key: (u32, u32),
    hash: u32,
}

/// States expanded per parallel task: their results share one set of buffers.
const CHUNK: usize = 64;

/// What expanding a chunk of states gave, in their order. Kept from batch to batch and
/// cleared, so that expanding allocates nothing once the buffers have grown.
#[derive(Default)]
struct Expanded {
    states: Vec<Expansion>,
    succs: Vec<Succ>,
    /// The keys of the new states among `succs`, one after another.
    keys: Vec<u8>,
}

/// What expanding one state gave besides its successors.
struct Expansion {
    id: u32,
    /// Where the state sits in its batch: a new state is built again from it, once, after
    /// the merge (cheaper than a copy from every worker that happens upon it).
    pos: u32,
    /// How many of the chunk's `succs` are this state's (they follow the state before's).
    succs: u32,
    /// Running, and no input leads anywhere else.
    stuck: bool,
    /// Inputs applied.
    applied: u32,
}

impl Expanded {
    fn clear(&mut self) {
        self.states.clear();
        self.succs.clear();
        self.keys.clear();
    }
}

impl Explorer {
    fn run(&mut self, opts: &Options, progress: &mut dyn FnMut(Progress)) {
        let mut init = Instance::new(self.chart.clone());
        init.observe(true);
        let started = init.start();
        let observed = init.take_observed();
        init.clear_observed();
        let mut k = Vec::new();
        key::write(&init, &self.rel, &mut k);
        if !self.chart.properties.starts.is_empty() {
            // Not a state the machine rests in but the point before the starting points:
            // a starting point equal to the file's own context is explored as any other.
            k.insert(0, 0xff);
        }
        let h = store::hash(&k);
        let failed = started.err().map(|e| e.to_string());
        let succ = Succ {
            input: NO_PARENT,
            target: UNKNOWN,
            key: (0, k.len() as u32),
            hash: h,
            extra: Some(Box::new(Extra {
                observed,
                failed,
                event_invariants: Vec::new(),
            })),
        };
        // A level's states, in the chunks they were built in (so that a level is never
        // copied to grow).
        let mut frontier: Vec<Level> = Vec::new();
        if let Merged::New(id) = self.merge(NO_PARENT, &succ, &k) {
            // The point before `verify.context`'s starting points is no state the machine
            // rests in: its invariants are checked at the starting points.
            if self.chart.properties.starts.is_empty() {
                for n in self.state_violations(&init) {
                    self.invariant(n, self.origins[id as usize]);
                }
            }
            self.adopt(id, &init);
            frontier.push(vec![(id, Box::new(init))]);
        }
        let mut depth = 0;
        let mut spare: Vec<Box<Instance>> = Vec::new();
        let mut outs: Vec<Expanded> = Vec::new();
        // Kept from batch to batch: allocated afresh each time, buffers this large come as
        // new pages from the system, which a VM is slow to give.
        let mut build: Vec<Build> = Vec::new();
        let mut reuse: Vec<Option<Box<Instance>>> = Vec::new();
        let mut built: Level = Vec::new();
        let mut violations: Vec<Vec<usize>> = Vec::new();
        'levels: while !frontier.is_empty() {
            if opts.depth.is_some_and(|d| depth >= d) {
                // At the depth bound the last level is still expanded, keeping nothing new:
                // if it finds nothing new the exploration was complete after all.
                self.max_states = self.max_states.min(self.store.len());
            }
            let total: usize = frontier.iter().map(Vec::len).sum();
            let mut expanded_so_far = 0;
            let mut next: Vec<Level> = Vec::new();
            let mut next_len = 0;
            for batch in frontier.iter().flat_map(|c| c.chunks(opts.batch.max(1))) {
                let this = &*self;
                let chunks = batch.len().div_ceil(CHUNK);
                if outs.len() < chunks {
                    outs.resize_with(chunks, Expanded::default);
                }
                batch
                    .par_chunks(CHUNK)
                    .zip(outs[..chunks].par_iter_mut())
                    .enumerate()
                    .for_each_init(Scratch::default, |scratch, (c, (states, out))| {
                        out.clear();
                        let at = |i: usize| states.get(i).map(|(_, s)| &**s);
                        for first in states.iter().take(2) {
                            first.1.prefetch();
                        }
                        for (i, (id, inst)) in states.iter().enumerate() {
                            prefetch_ahead(at(i + 1), at(i + 2));
                            this.expand(*id, (c * CHUNK + i) as u32, inst, scratch, out);
                        }
                    });
                build.clear();
                for out in &mut outs[..chunks] {
                    self.merge_chunk(out, &mut build);
                }
                let this = &*self;
                // Instances of the level before, overwritten in place: a state built this way
                // allocates nothing (see `Instance::clone_from`).
                let keep = spare.len().saturating_sub(build.len());
                reuse.extend(spare.drain(keep..).map(Some));
                reuse.resize_with(build.len(), || None);
                let build = &build;
                build
                    .par_iter()
                    .zip(reuse.par_drain(..))
                    .enumerate()
                    .map(|(i, (b, old))| {
                        // As in the expansion: the parents come in batch order, a few apart.
                        let at = |i: usize| build.get(i).map(|b| &*batch[b.pos as usize].1);
                        prefetch_ahead(at(i + 1), at(i + 2));
                        let parent: &Instance = &batch[b.pos as usize].1;
                        let mut inst = match old {
                            Some(mut old) => {
                                (*old).clone_from(parent);
                                old
                            }
                            None => Box::new(parent.clone()),
                        };
                        // Deterministic: the same state the worker saw; what it did is merged.
                        let _ = apply(&mut inst, &this.inputs[b.input as usize]);
                        inst.clear_observed();
                        // The key the merge took, previewed or not, is the state's own.
                        #[cfg(debug_assertions)]
                        if b.id != UNKNOWN {
                            let mut k = Vec::new();
                            key::write(&inst, &this.rel, &mut k);
                            debug_assert_eq!(k, this.store.get(b.id), "the key of state {}", b.id);
                        }
                        // Once per new state, here in parallel rather than in every worker
                        // that comes upon it.
                        let failed = this.state_violations(&inst);
                        ((b.id, inst), failed)
                    })
                    .unzip_into_vecs(&mut built, &mut violations);
                // Each finding goes where the merge would have put it had it known: right
                // after what the step that found the state reported.
                let mut moved = 0;
                for (b, failed) in build.iter().zip(violations.drain(..)) {
                    for n in failed {
                        let origin = Origin {
                            parent: b.parent,
                            input: b.input,
                        };
                        if let Some(f) = self.invariant_finding(n, origin) {
                            self.findings.insert(b.findings + moved, f);
                            moved += 1;
                        }
                    }
                }
                if self.refused > 0 {
                    built.retain(|(id, _)| *id != UNKNOWN);
                }
                for (id, inst) in &built {
                    self.adopt(*id, inst);
                }
                next_len += built.len();
                // Small results join the last chunk until it holds a batch, so that the next
                // level is not cut into many small batches.
                match next.last_mut() {
                    Some(last) if last.len() < opts.batch => last.append(&mut built),
                    _ if built.is_empty() => {}
                    // Moved into a vector of its own size: `built` keeps its buffer.
                    _ => {
                        let mut level = Vec::with_capacity(built.len());
                        level.append(&mut built);
                        next.push(level);
                    }
                }
                expanded_so_far += batch.len();
                let unexpanded = total - expanded_so_far;
                progress(Progress {
                    states: self.store.len(),
                    frontier: next_len + unexpanded,
                    depth: depth + 1,
                    bytes: self.store.bytes(),
                });
                if self.refused > 0 {
                    self.bounded = Some(next_len + unexpanded + self.refused);
                    self.depth = if next_len == 0 { depth } else { depth + 1 };
                    break 'levels;
                }
            }
            depth += 1;
            self.depth = depth;
            if next_len == 0 {
                self.depth = depth - 1;
            }
            // Kept for the levels after to overwrite.
            spare.extend((std::mem::take(&mut frontier).into_iter().flatten()).map(|(_, i)| i));
            frontier = next;
        }
        // Freed by the pool's threads, which allocated most of them: the allocator takes a
        // block back fastest on its own thread.
        spare.into_par_iter().for_each(drop);
    }

    /// Merges what expanding a chunk of states gave, in order, adding the new states to build
    /// to `build`.
    fn merge_chunk(&mut self, out: &mut Expanded, build: &mut Vec<Build>) {
        let Expanded {
            states,
            succs,
            keys,
        } = out;
        // The table memory of a lookup a few steps ahead is asked for before this one, so
        // that this thread, which the others wait for, does not wait for memory each time.
        const AHEAD: usize = 16;
        let lookup_ahead = |store: &Store, s: Option<&Succ>| {
            if let Some(s) = s
                && s.target == UNKNOWN
            {
                store.prefetch(s.hash);
            }
        };
        for s in succs.iter().take(AHEAD) {
            lookup_ahead(&self.store, Some(s));
        }
        let mut at = 0;
        for e in states.iter() {
            self.steps += e.applied as u64;
            if e.stuck {
                self.stuck(e.id);
            }
            for succ in &succs[at..at + e.succs as usize] {
                lookup_ahead(&self.store, succs.get(at + AHEAD));
                at += 1;
                let (pos, input, parent) = (e.pos, succ.input, e.id);
                let key = &keys[succ.key.0 as usize..succ.key.1 as usize];
                let id = match self.merge(parent, succ, key) {
                    Merged::Known => continue,
                    Merged::New(id) => id,
                    // Built all the same, for its invariants: a violation past the bound is
                    // still a violation.
                    Merged::Refused => UNKNOWN,
                };
                build.push(Build {
                    id,
                    pos,
                    input,
                    parent,
                    findings: self.findings.len(),
                });
            }
        }
        succs.clear();
    }

    /// Applies every input to one state, adding what came of it to `out` (in a worker: reads
    /// the store, changes nothing).
    fn expand(
        &self,
        id: u32,
        pos: u32,
        inst: &Instance,
        scratch: &mut Scratch,
        out: &mut Expanded,
    ) {
        let Expanded {
            states,
            succs,
            keys,
        } = out;
        let first = succs.len();
        let mut stuck = *inst.status() == Status::Running;
        if *inst.status() != Status::Running {
            states.push(Expansion {
                id,
                pos,
                succs: 0,
                stuck: false,
                applied: 0,
            });
            return;
        }
        let Scratch {
            inst: copy,
            key: buf,
            preview,
            layout,
            pending,
        } = scratch;
        let mut laid_out = false;
        let mut applied = 0;
        // What a preview checks of the state whatever the event, checked once.
        let previewer = if self.previews {
            inst.previewer()
        } else {
            None
        };
        // The state's own key, for the steps that are taken: looked up once, when first needed.
        let mut own: Option<&[u8]> = None;
        // With `verify.context`, the start only leads to the starting points it lists.
        let from_start = id == 0 && !self.chart.properties.starts.is_empty();
        for (n, input) in self.inputs.iter().enumerate() {
            if from_start != matches!(input, Input::Set(_)) {
                continue;
            }
            if matches!(input, Input::Tick) && inst.next_due().is_none() {
                continue;
            }
            if let Some(class) = self.classes[n]
                && let Some(p) = &previewer
                && p.preview(class, preview)
            {
                applied += 1;
                // Ignored (as below); else what the step would find, without the step.
                if let Some(t) = preview.taken {
                    stuck = false;
                    if !std::mem::replace(&mut laid_out, true) {
                        layout.write(inst, &self.rel);
                    }
                    layout.previewed(preview, &self.rel, buf);
                    let hash = store::hash(buf);
                    self.store.prefetch(hash);
                    let start = pending.keys.len() as u32;
                    pending.keys.extend_from_slice(buf);
                    pending.steps.push(PendingStep {
                        input: n as u32,
                        taken: t,
                        key: (start, pending.keys.len() as u32),
                        hash,
                    });
                }
                continue;
            }
            if let Input::Event(e) = input
                && self.event_invariants.is_empty()
                && surely_ignored(&self.chart, inst, e)
            {
                // Back to the same state, nothing taken: as if applied.
                applied += 1;
                continue;
            }
            // The successors in input order: the previewed ones before this one first.
            self.resolve(id, pending, layout.key(), succs, keys);
            // One copy per worker, overwritten for each input: a state seen before costs
            // no allocation.
            let next = match copy {
                Some(s) => {
                    s.clone_from(inst);
                    s
                }
                None => copy.insert(inst.clone()),
            };
            let result = apply(next, input);
            applied += 1;
            key::write(next, &self.rel, buf);
            let same = buf[..] == **own.get_or_insert_with(|| self.store.get(id));
            // Stuck: every input leaves the state as it was and takes no transition (a
            // timer that re-enters its own state is a heartbeat, not a deadlock).
            stuck &= same && next.observed().is_none_or(|o| o.taken.is_empty());
            let hash = store::hash(buf);
            let event = match input {
                Input::Event(e) => Some(e),
                _ => None,
            };
            // A step back to the same state (an ignored event, a false guard) needs no lookup.
            let known = if same {
                Some(id)
            } else {
                self.store.find(buf, hash)
            };
            let observed = next.observed();
            let news = |o: &Observed| {
                o.taken
                    .iter()
                    .any(|t| self.first_taken[t.index()].is_none())
                    || o.errors.iter().any(|e| {
                        self.errors_seen.len() < MAX_ERRORS && !self.errors_seen.contains(e)
                    })
            };
            let failed_new = result.is_err() && !self.loop_found;
            if let Some(target) = known
                && !observed.is_some_and(news)
                && !failed_new
                && self.event_invariants.is_empty()
            {
                // Nothing new can come of it but the edge.
                if self.keep_edges {
                    succs.push(Succ {
                        input: n as u32,
                        target,
                        key: (0, 0),
                        hash,
                        extra: None,
                    });
                }
                continue;
            }
            let event_invariants = self.event_violations(next, event);
            // Copied only when it tells something new (the merge looks at nothing else).
            let observed = match observed {
                Some(o) if news(o) => o.clone(),
                _ => Observed::default(),
            };
            let failed = result.err().map(|e| e.to_string());
            let extra = (!observed.taken.is_empty()
                || !observed.errors.is_empty()
                || failed.is_some()
                || !event_invariants.is_empty())
            .then(|| {
                Box::new(Extra {
                    observed,
                    failed,
                    event_invariants,
                })
            });
            succs.push(Succ {
                input: n as u32,
                target: known.unwrap_or(UNKNOWN),
                key: if known.is_none() {
                    let start = keys.len() as u32;
                    keys.extend_from_slice(buf);
                    (start, keys.len() as u32)
                } else {
                    (0, 0)
                },
                hash,
                extra,
            });
        }
        self.resolve(id, pending, layout.key(), succs, keys);
        states.push(Expansion {
            id,
            pos,
            succs: (succs.len() - first) as u32,
            stuck,
            applied,
        });
    }

    /// Looks up the pending previewed steps of state `id` (whose key is `own`), in order.
    fn resolve(
        &self,
        id: u32,
        pending: &mut Pending,
        own: &[u8],
        succs: &mut Vec<Succ>,
        keys: &mut Vec<u8>,
    ) {
        for p in pending.steps.drain(..) {
            let key = &pending.keys[p.key.0 as usize..p.key.1 as usize];
            self.previewed(id, p.input, p.taken, own, key, p.hash, succs, keys);
        }
        pending.keys.clear();
    }

    /// A previewed step from state `id` (whose key is `own`) that took transition `t` to
    /// the state whose key is `key`: the successor the general step would give (no error,
    /// no other transition, nothing else observed).
    #[allow(clippy::too_many_arguments)]
    fn previewed(
        &self,
        id: u32,
        input: u32,
        t: TransitionId,
        own: &[u8],
        key: &[u8],
        hash: u32,
        succs: &mut Vec<Succ>,
        keys: &mut Vec<u8>,
    ) {
        let known = if key == own {
            Some(id)
        } else {
            self.store.find(key, hash)
        };
        let first = self.first_taken[t.index()].is_none();
        if known.is_some() && !first && !self.keep_edges {
            return;
        }
        succs.push(Succ {
            input,
            target: known.unwrap_or(UNKNOWN),
            key: match known {
                Some(_) => (0, 0),
                None => {
                    let start = keys.len() as u32;
                    keys.extend_from_slice(key);
                    (start, keys.len() as u32)
                }
            },
            hash,
            extra: first.then(|| {
                Box::new(Extra {
                    observed: Observed {
                        taken: vec![t],
                        errors: Vec::new(),
                    },
                    failed: None,
                    event_invariants: Vec::new(),
                })
            }),
        });
    }

    /// The invariants that do not read `event` and do not hold in `inst`.
    fn state_violations(&self, inst: &Instance) -> Vec<usize> {
        let invs = &self.chart.properties.invariants;
        (0..invs.len())
            .filter(|n| !self.event_invariants.contains(n))
            .filter(|&n| !matches!(inst.holds(invs[n].expr, None), Ok(true)))
            .collect()
    }

    /// The invariants that read `event` and do not hold after a step with it. They speak of
    /// steps with an event: not of the start, a tick or a `set`.
    fn event_violations(
        &self,
        inst: &Instance,
        event: Option<&crate::interpreter::Event>,
    ) -> Vec<usize> {
        let Some(event) = event else {
            return Vec::new();
        };
        let invs = &self.chart.properties.invariants;
        (self.event_invariants.iter().copied())
            .filter(|&n| !matches!(inst.holds(invs[n].expr, Some(event)), Ok(true)))
            .collect()
    }

    /// Takes one step's result into the explored set, in a fixed order (one thread).
    fn merge(&mut self, parent: u32, succ: &Succ, key: &[u8]) -> Merged {
        let origin = Origin {
            parent,
            input: succ.input,
        };
        if let Some(extra) = &succ.extra {
            self.merge_extra(extra, origin);
        }
        let (id, new) = if succ.target != UNKNOWN {
            (succ.target, false)
        } else {
            match self.store.insert_within(key, succ.hash, self.max_states) {
                Some(found) => found,
                // The bound: states past it are counted, not kept.
                None => {
                    self.refused += 1;
                    return Merged::Refused;
                }
            }
        };
        if self.keep_edges && parent != NO_PARENT && id != parent {
            self.edges.push((parent, id));
        }
        if !new {
            return Merged::Known;
        }
        self.origins.push(origin);
        Merged::New(id)
    }

    /// What a step brought besides its state: transitions taken and errors, first seen.
    fn merge_extra(&mut self, extra: &Extra, origin: Origin) {
        for &t in &extra.observed.taken {
            self.first_taken[t.index()].get_or_insert(origin);
        }
        for message in &extra.observed.errors {
            if !self.errors_seen.contains(message) && self.errors_seen.len() < MAX_ERRORS {
                self.errors_seen.push(message.clone());
                let path = self.path_via(origin);
                self.findings.push(Finding {
                    kind: FindingKind::ExecutionError {
                        message: message.clone(),
                    },
                    message: format!("`error.execution` can occur: {message}"),
                    path,
                    error: false,
                    span: None,
                });
            }
        }
        if let Some(message) = &extra.failed
            && !std::mem::replace(&mut self.loop_found, true)
        {
            let path = self.path_via(origin);
            self.findings.push(Finding {
                kind: FindingKind::Loop {
                    message: message.clone(),
                },
                message: format!("the machine can stop on an error: {message}"),
                path,
                error: false,
                span: None,
            });
        }
        for &n in &extra.event_invariants {
            self.invariant(n, origin);
        }
    }

    /// A new state, built: what is checked of its configuration.
    fn adopt(&mut self, id: u32, inst: &Instance) {
        for s in inst.configuration() {
            self.first_active[s.index()].get_or_insert(id);
        }
        for (n, &s) in self.chart.properties.never_reach.iter().enumerate() {
            if inst.is_active(s) && !self.never_reached[n] {
                self.never_reached[n] = true;
                let path = self.path_to(id);
                let state = self.chart.state(s).path.clone();
                self.findings.push(Finding {
                    message: format!("`{state}` is in `never_reach` but can be reached"),
                    kind: FindingKind::NeverReach { state },
                    path,
                    error: true,
                    span: Some(self.chart.state(s).span),
                });
            }
        }
        if self.keep_edges {
            self.done.push(inst.is_done());
            for (n, &s) in self.chart.properties.always_can_reach.iter().enumerate() {
                self.goals[n].push(inst.is_active(s));
            }
        }
    }

    fn invariant(&mut self, n: usize, origin: Origin) {
        if let Some(f) = self.invariant_finding(n, origin) {
            self.findings.push(f);
        }
    }

    /// The finding for invariant `n` broken after `origin`, unless it was reported already.
    fn invariant_finding(&mut self, n: usize, origin: Origin) -> Option<Finding> {
        if std::mem::replace(&mut self.invariant_failed[n], true) {
            return None;
        }
        let name = self.chart.properties.invariants[n].name.clone();
        let source = &self
            .chart
            .expr(self.chart.properties.invariants[n].expr)
            .source;
        let message = format!("invariant `{name}` (`{source}`) does not hold");
        let path = self.path_via(origin);
        Some(Finding {
            kind: FindingKind::Invariant { name },
            message,
            path,
            error: true,
            span: Some(self.chart.properties.invariants[n].span),
        })
    }

    fn stuck(&mut self, id: u32) {
        self.deadlocks += 1;
        if self.deadlocks == 1 {
            let path = self.path_to(id);
            self.findings.push(Finding {
                kind: FindingKind::Deadlock,
                message: "deadlock: a state that is not final where no event and no timer changes anything".into(),
                path,
                error: false,
                span: None,
            });
        }
    }

    /// The inputs from the start to state `id`.
    fn path_to(&self, id: u32) -> Vec<Input> {
        let mut out = Vec::new();
        let mut at = id;
        while at != NO_PARENT {
            let o = self.origins[at as usize];
            if o.parent == NO_PARENT {
                break;
            }
            out.push(self.inputs[o.input as usize].clone());
            at = o.parent;
        }
        out.reverse();
        out
    }

    /// The inputs of an edge's path: to its parent, then its input.
    fn path_via(&self, o: Origin) -> Vec<Input> {
        if o.parent == NO_PARENT {
            return Vec::new();
        }
        let mut p = self.path_to(o.parent);
        p.push(self.inputs[o.input as usize].clone());
        p
    }

    /// The checks that need the whole graph, and the report.
    fn finish(mut self, paths: bool, ignored: Vec<String>) -> Report {
        let complete = self.bounded.is_none();
        if complete && self.keep_edges {
            let n = self.store.len();
            let graph = Reverse::new(n, &self.edges);
            let mut targets: Vec<(Option<crate::chart::StateId>, Vec<bool>)> = Vec::new();
            if has_final(&self.chart) {
                targets.push((None, std::mem::take(&mut self.done)));
            }
            for (k, &s) in self.chart.properties.always_can_reach.iter().enumerate() {
                let goal = std::mem::take(&mut self.goals[k]);
                targets.push((Some(s), goal));
            }
            for (what, goal) in targets {
                let can = graph.can_reach(goal);
                // Numbered breadth first: the first one is the closest to the start.
                if let Some(trap) = (0..n).find(|&i| !can[i]) {
                    let count = can.iter().filter(|c| !**c).count();
                    let path = self.path_to(trap as u32);
                    self.findings.push(match what {
                        None => Finding {
                            kind: FindingKind::Trap,
                            message: format!("trap: no final state can be reached any more ({count} such states)"),
                            path,
                            error: false,
                            span: None,
                        },
                        Some(s) => {
                            let state = self.chart.state(s).path.clone();
                            Finding {
                                message: format!("`{state}` is in `always_can_reach` but can no longer be reached ({count} such states)"),
                                kind: FindingKind::CannotReach { state },
                                path,
                                error: true,
                                span: Some(self.chart.state(s).span),
                            }
                        }
                    });
                }
            }
        }
        if !complete && let Some(last) = self.store.len().checked_sub(1) {
            let path = self.path_to(last as u32);
            if let Some(f) = growth::find(&self.chart, &self.rel, &path) {
                self.findings.push(f);
            }
        }
        let transition_paths: Vec<Option<Vec<Input>>> = self
            .first_taken
            .iter()
            .map(|o| o.map(|o| self.path_via(o)))
            .collect();
        if complete {
            for (t, p) in transition_paths.iter().enumerate() {
                if p.is_none() {
                    let id = TransitionId(t as u32);
                    self.findings.push(Finding {
                        kind: FindingKind::NeverTaken { transition: id },
                        message: format!(
                            "transition {} is never taken",
                            self.chart.describe_transition(id)
                        ),
                        path: Vec::new(),
                        error: false,
                        span: Some(self.chart.transition(id).span),
                    });
                }
            }
        }
        let active_paths = self
            .first_active
            .iter()
            .map(|f| f.map(|id| self.path_to(id)))
            .collect();
        let (state_paths, state_keys) = if paths {
            (0..self.store.len() as u32)
                .map(|i| (self.path_to(i), self.store.get(i).to_vec()))
                .unzip()
        } else {
            (Vec::new(), Vec::new())
        };
        Report {
            findings: self.findings,
            states: self.store.len(),
            steps: self.steps,
            depth: self.depth,
            bounded: self.bounded,
            bytes: self.store.bytes(),
            ignored,
            inputs: self.inputs,
            transition_paths,
            active_paths,
            state_paths,
            state_keys,
            relevance: self.rel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{CompileOptions, load_chart_str};

    fn chart(text: &str) -> Arc<Chart> {
        Arc::new(
            load_chart_str("t.ron", text, &CompileOptions::default())
                .unwrap()
                .0,
        )
    }

    #[test]
    fn an_invariant_broken_just_past_the_bound_is_still_reported() {
        let c = chart(
            r#"Machine(context: { "n": 0 }, states: { "a": (on: {
                "INC": (actions: [Assign("n", "n + 1")]) }) },
                invariants: { "small": "n < 3" })"#,
        );
        let opts = Options {
            max_states: 3,
            ..Options::default()
        };
        let r = explore(c, &opts);
        assert_eq!(r.states, 3);
        assert!(r.bounded.is_some());
        let f = &r.findings[0];
        assert!(matches!(&f.kind, FindingKind::Invariant { name } if name == "small"));
        let path: Vec<String> = f.path.iter().map(|i| i.to_string()).collect();
        assert_eq!(path, ["INC", "INC", "INC"]);
    }

    #[test]
    fn findings_come_in_the_order_their_steps_were_taken() {
        // From the start, the first input reaches a state that breaks an invariant and the
        // second raises an error: the invariant (checked when the new state is built, after
        // the merge) is still reported first.
        let c = chart(
            r#"Machine(context: { "v": {} }, states: {
                "a": (on: { "GO": "b", "BAD": (actions: [Assign("v", "v.missing")]) }),
                "b": () },
                invariants: { "never b": "!In('b')" })"#,
        );
        let r = explore(c.clone(), &Options::default());
        let names: Vec<String> = r.inputs.iter().map(|i| i.to_string()).collect();
        assert_eq!(names[..2], ["GO", "BAD"], "inputs in document order");
        let found: Vec<&str> = r
            .findings
            .iter()
            .map(|f| match &f.kind {
                FindingKind::Invariant { .. } => "invariant",
                FindingKind::ExecutionError { .. } => "error",
                _ => "other",
            })
            .filter(|k| *k != "other")
            .collect();
        assert_eq!(found, ["invariant", "error"]);
        // With the inputs the other way round, the other order.
        let c = chart(
            r#"Machine(context: { "v": {} }, states: {
                "a": (on: { "BAD": (actions: [Assign("v", "v.missing")]), "GO": "b" }),
                "b": () },
                invariants: { "never b": "!In('b')" })"#,
        );
        let r = explore(c, &Options::default());
        let names: Vec<String> = r.inputs.iter().map(|i| i.to_string()).collect();
        assert_eq!(names[..2], ["BAD", "GO"]);
        assert!(matches!(
            r.findings[0].kind,
            FindingKind::ExecutionError { .. }
        ));
        assert!(matches!(r.findings[1].kind, FindingKind::Invariant { .. }));
    }
}
