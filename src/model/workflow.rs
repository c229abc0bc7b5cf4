//! The workflow file format of `workflows.md` as serde types.
//!
//! A workflow is a tree of operations; the root `Workflow(...)` is itself an operation with a
//! few workflow-wide fields (`id`, `defaults`). Decompose commands print subtasks in the same
//! [`OperationDef`] schema, as JSON or RON, so these types read both.

use super::duration::DurationText;
use super::machine::Json;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// A whole workflow file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename = "Workflow")]
pub struct WorkflowDef {
    /// The workflow's name; the root operation is called by it. Default: the file stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Retry and timeout for every operation that sets none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    // The root operation's own fields, as in `OperationDef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyze: Option<Work>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub research: Option<Work>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decompose: Option<Work>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Work>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrate: Option<Work>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<Work>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tasks: IndexMap<String, OperationDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_child_failure: Option<ChildFailure>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Json>,
    /// Workers that may run this operation's work (`orca worker --tags`): a worker runs
    /// it when it has every tag here and of the ancestors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl WorkflowDef {
    /// The root as an operation (the workflow-wide fields stay here).
    pub fn root(&self) -> OperationDef {
        OperationDef {
            description: self.description.clone(),
            analyze: self.analyze.clone(),
            research: self.research.clone(),
            decompose: self.decompose.clone(),
            run: self.run.clone(),
            integrate: self.integrate.clone(),
            compensate: self.compensate.clone(),
            tasks: self.tasks.clone(),
            after: Vec::new(),
            retry: self.retry.clone(),
            timeout: self.timeout.clone(),
            max_parallel: None,
            on_child_failure: self.on_child_failure,
            optional: false,
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            input: self.input.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// Settings every operation inherits unless it sets its own.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationText>,
}

/// One operation: the work of each lifecycle phase, its subtasks and its policies.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename = "Operation")]
pub struct OperationDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyze: Option<Work>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub research: Option<Work>,
    /// Prints a map of further subtasks (JSON or RON) at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decompose: Option<Work>,
    /// The Execute phase's own work, run before the subtasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Work>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrate: Option<Work>,
    /// Undoes a succeeded operation when the run must be rolled back (saga).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<Work>,
    /// Static subtasks in document order.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tasks: IndexMap<String, OperationDef>,
    /// Sibling operations that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    /// Per phase attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationText>,
    /// Bound on this operation's children running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_child_failure: Option<ChildFailure>,
    /// A failure does not fail the parent, and dependents still run.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Json>,
    /// Workers that may run this operation's work (`orca worker --tags`): a worker runs
    /// it when it has every tag here and of the ancestors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The work bound to a phase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Work {
    /// A command line run by `sh -c`.
    Shell(String),
    /// A program and its arguments, no shell.
    Command(Vec<String>),
    /// A statechart: succeeds when it reaches a final state.
    Machine(String),
    /// A nested workflow.
    Workflow(String),
}

/// Retry policy as written; absent fields come from `defaults`, then from the built-in policy.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct RetryDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<DurationText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<DurationText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

/// What a parent does when a (non-optional) child fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum ChildFailure {
    /// Cancel running siblings, start no more, fail.
    #[default]
    FailFast,
    /// Independent branches go on; dependents of the failed one are skipped; fail at the end.
    Continue,
}
