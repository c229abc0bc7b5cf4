//! From [`MachineDef`] to [`Chart`]: allocation in document order, name resolution,
//! expression compilation, and the errors of all of that, reported together.

use super::descriptor::Descriptor;
use super::expr::{self, CompiledExpr, ExprId};
use super::{
    After, Chart, Invoke, InvokeSrc, Kind, Op, SendTarget, State, StateId, Transition, TransitionId,
};
use crate::model::diagnostic::did_you_mean;
use crate::model::load::{LoadedMachine, load_machine_file, load_machine_str};
use crate::model::source::{Entry, Node, Seg, Span, SynPath};
use crate::model::{
    self, Action, Diagnostic, Diagnostics, MachineDef, StateDef, StateKind, Transitions,
};
use indexmap::IndexMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What the embedding program allows machines to use.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Host actions a `Call` may name.
    pub host_actions: HashSet<String>,
    /// Accept `Call` of any name (the host resolves them at run time).
    pub allow_unknown_host_actions: bool,
}

/// Loads, compiles and validates a machine file. On success returns the chart and its
/// warnings; on failure every error (and warning) found.
pub fn load_chart_file(
    path: &Path,
    opts: &CompileOptions,
) -> Result<(Chart, Diagnostics), Diagnostics> {
    let loaded = load_machine_file(path)?;
    compile(&loaded, opts)
}

/// [`load_chart_file`] for text in memory; `name` is what diagnostics call it.
///
/// ```
/// use orca::chart::{CompileOptions, load_chart_str};
/// let (chart, warnings) = load_chart_str(
///     "light.ron",
///     r#"Machine(states: { "red": (on: { "GO": "green" }), "green": (on: { "STOP": "red" }) })"#,
///     &CompileOptions::default(),
/// ).unwrap();
/// assert_eq!(chart.states.len(), 3); // the root, red, green
/// assert!(warnings.is_empty());
/// ```
pub fn load_chart_str(
    name: &str,
    text: &str,
    opts: &CompileOptions,
) -> Result<(Chart, Diagnostics), Diagnostics> {
    let loaded = load_machine_str(name, text)?;
    compile(&loaded, opts)
}

/// Compiles a parsed machine.
pub fn compile(
    loaded: &LoadedMachine,
    opts: &CompileOptions,
) -> Result<(Chart, Diagnostics), Diagnostics> {
    let mut b = Builder {
        loaded,
        opts,
        diags: loaded.diagnostics.clone(),
        states: Vec::new(),
        defs: Vec::new(),
        transitions: Vec::new(),
        exprs: Vec::new(),
        by_name: ChildIndex::default(),
    };
    let root = Some(loaded.index.root());
    let span = loaded.index.root().span();
    b.allocate(
        None,
        "#",
        &RootOrState::Root(&loaded.def),
        (Vec::new(), root, span),
        0,
    );
    if b.states.len() == 1 {
        b.error("no-states", &[], "the machine has no states")
            .hint("add `states: { \"idle\": () }`");
    }
    b.by_name = child_index(&b.states);
    b.resolve_structure();
    for i in 0..b.states.len() {
        b.compile_state(StateId(i as u32));
    }
    let properties = b.compile_properties();
    b.exact_done_descriptors();
    b.mark_eventless_chains();
    b.order_selection();
    let mut chart = Chart {
        id: loaded
            .def
            .id
            .clone()
            .unwrap_or_else(|| model::load::default_id(&loaded.file.name, "machine")),
        file: loaded.file.name.clone(),
        description: loaded.def.description.clone(),
        states: b.states,
        transitions: b.transitions,
        exprs: b.exprs,
        context: loaded.def.context.clone(),
        source: loaded.file.clone(),
        has_eventless: false,
        has_parallel: false,
        reads_event: false,
        class_names: Vec::new(),
        properties,
    };
    chart.has_eventless = chart.transitions.iter().any(|t| t.is_eventless());
    chart.has_parallel = chart.states.iter().any(|s| s.kind == Kind::Parallel);
    chart.reads_event = chart.exprs.iter().any(CompiledExpr::reads_event);
    chart.precompute_entry_sets();
    chart.precompute_candidates();
    let mut diags = b.diags;
    if diags.has_errors() {
        diags.sort();
        return Err(diags);
    }
    super::validate::warnings(&chart, loaded, &mut diags);
    diags.sort();
    Ok((chart, diags))
}

/// The root and the states share most fields; this views either.
enum RootOrState<'a> {
    Root(&'a MachineDef),
    State(&'a StateDef),
}

impl<'a> RootOrState<'a> {
    fn states(&self) -> &'a IndexMap<String, StateDef> {
        match self {
            RootOrState::Root(m) => &m.states,
            RootOrState::State(s) => &s.states,
        }
    }
    fn on(&self) -> &'a IndexMap<String, Transitions> {
        match self {
            RootOrState::Root(m) => &m.on,
            RootOrState::State(s) => &s.on,
        }
    }
    fn always(&self) -> &'a Transitions {
        match self {
            RootOrState::Root(m) => &m.always,
            RootOrState::State(s) => &s.always,
        }
    }
    fn after(&self) -> &'a IndexMap<model::DurationText, Transitions> {
        match self {
            RootOrState::Root(m) => &m.after,
            RootOrState::State(s) => &s.after,
        }
    }
    fn entry(&self) -> &'a [Action] {
        match self {
            RootOrState::Root(m) => &m.entry,
            RootOrState::State(s) => &s.entry,
        }
    }
    fn exit(&self) -> &'a [Action] {
        match self {
            RootOrState::Root(m) => &m.exit,
            RootOrState::State(s) => &s.exit,
        }
    }
    fn invoke(&self) -> &'a [model::InvokeDef] {
        match self {
            RootOrState::Root(m) => &m.invoke,
            RootOrState::State(s) => &s.invoke,
        }
    }
    fn initial(&self) -> Option<&'a str> {
        match self {
            RootOrState::Root(m) => m.initial.as_deref(),
            RootOrState::State(s) => s.initial.as_deref(),
        }
    }
}

