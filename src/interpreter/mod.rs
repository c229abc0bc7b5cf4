//! The statechart interpreter: the W3C SCXML algorithm (Appendix D) over a compiled
//! [`Chart`].
//!
//! Pure: it reads no clock and performs no I/O. Time comes in through
//! [`Instance::advance_to`], events through [`Instance::send`]; what the outside world must do
//! (logs, sends to a parent or a child, starting and stopping invokes) comes out as
//! [`Effect`]s, and what happened as [`Trace`] records. Delayed sends wait in the instance
//! itself, so its state (including pending timers) is a function of its inputs.
//!
//! ```
//! use orca::chart::{CompileOptions, load_chart_str};
//! use orca::interpreter::{Event, Instance};
//! use std::sync::Arc;
//!
//! let (chart, _) = load_chart_str("door.ron", r#"Machine(
//!     context: { "opens": 0 },
//!     states: {
//!         "closed": (on: { "OPEN": (target: "opened", actions: [Assign("opens", "opens + 1")]) }),
//!         "opened": (on: { "CLOSE": "closed" }, after: { "30s": "closed" }),
//!     },
//! )"#, &CompileOptions::default()).unwrap();
//! let mut door = Instance::new(Arc::new(chart));
//! door.start().unwrap();
//! door.send(Event::external("OPEN")).unwrap();
//! assert_eq!(door.configuration_paths(), ["opened"]);
//! assert_eq!(door.context()["opens"], 1);
//! door.advance_to(30_000).unwrap(); // the `after` fires
//! assert_eq!(door.configuration_paths(), ["closed"]);
//! ```

mod algorithm;
mod content;
pub mod eval;
mod host;
mod preview;
mod why;

pub use host::{Host, HostAction};
pub use preview::{Preview, Previewer};
pub use why::{Offer, Verdict, Why};

use crate::chart::{Chart, InvokeSrc, StateId, TransitionId};
use crate::hint::prefetch;
use crate::model::Json;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// SCXML event types (5.10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    #[default]
    External,
    Internal,
    Platform,
}

/// An event: a name, data, and where it came from. Cheap to clone: the name is shared.
/// Small (104 bytes, 136 before), since every event is moved a few times on its way through a macrostep:
/// the rarely set SCXML fields sit behind one pointer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "EventWire", into = "EventWire")]
pub struct Event {
    pub name: Arc<str>,
    pub data: Json,
    pub kind: EventKind,
    /// `origin`, `invokeid` and `sendid`, when any is set.
    pub meta: Option<Box<EventMeta>>,
}

/// The SCXML event fields that few events carry (5.10.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventMeta {
    pub origin: Option<String>,
    pub invokeid: Option<String>,
    pub sendid: Option<String>,
}

/// How an event is written: every field flat, as SCXML names them.
#[derive(Serialize, Deserialize)]
struct EventWire {
    name: Arc<str>,
    #[serde(default)]
    data: Json,
    #[serde(default, rename = "type")]
    kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invokeid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sendid: Option<String>,
}

/// Field by field, as SCXML sees an event: no `meta` and a `meta` of unset fields are equal.
impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.name == other.name
            && self.data == other.data
            && self.kind == other.kind
            && self.origin() == other.origin()
            && self.invokeid() == other.invokeid()
            && self.sendid() == other.sendid()
    }
}

impl From<EventWire> for Event {
    fn from(w: EventWire) -> Event {
        let meta = (w.origin.is_some() || w.invokeid.is_some() || w.sendid.is_some()).then(|| {
            Box::new(EventMeta {
                origin: w.origin,
                invokeid: w.invokeid,
                sendid: w.sendid,
            })
        });
        Event {
            name: w.name,
            data: w.data,
            kind: w.kind,
            meta,
        }
    }
}

impl From<Event> for EventWire {
    fn from(e: Event) -> EventWire {
        let m = e.meta.map(|m| *m).unwrap_or_default();
        EventWire {
            name: e.name,
            data: e.data,
            kind: e.kind,
            origin: m.origin,
            invokeid: m.invokeid,
            sendid: m.sendid,
        }
    }
}

