//! Canonical state keys: an instance's state as bytes, equal exactly when the states are
//! equal for everything the verifier checks.
//!
//! What goes in: the status, the active states, recorded history, the relevant context
//! values (see [`super::slice`]; the others only by their JSON type), the pending timers
//! relative to the clock (so that a state reached at different times is seen once), the
//! running invokes and, once done, the output. Maps are written with sorted keys and names
//! the chart does not declare sorted by name, so the order in which values were created does
//! not matter.

use crate::chart::StateId;
use crate::interpreter::{Instance, Preview, Status};
use crate::model::Json;

/// Which context names take part in keys.
#[derive(Debug, Clone)]
pub struct Relevance {
    /// By declared slot.
    pub slots: Vec<bool>,
    /// Names the chart does not declare but expressions read (created by `Assign` or
    /// `Foreach`).
    pub others: Vec<String>,
    /// Whether every value counts (slicing was off or impossible).
    pub all: bool,
    /// Top-level numbers count by type only: the *shape* of a state, in which a loop that
    /// only moves counters comes back to where it started.
    pub shape: bool,
}

impl Relevance {
    fn is_relevant(&self, slot: Option<usize>, name: &str) -> bool {
        self.all
            || match slot {
                Some(i) => self.slots.get(i).copied().unwrap_or(true),
                None => self.others.iter().any(|o| o == name),
            }
    }
}

/// Writes `inst`'s key into `out` (cleared first).
pub fn write(inst: &Instance, rel: &Relevance, out: &mut Vec<u8>) {
    write_with(inst, rel, out, None);
}

/// A state's key and where its configuration and declared context values sit in it: the
/// keys of the states its previewed steps reach (see [`Instance::preview`]) are this key
/// with those parts written again, without writing the rest each time.
#[derive(Debug, Default)]
pub struct Layout {
    key: Vec<u8>,
    parts: Parts,
}

/// Byte ranges in a key.
#[derive(Debug, Default)]
struct Parts {
    config: (usize, usize),
    /// By declared slot: the value's bytes, and whether the value counts whole.
    slots: Vec<(usize, usize, bool)>,
}

impl Layout {
    /// Writes `inst`'s key, noting where its parts are.
    pub fn write(&mut self, inst: &Instance, rel: &Relevance) {
        self.parts.slots.clear();
        write_with(inst, rel, &mut self.key, Some(&mut self.parts));
    }

    /// The key written last.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Writes into `out` the key of the state the step `preview` describes leads to, from
    /// the instance [`Layout::write`] was given last: a preview changes its configuration
    /// and assigned integers, nothing else.
    pub fn previewed(&self, preview: &Preview, rel: &Relevance, out: &mut Vec<u8>) {
        let key = &self.key[..];
        let (from, mut at) = self.parts.config;
        out.clear();
        out.extend_from_slice(&key[..from]);
        configuration(out, || preview.config.iter().copied());
        if !preview.assigned.is_empty() {
            for (slot, &(start, end, relevant)) in self.parts.slots.iter().enumerate() {
                if let Some(n) = preview.assigned(slot) {
                    out.extend_from_slice(&key[at..start]);
                    // As the interpreter's quick assignment leaves it: an integer.
                    value(out, &Json::from(n), relevant, rel.shape);
                    at = end;
                }
            }
        }
        out.extend_from_slice(&key[at..]);
    }
}

