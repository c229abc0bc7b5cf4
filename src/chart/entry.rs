//! The entry-set part of the SCXML algorithm (`addDescendantStatesToEnter`,
//! `addAncestorStatesToEnter`): pure geometry of the chart plus the history values, so the
//! interpreter runs it at every microstep and the compiler runs it once, without history, to
//! precompute the entry sets that cannot depend on history.

use super::{Chart, Kind, StateId};
use std::collections::BTreeMap;

/// Recorded history values: history state → the states it restores.
pub type History = BTreeMap<StateId, Vec<StateId>>;

impl Chart {
    /// Stores the domain and entry set of every transition whose entry does not go through
    /// a history state (as a target, or as the `initial` of a state it enters): without
    /// history values they are fixed by the chart alone.
    ///
    /// Also marks the transitions that are [`super::Transition::plain`].
    pub(super) fn precompute_entry_sets(&mut self) {
        // Per state: whether exiting it and its descendants runs nothing and records no
        // history. Children come after their parent in document order: walk backwards.
        let mut plain_exit = vec![false; self.states.len()];
        for i in (0..self.states.len()).rev() {
            let st = &self.states[i];
            let own = st.exit.is_empty()
                && st.after.is_empty()
                && st.invokes.is_empty()
                && !st.has_history;
            plain_exit[i] = own && st.children.iter().all(|c| plain_exit[c.index()]);
        }
        let none = History::new();
        for i in 0..self.transitions.len() {
            let t = &self.transitions[i];
            if t.targets.iter().any(|&s| self.state(s).is_history()) {
                continue;
            }
            let domain = self.transition_domain(t.id, &t.targets);
            let mut entry = Vec::new();
            for &s in &t.targets {
                self.add_descendant_states_to_enter(s, &none, &mut entry);
            }
            for &s in &t.targets {
                self.add_ancestor_states_to_enter(s, domain, &none, &mut entry);
            }
            entry.sort();
            entry.dedup();
            // An `initial` may name a history state: then the entry set depends on history.
            let through_history = entry.iter().any(|&s| {
                self.state(s)
                    .initial
                    .is_some_and(|c| self.state(c).is_history())
            });
            if through_history {
                continue;
            }
            let exits_plain =
                domain.is_none_or(|d| self.state(d).children.iter().all(|c| plain_exit[c.index()]));
            let enters_plain = entry.iter().all(|&s| {
                let st = self.state(s);
                st.entry.is_empty()
                    && st.after.is_empty()
                    && st.invokes.is_empty()
                    && st.kind != Kind::Final
            });
            self.transitions[i].plain = exits_plain && enters_plain;
            self.transitions[i].static_domain = domain;
            self.transitions[i].static_entry = Some(entry);
        }
    }

    /// `addDescendantStatesToEnter`, with the recorded `history` (state → what it restores).
    pub fn add_descendant_states_to_enter(
        &self,
        s: StateId,
        history: &History,
        to_enter: &mut Vec<StateId>,
    ) {
        let state = self.state(s);
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
                    if self.state(child).is_history() {
                        continue;
                    }
                    if !to_enter.iter().any(|&x| self.is_descendant(x, child)) {
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
        for anc in self.ancestors(s) {
            if Some(anc) == ancestor {
                break;
            }
            if !to_enter.contains(&anc) {
                to_enter.push(anc);
            }
            if self.state(anc).kind == Kind::Parallel {
                for &child in &self.state(anc).children {
                    if self.state(child).is_history() {
                        continue;
                    }
                    if !to_enter
                        .iter()
                        .any(|&x| x == child || self.is_descendant(x, child))
                    {
                        self.add_descendant_states_to_enter(child, history, to_enter);
                    }
                }
            }
        }
    }
}