impl Event {
    /// `_event.origin`.
    pub fn origin(&self) -> Option<&str> {
        self.meta.as_ref()?.origin.as_deref()
    }
    /// `_event.invokeid`.
    pub fn invokeid(&self) -> Option<&str> {
        self.meta.as_ref()?.invokeid.as_deref()
    }
    /// `_event.sendid`.
    pub fn sendid(&self) -> Option<&str> {
        self.meta.as_ref()?.sendid.as_deref()
    }
    /// The rare fields, to set them.
    pub fn meta_mut(&mut self) -> &mut EventMeta {
        self.meta.get_or_insert_default()
    }

    /// An external event without data.
    pub fn external(name: impl Into<Arc<str>>) -> Event {
        Event::new(name, Json::Null, EventKind::External)
    }
    /// An event of any kind.
    pub fn new(name: impl Into<Arc<str>>, data: Json, kind: EventKind) -> Event {
        Event {
            name: name.into(),
            data,
            kind,
            meta: None,
        }
    }
    /// The same event with data.
    pub fn with_data(mut self, data: Json) -> Event {
        self.data = data;
        self
    }
}

/// What the interpreter asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `Log`: also emitted as a tracing event.
    Log { label: Option<String>, value: Json },
    /// `Send(to: "#parent")`.
    SendToParent { event: Event },
    /// `Send(to: ID)` and auto-forwarded events.
    SendToInvoke { invoke: String, event: Event },
    /// Start an invoked child.
    Invoke {
        id: String,
        state: StateId,
        src: InvokeSrc,
        input: Option<Json>,
    },
    /// Stop an invoked child (its state was exited).
    CancelInvoke { id: String },
    /// `Call` of a host action that the [`Host`] did not handle in process.
    Call { name: String, args: Vec<Json> },
}

/// One record of what happened, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Trace {
    /// A microstep: the event it processed (none for eventless), the transitions taken in
    /// document order, the states exited (exit order) and entered (entry order). The
    /// initial entry is a microstep with no transitions.
    Microstep {
        event: Option<Arc<str>>,
        transitions: Vec<TransitionId>,
        exited: Vec<StateId>,
        entered: Vec<StateId>,
    },
    /// An event no transition was enabled for.
    Ignored { event: Arc<str> },
    /// Executable content failed; `error.execution` was raised.
    Error { message: String },
    /// A `Send` (or an `after` timer): the event, where it goes (`#self`, `#parent` or an
    /// invoke id), and when it is due for a delayed one.
    Sent {
        event: Arc<str>,
        to: String,
        due: Option<u64>,
    },
    /// A `Cancel` of a delayed send.
    Cancelled { sendid: String },
}

/// Where an instance is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    NotStarted,
    Running,
    /// Reached a top-level final state.
    Done,
    /// Stopped on an error that cannot be handled in the machine (the microstep limit).
    Failed(String),
}

/// An error that stops an instance.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("the macrostep exceeded {limit} microsteps; looping transitions: {looping}")]
    MicrostepLimit { limit: usize, looping: String },
    #[error("the instance has not been started")]
    NotStarted,
}

/// A delayed send waiting for its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    /// Virtual milliseconds since the instance started.
    pub due: u64,
    /// Order among timers due at the same time: the order they were scheduled.
    pub seq: u64,
    pub sendid: Option<String>,
    pub event: Event,
    pub target: crate::chart::SendTarget,
}

impl Timer {
    /// How `orca replay --to` and `orca step` show a pending timer in JSON.
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "due": self.due,
            "event": &*self.event.name,
            "to": self.target.to_string(),
            "id": self.sendid,
        })
    }
}

/// Bounds that keep a run from hanging.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Microsteps in one macrostep before it is stopped as a loop.
    pub microsteps: usize,
    /// Immediate self-sends processed after one external event before it is stopped.
    pub self_sends: usize,
    /// `Foreach` iterations in one action.
    pub foreach_items: usize,
}

