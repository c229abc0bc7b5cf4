//! A machine compiled for execution: states in document order with precomputed structure,
//! every target resolved, every expression compiled, every duration parsed.
//!
//! [`compile`] also validates: all errors are reported together, and warnings (unreachable
//! states, shadowed transitions, unguarded eventless cycles, dead ends) are returned beside
//! the chart.

mod build;
pub mod descriptor;
mod entry;
pub use entry::History;
mod events;
pub use events::EventClass;
pub mod expr;
pub mod fast;
pub mod graph;
pub mod kernel;
mod validate;
pub(crate) use validate::for_each_op;

pub use build::{CompileOptions, compile, load_chart_file, load_chart_str};
pub use descriptor::Descriptor;
pub use expr::{CompiledExpr, ExprId};

use crate::model::{DurationMs, HistoryDepth, Json, SourceFile, Span};
use indexmap::IndexMap;

/// Index of a state; the root is `StateId(0)` and indices follow document order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(pub u32);

impl StateId {
    pub const ROOT: StateId = StateId(0);
    pub fn index(self) -> usize {
        self.0 as usize
    }
    pub fn is_root(self) -> bool {
        self == StateId::ROOT
    }
}

/// Index of a transition in [`Chart::transitions`]; indices follow document order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransitionId(pub u32);

impl TransitionId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The kind of a compiled state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Atomic,
    Compound,
    Parallel,
    Final,
    History(HistoryDepth),
}

/// A compiled state.
#[derive(Debug, Clone)]
pub struct State {
    pub id: StateId,
    /// The state's own name (`"#"` for the root).
    pub name: String,
    /// The dotted path from the root (`""` for the root).
    pub path: String,
    pub kind: Kind,
    pub parent: Option<StateId>,
    /// Children in document order.
    pub children: Vec<StateId>,
    /// Distance from the root (the root is 0).
    pub depth: u32,
    /// Compound states: the child entered by default.
    pub initial: Option<StateId>,
    /// History states: the default targets when nothing is recorded yet.
    pub history_default: Vec<StateId>,
    /// Transitions whose source is this state, in document order (priority order).
    pub transitions: Vec<TransitionId>,
    pub entry: Vec<Op>,
    pub exit: Vec<Op>,
    /// Delayed transitions: scheduled on entry, cancelled on exit.
    pub after: Vec<After>,
    pub invokes: Vec<Invoke>,
    /// Final states: the done data expression.
    pub output: Option<ExprId>,
    /// Whether a child is a history state (exits must record history).
    pub has_history: bool,
    /// Whether this state or an ancestor has eventless transitions: when no active atomic
    /// state has this, a macrostep skips the eventless selection.
    pub eventless_in_chain: bool,
    /// For atomic and final states: the transitions of this state, then of its parent, and
    /// so on to the root, each state's in document order: the order in which selection looks
    /// for the first enabled one. Empty for other states.
    pub selection_order: Vec<TransitionId>,
    /// For atomic and final states: per event class, sorted by class, the transitions of
    /// `selection_order` that match it (see [`State::candidates`]).
    pub candidates: Vec<(EventClass, Vec<TransitionId>)>,
    /// Whether `selection_order` has a `*` descriptor, so that selection matches by name.
    pub selects_any: bool,
    /// The last state in document order among this state and its descendants; with ids in
    /// document order, `a` is a descendant of `s` iff `s < a <= s.last_descendant`.
    pub last_descendant: StateId,
    /// Where the state is written (its name; the whole file for the root).
    pub span: Span,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub meta: IndexMap<String, Json>,
}

impl State {
    pub fn is_atomic(&self) -> bool {
        matches!(self.kind, Kind::Atomic | Kind::Final)
    }
    pub fn is_compound(&self) -> bool {
        self.kind == Kind::Compound
    }
    pub fn is_history(&self) -> bool {
        matches!(self.kind, Kind::History(_))
    }
    /// The path as users read it: `#` for the root.
    pub fn display_path(&self) -> &str {
        if self.path.is_empty() {
            "#"
        } else {
            &self.path
        }
    }
}

/// A delayed transition of a state (`after`).
#[derive(Debug, Clone)]
pub struct After {
    pub delay: DurationMs,
    /// The event the runtime delivers when the delay is due (matched exactly).
    pub event: String,
    /// The send id that exiting the state cancels.
    pub send_id: String,
}

