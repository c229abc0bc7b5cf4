//! The live inspector (`orca inspect`, `--inspect` on `run` and `step`): a web page served
//! by orca itself that draws the machine or workflow and follows the run.
//!
//! A run and its page meet in a [`Hub`]. The run side pushes what happened (each step of a
//! machine, each lifecycle change of a workflow) and replaces the live part of the view
//! (timers, enabled events, outputs); every push is a short critical section and a version
//! bump, and nothing on the run side ever waits for a browser. The page side ([`server`])
//! sends each browser, at most every 50 ms, what it has not seen (so a burst of changes
//! reaches a slow page as one message), and answers its requests for older items.

pub mod server;
mod shadow;

use crate::model::Json;
use crate::runtime::Step;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub use server::{Bound, Control, InspectError, PageCommand, Served, bind, serve};
pub use shadow::Shadow;

/// What the page shows: a machine (its chart) or a workflow (its plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Machine,
    Workflow,
}

/// How the inspected run is driven: live (`orca run`), by hand (`orca step`), or read back
/// from its journal (`orca inspect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Step,
    Recorded,
}

/// One thing that happened, kept until a page asks for it.
#[derive(Debug)]
pub enum Item {
    /// A machine's step (the input and everything it caused), with the root's whole
    /// context afterwards (shared with the steps that did not change it), so that a page
    /// can show any moment from the one item.
    Step { step: Step, context: Arc<Json> },
    /// Anything else, already in the page's terms (a workflow's lifecycle change).
    Json(Json),
}

impl Item {
    /// The item as the page reads it. A step is summarised for the root instance: its
    /// configuration afterwards, its context when the step changed it, the transitions
    /// taken in every instance. With `context` false the step's context is left out (the
    /// page takes it from the step before).
    pub fn to_json(&self, with_context: bool) -> Json {
        match self {
            Item::Json(v) => v.clone(),
            Item::Step { step, context } => {
                let root = step.out.iter().find(|o| o.instance == "#");
                let logs: Vec<Json> = step
                    .out
                    .iter()
                    .flat_map(|o| o.notes.iter().map(move |n| (o, n)))
                    .filter_map(|(o, n)| match n {
                        crate::runtime::Note::Log { label, value } => Some(serde_json::json!({
                            "instance": o.instance, "label": label, "value": value,
                        })),
                        crate::runtime::Note::Error(e) => Some(serde_json::json!({
                            "instance": o.instance, "error": e,
                        })),
                        _ => None,
                    })
                    .collect();
                serde_json::json!({
                    "t": step.t,
                    "input": step.input.describe(),
                    "event": step.input.to_event().map(|e| e.name.to_string()),
                    "taken": step.taken(),
                    "ignored": step.ignored(),
                    "config": root.map(|o| o.config.clone()),
                    "status": root.map(|o| o.status.clone()),
                    "context": if with_context { (**context).clone() } else { Json::Null },
                    "same_context": !with_context,
                    "logs": logs,
                })
            }
        }
    }
}

/// The root's context as a step left it, when the step changed it.
pub fn root_context(step: &Step) -> Option<&Json> {
    step.out
        .iter()
        .find(|o| o.instance == "#")
        .and_then(|o| o.context.as_ref())
}

/// The live part of a machine's view: its pending timers.
pub fn machine_live(root: &crate::interpreter::Instance) -> Json {
    serde_json::json!({
        "timers": root.timers().iter().map(|t| t.to_json()).collect::<Vec<_>>(),
    })
}

/// Whether a step may have changed the pending timers: the clock moved, or something was
/// sent with a delay or cancelled, or states were entered or exited.
pub fn touches_timers(step: &Step) -> bool {
    use crate::runtime::{Note, StepInput};
    matches!(step.input, StepInput::Advance { .. } | StepInput::Start {})
        || step.out.iter().flat_map(|o| &o.notes).any(|n| {
            matches!(
                n,
                Note::Sent { due: Some(_), .. } | Note::Cancelled(_) | Note::Micro(_)
            )
        })
}

/// At most this many items are kept; older ones are dropped (the page says how many) so
/// that a run of millions of events keeps bounded memory.
pub const MAX_ITEMS: usize = 100_000;

/// At most this many items go in one answer; the page asks again for the rest.
pub const PAGE_ITEMS: usize = 5_000;

