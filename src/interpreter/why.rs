//! Explaining event selection: for an event, which transitions of the active states match it,
//! and why each would or would not be taken. Evaluates guards without changing anything.

use super::{Event, Instance};
use crate::chart::TransitionId;
use crate::model::Json;

/// One transition whose event descriptor matches, and what selection makes of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Why {
    /// The active atomic state whose selection considered it.
    pub from: String,
    /// `source → targets`.
    pub transition: String,
    /// The guard as written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// The context values the guard reads, as they are now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<(String, Json)>,
    pub verdict: Verdict,
}

/// A transition the active states offer now ([`Instance::offered`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Offer {
    /// The event descriptors, as written.
    pub event: String,
    pub transition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// The guard's value now; `None` when it reads the event's data.
    pub holds: Option<bool>,
}

/// Why a matching transition is or is not taken.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It would be taken.
    Enabled,
    /// Its guard is false.
    GuardFalse,
    /// Its guard failed (it counts as false and raises `error.execution`).
    GuardError(String),
    /// An earlier transition of the same state, or of a state nearer the atomic state, is
    /// selected first.
    Shadowed { by: String },
    /// Selected, but another selected transition exits the same states and wins.
    Preempted { by: String },
}

impl Instance {
    /// For each active atomic state in document order, every transition of it or its
    /// ancestors whose descriptors match `event`, with its verdict (`selectTransitions`, then
    /// `removeConflictingTransitions`). Empty when nothing matches.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use orca::chart::{CompileOptions, load_chart_str};
    /// # use orca::interpreter::{Event, Instance, Verdict};
    /// let text = r#"Machine(initial: "a", context: {"n": 0}, states: {
    ///     "a": (on: {"GO": [(target: "b", guard: "n > 0"), "c"]}), "b": (), "c": ()})"#;
    /// let (chart, _) = load_chart_str("m.ron", text, &CompileOptions::default()).unwrap();
    /// let mut m = Instance::new(Arc::new(chart));
    /// m.start().unwrap();
    /// let why = m.why(&Event::external("GO"));
    /// assert_eq!(why[0].verdict, Verdict::GuardFalse);
    /// assert_eq!(why[1].verdict, Verdict::Enabled);
    /// ```
    pub fn why(&self, event: &Event) -> Vec<Why> {
        let chart = self.chart.clone();
        let core = &self.core;
        let mut out = Vec::new();
        let mut selected: Vec<TransitionId> = Vec::new();
        let mut chosen_at: Vec<(usize, TransitionId)> = Vec::new();
        for &s in &core.config {
            if !chart.state(s).is_atomic() {
                continue;
            }
            let from = chart.state(s).display_path().to_string();
            let mut first: Option<TransitionId> = None;
            for &t in &chart.state(s).selection_order {
                let tr = chart.transition(t);
                if !tr.events.iter().any(|d| d.matches(&event.name)) {
                    continue;
                }
                let guard = tr.guard.map(|g| chart.expr(g).source.clone());
                let reads = tr
                    .guard
                    .map(|g| {
                        chart
                            .expr(g)
                            .variables
                            .iter()
                            .filter_map(|v| core.context.get(v).map(|x| (v.clone(), x.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                let verdict = if let Some(f) = first {
                    Verdict::Shadowed {
                        by: chart.describe_transition(f),
                    }
                } else {
                    match tr
                        .guard
                        .map(|g| core.eval_bool_with(&chart, g, Some(event)))
                    {
                        None | Some(Ok(true)) => {
                            first = Some(t);
                            if !selected.contains(&t) {
                                selected.push(t);
                            }
                            chosen_at.push((out.len(), t));
                            Verdict::Enabled
                        }
                        Some(Ok(false)) => Verdict::GuardFalse,
                        Some(Err(e)) => Verdict::GuardError(e),
                    }
                };
                out.push(Why {
                    from: from.clone(),
                    transition: chart.describe_transition(t),
                    guard,
                    reads,
                    verdict,
                });
            }
        }
        if selected.len() > 1 {
            let kept = core.remove_conflicting_transitions(&chart, selected);
            for (i, t) in chosen_at {
                if !kept.contains(&t) {
                    let by = kept
                        .iter()
                        .map(|&k| chart.describe_transition(k))
                        .collect::<Vec<_>>()
                        .join(", ");
                    out[i].verdict = Verdict::Preempted { by };
                }
            }
        }
        out
    }

    /// The transitions with an event that the active states (and their ancestors) offer
    /// now, nearest first, each with its guard evaluated against the context (`None` when
    /// the guard needs the event's data). `done.*`, `error.*` and `after` transitions are left
    /// out: users do not send them.
    pub fn offered(&self) -> Vec<Offer> {
        let chart = &self.chart;
        let mut out = Vec::new();
        // Parallel regions share ancestors: each transition once.
        let mut seen = vec![false; chart.transitions.len()];
        let no_data = Event::external("");
        for &s in &self.core.config {
            for &t in &chart.state(s).selection_order {
                if std::mem::replace(&mut seen[t.index()], true) {
                    continue;
                }
                let tr = chart.transition(t);
                let Some(first) = tr.events.first() else {
                    continue;
                };
                let event = first.text().to_string();
                // Delayed transitions fire by `tick`, not by sending.
                if event.starts_with("done.")
                    || event.starts_with("error.")
                    || tr.trigger.starts_with("after")
                {
                    continue;
                }
                let reads_event = tr.guard.is_some_and(|g| chart.expr(g).reads_event());
                let holds = match tr.guard {
                    None => Some(true),
                    Some(_) if reads_event => None,
                    Some(g) => Some(
                        self.core
                            .eval_bool_with(chart, g, Some(&no_data))
                            .unwrap_or(false),
                    ),
                };
                out.push(Offer {
                    event: tr
                        .events
                        .iter()
                        .map(|d| d.text())
                        .collect::<Vec<_>>()
                        .join(" "),
                    transition: chart.describe_transition(t),
                    guard: tr.guard.map(|g| chart.expr(g).source.clone()),
                    holds,
                });
            }
        }
        out
    }

    /// Every event name the chart's transitions are written with (for completion).
    pub fn event_names(&self) -> Vec<String> {
        let names: indexmap::IndexSet<&str> = self
            .chart
            .transitions
            .iter()
            .flat_map(|t| &t.events)
            .map(|d| d.text())
            .collect();
        names.into_iter().map(String::from).collect()
    }
}
