//! Model checking of workflows: every order and outcome of the work a run waits for.
//!
//! A workflow is explored through the engine's own simulation (the one `orca step WORKFLOW`
//! drives), so what is checked is what runs. In each state, every piece of work the run waits
//! for may succeed (`ok OP`) or fail (`fail OP`, retryable, as a non-zero exit), and time may
//! pass to the next timer (`tick`: a retry comes due or a phase times out). States are the
//! engine's [`Engine::sim_key`]; since the engine cannot be copied, a state is rebuilt by
//! replaying its path into a fresh simulation. A `decompose` phase answered `ok` adds no
//! subtasks here: subtasks created at run time are not explored.
//!
//! Checked on every step: no operation starts before its dependencies succeeded (or, when
//! optional, failed); compensation runs in the reverse of the order in which operations
//! succeeded. Over the whole graph: every run can end (no trap, no deadlock). And every end
//! where the run failed yet an operation with `compensate` is still `Succeeded` is a failure
//! point that leaves the run uncompensated.

use super::FindingKind;
use crate::lifecycle::plan::{OpId, Plan};
use crate::model::Json;
use crate::runtime::workflow::work::WorkResult;
use crate::runtime::workflow::{Engine, EngineOptions};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// One answer to a simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok(OpId),
    Fail(OpId),
    Tick,
}

/// A finding about a workflow, with the answers that lead there as `orca step` lines.
#[derive(Debug, Clone)]
pub struct WorkflowFinding {
    pub kind: FindingKind,
    pub message: String,
    pub path: Vec<String>,
    pub error: bool,
}

/// The result of [`explore`].
#[derive(Debug, Clone)]
pub struct WorkflowReport {
    pub findings: Vec<WorkflowFinding>,
    pub states: usize,
    pub steps: u64,
    pub depth: usize,
    /// `Some(frontier size)` when a bound stopped the exploration.
    pub bounded: Option<usize>,
    /// Ends reached: (succeeded, failed).
    pub ends: (usize, usize),
    /// Every lifecycle state each operation reaches, with the shortest answers that get it
    /// there (as `orca step` lines): operation path, state, lines. For `orca test-paths`.
    pub reached: Vec<(String, &'static str, Vec<String>)>,
}

/// A fresh simulation of `plan`.
pub fn simulation(plan: &Plan) -> Engine {
    let mut e = Engine::new(
        plan.clone(),
        EngineOptions {
            run_id: "verify".into(),
            run_dir: PathBuf::from("(verify)"),
            max_parallel: None,
            compensate_on_cancel: false,
        },
    );
    e.simulate();
    e.begin();
    e
}

/// Gives one answer, as `orca step` does.
pub fn apply(e: &mut Engine, a: Answer) -> Result<(), String> {
    match a {
        Answer::Ok(op) => e.answer(
            op,
            WorkResult::Succeeded {
                output: Json::Null,
                text: String::new(),
            },
        ),
        Answer::Fail(op) => e.answer(
            op,
            WorkResult::Failed {
                error: "failed (simulated)".into(),
                retryable: true,
            },
        ),
        Answer::Tick => e.sim_tick(None).map(|_| ()),
    }
}

/// As `orca step WORKFLOW` reads it.
pub struct Line<'a>(pub &'a Plan, pub Answer);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Answer::Ok(op) => write!(f, "ok {}", self.0.display_path(op)),
            Answer::Fail(op) => write!(f, "fail {}", self.0.display_path(op)),
            Answer::Tick => f.write_str("tick"),
        }
    }
}

/// A step's problems: the finding's kind and its message.
type Problems = Vec<(FindingKind, String)>;

/// What one state's expansion found, computed in a worker.
struct Expanded {
    id: u32,
    /// Per answer: the state it leads to and what the step did wrong.
    succs: Vec<(Answer, String, Problems)>,
    finished: bool,
    failed: bool,
    uncompensated: Vec<OpId>,
    /// Each operation's lifecycle state.
    states: Vec<&'static str>,
}

