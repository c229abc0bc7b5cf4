//! A workflow compiled for running: operations in a flat arena, names resolved, policies
//! effective.
//!
//! [`Plan::compile`] turns a [`LoadedWorkflow`] into a [`Plan`], reporting every problem of
//! the file at once; [`Plan::add_subtasks`] adds what a `decompose` command printed at run
//! time, checked the same way. Both go through one walker ([`Walker`]) that builds operations
//! and records problems by syntax path; the file maps those paths to line and column, the
//! subtasks to one message.
//!
//! Effective settings:
//! - `retry`, field by field: the operation's own, else `defaults.retry`'s, else
//!   [`RetryPolicy::default`]; `timeout`: its own, else `defaults.timeout`, else none. Neither
//!   is inherited from the parent operation (workflows.md: defaults are for "every operation
//!   that sets none of its own").
//! - `env`: the ancestors' merged in under the operation's own (the child wins).
//! - `cwd`: its own, resolved against the workflow file's directory, else the parent's.
//! - `input`: its own, else `null`.
//! - The root's `max_parallel` is the workflow-wide bound on commands ([`Plan::max_parallel`]),
//!   not a bound on the root's children, so the root's [`OpPlan::max_parallel`] is `None`.
//!
//! Checking that `Machine(..)`/`Workflow(..)` files exist is the one look at the file system
//! here, as the chart compiler does for invoked machines.

use crate::model::diagnostic::did_you_mean;
use crate::model::load::{FileKind, detect_kind, read_source};
use crate::model::load_workflow::{LoadedWorkflow, load_workflow_source};
use crate::model::machine::Json;
use crate::model::source::{Seg, SynPath};
use crate::model::workflow::{ChildFailure, OperationDef, RetryDef, Work};
use crate::model::{Diagnostic, Diagnostics, DurationText, Severity, SourceFile};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Index of an operation in [`Plan::ops`]; the root is 0.
pub type OpId = usize;

/// A compiled workflow.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workflow id (the root operation's display name).
    pub id: String,
    /// Every operation; the root first, then depth-first in document order. Dynamic subtasks
    /// from `decompose` are appended at run time.
    pub ops: Vec<OpPlan>,
    /// Bound on commands running at once in the whole run (`None`: unbounded).
    pub max_parallel: Option<u32>,
    /// The directory of the workflow file; relative paths in it resolve from here.
    pub base_dir: PathBuf,
    /// The workflow's `defaults`, parsed: subtasks added at run time get them too.
    pub defaults: PlanDefaults,
    /// The workflow file itself, canonical, when it is a file on disk: `Workflow(..)` work
    /// naming it is refused (it would never end).
    pub source: Option<PathBuf>,
}

/// One operation of a plan.
#[derive(Debug, Clone)]
pub struct OpPlan {
    /// Dotted path from the root, without the root: `deploy.canary`; the root's is empty.
    pub path: String,
    /// The last segment of the path (the workflow id for the root).
    pub name: String,
    pub parent: Option<OpId>,
    /// Subtasks in document order, static ones first.
    pub children: Vec<OpId>,
    /// Siblings that must succeed first.
    pub after: Vec<OpId>,
    pub phases: Phases,
    pub compensate: Option<Work>,
    pub retry: RetryPolicy,
    /// Per phase attempt.
    pub timeout_ms: Option<u64>,
    /// Bound on this operation's children running at once; always `None` for the root,
    /// whose `max_parallel` is [`Plan::max_parallel`].
    pub max_parallel: Option<u32>,
    pub on_child_failure: ChildFailure,
    pub optional: bool,
    /// This operation's environment, its ancestors' merged in under it.
    pub env: IndexMap<String, String>,
    /// Working directory of its commands, resolved against the workflow's directory; `None`
    /// when neither it nor an ancestor sets one.
    pub cwd: Option<PathBuf>,
    /// Its `input`, `null` when it sets none.
    pub input: Json,
    /// The tags a worker needs to run its work: its own and its ancestors', sorted.
    pub tags: Vec<String>,
}

/// The work of each lifecycle phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phases {
    pub analyze: Option<Work>,
    pub research: Option<Work>,
    pub decompose: Option<Work>,
    pub run: Option<Work>,
    pub integrate: Option<Work>,
}

/// An effective retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// 1 means no retry.
    pub max_attempts: u32,
    pub initial_ms: u64,
    pub factor: f64,
    pub max_delay_ms: u64,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// No retry unless a workflow asks for it.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_ms: 200,
            factor: 2.0,
            max_delay_ms: 30_000,
            jitter: true,
        }
    }
}

/// The workflow's `defaults`, parsed: what an operation gets for the settings it leaves out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlanDefaults {
    /// `defaults.retry`, the fields it sets.
    pub retry: RetryParts,
    /// `defaults.timeout`, per phase attempt.
    pub timeout_ms: Option<u64>,
}

/// A retry policy as written: each field set or not, durations parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetryParts {
    /// At least 1.
    pub max_attempts: Option<u32>,
    /// The delay before the second attempt.
    pub initial_ms: Option<u64>,
    /// At least 1.0 and finite: each delay is the previous one times this.
    pub factor: Option<f64>,
    /// No delay is longer than this.
    pub max_delay_ms: Option<u64>,
    pub jitter: Option<bool>,
}

impl RetryParts {
    /// The effective policy: each field from `self`, else from `fallback`, else from
    /// [`RetryPolicy::default`]. Field by field, so `retry: (max_attempts: 1)` keeps the
    /// default's `initial`.
    ///
    /// ```
    /// use orca::lifecycle::plan::{RetryParts, RetryPolicy};
    /// let own = RetryParts { max_attempts: Some(1), ..Default::default() };
    /// let defaults = RetryParts { max_attempts: Some(3), factor: Some(3.0), ..Default::default() };
    /// let p = own.over(&defaults);
    /// assert_eq!((p.max_attempts, p.factor, p.initial_ms), (1, 3.0, RetryPolicy::default().initial_ms));
    /// ```
    pub fn over(&self, fallback: &RetryParts) -> RetryPolicy {
        let d = RetryPolicy::default();
        RetryPolicy {
            max_attempts: self
                .max_attempts
                .or(fallback.max_attempts)
                .unwrap_or(d.max_attempts),
            initial_ms: self
                .initial_ms
                .or(fallback.initial_ms)
                .unwrap_or(d.initial_ms),
            factor: self.factor.or(fallback.factor).unwrap_or(d.factor),
            max_delay_ms: self
                .max_delay_ms
                .or(fallback.max_delay_ms)
                .unwrap_or(d.max_delay_ms),
            jitter: self.jitter.or(fallback.jitter).unwrap_or(d.jitter),
        }
    }
}

