//! The lifecycle of one operation, as a hierarchical state machine written with `statig`.
//!
//! ```text
//! Pending ─Start→ Active[ Analyzing → Researching → Decomposing → Executing → Integrating ] → Succeeded
//!                   │ PhaseFailed/TimedOut (attempts left) ⇄ Retrying ─RetryDue→ same phase
//!                   │ PhaseFailed/TimedOut (exhausted), a child failure → Failed
//!                   └ Cancel → Cancelled        Pending ─DependencyFailed→ Skipped
//! Succeeded ─Compensate→ Compensating ─CompensationSucceeded→ Compensated
//! ```
//!
//! The machine is pure: it decides, and what must happen in the world comes out as
//! [`Command`]s (run this phase, arm a retry, start the children, stop the work) that the
//! runtime performs and answers with further events. `machines/operation.ron` is the same
//! lifecycle as a statechart; a property test (`tests/lifecycle.rs`) drives both with generated
//! event sequences and requires identical traces.
//!
//! ```
//! use orca::lifecycle::machine::{Command, Event, Lifecycle, Phase, Policy};
//! let mut op = Lifecycle::new(Policy { max_attempts: 2, children: 0, fail_fast: true });
//! op.handle(&Event::Start);
//! assert_eq!(op.state_name(), "Analyzing");
//! assert_eq!(op.take_commands(), vec![Command::RunPhase { phase: Phase::Analyze, attempt: 1 }]);
//! op.handle(&Event::PhaseFailed { phase: Phase::Analyze, error: "boom".into(), retryable: true });
//! assert_eq!(op.state_name(), "Retrying");
//! ```

use crate::model::machine::Json;
use serde::{Deserialize, Serialize};
use statig::prelude::*;

/// The five phases every operation goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Analyze,
    Research,
    Decompose,
    Execute,
    Integrate,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Analyze,
        Phase::Research,
        Phase::Decompose,
        Phase::Execute,
        Phase::Integrate,
    ];

    /// The name used in stdin documents, environment variables and journals.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Analyze => "analyze",
            Phase::Research => "research",
            Phase::Decompose => "decompose",
            Phase::Execute => "execute",
            Phase::Integrate => "integrate",
        }
    }

    /// The lifecycle state this phase runs in.
    pub fn state_name(self) -> &'static str {
        match self {
            Phase::Analyze => "Analyzing",
            Phase::Research => "Researching",
            Phase::Decompose => "Decomposing",
            Phase::Execute => "Executing",
            Phase::Integrate => "Integrating",
        }
    }
}

/// How a child operation ended, as its parent hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    Compensated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Cancelled => "cancelled",
            Outcome::Compensated => "compensated",
        }
    }
}

/// What an operation hears. Serialized (externally tagged) into the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// Its dependencies succeeded and a slot is free: begin with Analyze.
    Start,
    /// The current phase's work ended well. `subtasks` counts the subtasks a `decompose`
    /// added (0 for every other phase).
    PhaseSucceeded {
        phase: Phase,
        #[serde(default)]
        output: Json,
        #[serde(default)]
        subtasks: u32,
    },
    /// The current phase's work failed; `retryable` failures are retried while attempts last.
    PhaseFailed {
        phase: Phase,
        error: String,
        retryable: bool,
    },
    /// The backoff before the next attempt is over.
    RetryDue,
    /// A subtask reached a final state. `optional` children never fail their parent.
    ChildSettled {
        child: String,
        outcome: Outcome,
        #[serde(default)]
        optional: bool,
    },
    /// A dependency failed (or was skipped): this operation will not run.
    DependencyFailed,
    /// Stop: Ctrl-C, SIGTERM, or a fail-fast sibling.
    Cancel,
    /// The current phase attempt ran out of time; it counts as a retryable failure.
    TimedOut,
    /// The run is being rolled back: undo this succeeded operation.
    Compensate,
    CompensationSucceeded,
    CompensationFailed {
        error: String,
    },
}

impl Event {
    /// The event's name, as `operation.ron` and the journal's readers call it.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Start => "Start",
            Event::PhaseSucceeded { .. } => "PhaseSucceeded",
            Event::PhaseFailed { .. } => "PhaseFailed",
            Event::RetryDue => "RetryDue",
            Event::ChildSettled { .. } => "ChildSettled",
            Event::DependencyFailed => "DependencyFailed",
            Event::Cancel => "Cancel",
            Event::TimedOut => "TimedOut",
            Event::Compensate => "Compensate",
            Event::CompensationSucceeded => "CompensationSucceeded",
            Event::CompensationFailed { .. } => "CompensationFailed",
        }
    }
}