/// Explores every answer order and outcome of `plan`'s run.
pub fn explore(plan: &Plan, max_states: usize, depth: Option<usize>) -> WorkflowReport {
    let span = tracing::info_span!("verify", workflow = %plan.id);
    let _g = span.enter();
    let root = simulation(plan);
    let mut keys: HashMap<String, u32> = HashMap::new();
    keys.insert(root.sim_key(), 0);
    // Per state: parent and the answer that led there.
    let mut origins: Vec<(u32, Option<Answer>)> = vec![(u32::MAX, None)];
    let mut edges: Vec<(u32, u32)> = Vec::new();
    let mut ends: Vec<bool> = Vec::new();
    let mut report = WorkflowReport {
        findings: Vec::new(),
        states: 0,
        steps: 0,
        depth: 0,
        bounded: None,
        ends: (0, 0),
        reached: Vec::new(),
    };
    let mut reached_seen: std::collections::HashSet<(OpId, &'static str)> = Default::default();
    let mut seen_kinds: Vec<String> = Vec::new();
    let path_of = |origins: &Vec<(u32, Option<Answer>)>, mut id: u32| {
        let mut out = Vec::new();
        while let (parent, Some(a)) = origins[id as usize] {
            out.push(a);
            id = parent;
        }
        out.reverse();
        out
    };
    let lines = |answers: &[Answer]| -> Vec<String> {
        answers.iter().map(|&a| Line(plan, a).to_string()).collect()
    };
    let mut frontier = vec![0u32];
    let mut refused = 0usize;
    let mut level = 0;
    let mut deadlock_seen = false;
    let mut uncompensated_seen: Vec<Vec<OpId>> = Vec::new();
    while !frontier.is_empty() {
        if depth.is_some_and(|d| level >= d) || refused > 0 {
            report.bounded = Some(frontier.len() + refused);
            break;
        }
        let paths: Vec<Vec<Answer>> = frontier.iter().map(|&id| path_of(&origins, id)).collect();
        let expanded: Vec<Expanded> = frontier
            .par_iter()
            .zip(paths.par_iter())
            .map(|(&id, path)| expand(plan, id, path))
            .collect();
        let mut next = Vec::new();
        for e in expanded {
            for (op, &state) in e.states.iter().enumerate() {
                if reached_seen.insert((op, state)) {
                    report.reached.push((
                        plan.display_path(op).to_string(),
                        state,
                        lines(&path_of(&origins, e.id)),
                    ));
                }
            }
            if ends.len() <= e.id as usize {
                ends.resize(e.id as usize + 1, false);
            }
            ends[e.id as usize] = e.finished;
            if e.finished {
                if e.failed {
                    report.ends.1 += 1;
                } else {
                    report.ends.0 += 1;
                }
                if !e.uncompensated.is_empty() && !uncompensated_seen.contains(&e.uncompensated) {
                    uncompensated_seen.push(e.uncompensated.clone());
                    let names: Vec<&str> = e
                        .uncompensated
                        .iter()
                        .map(|&o| plan.display_path(o))
                        .collect();
                    let path = path_of(&origins, e.id);
                    let point = path
                        .iter()
                        .rev()
                        .find_map(|a| match a {
                            Answer::Fail(op) => Some(plan.display_path(*op).to_string()),
                            _ => None,
                        })
                        .unwrap_or_else(|| "a timeout".into());
                    report.findings.push(WorkflowFinding {
                        kind: FindingKind::Uncompensated {
                            operations: names.iter().map(|s| s.to_string()).collect(),
                        },
                        message: format!(
                            "the run fails (last failure: {point}) and leaves {} uncompensated",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        path: lines(&path),
                        error: false,
                    });
                }
            } else if e.succs.is_empty() && !deadlock_seen {
                deadlock_seen = true;
                report.findings.push(WorkflowFinding {
                    kind: FindingKind::Deadlock,
                    message: "deadlock: the run has not ended, yet no work is running and no timer is pending".into(),
                    path: lines(&path_of(&origins, e.id)),
                    error: true,
                });
            }
            for (answer, key, problems) in e.succs {
                report.steps += 1;
                for (kind, message) in problems {
                    let tag = format!("{kind:?}");
                    if !seen_kinds.contains(&tag) {
                        seen_kinds.push(tag);
                        let mut path = path_of(&origins, e.id);
                        path.push(answer);
                        report.findings.push(WorkflowFinding {
                            kind,
                            message,
                            path: lines(&path),
                            error: true,
                        });
                    }
                }
                let n = keys.len() as u32;
                let id = match keys.get(&key) {
                    Some(&id) => id,
                    // The bound: states past it are counted, not kept.
                    None if keys.len() >= max_states => {
                        refused += 1;
                        continue;
                    }
                    None => {
                        keys.insert(key, n);
                        n
                    }
                };
                if id != e.id {
                    edges.push((e.id, id));
                }
                if id == n {
                    origins.push((e.id, Some(answer)));
                    next.push(id);
                }
            }
        }
        frontier = next;
        if !frontier.is_empty() {
            level += 1;
        }
    }
    if refused > 0 && report.bounded.is_none() {
        report.bounded = Some(refused);
    }
    report.depth = level;
    report.states = keys.len();
    if report.bounded.is_none() {
        // Every state must be able to reach an end.
        let n = keys.len();
        ends.resize(n, false);
        let can = super::Reverse::new(n, &edges).can_reach(ends);
        if let Some(trap) = (0..n).find(|&i| !can[i]) {
            report.findings.push(WorkflowFinding {
                kind: FindingKind::Trap,
                message: "the run can get where it can never end".into(),
                path: lines(&path_of(&origins, trap as u32)),
                error: true,
            });
        }
    }
    report
}

/// Rebuilds state `id` from its path and tries every answer on a copy.
fn expand(plan: &Plan, id: u32, path: &[Answer]) -> Expanded {
    let rebuild = || {
        let mut e = simulation(plan);
        for &a in path {
            // Each was accepted when the path was found; the simulation is deterministic.
            let _ = apply(&mut e, a);
        }
        e
    };
    let here = rebuild();
    let mut answers: Vec<Answer> = Vec::new();
    for w in here.would_run() {
        answers.push(Answer::Ok(w.op));
        answers.push(Answer::Fail(w.op));
    }
    if !here.sim_timers().is_empty() {
        answers.push(Answer::Tick);
    }
    let finished = here.is_finished();
    let failed = here.state(0) != "Succeeded";
    let uncompensated: Vec<OpId> = if finished && failed {
        (0..plan.ops.len())
            .filter(|&op| plan.ops[op].compensate.is_some() && here.state(op) == "Succeeded")
            .collect()
    } else {
        Vec::new()
    };
    let mut succs = Vec::new();
    for a in answers {
        let mut e = rebuild();
        if apply(&mut e, a).is_err() {
            continue;
        }
        let problems = check_step(plan, &here, &e);
        succs.push((a, e.sim_key(), problems));
    }
    let states = (0..plan.ops.len()).map(|op| here.state(op)).collect();
    Expanded {
        id,
        succs,
        finished,
        failed,
        uncompensated,
        states,
    }
}

/// What one step did wrong: an operation started before its dependencies allowed it, or a
/// compensation began while one that succeeded later was not yet undone.
fn check_step(plan: &Plan, before: &Engine, after: &Engine) -> Problems {
    let mut out = Vec::new();
    let settled_ok = |e: &Engine, d: OpId| {
        matches!(e.state(d), "Succeeded" | "Compensating" | "Compensated")
            || (plan.ops[d].optional && e.state(d) == "Failed")
    };
    for op in 0..plan.ops.len().min(before.plan().ops.len()) {
        let was = before.state(op);
        let now = after.state(op);
        if was == "Pending" && !matches!(now, "Pending" | "Skipped" | "Cancelled") {
            for &d in &plan.ops[op].after {
                if !settled_ok(after, d) {
                    out.push((
                        FindingKind::DependencyOrder {
                            operation: plan.display_path(op).to_string(),
                        },
                        format!(
                            "`{}` starts before its dependency `{}` succeeded (it is {})",
                            plan.display_path(op),
                            plan.display_path(d),
                            after.state(d)
                        ),
                    ));
                }
            }
        }
        if was == "Succeeded"
            && matches!(now, "Compensating" | "Compensated")
            && plan.ops[op].compensate.is_some()
        {
            let order = after.completed();
            let at = order.iter().position(|&o| o == op);
            let later = at.map_or(&[][..], |i| &order[i + 1..]);
            for &l in later {
                if plan.ops[l].compensate.is_some() && after.state(l) == "Succeeded" {
                    out.push((
                        FindingKind::CompensationOrder {
                            operation: plan.display_path(op).to_string(),
                        },
                        format!(
                            "`{}` is compensated before `{}`, which succeeded after it",
                            plan.display_path(op),
                            plan.display_path(l)
                        ),
                    ));
                }
            }
        }
    }
    out
}