impl Phases {
    /// The work of one phase (`run` for Execute).
    pub fn get(&self, phase: crate::lifecycle::machine::Phase) -> Option<&Work> {
        use crate::lifecycle::machine::Phase;
        match phase {
            Phase::Analyze => self.analyze.as_ref(),
            Phase::Research => self.research.as_ref(),
            Phase::Decompose => self.decompose.as_ref(),
            Phase::Execute => self.run.as_ref(),
            Phase::Integrate => self.integrate.as_ref(),
        }
    }

    /// The phases that have work, in lifecycle order, each with its field name (`run` for
    /// the Execute phase's own work).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Work)> {
        use crate::lifecycle::machine::Phase;
        Phase::ALL.into_iter().filter_map(|p| {
            let field = if p == Phase::Execute {
                "run"
            } else {
                p.as_str()
            };
            self.get(p).map(|w| (field, w))
        })
    }
}

impl Plan {
    /// Every operation with its depth (the root is 0), parents before their children and
    /// children in order: the tree as `orca status` and the stepper draw it. Dynamic
    /// subtasks appear under the operation that emitted them.
    pub fn preorder(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut stack = vec![(0usize, 0usize)];
        std::iter::from_fn(move || {
            let (op, depth) = stack.pop()?;
            stack.extend(self.ops[op].children.iter().rev().map(|&c| (c, depth + 1)));
            Some((op, depth))
        })
    }

    /// Loads and compiles a workflow file; relative paths in it resolve from its directory.
    /// On success returns the plan and its warnings; on failure every problem found.
    pub fn load(path: &Path) -> Result<(Plan, Diagnostics), Diagnostics> {
        Plan::load_source(read_source(path)?, base_dir(path))
    }

    /// Parses and compiles a workflow already read; relative paths resolve from `base_dir`.
    pub fn load_source(
        file: SourceFile,
        base_dir: &Path,
    ) -> Result<(Plan, Diagnostics), Diagnostics> {
        Plan::compile(&load_workflow_source(file)?, base_dir)
    }

    /// Compiles a loaded workflow: operations allocated root first, then depth-first in
    /// document order; `after` names resolved among siblings; policies made effective (see
    /// the module docs). Every problem is reported at once, each at its place in the file
    /// with the operation it concerns; the loader's own (unknown fields, duplicate keys) come
    /// along. Warnings are returned beside the plan.
    ///
    /// ```
    /// use orca::lifecycle::plan::Plan;
    /// use orca::model::load_workflow_str;
    /// let w = load_workflow_str("w.ron", r#"Workflow(tasks: {
    ///     "a": (run: Shell("true")), "b": (after: ["a"], run: Shell("true")) })"#).unwrap();
    /// let (plan, _) = Plan::compile(&w, std::path::Path::new(".")).unwrap();
    /// assert_eq!(plan.id, "w");
    /// assert_eq!(plan.ops[2].after, vec![1]);
    /// let w = load_workflow_str("w.ron", r#"Workflow(tasks: { "a": (after: ["b"]) })"#).unwrap();
    /// let e = Plan::compile(&w, std::path::Path::new(".")).unwrap_err();
    /// assert!(e.to_string().contains("unknown operation `b` in `after`"));
    /// ```
    pub fn compile(
        w: &LoadedWorkflow,
        base_dir: &Path,
    ) -> Result<(Plan, Diagnostics), Diagnostics> {
        let id = w.id();
        let source = std::fs::canonicalize(&w.file.name).ok();
        let mut walker = Walker::new(
            &[],
            base_dir,
            source.as_deref(),
            &id,
            PlanDefaults::default(),
        );
        if id.trim().is_empty() {
            walker
                .error("bad-name", at(&[], ["id"]), &id, "the workflow id is empty")
                .hint("leave `id` out to use the file name");
        }
        if let Some(d) = &w.def.defaults {
            walker.defaults = PlanDefaults {
                retry: walker.retry_parts(
                    d.retry.as_ref(),
                    at(&[], ["defaults", "retry"]),
                    &id,
                    "defaults.retry",
                ),
                timeout_ms: walker.timeout(
                    d.timeout.as_ref(),
                    at(&[], ["defaults", "timeout"]),
                    &id,
                    "defaults.timeout",
                ),
            };
        }
        let max_parallel = walker.max_parallel(w.def.max_parallel, at(&[], ["max_parallel"]), &id);
        walker.add(None, &id, &w.def.root(), Vec::new());

        let mut diags = w.diagnostics.clone();
        for p in &walker.problems {
            let span = match w.index.get(&p.at) {
                // A string value (an `after` name, a duration) is pointed at itself; anything
                // else at the key that introduces it.
                Some(node) if node.is_string() => node.span(),
                _ => w.span(&p.at),
            };
            let mut d = Diagnostic::new(p.severity, p.code, &w.file, span, p.message.clone())
                .with_operation(p.op.clone());
            if let Some(h) = &p.hint {
                d = d.with_hint(h.clone());
            }
            diags.push(d);
        }
        diags.sort();
        if diags.has_errors() {
            return Err(diags);
        }
        let defaults = walker.defaults;
        let ops = walker.new;
        Ok((
            Plan {
                id,
                ops,
                max_parallel,
                base_dir: base_dir.to_path_buf(),
                defaults,
                source,
            },
            diags,
        ))
    }

