//! `orca run WORKFLOW.ron`, `orca resume RUN`, `orca runs`, `orca status RUN`.

use super::{exit, report};
use crate::journal::{End, Header, SyncPolicy};
use crate::lifecycle::plan::Plan;
use crate::model::load::read_source;
use crate::runtime::workflow::{Change, Engine, EngineOptions, RunEnding};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `println!` that does not panic when stdout is a closed pipe (`orca run` keeps SIGPIPE
/// ignored, since its commands' pipes must not kill it).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

use crate::store::file::{FileStore, run_dir_of};
use crate::store::postgres::PgStore;
use crate::store::postgres::worker::WorkerOptions;
use crate::store::{RunStore, RunWriter, StoreError};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// `--store`, shared by the commands that read or write runs.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Where runs are kept: a PostgreSQL URL (`postgresql://USER@HOST:PORT/DB`, or
    /// `postgresql:///DB?host=/socket/dir`); default: the files under .orca/runs.
    #[arg(long, value_name = "URL", env = "ORCA_STORE", hide_env_values = true)]
    pub store: Option<String>,
}

/// The workers a coordinating `orca run --store` starts in its own process.
#[derive(clap::Args, Debug, Clone)]
pub struct LocalWorkers {
    /// With --store: workers in this process that run the work (0: only coordinate, and
    /// `orca worker`s elsewhere run it).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,
    /// With --store: pieces of work each local worker runs at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
}

/// What `orca run` passes for a workflow file.
pub struct RunArgs<'a> {
    pub file: &'a Path,
    pub run_dir: Option<PathBuf>,
    pub max_parallel: Option<u32>,
    pub json: bool,
    pub output: bool,
    pub compensate: bool,
    pub sync: SyncPolicy,
    pub store: StoreArgs,
    pub workers: LocalWorkers,
    /// `--inspect [ADDR]`: serve a live page of the run.
    pub inspect: Option<String>,
}

/// The store a command uses: the trait for what both do, the database for the work queue.
pub(super) enum Opened {
    File(FileStore),
    Pg(Box<PgStore>),
}

impl Opened {
    pub(super) fn open(
        store: &StoreArgs,
        run_dir: Option<PathBuf>,
        sync: SyncPolicy,
    ) -> Result<Opened, u8> {
        match store.store.as_deref() {
            None => Ok(Opened::File(FileStore { run_dir, sync })),
            Some(url) if crate::store::is_postgres(url) => {
                let mut pg = PgStore::new(url).map_err(|e| store_failed(&e))?;
                if let Some(d) = run_dir {
                    // Where this host keeps the run's logs.
                    pg.logs_root = d.parent().map(Path::to_path_buf).unwrap_or_default();
                }
                Ok(Opened::Pg(Box::new(pg)))
            }
            Some(url) => Err(store_failed(&crate::store::not_a_store(url))),
        }
    }

    pub(super) fn store(&self) -> &dyn RunStore {
        match self {
            Opened::File(f) => f,
            Opened::Pg(p) => p.as_ref(),
        }
    }

    /// How to name a run of this store on the command line (`orca resume ...`).
    pub(super) fn resume_args(&self, run_id: &str, run_dir: &Path) -> String {
        match self {
            Opened::File(_) => run_dir.display().to_string(),
            Opened::Pg(pg) => format!("{run_id} --store {}", pg.shown()),
        }
    }
}

/// Says why the store cannot be used; the exit status for it.
pub(super) fn store_failed(e: &StoreError) -> u8 {
    eprintln!("orca: {e}");
    exit::USAGE
}

/// The engine's recorder is the run's writer, which the command also appends to (a
/// forced resume's `define`, the `end`) and closes.
struct SharedWriter(Rc<RefCell<Box<dyn RunWriter>>>);