struct Builder<'a> {
    loaded: &'a LoadedMachine,
    opts: &'a CompileOptions,
    diags: Diagnostics,
    states: Vec<State>,
    /// Per state: its definition, its syntax path and its node in the span index.
    defs: Vec<(RootOrState<'a>, SynPath, Option<Node<'a>>)>,
    transitions: Vec<Transition>,
    exprs: Vec<CompiledExpr>,
    /// State name → (parent, state) for every state with that name: target resolution looks
    /// children up here instead of scanning them (built once the tree is complete).
    by_name: ChildIndex,
}

/// State name → (parent, child) pairs, sorted by parent (one child of a name per parent).
type ChildIndex =
    std::collections::HashMap<Box<str>, Vec<(StateId, StateId)>, foldhash::fast::RandomState>;

fn child_index(states: &[State]) -> ChildIndex {
    let mut index = ChildIndex::default();
    for s in states.iter().skip(1) {
        if let Some(p) = s.parent {
            index
                .entry(Box::from(s.name.as_str()))
                .or_default()
                .push((p, s.id));
        }
    }
    for pairs in index.values_mut() {
        pairs.sort_unstable();
    }
    index
}

/// A diagnostic being built, so callers can add a hint fluently.
struct DiagRef<'d>(&'d mut Diagnostic);

impl DiagRef<'_> {
    fn hint(self, h: impl Into<String>) {
        self.0.hint = Some(h.into());
    }
}

fn with(path: &[Seg], more: impl IntoIterator<Item = Seg>) -> SynPath {
    let mut p = path.to_vec();
    p.extend(more);
    p
}

impl<'a> Builder<'a> {
    /// Where `path` is written: a string value itself (a target, an expression), else the
    /// key that introduces it.
    fn span(&self, path: &[Seg]) -> Span {
        match self.loaded.index.get(path) {
            Some(node) if node.is_string() => node.span(),
            _ => self.loaded.span(path),
        }
    }

