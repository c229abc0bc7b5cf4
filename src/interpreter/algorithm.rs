//! The SCXML 1.0 interpretation algorithm (Appendix D), function by function.
//!
//! Names follow the specification: `select_transitions` is `selectTransitions`,
//! `remove_conflicting_transitions` is `removeConflictingTransitions`, and so on, so the two
//! can be read side by side.

use super::{Core, Effect, Event, EventKind, RunError, Status, Trace};
use crate::chart::kernel::Kernel;
use crate::chart::{Chart, EventClass, Kind, State, StateId, TransitionId};
use crate::model::{HistoryDepth, Json};
use std::borrow::Cow;

impl Core {
    /// Enters the root and its default descendants (the initial transition of `<scxml>`).
    pub(super) fn enter_initial(&mut self, chart: &Chart) {
        let mut to_enter = Vec::new();
        chart.add_descendant_states_to_enter(StateId::ROOT, &self.cold().history, &mut to_enter);
        self.enter_states(chart, &mut to_enter);
        self.record(|| Trace::Microstep {
            event: None,
            transitions: Vec::new(),
            exited: Vec::new(),
            entered: to_enter,
        });
    }

    /// The macrostep loop: eventless transitions first, then internal events, until stable.
    pub(super) fn macrostep(&mut self, chart: &Chart) -> Result<(), RunError> {
        let span = tracing::debug_span!("macrostep", now = self.now);
        let _g = span.enter();
        self.run_macrostep(chart)
    }

    /// The body of [`Core::macrostep`], inside the caller's span.
    #[inline(always)]
    fn run_macrostep(&mut self, chart: &Chart) -> Result<(), RunError> {
        // Nothing eventless, raised or to invoke: stable already.
        if !chart.has_eventless
            && self.cold().internal.is_empty()
            && self.cold().to_invoke.is_empty()
        {
            return Ok(());
        }
        self.run_to_stable(chart)
    }

    fn run_to_stable(&mut self, chart: &Chart) -> Result<(), RunError> {
        let mut microsteps = 0usize;
        let mut recent = std::mem::take(&mut self.cold_mut().scratch.recent);
        recent.clear();
        let result = loop {
            if let Err(e) = self.run_to_stability(chart, &mut microsteps, &mut recent) {
                break Err(e);
            }
            self.start_invokes(chart);
            // Starting invokes can raise `error.execution`; that is handled before the
            // macrostep ends.
            if self.cold().internal.is_empty() || self.status != Status::Running {
                break Ok(());
            }
        };
        self.cold_mut().scratch.recent = recent;
        result
    }

    fn run_to_stability(
        &mut self,
        chart: &Chart,
        microsteps: &mut usize,
        recent: &mut Vec<TransitionId>,
    ) -> Result<(), RunError> {
        while self.status == Status::Running {
            // Charts without eventless transitions skip the eventless pass altogether.
            let mut enabled = if chart.has_eventless {
                self.select_transitions(chart, None)
            } else {
                self.empty_enabled()
            };
            let mut eventless = true;
            if enabled.is_empty() {
                eventless = false;
                self.cold_mut().scratch.enabled = enabled;
                let Some(event) = self.cold_mut().internal.pop_front() else {
                    break;
                };
                enabled = self.select_transitions(chart, Some(&event));
                self.current = Some(event);
                if enabled.is_empty() {
                    self.cold_mut().scratch.enabled = enabled;
                    let name = self
                        .current
                        .as_ref()
                        .map(|e| e.name.clone())
                        .unwrap_or_else(|| "".into());
                    self.record(|| Trace::Ignored { event: name });
                    continue;
                }
            }
            *microsteps += 1;
            if recent.len() >= 64 {
                recent.drain(..32);
            }
            recent.extend(&enabled);
            if *microsteps > self.cold().limits.microsteps {
                return Err(self.fail_loop(chart, recent));
            }
            self.microstep(chart, &enabled, eventless);
            self.cold_mut().scratch.enabled = enabled;
        }
        Ok(())
    }

