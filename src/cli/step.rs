//! `orca step FILE [--json]`: the interactive stepper (docs/stepper.md). The session itself is
//! `orca::stepper`; this is its terminal and its scripted mode.

use super::exit;
use crate::model::Json;
use crate::stepper::{COMMANDS, Session};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The machine to step through.
    file: PathBuf,
    /// One JSON object per command on stdout (for scripts), never a prompt.
    #[arg(long)]
    json: bool,
    /// Record the session in this journal as it goes (a new file), or continue the session
    /// (or `orca run`) recorded there.
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// Read the commands from this file (one a line, `#` starts a comment line) instead of
    /// standard input; `orca test-paths` and `orca verify` write such files.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Serve a live page of the session (default 127.0.0.1:0; the URL is printed) until
    /// `quit` or the end of the commands: the page sends events and goes back and forth
    /// too, and both views agree.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = crate::inspect::server::DEFAULT_ADDR)]
    inspect: Option<String>,
}

/// The scripted commands: from `--script FILE` or standard input, blank and `#` lines
/// skipped; `None` (said on stderr) if the script cannot be read.
fn script_lines(args: &Args) -> Option<Box<dyn Iterator<Item = String>>> {
    let lines: Box<dyn Iterator<Item = String>> = match &args.script {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Box::new(
                text.lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Err(e) => {
                eprintln!("orca: {}: cannot read: {e}", path.display());
                return None;
            }
        },
        None => Box::new(std::io::stdin().lock().lines().map_while(Result::ok)),
    };
    Some(Box::new(lines.filter(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    })))
}

pub fn run(args: Args) -> u8 {
    // Read once: what is stepped is what was looked at.
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("orca: {}: cannot read: {e}", args.file.display());
            return exit::USAGE;
        }
    };
    // Taken before a journal is opened: a bad address leaves nothing behind.
    let bound = match super::inspect::bind_opt(args.inspect.as_deref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    if crate::model::load::detect_kind(&text) == crate::model::load::FileKind::Workflow {
        return workflow(&args, &text, bound);
    }
    let opened = match &args.journal {
        Some(j) => Session::journaled_text(&args.file, &text, j),
        None => Session::from_text(&args.file.display().to_string(), &text),
    };
    let mut session = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::USAGE;
        }
    };
    let stdin = std::io::stdin();
    let at_terminal = args.script.is_none()
        && stdin.is_terminal()
        && std::io::stdout().is_terminal()
        && !args.json;
    if let Some(bound) = bound {
        let hub = crate::inspect::Hub::new(
            crate::inspect::Subject::Machine,
            crate::inspect::Mode::Step,
            &args.file.display().to_string(),
            crate::chart::graph::structure(session.chart()),
        );
        let terminal =
            at_terminal.then(|| (completions(&session), paint(&session.view(None), &COLOUR)));
        let code = inspected(&args, &mut session, hub, bound, terminal);
        return close(&mut session, code);
    }
    if at_terminal {
        let code = terminal(&mut session);
        return close(&mut session, code);
    }
    // Scripted: the same commands, one per line, no prompt and no colour.
    let Some(lines) = script_lines(&args) else {
        return close(&mut session, exit::USAGE);
    };
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for line in lines {
        let before = session.instance().context().clone();
        let reply = session.run_line(&line);
        failed |= reply.error.is_some();
        let written = if args.json {
            writeln!(out, "{}", session.json(&reply))
        } else {
            if let Some(e) = &reply.error {
                eprintln!("error: {e}");
            }
            write!(out, "{}", render(&session, &reply, &before, &PLAIN))
        };
        if written.is_err() || reply.quit {
            break;
        }
    }
    let _ = out.flush();
    // A script (`--script`) is a test: a command that failed fails it. Standard input keeps
    // going on errors, as a person at the prompt would.
    let code = if failed && args.script.is_some() {
        exit::FAILED
    } else {
        exit::OK
    };
    close(&mut session, code)
}

