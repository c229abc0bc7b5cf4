//! What an external event would do, worked out without doing it.
//!
//! The verifier applies every input to every state it finds, and most of those steps lead
//! to states it knows already: all it needs of such a step is the state's key. For the
//! simplest steps — the quick path's selection, then one plain transition whose actions
//! are integer assignments — the result is fixed by the chart, the configuration and a few
//! integers, and working it out costs a fraction of copying the instance and stepping it.
//! The step itself is the interpreter's: the preview answers only where the quick path and
//! the kernels would decide, and says so otherwise.

use super::{Core, Instance, Status};
use crate::chart::kernel::{Kernel, Slots};
use crate::chart::{Chart, EventClass, Op, State, StateId, TransitionId};
use crate::model::Json;
use indexmap::IndexMap;

/// The result of [`Instance::preview`]: what the step would change. Kept by the caller
/// from call to call, so that previewing allocates nothing once its buffers have grown.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Preview {
    /// The transition the event takes; `None`: it is ignored and nothing changes.
    pub taken: Option<TransitionId>,
    /// The active states after the step, in document order (the root first).
    pub config: Vec<StateId>,
    /// The integers the step assigns, by declared context slot, in the order assigned (a
    /// slot assigned twice is listed twice; the last counts).
    pub assigned: Vec<(usize, i64)>,
}

impl Preview {
    /// The value `slot` holds after the step, when the step assigns it.
    pub fn assigned(&self, slot: usize) -> Option<i64> {
        self.assigned
            .iter()
            .rev()
            .find(|(s, _)| *s == slot)
            .map(|&(_, v)| v)
    }
}

/// A context seen through assignments not made yet: what an action reads after the ones
/// before it in the same block.
struct Assigned<'a> {
    context: &'a IndexMap<String, Json>,
    preview: &'a Preview,
}

impl Slots for Assigned<'_> {
    fn int(&self, slot: usize) -> Option<i64> {
        self.preview
            .assigned(slot)
            .or_else(|| self.context.int(slot))
    }
}

impl Instance {
    /// Works out into `out` what sending an event of class `class` would do, without doing
    /// it, when the step is of the simplest kind: the quick path selects at most one
    /// transition, and that one is plain (see [`crate::chart::Transition::plain`]) with
    /// only integer assignments to declared context names, each decided by its kernel.
    /// Returns false otherwise (then `out` means nothing and the event must be sent).
    ///
    /// What it answers is what [`Instance::send`] would do: status, configuration and
    /// context as the step leaves them, and the transition it takes. Nothing else that
    /// makes a state (history, timers, invokes, queued events, output) is touched by such a
    /// step; it only records the event as the current one, which the next step replaces.
    ///
    /// ```
    /// use orca::chart::{CompileOptions, load_chart_str};
    /// use orca::interpreter::{Instance, Preview};
    /// use std::sync::Arc;
    /// let text = r#"Machine(id: "c", context: {"n": 0}, initial: "a", states: {
    ///     "a": (on: {"GO": (target: "b", actions: [Assign("n", "n + 1")])}), "b": ()})"#;
    /// let (chart, _) = load_chart_str("c.ron", text, &CompileOptions::default()).unwrap();
    /// let chart = Arc::new(chart);
    /// let mut inst = Instance::new(chart.clone());
    /// inst.start().unwrap();
    /// let mut p = Preview::default();
    /// assert!(inst.preview(chart.event_class("GO").unwrap(), &mut p));
    /// assert_eq!(p.assigned, vec![(0, 1)]);
    /// assert!(p.taken.is_some());
    /// ```
    pub fn preview(&self, class: EventClass, out: &mut Preview) -> bool {
        self.previewer().is_some_and(|p| p.preview(class, out))
    }

    /// What [`Instance::preview`] checks of the instance whatever the event, checked once
    /// for previewing many events: `None` when no event's step can be previewed.
    pub fn previewer(&self) -> Option<Previewer<'_>> {
        let (core, chart) = (&self.core, &*self.chart);
        let ready = core.status == Status::Running
            && core
                .cold
                .as_ref()
                .is_none_or(|c| c.external.is_empty() && c.to_invoke.is_empty())
            && core.quick_ready(chart);
        let leaf = chart.state(*core.config.last()?);
        ready.then_some(Previewer { core, chart, leaf })
    }
}

