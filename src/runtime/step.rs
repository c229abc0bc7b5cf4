//! What a run is made of, as data: the inputs that drive it and what each one caused.
//!
//! Every change to a tree of instances enters through one [`StepInput`]; given the same
//! definitions, the same inputs always produce the same [`Step`]s. The journal stores these
//! (serialized with serde) and replay feeds the inputs back.

use crate::interpreter::{Event, EventKind, Instance, Status, Trace};
use crate::model::Json;
use serde::{Deserialize, Serialize};

/// One input to a run. Externally tagged in JSON: `{"event": {"name": "GO", "data": 1}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepInput {
    /// Enter the root's initial configuration.
    Start {},
    /// An external event for the root instance.
    Event {
        /// Shared with the events made from it: replaying a journal allocates no name.
        name: std::sync::Arc<str>,
        #[serde(default, skip_serializing_if = "Json::is_null")]
        data: Json,
    },
    /// Move every instance's clock to this virtual time (ms since start), firing what is due.
    Advance { to: u64 },
    /// An invoked command ended (`ok` is exit status 0); `data` is what it reported.
    Finished {
        path: Vec<String>,
        ok: bool,
        #[serde(default, skip_serializing_if = "Json::is_null")]
        data: Json,
    },
    /// A context value of the root was changed from outside (the stepper's `set`).
    Set { name: String, value: Json },
}

impl StepInput {
    /// An external event as an input.
    pub fn event(e: &Event) -> StepInput {
        StepInput::Event {
            name: e.name.clone(),
            data: e.data.clone(),
        }
    }

    /// The event this input delivers to the root, if it is one.
    pub fn to_event(&self) -> Option<Event> {
        match self {
            StepInput::Event { name, data } => {
                Some(Event::new(name.clone(), data.clone(), EventKind::External))
            }
            _ => None,
        }
    }

    /// A short human description: `GO {"x":1}`, `advance to 1500 ms`.
    pub fn describe(&self) -> String {
        match self {
            StepInput::Start {} => "start".into(),
            StepInput::Event { name, data } if data.is_null() => name.to_string(),
            StepInput::Event { name, data } => format!("{name} {data}"),
            StepInput::Advance { to } => format!("clock → {}", crate::model::DurationMs(*to)),
            StepInput::Finished { path, ok, data } => format!(
                "{} {} {}",
                path.join("/"),
                if *ok { "finished" } else { "failed" },
                data
            ),
            StepInput::Set { name, value } => format!("set {name} = {value}"),
        }
    }
}

/// One microstep of one instance: the event it processed (none for eventless transitions and
/// for the initial entry), the transitions taken (`source → targets`), states exited and entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Micro {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exited: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entered: Vec<String>,
}

/// Something an instance asked the outside world to do, or noted, during a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// A microstep.
    Micro(Micro),
    /// An event no transition was enabled for.
    Ignored(String),
    /// Executable content failed (`error.execution` was raised).
    Error(String),
    /// An event sent: to `#self`, `#parent` or an invoke; `due` for a delayed one.
    Sent {
        event: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<u64>,
    },
    /// A delayed send cancelled.
    Cancelled(String),
    /// A `Log` action.
    Log {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        value: Json,
    },
    /// An invoke started.
    Invoke { id: String, src: String },
    /// An invoke stopped because its state was exited.
    CancelInvoke(String),
    /// A host `Call` that was not handled in process.
    Call { name: String, args: Vec<Json> },
}

/// What one step did to one instance, and where it left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `#` for the root, `invoke/invoke` below it.
    pub instance: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// The active state paths afterwards, in document order.
    pub config: Vec<String>,
    /// `running`, `done` or `failed: MESSAGE`.
    #[serde(default = "running", skip_serializing_if = "is_running")]
    pub status: String,
    /// The whole context, when the step changed it (or it is the instance's first outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Json>,
}

fn running() -> String {
    "running".into()
}

fn is_running(s: &str) -> bool {
    s == "running"
}

impl Outcome {
    /// Builds the outcome of `inst` from its recorded trace (which this takes).
    pub fn of(instance: String, inst: &mut Instance, notes: Vec<Note>) -> Outcome {
        let chart = inst.chart().clone();
        let path = |s: crate::chart::StateId| chart.state(s).path.clone();
        let mut all: Vec<Note> = inst
            .take_trace()
            .into_iter()
            .map(|t| match t {
                Trace::Microstep {
                    event,
                    transitions,
                    exited,
                    entered,
                } => Note::Micro(Micro {
                    event: event.map(|e| e.to_string()),
                    taken: transitions
                        .iter()
                        .map(|&t| chart.describe_transition(t))
                        .collect(),
                    exited: exited
                        .into_iter()
                        .filter(|s| !s.is_root())
                        .map(path)
                        .collect(),
                    entered: entered
                        .into_iter()
                        .filter(|s| !s.is_root())
                        .map(path)
                        .collect(),
                }),
                Trace::Ignored { event } => Note::Ignored(event.to_string()),
                Trace::Error { message } => Note::Error(message),
                Trace::Sent { event, to, due } => Note::Sent {
                    event: event.to_string(),
                    to,
                    due,
                },
                Trace::Cancelled { sendid } => Note::Cancelled(sendid),
            })
            .collect();
        all.extend(notes);
        Outcome {
            instance,
            notes: all,
            config: inst
                .configuration_paths()
                .into_iter()
                .map(String::from)
                .collect(),
            status: status_text(inst.status()),
            context: None,
        }
    }
}

/// `running`, `done`, `failed: MESSAGE` (and `not started`).
pub fn status_text(s: &Status) -> String {
    match s {
        Status::NotStarted => "not started".into(),
        Status::Running => "running".into(),
        Status::Done => "done".into(),
        Status::Failed(e) => format!("failed: {e}"),
    }
}

/// One input and everything it caused, in every instance it touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The root's virtual time when the input was applied (ms since start).
    pub t: u64,
    pub input: StepInput,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out: Vec<Outcome>,
}

impl Step {
    /// The transitions taken, as `source → targets`, prefixed with the instance path for
    /// children (`a/b: s → t`).
    pub fn taken(&self) -> Vec<String> {
        let mut v = Vec::new();
        for o in &self.out {
            for n in &o.notes {
                if let Note::Micro(m) = n {
                    for t in &m.taken {
                        if o.instance == "#" {
                            v.push(t.clone());
                        } else {
                            v.push(format!("{}: {t}", o.instance));
                        }
                    }
                }
            }
        }
        v
    }

    /// Whether the root ignored the input's event (no transition matched or was enabled).
    pub fn ignored(&self) -> bool {
        self.out
            .iter()
            .filter(|o| o.instance == "#")
            .flat_map(|o| &o.notes)
            .any(|n| matches!(n, Note::Ignored(_)))
            && !self
                .out
                .iter()
                .flat_map(|o| &o.notes)
                .any(|n| matches!(n, Note::Micro(m) if !m.taken.is_empty()))
    }
}

/// A machine file that an invoke loaded during the run, kept so that replay uses the same text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Define {
    /// The path as the invoking machine resolved it.
    pub file: String,
    pub source: String,
}
