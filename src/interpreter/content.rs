//! Executable content (SCXML 4) and expression evaluation in an instance.

use super::eval::{self, Scope};
use super::{Core, Effect, Event, EventKind, Timer, Trace};
use crate::chart::fast::{self, Val};
use crate::chart::kernel::Kernel;
use crate::chart::{Chart, ExprId, Op, SendTarget, StateId};
use crate::model::{DurationMs, Json};
use indexmap::IndexMap;
use std::borrow::Cow;

impl Core {
    /// Runs a block; on the first failure the rest is skipped and `error.execution` raised.
    pub(super) fn run_block(&mut self, chart: &Chart, ops: &[Op]) {
        if ops.is_empty() {
            return;
        }
        if let Err(message) = self.run_ops(chart, ops) {
            self.raise_error(message);
        }
    }

    fn run_ops(&mut self, chart: &Chart, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            self.run_op(chart, op)?;
        }
        Ok(())
    }

    fn run_op(&mut self, chart: &Chart, op: &Op) -> Result<(), String> {
        match op {
            Op::Raise { event, data } => {
                let data = self.eval_opt(chart, *data)?;
                self.raise(event.clone(), data);
            }
            Op::Send {
                event,
                data,
                delay,
                delay_expr,
                id,
                to,
            } => {
                let data = self.eval_opt(chart, *data)?;
                let delay = match (delay, delay_expr) {
                    (Some(d), _) => Some(d.0),
                    (None, Some(e)) => Some(self.eval_delay(chart, *e)?),
                    (None, None) => None,
                };
                let mut ev = Event::new(event.clone(), data, EventKind::External);
                if id.is_some() {
                    ev.meta_mut().sendid = id.clone();
                }
                if let SendTarget::Invoke(inv) = to
                    && !self.cold().invoked.iter().any(|(_, i)| i == inv)
                {
                    return Err(format!(
                        "`Send` of `{event}` to `{inv}`: no such invoke is active"
                    ));
                }
                match delay {
                    Some(ms) if ms > 0 => self.schedule(ms, id.clone(), ev, to.clone()),
                    _ => {
                        self.record(|| Trace::Sent {
                            event: ev.name.clone(),
                            to: to.to_string(),
                            due: None,
                        });
                        match to {
                            SendTarget::ToSelf => self.cold_mut().external.push_back(ev),
                            SendTarget::Parent => self
                                .cold_mut()
                                .effects
                                .push(Effect::SendToParent { event: ev }),
                            SendTarget::Invoke(inv) => {
                                self.cold_mut().effects.push(Effect::SendToInvoke {
                                    invoke: inv.clone(),
                                    event: ev,
                                })
                            }
                        }
                    }
                }
            }
            Op::Cancel(id) => {
                self.cold_mut()
                    .timers
                    .retain(|t| t.sendid.as_deref() != Some(id.as_str()));
                self.record(|| Trace::Cancelled { sendid: id.clone() });
            }
            // The hot case, an integer into a declared top-level name, written in place
            // (measured: the general arm's `Json` round trip costs about 30 instructions an
            // event in hier3).
            Op::Assign {
                location,
                slot: Some(slot),
                value,
            } if location.len() == 1
                && self.slots_ok
                && let Some(Kernel::Int(k)) = &chart.expr(*value).kernel
                && let Some(v) = k.eval(&self.context) =>
            {
                if let Some((_, cell)) = self.context.get_index_mut(*slot) {
                    match cell {
                        Json::Number(n) => *n = v.into(),
                        other => *other = Json::from(v),
                    }
                }
            }
            Op::Assign {
                location,
                slot,
                value,
            } => {
                let v = self.eval(chart, *value)?;
                self.assign(location, *slot, v)?;
            }
            Op::Log { label, expr } => {
                let value = self.eval(chart, *expr)?;
                tracing::info!(label = label.as_deref().unwrap_or(""), %value, "log");
                self.cold_mut().effects.push(Effect::Log {
                    label: label.clone(),
                    value,
                });
            }
            Op::If {
                branches,
                otherwise,
            } => {
                for (guard, then) in branches {
                    if self.eval_bool_with(chart, *guard, None)? {
                        return self.run_ops(chart, then);
                    }
                }
                return self.run_ops(chart, otherwise);
            }
            Op::Foreach {
                items,
                item,
                index,
                body,
            } => {
                let items: Vec<Json> = match self.eval(chart, *items)? {
                    Json::Array(a) => a,
                    Json::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
                    other => {
                        return Err(format!(
                            "`Foreach` items must be a list or a map, not {}",
                            eval::type_name(&other)
                        ));
                    }
                };
                if items.len() > self.cold().limits.foreach_items {
                    return Err(format!(
                        "`Foreach` over {} items exceeds the limit of {}",
                        items.len(),
                        self.cold().limits.foreach_items
                    ));
                }
                for (i, v) in items.into_iter().enumerate() {
                    self.context.insert(item.clone(), v);
                    if let Some(index) = index {
                        self.context.insert(index.clone(), Json::from(i));
                    }
                    self.run_ops(chart, body)?;
                }
            }
            Op::Call { name, args } => {
                let args: Vec<Json> = args
                    .iter()
                    .map(|&a| self.eval(chart, a))
                    .collect::<Result<_, _>>()?;
                let host = self.host.clone();
                match host.get(name) {
                    Some(f) => {
                        let result = f(&args, &mut self.context);
                        // The action may have removed or reordered names.
                        self.slots_ok = chart.context.len() <= self.context.len()
                            && chart
                                .context
                                .keys()
                                .zip(self.context.keys())
                                .all(|(a, b)| a == b);
                        result.map_err(|e| format!("host action `{name}` failed: {e}"))?
                    }
                    None if host.pass_through => self.cold_mut().effects.push(Effect::Call {
                        name: name.clone(),
                        args,
                    }),
                    None => return Err(format!("no host action `{name}` is registered")),
                }
            }
        }
        Ok(())
    }

    /// Writes `value` at a dotted location; only top-level names may be created.
    fn assign(
        &mut self,
        location: &[String],
        slot: Option<usize>,
        value: Json,
    ) -> Result<(), String> {
        let (first, rest) = location.split_first().ok_or("empty location")?;
        // The compiled slot while the declared names are in place, else a lookup by name.
        let index = slot
            .filter(|_| self.slots_ok)
            .or_else(|| self.context.get_index_of(first));
        let found = index
            .and_then(|i| self.context.get_index_mut(i))
            .map(|(_, v)| v);
        let Some((last, middle)) = rest.split_last() else {
            match found {
                Some(v) => *v = value,
                None => {
                    self.context.insert(first.clone(), value);
                }
            }
            return Ok(());
        };
        let mut cur = found.ok_or_else(|| {
            format!(
                "cannot assign to `{}`: `{first}` does not exist",
                location.join(".")
            )
        })?;
        for (i, seg) in middle.iter().enumerate() {
            cur = cur
                .as_object_mut()
                .and_then(|m| m.get_mut(seg))
                .ok_or_else(|| {
                    format!(
                        "cannot assign to `{}`: `{}` does not exist",
                        location.join("."),
                        location[..i + 2].join(".")
                    )
                })?;
        }
        match cur.as_object_mut() {
            Some(m) => {
                m.insert(last.clone(), value);
                Ok(())
            }
            None => Err(format!(
                "cannot assign to `{}`: `{}` is a {}, not a map",
                location.join("."),
                location[..location.len() - 1].join("."),
                eval::type_name(cur)
            )),
        }
    }

    /// Adds a delayed send, keeping timers ordered by (due, seq).
    pub(super) fn schedule(
        &mut self,
        delay_ms: u64,
        sendid: Option<String>,
        event: Event,
        target: SendTarget,
    ) {
        let due = self.now.saturating_add(delay_ms);
        self.record(|| Trace::Sent {
            event: event.name.clone(),
            to: target.to_string(),
            due: Some(due),
        });
        self.seq += 1;
        let timer = Timer {
            due,
            seq: self.seq,
            sendid,
            event,
            target,
        };
        let at = self
            .cold()
            .timers
            .partition_point(|t| (t.due, t.seq) <= (due, timer.seq));
        self.cold_mut().timers.insert(at, timer);
    }

    fn eval_delay(&self, chart: &Chart, e: ExprId) -> Result<u64, String> {
        match self.eval(chart, e)? {
            Json::String(s) => s.parse::<DurationMs>().map(|d| d.0),
            Json::Number(n) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.is_finite())
                        .map(|f| f.round() as u64)
                })
                .ok_or_else(|| format!("delay {n} is not a number of milliseconds")),
            other => Err(format!(
                "delay must be a duration string or milliseconds, not {}",
                eval::type_name(&other)
            )),
        }
    }

    fn eval_opt(&self, chart: &Chart, e: Option<ExprId>) -> Result<Json, String> {
        e.map_or(Ok(Json::Null), |e| self.eval(chart, e))
    }

    /// Evaluates an expression with the current event.
    pub(super) fn eval(&self, chart: &Chart, e: ExprId) -> Result<Json, String> {
        self.eval_with(chart, e, self.current.as_ref())
    }

    fn eval_with(&self, chart: &Chart, e: ExprId, event: Option<&Event>) -> Result<Json, String> {
        let expr = chart.expr(e);
        if self.slots_ok
            && let Some(k) = &expr.kernel
            && let Some(v) = k.eval(&self.context)
        {
            return Ok(v);
        }
        if let Some(f) = &expr.fast {
            let env = FastEnv {
                context: &self.context,
                slots_ok: self.slots_ok,
                event,
                active: &self.active,
                in_states: &expr.in_states,
            };
            if let Some(v) = fast::eval(f, &env).and_then(fast::Val::into_json) {
                return Ok(v);
            }
        }
        let in_values: Vec<bool> = expr
            .in_states
            .iter()
            .map(|s| self.active[s.index()])
            .collect();
        let event_json = if expr.reads_event() {
            event.map(|ev| {
                serde_json::json!({
                    "name": ev.name,
                    "data": ev.data,
                    "type": ev.kind,
                    "origin": ev.origin(),
                    "invokeid": ev.invokeid(),
                    "sendid": ev.sendid(),
                })
            })
        } else {
            None
        };
        eval::eval(
            expr,
            &Scope {
                context: &self.context,
                event: event_json.as_ref(),
                in_values: &in_values,
            },
        )
    }

    /// Evaluates a guard or condition: it must be a bool.
    pub(super) fn eval_bool_with(
        &self,
        chart: &Chart,
        e: ExprId,
        event: Option<&Event>,
    ) -> Result<bool, String> {
        match self.eval_with(chart, e, event.or(self.current.as_ref()))? {
            Json::Bool(b) => Ok(b),
            other => Err(format!(
                "`{}` evaluated to {} ({}), not a bool",
                chart.expr(e).source,
                other,
                eval::type_name(&other)
            )),
        }
    }
}

