//! Unbounded growth: when an exploration reaches its bound, the path to the last state found
//! is searched for a loop of inputs that brings the machine back to the same *shape* (the
//! state with its top-level numbers counted by type only) while a number moved. If repeating
//! the loop twice more keeps the shape and moves the number the same way each time, the
//! number grows (or shrinks) without bound, which is why the exploration could not end.

use super::key::{self, Relevance};
use super::{Finding, FindingKind, Input, apply};
use crate::chart::Chart;
use crate::interpreter::Instance;
use crate::model::Json;
use std::collections::HashMap;
use std::sync::Arc;

/// How often the loop is repeated to confirm it: a counter with a guard on a bound below
/// this is not reported.
const CONFIRM: usize = 256;

pub fn find(chart: &Arc<Chart>, rel: &Relevance, path: &[Input]) -> Option<Finding> {
    let shape_rel = Relevance {
        shape: true,
        ..rel.clone()
    };
    let mut inst = Instance::new(chart.clone());
    inst.start().ok()?;
    let mut seen: HashMap<Vec<u8>, (usize, Instance)> = HashMap::new();
    let mut buf = Vec::new();
    for j in 0..=path.len() {
        if j > 0 {
            apply(&mut inst, &path[j - 1]).ok()?;
        }
        key::write(&inst, &shape_rel, &mut buf);
        if let Some((i, earlier)) = seen.get(&buf) {
            let cycle = &path[*i..j];
            if let Some((name, delta)) = moved(earlier, &inst)
                && confirm(&inst, cycle, &shape_rel, &buf, &name, delta)
            {
                let inputs: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                let way = if delta > 0.0 { "grows" } else { "shrinks" };
                return Some(Finding {
                    message: format!(
                        "context `{name}` {way} without bound: repeating `{}` comes back to the same states and changes it by {delta} each time ({CONFIRM} repetitions checked)",
                        inputs.join(", ")
                    ),
                    kind: FindingKind::UnboundedGrowth { name },
                    path: path[..j].to_vec(),
                    error: false,
                    span: None,
                });
            }
        } else {
            seen.insert(buf.clone(), (j, inst.clone()));
        }
    }
    None
}

/// The first top-level number that differs between two states, and by how much.
fn moved(a: &Instance, b: &Instance) -> Option<(String, f64)> {
    b.context().iter().find_map(|(name, v)| {
        let (x, y) = (a.context().get(name)?.as_f64()?, v.as_f64()?);
        (x != y).then(|| (name.clone(), y - x))
    })
}

/// Whether repeating `cycle` from `inst` keeps the shape and moves `name` the same way.
fn confirm(
    inst: &Instance,
    cycle: &[Input],
    rel: &Relevance,
    shape: &[u8],
    name: &str,
    delta: f64,
) -> bool {
    let mut at = inst.clone();
    let mut buf = Vec::new();
    for _ in 0..CONFIRM {
        let before = at.context().get(name).and_then(Json::as_f64);
        for input in cycle {
            if apply(&mut at, input).is_err() {
                return false;
            }
        }
        key::write(&at, rel, &mut buf);
        let after = at.context().get(name).and_then(Json::as_f64);
        match (before, after) {
            (Some(b), Some(a)) if buf == shape && (a - b) * delta > 0.0 => {}
            _ => return false,
        }
    }
    true
}