/// What reaches an inspected session, in the order it arrives.
enum Input {
    /// A line from the terminal or the script; the reader waits for the flag (quit?)
    /// before it prompts again, so that replies and prompts do not interleave.
    Line(String, Option<std::sync::mpsc::Sender<bool>>),
    /// A command from the page.
    Page(crate::inspect::PageCommand),
    /// The terminal's printer, which writes above the prompt while it waits for a line.
    Printer(Box<dyn rustyline::ExternalPrinter + Send>),
    /// No more lines.
    End,
}

/// Commands the page may not run: they end the session or write files where orca runs.
fn page_refuses(line: &str) -> Option<String> {
    let word = line.split_whitespace().next().unwrap_or("");
    matches!(word, "quit" | "exit" | "save")
        .then(|| format!("`{word}` is for the terminal, not the page"))
}

/// What the inspected loop needs of a session: machines and workflows alike.
trait Inspectable {
    /// Runs one line; what to show for it.
    fn line(&mut self, line: &str, style: &Style) -> Said;
    /// Tells the hub where the session stands.
    fn publish(&self, hub: &crate::inspect::Hub);
    /// The step the session is at (what `back` and `forward` count from).
    fn position(&self) -> usize;
    /// A command that changes nothing (a `goto` to where the session already is).
    const STAY: &'static str;
    /// Where an error goes when the output is not a terminal: standard error (the machine
    /// stepper's way) or the text on standard output (the workflow stepper's), as without
    /// `--inspect`.
    const ERRORS_ON_STDERR: bool;
}

/// The page's `goto N` (its timeline): `back` or `forward` from wherever the session is
/// when it runs, which the terminal may have moved since the page looked.
fn page_line(line: &str, at: usize, stay: &str) -> Result<String, String> {
    let Some(n) = line.strip_prefix("goto ") else {
        return Ok(line.to_string());
    };
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("`{line}`: give a step number"))?;
    Ok(match n.cmp(&at) {
        std::cmp::Ordering::Less => format!("back {}", at - n),
        std::cmp::Ordering::Greater => format!("forward {}", n - at),
        std::cmp::Ordering::Equal => stay.to_string(),
    })
}

/// What a line did, for the terminal (or script output) and for the page.
struct Said {
    /// For people: the reply rendered in the style (its error aside).
    text: String,
    error: Option<String>,
    /// Whether the session may have changed (the page is told, the terminal hears of it).
    changed: bool,
    quit: bool,
    /// The session's JSON view after the line (what `--json` prints instead of `text`).
    state: Json,
    /// The command's own text (`why`, `tree`, `help`), for the page.
    note: Option<String>,
}

impl Inspectable for Session {
    fn line(&mut self, line: &str, style: &Style) -> Said {
        let before = self.instance().context().clone();
        let reply = self.run_line(line);
        Said {
            text: render(self, &reply, &before, style),
            state: self.json(&reply),
            error: reply.error.clone(),
            changed: reply.changed,
            quit: reply.quit,
            note: reply.text.clone(),
        }
    }

    /// Every applied step, the line's length and the cursor, the timers and the events
    /// offered (guards evaluated), in one change.
    fn publish(&self, hub: &crate::inspect::Hub) {
        let inst = self.instance();
        let mut live = crate::inspect::machine_live(inst);
        live["offered"] = serde_json::to_value(inst.offered()).unwrap_or_default();
        live["cursor"] = self.steps().len().into();
        live["inputs"] = self.line_len().into();
        live["t"] = inst.now().into();
        hub.sync_steps(self.steps(), live);
    }

    fn position(&self) -> usize {
        self.step_number()
    }

    const STAY: &'static str = "context";
    const ERRORS_ON_STDERR: bool = true;
}

impl Inspectable for crate::stepper::workflow::WorkflowSession {
    fn line(&mut self, line: &str, _style: &Style) -> Said {
        let reply = self.run_line(line);
        Said {
            text: workflow_reply_text(self, &reply, false),
            state: self.json(&reply),
            error: reply.error.clone(),
            changed: reply.error.is_none() && reply.text.is_none() && !reply.quit,
            quit: reply.quit,
            note: reply.text.clone(),
        }
    }

