//! `orca run MACHINE.ron [--event NAME[=JSON]]... [--events FILE] [--virtual-time] [--journal PATH] [--json]`

use super::{exit, report};
use crate::chart::load_chart_file;
use crate::interpreter::{Event, Host, Instance};
use crate::journal::{Body, End, Header, JournalWriter, SyncPolicy};
use crate::model::load::{self, FileKind};
use crate::model::{DurationMs, Json};
use crate::runtime::{Clock, Ending, Input, Notice, RunOptions, Runner};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The machine file to run.
    file: PathBuf,
    /// An external event to deliver, in order: `NAME` or `NAME=JSON` (data).
    #[arg(long = "event", value_name = "NAME[=JSON]")]
    events: Vec<String>,
    /// A file of events, one a line: `NAME` or `NAME JSON`; `@DURATION NAME ...` delivers it
    /// at that virtual time. Blank lines and lines starting with `#` are skipped.
    #[arg(long = "events", value_name = "FILE")]
    events_file: Option<PathBuf>,
    /// Delayed events fire in order without waiting.
    #[arg(long)]
    virtual_time: bool,
    /// With --virtual-time: stop when virtual time would pass this point (e.g. `1h`).
    #[arg(long, value_name = "DURATION")]
    until: Option<String>,
    /// Print the final configuration as JSON (machines.md) on stdout.
    #[arg(long)]
    json: bool,
    /// Record the run in a journal at PATH (a new file): every input and what it did.
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// When journal records reach the disk: each fsynced (`always`), fsynced in groups
    /// (`batch`), or left to the operating system (`never`).
    #[arg(long, value_name = "POLICY", default_value = "batch")]
    sync: SyncPolicy,
    /// Workflows: the run directory (journal and logs); default `.orca/runs/<run-id>`.
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Workflows: at most N commands at once in the whole run (overrides the file's).
    #[arg(long, value_name = "N")]
    max_parallel: Option<u32>,
    /// Workflows: print only the root operation's output as JSON (for nesting).
    #[arg(long)]
    output: bool,
    /// Workflows: after a cancel, compensate the operations that had succeeded.
    #[arg(long)]
    compensate: bool,
    #[command(flatten)]
    store: super::workflow::StoreArgs,
    #[command(flatten)]
    workers: super::workflow::LocalWorkers,
    /// Serve a live page of the run (default 127.0.0.1:0; the URL is printed). A machine
    /// run then also takes events from the page and, idle, waits for them until Ctrl-C.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = crate::inspect::server::DEFAULT_ADDR)]
    inspect: Option<String>,
}

/// Parses `NAME` or `NAME=JSON`.
fn parse_event_arg(s: &str) -> Result<Event, String> {
    let (name, data) = match s.split_once('=') {
        Some((n, d)) => (
            n,
            serde_json::from_str::<Json>(d)
                .map_err(|e| format!("`{s}`: the data is not JSON: {e}"))?,
        ),
        None => (s, Json::Null),
    };
    check_name(name).map_err(|e| format!("`{s}`: {e}"))?;
    Ok(Event::external(name).with_data(data))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        Err("an event name is non-empty and has no spaces".into())
    } else {
        Ok(())
    }
}

/// Parses an events file: `[@DURATION] NAME [JSON]` per line.
pub fn parse_events_file(text: &str, file: &str) -> Result<Vec<Input>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |msg: String| format!("{file}:{}: {msg}", i + 1);
        let (at_ms, rest) = match line.strip_prefix('@') {
            Some(r) => {
                let (d, rest) = r
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| at("`@TIME` needs an event after it".into()))?;
                (
                    Some(d.parse::<DurationMs>().map_err(at)?.0),
                    rest.trim_start(),
                )
            }
            None => (None, line),
        };
        let (name, data) = match rest.split_once(char::is_whitespace) {
            Some((n, d)) => (
                n,
                serde_json::from_str::<Json>(d.trim())
                    .map_err(|e| at(format!("the data is not JSON: {e}")))?,
            ),
            None => (rest, Json::Null),
        };
        check_name(name).map_err(at)?;
        out.push(Input {
            at_ms,
            event: Event::external(name).with_data(data),
        });
    }
    Ok(out)
}