/// A compiled transition.
#[derive(Debug, Clone)]
pub struct Transition {
    pub id: TransitionId,
    pub source: StateId,
    /// Empty for eventless (`always`) transitions.
    pub events: Vec<Descriptor>,
    pub guard: Option<ExprId>,
    pub targets: Vec<StateId>,
    /// SCXML `type="internal"` after 3.13's rule: only when the source is compound and every
    /// target is a proper descendant of it.
    pub internal: bool,
    pub actions: Vec<Op>,
    pub description: Option<String>,
    /// How it was written, for messages: `on "OPEN"`, `always`, `after 30s`.
    pub trigger: String,
    /// Where it is written.
    pub span: Span,
    /// The transition domain, computed once at load when `static_entry` is (`None` for a
    /// targetless transition, and whenever `static_entry` is `None`).
    pub static_domain: Option<StateId>,
    /// The entry set (sorted) when the transition is taken alone, computed once at load when
    /// entering does not go through a history state (empty for a targetless one); `None`
    /// when a target is a history state or a state it enters has a history state as its
    /// `initial`, so that both depend on the history values at run time.
    pub static_entry: Option<Vec<StateId>>,
    /// Whether taking it alone changes nothing but the configuration besides its own actions:
    /// a static entry set of states without `entry` content, `after`, invokes or finality,
    /// and nothing below its domain to run or record on exit.
    pub plain: bool,
}

impl Transition {
    pub fn is_eventless(&self) -> bool {
        self.events.is_empty()
    }
    pub fn is_targetless(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Where a `Send` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// This instance's external queue (`"#self"`, the default).
    ToSelf,
    /// The invoking parent (`"#parent"`).
    Parent,
    /// An invoked child, by invoke id.
    Invoke(String),
}

impl std::fmt::Display for SendTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendTarget::ToSelf => f.write_str("#self"),
            SendTarget::Parent => f.write_str("#parent"),
            SendTarget::Invoke(id) => f.write_str(id),
        }
    }
}

/// Compiled executable content.
#[derive(Debug, Clone)]
pub enum Op {
    Raise {
        event: String,
        data: Option<ExprId>,
    },
    Send {
        event: String,
        data: Option<ExprId>,
        delay: Option<DurationMs>,
        delay_expr: Option<ExprId>,
        id: Option<String>,
        to: SendTarget,
    },
    Cancel(String),
    Assign {
        /// The dotted location, split.
        location: Vec<String>,
        /// Where the location's first name sits in the initial context (context keys are
        /// never removed, so it stays there): assignment without hashing the name.
        slot: Option<usize>,
        value: ExprId,
    },
    Log {
        label: Option<String>,
        expr: ExprId,
    },
    If {
        branches: Vec<(ExprId, Vec<Op>)>,
        otherwise: Vec<Op>,
    },
    Foreach {
        items: ExprId,
        item: String,
        index: Option<String>,
        body: Vec<Op>,
    },
    Call {
        name: String,
        args: Vec<ExprId>,
    },
}

/// What an invoke runs, with paths resolved against the naming file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeSrc {
    Machine(std::path::PathBuf),
    Workflow(std::path::PathBuf),
    Command(Vec<String>),
    Shell(String),
}

impl std::fmt::Display for InvokeSrc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeSrc::Machine(p) => write!(f, "Machine({})", p.display()),
            InvokeSrc::Workflow(p) => write!(f, "Workflow({})", p.display()),
            InvokeSrc::Command(argv) => write!(f, "Command({})", argv.join(" ")),
            InvokeSrc::Shell(line) => write!(f, "Shell({line})"),
        }
    }
}

/// A compiled invoke.
#[derive(Debug, Clone)]
pub struct Invoke {
    pub id: String,
    pub src: InvokeSrc,
    pub input: Option<ExprId>,
    pub auto_forward: bool,
}