impl crate::runtime::workflow::WorkflowRecorder for SharedWriter {
    fn record(&mut self, rec: &crate::runtime::workflow::OpRecord) -> Result<(), String> {
        self.0.borrow_mut().record(rec)
    }
    fn rerun(&mut self, from: &[String]) -> Result<(), String> {
        self.0.borrow_mut().rerun(from)
    }
    fn barrier(&mut self) -> Result<(), String> {
        self.0.borrow_mut().barrier()
    }
}

/// Reads and compiles a workflow file, printing its warnings (or its errors, then the exit
/// code); the plan and the text as read, which the journal's header keeps.
fn load_plan(file: &Path) -> Result<(Plan, String), u8> {
    let source = match read_source(file) {
        Ok(f) => f,
        Err(diags) => {
            report::print(&diags.0, |_| Some(String::new()));
            return Err(exit::USAGE);
        }
    };
    let text = source.text.clone();
    match Plan::load_source(source, crate::lifecycle::plan::base_dir(file)) {
        Ok((plan, warnings)) => {
            report::print(&warnings.0, |_| Some(text.clone()));
            Ok((plan, text))
        }
        Err(diags) => {
            report::print(&diags.0, |_| Some(text.clone()));
            Err(exit::USAGE)
        }
    }
}

fn new_run_id(workflow: &str) -> String {
    let wall = crate::journal::wall_ms();
    let stamp = crate::journal::rfc3339(wall)
        .replace([':', '-'], "")
        .replace('T', "-")
        .chars()
        .take(15)
        .collect::<String>();
    format!("{workflow}-{stamp}-{:x}", std::process::id() & 0xffff)
}

/// Transparent huge pages off for the heap of a workflow run.
///
/// mimalloc asks for huge pages on its arenas. That pays off when loading a large chart
/// (one fault per 2 MiB instead of 512), but a runner's heap grows a little at a time and
/// each new huge page is zeroed whole: in the 1,000-command benchmark, about 7% of the
/// wall time on our 2-core VM, where touching fresh memory is slow. Only future faults are
/// affected; anonymous private mappings (the allocator's arenas, thread stacks) are the
/// ones marked.
fn small_pages_for_the_heap() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // An anonymous mapping has no path (the sixth field).
        if perms != "rw-p" || fields.nth(3).is_some() {
            continue;
        }
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            continue;
        };
        // SAFETY: madvise with MADV_NOHUGEPAGE changes how future faults in this mapping
        // of our own are served; it does not touch its contents.
        unsafe {
            libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_NOHUGEPAGE);
        }
    }
}

