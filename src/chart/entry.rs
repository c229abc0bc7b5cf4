//! The entry-set part of the SCXML algorithm (`addDescendantStatesToEnter`,
//! `addAncestorStatesToEnter`): pure geometry of the chart plus the history values, so the
//! interpreter runs it at every microstep and the compiler runs it once, without history, to
//! precompute the entry sets that cannot depend on history.

use super::{Chart, Kind, StateId};
use std::collections::BTreeMap;

/// Recorded history values: history state → the states it restores.
pub type History = BTreeMap<StateId, Vec<StateId>>;

impl Chart {
    /// `addDescendantStatesToEnter`, with the recorded `history` (state → what it restores).
    pub fn add_descendant_states_to_enter(
        &self,
        s: StateId,
        history: &History,
        to_enter: &mut Vec<StateId>,
    ) {
        let chart = self;
        let state = chart.state(s);
        if state.is_history() {
            let restore: Vec<StateId> = match history.get(&s) {
                Some(hv) => hv.clone(),
                None => state.history_default.clone(),
            };
            let parent = state.parent;
            for &r in &restore {
                self.add_descendant_states_to_enter(r, history, to_enter);
            }
            for &r in &restore {
                self.add_ancestor_states_to_enter(r, parent, history, to_enter);
            }
            return;
        }
        if !to_enter.contains(&s) {
            to_enter.push(s);
        }
        match state.kind {
            Kind::Compound => {
                if let Some(init) = state.initial {
                    self.add_descendant_states_to_enter(init, history, to_enter);
                    self.add_ancestor_states_to_enter(init, Some(s), history, to_enter);
                }
            }
            Kind::Parallel => {
                for &child in &state.children {
                    if chart.state(child).is_history() {
                        continue;
                    }
                    if !to_enter.iter().any(|&x| chart.is_descendant(x, child)) {
                        self.add_descendant_states_to_enter(child, history, to_enter);
                    }
                }
            }
            _ => {}
        }
    }

    /// `addAncestorStatesToEnter`: the proper ancestors of `s` below `ancestor` (all of them
    /// when `None`), filling in the other regions of parallel ones.
    pub fn add_ancestor_states_to_enter(
        &self,
        s: StateId,
        ancestor: Option<StateId>,
        history: &History,
        to_enter: &mut Vec<StateId>,
    ) {
        let chart = self;
        for anc in chart.ancestors(s) {
            if Some(anc) == ancestor {
                break;
            }
            if !to_enter.contains(&anc) {
                to_enter.push(anc);
            }
            if chart.state(anc).kind == Kind::Parallel {
                for &child in &chart.state(anc).children {
                    if chart.state(child).is_history() {
                        continue;
                    }
                    if !to_enter
                        .iter()
                        .any(|&x| x == child || chart.is_descendant(x, child))
                    {
                        self.add_descendant_states_to_enter(child, history, to_enter);
                    }
                }
            }
        }
    }
}