    /// Every operation's state, and the work the simulation waits for.
    fn publish(&self, hub: &crate::inspect::Hub) {
        let engine = self.engine();
        let mut live = super::inspect::operations_live(engine);
        live["would_run"] = self
            .would_run()
            .iter()
            .map(|w| {
                serde_json::json!({
                    "op": w.path, "what": w.what, "attempt": w.attempt, "work": w.work,
                })
            })
            .collect();
        live["now"] = engine.sim_now().into();
        // A decompose answer grows the plan: the page draws it again.
        let ops = engine.plan().ops.len();
        if hub.with_structure(|s| s["ops"].as_array().map_or(0, Vec::len)) != ops {
            hub.set_structure(crate::lifecycle::graph::structure(engine.plan()));
        }
        hub.set_live(live);
    }

    fn position(&self) -> usize {
        self.answers_given()
    }

    const STAY: &'static str = "tree";
    const ERRORS_ON_STDERR: bool = false;
}

/// How a workflow session's reply reads: the changes, an error, the command's text or the
/// view.
fn workflow_reply_text(
    session: &crate::stepper::workflow::WorkflowSession,
    reply: &crate::stepper::workflow::WorkflowReply,
    with_error: bool,
) -> String {
    let mut text = String::new();
    for c in &reply.changes {
        text.push_str(&format!("  {c}\n"));
    }
    if let (Some(e), true) = (&reply.error, with_error) {
        text.push_str(&format!("error: {e}\n"));
    }
    match &reply.text {
        Some(t) => text.push_str(&format!("{t}\n")),
        None if reply.error.is_none() && !reply.quit => text.push_str(&session.view()),
        None => {}
    }
    text
}