/// `orca run WORKFLOW.ron`.
pub fn run(args: RunArgs) -> u8 {
    small_pages_for_the_heap();
    // Taken before the run is created: a bad address leaves nothing behind.
    let bound = match super::inspect::bind_opt(args.inspect.as_deref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let opened = match Opened::open(&args.store, args.run_dir.clone(), args.sync) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (plan, source) = match load_plan(args.file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let run_id = match &args.run_dir {
        Some(d) => d.file_name().map_or_else(
            || new_run_id(&plan.id),
            |n| n.to_string_lossy().into_owned(),
        ),
        None => new_run_id(&plan.id),
    };
    let store = opened.store();
    let run_dir = store.run_dir(&run_id);
    let header = Header::for_workflow(args.file, &source, &run_id);
    let writer = match store.create(&run_id, header) {
        Ok(w) => w,
        Err(e) => return store_failed(&e),
    };
    let opts = EngineOptions {
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        max_parallel: args.max_parallel,
        compensate_on_cancel: args.compensate,
    };
    if !args.json && !args.output {
        match &opened {
            Opened::File(_) => eprintln!("run {run_id}: {}", run_dir.display()),
            Opened::Pg(pg) => eprintln!("run {run_id}: {}", pg.shown()),
        }
    }
    let engine = Engine::new(plan, opts);
    drive(
        engine,
        writer,
        &args_view(&args),
        &run_dir,
        &opened,
        &args.workers,
        bound,
    )
}

/// How results are shown.
struct View {
    json: bool,
    /// Print only the root's output as JSON (nested workflows).
    output: bool,
}

/// Shows lifecycle changes to the printer and to the inspector's page.
struct Inspected {
    inner: Box<dyn crate::runtime::workflow::Observer>,
    hub: Arc<crate::inspect::Hub>,
}

impl crate::runtime::workflow::Observer for Inspected {
    fn change(&mut self, c: &Change) {
        self.inner.change(c);
        self.hub
            .push_json(super::inspect::change_json(crate::journal::wall_ms(), c));
    }
    fn idle(&mut self) {
        self.inner.idle();
    }
    fn finish(&mut self) {
        self.inner.finish();
    }
    fn wants_outputs(&self) -> bool {
        true
    }
}

fn args_view(a: &RunArgs) -> View {
    View {
        json: a.json,
        output: a.output,
    }
}

/// How lifecycle changes are shown: a live view on a terminal, otherwise one line (or JSON
/// object) per change, written in batches between waits.
enum Printer {
    Quiet,
    Live(Option<super::progress::Live>),
    Lines {
        out: std::io::BufWriter<std::io::Stdout>,
        json: bool,
        t0: Instant,
    },
}

impl crate::runtime::workflow::Observer for Printer {
    fn change(&mut self, c: &Change) {
        match self {
            Printer::Quiet => {}
            Printer::Live(live) => {
                if let Some(l) = live {
                    l.set_total(c.ops);
                    l.change(c);
                }
            }
            Printer::Lines { out, json, t0 } => {
                let _ = if *json {
                    let v = serde_json::json!({
                        "t_ms": t0.elapsed().as_millis() as u64,
                        "op": c.path,
                        "event": c.event,
                        "from": c.from,
                        "to": c.to,
                        "phase": c.phase.as_str(),
                        "attempt": c.attempt,
                        "elapsed_ms": c.elapsed_ms,
                        "error": c.error,
                    });
                    writeln!(out, "{v}")
                } else {
                    // Written piece by piece: a line per lifecycle change is the runner's
                    // most frequent output, and `format!` padding and float printing cost
                    // more than the rest of the change.
                    use std::fmt::Write as _;
                    let ms = t0.elapsed().as_millis();
                    let mut line = String::with_capacity(64 + c.path.len());
                    let _ = write!(line, "[{:>4}.{:03}s] ", ms / 1000, ms % 1000);
                    line.push_str(&c.path);
                    let width = c.path.chars().count();
                    line.extend(std::iter::repeat_n(' ', 24usize.saturating_sub(width)));
                    line.push(' ');
                    line.push_str(c.from);
                    line.push_str(" → ");
                    line.push_str(c.to);
                    if c.attempt > 1 {
                        let _ = write!(line, " attempt {}", c.attempt);
                    }
                    if let Some(e) = &c.error {
                        line.push_str("  (");
                        line.push_str(e);
                        line.push(')');
                    }
                    line.push('\n');
                    out.write_all(line.as_bytes())
                };
            }
        }
    }

    fn idle(&mut self) {
        if let Printer::Lines { out, .. } = self {
            let _ = out.flush();
        }
    }

    fn finish(&mut self) {
        match self {
            Printer::Lines { out, .. } => {
                let _ = out.flush();
            }
            Printer::Live(live) => {
                if let Some(l) = live.take() {
                    l.finish();
                }
            }
            Printer::Quiet => {}
        }
    }
}

fn drive(
    mut engine: Engine,
    writer: Box<dyn RunWriter>,
    view: &View,
    run_dir: &Path,
    opened: &Opened,
    workers: &LocalWorkers,
    inspect: Option<crate::inspect::Bound>,
) -> u8 {
    let writer = Rc::new(RefCell::new(writer));
    engine.set_recorder(Box::new(SharedWriter(writer.clone())));
    let printer: Box<dyn crate::runtime::workflow::Observer> = Box::new(if view.output {
        Printer::Quiet
    } else if !view.json && std::io::stdout().is_terminal() {
        Printer::Live(Some(super::progress::Live::new(engine.plan().ops.len())))
    } else {
        Printer::Lines {
            out: std::io::BufWriter::new(std::io::stdout()),
            json: view.json,
            t0: Instant::now(),
        }
    });
    let inspected = match inspect {
        Some(bound) => {
            let hub = crate::inspect::Hub::new(
                crate::inspect::Subject::Workflow,
                crate::inspect::Mode::Run,
                &format!("{} ({})", engine.plan().id, engine.run_id()),
                crate::lifecycle::graph::structure(engine.plan()),
            );
            let served = match super::inspect::start(
                bound,
                hub.clone(),
                crate::inspect::Control::None,
                Some(run_dir.to_path_buf()),
            ) {
                Ok(s) => s,
                Err(code) => return code,
            };
            engine.set_observer(Box::new(Inspected {
                inner: printer,
                hub: hub.clone(),
            }));
            Some((hub, served))
        }
        None => {
            engine.set_observer(printer);
            None
        }
    };
    let Some(rt) = super::runtime() else {
        return exit::FAILED;
    };
    let local = tokio::task::LocalSet::new();
    let run_id = engine.run_id().to_string();
    let ending = match opened {
        Opened::File(_) => local.block_on(&rt, engine.run()),
        Opened::Pg(pg) => {
            engine.set_dispatch(Box::new(crate::store::postgres::PgDispatch::new(
                pg.as_ref().clone(),
                &run_id,
            )));
            let (ending, failure) = local.block_on(&rt, async {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let mut handles = Vec::new();
                for _ in 0..workers.workers {
                    let opts = WorkerOptions {
                        concurrency: workers.concurrency.max(1),
                        tags: Vec::new(),
                        lease: std::time::Duration::from_secs(10),
                        name: WorkerOptions::default_name(),
                    };
                    let mut stop = stop_rx.clone();
                    handles.push(tokio::task::spawn_local(
                        crate::store::postgres::worker::run(
                            pg.as_ref().clone(),
                            opts,
                            async move {
                                let _ = stop.wait_for(|s| *s).await;
                            },
                        ),
                    ));
                }
                let ending = engine.run().await;
                let _ = stop_tx.send(true);
                let mut failure = None;
                for h in handles {
                    if let Ok(Err(e)) = h.await {
                        failure = Some(e);
                    }
                }
                (ending, failure)
            });
            if let Some(e) = failure {
                eprintln!("orca: a local worker stopped: {e}");
            }
            ending
        }
    };
    engine.finish_observer();
    let end = End {
        ending: ending.as_str().into(),
        message: engine.failure().map(str::to_string),
    };
    let closed = {
        let mut w = writer.borrow_mut();
        w.append(crate::journal::Body::End(end))
            .and_then(|_| w.close())
    };
    if let Err(e) = closed {
        eprintln!("orca: journal: {e}");
    }
    let resume_with = opened.resume_args(&run_id, run_dir);
    if let Some((hub, served)) = inspected {
        hub.set_structure(crate::lifecycle::graph::structure(engine.plan()));
        hub.set_live(super::inspect::operations_live(&engine));
        let mut end = serde_json::json!({
            "ending": ending.as_str(),
            "message": engine.failure(),
        });
        if ending != RunEnding::Succeeded {
            end["resume"] = format!("orca resume {resume_with}").into();
        }
        hub.end(end);
        served.stop();
    }
    if let Some(f) = engine.failure() {
        eprintln!("orca: {f}");
        return exit::FAILED;
    }
    summary(&engine, ending, view, run_dir, &resume_with);
    match ending {
        RunEnding::Succeeded => exit::OK,
        RunEnding::Failed => exit::FAILED,
        RunEnding::Cancelled => exit::INTERRUPTED,
    }
}

fn summary(engine: &Engine, ending: RunEnding, view: &View, run_dir: &Path, resume_with: &str) {
    let plan = engine.plan();
    if view.output {
        outln!("{}", engine.output(0));
        return;
    }
    let failed: Vec<usize> = (0..plan.ops.len())
        .filter(|&i| engine.state(i) == "Failed" && engine.error(i).is_some())
        .collect();
    let count = |s: &str| {
        (0..plan.ops.len())
            .filter(|&i| engine.state(i) == s)
            .count()
    };
    if view.json {
        let v = serde_json::json!({
            "summary": ending.as_str(),
            "run_dir": run_dir.display().to_string(),
            "output": engine.output(0),
            "failures": failed.iter().map(|&i| serde_json::json!({
                "op": plan.display_path(i),
                "error": engine.error(i),
                "logs": engine.logs_of(i),
            })).collect::<Vec<_>>(),
        });
        outln!("{v}");
        return;
    }
    let word = ending.as_str();
    outln!(
        "{} {word}: {} succeeded, {} failed, {} skipped, {} cancelled, {} compensated ({} operations)",
        plan.id,
        count("Succeeded"),
        count("Failed"),
        count("Skipped"),
        count("Cancelled"),
        count("Compensated"),
        plan.ops.len()
    );
    let output = engine.output(0);
    if !output.is_null() {
        outln!("  output: {output}");
    }
    for i in failed {
        outln!(
            "  {} failed: {}\n    logs: {}",
            plan.display_path(i),
            engine.error(i).unwrap_or("?"),
            engine.logs_of(i)
        );
    }
    if ending != RunEnding::Succeeded {
        outln!("  resume with: orca resume {resume_with}");
    }
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// A run id (under .orca/runs, or in --store) or a run directory.
    run: String,
    /// Also rerun this operation (dotted path) and what depends on it.
    #[arg(long, value_name = "OP")]
    from: Vec<String>,
    /// Resume even though the workflow file changed since the run started.
    #[arg(long)]
    force: bool,
    /// The workflow file to resume with (default: the file the run was started from).
    #[arg(long, value_name = "FILE")]
    workflow: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    max_parallel: Option<u32>,
    /// One JSON object per lifecycle change, then a summary object.
    #[arg(long)]
    json: bool,
    /// Compensate succeeded operations after a cancel too.
    #[arg(long)]
    compensate: bool,
    #[arg(long, value_name = "POLICY", default_value = "batch")]
    sync: SyncPolicy,
    /// Stand by while another process runs the run, and take it over when it stops (a
    /// standby coordinator).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    workers: LocalWorkers,
    /// Serve a live page of the run (default 127.0.0.1:0; the URL is printed).
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = crate::inspect::server::DEFAULT_ADDR)]
    inspect: Option<String>,
}

