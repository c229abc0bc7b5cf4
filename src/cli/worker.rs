//! `orca worker --store URL [--concurrency N] [--tags T,...] [--lease DURATION]`: runs the
//! work of any run in the store (docs/scale-out.md).

use super::exit;
use crate::model::DurationMs;
use crate::store::postgres::PgStore;
use crate::store::postgres::worker::{self, WorkerOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The PostgreSQL database the coordinators use (`postgresql://USER@HOST/DB`, or
    /// `postgresql:///DB?host=/socket/dir`).
    #[arg(long, value_name = "URL", env = "ORCA_STORE", hide_env_values = true)]
    store: String,
    /// Pieces of work at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    /// Runs only work whose operations' tags are all among these (comma-separated).
    #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
    tags: Vec<String>,
    /// How long a claim holds without a heartbeat (heartbeats come every third of it);
    /// work of a worker that stopped answering is retried after this.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    lease: DurationMs,
    /// The name shown in the work table (default: host:pid:n).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

/// Runs until SIGINT or SIGTERM, then finishes the work it holds; a second signal stops
/// that work too.
pub fn run(args: Args) -> u8 {
    let store = match PgStore::new(&args.store) {
        Ok(s) => s,
        Err(e) => return super::workflow::store_failed(&e),
    };
    if args.lease.0 < 30 {
        eprintln!("orca: --lease {}: at least 30ms", args.lease);
        return exit::USAGE;
    }
    let opts = WorkerOptions {
        concurrency: args.concurrency.max(1),
        tags: args
            .tags
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        lease: std::time::Duration::from_millis(args.lease.0),
        name: args.name.unwrap_or_else(WorkerOptions::default_name),
    };
    let name = opts.name.clone();
    let Some(rt) = super::runtime() else {
        return exit::FAILED;
    };
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&rt, async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return Err("cannot handle signals".to_string());
        };
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let signals = async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let _ = first_tx.send(());
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        };
        let work = worker::run(store, opts, async move {
            let _ = first_rx.await;
        });
        tokio::select! {
            r = work => r.map_err(|e| e.to_string()),
            // A second signal: the work held is dropped, its processes killed with it.
            _ = signals => Err("stopped by a second signal; the work held was stopped".into()),
        }
    });
    match outcome {
        Ok(stats) => {
            eprintln!(
                "worker {name}: ran {}, refused {} late result(s), lost {} claim(s)",
                stats.ran, stats.refused, stats.lost
            );
            exit::OK
        }
        Err(e) if e.starts_with("stopped by") => {
            eprintln!("orca: worker {name}: {e}");
            exit::INTERRUPTED
        }
        Err(e) => {
            eprintln!("orca: {e}");
            exit::USAGE
        }
    }
}