/// The writer, noting where the parts are when asked.
fn write_with(inst: &Instance, rel: &Relevance, out: &mut Vec<u8>, mut parts: Option<&mut Parts>) {
    out.clear();
    match inst.status() {
        Status::NotStarted => out.push(0),
        Status::Running => out.push(1),
        Status::Done => out.push(2),
        Status::Failed(m) => {
            out.push(3);
            str(out, m);
        }
    }
    let start = out.len();
    configuration(out, || inst.configuration());
    if let Some(p) = parts.as_deref_mut() {
        p.config = (start, out.len());
    }
    let history = inst.history();
    varint(out, history.len() as u64);
    for (h, states) in history {
        varint(out, h.0 as u64);
        varint(out, states.len() as u64);
        for s in states {
            varint(out, s.0 as u64);
        }
    }
    let declared = inst.chart().context.len();
    let ctx = inst.context();
    let mut extra: Vec<(&String, &Json)> = Vec::new();
    let in_place = inst.declared_in_place();
    for (i, (name, v)) in ctx.iter().enumerate() {
        // Declared names keep their slots unless a host action reordered them.
        let slot = (i < declared
            && (in_place
                || inst
                    .chart()
                    .context
                    .get_index(i)
                    .is_some_and(|(k, _)| k == name)))
        .then_some(i);
        let Some(slot) = slot else {
            extra.push((name, v));
            continue;
        };
        let relevant = rel.is_relevant(Some(slot), name);
        let start = out.len();
        value(out, v, relevant, rel.shape);
        if let Some(p) = parts.as_deref_mut() {
            // Slots are positions, so this is slot `slot`'s entry: a preview needs every
            // declared name in place, and then they all come first, in order.
            debug_assert_eq!(p.slots.len(), slot);
            p.slots.push((start, out.len(), relevant));
        }
    }
    // Names the chart does not declare, by name: the order they were created in is not
    // observable (expressions name variables, nothing iterates the context).
    extra.sort_by(|a, b| a.0.cmp(b.0));
    varint(out, extra.len() as u64);
    for (name, v) in extra {
        str(out, name);
        value(out, v, rel.is_relevant(None, name), rel.shape);
    }
    // A stopped instance fires nothing any more: its leftover timers do not count.
    let timers = if *inst.status() == Status::Running {
        inst.timers()
    } else {
        &[]
    };
    varint(out, timers.len() as u64);
    for t in timers {
        varint(out, t.due.saturating_sub(inst.now()));
        str(out, &t.event.name);
        json(out, &t.event.data);
        str(out, &t.target.to_string());
        match &t.sendid {
            Some(id) => {
                out.push(1);
                str(out, id);
            }
            None => out.push(0),
        }
    }
    let invoked = inst.invoked();
    varint(out, invoked.len() as u64);
    for (s, id) in invoked {
        varint(out, s.0 as u64);
        str(out, id);
    }
    if let Some(o) = inst.output() {
        json(out, o);
    }
}

