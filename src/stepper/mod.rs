//! The stepper's session (`orca step`): a machine driven by hand, one command at a time, on
//! a virtual clock. The session is event-sourced: it keeps the inputs it applied, so `back`
//! and `forward` rebuild exact moments by replaying them, and `save` writes them as a journal
//! that `orca replay` reads.
//!
//! ```
//! use orca::stepper::{Command, Session};
//! let text = r#"Machine(initial: "off", states: {
//!     "off": (on: {"FLIP": "on"}), "on": (on: {"FLIP": "off"})})"#;
//! let mut s = Session::from_text("switch.ron", text).unwrap();
//! let r = s.run(Command::parse("FLIP").unwrap());
//! assert_eq!(r.taken, vec!["off → on"]);
//! s.run(Command::parse("back").unwrap());
//! assert_eq!(s.instance().configuration_paths(), vec!["off"]);
//! ```

pub mod workflow;

use crate::chart::{Chart, CompileOptions, load_chart_str};
use crate::interpreter::{Event, Host, Instance, Offer, Why};
use crate::journal::{Body, Header, JournalWriter, SyncPolicy};
use crate::model::{DurationMs, Json};
use crate::runtime::{Recorded, Runner, Step, StepInput};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One stepper command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `send NAME [JSON]`, or just `NAME [JSON]`.
    Send {
        name: String,
        data: Json,
    },
    /// `tick DURATION` (`None`: to the next timer).
    Tick(Option<u64>),
    Back(usize),
    Forward(usize),
    /// `why NAME [JSON]`.
    Why {
        name: String,
        data: Json,
    },
    Events,
    Context,
    /// `tree` (the active configuration) or `tree PATH` (every state under PATH, the active
    /// ones marked).
    Tree(Option<String>),
    Timers,
    History,
    Set {
        name: String,
        value: Json,
    },
    Save(String),
    /// `ok INVOKE [JSON]` / `fail INVOKE [MESSAGE]`: an invoked command ends.
    Finish {
        path: Vec<String>,
        ok: bool,
        data: Json,
    },
    Reset,
    Help,
    Quit,
}

/// The commands, for help and completion.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "send",
        "send NAME [JSON]   deliver an external event (or just: NAME [JSON])",
    ),
    (
        "tick",
        "tick [DURATION]    advance the virtual clock by DURATION, or to the next timer",
    ),
    ("back", "back [N]           undo N steps (1)"),
    ("forward", "forward [N]        redo N undone steps (1)"),
    (
        "why",
        "why NAME [JSON]    explain what NAME would do, transition by transition",
    ),
    (
        "events",
        "events             the events the active states offer, guards evaluated",
    ),
    ("context", "context            the context"),
    (
        "tree",
        "tree [PATH]        the active configuration, or every state under PATH (* = active)",
    ),
    ("timers", "timers             pending delayed events"),
    ("history", "history            the steps of this session"),
    (
        "set",
        "set NAME JSON      change a context value (recorded as an input)",
    ),
    ("save", "save PATH          write this session as a journal"),
    (
        "ok",
        "ok INVOKE [JSON]   an invoked command succeeded, with its result",
    ),
    ("fail", "fail INVOKE [MSG]  an invoked command failed"),
    ("reset", "reset              start over"),
    ("help", "help               this list"),
    ("quit", "quit               leave (Ctrl-D too)"),
];