/// What fast evaluation reads from an instance.
struct FastEnv<'a> {
    context: &'a IndexMap<String, Json>,
    /// Whether the chart's declared names sit at their slots (see `Core::slots_ok`).
    slots_ok: bool,
    event: Option<&'a Event>,
    active: &'a [bool],
    in_states: &'a [StateId],
}

impl<'a> fast::Env<'a> for FastEnv<'a> {
    fn var(&self, name: &str, slot: Option<usize>) -> Option<&'a Json> {
        match slot.filter(|_| self.slots_ok) {
            Some(i) => self.context.get_index(i).map(|(_, v)| v),
            None => self.context.get(name),
        }
    }

    fn event_field(&self, field: &str) -> Option<Val<'a>> {
        let e = self.event?;
        let text = |s: Option<&'a str>| Some(s.map_or(Val::Null, |s| Val::Str(Cow::Borrowed(s))));
        match field {
            "name" => Some(Val::Str(Cow::Borrowed(&e.name))),
            "data" => Some(Val::of(&e.data)),
            "type" => Some(Val::Str(Cow::Borrowed(match e.kind {
                EventKind::External => "external",
                EventKind::Internal => "internal",
                EventKind::Platform => "platform",
            }))),
            "origin" => text(e.origin()),
            "invokeid" => text(e.invokeid()),
            "sendid" => text(e.sendid()),
            _ => None,
        }
    }

    fn in_state(&self, index: usize) -> Option<bool> {
        self.in_states.get(index).map(|s| self.active[s.index()])
    }
}