/// `orca resume RUN`.
pub fn resume(args: ResumeArgs) -> u8 {
    small_pages_for_the_heap();
    let bound = match super::inspect::bind_opt(args.inspect.as_deref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let run_dir_arg = match args.store.store {
        None => Some(run_dir_of(&args.run)),
        Some(_) => None,
    };
    let opened = match Opened::open(&args.store, run_dir_arg, args.sync) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let store = opened.store();
    let (stored, writer) = match store.reopen(&args.run, args.wait) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orca: cannot resume {}: {e}", args.run);
            return exit::USAGE;
        }
    };
    let log = stored.log;
    let run_dir = store.run_dir(&log.header.instance);
    for w in &log.warnings {
        eprintln!("orca: warning: {w}");
    }
    let file = args
        .workflow
        .clone()
        .unwrap_or_else(|| PathBuf::from(&log.file));
    let current = std::fs::read_to_string(&file);
    match &current {
        Ok(text) if *text == log.source => {}
        Ok(text) if !args.force => {
            eprintln!(
                "orca: the workflow {} changed since run {} started:\n{}\nresume with --force to continue with the new file anyway",
                file.display(),
                log.header.instance,
                describe_change(&log.source, text)
            );
            return exit::USAGE;
        }
        Ok(_) => eprintln!(
            "orca: warning: {} changed since the run started (--force)",
            file.display()
        ),
        Err(e) => {
            eprintln!("orca: cannot read the workflow {}: {e}", file.display());
            return exit::USAGE;
        }
    }
    let (plan, _) = match load_plan(&file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let opts = EngineOptions {
        run_id: log.header.instance.clone(),
        run_dir: run_dir.clone(),
        max_parallel: args.max_parallel,
        compensate_on_cancel: args.compensate,
    };
    let mut engine = Engine::new(plan, opts);
    if let Err(e) = engine.replay(log.records) {
        eprintln!("orca: cannot resume {}: {e}", args.run);
        return exit::USAGE;
    }
    // After the replay, so that subtasks a decompose added can be named too.
    let mut from = Vec::new();
    for f in &args.from {
        match engine.plan().find(f) {
            Some(op) => from.push(op),
            None => {
                eprintln!("orca: --from {f}: the run has no such operation");
                return exit::USAGE;
            }
        }
    }
    let ended = log.end.as_ref().map(|e| e.ending.as_str());
    if ended == Some("succeeded") && from.is_empty() {
        // Nothing did not succeed: every phase's success is journaled.
        if !args.json {
            println!(
                "run {} succeeded already; nothing to resume (--from OP reruns OP)",
                log.header.instance
            );
        }
        return exit::OK;
    }
    // A run that ended (failed, cancelled) reruns what did not succeed; an interrupted one
    // just goes on from where it stopped.
    let mut writer = writer;
    if let Ok(text) = &current
        && *text != log.source
    {
        // --force: the new file is the workflow from here on, for later resumes and status.
        let define = crate::runtime::Define {
            file: file.display().to_string(),
            source: text.clone(),
        };
        if let Err(e) = writer.append(crate::journal::Body::Define(define)) {
            eprintln!("orca: journal: {e}");
            return exit::FAILED;
        }
    }
    if ended.is_some() || !from.is_empty() {
        let paths: Vec<String> = from
            .iter()
            .map(|&f| engine.plan().display_path(f).to_string())
            .collect();
        if let Err(e) = writer.rerun(&paths) {
            eprintln!("orca: journal: {e}");
            return exit::FAILED;
        }
        engine.reset_for_rerun(&from);
    }
    if !args.json {
        let place = match &opened {
            Opened::File(_) => run_dir.display().to_string(),
            Opened::Pg(pg) => pg.shown().to_string(),
        };
        eprintln!("resuming run {}: {place}", log.header.instance);
    }
    let view = View {
        json: args.json,
        output: false,
    };
    drive(
        engine,
        writer,
        &view,
        &run_dir,
        &opened,
        &args.workers,
        bound,
    )
}