/// A compiled machine.
#[derive(Debug)]
pub struct Chart {
    /// The machine's `id`, or the file stem.
    pub id: String,
    /// The file it was loaded from, as named to the loader.
    pub file: String,
    pub description: Option<String>,
    pub states: Vec<State>,
    pub transitions: Vec<Transition>,
    pub exprs: Vec<CompiledExpr>,
    /// The initial context.
    pub context: IndexMap<String, Json>,
    /// The text it was compiled from, for positions in messages.
    pub source: SourceFile,
    /// Whether any transition is eventless: when none is, a macrostep skips looking for them.
    pub has_eventless: bool,
    /// Whether any state is parallel: when none is, one atomic state is active at a time.
    pub has_parallel: bool,
    /// Whether any expression reads `event`: when none does, the interpreter need not keep
    /// the event being processed.
    pub reads_event: bool,
    /// Every name a descriptor spells, sorted: an [`EventClass`] is a position here. Shared
    /// (see [`Chart::intern`]).
    pub class_names: Vec<std::sync::Arc<str>>,
    /// What `orca verify` checks and how it drives the machine.
    pub properties: Properties,
}

/// The properties a machine declares for `orca verify` (`invariants`, `never_reach`,
/// `always_can_reach`, `verify`), compiled: expressions in [`Chart::exprs`], paths resolved.
#[derive(Debug, Default)]
pub struct Properties {
    /// Named expressions that must be `true` in every stable configuration.
    pub invariants: Vec<Invariant>,
    /// States that must never be active.
    pub never_reach: Vec<StateId>,
    /// States that must stay reachable from every reachable configuration.
    pub always_can_reach: Vec<StateId>,
    /// Payloads to send with each event name, instead of those derived from the guards.
    pub events: IndexMap<String, Vec<Json>>,
    /// Starting points: context values set right after the start (`verify.context`).
    pub starts: Vec<IndexMap<String, Json>>,
}

/// One named invariant.
#[derive(Debug)]
pub struct Invariant {
    pub name: String,
    pub expr: ExprId,
    /// Where it is written, for findings.
    pub span: Span,
}

impl Chart {
    pub fn state(&self, id: StateId) -> &State {
        &self.states[id.index()]
    }
    /// `source → target target`, or `source (targetless)`: how journals and traces name a
    /// transition.
    pub fn describe_transition(&self, id: TransitionId) -> String {
        let t = self.transition(id);
        let source = self.state(t.source).display_path();
        if t.targets.is_empty() {
            return format!("{source} (targetless)");
        }
        let targets: Vec<&str> = t
            .targets
            .iter()
            .map(|&s| self.state(s).display_path())
            .collect();
        format!("{source} → {}", targets.join(" "))
    }

    pub fn transition(&self, id: TransitionId) -> &Transition {
        &self.transitions[id.index()]
    }
    pub fn expr(&self, id: ExprId) -> &CompiledExpr {
        &self.exprs[id.0 as usize]
    }
    pub fn root(&self) -> &State {
        &self.states[0]
    }
    /// Whether `a` is a proper descendant of `s`.
    pub fn is_descendant(&self, a: StateId, s: StateId) -> bool {
        s < a && a <= self.states[s.index()].last_descendant
    }
    /// `getTransitionDomain` for transition `t` with the given effective targets (history
    /// states already replaced by what they restore): the state whose descendants it exits and
    /// enters; `None` when there are no targets.
    pub fn transition_domain(&self, t: TransitionId, targets: &[StateId]) -> Option<StateId> {
        let tr = self.transition(t);
        if targets.is_empty() {
            return None;
        }
        if tr.internal
            && self.state(tr.source).kind == Kind::Compound
            && targets.iter().all(|&s| self.is_descendant(s, tr.source))
        {
            return Some(tr.source);
        }
        if tr.source == StateId::ROOT {
            return Some(StateId::ROOT);
        }
        // `findLCCA`: the nearest compound (or root) proper ancestor containing every target.
        Some(
            self.ancestors(tr.source)
                .filter(|&a| a == StateId::ROOT || self.state(a).kind == Kind::Compound)
                .find(|&a| targets.iter().all(|&s| self.is_descendant(s, a)))
                .unwrap_or(StateId::ROOT),
        )
    }

    /// Ancestors of `s`, nearest first, up to and including `upto` (or the root if `None`),
    /// excluding `s`.
    pub fn ancestors(&self, s: StateId) -> impl Iterator<Item = StateId> + '_ {
        std::iter::successors(self.states[s.index()].parent, |p| {
            self.states[p.index()].parent
        })
    }
    /// The state at a dotted path from the root (`""` or `"#"` is the root).
    pub fn find(&self, path: &str) -> Option<StateId> {
        let path = path.trim_start_matches('#');
        self.states.iter().find(|s| s.path == path).map(|s| s.id)
    }
}