    /// Stops the instance on a runaway macrostep, naming the transitions that looped.
    fn fail_loop(&mut self, chart: &Chart, recent: &[TransitionId]) -> RunError {
        let mut ids: Vec<TransitionId> = recent.to_vec();
        ids.sort();
        ids.dedup();
        let looping = ids
            .iter()
            .map(|&t| {
                let t = chart.transition(t);
                let line = chart.source.line_col(t.span.start).line;
                format!(
                    "{} in `{}` (line {line})",
                    t.trigger,
                    chart.state(t.source).display_path()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let err = RunError::MicrostepLimit {
            limit: self.cold().limits.microsteps,
            looping,
        };
        tracing::error!(%err, "instance stopped");
        self.status = Status::Failed(err.to_string());
        err
    }

    /// Processes one external event: `selectTransitions`, a microstep, then the macrostep.
    #[inline]
    pub(super) fn process_external(
        &mut self,
        chart: &Chart,
        event: Cow<'_, Event>,
    ) -> Result<(), RunError> {
        if self.status == Status::Running
            && let Some(chosen) = self.quick_select(chart, &event)
        {
            return self.quick_macrostep(chart, event, chosen);
        }
        self.process_general(chart, event)
    }

    /// The macrostep of an external event whose transition [`Core::quick_select`] chose.
    fn quick_macrostep(
        &mut self,
        chart: &Chart,
        event: Cow<'_, Event>,
        chosen: Option<TransitionId>,
    ) -> Result<(), RunError> {
        let span = tracing::debug_span!("macrostep", now = self.now);
        let _g = span.enter();
        // `event` in expressions reads the current event, and so do the general microstep's
        // records: a plain microstep in a chart that never names it does not need it kept
        // (nor the caller's event cloned).
        let plain = chosen.is_some_and(|t| chart.transition(t).plain);
        if chart.reads_event || (chosen.is_some() && !plain) {
            self.current = Some(event.into_owned());
        }
        // `quick_select` ruled out a trace, so a plain transition needs no further check.
        match chosen {
            Some(t) if plain => self.plain_microstep(chart, t),
            Some(t) => self.microstep(chart, &[t], false),
            None => {}
        }
        self.run_macrostep(chart)
    }

    /// `process_external` by the general algorithm.
    #[inline(never)]
    fn process_general(&mut self, chart: &Chart, event: Cow<'_, Event>) -> Result<(), RunError> {
        if self.status != Status::Running {
            self.record(|| Trace::Ignored {
                event: event.name.clone(),
            });
            return Ok(());
        }
        if let Some(cold) = &mut self.cold {
            for (state, id) in &cold.invoked {
                let auto = chart
                    .state(*state)
                    .invokes
                    .iter()
                    .any(|i| &i.id == id && i.auto_forward);
                if auto {
                    cold.effects.push(Effect::SendToInvoke {
                        invoke: id.clone(),
                        event: event.clone().into_owned(),
                    });
                }
            }
        }
        let enabled = self.select_transitions(chart, Some(&event));
        self.current = Some(event.into_owned());
        if enabled.is_empty() {
            let name = self
                .current
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or_else(|| "".into());
            self.record(|| Trace::Ignored { event: name });
        } else {
            self.microstep(chart, &enabled, false);
        }
        self.cold_mut().scratch.enabled = enabled;
        self.macrostep(chart)
    }

    /// `selectTransitions` for an external event in the commonest case, decided without
    /// changing anything: a chart without parallel states (so the one active atomic state is
    /// the last of the configuration) or eventless transitions, nothing traced, forwarded or
    /// queued, context slots in place, an event name some descriptor spells, no `*`
    /// descriptor in the active state's chain, and guards that integer kernels decide.
    /// `Some(None)`: no transition is enabled. `None`: the general selection must decide.
    fn quick_select(&self, chart: &Chart, event: &Event) -> Option<Option<TransitionId>> {
        if !self.quick_ready(chart) {
            return None;
        }
        let class = chart.event_class(&event.name)?;
        let leaf = chart.state(*self.config.last()?);
        self.quick_choose(chart, leaf, class)
    }

    /// Whether [`Core::quick_select`] may decide in this state, whatever the event.
    pub(super) fn quick_ready(&self, chart: &Chart) -> bool {
        !(chart.has_parallel
            || chart.has_eventless
            || self
                .cold
                .as_ref()
                .is_some_and(|c| c.trace.is_some() || !c.invoked.is_empty())
            || !self.cold().internal.is_empty()
            || !self.slots_ok)
    }

    /// [`Core::quick_select`] for an event of class `class`, where [`Core::quick_ready`]
    /// holds and `leaf` is the active atomic state.
    #[inline]
    pub(super) fn quick_choose(
        &self,
        chart: &Chart,
        leaf: &State,
        class: EventClass,
    ) -> Option<Option<TransitionId>> {
        for &t in leaf.candidates(class)? {
            let holds = match chart.transition(t).guard {
                None => true,
                Some(g) => match &chart.expr(g).kernel {
                    Some(Kernel::Bool(k)) => k.eval(&self.context)?,
                    _ => return None,
                },
            };
            if holds {
                return Some(Some(t));
            }
        }
        Some(None)
    }

    /// Processes the immediate sends to `#self`, each as an external event.
    #[inline(always)]
    pub(super) fn drain_self_sends(&mut self, chart: &Chart) -> Result<(), RunError> {
        if self.cold.as_ref().is_none_or(|c| c.external.is_empty()) {
            return Ok(());
        }
        self.drain_queued_self_sends(chart)
    }

    fn drain_queued_self_sends(&mut self, chart: &Chart) -> Result<(), RunError> {
        let mut n = 0;
        while let Some(e) = self.cold.as_mut().and_then(|c| c.external.pop_front()) {
            n += 1;
            let limit = self.cold().limits.self_sends;
            if n > limit {
                self.cold_mut().external.clear();
                let err = RunError::MicrostepLimit {
                    limit,
                    looping: format!("`Send` of `{}` to #self, again and again", e.name),
                };
                self.status = Status::Failed(err.to_string());
                return Err(err);
            }
            self.process_external(chart, Cow::Owned(e))?;
        }
        Ok(())
    }

    /// `selectTransitions` / `selectEventlessTransitions`: for each active atomic state in
    /// document order, the first enabled transition of it or its nearest ancestor.
    pub(super) fn select_transitions(
        &mut self,
        chart: &Chart,
        event: Option<&Event>,
    ) -> Vec<TransitionId> {
        let mut enabled = self.empty_enabled();
        let class = event.and_then(|e| chart.event_class(&e.name));
        // Index loop: guards may raise errors (the internal queue), never change the configuration.
        for i in 0..self.config.len() {
            let s = self.config[i];
            let st = chart.state(s);
            if !st.is_atomic() || (event.is_none() && !st.eventless_in_chain) {
                continue;
            }
            // The transitions matched at load for this event's class, or else the state's
            // transitions then its ancestors', nearest first, matched here.
            let (order, matched) = match class.and_then(|c| st.candidates(c)) {
                Some(candidates) => (candidates, true),
                None => (&st.selection_order[..], false),
            };
            for &t in order {
                let tr = chart.transition(t);
                let matches = matched
                    || match event {
                        None => tr.is_eventless(),
                        Some(e) => tr.events.iter().any(|d| d.matches(&e.name)),
                    };
                if matches && self.guard_holds(chart, tr.guard, event) {
                    if !enabled.contains(&t) {
                        enabled.push(t);
                    }
                    break;
                }
            }
        }
        if enabled.len() > 1 {
            enabled = self.remove_conflicting_transitions(chart, enabled);
        }
        enabled
    }

    /// The reused buffer for enabled transitions, emptied.
    fn empty_enabled(&mut self) -> Vec<TransitionId> {
        let mut enabled = std::mem::take(&mut self.cold_mut().scratch.enabled);
        enabled.clear();
        enabled
    }

    /// Evaluates a guard; a failing guard counts as false and raises `error.execution`.
    fn guard_holds(
        &mut self,
        chart: &Chart,
        guard: Option<crate::chart::ExprId>,
        event: Option<&Event>,
    ) -> bool {
        let Some(g) = guard else { return true };
        let result = {
            let current = event.or(self.current.as_ref());
            self.eval_bool_with(chart, g, current)
        };
        match result {
            Ok(b) => b,
            Err(message) => {
                self.raise_error(message);
                false
            }
        }
    }

    /// `removeConflictingTransitions`: of two transitions whose exit sets intersect, the one
    /// whose source is a descendant wins; otherwise the earlier in document order.
    pub(super) fn remove_conflicting_transitions(
        &self,
        chart: &Chart,
        enabled: Vec<TransitionId>,
    ) -> Vec<TransitionId> {
        if enabled.len() < 2 {
            return enabled;
        }
        let mut filtered: Vec<(TransitionId, Vec<StateId>)> = Vec::new();
        for t1 in enabled {
            let mut exit1 = Vec::new();
            self.compute_exit_set(chart, &[t1], &mut exit1);
            let mut preempted = false;
            let mut to_remove = Vec::new();
            for (i, (t2, exit2)) in filtered.iter().enumerate() {
                if exit1.iter().any(|s| exit2.contains(s)) {
                    if chart
                        .is_descendant(chart.transition(t1).source, chart.transition(*t2).source)
                    {
                        to_remove.push(i);
                    } else {
                        preempted = true;
                        break;
                    }
                }
            }
            if !preempted {
                for i in to_remove.into_iter().rev() {
                    filtered.remove(i);
                }
                filtered.push((t1, exit1));
            }
        }
        filtered.into_iter().map(|(t, _)| t).collect()
    }

    /// `microstep`: exit, transition content, entry.
    fn microstep(&mut self, chart: &Chart, enabled: &[TransitionId], eventless: bool) {
        if let [t] = enabled
            && self.cold().trace.is_none()
            && chart.transition(*t).plain
        {
            return self.plain_microstep(chart, *t);
        }
        if let Some(o) = self.observed.as_mut() {
            o.taken.extend_from_slice(enabled);
        }
        // The microstep's record goes before what its content records (sends, logs, errors).
        let mark = self.cold().trace.as_ref().map_or(0, Vec::len);
        // A domain that depends on history is taken before the exit, which records new
        // history: entry must use the same one, or states exited above a domain recomputed
        // from the new values would not be entered again (a transition from inside a
        // parallel state to that state's own deep history left it inactive).
        let domains: Vec<Option<StateId>> = if enabled
            .iter()
            .all(|&t| chart.transition(t).static_entry.is_some())
        {
            Vec::new()
        } else {
            enabled
                .iter()
                .map(|&t| self.transition_domain(chart, t))
                .collect()
        };
        let mut exited = std::mem::take(&mut self.cold_mut().scratch.exit);
        self.exit_states(chart, enabled, &mut exited);
        for &t in enabled {
            self.run_block(chart, &chart.transition(t).actions);
        }
        let mut entered = std::mem::take(&mut self.cold_mut().scratch.enter);
        self.enter_states_for(chart, enabled, &domains, &mut entered);
        let event = if eventless {
            None
        } else {
            self.current.as_ref().map(|e| e.name.clone())
        };
        tracing::trace!(event = ?event, transitions = ?enabled, "microstep");
        if let Some(t) = &mut self.cold_mut().trace {
            let step = Trace::Microstep {
                event,
                transitions: enabled.to_vec(),
                exited: exited.clone(),
                entered: entered.clone(),
            };
            t.insert(mark.min(t.len()), step);
        }
        let scratch = &mut self.cold_mut().scratch;
        scratch.exit = exited;
        scratch.enter = entered;
    }

    /// The microstep of one [`crate::chart::Transition::plain`] transition: the exit set is
    /// the active descendants of its domain (a run of the sorted configuration) and nothing
    /// runs on exit or entry, so exit and entry are edits of the configuration around the
    /// transition's actions.
    fn plain_microstep(&mut self, chart: &Chart, t: TransitionId) {
        let tr = chart.transition(t);
        if let Some(o) = self.observed.as_mut() {
            o.taken.push(t);
        }
        tracing::trace!(transition = t.0, "microstep");
        let (Some(domain), Some(entry)) = (tr.static_domain, &tr.static_entry) else {
            return self.run_block(chart, &tr.actions);
        };
        // Without parallel states the configuration is the chain from the root, one state
        // per depth, so the domain's descendants start right after it.
        let (from, to) = if chart.has_parallel {
            self.active_descendants(chart, domain)
        } else {
            (chart.state(domain).depth as usize + 1, self.config.len())
        };
        for &s in &self.config[from..to] {
            self.active[s.index()] = false;
        }
        self.run_block(chart, &tr.actions);
        // The entry set lies below the domain too: it takes the exit set's place in order.
        if to == self.config.len() {
            self.config.truncate(from);
            // One or two states, typically: pushed one by one rather than copied.
            for &s in entry {
                self.active[s.index()] = true;
                self.config.push(s);
            }
        } else {
            for &s in entry {
                self.active[s.index()] = true;
            }
            self.config.splice(from..to, entry.iter().copied());
        }
    }

    /// Where the active proper descendants of `domain` sit in the sorted configuration: the
    /// ids in (domain, last_descendant].
    fn active_descendants(&self, chart: &Chart, domain: StateId) -> (usize, usize) {
        let last = chart.state(domain).last_descendant;
        (
            self.config.partition_point(|&s| s <= domain),
            self.config.partition_point(|&s| s <= last),
        )
    }

    /// `computeExitSet`: the active proper descendants of each transition's domain, into
    /// `out` in document order.
    pub(super) fn compute_exit_set(
        &self,
        chart: &Chart,
        transitions: &[TransitionId],
        out: &mut Vec<StateId>,
    ) {
        out.clear();
        for &t in transitions {
            if chart.transition(t).targets.is_empty() {
                continue;
            }
            if let Some(domain) = self.transition_domain(chart, t) {
                let (from, to) = self.active_descendants(chart, domain);
                for &s in &self.config[from..to] {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        if transitions.len() > 1 {
            out.sort();
        }
    }

    /// `getTransitionDomain`: the state whose descendants the transition exits and enters
    /// (precomputed unless it depends on history).
    fn transition_domain(&self, chart: &Chart, t: TransitionId) -> Option<StateId> {
        let tr = chart.transition(t);
        if tr.static_entry.is_some() {
            return tr.static_domain;
        }
        chart.transition_domain(t, &self.effective_target_states(chart, t))
    }

    /// `getEffectiveTargetStates`: targets with history states replaced by what they restore.
    fn effective_target_states<'c>(&self, chart: &'c Chart, t: TransitionId) -> Cow<'c, [StateId]> {
        let tr = chart.transition(t);
        // A static entry set means no target is a history state.
        if tr.static_entry.is_some() {
            return Cow::Borrowed(&tr.targets);
        }
        let mut out = Vec::new();
        for &s in &tr.targets {
            if chart.state(s).is_history() {
                match self.cold().history.get(&s) {
                    Some(hv) => out.extend(hv.iter().copied()),
                    None => out.extend(chart.state(s).history_default.iter().copied()),
                }
            } else {
                out.push(s);
            }
        }
        Cow::Owned(out)
    }

    /// `exitStates`: records history, runs `exit` content deepest first, cancels `after`
    /// timers and invokes. Returns the states exited, in exit order.
    fn exit_states(&mut self, chart: &Chart, enabled: &[TransitionId], to_exit: &mut Vec<StateId>) {
        self.compute_exit_set(chart, enabled, to_exit);
        to_exit.reverse(); // exit order: reverse document order
        for &s in to_exit.iter() {
            if !chart.state(s).has_history {
                continue;
            }
            for &h in &chart.state(s).children {
                if let Kind::History(depth) = chart.state(h).kind {
                    let recorded: Vec<StateId> = self
                        .config
                        .iter()
                        .copied()
                        .filter(|&x| match depth {
                            HistoryDepth::Deep => {
                                chart.state(x).is_atomic() && chart.is_descendant(x, s)
                            }
                            HistoryDepth::Shallow => chart.state(x).parent == Some(s),
                        })
                        .collect();
                    self.cold_mut().history.insert(h, recorded);
                }
            }
        }
        for &s in to_exit.iter() {
            self.exit_one(chart, s);
        }
    }

    /// Leaves one state: `exit` content, timers, invokes, configuration.
    fn exit_one(&mut self, chart: &Chart, s: StateId) {
        let state = chart.state(s);
        self.run_block(chart, &state.exit);
        for a in &state.after {
            self.cold_mut()
                .timers
                .retain(|t| t.sendid.as_deref() != Some(a.send_id.as_str()));
        }
        let cold = self.cold_mut();
        let effects = &mut cold.effects;
        cold.invoked.retain(|(owner, id)| {
            if *owner == s {
                effects.push(Effect::CancelInvoke { id: id.clone() });
                false
            } else {
                true
            }
        });
        cold.to_invoke.retain(|&x| x != s);
        self.deactivate(s);
    }

    /// `enterStates` for a set of transitions: `computeEntrySet`, then entry in document order.
    fn enter_states_for(
        &mut self,
        chart: &Chart,
        enabled: &[TransitionId],
        domains: &[Option<StateId>],
        to_enter: &mut Vec<StateId>,
    ) {
        to_enter.clear();
        // One transition whose entry set does not depend on history: computed at load.
        if let [t] = enabled
            && let Some(entry) = &chart.transition(*t).static_entry
        {
            to_enter.extend_from_slice(entry);
            return self.enter_states(chart, to_enter);
        }
        for (n, &t) in enabled.iter().enumerate() {
            let tr = chart.transition(t);
            for &s in &tr.targets {
                chart.add_descendant_states_to_enter(s, &self.cold().history, to_enter);
            }
            let ancestor = match domains.get(n) {
                Some(&d) => d,
                None => self.transition_domain(chart, t),
            };
            for &s in self.effective_target_states(chart, t).iter() {
                chart.add_ancestor_states_to_enter(s, ancestor, &self.cold().history, to_enter);
            }
        }
        self.enter_states(chart, to_enter);
    }

    /// Enters the given states in document order, with `entry` content, `after` timers, and
    /// `done.state.*` events for final states.
    fn enter_states(&mut self, chart: &Chart, to_enter: &mut Vec<StateId>) {
        to_enter.sort();
        to_enter.dedup();
        to_enter.retain(|&s| !self.active[s.index()]);
        for &s in to_enter.iter() {
            self.activate(s);
            if !chart.state(s).invokes.is_empty() {
                self.cold_mut().to_invoke.push(s);
            }
            let state = chart.state(s);
            self.run_block(chart, &state.entry);
            for a in &state.after {
                let event = Event::new(a.event.clone(), Json::Null, EventKind::External);
                self.schedule(
                    a.delay.0,
                    Some(a.send_id.clone()),
                    event,
                    crate::chart::SendTarget::ToSelf,
                );
            }
            if state.kind == Kind::Final {
                let parent = state.parent.unwrap_or(StateId::ROOT);
                let data = state.output.map(|o| {
                    self.eval(chart, o).unwrap_or_else(|e| {
                        self.raise_error(e);
                        Json::Null
                    })
                });
                if parent == StateId::ROOT {
                    self.cold_mut().output = Some(data.unwrap_or(Json::Null));
                    self.finish(chart);
                    break;
                }
                let parent_path = chart.state(parent).path.clone();
                self.raise(
                    format!("done.state.{parent_path}"),
                    data.unwrap_or(Json::Null),
                );
                if let Some(gp) = chart.state(parent).parent
                    && chart.state(gp).kind == Kind::Parallel
                    && chart
                        .state(gp)
                        .children
                        .iter()
                        .all(|&c| chart.state(c).is_history() || self.is_in_final_state(chart, c))
                {
                    let gp_path = chart.state(gp).path.clone();
                    self.raise(format!("done.state.{gp_path}"), Json::Null);
                }
            }
        }
    }

    /// The machine reached a top-level final state: run the remaining `exit` content and stop
    /// invokes (SCXML `exitInterpreter`), keeping the configuration for reporting.
    fn finish(&mut self, chart: &Chart) {
        self.status = Status::Done;
        let active: Vec<StateId> = self.config.iter().rev().copied().collect();
        for s in active {
            self.run_block(chart, &chart.state(s).exit);
        }
        let cold = self.cold_mut();
        for (_, id) in std::mem::take(&mut cold.invoked) {
            cold.effects.push(Effect::CancelInvoke { id });
        }
        cold.to_invoke.clear();
        cold.timers.clear();
        cold.external.clear();
        self.cold_mut().internal.clear();
        tracing::info!(machine = %chart.id, "done");
    }

    /// `isInFinalState`.
    fn is_in_final_state(&self, chart: &Chart, s: StateId) -> bool {
        let st = chart.state(s);
        match st.kind {
            Kind::Compound => st
                .children
                .iter()
                .any(|&c| chart.state(c).kind == Kind::Final && self.active[c.index()]),
            Kind::Parallel => st
                .children
                .iter()
                .all(|&c| chart.state(c).is_history() || self.is_in_final_state(chart, c)),
            _ => false,
        }
    }

    /// Starts the invokes of the states entered in this macrostep that are still active.
    fn start_invokes(&mut self, chart: &Chart) {
        if self.cold().to_invoke.is_empty() {
            return;
        }
        let states = std::mem::take(&mut self.cold_mut().to_invoke);
        for s in states {
            if !self.active[s.index()] {
                continue;
            }
            for inv in &chart.state(s).invokes {
                let input = match inv.input {
                    Some(e) => match self.eval(chart, e) {
                        Ok(v) => Some(v),
                        Err(message) => {
                            self.raise_error(format!(
                                "invoke `{}` not started: input failed: {message}",
                                inv.id
                            ));
                            continue;
                        }
                    },
                    None => None,
                };
                let cold = self.cold_mut();
                cold.invoked.push((s, inv.id.clone()));
                cold.effects.push(Effect::Invoke {
                    id: inv.id.clone(),
                    state: s,
                    src: inv.src.clone(),
                    input,
                });
            }
        }
    }

    fn activate(&mut self, s: StateId) {
        self.active[s.index()] = true;
        let at = self.config.partition_point(|&x| x < s);
        self.config.insert(at, s);
    }

    fn deactivate(&mut self, s: StateId) {
        self.active[s.index()] = false;
        if let Ok(at) = self.config.binary_search(&s) {
            self.config.remove(at);
        }
    }

    /// Appends to the internal queue.
    pub(super) fn raise(&mut self, name: String, data: Json) {
        self.cold_mut()
            .internal
            .push_back(Event::new(name, data, EventKind::Internal));
    }

    /// Raises `error.execution` with a message in `event.data.message`.
    pub(super) fn raise_error(&mut self, message: String) {
        tracing::warn!(%message, "error.execution");
        self.record(|| Trace::Error {
            message: message.clone(),
        });
        if let Some(o) = self.observed.as_mut() {
            o.errors.push(message.clone());
        }
        let data = serde_json::json!({ "message": message });
        self.cold_mut().internal.push_back(Event::new(
            "error.execution",
            data,
            EventKind::Platform,
        ));
    }

    pub(super) fn record(&mut self, f: impl FnOnce() -> Trace) {
        if let Some(t) = self.cold.as_mut().and_then(|c| c.trace.as_mut()) {
            t.push(f());
        }
    }
}