    fn push(
        &mut self,
        sev: model::Severity,
        code: &'static str,
        path: &[Seg],
        span: Span,
        msg: String,
    ) -> DiagRef<'_> {
        let mut d = Diagnostic::new(sev, code, &self.loaded.file, span, msg);
        if let Some(s) = model::load::state_of(path) {
            d = d.with_state(s);
        }
        self.diags.push(d);
        DiagRef(self.diags.0.last_mut().expect("just pushed"))
    }

    fn error(&mut self, code: &'static str, path: &[Seg], msg: impl Into<String>) -> DiagRef<'_> {
        let span = self.span(path);
        self.push(model::Severity::Error, code, path, span, msg.into())
    }

    /// An error about a field or key itself rather than its value.
    fn error_key(
        &mut self,
        code: &'static str,
        path: &[Seg],
        msg: impl Into<String>,
    ) -> DiagRef<'_> {
        let span = self.loaded.span(path);
        self.push(model::Severity::Error, code, path, span, msg.into())
    }

    /// Assigns ids in document order (pre-order), checking names and kinds on the way.
    fn allocate(
        &mut self,
        parent: Option<StateId>,
        name: &str,
        def: &RootOrState<'a>,
        (path, node, span): (SynPath, Option<Node<'a>>, Span),
        depth: u32,
    ) -> StateId {
        let id = StateId(self.states.len() as u32);
        let full_path = match parent {
            None => String::new(),
            Some(p) if p == StateId::ROOT => name.to_string(),
            Some(p) => format!("{}.{}", self.states[p.index()].path, name),
        };
        let kind = match def {
            RootOrState::Root(_) => Kind::Compound,
            RootOrState::State(s) => match s.effective_kind() {
                StateKind::Atomic => Kind::Atomic,
                StateKind::Compound => Kind::Compound,
                StateKind::Parallel => Kind::Parallel,
                StateKind::Final => Kind::Final,
                StateKind::History(d) => Kind::History(d),
            },
        };
        self.states.push(State {
            id,
            name: name.to_string(),
            path: full_path,
            kind,
            parent,
            children: Vec::new(),
            depth,
            initial: None,
            history_default: Vec::new(),
            transitions: Vec::new(),
            entry: Vec::new(),
            exit: Vec::new(),
            after: Vec::new(),
            invokes: Vec::new(),
            output: None,
            has_history: false,
            eventless_in_chain: false,
            selection_order: Vec::new(),
            candidates: Vec::new(),
            selects_any: false,
            last_descendant: id,
            span,
            description: None,
            tags: Vec::new(),
            meta: IndexMap::new(),
        });
        if let RootOrState::State(s) = def {
            let st = &mut self.states[id.index()];
            st.description = s.description.clone();
            st.tags = s.tags.clone();
            st.meta = s.meta.clone();
            self.check_kind(id, s, &path);
        }
        let children = def.states();
        // The path moves in once the children have been given theirs.
        self.defs.push((
            match def {
                RootOrState::Root(m) => RootOrState::Root(m),
                RootOrState::State(s) => RootOrState::State(s),
            },
            Vec::new(),
            node,
        ));
        let states_node = node.and_then(|n| n.field("states")).map(|e| e.value());
        for (child_name, child) in children {
            let child_path = with(&path, ["states".into(), child_name.as_str().into()]);
            let entry = states_node.and_then(|n| n.keyed(child_name));
            let child_span = match entry.and_then(|e| e.key_span()) {
                Some(span) => span,
                None => self.loaded.span(&child_path),
            };
            if let Err(why) = check_name(child_name) {
                self.error(
                    "invalid-name",
                    &child_path,
                    format!("invalid state name `{child_name}`: {why}"),
                )
                .hint("state names are non-empty and contain no `.`, `#` or whitespace");
            }
            let c = self.allocate(
                Some(id),
                child_name,
                &RootOrState::State(child),
                (child_path, entry.map(|e| e.value()), child_span),
                depth + 1,
            );
            self.states[id.index()].children.push(c);
            if self.states[c.index()].is_history() {
                self.states[id.index()].has_history = true;
            }
        }
        let last = StateId(self.states.len() as u32 - 1);
        self.states[id.index()].last_descendant = last;
        self.defs[id.index()].1 = path;
        id
    }

    fn check_kind(&mut self, id: StateId, s: &StateDef, path: &[Seg]) {
        let has_children = !s.states.is_empty();
        let kind_path = || with(path, ["kind".into()]);
        match s.kind {
            Some(StateKind::Final) if has_children => {
                self.error("final-with-children", &kind_path(), "a final state cannot have child states")
                    .hint("move the children into a compound state whose `always` leads to the final state");
            }
            Some(StateKind::History(_)) if has_children => {
                self.error(
                    "history-with-children",
                    &kind_path(),
                    "a history state cannot have child states",
                );
            }
            Some(StateKind::Atomic) if has_children => {
                self.error(
                    "atomic-with-children",
                    &kind_path(),
                    "an atomic state cannot have child states",
                )
                .hint("remove `kind: Atomic`; a state with children is compound");
            }
            Some(StateKind::Compound) if !has_children => {
                self.error(
                    "compound-without-children",
                    &kind_path(),
                    "a compound state needs child states",
                );
            }
            Some(StateKind::Parallel) if !has_children => {
                self.error(
                    "parallel-without-children",
                    &kind_path(),
                    "a parallel state needs child states (its regions)",
                );
            }
            _ => {}
        }
        let kind = self.states[id.index()].kind;
        let is_history = matches!(kind, Kind::History(_));
        if is_history {
            for (field, present) in [
                ("on", !s.on.is_empty()),
                ("always", !s.always.is_empty()),
                ("after", !s.after.is_empty()),
                ("entry", !s.entry.is_empty()),
                ("exit", !s.exit.is_empty()),
                ("invoke", !s.invoke.is_empty()),
            ] {
                if present {
                    self.error_key("history-content", &with(path, [field.into()]), format!("a history state cannot have `{field}`"))
                        .hint("history states are pseudo-states: put the behaviour on the states they restore");
                }
            }
        } else if s.target.is_some() {
            self.error_key(
                "target-not-history",
                &with(path, ["target".into()]),
                "`target` is only for history states (their default)",
            )
            .hint("for a transition, write `on: { \"EVENT\": \"target\" }`");
        }
        if s.initial.is_some() && kind != Kind::Compound {
            self.error_key(
                "initial-not-compound",
                &with(path, ["initial".into()]),
                "`initial` is only for compound states",
            );
        }
        if s.output.is_some() && kind != Kind::Final {
            self.error_key(
                "output-not-final",
                &with(path, ["output".into()]),
                "`output` is only for final states",
            );
        }
    }

    /// Initial children and history defaults: needs every state allocated.
    fn resolve_structure(&mut self) {
        for i in 0..self.states.len() {
            let id = StateId(i as u32);
            let initial = self.defs[i].0.initial();
            let path = std::mem::take(&mut self.defs[i].1);
            let st = &self.states[i];
            if st.kind == Kind::Compound {
                let children = st.children.clone();
                let chosen = match initial {
                    Some(name) => {
                        let found = children
                            .iter()
                            .copied()
                            .find(|c| self.states[c.index()].name == name);
                        if found.is_none() {
                            let names: Vec<&str> = children
                                .iter()
                                .map(|c| self.states[c.index()].name.as_str())
                                .collect();
                            let hint = match did_you_mean(name, names.iter().copied()) {
                                Some(m) => format!("did you mean `{m}`?"),
                                None => format!("the children are: {}", names.join(", ")),
                            };
                            self.error(
                                "initial-not-child",
                                &with(&path, ["initial".into()]),
                                format!("initial state `{name}` is not a child of this state"),
                            )
                            .hint(hint);
                        }
                        found
                    }
                    // The first child in document order that is not a history pseudo-state.
                    None => children
                        .iter()
                        .copied()
                        .find(|c| !self.states[c.index()].is_history()),
                };
                let only_history = !children.is_empty()
                    && children.iter().all(|c| self.states[c.index()].is_history());
                if only_history && (chosen.is_some() || initial.is_none()) {
                    self.error(
                        "no-initial",
                        &path,
                        "a compound state needs a child that is not a history state",
                    );
                }
                self.states[i].initial = chosen;
            }
            if self.states[i].kind == Kind::Parallel
                && !self.states[i].children.is_empty()
                && self.states[i]
                    .children
                    .iter()
                    .all(|c| self.states[c.index()].is_history())
            {
                self.error_key(
                    "no-regions",
                    &path,
                    "a parallel state needs regions: child states that are not history states",
                );
            }
            if let Kind::History(_) = self.states[i].kind {
                let parent = self.states[i].parent.unwrap_or(StateId::ROOT);
                let target = match &self.defs[i].0 {
                    RootOrState::State(s) => s.target.clone(),
                    RootOrState::Root(_) => None,
                };
                let defaults = match target {
                    Some(t) => {
                        let tpath = with(&path, ["target".into()]);
                        match self.resolve(id, &t, &|| tpath.clone()) {
                            Some(s)
                                if self.is_descendant(s, parent)
                                    && !self.states[s.index()].is_history() =>
                            {
                                vec![s]
                            }
                            Some(_) => {
                                self.error("history-target", &tpath, format!("the default `{t}` of a history state must be a descendant of its parent, not a history state"));
                                vec![]
                            }
                            None => vec![],
                        }
                    }
                    None => Vec::new(), // filled below from the parent's default entry
                };
                self.states[i].history_default = defaults;
            }
            self.defs[i].1 = path;
        }
        for i in 0..self.states.len() {
            if self.states[i].is_history() && self.states[i].history_default.is_empty() {
                let parent = self.states[i].parent.unwrap_or(StateId::ROOT);
                let p = &self.states[parent.index()];
                self.states[i].history_default = match p.kind {
                    Kind::Parallel => p
                        .children
                        .iter()
                        .copied()
                        .filter(|c| !self.states[c.index()].is_history())
                        .collect(),
                    // `initial` may name a history state (this one, or a sibling): then
                    // that state's explicit default, else the first child that is not one.
                    _ => match p.initial {
                        Some(c) if !self.states[c.index()].is_history() => vec![c],
                        Some(c) if !self.states[c.index()].history_default.is_empty() => {
                            self.states[c.index()].history_default.clone()
                        }
                        _ => p
                            .children
                            .iter()
                            .copied()
                            .find(|c| !self.states[c.index()].is_history())
                            .into_iter()
                            .collect(),
                    },
                };
            }
        }
    }

    fn is_descendant(&self, a: StateId, s: StateId) -> bool {
        s < a && a <= self.states[s.index()].last_descendant
    }

    /// Resolves a target as machines.md says: lexical scopes outwards, then a unique name,
    /// or `#a.b` from the root. Reports an error at `path` when it fails.
    /// Resolves a target; `path` builds the syntax path for a message, only when one is due.
    fn resolve(
        &mut self,
        source: StateId,
        target: &str,
        path: &dyn Fn() -> SynPath,
    ) -> Option<StateId> {
        match resolve_target(&self.states, &self.by_name, source, target) {
            Ok(s) => Some(s),
            Err(Unresolved::Ambiguous(all)) => {
                let names: Vec<String> = all
                    .iter()
                    .map(|s| format!("`{}`", self.states[s.index()].path))
                    .collect();
                let hint = format!(
                    "write the path, e.g. `#{}`",
                    self.states[all[0].index()].path
                );
                self.error(
                    "ambiguous-target",
                    &path(),
                    format!(
                        "target `{target}` is ambiguous: it names {}",
                        names.join(", ")
                    ),
                )
                .hint(hint);
                None
            }
            Err(Unresolved::NotFound) => {
                let last = target
                    .rsplit('.')
                    .next()
                    .unwrap_or(target)
                    .trim_start_matches('#');
                let hint = did_you_mean(last, self.states.iter().skip(1).map(|s| s.name.as_str()))
                    .and_then(|m| self.states.iter().find(|s| s.name == m))
                    .map(|s| format!("did you mean `{}`?", s.path))
                    .unwrap_or_else(|| {
                        "targets are sibling names, paths like `a.b`, or `#a.b` from the root"
                            .into()
                    });
                self.error(
                    "unknown-target",
                    &path(),
                    format!("unknown target `{target}`"),
                )
                .hint(hint);
                None
            }
        }
    }

    fn compile_state(&mut self, id: StateId) {
        let i = id.index();
        if self.states[i].is_history() {
            return;
        }
        // Taken, not copied: nothing reads a state's path after its compile.
        let path = std::mem::take(&mut self.defs[i].1);
        let (def, node) = match &self.defs[i] {
            (RootOrState::Root(m), _, node) => (RootOrState::Root(m), *node),
            (RootOrState::State(s), _, node) => (RootOrState::State(s), *node),
        };
        let field = |name: &str| node.and_then(|n| n.field(name));
        let entry = self.compile_ops(id, def.entry(), &|| with(&path, ["entry".into()]));
        let exit = self.compile_ops(id, def.exit(), &|| with(&path, ["exit".into()]));
        self.states[i].entry = entry;
        self.states[i].exit = exit;

        let on = field("on").map(|e| e.value());
        for (key, ts) in def.on() {
            let events = Descriptor::parse_list(key);
            let kpath = || with(&path, ["on".into(), key.as_str().into()]);
            if events.is_empty() {
                self.error(
                    "empty-event",
                    &kpath(),
                    "an event descriptor cannot be empty",
                )
                .hint("for eventless transitions use `always: [...]`");
                continue;
            }
            let group = on.and_then(|n| n.keyed(key));
            let trigger = format!("on \"{key}\"");
            self.compile_transitions(id, ts, (&kpath, group), &events, trigger);
        }
        let apath = || with(&path, ["always".into()]);
        let always = (&apath as &dyn Fn() -> SynPath, field("always"));
        self.compile_transitions(id, def.always(), always, &[], "always".to_string());
        let after = field("after").map(|e| e.value());
        for (n, (dur, ts)) in def.after().iter().enumerate() {
            // The span index keys `after` entries by their text.
            let keyed = after.and_then(|a| a.keyed(&dur.0));
            let group = keyed.or_else(|| after.and_then(|a| a.entry(n)));
            let kpath = || match keyed {
                Some(_) => with(&path, ["after".into(), dur.0.as_str().into()]),
                None => with(&path, ["after".into(), Seg::Index(n)]),
            };
            let delay = match dur.parse() {
                Ok(d) => d,
                Err(why) => {
                    self.error_key("bad-duration", &kpath(), why);
                    continue;
                }
            };
            let spath = self.states[i].display_path().to_string();
            let event = format!("after.{delay}.{spath}");
            let send_id = format!("orca.after.{spath}.{n}");
            self.states[i].after.push(After {
                delay,
                event: event.clone(),
                send_id,
            });
            self.compile_transitions(
                id,
                ts,
                (&kpath, group),
                &[Descriptor::Exact(event)],
                format!("after {delay}"),
            );
        }
        let mut invokes = Vec::new();
        for (n, inv) in def.invoke().iter().enumerate() {
            let ipath = with(&path, ["invoke".into(), Seg::Index(n)]);
            let input = inv
                .input
                .as_ref()
                .and_then(|e| self.compile_expr(e, &|| with(&ipath, ["input".into()])));
            let base = Path::new(&self.loaded.file.name)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let src = match &inv.src {
                model::InvokeSrc::Machine(p) => {
                    InvokeSrc::Machine(self.child_file(&base, p, &ipath))
                }
                model::InvokeSrc::Workflow(p) => {
                    InvokeSrc::Workflow(self.child_file(&base, p, &ipath))
                }
                model::InvokeSrc::Command(argv) => {
                    if argv.is_empty() {
                        self.error(
                            "empty-command",
                            &with(&ipath, ["src".into()]),
                            "`Command` needs at least the program name",
                        );
                    }
                    InvokeSrc::Command(argv.clone())
                }
                model::InvokeSrc::Shell(s) => InvokeSrc::Shell(s.clone()),
            };
            let id_text = inv
                .id
                .clone()
                .unwrap_or_else(|| format!("{}.invoke.{n}", self.states[i].display_path()));
            invokes.push(Invoke {
                id: id_text,
                src,
                input,
                auto_forward: inv.auto_forward,
            });
        }
        self.states[i].invokes = invokes;
        if let RootOrState::State(s) = def
            && let Some(out) = &s.output
        {
            self.states[i].output = self.compile_expr(out, &|| with(&path, ["output".into()]));
        }
    }

    /// States are in document order, so a parent's flag is final before its children's.
    fn mark_eventless_chains(&mut self) {
        for i in 0..self.states.len() {
            let own = self.states[i]
                .transitions
                .iter()
                .any(|t| self.transitions[t.index()].is_eventless());
            let inherited = self.states[i]
                .parent
                .is_some_and(|p| self.states[p.index()].eventless_in_chain);
            self.states[i].eventless_in_chain = own || inherited;
        }
    }

    /// Flattens each atomic state's ancestor chain of transitions, so that selection walks
    /// one slice instead of the tree.
    fn order_selection(&mut self) {
        for i in 0..self.states.len() {
            if !self.states[i].is_atomic() {
                continue;
            }
            let mut order = Vec::new();
            let mut at = Some(StateId(i as u32));
            while let Some(s) = at {
                order.extend_from_slice(&self.states[s.index()].transitions);
                at = self.states[s.index()].parent;
            }
            self.states[i].selection_order = order;
        }
    }

    /// `done.state.a` must not match `done.state.a.b` (state `a.b` is done, not `a`), nor
    /// `done.invoke.w` the events of invoke `w.x`: descriptors that name a state or an invoke
    /// exactly match exactly.
    fn exact_done_descriptors(&mut self) {
        let invoke_ids: HashSet<String> = self
            .states
            .iter()
            .flat_map(|s| s.invokes.iter().map(|i| i.id.clone()))
            .collect();
        let paths: HashSet<&str> = self.states.iter().map(|s| s.path.as_str()).collect();
        for t in &mut self.transitions {
            for d in &mut t.events {
                if let Descriptor::Prefix(text) = d {
                    let names_one = text
                        .strip_prefix("done.state.")
                        .is_some_and(|p| paths.contains(p))
                        || text
                            .strip_prefix("done.invoke.")
                            .is_some_and(|i| invoke_ids.contains(i))
                        || text
                            .strip_prefix("error.invoke.")
                            .is_some_and(|i| invoke_ids.contains(i));
                    if names_one {
                        *d = Descriptor::Exact(std::mem::take(text));
                    }
                }
            }
        }
    }

    fn child_file(&mut self, base: &Path, file: &str, path: &[Seg]) -> PathBuf {
        let p = base.join(file);
        if !p.is_file() {
            self.error(
                "missing-file",
                &with(path, ["src".into()]),
                format!("invoked file `{}` does not exist", p.display()),
            )
            .hint("paths are relative to the file that names them");
        }
        p
    }

    /// Compiles the transitions of one `on` key, of `always` or of one `after` key. `path`
    /// builds their syntax path for messages; `group` is their entry in the span index.
    fn compile_transitions(
        &mut self,
        source: StateId,
        ts: &Transitions,
        (path, group): (&dyn Fn() -> SynPath, Option<Entry<'a>>),
        events: &[Descriptor],
        trigger: String,
    ) {
        let group_node = group.map(|e| e.value());
        let is_list = group_node.is_some_and(|n| n.open() == b'[');
        for (n, t) in ts.0.iter().enumerate() {
            let node = match is_list {
                true => group_node.and_then(|g| g.entry(n)).map(|e| e.value()),
                false => group_node,
            };
            let tpath = || match is_list {
                true => with(&path(), [Seg::Index(n)]),
                false => path(),
            };
            // Where the transition is: its list element, or the key that introduces it.
            let span = match is_list {
                true => node.map(|n| n.span()),
                false => group.and_then(|e| e.key_span()),
            };
            let span = span.unwrap_or_else(|| self.loaded.span(&tpath()));
            // A bare string is itself the target; a list of targets is indexed. Syntax paths
            // are only built for messages.
            let bare = node.is_some_and(|n| n.open() == 0);
            let target_path = || with(&tpath(), ["target".into()]);
            let mut targets = Vec::new();
            for (k, target) in t.target.iter().enumerate() {
                let p = || {
                    if bare {
                        tpath()
                    } else if t.target.len() > 1 {
                        with(&target_path(), [Seg::Index(k)])
                    } else {
                        target_path()
                    }
                };
                if let Some(s) = self.resolve(source, target, &p) {
                    if self.states[s.index()].id == StateId::ROOT {
                        self.error(
                            "target-root",
                            &p(),
                            "the root cannot be a transition target",
                        );
                    } else {
                        targets.push(s);
                    }
                }
            }
            if targets.len() > 1 && !self.targets_compatible(&targets) {
                self.error(
                    "conflicting-targets",
                    &target_path(),
                    "these targets cannot be active together",
                )
                .hint("several targets must lie in different regions of a parallel state");
            }
            let guard = t
                .guard
                .as_ref()
                .and_then(|g| self.compile_expr(g, &|| with(&tpath(), ["guard".into()])));
            let actions =
                self.compile_ops(source, &t.actions, &|| with(&tpath(), ["actions".into()]));
            let src = &self.states[source.index()];
            let internal = t.internal
                && src.kind == Kind::Compound
                && !targets.is_empty()
                && targets.iter().all(|&x| self.is_descendant(x, source));
            let id = TransitionId(self.transitions.len() as u32);
            self.transitions.push(Transition {
                id,
                source,
                events: events.to_vec(),
                guard,
                targets,
                internal: internal || source == StateId::ROOT,
                actions,
                description: t.description.clone(),
                trigger: trigger.clone(),
                span,
                static_domain: None,
                static_entry: None,
                plain: false,
            });
            self.states[source.index()].transitions.push(id);
        }
    }

    /// Targets can be entered together when no two are the same or in an ancestor relation
    /// through a compound state, i.e. each pair's nearest common ancestor is parallel.
    fn targets_compatible(&self, targets: &[StateId]) -> bool {
        for (i, &a) in targets.iter().enumerate() {
            for &b in &targets[i + 1..] {
                let lca = lca(&self.states, a, b);
                if lca == a || lca == b || self.states[lca.index()].kind != Kind::Parallel {
                    return false;
                }
            }
        }
        true
    }

    /// Compiles what `orca verify` reads: invariants, `never_reach`, `always_can_reach`,
    /// `verify.events`. A bad expression or a path that names no state is a load error.
    fn compile_properties(&mut self) -> super::Properties {
        let def = &self.loaded.def;
        let mut props = super::Properties::default();
        for (name, text) in &def.invariants {
            let path = || vec![Seg::from("invariants"), Seg::from(name.as_str())];
            if let Some(expr) = self.compile_expr(text, &path) {
                let span = self.span(&path());
                props.invariants.push(super::Invariant {
                    name: name.clone(),
                    expr,
                    span,
                });
            }
        }
        for (field, out) in [
            ("never_reach", &mut props.never_reach),
            ("always_can_reach", &mut props.always_can_reach),
        ] {
            let list = if field == "never_reach" {
                &def.never_reach
            } else {
                &def.always_can_reach
            };
            for (i, p) in list.iter().enumerate() {
                match resolve_target(&self.states, &self.by_name, StateId::ROOT, p) {
                    Ok(s) => out.push(s),
                    Err(e) => {
                        let what = match e {
                            Unresolved::Ambiguous(_) => "is ambiguous",
                            Unresolved::NotFound => "names no state",
                        };
                        self.error(
                            "unknown-state",
                            &[Seg::from(field), Seg::Index(i)],
                            format!("`{p}` in `{field}` {what}"),
                        )
                        .hint("write the state's path from the root, e.g. `\"door.open\"`");
                    }
                }
            }
        }
        if let Some(v) = &def.verify {
            props.events = v.events.clone();
            props.starts = v.context.clone();
        }
        props
    }

    /// Compiles an expression; `path` builds its syntax path, only for a message.
    fn compile_expr(&mut self, text: &str, path: &dyn Fn() -> SynPath) -> Option<ExprId> {
        match expr::compile(text) {
            Ok(mut c) => {
                for p in &c.in_paths {
                    let resolved = resolve_target(&self.states, &self.by_name, StateId::ROOT, p);
                    if let Ok(s) = resolved {
                        c.in_states.push(s);
                    }
                    if let Err(e) = resolved {
                        let what = match e {
                            Unresolved::Ambiguous(_) => "is ambiguous",
                            Unresolved::NotFound => "names no state",
                        };
                        self.error(
                            "unknown-state-in-expr",
                            &path(),
                            format!("`In(\"{p}\")` {what}"),
                        )
                        .hint("`In` takes a state path, e.g. `In(\"door.open\")`");
                    }
                }
                if let Some(f) = &mut c.fast {
                    let ctx = &self.loaded.def.context;
                    super::fast::bind_slots(f, &|name| ctx.get_index_of(name));
                    c.kernel = super::kernel::Kernel::of(f);
                }
                let id = ExprId(self.exprs.len() as u32);
                self.exprs.push(c);
                Some(id)
            }
            Err(e) => {
                let path = &path();
                let span = self.span(path);
                // Point inside the string when the text sits there verbatim on one line.
                let file = &self.loaded.file;
                let raw =
                    &file.text[span.start.min(file.text.len())..span.end.min(file.text.len())];
                let mut d = Diagnostic::error(
                    "expression-syntax",
                    file,
                    span,
                    format!("invalid expression `{text}`: {}", e.message),
                );
                if raw.len() == text.len() + 2 && &raw[1..raw.len() - 1] == text && e.line == 1 {
                    let col_off: usize = text
                        .chars()
                        .take(e.col.saturating_sub(1))
                        .map(char::len_utf8)
                        .sum();
                    let at = span.start + 1 + col_off;
                    let lc = file.line_col(at);
                    d.line = lc.line;
                    d.col = lc.col;
                    d.span = Span::new(at, at);
                }
                if let Some(s) = model::load::state_of(path) {
                    d = d.with_state(s);
                }
                self.diags
                    .push(d.with_hint("expressions are CEL: see docs/machines.md#expressions"));
                None
            }
        }
    }

    /// Compiles a list of actions; `path` builds its syntax path, only for a message.
    fn compile_ops(
        &mut self,
        state: StateId,
        actions: &[Action],
        path: &dyn Fn() -> SynPath,
    ) -> Vec<Op> {
        let mut ops = Vec::with_capacity(actions.len());
        for (n, a) in actions.iter().enumerate() {
            let p = || with(&path(), [Seg::Index(n)]);
            if let Some(op) = self.compile_op(state, a, &p) {
                ops.push(op);
            }
        }
        ops
    }

    fn compile_op(&mut self, state: StateId, a: &Action, p: &dyn Fn() -> SynPath) -> Option<Op> {
        let field = |f: &str| with(&p(), [f.into()]);
        Some(match a {
            Action::Raise(r) => {
                check_event_name(self, &r.event, &|| field("event"));
                Op::Raise {
                    event: r.event.clone(),
                    data: r
                        .data
                        .as_ref()
                        .and_then(|d| self.compile_expr(d, &|| field("data"))),
                }
            }
            Action::Send(s) => {
                check_event_name(self, &s.event, &|| field("event"));
                let delay = match &s.delay {
                    Some(d) => match d.parse() {
                        Ok(d) => Some(d),
                        Err(why) => {
                            self.error("bad-duration", &field("delay"), why);
                            None
                        }
                    },
                    None => None,
                };
                if s.delay.is_some() && s.delay_expr.is_some() {
                    self.error(
                        "delay-twice",
                        &field("delay_expr"),
                        "give `delay` or `delay_expr`, not both",
                    );
                }
                let to = match s.to.as_deref() {
                    None | Some("#self") | Some("#_internal") => SendTarget::ToSelf,
                    Some("#parent") | Some("#_parent") => SendTarget::Parent,
                    Some(t) if t.starts_with('#') => {
                        self.error(
                            "bad-send-target",
                            &field("to"),
                            format!("unknown send target `{t}`"),
                        )
                        .hint("`to` is \"#self\", \"#parent\" or an invoke id");
                        SendTarget::ToSelf
                    }
                    Some(t) => SendTarget::Invoke(t.to_string()),
                };
                Op::Send {
                    event: s.event.clone(),
                    data: s
                        .data
                        .as_ref()
                        .and_then(|d| self.compile_expr(d, &|| field("data"))),
                    delay,
                    delay_expr: s
                        .delay_expr
                        .as_ref()
                        .and_then(|d| self.compile_expr(d, &|| field("delay_expr"))),
                    id: s.id.clone(),
                    to,
                }
            }
            Action::Cancel(id) => Op::Cancel(id.clone()),
            Action::Assign(location, value) => {
                let segs: Vec<String> = location.split('.').map(str::to_string).collect();
                if segs.iter().any(|s| !is_identifier(s)) {
                    self.error(
                        "bad-location",
                        &p(),
                        format!("`{location}` is not a context location"),
                    )
                    .hint("write a context name or a dotted path into it, e.g. `order.total`");
                }
                let value = self.compile_expr(value, &|| with(&p(), [Seg::Index(1)]))?;
                Op::Assign {
                    slot: self.loaded.def.context.get_index_of(&segs[0]),
                    location: segs,
                    value,
                }
            }
            Action::Log(l) => Op::Log {
                label: l.label.clone(),
                expr: self.compile_expr(&l.expr, &|| field("expr"))?,
            },
            Action::If(i) => {
                let mut branches = Vec::new();
                if let Some(g) = self.compile_expr(&i.guard, &|| field("guard")) {
                    let then = self.compile_ops(state, &i.then, &|| field("then"));
                    branches.push((g, then));
                }
                for (k, b) in i.else_if.iter().enumerate() {
                    let bp = || with(&p(), ["else_if".into(), Seg::Index(k)]);
                    if let Some(g) = self.compile_expr(&b.guard, &|| with(&bp(), ["guard".into()]))
                    {
                        let then =
                            self.compile_ops(state, &b.then, &|| with(&bp(), ["then".into()]));
                        branches.push((g, then));
                    }
                }
                let otherwise = self.compile_ops(state, &i.otherwise, &|| field("else"));
                Op::If {
                    branches,
                    otherwise,
                }
            }
            Action::Foreach(f) => {
                for (name, fp) in [(Some(&f.item), "item"), (f.index.as_ref(), "index")] {
                    if let Some(n) = name
                        && !is_identifier(n)
                    {
                        self.error(
                            "bad-location",
                            &field(fp),
                            format!("`{n}` is not a variable name"),
                        );
                    }
                }
                Op::Foreach {
                    items: self.compile_expr(&f.items, &|| field("items"))?,
                    item: f.item.clone(),
                    index: f.index.clone(),
                    body: self.compile_ops(state, &f.body, &|| field("do")),
                }
            }
            Action::Call(c) => {
                if !self.opts.allow_unknown_host_actions
                    && !self.opts.host_actions.contains(&c.name)
                {
                    let known: Vec<&str> =
                        self.opts.host_actions.iter().map(String::as_str).collect();
                    let hint = match did_you_mean(&c.name, known.iter().copied()) {
                        Some(m) => format!("did you mean `{m}`?"),
                        None if known.is_empty() => "no host actions are registered here; an embedding program registers them".to_string(),
                        None => format!("registered host actions: {}", known.join(", ")),
                    };
                    self.error(
                        "unknown-host-action",
                        &p(),
                        format!("`Call` of unregistered host action `{}`", c.name),
                    )
                    .hint(hint);
                }
                let mut args = Vec::new();
                for (k, a) in c.args.iter().enumerate() {
                    if let Some(e) =
                        self.compile_expr(a, &|| with(&p(), ["args".into(), Seg::Index(k)]))
                    {
                        args.push(e);
                    }
                }
                Op::Call {
                    name: c.name.clone(),
                    args,
                }
            }
        })
    }
}

fn check_event_name(b: &mut Builder, name: &str, path: &dyn Fn() -> SynPath) {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        b.error(
            "bad-event-name",
            &path(),
            format!("invalid event name `{name}`"),
        )
        .hint("event names are non-empty and contain no whitespace");
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("it is empty")
    } else if name.contains('.') {
        Err("it contains `.`, which separates path segments")
    } else if name.contains('#') {
        Err("it contains `#`, which marks absolute paths")
    } else if name.chars().any(char::is_whitespace) {
        Err("it contains whitespace")
    } else {
        Ok(())
    }
}