impl Command {
    /// Parses one line. Errors are one line, for the user.
    pub fn parse(line: &str) -> Result<Command, String> {
        let line = line.trim();
        let (word, rest) = match line.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (line, ""),
        };
        let json = |text: &str| -> Result<Json, String> {
            if text.is_empty() {
                return Ok(Json::Null);
            }
            serde_json::from_str(text).map_err(|e| format!("`{text}` is not JSON: {e}"))
        };
        let count = |text: &str| -> Result<usize, String> {
            if text.is_empty() {
                return Ok(1);
            }
            text.parse()
                .map_err(|_| format!("`{text}` is not a number of steps"))
        };
        let needs = |what: &str| format!("`{word}` needs {what}");
        Ok(match word {
            "" => return Err("an empty line: type `help` for the commands".into()),
            "send" => {
                let (name, data) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                if name.is_empty() {
                    return Err(needs("an event name"));
                }
                Command::Send {
                    name: name.into(),
                    data: json(data.trim())?,
                }
            }
            "tick" => Command::Tick(if rest.is_empty() {
                None
            } else {
                let d: DurationMs = rest.parse().map_err(|e| format!("`{rest}`: {e}"))?;
                Some(d.0)
            }),
            "back" => Command::Back(count(rest)?),
            "forward" => Command::Forward(count(rest)?),
            "why" if rest.is_empty() => return Err(needs("an event name")),
            "why" => {
                let (name, data) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                Command::Why {
                    name: name.into(),
                    data: json(data.trim())?,
                }
            }
            "events" => Command::Events,
            "context" => Command::Context,
            "tree" => Command::Tree((!rest.is_empty()).then(|| rest.to_string())),
            "timers" => Command::Timers,
            "history" => Command::History,
            "set" => {
                let (name, value) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| needs("a name and a JSON value"))?;
                Command::Set {
                    name: name.into(),
                    value: json(value.trim())?,
                }
            }
            "save" if rest.is_empty() => return Err(needs("a path")),
            "save" => Command::Save(rest.into()),
            "ok" | "fail" => {
                let (id, more) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                if id.is_empty() {
                    return Err(needs("an invoke id"));
                }
                let more = more.trim();
                let data = if word == "ok" {
                    json(more)?
                } else if more.is_empty() {
                    Json::Null
                } else {
                    serde_json::json!({ "message": more })
                };
                Command::Finish {
                    path: id.split('/').map(String::from).collect(),
                    ok: word == "ok",
                    data,
                }
            }
            "reset" => Command::Reset,
            "help" | "?" => Command::Help,
            "quit" | "exit" => Command::Quit,
            name if is_event_name(name) => Command::Send {
                name: name.into(),
                data: json(rest)?,
            },
            other => {
                return Err(format!(
                    "unknown command `{other}`: type `help` for the commands"
                ));
            }
        })
    }
}

/// Event names are dotted identifiers; anything else on its own is a typo of a command.
fn is_event_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

/// What a command did: the step it applied (if any) and what to show.
#[derive(Debug, Default)]
pub struct Reply {
    /// The transitions taken by the step this command applied.
    pub taken: Vec<String>,
    /// The event enabled no transition.
    pub ignored: bool,
    /// A one-line error (the session goes on).
    pub error: Option<String>,
    /// Whether the state may have changed (the view is shown again).
    pub changed: bool,
    /// Command-specific output, for `--json` (`why`, `events`, `timers`, `history`, …).
    pub extra: Option<(&'static str, Json)>,
    /// Command-specific output for people.
    pub text: Option<String>,
    pub quit: bool,
}

/// A stepping session over one machine.
pub struct Session {
    file: String,
    source: String,
    chart: Arc<Chart>,
    host: Arc<Host>,
    runner: Runner,
    /// Every input of the session's current line, including undone ones after `cursor`.
    inputs: Vec<StepInput>,
    /// How many of `inputs` are applied (at least 1: the start).
    cursor: usize,
    /// The step each applied input produced, for `history`.
    steps: Vec<Step>,
    /// `--journal`: where the session is recorded as it goes.
    journal: Option<Recording>,
}

/// A session being journaled: the writer, and the record of each input in effect.
struct Recording {
    writer: JournalWriter,
    /// `seqs[i]` is the record of `inputs[i]` (valid up to the cursor).
    seqs: Vec<u64>,
    /// The record of the step just written by the recorder.
    last: Arc<Mutex<Option<u64>>>,
    /// The first write that failed, to be told to the user.
    failed: Arc<Mutex<Option<String>>>,
    /// Whether the journal may hold rewinds (not one continued from `orca run`).
    rewinds: bool,
}

impl Recording {
    /// A recorder that appends what the runner does and notes the step's record.
    fn recorder(&self) -> crate::runtime::Recorder {
        let w = self.writer.clone();
        let last = self.last.clone();
        let failed = self.failed.clone();
        Box::new(move |item: &Recorded| {
            let is_step = matches!(item, Recorded::Step(_));
            match w.append(Body::from(item)) {
                Ok(seq) if is_step => *last.lock().expect("not poisoned") = Some(seq),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "journal append failed");
                    failed.lock().expect("not poisoned").get_or_insert(e);
                }
            }
        })
    }
}