/// What the runtime must do in answer to an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Start the work of `phase` (attempt from 1); a phase without work succeeds at once.
    RunPhase { phase: Phase, attempt: u32 },
    /// Arm the backoff timer before `attempt` of `phase`, then deliver `RetryDue`.
    ScheduleRetry { phase: Phase, attempt: u32 },
    /// Stop the running phase work (timeout or cancel).
    StopWork,
    /// Start scheduling the subtasks (their dependencies permitting).
    StartChildren,
    /// Cancel every subtask that has not settled.
    CancelChildren,
    /// Run the `compensate` work.
    RunCompensation,
    /// The operation reached a final state; its parent hears `ChildSettled`.
    Settled(Outcome),
}

/// The parts of an operation's plan that the lifecycle decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts per phase; 1 means no retry.
    pub max_attempts: u32,
    /// Static subtasks (decompose adds more).
    pub children: u32,
    /// `on_child_failure: FailFast`.
    pub fail_fast: bool,
}

/// Shared storage of the statig machine: the policy and the counters the guards read. The
/// commands go to the statig *context*, a `Vec<Command>` owned by [`Lifecycle`].
#[derive(Debug, Clone)]
pub struct Operation {
    policy: Policy,
    /// The phase being worked on (or last worked on).
    phase: Phase,
    /// 1-based attempt of `phase`.
    attempt: u32,
    /// Subtasks not yet settled.
    children: u32,
    /// Non-optional subtasks that failed.
    failures: u32,
    /// In Executing: the own `run` is done and the subtasks are running.
    waiting: bool,
}

