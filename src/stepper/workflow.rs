//! `orca step WORKFLOW.ron`: a workflow simulated by hand. Nothing is executed; each phase that
//! would run is shown as "would run …", and the user answers for it with `ok OP [JSON]`,
//! `fail OP [MESSAGE]` or `cancel OP`. The session keeps the answers, so `back` and `forward`
//! rebuild exact moments by replaying them into a fresh simulation.
//!
//! ```
//! use orca::stepper::workflow::WorkflowSession;
//! let text = r#"Workflow(id: "w", tasks: { "a": (run: Shell("make a")), "b": (after: ["a"], run: Shell("make b")) })"#;
//! let mut s = WorkflowSession::from_text("w.ron", text, std::path::Path::new(".")).unwrap();
//! assert_eq!(s.would_run()[0].path, "a");
//! s.run_line("ok a");
//! assert_eq!(s.would_run()[0].path, "b");
//! s.run_line("back");
//! assert_eq!(s.would_run()[0].path, "a");
//! ```

use crate::lifecycle::plan::Plan;
use crate::model::Json;
use crate::model::SourceFile;
use crate::runtime::workflow::work::WorkResult;
use crate::runtime::workflow::{Engine, EngineOptions, WouldRun};
use std::path::{Path, PathBuf};

/// The commands of a workflow session, for help and completion.
pub const WORKFLOW_COMMANDS: &[(&str, &str)] = &[
    (
        "ok",
        "ok OP [JSON]       the work OP would run succeeds, with this output",
    ),
    (
        "fail",
        "fail OP [MESSAGE]  the work OP would run fails (retryable, as a non-zero exit)",
    ),
    (
        "cancel",
        "cancel OP          cancel OP and what it contains",
    ),
    (
        "tick",
        "tick [DURATION]    advance the virtual clock (retry backoffs, timeouts), or to the next timer",
    ),
    (
        "tree",
        "tree               the operations with their states",
    ),
    ("back", "back [N]           undo N answers (1)"),
    ("forward", "forward [N]        redo N undone answers (1)"),
    ("reset", "reset              start over"),
    ("help", "help               this list"),
    ("quit", "quit               leave"),
];

/// One answer the user gave: what the session replays to rebuild a moment.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Ok(String, Json),
    Fail(String, String),
    Cancel(String),
    Tick(Option<u64>),
}

/// What one command did.
#[derive(Debug, Clone, Default)]
pub struct WorkflowReply {
    /// Lifecycle changes it caused, as `op: From → To`.
    pub changes: Vec<String>,
    /// Text to show (help, tree).
    pub text: Option<String>,
    pub error: Option<String>,
    pub quit: bool,
}

/// A simulated workflow driven by hand.
pub struct WorkflowSession {
    plan: Plan,
    engine: Engine,
    answers: Vec<Answer>,
    /// Answers undone by `back`, for `forward`.
    undone: Vec<Answer>,
    changes: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
}