pub fn run(args: Args) -> u8 {
    let text = std::fs::read_to_string(&args.file).unwrap_or_default();
    if load::detect_kind(&text) == FileKind::Workflow {
        return super::workflow::run(super::workflow::RunArgs {
            file: &args.file,
            run_dir: args.run_dir.clone(),
            max_parallel: args.max_parallel,
            json: args.json,
            output: args.output,
            compensate: args.compensate,
            sync: args.sync,
            store: args.store.clone(),
            workers: args.workers.clone(),
            inspect: args.inspect.clone(),
        });
    }
    // ORCA_STORE set for the workflows of a shell session does not stop machine runs.
    let from_env = std::env::var("ORCA_STORE").ok() == args.store.store;
    if args.store.store.is_some() && !from_env {
        eprintln!(
            "orca: {}: --store keeps workflow runs; a machine's run is recorded with --journal",
            args.file.display()
        );
        return exit::USAGE;
    }
    let host = Arc::new(Host::default());
    let chart = match load_chart_file(&args.file, &host.compile_options()) {
        Ok((chart, _)) => chart,
        Err(diags) => {
            report::print(&diags.0, |_| Some(text.clone()));
            return exit::USAGE;
        }
    };
    let mut inputs = Vec::new();
    for e in &args.events {
        match parse_event_arg(e) {
            Ok(ev) => inputs.push(Input {
                at_ms: None,
                event: ev,
            }),
            Err(msg) => {
                eprintln!("orca: --event {msg}");
                return exit::USAGE;
            }
        }
    }
    if let Some(path) = &args.events_file {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|t| parse_events_file(&t, &path.display().to_string()));
        match parsed {
            Ok(list) => inputs.extend(list),
            Err(msg) => {
                eprintln!("orca: {msg}");
                return exit::USAGE;
            }
        }
    }
    let until_ms = match args.until.as_deref().map(str::parse::<DurationMs>) {
        Some(Ok(d)) => Some(d.0),
        Some(Err(e)) => {
            eprintln!("orca: --until: {e}");
            return exit::USAGE;
        }
        None => None,
    };
    let opts = RunOptions {
        clock: if args.virtual_time {
            Clock::Virtual
        } else {
            Clock::Real
        },
        until_ms,
        ..RunOptions::default()
    };
    // Taken before the journal is created: a bad address leaves nothing behind.
    let mut bound = match super::inspect::bind_opt(args.inspect.as_deref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let instance = Instance::with_host(Arc::new(chart), host.clone());
    let mut runner = Runner::new(instance, host.clone(), opts);
    let journal = match &args.journal {
        Some(path) => {
            let clock = if args.virtual_time { "virtual" } else { "real" };
            let header = Header::for_machine(&args.file, &text, clock);
            match JournalWriter::create(path, header, args.sync) {
                Ok(w) => {
                    let sink = w.clone();
                    runner.set_recorder(Box::new(move |item| {
                        if let Err(e) = sink.append(Body::from(item)) {
                            tracing::error!(error = %e, "journal append failed");
                        }
                    }));
                    Some(w)
                }
                Err(e) => {
                    eprintln!("orca: --journal {e}");
                    return exit::USAGE;
                }
            }
        }
        None => None,
    };
    let inspected = match bound.take() {
        Some(bound) => {
            let structure = crate::chart::graph::structure(runner.root().chart());
            let hub = crate::inspect::Hub::new(
                crate::inspect::Subject::Machine,
                crate::inspect::Mode::Run,
                &args.file.display().to_string(),
                structure,
            );
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            runner.set_live_inputs(rx);
            let served = match super::inspect::start(
                bound,
                hub.clone(),
                crate::inspect::Control::Events(tx),
                None,
            ) {
                Ok(served) => served,
                Err(code) => return code,
            };
            let shadow =
                crate::inspect::Shadow::start(hub.clone(), runner.root().chart().clone(), host);
            runner.set_input_tap(shadow.tap());
            Some(Inspected {
                hub,
                served,
                shadow,
            })
        }
        None => None,
    };
    let Some(rt) = super::runtime() else {
        return exit::FAILED;
    };
    let ending = rt.block_on(async {
        tokio::select! {
            end = runner.run(inputs) => Some(end),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    // Events the page sends from now on are refused: the run is over.
    runner.stop_live_inputs();
    for notice in runner.take_notices() {
        match notice {
            Notice::Log {
                instance,
                label,
                value,
            } => {
                let who = if instance == "#" {
                    String::new()
                } else {
                    format!("[{instance}] ")
                };
                match label {
                    Some(l) => eprintln!("log: {who}{l}: {value}"),
                    None => eprintln!("log: {who}{value}"),
                }
            }
            Notice::ToParent { event } => eprintln!("to parent: {} {}", event.name, event.data),
        }
    }
    let end = match &ending {
        None => End {
            ending: "interrupted".into(),
            message: None,
        },
        Some(e) => ending_record(e),
    };
    let page_end = serde_json::json!({ "ending": &end.ending, "message": &end.message });
    if let Some(w) = &journal {
        let closed = w.append(Body::End(end)).and_then(|_| w.close());
        if let Err(e) = closed {
            eprintln!("orca: journal: {e}");
            if let Some(i) = inspected {
                i.finish(page_end, false);
            }
            return exit::FAILED;
        }
    }
    let Some(ending) = ending else {
        runner.cancel_all();
        eprintln!("orca: interrupted");
        if let Some(i) = inspected {
            i.finish(page_end, true);
        }
        return exit::INTERRUPTED;
    };
    print_result(&runner, &ending, args.json);
    // The result is out; the page gets the rest of the run before the process leaves.
    if let Some(i) = inspected {
        i.finish(page_end, false);
    }
    match ending {
        Ending::Done | Ending::Idle | Ending::Bounded(_) => exit::OK,
        Ending::Failed(_) => exit::FAILED,
    }
}

/// A machine run's page: what serves it and what replays the run for it.
struct Inspected {
    hub: Arc<crate::inspect::Hub>,
    served: crate::inspect::Served,
    shadow: crate::inspect::Shadow,
}

impl Inspected {
    /// Lets the page catch up with the run (for a few seconds at most, and not at all after
    /// a Ctrl-C), tells it how the run ended, and stops serving.
    fn finish(self, end: Json, interrupted: bool) {
        let patience = if interrupted {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs(5)
        };
        self.shadow.finish(patience);
        self.hub.end(end);
        self.served.stop();
    }
}

/// The journal's last record for how a run ended.
pub fn ending_record(e: &Ending) -> End {
    let (ending, message) = match e {
        Ending::Done => ("done", None),
        Ending::Idle => ("idle", None),
        Ending::Bounded(m) => ("bounded", Some(m.clone())),
        Ending::Failed(m) => ("failed", Some(m.clone())),
    };
    End {
        ending: ending.into(),
        message,
    }
}

fn print_result(runner: &Runner, ending: &Ending, json: bool) {
    let inst = runner.root();
    if json {
        let mut v = inst.snapshot();
        if let Ending::Failed(e) = ending {
            v["error"] = Json::String(e.clone());
        }
        println!("{v}");
        return;
    }
    let colour = std::io::stdout().is_terminal();
    let chart = inst.chart();
    println!("configuration:");
    for s in inst.configuration() {
        let st = chart.state(s);
        let name = if colour {
            format!("\x1b[1m{}\x1b[0m", st.name)
        } else {
            st.name.clone()
        };
        println!("{}{name}", "  ".repeat(st.depth as usize));
    }
    println!(
        "context: {}",
        serde_json::to_string(inst.context()).unwrap_or_default()
    );
    match ending {
        Ending::Done => println!(
            "done: output {}",
            inst.output().cloned().unwrap_or(Json::Null)
        ),
        Ending::Idle => println!("idle: no events or timers pending"),
        Ending::Bounded(why) => println!("stopped: {why}"),
        Ending::Failed(e) => {
            println!("failed");
            eprintln!("orca: error: {e}");
        }
    }
}