impl Limits {
    /// The default bounds.
    pub const DEFAULT: Limits = Limits {
        microsteps: 10_000,
        self_sends: 100_000,
        foreach_items: 1_000_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A running machine. A clone is an independent copy of its whole state (the chart and
/// host shared): the verifier explores from one state by cloning it once per input.
pub struct Instance {
    chart: Arc<Chart>,
    core: Core,
}

/// An instance's state: everything but the chart, so that the algorithm can borrow the chart
/// while changing the state.
struct Core {
    host: Arc<Host>,
    /// Whether each state is active, by id.
    active: Vec<bool>,
    /// The active states in document order.
    config: Vec<StateId>,
    context: IndexMap<String, Json>,
    /// Whether the chart's declared context names still sit at the indices the compiler
    /// gave them (true unless a host action removed or reordered names), so that compiled
    /// slots are used without comparing names.
    slots_ok: bool,
    now: u64,
    seq: u64,
    status: Status,
    /// The event being processed (`event` in expressions). The quick path does not keep
    /// it for plain transitions of charts whose expressions never name `event`: there it may
    /// still hold an earlier event, which nothing reads.
    current: Option<Event>,
    /// Everything else, allocated on first use (see [`Cold`]).
    cold: Option<Box<Cold>>,
    /// What [`Instance::observe`] collects: apart from `Cold`, so that observing a simple
    /// machine (as the verifier does) does not make every copy of it carry the cold part.
    observed: Option<Box<Observed>>,
}

/// The parts of an instance that many machines never use: timers, invokes, effects, history,
/// self-sends, a trace, the general algorithm's buffers. Kept behind one pointer, allocated
/// the first time one is needed, so that an instance of a simple machine stays small
/// (the hier3 instance never allocates it, however many events it processes).
#[derive(Default)]
struct Cold {
    limits: Limits,
    /// Events raised inside the machine, processed before the next external one.
    internal: VecDeque<Event>,
    /// Recorded history, by history state.
    history: BTreeMap<StateId, Vec<StateId>>,
    /// Immediate sends to `#self`, processed after the current event.
    external: VecDeque<Event>,
    timers: Vec<Timer>,
    output: Option<Json>,
    effects: Vec<Effect>,
    trace: Option<Vec<Trace>>,
    /// States entered during this macrostep: their invokes start when it ends.
    to_invoke: Vec<StateId>,
    /// Invokes running, by the state that started them.
    invoked: Vec<(StateId, String)>,
    /// Reused buffers, so that a macrostep does not allocate.
    scratch: Scratch,
}

/// What an observed instance did since the observation was last taken: cheaper than a
/// [`Trace`], and it leaves the fast paths on.
#[derive(Debug, Default, PartialEq)]
pub struct Observed {
    /// Every transition taken, in order (a transition taken twice is listed twice).
    pub taken: Vec<TransitionId>,
    /// The message of every `error.execution` raised.
    pub errors: Vec<String>,
}

/// By hand, for `clone_from`: the derived one drops and reallocates the buffers, which the
/// verifier, copying an observed instance for every input, would pay each time.
impl Clone for Observed {
    fn clone(&self) -> Observed {
        Observed {
            taken: self.taken.clone(),
            errors: self.errors.clone(),
        }
    }
    fn clone_from(&mut self, s: &Observed) {
        self.taken.clone_from(&s.taken);
        self.errors.clone_from(&s.errors);
    }
}

/// What [`Core::cold`] reads before anything was allocated.
static EMPTY_COLD: Cold = Cold {
    limits: Limits::DEFAULT,
    internal: VecDeque::new(),
    history: BTreeMap::new(),
    external: VecDeque::new(),
    timers: Vec::new(),
    output: None,
    effects: Vec::new(),
    trace: None,
    to_invoke: Vec::new(),
    invoked: Vec::new(),
    scratch: Scratch {
        enabled: Vec::new(),
        exit: Vec::new(),
        enter: Vec::new(),
        recent: Vec::new(),
    },
};

impl Core {
    fn cold(&self) -> &Cold {
        self.cold.as_deref().unwrap_or(&EMPTY_COLD)
    }
    fn cold_mut(&mut self) -> &mut Cold {
        self.cold.get_or_insert_default()
    }
}

/// Buffers the algorithm reuses from one macrostep to the next.
#[derive(Default)]
struct Scratch {
    enabled: Vec<TransitionId>,
    exit: Vec<StateId>,
    enter: Vec<StateId>,
    recent: Vec<TransitionId>,
}

// Clones copy field by field; `clone_from` reuses the target's allocations, so that the
// verifier, which copies one state once per input, allocates nothing for a state it has seen.
impl Clone for Instance {
    fn clone(&self) -> Instance {
        Instance {
            chart: self.chart.clone(),
            core: self.core.clone(),
        }
    }
    fn clone_from(&mut self, source: &Instance) {
        // The same chart (and host) in the common case: no reference count to touch, which
        // threads copying states in parallel would otherwise contend for.
        if !Arc::ptr_eq(&self.chart, &source.chart) {
            self.chart = source.chart.clone();
            self.core.slots_ok = false;
        }
        self.core.copy_from(&source.core, self.chart.context.len());
    }
}

impl Clone for Core {
    fn clone(&self) -> Core {
        Core {
            host: self.host.clone(),
            active: self.active.clone(),
            config: self.config.clone(),
            context: self.context.clone(),
            slots_ok: self.slots_ok,
            now: self.now,
            seq: self.seq,
            status: self.status.clone(),
            current: self.current.clone(),
            cold: self.cold.clone(),
            observed: self.observed.clone(),
        }
    }
}

impl Core {
    /// `clone_from` with what only the instance knows: `declared`, how many names the chart declares (both cores are of the same chart).
    fn copy_from(&mut self, s: &Core, declared: usize) {
        if !Arc::ptr_eq(&self.host, &s.host) {
            self.host = s.host.clone();
        }
        self.active.clone_from(&s.active);
        self.config.clone_from(&s.config);
        // Both with the declared names in their slots: those names are equal (the same chart,
        // see `Instance::clone_from`), only the names created later need comparing.
        let equal = if self.slots_ok && s.slots_ok {
            declared
        } else {
            0
        };
        context_clone_from(&mut self.context, &s.context, equal);
        self.slots_ok = s.slots_ok;
        self.now = s.now;
        self.seq = s.seq;
        self.status.clone_from(&s.status);
        self.current.clone_from(&s.current);
        match (&mut self.cold, &s.cold) {
            (Some(mine), Some(theirs)) => mine.clone_from(theirs),
            (mine, theirs) => *mine = theirs.clone(),
        }
        match (&mut self.observed, &s.observed) {
            (Some(mine), Some(theirs)) => mine.clone_from(theirs),
            (mine, theirs) => *mine = theirs.clone(),
        }
    }
}

/// Copies `src` into `dst`, reusing `dst`'s names, index and allocations when both hold
/// the same names in the same order (the usual case: a copy of an instance of the same
/// machine, as the verifier makes for every input), so that only the values are copied.
/// The first `equal` names are known to be the same on both sides.
fn context_clone_from(
    dst: &mut IndexMap<String, Json>,
    src: &IndexMap<String, Json>,
    equal: usize,
) {
    let same_names = dst.len() == src.len()
        && dst.len() >= equal
        && (dst.keys().zip(src.keys()).skip(equal)).all(|(a, b)| a == b);
    if !same_names {
        dst.clone_from(src);
        return;
    }
    for (d, s) in dst.values_mut().zip(src.values()) {
        json_clone_from(d, s);
    }
}

/// `*dst = src.clone()`, keeping `dst`'s allocation where the kinds match.
fn json_clone_from(dst: &mut Json, src: &Json) {
    match (dst, src) {
        // Numbers are plain data: no drop of the old value, no call.
        (Json::Number(d), Json::Number(s)) => *d = s.clone(),
        (Json::String(d), Json::String(s)) => d.clone_from(s),
        (Json::Array(d), Json::Array(s)) if d.len() == s.len() => {
            for (d, s) in d.iter_mut().zip(s) {
                json_clone_from(d, s);
            }
        }
        (Json::Object(d), Json::Object(s)) => d.clone_from(s),
        (d, s) => *d = s.clone(),
    }
}

impl Clone for Cold {
    fn clone(&self) -> Cold {
        let mut c = Cold::default();
        c.clone_from(self);
        c
    }
    fn clone_from(&mut self, s: &Cold) {
        // Mostly empty on both sides: a cheap test spares the collections' own copying.
        fn copy<T: Clone>(mine: &mut VecDeque<T>, theirs: &VecDeque<T>) {
            if !(mine.is_empty() && theirs.is_empty()) {
                mine.clone_from(theirs);
            }
        }
        fn copy_vec<T: Clone>(mine: &mut Vec<T>, theirs: &Vec<T>) {
            if !(mine.is_empty() && theirs.is_empty()) {
                mine.clone_from(theirs);
            }
        }
        self.limits = s.limits;
        copy(&mut self.internal, &s.internal);
        if !(self.history.is_empty() && s.history.is_empty()) {
            self.history.clone_from(&s.history);
        }
        copy(&mut self.external, &s.external);
        copy_vec(&mut self.timers, &s.timers);
        self.output.clone_from(&s.output);
        copy_vec(&mut self.effects, &s.effects);
        self.trace.clone_from(&s.trace);
        copy_vec(&mut self.to_invoke, &s.to_invoke);
        copy_vec(&mut self.invoked, &s.invoked);
    }
}

/// A clone starts with empty buffers: their contents never outlive a macrostep.
impl Clone for Scratch {
    fn clone(&self) -> Scratch {
        Scratch::default()
    }
}

impl Instance {
    /// A new instance of `chart`; call [`Instance::start`] to enter the initial states.
    pub fn new(chart: Arc<Chart>) -> Instance {
        // One empty host for every instance that registers none.
        static NO_HOST: std::sync::LazyLock<Arc<Host>> = std::sync::LazyLock::new(Arc::default);
        Instance::with_host(chart, NO_HOST.clone())
    }

    /// A new instance whose `Call` actions go to `host`.
    pub fn with_host(chart: Arc<Chart>, host: Arc<Host>) -> Instance {
        let n = chart.states.len();
        // Built to size: a clone would keep the chart's spare capacity in every instance.
        let mut context = IndexMap::with_capacity(chart.context.len());
        context.extend(chart.context.iter().map(|(k, v)| (k.clone(), v.clone())));
        let core = Core {
            host,
            active: vec![false; n],
            config: Vec::new(),
            context,
            slots_ok: true,
            now: 0,
            seq: 0,
            status: Status::NotStarted,
            current: None,
            cold: None,
            observed: None,
        };
        Instance { chart, core }
    }

    /// Sets the bounds of this instance.
    pub fn set_limits(&mut self, limits: Limits) {
        self.core.cold_mut().limits = limits;
    }

    /// Starts keeping [`Trace`] records, read with [`Instance::take_trace`].
    pub fn record_trace(&mut self, on: bool) {
        if on || self.core.cold.is_some() {
            self.core.cold_mut().trace = on.then(Vec::new);
        }
    }

    /// The trace recorded since the last call.
    pub fn take_trace(&mut self) -> Vec<Trace> {
        match &mut self.core.cold {
            Some(c) => c.trace.as_mut().map(std::mem::take).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Starts (or stops) collecting [`Observed`]: the transitions taken and the errors raised.
    pub fn observe(&mut self, on: bool) {
        self.core.observed = on.then(Box::default);
    }

    /// What was observed since the last call (empty when not observing).
    pub fn take_observed(&mut self) -> Observed {
        match self.core.observed.as_mut() {
            Some(o) => std::mem::take(o),
            None => Observed::default(),
        }
    }

    /// Evaluates one of the chart's expressions (an invariant, say) against the state as it is,
    /// with `event` as `event` (default: the event processed last); it must be a bool. Changes
    /// nothing.
    pub fn holds(&self, expr: crate::chart::ExprId, event: Option<&Event>) -> Result<bool, String> {
        self.core.eval_bool_with(&self.chart, expr, event)
    }

    /// What was observed since [`Instance::take_observed`] or [`Instance::clear_observed`].
    pub fn observed(&self) -> Option<&Observed> {
        self.core.observed.as_deref()
    }

    /// Forgets what was observed and the effects issued, keeping their buffers.
    pub fn clear_observed(&mut self) {
        if let Some(o) = &mut self.core.observed {
            o.taken.clear();
            o.errors.clear();
        }
        if let Some(c) = &mut self.core.cold {
            c.effects.clear();
        }
    }

    /// The invokes running, by the state that started them.
    pub fn invoked(&self) -> &[(StateId, String)] {
        &self.core.cold().invoked
    }

    /// The effects issued since the last call, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        match &mut self.core.cold {
            Some(c) => std::mem::take(&mut c.effects),
            None => Vec::new(),
        }
    }

    /// Replaces initial context values before start (an invoke's `input`).
    pub fn set_context_value(&mut self, name: &str, value: Json) {
        self.core.context.insert(name.to_string(), value);
    }

    /// Enters the initial configuration and runs to stability.
    pub fn start(&mut self) -> Result<(), RunError> {
        let span = tracing::info_span!("instance", machine = %self.chart.id);
        let _g = span.enter();
        let core = &mut self.core;
        if core.status != Status::NotStarted {
            return Ok(());
        }
        core.status = Status::Running;
        core.enter_initial(&self.chart);
        core.macrostep(&self.chart)?;
        core.drain_self_sends(&self.chart)
    }

    /// Processes one external event: its macrostep, then any immediate self-sends it caused.
    pub fn send(&mut self, event: Event) -> Result<(), RunError> {
        self.send_cow(std::borrow::Cow::Owned(event))
    }

    /// [`Instance::send`] for an event the caller keeps (to send it again, say): it is
    /// cloned only if the machine needs to keep it. The quick path for plain transitions of
    /// charts that never read `event` does not, which spares the shared name's reference count
    /// two atomic updates per event; the general algorithm always keeps it.
    ///
    /// ```
    /// # use orca::chart::{CompileOptions, load_chart_str};
    /// # use orca::interpreter::{Event, Instance};
    /// # let (chart, _) = load_chart_str("t.ron", r#"Machine(states: {
    /// #     "a": (on: { "T": "b" }), "b": (on: { "T": "a" }) })"#, &CompileOptions::default()).unwrap();
    /// let mut m = Instance::new(std::sync::Arc::new(chart));
    /// m.start().unwrap();
    /// let toggle = Event::external(m.chart().intern("T"));
    /// for _ in 0..3 {
    ///     m.send_ref(&toggle).unwrap();
    /// }
    /// assert_eq!(m.configuration_paths(), ["b"]);
    /// ```
    pub fn send_ref(&mut self, event: &Event) -> Result<(), RunError> {
        self.send_cow(std::borrow::Cow::Borrowed(event))
    }

    fn send_cow(&mut self, event: std::borrow::Cow<'_, Event>) -> Result<(), RunError> {
        let span = tracing::info_span!("instance", machine = %self.chart.id);
        let _g = span.enter();
        let core = &mut self.core;
        if core.status == Status::NotStarted {
            return Err(RunError::NotStarted);
        }
        core.process_external(&self.chart, event)?;
        core.drain_self_sends(&self.chart)
    }

    /// Moves virtual time to `now` (milliseconds since start), delivering every delayed event
    /// due by then in order, each with the clock at its due time.
    pub fn advance_to(&mut self, now: u64) -> Result<(), RunError> {
        let core = &mut self.core;
        while let Some(t) = core.cold().timers.first()
            && t.due <= now
        {
            let timer = core.cold_mut().timers.remove(0);
            core.now = core.now.max(timer.due);
            match timer.target {
                crate::chart::SendTarget::ToSelf => {
                    if core.status == Status::Running {
                        core.process_external(&self.chart, std::borrow::Cow::Owned(timer.event))?;
                        core.drain_self_sends(&self.chart)?;
                    }
                }
                crate::chart::SendTarget::Parent => core
                    .cold_mut()
                    .effects
                    .push(Effect::SendToParent { event: timer.event }),
                crate::chart::SendTarget::Invoke(id) => {
                    core.cold_mut().effects.push(Effect::SendToInvoke {
                        invoke: id,
                        event: timer.event,
                    })
                }
            }
        }
        core.now = core.now.max(now);
        Ok(())
    }

    /// When the next delayed event is due, if any.
    pub fn next_due(&self) -> Option<u64> {
        self.core.cold().timers.first().map(|t| t.due)
    }

    /// The pending delayed events, earliest first.
    pub fn timers(&self) -> &[Timer] {
        &self.core.cold().timers
    }

    /// The virtual time, in milliseconds since start.
    pub fn now(&self) -> u64 {
        self.core.now
    }

    pub fn chart(&self) -> &Arc<Chart> {
        &self.chart
    }

    pub fn status(&self) -> &Status {
        &self.core.status
    }

    pub fn is_done(&self) -> bool {
        self.core.status == Status::Done
    }

    /// The machine's output once a top-level final state is reached.
    pub fn output(&self) -> Option<&Json> {
        self.core.cold().output.as_ref()
    }

    pub fn context(&self) -> &IndexMap<String, Json> {
        &self.core.context
    }

    /// Asks the processor to start loading this instance's own fields into the cache, for a
    /// caller that will read it soon (the verifier, going through thousands of instances,
    /// one after another). Changes nothing.
    pub fn prefetch(&self) {
        let start = (self as *const Instance).cast::<u8>();
        for line in (0..std::mem::size_of::<Instance>()).step_by(64) {
            prefetch(start.wrapping_add(line));
        }
    }

    /// As [`Instance::prefetch`], for what the fields point to (the active states, the
    /// configuration, the context's values); best after `prefetch` had time to bring in the
    /// fields themselves.
    pub fn prefetch_data(&self) {
        prefetch(self.core.active.as_ptr().cast());
        prefetch(self.core.config.as_ptr().cast());
        let values = self.core.context.as_slice();
        if let Some((_, first)) = values.get_index(0) {
            let start = (first as *const Json).cast::<u8>();
            let len = values.len() * std::mem::size_of::<(u64, String, Json)>();
            for line in (0..len).step_by(64) {
                prefetch(start.wrapping_add(line));
            }
        }
    }

    /// Whether the context starts with the chart's declared names, in their order (false
    /// only after a host action removed or reordered names).
    pub fn declared_in_place(&self) -> bool {
        self.core.slots_ok
    }

    /// The active states in document order (the root excluded).
    pub fn configuration(&self) -> impl Iterator<Item = StateId> + '_ {
        self.core
            .config
            .iter()
            .copied()
            .filter(|&s| s != StateId::ROOT)
    }

    /// Whether a state is active.
    pub fn is_active(&self, s: StateId) -> bool {
        self.core.active[s.index()]
    }

    /// The active state paths in document order, as `run --json` prints them.
    pub fn configuration_paths(&self) -> Vec<&str> {
        self.configuration()
            .map(|s| self.chart.state(s).path.as_str())
            .collect()
    }

    /// The recorded history values, by history state.
    pub fn history(&self) -> &BTreeMap<StateId, Vec<StateId>> {
        &self.core.cold().history
    }

    /// The configuration object of machines.md.
    pub fn snapshot(&self) -> Json {
        serde_json::json!({
            "configuration": self.configuration_paths(),
            "context": self.core.context,
            "done": self.is_done(),
            "output": self.core.cold().output.clone().unwrap_or(Json::Null),
        })
    }
}

/// A started instance of the machine `text`, for unit tests here and in the layers above.
#[cfg(test)]
pub(crate) fn started(text: &str) -> Instance {
    let opts = crate::chart::CompileOptions::default();
    let (chart, _) = crate::chart::load_chart_str("t.ron", text, &opts).unwrap();
    let mut inst = Instance::new(Arc::new(chart));
    inst.start().unwrap();
    inst
}
