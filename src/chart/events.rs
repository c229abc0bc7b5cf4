//! Descriptor matching done at load: every name a descriptor spells is an event class, and
//! each atomic state lists, per class, the transitions of its selection order that match it.
//!
//! Selection then costs one lookup of the name per event and a short scan per active atomic state
//! instead of matching every descriptor of every candidate by string. Names that no
//! descriptor spells, and states whose chain has a `*` descriptor, keep matching by string:
//! the tables only ever hold what string matching would find, in the same order.

use super::{Chart, Descriptor, TransitionId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An event name that some descriptor spells, as an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventClass(pub u32);

impl Chart {
    /// The class of an event name, when some descriptor spells it.
    #[inline]
    pub fn event_class(&self, name: &str) -> Option<EventClass> {
        // With a few classes, a scan beats hashing: names from `intern` match by address,
        // others by length and then bytes.
        if self.class_names.len() <= 8 {
            // Fat pointers: the same address and the same length.
            let by_address = |n: &Arc<str>| std::ptr::eq(&**n, name);
            return (self.class_names.iter().position(by_address))
                .or_else(|| self.class_names.iter().position(|n| **n == *name))
                .map(|i| EventClass(i as u32));
        }
        (self.class_names.binary_search_by(|n| (**n).cmp(name)).ok()).map(|i| EventClass(i as u32))
    }

    /// The chart's shared copy of an event name (a new one for names no descriptor spells):
    /// events named with it are classified without comparing text.
    ///
    /// ```
    /// # use orca::chart::{CompileOptions, load_chart_str};
    /// let (chart, _) = load_chart_str("m.ron", r#"Machine(states: { "a": (on: { "GO": "b" }), "b": () })"#,
    ///     &CompileOptions::default()).unwrap();
    /// let go = chart.intern("GO");
    /// assert!(std::sync::Arc::ptr_eq(&go, &chart.intern("GO")));
    /// // A slice of it is another name, not the same one.
    /// assert!(chart.event_class(&go[..1]).is_none());
    /// let event = orca::interpreter::Event::external(go);
    /// ```
    pub fn intern(&self, name: &str) -> Arc<str> {
        match self.event_class(name) {
            Some(c) => self.class_names[c.0 as usize].clone(),
            None => Arc::from(name),
        }
    }

    /// Builds the event classes and every atomic state's candidate table.
    pub(super) fn precompute_candidates(&mut self) {
        let mut names: Vec<&str> = self
            .transitions
            .iter()
            .flat_map(|t| t.events.iter())
            .filter_map(|d| match d {
                Descriptor::Prefix(n) | Descriptor::Exact(n) => Some(n.as_str()),
                Descriptor::Any => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        // Which classes each transition matches: a prefix descriptor's matches are a
        // contiguous run of the sorted names.
        let matching: Vec<Vec<EventClass>> = self
            .transitions
            .iter()
            .map(|t| {
                let mut out: Vec<EventClass> = Vec::new();
                for d in &t.events {
                    let (Descriptor::Prefix(p) | Descriptor::Exact(p)) = d else {
                        continue;
                    };
                    let from = names.partition_point(|n| *n < p.as_str());
                    for (i, n) in names[from..].iter().enumerate() {
                        if !n.starts_with(p.as_str()) {
                            break;
                        }
                        if d.matches(n) {
                            out.push(EventClass((from + i) as u32));
                        }
                    }
                }
                out.sort_unstable();
                out.dedup();
                out
            })
            .collect();
        self.class_names = names.iter().map(|n| Arc::from(*n)).collect();
        for s in 0..self.states.len() {
            if !self.states[s].is_atomic() {
                continue;
            }
            let order = &self.states[s].selection_order;
            let any = order.iter().any(|&t| {
                self.transitions[t.index()]
                    .events
                    .contains(&Descriptor::Any)
            });
            let mut table: BTreeMap<EventClass, Vec<TransitionId>> = BTreeMap::new();
            if !any {
                for &t in order {
                    for &c in &matching[t.index()] {
                        table.entry(c).or_default().push(t);
                    }
                }
            }
            let st = &mut self.states[s];
            st.selects_any = any;
            st.candidates = table.into_iter().collect();
        }
    }
}

impl super::State {
    /// The transitions of this atomic state's selection order that match events of class
    /// `c`, in selection order; `None` when the state must match by name (a `*` descriptor).
    #[inline]
    pub fn candidates(&self, c: EventClass) -> Option<&[TransitionId]> {
        if self.selects_any {
            return None;
        }
        let table = &self.candidates;
        let found = if table.len() <= 8 {
            table.iter().position(|(k, _)| *k == c)
        } else {
            table.binary_search_by_key(&c, |(k, _)| *k).ok()
        };
        Some(found.map_or(&[][..], |i| &table[i].1))
    }
}