#[state_machine(
    initial = "State::pending()",
    state(derive(Debug, Clone, PartialEq, Eq))
)]
impl Operation {
    #[state]
    fn pending(&mut self, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::Start => self.begin(Phase::Analyze),
            Event::DependencyFailed => Transition(State::skipped()),
            Event::Cancel => Transition(State::cancelled()),
            _ => Handled,
        }
    }

    /// Handles what every working phase handles alike: cancel, timeout, a failed attempt.
    #[superstate]
    fn active(&mut self, context: &mut Vec<Command>, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::Cancel => {
                context.push(Command::StopWork);
                context.push(Command::CancelChildren);
                Transition(State::cancelled())
            }
            Event::TimedOut => {
                context.push(Command::StopWork);
                self.attempt_failed(true)
            }
            Event::PhaseFailed {
                phase, retryable, ..
            } if *phase == self.phase => self.attempt_failed(*retryable),
            _ => Handled,
        }
    }

    #[state(superstate = "active", entry_action = "enter_phase")]
    fn analyzing(&mut self, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::PhaseSucceeded {
                phase: Phase::Analyze,
                ..
            } => self.begin(Phase::Research),
            _ => Super,
        }
    }

    #[state(superstate = "active", entry_action = "enter_phase")]
    fn researching(&mut self, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::PhaseSucceeded {
                phase: Phase::Research,
                ..
            } => self.begin(Phase::Decompose),
            _ => Super,
        }
    }

    #[state(superstate = "active", entry_action = "enter_phase")]
    fn decomposing(&mut self, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::PhaseSucceeded {
                phase: Phase::Decompose,
                subtasks,
                ..
            } => {
                self.children = self.children.saturating_add(*subtasks);
                self.begin(Phase::Execute)
            }
            _ => Super,
        }
    }

    #[state(superstate = "active", entry_action = "enter_phase")]
    fn executing(&mut self, context: &mut Vec<Command>, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::PhaseSucceeded {
                phase: Phase::Execute,
                ..
            } if !self.waiting => {
                if self.children == 0 {
                    self.begin(Phase::Integrate)
                } else {
                    self.waiting = true;
                    context.push(Command::StartChildren);
                    Handled
                }
            }
            Event::ChildSettled {
                outcome, optional, ..
            } if self.waiting => {
                let counts = *outcome == Outcome::Failed && !*optional;
                if counts {
                    self.failures += 1;
                }
                self.children -= 1;
                if counts && self.policy.fail_fast {
                    context.push(Command::CancelChildren);
                    Transition(State::failed())
                } else if self.children > 0 {
                    Handled
                } else if self.failures > 0 {
                    Transition(State::failed())
                } else {
                    self.begin(Phase::Integrate)
                }
            }
            // The own work is done while the subtasks run: its late failures and timeouts
            // are stale.
            Event::PhaseFailed { .. } | Event::TimedOut if self.waiting => Handled,
            _ => Super,
        }
    }

    #[state(superstate = "active", entry_action = "enter_phase")]
    fn integrating(&mut self, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::PhaseSucceeded {
                phase: Phase::Integrate,
                ..
            } => Transition(State::succeeded()),
            _ => Super,
        }
    }

    #[state(entry_action = "enter_retrying")]
    fn retrying(&mut self, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::RetryDue => {
                self.attempt += 1;
                Transition(Self::phase_state(self.phase))
            }
            Event::Cancel => Transition(State::cancelled()),
            _ => Handled,
        }
    }

    #[state(entry_action = "enter_succeeded")]
    fn succeeded(&mut self, event: &Event) -> statig::Outcome<State> {
        match event {
            Event::Compensate => Transition(State::compensating()),
            _ => Handled,
        }
    }

    #[state(entry_action = "enter_compensating")]
    fn compensating(
        &mut self,
        context: &mut Vec<Command>,
        event: &Event,
    ) -> statig::Outcome<State> {
        match event {
            Event::CompensationSucceeded => Transition(State::compensated()),
            Event::CompensationFailed { .. } => Transition(State::failed()),
            Event::Cancel => {
                context.push(Command::StopWork);
                Transition(State::cancelled())
            }
            _ => Handled,
        }
    }

    #[state(entry_action = "enter_failed")]
    fn failed(event: &Event) -> statig::Outcome<State> {
        let _ = event;
        Handled
    }

    #[state(entry_action = "enter_skipped")]
    fn skipped(event: &Event) -> statig::Outcome<State> {
        let _ = event;
        Handled
    }

    #[state(entry_action = "enter_cancelled")]
    fn cancelled(event: &Event) -> statig::Outcome<State> {
        let _ = event;
        Handled
    }

    #[state(entry_action = "enter_compensated")]
    fn compensated(event: &Event) -> statig::Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn enter_phase(&mut self, context: &mut Vec<Command>) {
        context.push(Command::RunPhase {
            phase: self.phase,
            attempt: self.attempt,
        });
    }

    #[action]
    fn enter_retrying(&mut self, context: &mut Vec<Command>) {
        context.push(Command::ScheduleRetry {
            phase: self.phase,
            attempt: self.attempt + 1,
        });
    }

    #[action]
    fn enter_succeeded(&mut self, context: &mut Vec<Command>) {
        context.push(Command::Settled(Outcome::Succeeded));
    }

    #[action]
    fn enter_compensating(&mut self, context: &mut Vec<Command>) {
        context.push(Command::RunCompensation);
    }

    #[action]
    fn enter_failed(&mut self, context: &mut Vec<Command>) {
        context.push(Command::Settled(Outcome::Failed));
    }

    #[action]
    fn enter_skipped(&mut self, context: &mut Vec<Command>) {
        context.push(Command::Settled(Outcome::Skipped));
    }

    #[action]
    fn enter_cancelled(&mut self, context: &mut Vec<Command>) {
        context.push(Command::Settled(Outcome::Cancelled));
    }

    #[action]
    fn enter_compensated(&mut self, context: &mut Vec<Command>) {
        context.push(Command::Settled(Outcome::Compensated));
    }
}

impl Operation {
    fn begin(&mut self, phase: Phase) -> statig::Outcome<State> {
        self.phase = phase;
        self.attempt = 1;
        self.waiting = false;
        Transition(Self::phase_state(phase))
    }

    fn phase_state(phase: Phase) -> State {
        match phase {
            Phase::Analyze => State::analyzing(),
            Phase::Research => State::researching(),
            Phase::Decompose => State::decomposing(),
            Phase::Execute => State::executing(),
            Phase::Integrate => State::integrating(),
        }
    }

    fn attempt_failed(&mut self, retryable: bool) -> statig::Outcome<State> {
        if retryable && self.attempt < self.policy.max_attempts {
            Transition(State::retrying())
        } else {
            Transition(State::failed())
        }
    }
}

