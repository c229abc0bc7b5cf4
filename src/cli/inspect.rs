//! `orca inspect JOURNAL|RUN [ADDR]`, and what `--inspect` on `run` and `step` share:
//! starting the inspector and feeding it (docs/inspect.md).

use super::exit;
use super::workflow::StoreArgs;
use crate::inspect::{Bound, Control, Hub, Mode, Served, Subject};
use crate::journal::{Body, Journal};
use crate::model::Json;
use crate::runtime::Step;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A machine journal (`--journal` of `run` or `step`), or a workflow run: its id or
    /// directory, or its id in `--store`.
    target: String,
    /// Where to serve: `HOST:PORT` or a port; a non-loopback address needs the token
    /// printed at start.
    #[arg(default_value = crate::inspect::server::DEFAULT_ADDR)]
    addr: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// Takes the inspector's address before anything is created; says why not on stderr.
pub(super) fn bind(addr: &str) -> Result<Bound, u8> {
    crate::inspect::bind(addr).map_err(|e| {
        eprintln!("orca: {e}");
        exit::USAGE
    })
}

/// [`bind`] for `--inspect [ADDR]`, which may be absent.
pub(super) fn bind_opt(addr: Option<&str>) -> Result<Option<Bound>, u8> {
    addr.map(bind).transpose()
}

/// Starts serving `hub`, saying where on stderr (stdout stays the command's own).
pub(super) fn start(
    bound: Bound,
    hub: Arc<Hub>,
    control: Control,
    logs: Option<PathBuf>,
) -> Result<Served, u8> {
    match bound.serve(hub, control, logs) {
        Ok(s) => {
            eprintln!("inspect: {}", s.url);
            if s.token.is_some() {
                eprintln!(
                    "inspect: serving on {}, beyond loopback: requests without the token are refused",
                    s.addr
                );
            }
            Ok(s)
        }
        Err(e) => {
            eprintln!("orca: {e}");
            Err(exit::USAGE)
        }
    }
}

/// A workflow's lifecycle change as the page lists it.
pub(super) fn change_json(t_ms: u64, c: &crate::runtime::workflow::Change) -> Json {
    serde_json::json!({
        "t": t_ms,
        // The page names operations by plan path, the root's being empty.
        "op": if c.op == 0 { "" } else { c.path.as_str() },
        "event": c.event,
        "from": c.from,
        "to": c.to,
        "phase": c.phase.as_str(),
        "attempt": c.attempt,
        "error": c.error,
        "output": c.output,
    })
}

/// Every operation's state, phase, attempt and output, by path (the page's last word).
pub(super) fn operations_live(engine: &crate::runtime::workflow::Engine) -> Json {
    let plan = engine.plan();
    let ops: serde_json::Map<String, Json> = (0..plan.ops.len())
        .map(|i| {
            (
                plan.ops[i].path.clone(),
                serde_json::json!({
                    "state": engine.state(i),
                    "phase": engine.phase(i).as_str(),
                    "attempt": engine.attempt(i),
                    "output": engine.output(i),
                    "error": engine.error(i),
                }),
            )
        })
        .collect();
    serde_json::json!({ "ops": ops })
}

/// `orca inspect`: serves a recorded run until interrupted.
pub fn run(args: Args) -> u8 {
    let path = Path::new(&args.target);
    let machine = args.store.store.is_none()
        && path.is_file()
        && crate::journal::Records::open(path, crate::journal::Detail::Full)
            .is_ok_and(|r| r.header.kind == "machine");
    let bound = match bind(&args.addr) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let (hub, logs) = if machine {
        match recorded_machine(path) {
            Ok(h) => (h, None),
            Err(code) => return code,
        }
    } else {
        match recorded_workflow(&args.target, &args.store) {
            Ok(h) => h,
            Err(code) => return code,
        }
    };
    let served = match start(bound, hub, Control::None, logs) {
        Ok(s) => s,
        Err(code) => return code,
    };
    eprintln!("inspect: showing {}; Ctrl-C stops", args.target);
    let Some(rt) = super::runtime() else {
        return exit::FAILED;
    };
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    served.stop();
    exit::OK
}

