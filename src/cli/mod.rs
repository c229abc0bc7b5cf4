//! The `orca` command line: argument parsing, human and JSON output, exit codes.

mod check;
mod graph;
mod inspect;
mod journal;
mod progress;
pub mod report;
mod run;
mod step;
mod test_paths;
mod verify;
mod worker;
mod workflow;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit status, everywhere (cli.md).
pub mod exit {
    pub const OK: u8 = 0;
    /// The machine or workflow failed, or a check found errors.
    pub const FAILED: u8 = 1;
    /// Bad usage or input that cannot be loaded.
    pub const USAGE: u8 = 2;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Parser, Debug)]
#[command(
    name = "orca",
    version,
    about = "Hierarchical state machines and workflows from RON files"
)]
pub struct Cli {
    /// Print tracing as JSON lines on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load and validate machine and workflow files, reporting every problem.
    Check(check::Args),
    /// Draw a machine or a workflow as Mermaid or Graphviz DOT.
    Graph(graph::Args),
    /// Run a machine (deliver events, fire delayed events, print the final configuration)
    /// or a workflow (run its operations, live progress, a summary).
    Run(run::Args),
    /// Step through a machine by hand: send events, tick the clock, go back and forth,
    /// ask why.
    Step(step::Args),
    /// Rebuild a run from its journal: the timeline, the state after a record, or a
    /// verification against the definition.
    Replay(journal::ReplayArgs),
    /// Print a journal readably: time, instance, event, transitions, effects.
    Log(journal::LogArgs),
    /// Continue a workflow run: after a crash from where it stopped; after a failure or a
    /// cancel, rerunning only what did not succeed.
    Resume(workflow::ResumeArgs),
    /// List the workflow runs under .orca/runs (or in --store).
    Runs(workflow::RunsArgs),
    /// Serve a live page showing a recorded run: a machine journal, or a workflow run with
    /// its operations, timings, logs and outputs.
    Inspect(inspect::Args),
    /// Run the work of workflow runs kept in a PostgreSQL store, beside their coordinators.
    Worker(worker::Args),
    /// Show one workflow run's operation tree with each operation's state.
    Status(workflow::StatusArgs),
    /// Explore every reachable state of a machine, check its invariants and write each
    /// counterexample as a journal. Exit 3 when a bound stopped the exploration.
    Verify(verify::Args),
    /// Generate the shortest inputs to every reachable state and across every transition,
    /// as `orca step --script` files or JSON; `--check` runs them.
    TestPaths(test_paths::Args),
}

/// The single-threaded tokio runtime runs are driven on; `None` (said on stderr) if it
/// cannot be made.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("orca: cannot start the runtime: {e}");
            None
        }
    }
}

/// `default`: the filter when `RUST_LOG` is unset.
fn init_tracing(format: LogFormat, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The verifier runs a machine through every error it can make: those are findings,
    // reported once each, not warnings by the million.
    let quiet = matches!(cli.command, Command::Verify(_) | Command::TestPaths(_));
    init_tracing(cli.log_format, if quiet { "off" } else { "warn" });
    // Output piped into `head` ends quietly when the reader goes, as with other Unix tools,
    // instead of a panic on the broken pipe. Not for commands that run commands: writing a
    // phase's stdin to a command that did not read it must not kill the runner; those
    // write their own output without panicking.
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Resume(_) | Command::Step(_) | Command::Worker(_)
    ) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Run(a) => run::run(a),
        Command::Step(a) => step::run(a),
        Command::Replay(a) => journal::replay(a),
        Command::Log(a) => journal::log(a),
        Command::Resume(a) => workflow::resume(a),
        Command::Runs(a) => workflow::runs(a),
        Command::Worker(a) => worker::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Status(a) => workflow::status(a),
        Command::Verify(a) => verify::run(a),
        Command::TestPaths(a) => test_paths::run(a),
    };
    ExitCode::from(code)
}