/// The first lines where two versions of a file differ.
fn describe_change(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let show = |v: &[&str]| {
        v.get(first)
            .map_or("(end of file)".to_string(), |l| l.trim().to_string())
    };
    format!(
        "  line {}: was `{}`\n  line {}: now `{}`",
        first + 1,
        show(&a),
        first + 1,
        show(&b)
    )
}

#[derive(clap::Args, Debug)]
pub struct RunsArgs {
    /// One JSON object per run.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `orca runs`: every run of the store (the files under .orca/runs by default), oldest
/// first.
pub fn runs(args: RunsArgs) -> u8 {
    let opened = match Opened::open(&args.store, None, SyncPolicy::Batch) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let list = match opened.store().list() {
        Ok(l) => l,
        Err(e) => return store_failed(&e),
    };
    for r in list {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"run": r.run, "started": r.started, "status": r.status, "workflow": r.workflow})
            );
        } else {
            println!(
                "{:<40} {:<24} {:<12} {}",
                r.run, r.started, r.status, r.workflow
            );
        }
    }
    exit::OK
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// A run id (under .orca/runs, or in --store) or a run directory.
    run: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Reads a run named on the command line from its store; `None` after saying why.
pub(super) fn read_run(run: &str, store: &StoreArgs) -> Result<crate::store::StoredRun, u8> {
    let run_dir = store.store.is_none().then(|| run_dir_of(run));
    let opened = Opened::open(store, run_dir, SyncPolicy::Batch)?;
    opened.store().read(run).map_err(|e| {
        eprintln!("orca: {run}: {e}");
        exit::USAGE
    })
}

