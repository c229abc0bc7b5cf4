//! A workflow compiled for running: operations in a flat arena, names resolved, policies
//! effective.

use crate::model::machine::Json;
use crate::model::workflow::{ChildFailure, Work};
use indexmap::IndexMap;
use std::path::PathBuf;

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
    pub max_parallel: Option<u32>,
    pub on_child_failure: ChildFailure,
    pub optional: bool,
    /// This operation's environment, its ancestors' merged in under it.
    pub env: IndexMap<String, String>,
    /// Working directory of its commands, resolved against the workflow's directory.
    pub cwd: Option<PathBuf>,
    pub input: Json,
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