/// Why a target did not resolve.
pub(crate) enum Unresolved {
    NotFound,
    Ambiguous(Vec<StateId>),
}

/// Target resolution over allocated states (see [`Builder::resolve`]).
pub(crate) fn resolve_target(
    states: &[State],
    by_name: &ChildIndex,
    source: StateId,
    target: &str,
) -> Result<StateId, Unresolved> {
    let child = |p: StateId, n: &str| {
        let pairs = by_name.get(n)?;
        let i = pairs.binary_search_by_key(&p, |&(parent, _)| parent).ok()?;
        Some(pairs[i].1)
    };
    let walk = |from: StateId, segs: &[&str]| segs.iter().try_fold(from, |s, seg| child(s, seg));
    if let Some(abs) = target.strip_prefix('#') {
        if abs.is_empty() {
            return Ok(StateId::ROOT);
        }
        let segs: Vec<&str> = abs.split('.').collect();
        return walk(StateId::ROOT, &segs).ok_or(Unresolved::NotFound);
    }
    let segs: Vec<&str> = target.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(Unresolved::NotFound);
    }
    let mut scope = states[source.index()].parent.or(Some(StateId::ROOT));
    while let Some(s) = scope {
        if child(s, segs[0]).is_some() {
            return walk(s, &segs).ok_or(Unresolved::NotFound);
        }
        scope = states[s.index()].parent;
    }
    // A name (or path suffix) unique in the whole machine.
    let matches: Vec<StateId> = states
        .iter()
        .skip(1)
        .filter(|s| s.path == target || s.path.ends_with(&format!(".{target}")))
        .map(|s| s.id)
        .collect();
    match matches.len() {
        0 => Err(Unresolved::NotFound),
        1 => Ok(matches[0]),
        _ => Err(Unresolved::Ambiguous(matches)),
    }
}

/// Nearest common ancestor-or-self of two states.
pub(crate) fn lca(states: &[State], a: StateId, b: StateId) -> StateId {
    let (mut a, mut b) = (a, b);
    while states[a.index()].depth > states[b.index()].depth {
        a = states[a.index()].parent.unwrap_or(StateId::ROOT);
    }
    while states[b.index()].depth > states[a.index()].depth {
        b = states[b.index()].parent.unwrap_or(StateId::ROOT);
    }
    while a != b {
        a = states[a.index()].parent.unwrap_or(StateId::ROOT);
        b = states[b.index()].parent.unwrap_or(StateId::ROOT);
    }
    a
}