/// A machine journal, replayed: its steps as recorded (rewinds followed), its ending, and
/// the timers pending at its end.
fn recorded_machine(path: &Path) -> Result<Arc<Hub>, u8> {
    let journal = match Journal::read_file(path) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("orca: {}: {e}", path.display());
            return Err(exit::USAGE);
        }
    };
    for w in &journal.warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    let h = &journal.header;
    let mut replayer = match crate::journal::replay::runner_for(h, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orca: {}: {e}", path.display());
            return Err(exit::USAGE);
        }
    };
    let structure = crate::chart::graph::structure(replayer.root().chart());
    let hub = Hub::new(Subject::Machine, Mode::Recorded, &h.file, structure);
    let mut steps: Vec<(u64, Step)> = Vec::new();
    let mut ending = None;
    for rec in &journal.records {
        match &rec.body {
            Body::Rewind(r) => steps.retain(|(seq, _)| *seq <= r.to),
            Body::End(e) => ending = Some(e.clone()),
            _ => {}
        }
        match crate::journal::replay::apply(&mut replayer, rec) {
            Ok(Some(step)) => steps.push((rec.seq, step)),
            Ok(None) => {}
            Err(e) => {
                eprintln!(
                    "{}: warning: replay stopped at record {}: {e}",
                    path.display(),
                    rec.seq
                );
                break;
            }
        }
    }
    let steps: Vec<Step> = steps.into_iter().map(|(_, s)| s).collect();
    hub.sync_steps(&steps, crate::inspect::machine_live(replayer.root()));
    let end = match ending {
        Some(e) => serde_json::json!({ "ending": e.ending, "message": e.message }),
        None => {
            serde_json::json!({ "ending": "unfinished", "message": "the journal has no end record" })
        }
    };
    hub.end(end);
    Ok(hub)
}

/// A workflow run as its journal keeps it: every lifecycle change with its time, and each
/// operation as a replay of the journal leaves it.
fn recorded_workflow(run: &str, store: &StoreArgs) -> Result<(Arc<Hub>, Option<PathBuf>), u8> {
    let stored = super::workflow::read_run(run, store)?;
    let journal = match Journal::read_bytes(&stored.bytes) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("orca: {run}: {e}");
            return Err(exit::USAGE);
        }
    };
    let log = &stored.log;
    let plan = super::workflow::plan_of(&log.file, &log.source)?;
    let run_dir = match store.store {
        Some(_) => None,
        None => Some(crate::store::file::run_dir_of(run)),
    };
    let mut engine = crate::runtime::workflow::Engine::new(
        plan,
        crate::runtime::workflow::EngineOptions {
            run_id: journal.header.instance.clone(),
            run_dir: run_dir.clone().unwrap_or_default(),
            max_parallel: None,
            compensate_on_cancel: false,
        },
    );
    let hub = Hub::new(
        Subject::Workflow,
        Mode::Recorded,
        &format!("{} ({})", engine.plan().id, journal.header.instance),
        Json::Null,
    );
    let mut states: std::collections::HashMap<String, String> = Default::default();
    for rec in &journal.records {
        let entry = match &rec.body {
            Body::Op(o) => {
                let from = states.insert(o.op.clone(), o.state.clone());
                hub.push_json(serde_json::json!({
                    "t": rec.wall,
                    "op": o.op,
                    "event": o.event.name(),
                    "from": from,
                    "to": o.state,
                    "attempt": o.attempt,
                }));
                crate::runtime::workflow::Entry::Op(o.clone())
            }
            Body::Rerun(r) => crate::runtime::workflow::Entry::Rerun {
                from: r.from.clone(),
            },
            _ => continue,
        };
        if let Err(e) = engine.replay_entry(&entry) {
            eprintln!(
                "orca: {run}: warning: replay stopped at record {}: {e}",
                rec.seq
            );
            break;
        }
    }
    hub.set_structure(crate::lifecycle::graph::structure(engine.plan()));
    hub.set_live(operations_live(&engine));
    let opened =
        super::workflow::Opened::open(store, run_dir.clone(), crate::journal::SyncPolicy::Batch)?;
    let resume = format!(
        "orca resume {}",
        opened.resume_args(
            &journal.header.instance,
            run_dir.as_deref().unwrap_or(Path::new(run))
        )
    );
    let end = match &log.end {
        Some(e) if e.ending == "succeeded" => {
            serde_json::json!({ "ending": e.ending, "message": e.message })
        }
        Some(e) => {
            serde_json::json!({ "ending": e.ending, "message": e.message, "resume": resume })
        }
        None => serde_json::json!({
            "ending": "interrupted",
            "message": "the run stopped without an end record (its process was killed or is still running)",
            "resume": resume,
        }),
    };
    hub.end(end);
    Ok((hub, run_dir))
}