/// One operation's lifecycle: the statig machine and the commands it has emitted.
pub struct Lifecycle {
    machine: statig::blocking::StateMachine<Operation>,
    /// The statig context: handlers and actions append what the runtime must do.
    commands: Vec<Command>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("state", &self.state_name())
            .field("phase", &self.phase())
            .field("attempt", &self.attempt())
            .finish()
    }
}

impl Lifecycle {
    /// A new operation in `Pending`.
    pub fn new(policy: Policy) -> Self {
        let op = Operation {
            policy,
            phase: Phase::Analyze,
            attempt: 0,
            children: policy.children,
            failures: 0,
            waiting: false,
        };
        Lifecycle {
            machine: op.state_machine(),
            commands: Vec::new(),
        }
    }

    /// Delivers one event; the commands it caused wait in [`Lifecycle::take_commands`].
    pub fn handle(&mut self, event: &Event) {
        self.machine.handle_with_context(event, &mut self.commands);
    }

    /// The commands emitted since the last call, in order.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// The current state's name, as `operation.ron` writes it (`Analyzing`, `Failed`, ...).
    pub fn state_name(&self) -> &'static str {
        match self.machine.state() {
            State::Pending {} => "Pending",
            State::Analyzing {} => "Analyzing",
            State::Researching {} => "Researching",
            State::Decomposing {} => "Decomposing",
            State::Executing {} => "Executing",
            State::Integrating {} => "Integrating",
            State::Retrying {} => "Retrying",
            State::Succeeded {} => "Succeeded",
            State::Compensating {} => "Compensating",
            State::Failed {} => "Failed",
            State::Skipped {} => "Skipped",
            State::Cancelled {} => "Cancelled",
            State::Compensated {} => "Compensated",
        }
    }

    /// The outcome when the lifecycle is in a settled state (`Succeeded` counts although
    /// `Compensate` may still take it further).
    pub fn outcome(&self) -> Option<Outcome> {
        match self.machine.state() {
            State::Succeeded {} => Some(Outcome::Succeeded),
            State::Failed {} => Some(Outcome::Failed),
            State::Skipped {} => Some(Outcome::Skipped),
            State::Cancelled {} => Some(Outcome::Cancelled),
            State::Compensated {} => Some(Outcome::Compensated),
            _ => None,
        }
    }

    /// Whether the operation is between `Start` and a settled state.
    pub fn is_running(&self) -> bool {
        !matches!(self.machine.state(), State::Pending {}) && self.outcome().is_none()
            || matches!(self.machine.state(), State::Compensating {})
    }

    pub fn phase(&self) -> Phase {
        self.machine.inner().phase
    }

    pub fn attempt(&self) -> u32 {
        self.machine.inner().attempt
    }

    /// Subtasks not yet settled.
    pub fn children_pending(&self) -> u32 {
        self.machine.inner().children
    }

    /// Non-optional subtasks that failed.
    pub fn failures(&self) -> u32 {
        self.machine.inner().failures
    }

    /// Whether Executing's own work is done and the subtasks are running.
    pub fn waiting(&self) -> bool {
        self.machine.inner().waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(phase: Phase) -> Event {
        Event::PhaseSucceeded {
            phase,
            output: Json::Null,
            subtasks: 0,
        }
    }

    fn run(policy: Policy, events: &[Event]) -> (Lifecycle, Vec<Command>) {
        let mut op = Lifecycle::new(policy);
        let mut all = Vec::new();
        for e in events {
            op.handle(e);
            all.extend(op.take_commands());
        }
        (op, all)
    }

    const ONE: Policy = Policy {
        max_attempts: 1,
        children: 0,
        fail_fast: true,
    };

    #[test]
    fn every_phase_in_order_then_succeeded() {
        let mut events = vec![Event::Start];
        events.extend(Phase::ALL.map(ok));
        let (op, cmds) = run(ONE, &events);
        assert_eq!(op.state_name(), "Succeeded");
        let phases: Vec<Phase> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::RunPhase { phase, attempt: 1 } => Some(*phase),
                _ => None,
            })
            .collect();
        assert_eq!(phases, Phase::ALL.to_vec());
        assert_eq!(cmds.last(), Some(&Command::Settled(Outcome::Succeeded)));
    }

    #[test]
    fn retries_until_attempts_are_exhausted() {
        let fail = Event::PhaseFailed {
            phase: Phase::Analyze,
            error: "x".into(),
            retryable: true,
        };
        let policy = Policy {
            max_attempts: 3,
            ..ONE
        };
        let (op, cmds) = run(
            policy,
            &[
                Event::Start,
                fail.clone(),
                Event::RetryDue,
                Event::TimedOut,
                Event::RetryDue,
            ],
        );
        assert_eq!(op.state_name(), "Analyzing");
        assert_eq!(op.attempt(), 3);
        assert!(cmds.contains(&Command::ScheduleRetry {
            phase: Phase::Analyze,
            attempt: 3
        }));
        assert!(
            cmds.contains(&Command::StopWork),
            "a timeout stops the work"
        );
        let (op, _) = run(
            policy,
            &[
                Event::Start,
                fail.clone(),
                Event::RetryDue,
                fail.clone(),
                Event::RetryDue,
                fail,
            ],
        );
        assert_eq!(op.state_name(), "Failed");
    }

    #[test]
    fn a_non_retryable_failure_fails_at_once_and_stale_results_are_ignored() {
        let policy = Policy {
            max_attempts: 5,
            ..ONE
        };
        let (op, _) = run(
            policy,
            &[
                Event::Start,
                ok(Phase::Research), // stale: not the current phase
                Event::PhaseFailed {
                    phase: Phase::Research,
                    error: "stale".into(),
                    retryable: false,
                },
            ],
        );
        assert_eq!(op.state_name(), "Analyzing");
        let (op, _) = run(
            policy,
            &[
                Event::Start,
                Event::PhaseFailed {
                    phase: Phase::Analyze,
                    error: "bad".into(),
                    retryable: false,
                },
            ],
        );
        assert_eq!(op.state_name(), "Failed");
    }

    fn settled(outcome: Outcome, optional: bool) -> Event {
        Event::ChildSettled {
            child: "c".into(),
            outcome,
            optional,
        }
    }

    fn to_execute(subtasks: u32) -> Vec<Event> {
        vec![
            Event::Start,
            ok(Phase::Analyze),
            ok(Phase::Research),
            Event::PhaseSucceeded {
                phase: Phase::Decompose,
                output: Json::Null,
                subtasks,
            },
            ok(Phase::Execute),
        ]
    }

    #[test]
    fn children_fail_fast_or_continue() {
        let ff = Policy { children: 2, ..ONE };
        let mut ev = to_execute(1);
        ev.push(settled(Outcome::Succeeded, false));
        ev.push(settled(Outcome::Failed, false));
        let (op, cmds) = run(ff, &ev);
        assert_eq!(op.state_name(), "Failed");
        assert!(cmds.contains(&Command::StartChildren));
        assert!(cmds.contains(&Command::CancelChildren));

        let cont = Policy {
            fail_fast: false,
            ..ff
        };
        let mut ev = to_execute(0);
        ev.push(settled(Outcome::Failed, false));
        let (op, _) = run(cont, &ev);
        assert_eq!(op.state_name(), "Executing", "continue waits for the rest");
        assert_eq!(op.children_pending(), 1);
        let mut ev2 = ev.clone();
        ev2.push(settled(Outcome::Succeeded, false));
        assert_eq!(run(cont, &ev2).0.state_name(), "Failed");

        let mut ev = to_execute(0);
        ev.push(settled(Outcome::Failed, true));
        ev.push(settled(Outcome::Succeeded, false));
        assert_eq!(
            run(cont, &ev).0.state_name(),
            "Integrating",
            "an optional failure does not fail the parent"
        );
    }

    #[test]
    fn compensation_skip_and_cancel() {
        let mut ev = vec![Event::Start];
        ev.extend(Phase::ALL.map(ok));
        ev.push(Event::Compensate);
        let (op, cmds) = run(ONE, &ev);
        assert_eq!(op.state_name(), "Compensating");
        assert_eq!(cmds.last(), Some(&Command::RunCompensation));
        ev.push(Event::CompensationSucceeded);
        assert_eq!(run(ONE, &ev).0.state_name(), "Compensated");

        assert_eq!(
            run(ONE, &[Event::DependencyFailed]).0.state_name(),
            "Skipped"
        );
        let (op, cmds) = run(ONE, &[Event::Start, Event::Cancel, Event::Start]);
        assert_eq!(op.state_name(), "Cancelled");
        assert!(cmds.contains(&Command::StopWork));
        assert_eq!(cmds.last(), Some(&Command::Settled(Outcome::Cancelled)));
    }
}