/// An instance ready to have steps previewed (see [`Instance::previewer`]).
pub struct Previewer<'a> {
    core: &'a Core,
    chart: &'a Chart,
    leaf: &'a State,
}

impl Previewer<'_> {
    /// [`Instance::preview`].
    pub fn preview(&self, class: EventClass, out: &mut Preview) -> bool {
        let (core, chart) = (self.core, self.chart);
        out.taken = None;
        out.config.clear();
        out.assigned.clear();
        let Some(chosen) = core.quick_choose(chart, self.leaf, class) else {
            return false;
        };
        out.config.extend_from_slice(&core.config);
        let Some(t) = chosen else {
            return true;
        };
        let tr = chart.transition(t);
        if !tr.plain {
            return false;
        }
        for op in &tr.actions {
            // The interpreter's own quick assignment (see `run_op`), and nothing else.
            let Op::Assign {
                location,
                slot: Some(slot),
                value,
            } = op
            else {
                return false;
            };
            let Some(Kernel::Int(k)) = &chart.expr(*value).kernel else {
                return false;
            };
            if location.len() != 1 || *slot >= core.context.len() {
                return false;
            }
            let seen = Assigned {
                context: &core.context,
                preview: out,
            };
            let Some(v) = k.eval(&seen) else {
                return false;
            };
            out.assigned.push((*slot, v));
        }
        out.taken = Some(t);
        // As `plain_microstep` without parallel states: the domain's descendants give way
        // to the entry set, which follows the domain in document order.
        if let (Some(domain), Some(entry)) = (tr.static_domain, &tr.static_entry) {
            out.config.truncate(chart.state(domain).depth as usize + 1);
            out.config.extend_from_slice(entry);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpreter::started;

    fn preview(inst: &Instance, event: &str) -> Option<Preview> {
        let mut p = Preview::default();
        let class = inst.chart().event_class(event)?;
        inst.preview(class, &mut p).then_some(p)
    }

    #[test]
    fn an_assignment_reads_the_ones_before_it() {
        let inst = started(
            r#"Machine(id: "t", context: {"a": 1, "b": 0}, initial: "s", states: {"s": (on: {
                "GO": (actions: [Assign("a", "a * 10"), Assign("b", "a + 1"), Assign("a", "b")]),
            })})"#,
        );
        let p = preview(&inst, "GO").unwrap();
        assert_eq!(p.assigned(0), Some(11));
        assert_eq!(p.assigned(1), Some(11));
        assert_eq!(p.assigned, vec![(0, 10), (1, 11), (0, 11)]);
        // Targetless: the configuration stays.
        assert_eq!(p.config, inst.core.config);
    }

    #[test]
    fn a_false_guard_is_an_ignored_event_and_the_rest_is_left_to_the_step() {
        let inst = started(
            r#"Machine(id: "t", context: {"n": 0, "s": "x"}, initial: "a", states: {
                "a": (on: {
                    "GO": (guard: "n > 0", target: "b"),
                    "OK": (target: "c", actions: [Assign("n", "n - 1")]),
                    "LOG": (target: "c", actions: [Log("n")]),
                    "STR": (target: "c", actions: [Assign("n", "s + 1")]),
                    "MAX": (target: "c", actions: [Assign("n", "9223372036854775807 + 1")]),
                    "ENTRY": "b",
                    "END": "done",
                }),
                "b": (entry: [Assign("n", "1")]),
                "c": (),
                "done": (kind: Final),
            })"#,
        );
        let p = preview(&inst, "GO").unwrap();
        assert_eq!((p.taken, p.assigned.len()), (None, 0));
        assert_eq!(preview(&inst, "OK").unwrap().assigned, vec![(0, -1)]);
        // Other actions, values a kernel cannot decide, an overflow, entry content and a
        // final state are the interpreter's to work out.
        for event in ["LOG", "STR", "MAX", "ENTRY", "END"] {
            assert!(preview(&inst, event).is_none(), "{event}");
        }
    }
}