impl Session {
    /// Loads a machine file and starts it.
    pub fn open(path: &Path) -> Result<Session, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Session::from_text(&path.display().to_string(), &text)
    }

    /// Starts a machine from its text (`name` is used in messages and journals).
    pub fn from_text(name: &str, text: &str) -> Result<Session, String> {
        let mut s = Session::unstarted(name, text)?;
        s.push(StepInput::Start {});
        Ok(s)
    }

    /// A session over a machine that has not been started: no input applied yet.
    fn unstarted(name: &str, text: &str) -> Result<Session, String> {
        let host = Arc::new(Host::default());
        let opts: CompileOptions = host.compile_options();
        let (chart, _) =
            load_chart_str(name, text, &opts).map_err(|d| d.to_string().trim().to_string())?;
        let chart = Arc::new(chart);
        let runner = simulating(&chart, &host);
        Ok(Session {
            file: name.into(),
            source: text.into(),
            chart,
            host,
            runner,
            inputs: Vec::new(),
            cursor: 0,
            steps: Vec::new(),
            journal: None,
        })
    }

    /// Opens a machine and records the session in a new journal at `journal`, or continues
    /// the one there (of an earlier session, or of `orca run`) from its end.
    pub fn open_journaled(path: &Path, journal: &Path) -> Result<Session, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Session::journaled_text(path, &text, journal)
    }

    /// [`open_journaled`](Self::open_journaled) of a machine already read from `path`.
    pub fn journaled_text(path: &Path, text: &str, journal: &Path) -> Result<Session, String> {
        let name = path.display().to_string();
        let mut s = Session::unstarted(&name, text)?;
        if !journal.exists() {
            let mut header = Header::for_machine(path, text, "virtual");
            header.rewinds = true;
            let writer = JournalWriter::create(journal, header, SyncPolicy::Batch)
                .map_err(|e| e.to_string())?;
            s.record_to(writer, Vec::new(), true);
            s.push(StepInput::Start {});
            return Ok(s);
        }
        let (writer, existing) = JournalWriter::open_append(journal, SyncPolicy::Batch)
            .map_err(|e| format!("{}: {e}", journal.display()))?;
        if existing.header.hash != crate::journal::sha256_hex(text.as_bytes()) {
            return Err(format!(
                "{}: the journal records another version of {} (its text differs); step the journal's own with `orca replay`, or start a new journal",
                journal.display(),
                path.display()
            ));
        }
        let line = crate::journal::replay::inputs_in_effect(&existing.records);
        s.inputs = line.iter().map(|(_, i)| i.clone()).collect();
        if s.inputs.first() != Some(&StepInput::Start {}) {
            return Err(format!(
                "{}: the journal does not start its machine",
                journal.display()
            ));
        }
        s.rebuild(s.inputs.len());
        let seqs = line.iter().map(|(q, _)| *q).collect();
        s.record_to(writer, seqs, existing.header.rewinds);
        Ok(s)
    }

    /// Journals the session from here on (`seqs`: the records of the inputs in effect).
    fn record_to(&mut self, writer: JournalWriter, seqs: Vec<u64>, rewinds: bool) {
        let rec = Recording {
            writer,
            seqs,
            last: Arc::new(Mutex::new(None)),
            failed: Arc::new(Mutex::new(None)),
            rewinds,
        };
        self.runner.set_recorder(rec.recorder());
        self.journal = Some(rec);
    }

    fn fresh(&self) -> Runner {
        simulating(&self.chart, &self.host)
    }

    /// Waits until everything recorded is durable (at the end of a session).
    pub fn close(&mut self) -> Result<(), String> {
        match &self.journal {
            Some(j) => j.writer.close(),
            None => Ok(()),
        }
    }

    /// The root instance as it is now.
    pub fn instance(&self) -> &Instance {
        self.runner.root()
    }

    /// The number of steps applied after the start.
    pub fn step_number(&self) -> usize {
        self.cursor - 1
    }

    /// The steps applied so far, the start first (the inputs undone by `back` are not
    /// among them).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// How many inputs the session's line holds: applied ones and those `forward` redoes.
    pub fn line_len(&self) -> usize {
        self.inputs.len()
    }

    /// The machine being stepped.
    pub fn chart(&self) -> &Arc<Chart> {
        &self.chart
    }

    /// Event names for completion: every name the chart's transitions are written with.
    pub fn event_names(&self) -> Vec<String> {
        self.instance().event_names()
    }

    /// Applies a new input: whatever had been undone is dropped.
    fn push(&mut self, input: StepInput) -> &Step {
        self.inputs.truncate(self.cursor);
        self.steps.truncate(self.cursor);
        self.inputs.push(input);
        self.advance()
    }

    /// Applies the next input of the line (a new one, or one undone before).
    fn advance(&mut self) -> &Step {
        let input = self.inputs[self.cursor].clone();
        self.cursor += 1;
        let step = self.runner.apply(input);
        self.note_record();
        self.steps.push(step);
        self.steps.last().expect("just pushed")
    }

    /// Keeps the journal record of the input just applied, if journaling.
    fn note_record(&mut self) {
        if let Some(j) = &mut self.journal {
            let seq = j.last.lock().expect("not poisoned").take().unwrap_or(0);
            j.seqs.truncate(self.cursor - 1);
            j.seqs.push(seq);
        }
    }

    /// Rebuilds the state after the first `n` inputs (event-sourced: a fresh instance replays
    /// them, so the moment is exact).
    fn rebuild(&mut self, n: usize) {
        self.runner = self.fresh();
        self.steps.clear();
        for input in &self.inputs[..n] {
            self.steps.push(self.runner.apply(input.clone()));
        }
        self.cursor = n;
        // Recorded from here on; the journal learns of the way back from a rewind record.
        if let Some(j) = &self.journal {
            self.runner.set_recorder(j.recorder());
            let to = j.seqs[n - 1];
            if let Err(e) = j.writer.append(Body::Rewind(crate::journal::Rewind { to })) {
                tracing::error!(error = %e, "journal append failed");
            }
        }
    }

    /// Going back cannot be recorded in a journal that does not allow rewinds.
    fn can_go_back(&self) -> Result<(), String> {
        match &self.journal {
            Some(j) if !j.rewinds => Err(
                "this journal (from `orca run`) cannot record going back: `save` the session to a new journal and step that"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Parses and runs one line; a line that does not parse is an error reply.
    pub fn run_line(&mut self, line: &str) -> Reply {
        match Command::parse(line) {
            Ok(cmd) => self.run(cmd),
            Err(e) => Reply {
                error: Some(e),
                ..Default::default()
            },
        }
    }

    /// Runs one command.
    pub fn run(&mut self, cmd: Command) -> Reply {
        let mut reply = Reply::default();
        let step_reply = |step: &Step, reply: &mut Reply| {
            reply.taken = step.taken();
            reply.ignored = step.ignored();
            reply.changed = true;
        };
        match cmd {
            Command::Send { name, data } => {
                if let Err(e) = self.known_event(&name) {
                    reply.error = Some(e);
                    return reply;
                }
                let input = StepInput::Event {
                    name: name.into(),
                    data,
                };
                let step = self.push(input);
                step_reply(step, &mut reply);
            }
            Command::Tick(by) => {
                let to = match by {
                    Some(d) => self.instance().now().saturating_add(d),
                    None => match self.runner.next_due() {
                        Some(t) => t,
                        None => {
                            reply.error = Some("no timers are pending".into());
                            return reply;
                        }
                    },
                };
                let step = self.push(StepInput::Advance { to });
                step_reply(step, &mut reply);
            }
            Command::Set { name, value } => {
                let step = self.push(StepInput::Set { name, value });
                step_reply(step, &mut reply);
            }
            Command::Finish { path, ok, data } => {
                if !self
                    .runner
                    .children()
                    .any(|(p, machine)| !machine && p == path.as_slice())
                {
                    reply.error = Some(format!(
                        "no invoked command `{}` is running",
                        path.join("/")
                    ));
                    return reply;
                }
                let step = self.push(StepInput::Finished { path, ok, data });
                step_reply(step, &mut reply);
            }
            Command::Back(n) => {
                if let Err(e) = self.can_go_back() {
                    reply.error = Some(e);
                    return reply;
                }
                let n = n.min(self.cursor - 1);
                if n == 0 {
                    reply.error = Some("already at the start".into());
                    return reply;
                }
                self.rebuild(self.cursor - n);
                reply.changed = true;
            }
            Command::Forward(n) => {
                let n = n.min(self.inputs.len() - self.cursor);
                if n == 0 {
                    reply.error = Some("nothing to redo".into());
                    return reply;
                }
                for _ in 0..n {
                    self.advance();
                }
                if let Some(step) = self.steps.last() {
                    step_reply(step, &mut reply);
                }
            }
            Command::Reset => {
                if let Err(e) = self.can_go_back() {
                    reply.error = Some(e);
                    return reply;
                }
                self.inputs.truncate(1);
                self.rebuild(1);
                reply.changed = true;
            }
            Command::Why { name, data } => {
                let event = Event::external(name.as_str()).with_data(data);
                let why = self.instance().why(&event);
                reply.text = Some(why_text(&name, &why));
                reply.extra = Some(("why", serde_json::to_value(&why).unwrap_or_default()));
            }
            Command::Events => {
                let offered = self.instance().offered();
                reply.text = Some(offered_text(&offered));
                reply.extra = Some(("events", serde_json::to_value(&offered).unwrap_or_default()));
            }
            Command::Context => {
                reply.text = Some(
                    serde_json::to_string_pretty(self.instance().context()).unwrap_or_default(),
                );
            }
            Command::Tree(None) => reply.text = Some(self.tree()),
            Command::Tree(Some(path)) => match self.subtree(&path) {
                Ok(t) => reply.text = Some(t),
                Err(e) => reply.error = Some(e),
            },
            Command::Timers => {
                reply.text = Some(self.timers_text());
                reply.extra = Some(("timers", self.timers_json()));
            }
            Command::History => {
                let lines: Vec<Json> = self
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        serde_json::json!({"step": i, "t": s.t, "input": s.input.describe(), "taken": s.taken()})
                    })
                    .collect();
                let text = self
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let taken = s.taken();
                        format!(
                            "{i:>4}  {:>8}  {}{}",
                            DurationMs(s.t).to_string(),
                            s.input.describe(),
                            if taken.is_empty() {
                                String::new()
                            } else {
                                format!("   [{}]", taken.join("; "))
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let undone = self.inputs.len() - self.cursor;
                reply.text = Some(if undone > 0 {
                    format!("{text}\n({undone} undone: `forward` redoes them)")
                } else {
                    text
                });
                reply.extra = Some(("history", Json::Array(lines)));
            }
            Command::Save(path) => match self.save(Path::new(&path)) {
                Ok(n) => reply.text = Some(format!("saved {n} steps to {path}")),
                Err(e) => reply.error = Some(e),
            },
            Command::Help => {
                reply.text = Some(
                    COMMANDS
                        .iter()
                        .map(|(_, h)| *h)
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
            Command::Quit => reply.quit = true,
        }
        if let Some(e) = self.journal_failure() {
            reply.error = Some(e);
        }
        reply
    }

    /// Refuses an event that no transition of the machine is written for (a typo, most
    /// likely), naming the closest one.
    fn known_event(&self, name: &str) -> Result<(), String> {
        let chart = &self.chart;
        let takes = |t: &crate::chart::Transition| t.events.iter().any(|d| d.matches(name));
        if chart.transitions.iter().any(takes) {
            return Ok(());
        }
        let names = self.event_names();
        let hint = crate::model::diagnostic::did_you_mean(name, names.iter().map(String::as_str))
            .map(|m| format!(" (did you mean `{m}`?)"))
            .unwrap_or_default();
        Err(format!(
            "unknown event `{name}`: no transition of the machine takes it{hint}"
        ))
    }

    /// A journal write that failed since the last command (the session goes on unrecorded).
    fn journal_failure(&mut self) -> Option<String> {
        let j = self.journal.as_ref()?;
        let e = j.failed.lock().expect("not poisoned").take()?;
        Some(format!("the journal could not be written: {e}"))
    }

    /// Writes the session's current line as a journal (a new file): `orca replay` reproduces
    /// every step. Returns the number of steps written.
    pub fn save(&self, path: &Path) -> Result<usize, String> {
        let mut header = Header::for_machine(Path::new(&self.file), &self.source, "virtual");
        // A session continued from it (`orca step --journal`) may go back and forth.
        header.rewinds = true;
        let w =
            JournalWriter::create(path, header, SyncPolicy::Batch).map_err(|e| e.to_string())?;
        // Rebuilt with a recorder, so that invoked machines' definitions are written too.
        let items = Arc::new(Mutex::new(Vec::new()));
        let sink = items.clone();
        let mut runner = self.fresh();
        runner.set_recorder(Box::new(move |r: &Recorded| {
            sink.lock().expect("not poisoned").push(Body::from(r))
        }));
        for input in &self.inputs[..self.cursor] {
            runner.apply(input.clone());
        }
        let bodies = std::mem::take(&mut *items.lock().expect("not poisoned"));
        for body in bodies {
            w.append(body).map_err(|e| e.to_string())?;
        }
        w.close().map_err(|e| e.to_string())?;
        Ok(self.cursor)
    }

    /// The active configuration, indented by depth.
    pub fn tree(&self) -> String {
        let inst = self.instance();
        let chart = inst.chart();
        inst.configuration()
            .filter(|s| !s.is_root())
            .map(|s| {
                let st = chart.state(s);
                format!("{}{}", "  ".repeat(st.depth as usize - 1), st.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every state under `path` (the path itself included), indented, `*` on the active ones.
    pub fn subtree(&self, path: &str) -> Result<String, String> {
        let inst = self.instance();
        let chart = inst.chart();
        // A full path, or a name unique in the machine (as targets resolve).
        let top = chart.find(path).or_else(|| {
            let mut named = chart.states.iter().filter(|s| s.name == path);
            match (named.next(), named.next()) {
                (Some(s), None) => Some(s.id),
                _ => None,
            }
        });
        let Some(top) = top else {
            let paths = self.state_paths();
            let by_path =
                crate::model::diagnostic::did_you_mean(path, paths.iter().map(String::as_str));
            // Or by the last name: `shiped` → `paid.shipped`.
            let by_name = || {
                let names: Vec<&str> = paths.iter().filter_map(|p| p.rsplit('.').next()).collect();
                let m = crate::model::diagnostic::did_you_mean(path, names.iter().copied())?;
                paths
                    .iter()
                    .find(|p| p.rsplit('.').next() == Some(m))
                    .cloned()
            };
            return Err(match by_path.map(str::to_string).or_else(by_name) {
                Some(m) => format!("no state `{path}`; did you mean `{m}`?"),
                None => format!("no state `{path}`"),
            });
        };
        let base = chart.state(top).depth;
        Ok(chart
            .states
            .iter()
            .filter(|s| s.id == top || chart.is_descendant(s.id, top))
            .map(|s| {
                let mark = if inst.is_active(s.id) { "*" } else { " " };
                format!(
                    "{mark} {}{}",
                    "  ".repeat((s.depth - base) as usize),
                    s.display_path()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Every state's path, for completion and hints.
    pub fn state_paths(&self) -> Vec<String> {
        self.instance()
            .chart()
            .states
            .iter()
            .filter(|s| !s.id.is_root())
            .map(|s| s.path.clone())
            .collect()
    }

    fn timers_json(&self) -> Json {
        Json::Array(
            self.instance()
                .timers()
                .iter()
                .map(|t| t.to_json())
                .collect(),
        )
    }

    fn timers_text(&self) -> String {
        let timers = self.instance().timers();
        if timers.is_empty() {
            return "no timers".into();
        }
        timers
            .iter()
            .map(|t| {
                format!(
                    "at {} (in {}): {} to {}",
                    DurationMs(t.due),
                    DurationMs(t.due.saturating_sub(self.instance().now())),
                    t.event.name,
                    t.target
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The view shown after a change: tree, context (changed values marked), timers, events.
    pub fn view(&self, before: Option<&indexmap::IndexMap<String, Json>>) -> String {
        let inst = self.instance();
        let mut out = format!(
            "step {} at {} — {}\n{}\n",
            self.step_number(),
            DurationMs(inst.now()),
            crate::runtime::status_text(inst.status()),
            self.tree()
        );
        for (k, v) in inst.context() {
            let mark = if before.is_some_and(|b| b.get(k) != Some(v)) {
                "*"
            } else {
                " "
            };
            out.push_str(&format!("{mark} {k} = {v}\n"));
        }
        if !inst.timers().is_empty() {
            out.push_str(&self.timers_text());
            out.push('\n');
        }
        out.push_str(&offered_text(&inst.offered()));
        out
    }

    /// The JSON object printed for every command in scripted mode (cli.md).
    pub fn json(&self, reply: &Reply) -> Json {
        let mut v = self.instance().snapshot();
        v["step"] = self.step_number().into();
        v["t"] = self.instance().now().into();
        v["taken"] = reply.taken.clone().into();
        v["ignored"] = reply.ignored.into();
        v["error"] = reply.error.clone().map_or(Json::Null, Json::String);
        if let Some((k, x)) = &reply.extra {
            v[*k] = x.clone();
        }
        v
    }
}

/// A fresh runner for stepping `chart` by hand.
fn simulating(chart: &Arc<Chart>, host: &Arc<Host>) -> Runner {
    Runner::simulating(
        Instance::with_host(chart.clone(), host.clone()),
        host.clone(),
    )
}

fn offered_text(offered: &[Offer]) -> String {
    if offered.is_empty() {
        return "no events are offered".into();
    }
    let mut s = String::from("events:");
    for o in offered {
        let guard = match (&o.guard, o.holds) {
            (None, _) => String::new(),
            (Some(g), Some(true)) => format!("  [{g}: true]"),
            (Some(g), Some(false)) => format!("  [{g}: false]"),
            (Some(g), None) => format!("  [{g}: depends on the event's data]"),
        };
        s.push_str(&format!("\n  {:<12} {}{guard}", o.event, o.transition));
    }
    s
}

fn why_text(name: &str, why: &[Why]) -> String {
    if why.is_empty() {
        return format!("no transition of an active state matches `{name}`: it would be ignored");
    }
    let mut s = String::new();
    let mut from = "";
    for w in why {
        if w.from != from {
            from = &w.from;
            s.push_str(&format!("in {from}:\n"));
        }
        let reads = if w.reads.is_empty() {
            String::new()
        } else {
            format!(
                " (reads {})",
                w.reads
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let guard = w.guard.as_deref().unwrap_or("");
        let verdict = match &w.verdict {
            crate::interpreter::Verdict::Enabled if guard.is_empty() => "taken".to_string(),
            crate::interpreter::Verdict::Enabled => {
                format!("taken: guard `{guard}` is true{reads}")
            }
            crate::interpreter::Verdict::GuardFalse => {
                format!("not taken: guard `{guard}` is false{reads}")
            }
            crate::interpreter::Verdict::GuardError(e) => {
                format!("not taken: guard `{guard}` failed: {e}")
            }
            crate::interpreter::Verdict::Shadowed { by } => {
                format!("not taken: shadowed by {by}, which is selected first")
            }
            crate::interpreter::Verdict::Preempted { by } => {
                format!("not taken: preempted by {by} (they exit the same states)")
            }
        };
        s.push_str(&format!("  {}: {verdict}\n", w.transition));
    }
    s.trim_end().to_string()
}