/// `orca status RUN`: the operation tree with each operation's state, attempt and time.
pub fn status(args: StatusArgs) -> u8 {
    let log = match read_run(&args.run, &args.store) {
        Ok(s) => s.log,
        Err(code) => return code,
    };
    let run_dir = run_dir_of(&args.run);
    let plan = match plan_of(&log.file, &log.source) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let opts = EngineOptions {
        run_id: log.header.instance.clone(),
        run_dir: run_dir.clone(),
        max_parallel: None,
        compensate_on_cancel: false,
    };
    let mut engine = Engine::new(plan, opts);

    if let Err(e) = engine.replay(log.records.clone()) {
        eprintln!("orca: {e}");
        return exit::USAGE;
    }
    let status = log
        .end
        .as_ref()
        .map_or("interrupted", |e| e.ending.as_str());
    if args.json {
        let mut ops = operations_json(&engine);
        for (i, o) in ops.iter_mut().enumerate() {
            if let Some(&(first, last)) = log.spans.get(&engine.plan().ops[i].path) {
                o["duration_ms"] = serde_json::json!(last - first);
            }
        }
        println!(
            "{}",
            serde_json::json!({"run": log.header.instance, "workflow": log.file, "status": status, "operations": ops})
        );
        return exit::OK;
    }
    println!("run {} ({}): {status}", log.header.instance, log.file);
    print_tree(&engine, Some(&log.spans));
    exit::OK
}