/// `orca step --inspect`: one session driven from the terminal (or a script or a pipe) and
/// from the page at once. Lines are read on a thread of their own and commands from both
/// are run here in arrival order, so both views always show the same session.
fn inspected<S: Inspectable>(
    args: &Args,
    session: &mut S,
    hub: Arc<crate::inspect::Hub>,
    bound: crate::inspect::Bound,
    terminal: Option<(Completions, String)>,
) -> u8 {
    use crate::inspect::Control;
    session.publish(&hub);
    let (tx, rx) = std::sync::mpsc::channel::<Input>();
    let (page_tx, page_rx) = std::sync::mpsc::channel::<crate::inspect::PageCommand>();
    let served = match super::inspect::start(bound, hub.clone(), Control::Step(page_tx), None) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let pages = tx.clone();
    std::thread::spawn(move || {
        for cmd in page_rx {
            if pages.send(Input::Page(cmd)).is_err() {
                break;
            }
        }
    });
    let at_terminal = terminal.is_some();
    if let Some((completions, first)) = terminal {
        std::thread::spawn(move || read_terminal(tx, completions, first));
    } else {
        let lines = match &args.script {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text.lines().map(str::to_string).collect::<Vec<_>>()),
                Err(e) => {
                    eprintln!("orca: {}: cannot read: {e}", path.display());
                    return exit::USAGE;
                }
            },
            None => None,
        };
        std::thread::spawn(move || {
            let send = |line: String| {
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') {
                    return true;
                }
                let (ack, done) = std::sync::mpsc::channel();
                tx.send(Input::Line(line, Some(ack))).is_ok() && done.recv() == Ok(false)
            };
            match lines {
                Some(lines) => {
                    for l in lines {
                        if !send(l) {
                            break;
                        }
                    }
                }
                None => {
                    for l in std::io::stdin().lines().map_while(Result::ok) {
                        if !send(l) {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(Input::End);
        });
    }
    let style = if at_terminal { &COLOUR } else { &PLAIN };
    let mut printer: Option<Box<dyn rustyline::ExternalPrinter + Send>> = None;
    let mut failed = false;
    let mut out = std::io::stdout();
    for input in rx {
        match input {
            Input::Printer(p) => printer = Some(p),
            Input::End => break,
            Input::Line(line, ack) => {
                let said = session.line(&line, style);
                failed |= said.error.is_some();
                if said.changed {
                    session.publish(&hub);
                }
                let mut text = String::new();
                if let (Some(e), false) = (&said.error, args.json) {
                    if at_terminal {
                        text.push_str(&format!("{YELLOW}error:{RESET} {e}\n"));
                    } else if S::ERRORS_ON_STDERR {
                        eprintln!("error: {e}");
                    } else {
                        text.push_str(&format!("error: {e}\n"));
                    }
                }
                if args.json {
                    text = format!("{}\n", said.state);
                } else {
                    text.push_str(&said.text);
                }
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                if let Some(ack) = ack {
                    let _ = ack.send(said.quit);
                }
                if said.quit {
                    break;
                }
            }
            Input::Page(cmd) => {
                let line = page_line(&cmd.line, session.position(), S::STAY);
                let refused = match &line {
                    Ok(l) => page_refuses(l),
                    Err(e) => Some(e.clone()),
                };
                let said = match refused {
                    Some(e) => Said {
                        text: String::new(),
                        error: Some(e),
                        changed: false,
                        quit: false,
                        state: Json::Null,
                        note: None,
                    },
                    None => session.line(line.as_deref().unwrap_or(""), style),
                };
                if said.changed {
                    session.publish(&hub);
                }
                let answer = serde_json::json!({
                    "state": said.state,
                    "text": said.note,
                    "error": said.error,
                });
                let _ = cmd.reply.send(answer);
                // The terminal hears of what the page changed; `why` on hover stays quiet.
                if said.changed && !args.json {
                    let text = format!("page> {}\n{}", cmd.line, said.text);
                    match &mut printer {
                        Some(p) => {
                            let _ = p.print(text);
                        }
                        None => {
                            let _ = out.write_all(text.as_bytes());
                            let _ = out.flush();
                        }
                    }
                }
            }
        }
    }
    hub.end(serde_json::json!({ "ending": "the stepper session ended" }));
    served.stop();
    if failed && args.script.is_some() {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// The prompt's completion candidates for a session.
fn completions(session: &Session) -> Completions {
    let context: Vec<String> = session.instance().context().keys().cloned().collect();
    let events = session.event_names();
    Completions {
        first: COMMANDS
            .iter()
            .map(|(c, _)| c.to_string())
            .chain(events.iter().cloned())
            .collect(),
        after: vec![
            (&["send", "why"], events),
            (&["set"], context),
            (&["tree"], session.state_paths()),
        ],
    }
}

/// A line editor for the stepper: history without repeats, completion as a list.
fn editor(
    completions: Completions,
) -> rustyline::Result<rustyline::Editor<Completions, rustyline::history::DefaultHistory>> {
    let config = rustyline::Config::builder()
        .auto_add_history(true)
        .history_ignore_dups(true)?
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut rl = rustyline::Editor::with_config(config)?;
    rl.set_helper(Some(completions));
    Ok(rl)
}

/// The prompt of an inspected session, on its own thread: each line goes to the session
/// and the prompt comes back once it has been answered.
fn read_terminal(tx: std::sync::mpsc::Sender<Input>, completions: Completions, first: String) {
    use rustyline::error::ReadlineError;
    let mut rl = match editor(completions) {
        Ok(rl) => rl,
        Err(e) => {
            eprintln!("orca: cannot open the terminal: {e}");
            let _ = tx.send(Input::End);
            return;
        }
    };
    let history = history_file();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    if let Ok(p) = rl.create_external_printer() {
        let _ = tx.send(Input::Printer(Box::new(p)));
    }
    println!("{first}\n(type `help` for the commands; Tab completes)");
    loop {
        let line = match rl.readline(&format!("{BOLD}{GREEN}orca>{RESET} ")) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("orca: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let (ack, done) = std::sync::mpsc::channel();
        if tx.send(Input::Line(line, Some(ack))).is_err() || done.recv() != Ok(false) {
            break;
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.save_history(h);
    }
    let _ = tx.send(Input::End);
}

/// Makes the journal durable before leaving.
fn close(session: &mut Session, code: u8) -> u8 {
    match session.close() {
        Ok(()) => code,
        Err(e) => {
            eprintln!("orca: the journal could not be completed: {e}");
            exit::FAILED
        }
    }
}

/// Completion for the prompt: commands (and, for machines, event names) first; after a
/// command, what it takes (event names, context names, state or operation paths). A dotted
/// path also completes from its last name (`shi` → `paid.shipped`).
struct Completions {
    first: Vec<String>,
    /// Candidates after each of these command words.
    after: Vec<(&'static [&'static str], Vec<String>)>,
}

impl rustyline::completion::Completer for Completions {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let previous: Vec<&str> = before[..start].split_whitespace().collect();
        let pool: &[String] = match previous.as_slice() {
            [] => &self.first,
            [cmd] => self
                .after
                .iter()
                .find(|(cmds, _)| cmds.contains(cmd))
                .map_or(&[], |(_, c)| c.as_slice()),
            _ => &[],
        };
        let mut found: Vec<String> = pool
            .iter()
            .filter(|c| {
                c.starts_with(word)
                    || c.contains('.') && c.rsplit('.').next().is_some_and(|l| l.starts_with(word))
            })
            .cloned()
            .collect();
        found.dedup();
        Ok((start, found))
    }
}

impl rustyline::hint::Hinter for Completions {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completions {}
impl rustyline::validate::Validator for Completions {}
impl rustyline::Helper for Completions {}

/// Where the prompt's history is kept between sessions: `$ORCA_HISTORY`, else
/// `$XDG_STATE_HOME/orca/step_history`, else `~/.local/state/orca/step_history`.
fn history_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORCA_HISTORY") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("orca/step_history"))
}

const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// The stepper at a terminal: line editing, history kept across sessions, completion, colour.
fn terminal(session: &mut Session) -> u8 {
    use rustyline::error::ReadlineError;
    let mut rl = match editor(completions(session)) {
        Ok(rl) => rl,
        Err(e) => {
            eprintln!("orca: cannot open the terminal: {e}");
            return exit::FAILED;
        }
    };
    let history = history_file();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!(
        "{}\n(type `help` for the commands; Tab completes)",
        paint(&session.view(None), &COLOUR)
    );
    loop {
        let line = match rl.readline(&format!("{BOLD}{GREEN}orca>{RESET} ")) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue, // Ctrl-C cancels the line
            Err(ReadlineError::Eof) => break,            // Ctrl-D quits
            Err(e) => {
                eprintln!("orca: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let before = session.instance().context().clone();
        let reply = session.run_line(&line);
        if let Some(e) = &reply.error {
            println!("{YELLOW}error:{RESET} {e}");
        }
        print!("{}", render(session, &reply, &before, &COLOUR));
        if reply.quit {
            break;
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = rl.save_history(h) {
            eprintln!("orca: history not saved to {}: {e}", h.display());
        }
    }
    exit::OK
}

/// How replies look: plain for scripts, coloured at a terminal.
struct Style {
    bold: &'static str,
    changed: &'static str,
    reset: &'static str,
}

const PLAIN: Style = Style {
    bold: "",
    changed: "",
    reset: "",
};

const COLOUR: Style = Style {
    bold: BOLD,
    changed: YELLOW,
    reset: RESET,
};

/// What a reply shows (its error aside): transitions taken, whether the event was ignored,
/// the command's text, and the view when the state may have changed.
fn render(
    session: &Session,
    reply: &crate::stepper::Reply,
    before: &indexmap::IndexMap<String, crate::model::Json>,
    style: &Style,
) -> String {
    let mut text = String::new();
    for t in &reply.taken {
        text.push_str(&format!("{}→ {t}{}\n", style.bold, style.reset));
    }
    if reply.ignored {
        text.push_str("(ignored: no transition is enabled for it)\n");
    }
    if let Some(t) = &reply.text {
        text.push_str(t);
        text.push('\n');
    }
    if reply.changed {
        text.push_str(&paint(&session.view(Some(before)), style));
        text.push('\n');
    }
    text
}

/// Marks changed context values (lines starting `*`) in the style's colour.
fn paint(view: &str, style: &Style) -> String {
    view.lines()
        .map(|l| match l.strip_prefix("* ") {
            Some(rest) => format!("{}* {rest}{}", style.changed, style.reset),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `orca step WORKFLOW.ron`: a simulation answered by hand (docs/stepper.md).
fn workflow(args: &Args, text: &str, bound: Option<crate::inspect::Bound>) -> u8 {
    use crate::stepper::workflow::WorkflowSession;
    if args.journal.is_some() {
        eprintln!(
            "orca: --journal records machine sessions; a workflow simulation runs nothing to record"
        );
        return exit::USAGE;
    }
    let base = crate::lifecycle::plan::base_dir(&args.file);
    let mut session = match WorkflowSession::from_text(&args.file.display().to_string(), text, base)
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::USAGE;
        }
    };
    let interactive = args.script.is_none()
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && !args.json;
    let workflow_completions = |session: &WorkflowSession| Completions {
        first: crate::stepper::workflow::WORKFLOW_COMMANDS
            .iter()
            .map(|(c, _)| c.to_string())
            .collect(),
        after: vec![(&["ok", "fail", "cancel"], session.operation_names())],
    };
    if let Some(bound) = bound {
        let hub = crate::inspect::Hub::new(
            crate::inspect::Subject::Workflow,
            crate::inspect::Mode::Step,
            &format!("{} (simulation)", session.engine().plan().id),
            crate::lifecycle::graph::structure(session.engine().plan()),
        );
        let terminal = interactive.then(|| {
            (
                workflow_completions(&session),
                format!("{}(simulation: nothing runs; answer with `ok OP [JSON]`, `fail OP [MESSAGE]`, `cancel OP`; `help`)", session.view()),
            )
        });
        if terminal.is_none() && !args.json {
            println!("{}", session.view());
        }
        return inspected(args, &mut session, hub, bound, terminal);
    }
    let mut out = std::io::stdout().lock();
    if !args.json {
        let _ = writeln!(
            out,
            "{}(simulation: nothing runs; answer with `ok OP [JSON]`, `fail OP [MESSAGE]`, `cancel OP`; `help`)",
            session.view()
        );
        let _ = out.flush();
    }
    let history = history_file();
    let mut editor = if interactive {
        let config = rustyline::Config::builder()
            .auto_add_history(true)
            .history_ignore_dups(true)
            .map(|b| b.completion_type(rustyline::CompletionType::List).build());
        let editor = config.and_then(rustyline::Editor::<Completions, _>::with_config);
        editor.ok().map(|mut rl| {
            rl.set_helper(Some(workflow_completions(&session)));
            if let Some(h) = &history {
                let _ = rl.load_history(h);
            }
            rl
        })
    } else {
        None
    };
    let Some(mut lines) = script_lines(args) else {
        return exit::USAGE;
    };
    let mut failed = false;
    loop {
        let line = match &mut editor {
            Some(rl) => match rl.readline(&format!("{BOLD}{GREEN}orca>{RESET} ")) {
                Ok(l) => l,
                Err(rustyline::error::ReadlineError::Interrupted) => continue, // cancels the line
                Err(_) => break,                                               // Ctrl-D quits
            },
            None => match lines.next() {
                Some(l) => l,
                None => break,
            },
        };
        if line.trim().is_empty() {
            continue;
        }
        let reply = session.run_line(&line);
        failed |= reply.error.is_some();
        let written = if args.json {
            writeln!(out, "{}", session.json(&reply))
        } else {
            write!(out, "{}", workflow_reply_text(&session, &reply, true)).and_then(|_| out.flush())
        };
        if written.is_err() || reply.quit {
            break;
        }
        if let Some(rl) = &mut editor {
            // Operation paths grow when a decompose answer adds subtasks.
            if let Some(helper) = rl.helper_mut() {
                helper.after[0].1 = session.operation_names();
            }
            if let Some(h) = &history {
                if let Some(dir) = h.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = rl.save_history(h);
            }
        }
    }
    if failed && args.script.is_some() {
        exit::FAILED
    } else {
        exit::OK
    }
}
