//! `orca test-paths`: from an exploration, the shortest inputs that make each state active
//! and that take each transition (like XState's graph paths), to run as tests.

use super::{Input, Report};
use crate::chart::{Chart, StateId, TransitionId};

/// What a test path leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Goal {
    /// The state is active at the end.
    State(StateId),
    /// The last input takes the transition.
    Transition(TransitionId),
}

/// One generated test.
#[derive(Debug, Clone)]
pub struct TestPath {
    pub goal: Goal,
    /// What a person reads: `state player.playing` or `transition idle → waiting`.
    pub name: String,
    pub inputs: Vec<Input>,
}

/// Every state and transition the exploration reached, states first, each in document order.
pub fn test_paths(chart: &Chart, report: &Report) -> Vec<TestPath> {
    let mut out = Vec::new();
    for (i, p) in report.active_paths.iter().enumerate() {
        if let Some(p) = p {
            let s = StateId(i as u32);
            out.push(TestPath {
                goal: Goal::State(s),
                name: format!("state {}", chart.state(s).path),
                inputs: p.clone(),
            });
        }
    }
    for (i, p) in report.transition_paths.iter().enumerate() {
        if let Some(p) = p {
            let t = TransitionId(i as u32);
            out.push(TestPath {
                goal: Goal::Transition(t),
                name: format!("transition {}", chart.describe_transition(t)),
                inputs: p.clone(),
            });
        }
    }
    out
}

/// An `orca step` script: a comment that says what it tests, then one command a line.
pub fn script(t: &TestPath) -> String {
    let mut s = format!("# {} ({} inputs)\n", t.name, t.inputs.len());
    for line in t.inputs.iter().flat_map(Input::step_lines) {
        s.push_str(&line);
        s.push('\n');
    }
    s
}