/// The active states but the root, counted.
fn configuration<I: Iterator<Item = StateId>>(out: &mut Vec<u8>, states: impl Fn() -> I) {
    let states = || states().filter(|&s| s != StateId::ROOT);
    varint(out, states().count() as u64);
    for s in states() {
        varint(out, s.0 as u64);
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn str(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A context value: whole when relevant; else its *shape*, which is what decides whether
/// expressions reading it fail (a missing key, a wrong type) without the values themselves.
/// With `numbers_out`, a relevant top-level number counts by its type only.
fn value(out: &mut Vec<u8>, v: &Json, relevant: bool, numbers_out: bool) {
    if relevant && !(numbers_out && v.is_number()) {
        json(out, v);
    } else {
        shape(out, v);
    }
}

/// Types all the way down, keys of maps in their order; a list by the distinct shapes of its
/// items (not its length, so that a list that only grows does not make new states).
fn shape(out: &mut Vec<u8>, v: &Json) {
    out.push(type_tag(v));
    match v {
        Json::Array(a) => {
            let mut shapes: Vec<Vec<u8>> = Vec::new();
            for x in a {
                let mut one = Vec::new();
                shape(&mut one, x);
                if !shapes.contains(&one) {
                    shapes.push(one);
                }
            }
            shapes.sort();
            varint(out, shapes.len() as u64);
            for one in shapes {
                out.extend_from_slice(&one);
            }
        }
        Json::Object(m) => {
            varint(out, m.len() as u64);
            for (k, x) in m {
                str(out, k);
                shape(out, x);
            }
        }
        _ => {}
    }
}

fn type_tag(v: &Json) -> u8 {
    match v {
        Json::Null => 0x10,
        Json::Bool(_) => 0x11,
        Json::Number(n) if n.is_f64() => 0x12,
        Json::Number(_) => 0x13,
        Json::String(_) => 0x14,
        Json::Array(_) => 0x15,
        Json::Object(_) => 0x16,
    }
}

/// A JSON value; maps in their order, which `Foreach` and printing can see.
fn json(out: &mut Vec<u8>, v: &Json) {
    match v {
        Json::Null => out.push(0),
        Json::Bool(b) => out.push(1 + *b as u8),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push(3);
                // Zigzag, so that small negative numbers stay short.
                varint(out, ((i << 1) ^ (i >> 63)) as u64);
            } else if let Some(u) = n.as_u64() {
                out.push(4);
                varint(out, u);
            } else {
                out.push(5);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        Json::String(s) => {
            out.push(6);
            str(out, s);
        }
        Json::Array(a) => {
            out.push(7);
            varint(out, a.len() as u64);
            for x in a {
                json(out, x);
            }
        }
        Json::Object(m) => {
            out.push(8);
            varint(out, m.len() as u64);
            for (k, x) in m {
                str(out, k);
                json(out, x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpreter::{Event, started as start};

    fn key(i: &Instance, rel: &Relevance) -> Vec<u8> {
        let mut out = Vec::new();
        write(i, rel, &mut out);
        out
    }

    const ALL: Relevance = Relevance {
        slots: Vec::new(),
        others: Vec::new(),
        all: true,
        shape: false,
    };

    #[test]
    fn the_order_variables_were_created_in_does_not_matter_but_a_maps_order_does() {
        let text = r#"Machine(context: { "m": {} }, states: { "a": (on: {
            "XY": (actions: [Assign("x", "1"), Assign("y", "2")]),
            "YX": (actions: [Assign("y", "2"), Assign("x", "1")]),
            "AB": (actions: [Assign("m.a", "1"), Assign("m.b", "2")]),
            "BA": (actions: [Assign("m.b", "2"), Assign("m.a", "1")]),
        }) })"#;
        let after = |e: &str| {
            let mut i = start(text);
            i.send(Event::external(e)).unwrap();
            key(&i, &ALL)
        };
        assert_eq!(after("XY"), after("YX"));
        assert_ne!(after("XY"), key(&start(text), &ALL));
        // `Foreach` over `m` sees the order its keys were added in: different states.
        assert_ne!(after("AB"), after("BA"));
    }

    #[test]
    fn timers_count_relative_to_the_clock() {
        let text = r#"Machine(states: {
            "a": (on: { "GO": "b" }),
            "b": (after: { "5s": "a" }, on: { "GO": "a" }),
        })"#;
        let mut early = start(text);
        early.send(Event::external("GO")).unwrap();
        let mut late = start(text);
        late.advance_to(60_000).unwrap();
        late.send(Event::external("GO")).unwrap();
        assert_eq!(key(&early, &ALL), key(&late, &ALL));
        let idle = start(text);
        assert_ne!(key(&early, &ALL), key(&idle, &ALL));
    }

    #[test]
    fn irrelevant_values_count_only_by_type() {
        let text = r#"Machine(context: { "n": 0, "seen": 0 }, states: { "a": (on: {
            "N": (actions: [Assign("n", "n + 1")]),
            "S": (actions: [Assign("seen", "seen + 1")]),
        }) })"#;
        let rel = Relevance {
            slots: vec![true, false],
            others: Vec::new(),
            all: false,
            shape: false,
        };
        let base = start(text);
        let mut s = start(text);
        s.send(Event::external("S")).unwrap();
        assert_eq!(key(&base, &rel), key(&s, &rel));
        let mut n = start(text);
        n.send(Event::external("N")).unwrap();
        assert_ne!(key(&base, &rel), key(&n, &rel));
        assert_ne!(key(&base, &ALL), key(&s, &ALL));
    }

    #[test]
    fn irrelevant_values_keep_the_shape_that_decides_errors() {
        let text = r#"Machine(context: { "m": { "k": 1 }, "log": [] }, states: { "a": (on: {
            "CLEAR": (actions: [Assign("m", "{}")]),
            "K2": (actions: [Assign("m", "{'k': 2}")]),
            "LOG": (actions: [Assign("log", "log + [1]")]),
            "T": (actions: [Log("m.k"), Log("log")]),
        }) })"#;
        let rel = Relevance {
            slots: vec![false, false],
            others: Vec::new(),
            all: false,
            shape: false,
        };
        let base = start(text);
        let mut cleared = start(text);
        cleared.send(Event::external("CLEAR")).unwrap();
        assert_ne!(key(&base, &rel), key(&cleared, &rel), "`m.k` now fails");
        let mut k2 = start(text);
        k2.send(Event::external("K2")).unwrap();
        assert_eq!(
            key(&base, &rel),
            key(&k2, &rel),
            "a value alone does not count"
        );
        let mut once = start(text);
        once.send(Event::external("LOG")).unwrap();
        let mut twice = once.clone();
        twice.send(Event::external("LOG")).unwrap();
        assert_eq!(
            key(&once, &rel),
            key(&twice, &rel),
            "a growing list is one shape"
        );
    }
}