    /// Adds the subtasks a `decompose` command of `parent` printed (see
    /// [`crate::model::load_workflow::parse_subtasks`]), checked like the file: names unique
    /// among `parent`'s children, `after` among the new and the existing children, no cycles,
    /// durations, retry policies, work, nested tasks. They and their descendants are appended
    /// to [`Plan::ops`] (depth-first in the given order) and the top-level ones to `parent`'s
    /// children; their ids are returned. On error nothing changes and the message lists
    /// every problem.
    pub fn add_subtasks(
        &mut self,
        parent: OpId,
        defs: IndexMap<String, OperationDef>,
    ) -> Result<Vec<OpId>, String> {
        if parent >= self.ops.len() {
            return Err(format!("no operation with id {parent}"));
        }
        let parent_path = self.display_path(parent).to_string();
        let mut w = Walker::new(
            &self.ops,
            &self.base_dir,
            self.source.as_deref(),
            &self.id,
            self.defaults,
        );
        for name in defs.keys() {
            let taken = self.ops[parent]
                .children
                .iter()
                .any(|&c| self.ops[c].name == *name);
            if taken {
                let op = w.child_path(parent, name);
                w.error(
                    "duplicate-subtask",
                    vec![Seg::Key(name.clone())],
                    &op,
                    format!("`{parent_path}` already has a subtask `{name}`"),
                )
                .hint("names of decomposed subtasks must differ from the existing ones");
            }
        }
        let top: Vec<OpId> = defs
            .iter()
            .map(|(name, def)| w.add(Some(parent), name, def, vec![Seg::Key(name.clone())]))
            .collect();
        let group: Vec<OpId> = self.ops[parent]
            .children
            .iter()
            .chain(&top)
            .copied()
            .collect();
        w.resolve_siblings(&group);
        let errors: Vec<String> = w
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(Problem::one_line)
            .collect();
        if !errors.is_empty() {
            return Err(format!(
                "invalid subtasks for `{parent_path}`: {}",
                errors.join("; ")
            ));
        }
        let new = w.new;
        self.ops.extend(new);
        self.ops[parent].children.extend(&top);
        Ok(top)
    }

    /// The root operation.
    pub fn root(&self) -> &OpPlan {
        &self.ops[0]
    }

    /// An operation's path as users read it: `deploy.canary`, the workflow id for the root.
    pub fn display_path(&self, op: OpId) -> &str {
        match self.ops.get(op) {
            Some(o) if o.parent.is_some() => &o.path,
            _ => &self.id,
        }
    }

    /// The operation at a path as [`Plan::display_path`] writes it (the root by its id or
    /// by the empty path).
    pub fn find(&self, path: &str) -> Option<OpId> {
        if path.is_empty() || path == self.id {
            return (!self.ops.is_empty()).then_some(0);
        }
        self.ops
            .iter()
            .position(|o| o.parent.is_some() && o.path == path)
    }

    /// The siblings of `op` that depend on it directly or through other siblings (`after`),
    /// in document order: what is skipped when `op` fails, and rerun with it on resume.
    pub fn dependents(&self, op: OpId) -> Vec<OpId> {
        let Some(parent) = self.ops.get(op).and_then(|o| o.parent) else {
            return Vec::new();
        };
        let siblings = &self.ops[parent].children;
        let mut waiting: HashMap<OpId, Vec<OpId>> = HashMap::new();
        for &s in siblings {
            for &dep in &self.ops[s].after {
                waiting.entry(dep).or_default().push(s);
            }
        }
        let mut reached = std::collections::HashSet::new();
        let mut todo = vec![op];
        while let Some(x) = todo.pop() {
            for &d in waiting.get(&x).map_or(&[][..], Vec::as_slice) {
                if reached.insert(d) {
                    todo.push(d);
                }
            }
        }
        siblings
            .iter()
            .copied()
            .filter(|s| *s != op && reached.contains(s))
            .collect()
    }
}

/// The directory relative paths in the workflow file at `path` resolve from.
pub fn base_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A syntax path: `base` and then `segs`.
fn at<S: Into<Seg>>(base: &[Seg], segs: impl IntoIterator<Item = S>) -> SynPath {
    base.iter()
        .cloned()
        .chain(segs.into_iter().map(Into::into))
        .collect()
}

/// One problem found by the [`Walker`], where it is written and which operation it concerns.
#[derive(Debug)]
struct Problem {
    severity: Severity,
    code: &'static str,
    /// From the root of what is being checked: the `Workflow(...)`, or the subtasks map.
    at: SynPath,
    /// The operation's display path.
    op: String,
    message: String,
    hint: Option<String>,
}

impl Problem {
    fn hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }

    /// The form of [`Plan::add_subtasks`] errors: `` `op`: message (hint) ``.
    fn one_line(&self) -> String {
        let mut s = format!("`{}`: {}", self.op, self.message);
        if let Some(h) = &self.hint {
            s.push_str(&format!(" ({h})"));
        }
        s
    }
}

/// For each operation the walker made: where it is written and the `after` names to resolve
/// once all its siblings exist.
struct Written {
    syn: SynPath,
    after: Vec<String>,
}

/// Builds operations from definitions and checks them, recording problems by syntax path.
/// It appends to a plan's existing operations (none for a file) without changing them, so
/// that [`Plan::add_subtasks`] can drop everything on error.
struct Walker<'a> {
    existing: &'a [OpPlan],
    base_dir: &'a Path,
    source: Option<&'a Path>,
    root_id: &'a str,
    defaults: PlanDefaults,
    /// The operations made, ids from `existing.len()`.
    new: Vec<OpPlan>,
    written: Vec<Written>,
    problems: Vec<Problem>,
}