/// `orca replay` of a workflow journal: the operation tree after record N (or at the end),
/// rebuilt by replaying the records through the lifecycle; `--verify` checks that every
/// record leads to the state it recorded, and reports the first that does not (exit 1).
pub fn replay(
    journal: &Path,
    to: Option<u64>,
    verify: bool,
    file: Option<&Path>,
    json: bool,
) -> u8 {
    let j = match super::journal::read(journal) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let run_dir = journal
        .parent()
        .map_or(PathBuf::from("."), Path::to_path_buf);
    replay_journal(
        &journal.display().to_string(),
        run_dir,
        j,
        to,
        verify,
        file,
        json,
    )
}

/// [`replay`] of a journal read already; `origin` says where it came from.
pub(super) fn replay_journal(
    origin: &str,
    run_dir: PathBuf,
    j: crate::journal::Journal,
    to: Option<u64>,
    verify: bool,
    file: Option<&Path>,
    json: bool,
) -> u8 {
    // The workflow in effect: a `resume --force` records the file it forced, and the resume
    // replayed every record through that one, so a replay does too.
    let forced = j.records.iter().rev().find_map(|r| match &r.body {
        crate::journal::Body::Define(d) => Some((d.file.clone(), d.source.clone())),
        _ => None,
    });
    let (name, source) = match file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => (f.display().to_string(), t),
            Err(e) => {
                eprintln!("orca: cannot read {}: {e}", f.display());
                return exit::USAGE;
            }
        },
        None => forced.unwrap_or_else(|| (j.header.file.clone(), j.header.source.clone())),
    };
    let plan = match plan_of(&name, &source) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut engine = Engine::new(
        plan,
        EngineOptions {
            run_id: j.header.instance.clone(),
            run_dir,
            max_parallel: None,
            compensate_on_cancel: false,
        },
    );
    let mut last = 0;
    let mut status = "interrupted".to_string();
    for rec in &j.records {
        if to.is_some_and(|n| rec.seq > n) {
            break;
        }
        last = rec.seq;
        let entry = match &rec.body {
            crate::journal::Body::Op(o) => crate::runtime::workflow::Entry::Op(o.clone()),
            crate::journal::Body::Rerun(r) => crate::runtime::workflow::Entry::Rerun {
                from: r.from.clone(),
            },
            crate::journal::Body::End(e) => {
                status = e.ending.clone();
                continue;
            }
            _ => continue,
        };
        if let Err(e) = engine.replay_entry(&entry) {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"verified": false, "seq": rec.seq, "divergence": e})
                );
            } else {
                println!("record {}: {e}", rec.seq);
            }
            eprintln!("{origin}: the replay diverges at record {}", rec.seq);
            return exit::FAILED;
        }
    }
    if verify {
        if json {
            println!("{}", serde_json::json!({"verified": true, "records": last}));
        } else {
            println!("verified: {last} records replay to the states they recorded");
        }
        return exit::OK;
    }
    if json {
        let ops = operations_json(&engine);
        println!(
            "{}",
            serde_json::json!({"seq": last, "status": status, "operations": ops})
        );
        return exit::OK;
    }
    println!("after record {last}:");
    print_tree(&engine, None);
    exit::OK
}