struct Collect(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

impl crate::runtime::workflow::Observer for Collect {
    fn change(&mut self, c: &crate::runtime::workflow::Change) {
        let why = c
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        self.0
            .borrow_mut()
            .push(format!("{}: {} → {}{why}", c.path, c.from, c.to));
    }
}

impl WorkflowSession {
    /// Opens a workflow file for simulation.
    pub fn open(path: &Path) -> Result<WorkflowSession, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let base = crate::lifecycle::plan::base_dir(path).to_path_buf();
        WorkflowSession::from_text(&path.display().to_string(), &text, &base)
    }

    /// A session over workflow text; `name` is what diagnostics call it.
    pub fn from_text(name: &str, text: &str, base: &Path) -> Result<WorkflowSession, String> {
        let (plan, _) =
            Plan::load_source(SourceFile::new(name, text), base).map_err(|d| d.to_string())?;
        let changes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let engine = fresh(&plan, &changes);
        Ok(WorkflowSession {
            plan,
            engine,
            answers: Vec::new(),
            undone: Vec::new(),
            changes,
        })
    }

    /// How many answers are in effect (what `back` and `forward` count from).
    pub fn answers_given(&self) -> usize {
        self.answers.len()
    }

    /// The simulated engine, as it is now.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The work the simulation waits for.
    pub fn would_run(&self) -> Vec<WouldRun> {
        self.engine.would_run()
    }

    /// Operation paths, for completion.
    pub fn operation_names(&self) -> Vec<String> {
        (0..self.engine.plan().ops.len())
            .map(|i| self.engine.plan().display_path(i).to_string())
            .collect()
    }

    /// Parses and runs one command line.
    pub fn run_line(&mut self, line: &str) -> WorkflowReply {
        self.changes.borrow_mut().clear();
        let mut words = line.trim().splitn(2, char::is_whitespace);
        let cmd = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("").trim();
        let (op, arg) = match rest.split_once(char::is_whitespace) {
            Some((o, a)) => (o, a.trim()),
            None => (rest, ""),
        };
        let mut reply = WorkflowReply::default();
        let result = match cmd {
            "ok" => serde_json::from_str::<Json>(if arg.is_empty() { "null" } else { arg })
                .map_err(|e| format!("`{arg}` is not JSON: {e}"))
                .and_then(|data| self.give(Answer::Ok(op.to_string(), data))),
            "fail" => self.give(Answer::Fail(
                op.to_string(),
                if arg.is_empty() {
                    "failed (simulated)".to_string()
                } else {
                    arg.to_string()
                },
            )),
            "cancel" => self.give(Answer::Cancel(op.to_string())),
            "tick" => {
                let by = if rest.is_empty() {
                    Ok(None)
                } else {
                    rest.parse::<crate::model::DurationMs>().map(|d| Some(d.0))
                };
                by.and_then(|by| self.give(Answer::Tick(by)))
            }
            "back" | "forward" => {
                let n = if rest.is_empty() {
                    Ok(1)
                } else {
                    rest.parse::<usize>()
                };
                match n {
                    Ok(n) if cmd == "back" => self.back(n),
                    Ok(n) => self.forward(n),
                    Err(_) => Err(format!("`{cmd} {rest}`: give a number of steps")),
                }
            }
            "reset" => {
                self.answers.clear();
                self.undone.clear();
                self.rebuild();
                Ok(())
            }
            "tree" | "status" => {
                reply.text = Some(self.tree());
                Ok(())
            }
            "help" => {
                reply.text = Some(
                    WORKFLOW_COMMANDS
                        .iter()
                        .map(|(_, h)| format!("  {h}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
                Ok(())
            }
            "quit" | "exit" => {
                reply.quit = true;
                Ok(())
            }
            other => Err(format!(
                "unknown command `{other}` (a workflow is stepped with ok, fail, cancel, tick, tree, back, forward, reset, help, quit)"
            )),
        };
        reply.error = result.err();
        reply.changes = std::mem::take(&mut *self.changes.borrow_mut());
        reply
    }

    fn find(&self, path: &str) -> Result<usize, String> {
        if path.is_empty() {
            return Err("name the operation (its dotted path)".into());
        }
        self.engine.plan().find(path).ok_or_else(|| {
            let names = self.operation_names();
            match crate::model::diagnostic::did_you_mean(path, names.iter().map(String::as_str)) {
                Some(m) => format!("no operation `{path}`; did you mean `{m}`?"),
                None => format!("no operation `{path}`"),
            }
        })
    }

    /// Applies an answer to the current simulation; on success it joins the history.
    fn give(&mut self, a: Answer) -> Result<(), String> {
        self.apply(&a)?;
        self.answers.push(a);
        self.undone.clear();
        Ok(())
    }

    fn apply(&mut self, a: &Answer) -> Result<(), String> {
        match a {
            Answer::Ok(op, data) => {
                let id = self.find(op)?;
                let text = match data {
                    Json::Null => String::new(),
                    v => v.to_string(),
                };
                self.engine.answer(
                    id,
                    WorkResult::Succeeded {
                        output: data.clone(),
                        text,
                    },
                )
            }
            Answer::Fail(op, msg) => {
                let id = self.find(op)?;
                self.engine.answer(
                    id,
                    WorkResult::Failed {
                        error: msg.clone(),
                        retryable: true,
                    },
                )
            }
            Answer::Cancel(op) => {
                let id = self.find(op)?;
                self.engine.cancel_op(id);
                Ok(())
            }
            Answer::Tick(by) => self.engine.sim_tick(*by).map(|_| ()),
        }
    }

    fn rebuild(&mut self) {
        self.engine = fresh(&self.plan, &self.changes);
        for a in self.answers.clone() {
            // Each was accepted when given; the simulation is deterministic.
            let _ = self.apply(&a);
        }
    }

    fn back(&mut self, n: usize) -> Result<(), String> {
        if n > self.answers.len() {
            return Err(format!(
                "only {} answers to go back over",
                self.answers.len()
            ));
        }
        for _ in 0..n {
            let a = self.answers.pop().expect("counted");
            self.undone.push(a);
        }
        self.rebuild();
        self.changes.borrow_mut().clear();
        Ok(())
    }

    fn forward(&mut self, n: usize) -> Result<(), String> {
        if n > self.undone.len() {
            return Err(format!("only {} undone answers to redo", self.undone.len()));
        }
        for _ in 0..n {
            let a = self.undone.pop().expect("counted");
            self.apply(&a)?;
            self.answers.push(a);
        }
        Ok(())
    }

    /// The operation tree with states, then what would run.
    pub fn tree(&self) -> String {
        let plan = self.engine.plan();
        let mut out = String::new();
        for (op, depth) in plan.preorder() {
            let attempt = self.engine.attempt(op);
            let extra = if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{}{} {}{extra}\n",
                "  ".repeat(depth),
                plan.ops[op].name,
                self.engine.state(op)
            ));
        }
        out
    }

    /// What the prompt shows: the tree, then what would run and what waits for a slot.
    pub fn view(&self) -> String {
        let mut out = self.tree();
        let would = self.would_run();
        let timers = self.engine.sim_timers();
        if would.is_empty() && timers.is_empty() {
            out.push_str(&format!(
                "nothing would run: the workflow is {}\n",
                self.engine.state(0)
            ));
        } else if would.is_empty() {
            out.push_str("nothing would run until a timer is due\n");
        }
        for w in would {
            let attempt = if w.attempt > 1 {
                format!(" (attempt {})", w.attempt)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "would run {}: {}{attempt}: {}\n",
                w.path, w.what, w.work
            ));
        }
        for op in self.engine.queued() {
            out.push_str(&format!(
                "waiting for a slot: {}\n",
                self.engine.plan().display_path(op)
            ));
        }
        let now = self.engine.sim_now();
        for (due, op, timeout) in timers {
            let path = self.engine.plan().display_path(op);
            let what = if timeout {
                format!("{path} times out")
            } else {
                format!("{path} retries (attempt {})", self.engine.attempt(op) + 1)
            };
            out.push_str(&format!(
                "timer: {what} at {} (in {}; `tick` to get there)\n",
                crate::model::DurationMs(due),
                crate::model::DurationMs(due - now)
            ));
        }
        out
    }

    /// The state as one JSON object (scripted use): the step, every operation, what would
    /// run, the changes the last command caused and its error.
    pub fn json(&self, reply: &WorkflowReply) -> Json {
        let plan = self.engine.plan();
        let ops: Vec<Json> = (0..plan.ops.len())
            .map(|i| {
                serde_json::json!({
                    "op": plan.display_path(i),
                    "state": self.engine.state(i),
                    "attempt": self.engine.attempt(i),
                })
            })
            .collect();
        let timers = self.engine.sim_timers();
        let would_run = self.would_run();
        let would: Vec<Json> = would_run
            .iter()
            .map(|w| {
                serde_json::json!({"op": w.path, "phase": w.what, "attempt": w.attempt, "work": w.work})
            })
            .collect();
        serde_json::json!({
            "step": self.answers.len(),
            "operations": ops,
            "would_run": would,
            "changes": reply.changes,
            "now_ms": self.engine.sim_now(),
            "timers": timers.iter().map(|&(due, op, timeout)| serde_json::json!({
                "op": plan.display_path(op),
                "due_ms": due,
                "kind": if timeout { "timeout" } else { "retry" },
            })).collect::<Vec<_>>(),
            "done": would_run.is_empty() && timers.is_empty(),
            "error": reply.error,
        })
    }
}

fn fresh(plan: &Plan, changes: &std::rc::Rc<std::cell::RefCell<Vec<String>>>) -> Engine {
    let mut e = Engine::new(
        plan.clone(),
        EngineOptions {
            run_id: "simulation".into(),
            run_dir: PathBuf::from("(simulation)"),
            max_parallel: None,
            compensate_on_cancel: false,
        },
    );
    e.simulate();
    e.set_observer(Box::new(Collect(changes.clone())));
    e.begin();
    e
}