impl<'a> Walker<'a> {
    fn new(
        existing: &'a [OpPlan],
        base_dir: &'a Path,
        source: Option<&'a Path>,
        root_id: &'a str,
        defaults: PlanDefaults,
    ) -> Self {
        Walker {
            existing,
            base_dir,
            source,
            root_id,
            defaults,
            new: Vec::new(),
            written: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn op(&self, id: OpId) -> &OpPlan {
        match id.checked_sub(self.existing.len()) {
            Some(i) => &self.new[i],
            None => &self.existing[id],
        }
    }

    /// An operation's path as users read it (the workflow id for the root).
    fn display(&self, id: OpId) -> String {
        let op = self.op(id);
        match op.parent {
            Some(_) => op.path.clone(),
            None => self.root_id.to_string(),
        }
    }

    /// The path of a child called `name` of `parent`.
    fn child_path(&self, parent: OpId, name: &str) -> String {
        let p = self.op(parent);
        if p.parent.is_none() {
            name.to_string()
        } else {
            format!("{}.{name}", p.path)
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        at: SynPath,
        op: &str,
        message: impl Into<String>,
    ) -> &mut Problem {
        self.problems.push(Problem {
            severity,
            code,
            at,
            op: op.to_string(),
            message: message.into(),
            hint: None,
        });
        self.problems.last_mut().expect("just pushed")
    }

    fn error(
        &mut self,
        code: &'static str,
        at: SynPath,
        op: &str,
        message: impl Into<String>,
    ) -> &mut Problem {
        self.push(Severity::Error, code, at, op, message)
    }

    fn warning(
        &mut self,
        code: &'static str,
        at: SynPath,
        op: &str,
        message: impl Into<String>,
    ) -> &mut Problem {
        self.push(Severity::Warning, code, at, op, message)
    }

    /// Makes the operation `def` (and its subtasks, depth-first) under `parent`, checking
    /// everything about it that does not need its siblings; returns its id.
    fn add(&mut self, parent: Option<OpId>, name: &str, def: &OperationDef, syn: SynPath) -> OpId {
        let id = self.existing.len() + self.new.len();
        let (path, display, mut env, inherited_cwd, mut tags) = match parent {
            None => (
                String::new(),
                self.root_id.to_string(),
                IndexMap::new(),
                None,
                Vec::new(),
            ),
            Some(p) => {
                let path = self.child_path(p, name);
                let po = self.op(p);
                (
                    path.clone(),
                    path,
                    po.env.clone(),
                    po.cwd.clone(),
                    po.tags.clone(),
                )
            }
        };
        tags.extend(def.tags.iter().cloned());
        tags.sort();
        tags.dedup();
        if let Some(p) = parent {
            // An empty name makes an empty path: name the parent instead.
            let subject = if name.is_empty() {
                self.display(p)
            } else {
                display.clone()
            };
            self.check_name(name, &syn, &subject);
        }
        let retry = self
            .retry_parts(def.retry.as_ref(), at(&syn, ["retry"]), &display, "retry")
            .over(&self.defaults.retry);
        let timeout_ms = self
            .timeout(
                def.timeout.as_ref(),
                at(&syn, ["timeout"]),
                &display,
                "timeout",
            )
            .or(self.defaults.timeout_ms);
        // The root's `max_parallel` is the workflow-wide bound, checked by `Plan::compile`
        // (`WorkflowDef::root` leaves the root's own None).
        let max_parallel =
            self.max_parallel(def.max_parallel, at(&syn, ["max_parallel"]), &display);
        let phases = Phases {
            analyze: def.analyze.clone(),
            research: def.research.clone(),
            decompose: def.decompose.clone(),
            run: def.run.clone(),
            integrate: def.integrate.clone(),
        };
        for (field, work) in phases
            .iter()
            .chain(def.compensate.as_ref().map(|w| ("compensate", w)))
        {
            self.check_work(work, at(&syn, [field]), &display, field);
        }
        if def.tasks.is_empty() && def.decompose.is_none() {
            let idle = [
                // Zero is an error of its own, reported above.
                (
                    "max_parallel",
                    parent.is_some() && def.max_parallel.is_some_and(|n| n > 0),
                ),
                ("on_child_failure", def.on_child_failure.is_some()),
            ];
            for (field, set) in idle {
                if set {
                    self.warning(
                        "no-subtasks",
                        at(&syn, [field]),
                        &display,
                        format!("`{field}` has no effect: `{display}` has no subtasks"),
                    )
                    .hint("it concerns an operation's `tasks` and `decompose` output");
                }
            }
        }
        for (k, v) in &def.env {
            // What exec could not pass on: the command would fail to start every time.
            let why = if k.is_empty() || k.contains('=') {
                Some(format!(
                    "environment variable name `{k}` is empty or contains `=`"
                ))
            } else if k.contains('\0') || v.contains('\0') {
                Some(format!(
                    "environment variable `{k}` contains a NUL character"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                self.error("bad-env", at(&syn, ["env", k.as_str()]), &display, why)
                    .hint("a command's environment is `NAME=value` strings");
            }
            env.insert(k.clone(), v.clone());
        }
        let cwd = match &def.cwd {
            Some(c) => Some(self.base_dir.join(c)),
            None => inherited_cwd,
        };
        self.new.push(OpPlan {
            path,
            name: name.to_string(),
            parent,
            children: Vec::new(),
            after: Vec::new(),
            phases,
            compensate: def.compensate.clone(),
            retry,
            timeout_ms,
            max_parallel,
            on_child_failure: def.on_child_failure.unwrap_or_default(),
            optional: def.optional,
            env,
            cwd,
            input: def.input.clone().unwrap_or(Json::Null),
            tags,
        });
        self.written.push(Written {
            syn: syn.clone(),
            after: def.after.clone(),
        });
        let children: Vec<OpId> = def
            .tasks
            .iter()
            .map(|(child, cdef)| self.add(Some(id), child, cdef, at(&syn, ["tasks", child])))
            .collect();
        self.resolve_siblings(&children);
        let i = id - self.existing.len();
        self.new[i].children = children;
        id
    }

    /// Operation names are path segments: no `.` (the separator), no `#`, no whitespace.
    fn check_name(&mut self, name: &str, syn: &[Seg], op: &str) {
        let (message, hint) = if name.is_empty() {
            (
                "an operation name cannot be empty".to_string(),
                "name it, e.g. \"build\"",
            )
        } else if name.contains('.') {
            (
                format!("operation name `{name}` contains `.`"),
                "`.` separates the parts of operation paths such as `deploy.canary`; use `-` or `_`",
            )
        } else if name.contains('#') {
            (
                format!("operation name `{name}` contains `#`"),
                "`#` is reserved; use `-` or `_`",
            )
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            (
                format!("operation name `{name}` contains whitespace"),
                "use `-` or `_` instead",
            )
        } else {
            return;
        };
        self.error("bad-name", syn.to_vec(), op, message).hint(hint);
    }

    fn max_parallel(&mut self, value: Option<u32>, at: SynPath, op: &str) -> Option<u32> {
        if value == Some(0) {
            self.error(
                "bad-max-parallel",
                at,
                op,
                "`max_parallel` must be at least 1",
            )
            .hint("leave it out for no bound");
            return None;
        }
        value
    }

    /// A duration in milliseconds, or a problem saying why `text` is not one.
    fn duration(
        &mut self,
        text: Option<&DurationText>,
        at: SynPath,
        op: &str,
        what: &str,
    ) -> Option<u64> {
        let t = text?;
        let s = t.0.trim();
        let unsigned = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
        let message = if s.starts_with('-') {
            format!("`{what}` is negative (`{s}`)")
        } else if matches!(unsigned.as_str(), "nan" | "inf" | "infinity") {
            format!("`{what}` is not a number (`{s}`)")
        } else {
            match t.parse() {
                Ok(d) => return Some(d.0),
                Err(e) => format!("invalid `{what}`: {e}"),
            }
        };
        self.error("bad-duration", at, op, message)
            .hint("write e.g. \"250ms\", \"1.5s\", \"2m\" or \"1h\", or a number of milliseconds");
        None
    }

    fn timeout(
        &mut self,
        text: Option<&DurationText>,
        at: SynPath,
        op: &str,
        what: &str,
    ) -> Option<u64> {
        let ms = self.duration(text, at.clone(), op, what)?;
        if ms == 0 {
            self.error(
                "bad-duration",
                at,
                op,
                format!("`{what}` must be more than 0"),
            )
            .hint("leave it out for no time limit");
            return None;
        }
        Some(ms)
    }

    /// Checks a `retry` as written; fields that are wrong are left unset.
    /// `what` names the field in messages: `retry` or `defaults.retry`.
    fn retry_parts(
        &mut self,
        def: Option<&RetryDef>,
        syn: SynPath,
        op: &str,
        what: &str,
    ) -> RetryParts {
        let Some(r) = def else {
            return RetryParts::default();
        };
        let mut parts = RetryParts {
            jitter: r.jitter,
            ..RetryParts::default()
        };
        match r.max_attempts {
            Some(0) => {
                self.error(
                    "bad-retry",
                    at(&syn, ["max_attempts"]),
                    op,
                    "`max_attempts` must be at least 1",
                )
                .hint("1 means a single attempt, no retry");
            }
            n => parts.max_attempts = n,
        }
        if let Some(f) = r.factor {
            if !f.is_finite() {
                self.error(
                    "bad-retry",
                    at(&syn, ["factor"]),
                    op,
                    format!("`factor` must be a finite number, not `{f}`"),
                );
            } else if f < 1.0 {
                self.error(
                    "bad-retry",
                    at(&syn, ["factor"]),
                    op,
                    format!("`factor` must be at least 1.0, not {f}"),
                )
                .hint("each retry waits `factor` times longer than the one before; 1.0 keeps the delay constant");
            } else {
                parts.factor = Some(f);
            }
        }
        parts.initial_ms = self.duration(
            r.initial.as_ref(),
            at(&syn, ["initial"]),
            op,
            &format!("{what}.initial"),
        );
        parts.max_delay_ms = self.duration(
            r.max_delay.as_ref(),
            at(&syn, ["max_delay"]),
            op,
            &format!("{what}.max_delay"),
        );
        if let (Some(i), Some(m)) = (parts.initial_ms, parts.max_delay_ms)
            && m < i
        {
            use crate::model::DurationMs;
            self.warning(
                "retry-delay",
                at(&syn, ["max_delay"]),
                op,
                format!(
                    "`max_delay` ({}) is less than `initial` ({}): every retry waits {}",
                    DurationMs(m),
                    DurationMs(i),
                    DurationMs(m)
                ),
            );
        }
        parts
    }

    /// Work must say what to run, and files it names must exist.
    fn check_work(&mut self, work: &Work, syn: SynPath, op: &str, field: &str) {
        // Point inside `Shell(...)`/`Command(...)` at the string or list.
        let inner = at(&syn, [0]);
        match work {
            Work::Shell(s) if s.trim().is_empty() => {
                self.error(
                    "empty-command",
                    inner,
                    op,
                    format!("`{field}` has an empty shell command"),
                )
                .hint(
                    "write the command line, e.g. `Shell(\"make test\")`, or leave the phase out",
                );
            }
            Work::Command(argv) if argv.is_empty() => {
                self.error(
                    "empty-command",
                    inner,
                    op,
                    format!("`{field}` has an empty command"),
                )
                .hint("`Command([\"program\", \"arg\", ...])` needs at least the program");
            }
            Work::Command(argv) if argv[0].trim().is_empty() => {
                self.error(
                    "empty-command",
                    at(&inner, [0]),
                    op,
                    format!("`{field}` has an empty program name"),
                )
                .hint("the first element of `Command([...])` is the program to run");
            }
            Work::Machine(file) | Work::Workflow(file) => {
                let kind = if matches!(work, Work::Machine(_)) {
                    "machine"
                } else {
                    "workflow"
                };
                if file.trim().is_empty() {
                    self.error(
                        "missing-file",
                        inner,
                        op,
                        format!("`{field}` names no {kind} file"),
                    );
                    return;
                }
                let path = self.base_dir.join(file);
                if !path.is_file() {
                    self.error(
                        "missing-file",
                        inner,
                        op,
                        format!("{kind} file `{}` does not exist", path.display()),
                    )
                    .hint("paths are relative to the directory of the workflow file");
                } else if kind == "workflow"
                    && self.source.is_some()
                    && std::fs::canonicalize(&path).ok().as_deref() == self.source
                {
                    self.error(
                        "self-reference",
                        inner,
                        op,
                        format!("`{field}` runs this workflow itself"),
                    )
                    .hint("a workflow that runs itself never ends");
                } else {
                    self.check_kind(&path, file, kind, inner, op);
                }
            }
            _ => {}
        }
    }

    /// A `Machine(..)` must name a machine file and a `Workflow(..)` a workflow file; the
    /// runtime would refuse the other at run time, after the work before it was done. Files
    /// that cannot be read or are neither are left to the runtime, which loads them fully.
    fn check_kind(&mut self, path: &Path, file: &str, kind: &str, at: SynPath, op: &str) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let (found, right) = match detect_kind(&text) {
            FileKind::Machine if kind == "workflow" => ("machine", "Machine"),
            FileKind::Workflow if kind == "machine" => ("workflow", "Workflow"),
            _ => return,
        };
        self.error(
            "wrong-kind",
            at,
            op,
            format!("`{file}` is a {found} file, but a {kind} was expected"),
        )
        .hint(format!("run it with `{right}(\"{file}\")`"));
    }

    /// Resolves the `after` names of the operations of `group` this walker made, among the
    /// whole group (one parent's children), and reports dependency cycles.
    fn resolve_siblings(&mut self, group: &[OpId]) {
        let names: Vec<(String, OpId)> = group
            .iter()
            .map(|&id| (self.op(id).name.clone(), id))
            .collect();
        let mut by_name: HashMap<&str, OpId> = HashMap::new();
        for (n, id) in &names {
            by_name.entry(n.as_str()).or_insert(*id);
        }
        for &id in group {
            let Some(i) = id.checked_sub(self.existing.len()) else {
                continue;
            };
            let own = self.new[i].name.clone();
            let display = self.display(id);
            let syn = self.written[i].syn.clone();
            let mut resolved = Vec::new();
            for (n, name) in self.written[i].after.clone().iter().enumerate() {
                let place = at(&syn, [Seg::from("after"), Seg::Index(n)]);
                if *name == own {
                    self.error(
                        "self-dependency",
                        place,
                        &display,
                        format!("`{own}` is after itself"),
                    )
                    .hint("`after` names the operations beside this one that must succeed first");
                } else if let Some(&dep) = by_name.get(name.as_str()) {
                    if resolved.contains(&dep) {
                        self.warning(
                            "duplicate-after",
                            place,
                            &display,
                            format!("`{name}` is named twice in `after`"),
                        );
                    } else {
                        resolved.push(dep);
                    }
                } else {
                    let others: Vec<&str> = names
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .filter(|n| *n != own)
                        .collect();
                    let hint = match did_you_mean(name, others.iter().copied()) {
                        Some(m) => format!("did you mean `{m}`?"),
                        None if name.contains('.') => {
                            "`after` names operations beside this one by name, not by path"
                                .to_string()
                        }
                        None if others.is_empty() => {
                            format!("`{own}` has nothing beside it to wait for")
                        }
                        None => format!("the operations beside `{own}` are {}", list(&others)),
                    };
                    self.error(
                        "unknown-after",
                        place,
                        &display,
                        format!("unknown operation `{name}` in `after`"),
                    )
                    .hint(hint);
                }
            }
            self.new[i].after = resolved;
        }
        self.report_cycles(group);
    }

    /// Finds the dependency cycles among `group` (a depth-first search; each edge back into
    /// the search path closes one cycle) and reports those that involve an operation made
    /// here, naming the whole cycle.
    fn report_cycles(&mut self, group: &[OpId]) {
        let pos: HashMap<OpId, usize> = group.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let edges: Vec<Vec<usize>> = group
            .iter()
            .map(|&id| {
                self.op(id)
                    .after
                    .iter()
                    .filter_map(|d| pos.get(d).copied())
                    .collect()
            })
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; group.len()];
        let mut cycles: Vec<Vec<usize>> = Vec::new();
        for start in 0..group.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative, so that long chains of `after` cannot exhaust the stack.
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::OnPath;
            while let Some(top) = path.last_mut() {
                let (v, next) = *top;
                if let Some(&w) = edges[v].get(next) {
                    top.1 += 1;
                    match mark[w] {
                        Mark::New => {
                            mark[w] = Mark::OnPath;
                            path.push((w, 0));
                        }
                        Mark::OnPath => {
                            if let Some(from) = path.iter().position(|&(x, _)| x == w) {
                                cycles.push(path[from..].iter().map(|&(x, _)| x).collect());
                            }
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[v] = Mark::Done;
                    path.pop();
                }
            }
        }
        for mut cycle in cycles {
            // Start at an operation made here: it has a place to point at.
            let Some(first) = cycle.iter().position(|&x| group[x] >= self.existing.len()) else {
                continue;
            };
            cycle.rotate_left(first);
            let ids: Vec<OpId> = cycle.iter().map(|&x| group[x]).collect();
            let mut names: Vec<String> = ids.iter().map(|&id| self.op(id).name.clone()).collect();
            names.push(names[0].clone());
            let i = ids[0] - self.existing.len();
            let next = names[1].clone();
            let n = self.written[i]
                .after
                .iter()
                .position(|a| *a == next)
                .unwrap_or(0);
            let place = at(&self.written[i].syn, [Seg::from("after"), Seg::Index(n)]);
            let display = self.display(ids[0]);
            self.error(
                "dependency-cycle",
                place,
                &display,
                format!("dependency cycle: {}", cycle_text(&names)),
            )
            .hint("each waits for the next through `after`, so none can start; remove one of these `after` entries");
        }
    }
}

/// `a → b → c → a`; a long cycle is shortened in the middle, with its length said.
fn cycle_text(names: &[String]) -> String {
    const SHOWN: usize = 12;
    if names.len() <= SHOWN {
        return names.join(" → ");
    }
    let (head, tail) = (&names[..SHOWN - 3], &names[names.len() - 2..]);
    format!(
        "{} → … → {} ({} operations)",
        head.join(" → "),
        tail.join(" → "),
        names.len() - 1
    )
}

/// `a`, `b` and `c`, with at most eight names.
fn list(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(8);
    let mut s = match shown.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    if more > 0 {
        s.push_str(&format!(" (and {more} more)"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_workflow::{load_workflow_str, parse_subtasks};

    fn plan(text: &str) -> Plan {
        let w = load_workflow_str("wf.ron", text).unwrap();
        match Plan::compile(&w, Path::new("/base")) {
            Ok((p, _)) => p,
            Err(d) => panic!("{d}"),
        }
    }

    #[test]
    fn preorder_is_parents_first_children_in_order() {
        let p = plan(
            r#"Workflow(id: "w", tasks: {
                "a": (tasks: { "a1": (run: Shell("true")), "a2": (run: Shell("true")) }),
                "b": (run: Shell("true")),
            })"#,
        );
        let drawn: Vec<String> = p
            .preorder()
            .map(|(op, depth)| format!("{}{}", "-".repeat(depth), p.ops[op].name))
            .collect();
        assert_eq!(drawn, ["w", "-a", "--a1", "--a2", "-b"]);
    }

    #[test]
    fn environment_names_exec_cannot_pass_are_errors() {
        let all = errors(
            r#"Workflow(id: "w", env: { "A=B": "x" }, tasks: { "t": (env: { "": "y", "OK": "a\u{0}b" }) })"#,
        );
        assert!(
            all.contains("environment variable name `A=B` is empty or contains `=`"),
            "{all}"
        );
        assert!(
            all.contains("environment variable name `` is empty"),
            "{all}"
        );
        assert!(
            all.contains("environment variable `OK` contains a NUL character"),
            "{all}"
        );
    }

    fn errors(text: &str) -> String {
        let w = load_workflow_str("wf.ron", text).unwrap();
        Plan::compile(&w, Path::new("/base"))
            .unwrap_err()
            .to_string()
    }

    const TREE: &str = r#"Workflow(
        id: "rel",
        max_parallel: 4,
        defaults: (retry: (max_attempts: 3, initial: "1s", factor: 3.0), timeout: "10m"),
        env: { "A": "root", "B": "root" },
        cwd: "work",
        tasks: {
            "build": (run: Shell("make"), retry: (max_attempts: 1)),
            "deploy": (
                after: ["build"],
                env: { "B": "deploy", "C": "deploy" },
                timeout: "30s",
                retry: (initial: "5s", jitter: false),
                tasks: {
                    "canary": (run: Shell("./c"), cwd: "/abs", input: { "n": 1 }),
                    "rest": (after: ["canary"], env: { "A": "rest" }),
                },
                max_parallel: 2,
                on_child_failure: Continue,
            ),
            "notify": (after: ["deploy"], optional: true),
        },
    )"#;

    #[test]
    fn ops_are_root_first_then_depth_first() {
        let p = plan(TREE);
        let paths: Vec<&str> = p.ops.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "",
                "build",
                "deploy",
                "deploy.canary",
                "deploy.rest",
                "notify"
            ]
        );
        assert_eq!(p.ops[0].children, [1, 2, 5]);
        assert_eq!(p.ops[2].children, [3, 4]);
        assert_eq!(p.ops[3].parent, Some(2));
        assert_eq!(p.ops[2].after, [1]);
        assert_eq!(p.ops[4].after, [3]);
        assert_eq!(p.ops[0].name, "rel");
        assert_eq!(p.display_path(0), "rel");
        assert_eq!(p.display_path(3), "deploy.canary");
        assert_eq!(p.find("deploy.rest"), Some(4));
        assert_eq!(p.find("rel"), Some(0));
        assert_eq!(p.find("nope"), None);
        assert_eq!(p.max_parallel, Some(4));
        // The root's bound is the workflow's, not one on its children.
        assert_eq!(p.ops[0].max_parallel, None);
        assert_eq!(p.ops[2].max_parallel, Some(2));
        assert_eq!(p.ops[2].on_child_failure, ChildFailure::Continue);
        assert_eq!(p.ops[1].on_child_failure, ChildFailure::FailFast);
        assert!(p.ops[5].optional);
    }

    #[test]
    fn policies_merge_field_by_field() {
        let p = plan(TREE);
        let d = RetryPolicy::default();
        // build: its own max_attempts, the rest from defaults, then the built-in policy.
        assert_eq!(
            p.ops[1].retry,
            RetryPolicy {
                max_attempts: 1,
                initial_ms: 1000,
                factor: 3.0,
                max_delay_ms: d.max_delay_ms,
                jitter: d.jitter
            }
        );
        // deploy: its own initial and jitter, defaults' max_attempts and factor.
        assert_eq!(
            p.ops[2].retry,
            RetryPolicy {
                max_attempts: 3,
                initial_ms: 5000,
                factor: 3.0,
                max_delay_ms: d.max_delay_ms,
                jitter: false
            }
        );
        // Not inherited from the parent: canary has the defaults.
        assert_eq!(p.ops[3].retry.initial_ms, 1000);
        assert_eq!(p.ops[2].timeout_ms, Some(30_000));
        assert_eq!(p.ops[3].timeout_ms, Some(600_000));
        assert_eq!(p.ops[0].timeout_ms, Some(600_000));
        assert_eq!(p.defaults.timeout_ms, Some(600_000));

        let p = plan(r#"Workflow(tasks: { "a": () })"#);
        assert_eq!(p.ops[1].retry, RetryPolicy::default());
        assert_eq!(p.ops[1].timeout_ms, None);
        assert_eq!(p.max_parallel, None);
        assert_eq!(p.id, "wf");
    }

    #[test]
    fn env_cwd_and_input_are_inherited_as_documented() {
        let p = plan(TREE);
        let env = |i: usize| -> Vec<(String, String)> {
            p.ops[i]
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(env(1), [pair("A", "root"), pair("B", "root")]);
        assert_eq!(
            env(2),
            [pair("A", "root"), pair("B", "deploy"), pair("C", "deploy")]
        );
        assert_eq!(
            env(4),
            [pair("A", "rest"), pair("B", "deploy"), pair("C", "deploy")]
        );
        assert_eq!(p.ops[0].cwd.as_deref(), Some(Path::new("/base/work")));
        assert_eq!(p.ops[4].cwd.as_deref(), Some(Path::new("/base/work")));
        assert_eq!(p.ops[3].cwd.as_deref(), Some(Path::new("/abs")));
        assert_eq!(p.ops[3].input, serde_json::json!({ "n": 1 }));
        assert_eq!(p.ops[4].input, Json::Null);
        assert_eq!(plan(r#"Workflow(tasks: { "a": () })"#).ops[1].cwd, None);
    }

    #[test]
    fn dependents_are_transitive_among_siblings() {
        let p = plan(
            r#"Workflow(tasks: { "a": (), "b": (after: ["a"]), "c": (after: ["b"]), "d": (), "e": (after: ["d", "c"]) })"#,
        );
        assert_eq!(p.dependents(1), [2, 3, 5]);
        assert_eq!(p.dependents(4), [5]);
        assert_eq!(p.dependents(5), Vec::<OpId>::new());
        assert_eq!(p.dependents(0), Vec::<OpId>::new());
        assert_eq!(p.dependents(99), Vec::<OpId>::new());
    }

    #[test]
    fn every_problem_is_reported_with_its_operation() {
        let e = errors(
            r#"Workflow(tasks: {
    "a": (after: ["b"], timeout: "5x"),
    "b": (after: ["a"], retry: (max_attempts: 0, factor: 0.5)),
    "c": (after: ["c", "bb"]),
})"#,
        );
        for want in [
            "wf.ron:2:19: error: dependency cycle: a → b → a\n  in operation `a`",
            "wf.ron:2:34: error: invalid `timeout`: unknown unit `x`",
            "wf.ron:3:33: error: `max_attempts` must be at least 1\n  in operation `b`",
            "wf.ron:3:50: error: `factor` must be at least 1.0, not 0.5",
            "wf.ron:4:19: error: `c` is after itself\n  in operation `c`",
            "wf.ron:4:24: error: unknown operation `bb` in `after`\n  in operation `c`\n  hint: did you mean `b`?",
        ] {
            assert!(e.contains(want), "{want}\n---\n{e}");
        }
    }

    fn subtasks(text: &str) -> IndexMap<String, OperationDef> {
        parse_subtasks(text).unwrap()
    }

    #[test]
    fn add_subtasks_appends_and_resolves() {
        let mut p = plan(TREE);
        let before = p.ops.len();
        let ids = p
            .add_subtasks(
                2,
                subtasks(
                    r#"{"eu": {"after": ["canary"], "run": {"Shell": "./eu"}, "tasks": {"x": {}}},
                       "us": {"after": ["eu"], "retry": {"max_attempts": 2}}}"#,
                ),
            )
            .unwrap();
        assert_eq!(ids, [before, before + 2]);
        assert_eq!(p.ops[2].children, [3, 4, before, before + 2]);
        assert_eq!(p.ops[before].path, "deploy.eu");
        assert_eq!(p.ops[before + 1].path, "deploy.eu.x");
        assert_eq!(p.ops[before].children, [before + 1]);
        assert_eq!(p.ops[before].after, [3]);
        assert_eq!(p.ops[before + 2].after, [before]);
        // Defaults and inheritance hold for added subtasks too.
        assert_eq!(p.ops[before + 2].retry.max_attempts, 2);
        assert_eq!(p.ops[before + 2].retry.initial_ms, 1000);
        assert_eq!(p.ops[before + 2].timeout_ms, Some(600_000));
        assert_eq!(p.ops[before].env["B"], "deploy");
        assert_eq!(p.dependents(3), [4, before, before + 2]);
    }

    #[test]
    fn add_subtasks_changes_nothing_on_error() {
        let mut p = plan(TREE);
        let ops = p.ops.len();
        let children = p.ops[2].children.clone();
        let cases = [
            (
                r#"{"canary": {}}"#,
                "`deploy` already has a subtask `canary`",
            ),
            (
                r#"{"x": {"after": ["y"]}, "y": {"after": ["z"]}, "z": {"after": ["x"]}}"#,
                "dependency cycle: x → y → z → x",
            ),
            (
                r#"{"x": {"after": ["canery"]}}"#,
                "`deploy.x`: unknown operation `canery` in `after` (did you mean `canary`?)",
            ),
            (r#"{"x": {"timeout": "-1s"}}"#, "`timeout` is negative"),
            // A subtask named `defaults` has its own `retry`, not the workflow's defaults.
            (
                r#"{"defaults": {"retry": {"initial": "fast"}}}"#,
                "invalid `retry.initial`",
            ),
            (
                r#"{"x": {"tasks": {"a.b": {}}}}"#,
                "operation name `a.b` contains `.`",
            ),
            (
                r#"{"x": {"run": {"Command": []}}}"#,
                "`run` has an empty command",
            ),
            (
                r#"{"x": {"run": {"Machine": "nope.ron"}}}"#,
                "does not exist",
            ),
        ];
        for (text, want) in cases {
            let e = p.add_subtasks(2, subtasks(text)).unwrap_err();
            assert!(e.starts_with("invalid subtasks for `deploy`: "), "{e}");
            assert!(e.contains(want), "{want}\n---\n{e}");
            assert_eq!(p.ops.len(), ops);
            assert_eq!(p.ops[2].children, children);
        }
        // All problems at once.
        let e = p
            .add_subtasks(
                2,
                subtasks(r#"{"canary": {"after": ["q"]}, "x": {"max_parallel": 0}}"#),
            )
            .unwrap_err();
        assert_eq!(e.matches("; ").count(), 2, "{e}");
        assert!(p.add_subtasks(99, IndexMap::new()).is_err());
        assert_eq!(
            p.add_subtasks(2, IndexMap::new()).unwrap(),
            Vec::<OpId>::new()
        );
    }

    /// No input makes loading, compiling or drawing panic: every prefix of a real workflow,
    /// and of decompose output, with every character boundary as a cut.
    #[test]
    fn no_prefix_panics() {
        let text = include_str!("../../tests/fixtures/release.ron");
        let cuts = text.char_indices().map(|(i, _)| i).chain([text.len()]);
        for cut in cuts {
            if let Ok(w) = load_workflow_str("p.ron", &text[..cut])
                && let Ok((plan, _)) = Plan::compile(&w, Path::new("/nonexistent"))
            {
                let _ = super::super::graph::render(&plan, crate::chart::graph::Format::Dot);
            }
        }
        let json = r#"{"eu": {"after": ["us"], "run": {"Command": ["a", "b"]}, "retry": {"factor": 2.5}}, "us": {"tasks": {"x": {}}}}"#;
        let mut p = plan(TREE);
        for cut in 0..=json.len() {
            if let Ok(defs) = parse_subtasks(&json[..cut]) {
                let _ = p.add_subtasks(2, defs);
            }
        }
    }
}