/// The plan of a workflow text a journal holds; relative paths resolve from `file`'s
/// directory.
pub(super) fn plan_of(file: &str, source: &str) -> Result<Plan, u8> {
    let base = crate::lifecycle::plan::base_dir(Path::new(file)).to_path_buf();
    match Plan::load_source(crate::model::SourceFile::new(file, source), &base) {
        Ok((p, _)) => Ok(p),
        Err(d) => {
            eprintln!("orca: the journal's workflow does not load: {d}");
            Err(exit::USAGE)
        }
    }
}

/// The operation tree with each operation's state and attempt, and its duration when the
/// journal's times are given.
fn print_tree(engine: &Engine, spans: Option<&std::collections::HashMap<String, (u64, u64)>>) {
    let plan = engine.plan();
    for (op, depth) in plan.preorder() {
        let attempt = engine.attempt(op);
        let mut extra = if attempt > 1 {
            format!("  attempt {attempt}")
        } else {
            String::new()
        };
        if let Some(&(first, last)) = spans.and_then(|s| s.get(&plan.ops[op].path)) {
            extra.push_str(&format!("  {:.1}s", (last - first) as f64 / 1000.0));
        }
        println!(
            "{}{:<w$} {:<12}{extra}",
            "  ".repeat(depth),
            plan.ops[op].name,
            engine.state(op),
            w = 28usize.saturating_sub(depth * 2)
        );
    }
}

/// Every operation's state, phase, attempt and output, for `status --json` and `replay --json`.
fn operations_json(engine: &Engine) -> Vec<serde_json::Value> {
    let plan = engine.plan();
    (0..plan.ops.len())
        .map(|i| {
            serde_json::json!({
                "op": plan.display_path(i),
                "state": engine.state(i),
                "phase": engine.phase(i).as_str(),
                "attempt": engine.attempt(i),
                "output": engine.output(i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// The `VmFlags` line of the mapping holding `addr`, from /proc/self/smaps.
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_string();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn a_workflow_run_marks_the_heap_for_small_pages() {
        // Large enough for malloc to give it an anonymous mapping of its own.
        let block = vec![1u8; 8 << 20];
        let addr = block.as_ptr() as usize;
        super::small_pages_for_the_heap();
        let flags = vm_flags(addr);
        assert!(flags.split_whitespace().any(|f| f == "nh"), "{flags}");
        assert_eq!(block[block.len() - 1], 1, "the contents stay");
    }
}