struct Model {
    subject: Subject,
    mode: Mode,
    title: String,
    structure: Arc<Json>,
    structure_version: u64,
    /// Bumped when the items are replaced rather than appended to (a stepper went back).
    generation: u64,
    /// Items dropped from the front (to [`MAX_ITEMS`]).
    dropped: u64,
    items: std::collections::VecDeque<Arc<Item>>,
    live: Arc<Json>,
    ended: Option<Json>,
    /// Something the page should say (the replay stopped following the run).
    notice: Option<String>,
}

/// Where a run and its pages meet (see the module's documentation).
///
/// ```
/// use orca::inspect::{Hub, Mode, Subject};
/// let hub = Hub::new(Subject::Workflow, Mode::Run, "build", serde_json::json!({"ops": []}));
/// hub.push_json(serde_json::json!({"op": "compile", "to": "Executing"}));
/// let view = hub.view(0, 0, 0, 10);
/// assert_eq!(view["structure"]["ops"], serde_json::json!([]));
/// assert_eq!(view["items"][0]["to"], "Executing");
/// assert_eq!(view["total"], 1);
/// ```
pub struct Hub {
    model: Mutex<Model>,
    version: watch::Sender<u64>,
}

impl Hub {
    pub fn new(subject: Subject, mode: Mode, title: &str, structure: Json) -> Arc<Hub> {
        Arc::new(Hub {
            model: Mutex::new(Model {
                subject,
                mode,
                title: title.to_string(),
                structure: Arc::new(structure),
                structure_version: 1,
                generation: 0,
                dropped: 0,
                items: Default::default(),
                live: Arc::new(Json::Null),
                ended: None,
                notice: None,
            }),
            version: watch::channel(0).0,
        })
    }

    fn change(&self, f: impl FnOnce(&mut Model)) {
        f(&mut self.model.lock().unwrap_or_else(|p| p.into_inner()));
        self.version.send_modify(|v| *v += 1);
    }

    fn push_item(&self, item: Item) {
        self.push_items(vec![Arc::new(item)]);
    }

    fn push_items(&self, items: Vec<Arc<Item>>) {
        self.change(|m| {
            for item in items {
                if m.items.len() == MAX_ITEMS {
                    m.items.pop_front();
                    m.dropped += 1;
                }
                m.items.push_back(item);
            }
        });
    }

    /// Several steps at once (one change for pages), each with the root's context after it.
    pub fn push_steps(&self, steps: Vec<(Step, Arc<Json>)>) {
        self.push_items(
            steps
                .into_iter()
                .map(|(step, context)| Arc::new(Item::Step { step, context }))
                .collect(),
        );
    }

    /// Anything else the page lists in order (a workflow's lifecycle change).
    pub fn push_json(&self, v: Json) {
        self.push_item(Item::Json(v));
    }

    /// The part of the view that is not a list: timers, enabled events, outputs.
    pub fn set_live(&self, live: Json) {
        let live = Arc::new(live);
        self.change(|m| m.live = live);
    }

    /// A new structure (a workflow's plan grew).
    pub fn set_structure(&self, structure: Json) {
        let structure = Arc::new(structure);
        self.change(|m| {
            m.structure = structure;
            m.structure_version += 1;
        });
    }

    /// Makes the items these steps (a stepper session's, or a replayed journal's): the new
    /// ones are appended when the steps only went on (the usual case, cheap), and all are
    /// replaced when they went back or started over, so that pages start over. `live`
    /// changes in the same moment, so no page sees one without the other.
    pub fn sync_steps(&self, steps: &[Step], live: Json) {
        let live = Arc::new(live);
        self.change(|m| {
            let append = m.dropped == 0 && steps.len() >= m.items.len();
            let from = if append {
                m.items.len()
            } else {
                m.items.clear();
                m.dropped = 0;
                m.generation += 1;
                0
            };
            let mut context = match m.items.back().map(|i| &**i) {
                Some(Item::Step { context, .. }) => context.clone(),
                _ => Arc::new(Json::Null),
            };
            for step in &steps[from..] {
                if let Some(c) = root_context(step) {
                    context = Arc::new(c.clone());
                }
                if m.items.len() == MAX_ITEMS {
                    m.items.pop_front();
                    m.dropped += 1;
                }
                m.items.push_back(Arc::new(Item::Step {
                    step: step.clone(),
                    context: context.clone(),
                }));
            }
            m.live = live;
        });
    }

    /// A sentence the page shows above everything (the replay stopped following the run).
    pub fn set_notice(&self, notice: &str) {
        let notice = notice.to_string();
        self.change(|m| m.notice = Some(notice));
    }

    /// The run is over: `ending` says how (shown on the page, which stays readable).
    pub fn end(&self, ending: Json) {
        self.change(|m| m.ended = Some(ending));
    }

    /// Whether the page draws a machine (its stream sends only the newest steps).
    pub fn subject(&self) -> Subject {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).subject
    }

    /// Whether [`Hub::end`] was called.
    pub fn ended(&self) -> bool {
        self.model
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ended
            .is_some()
    }

    /// A receiver that sees every version change (coalesced: a slow reader sees the last).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Reads the chart or plan the page draws, without copying it.
    pub fn with_structure<T>(&self, f: impl FnOnce(&Json) -> T) -> T {
        let m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        f(&m.structure)
    }

    /// The chart or plan the page draws.
    pub fn structure(&self) -> Json {
        let m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        let s = m.structure.clone();
        drop(m);
        (*s).clone()
    }

    /// What a page that has seen `from` items of `generation` needs: the items after those
    /// (all of them if the generation moved on), the live part, whether the run ended, and
    /// the structure when it is not version `structure_version`. Items are serialized
    /// outside the lock, so a page never holds up the run.
    ///
    /// At most `limit` items are sent (and never more than a few thousand); with `tail`, a
    /// page far behind gets only the newest `tail` items, and asks for older ones when it
    /// shows them.
    pub fn view(&self, from: u64, generation: u64, structure_version: u64, limit: usize) -> Json {
        self.view_tail(from, generation, structure_version, limit, u64::MAX)
    }

    /// [`Hub::view`] for a stream: items before the newest `tail` are skipped.
    pub fn view_tail(
        &self,
        from: u64,
        generation: u64,
        structure_version: u64,
        limit: usize,
        tail: u64,
    ) -> Json {
        let version = self.version();
        let m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        let total = m.dropped + m.items.len() as u64;
        let start = if generation == m.generation {
            from.clamp(m.dropped, total)
        } else {
            m.dropped
        };
        let start = start.max(total.saturating_sub(tail));
        let skip = (start - m.dropped) as usize;
        let items: Vec<Arc<Item>> = m
            .items
            .iter()
            .skip(skip)
            .take(limit.min(PAGE_ITEMS))
            .cloned()
            .collect();
        let header = serde_json::json!({
            "version": version,
            "subject": match m.subject { Subject::Machine => "machine", Subject::Workflow => "workflow" },
            "mode": match m.mode { Mode::Run => "run", Mode::Step => "step", Mode::Recorded => "recorded" },
            "title": m.title,
            "generation": m.generation,
            "structure_version": m.structure_version,
            "dropped": m.dropped,
            "from": start,
            "total": total,
            "ended": m.ended,
            "notice": m.notice,
        });
        let live = m.live.clone();
        let structure = (m.structure_version != structure_version).then(|| m.structure.clone());
        drop(m);
        let mut v = header;
        if let Some(s) = structure {
            v["structure"] = (*s).clone();
        }
        // A step's context goes only where it differs from the previous step's in this
        // answer: a page reads the context of a moment back to the last one given.
        let mut previous: Option<&Arc<Json>> = None;
        v["items"] = items
            .iter()
            .map(|i| {
                let with = match (&**i, previous) {
                    (Item::Step { context, .. }, Some(p)) => {
                        let changed = !Arc::ptr_eq(context, p);
                        previous = Some(context);
                        changed
                    }
                    (Item::Step { context, .. }, None) => {
                        previous = Some(context);
                        true
                    }
                    _ => true,
                };
                i.to_json(with)
            })
            .collect();
        v["live"] = (*live).clone();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hub() -> Arc<Hub> {
        Hub::new(Subject::Workflow, Mode::Run, "t", json!({"ops": []}))
    }

    #[test]
    fn a_page_gets_what_it_has_not_seen_and_the_structure_once() {
        let h = hub();
        for i in 0..3 {
            h.push_json(json!({ "i": i }));
        }
        let v = h.view(1, 0, 0, usize::MAX);
        assert_eq!(v["from"], 1);
        assert_eq!(v["items"], json!([{"i": 1}, {"i": 2}]));
        assert_eq!(v["structure"], json!({"ops": []}));
        // A page at the current structure version is not sent it again.
        let v = h.view(3, 0, 1, usize::MAX);
        assert_eq!(v["items"], json!([]));
        assert!(v.get("structure").is_none());
        h.set_structure(json!({"ops": [1]}));
        assert_eq!(
            h.view(3, 0, 1, usize::MAX)["structure"],
            json!({"ops": [1]})
        );
        // Past the end is the end.
        assert_eq!(h.view(u64::MAX, 0, 2, usize::MAX)["from"], 3);
    }

    #[test]
    fn answers_are_paged_and_old_items_dropped() {
        let h = hub();
        for i in 0..(MAX_ITEMS + 10) {
            h.push_json(json!(i));
        }
        let v = h.view(0, 0, 0, usize::MAX);
        assert_eq!(v["dropped"], 10);
        assert_eq!(v["from"], 10);
        assert_eq!(v["items"].as_array().unwrap().len(), PAGE_ITEMS);
        assert_eq!(v["items"][0], 10);
        assert_eq!(v["total"], (MAX_ITEMS + 10) as u64);
    }

    #[test]
    fn a_context_is_sent_where_it_changed_and_first_in_every_answer() {
        use crate::runtime::StepInput;
        let h = Hub::new(Subject::Machine, Mode::Run, "m", json!({}));
        let step = || Step {
            t: 0,
            input: StepInput::Start {},
            out: Vec::new(),
        };
        let a = Arc::new(json!({"n": 1}));
        let b = Arc::new(json!({"n": 2}));
        h.push_steps(vec![
            (step(), a.clone()),
            (step(), a.clone()),
            (step(), b.clone()),
        ]);
        let v = h.view(0, 0, 1, usize::MAX);
        let same: Vec<bool> = (0..3)
            .map(|i| v["items"][i]["same_context"].as_bool().unwrap())
            .collect();
        assert_eq!(same, [false, true, false]);
        assert_eq!(v["items"][2]["context"], json!({"n": 2}));
        // An answer starting at the second step carries its context.
        let v = h.view(1, 0, 1, usize::MAX);
        assert_eq!(v["items"][0]["context"], json!({"n": 1}));
        assert_eq!(v["items"][0]["same_context"], false);
    }

    #[test]
    fn a_session_that_goes_on_is_appended_and_one_that_went_back_replaced() {
        use crate::runtime::StepInput;
        let h = Hub::new(Subject::Machine, Mode::Step, "m", json!({}));
        let step = |n: u64| Step {
            t: n,
            input: StepInput::Start {},
            out: Vec::new(),
        };
        h.sync_steps(&[step(0), step(1)], json!({"cursor": 2}));
        h.sync_steps(&[step(0), step(1), step(2)], json!({"cursor": 3}));
        let v = h.view(0, 0, 1, usize::MAX);
        assert_eq!(v["generation"], 0);
        assert_eq!(v["total"], 3);
        assert_eq!(v["items"][2]["t"], 2);
        assert_eq!(v["live"]["cursor"], 3);
        h.sync_steps(&[step(0)], json!({"cursor": 1}));
        let v = h.view(3, 0, 1, usize::MAX);
        assert_eq!(v["generation"], 1);
        assert_eq!(v["from"], 0);
        assert_eq!(v["total"], 1);
    }

    #[test]
    fn replacing_the_items_starts_pages_over() {
        let h = Hub::new(Subject::Machine, Mode::Step, "m", json!({}));
        h.push_json(json!("a"));
        h.push_json(json!("b"));
        h.sync_steps(&[], json!(null));
        let v = h.view(2, 0, 0, usize::MAX);
        assert_eq!(v["generation"], 1);
        assert_eq!(v["from"], 0);
        assert_eq!(v["total"], 0);
    }

    #[test]
    fn a_browser_that_does_not_read_never_holds_up_the_run() {
        use std::io::Write;
        let h = hub();
        let served = serve(h.clone(), "127.0.0.1:0", Control::None, None).unwrap();
        // A page that asks for the stream and never reads it.
        let mut stuck = std::net::TcpStream::connect(served.addr).unwrap();
        write!(
            stuck,
            "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        )
        .unwrap();
        let big = "x".repeat(1000);
        for i in 0..50_000 {
            h.push_json(json!({ "i": i, "pad": big }));
        }
        h.end(json!({"ending": "done"}));
        // Stopping returns although the page never read its final view.
        served.stop();
        assert!(h.ended());
    }
}
