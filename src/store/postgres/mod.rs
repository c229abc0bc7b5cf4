//! Workflow runs in PostgreSQL: the journal of every run, and the work queue that workers
//! claim from (docs/scale-out.md).
//!
//! Tables (schema version [`SCHEMA`], created and migrated by orca, recorded in
//! `orca_schema`):
//! - `orca_runs`: one row per run (workflow file, start, status);
//! - `orca_journal`: a run's journal, exactly the lines a journal file would hold (header at
//!   `seq` 0), one row per group written together, numbered by its first line;
//! - `orca_work`: work waiting, claimed under a lease, or done with its result. A piece of
//!   work is named by (run, operation, phase, attempt, generation), so a coordinator that
//!   restarts finds the work it had handed out, and a result recorded while it was away.

mod dispatch;
mod journal;
pub mod worker;

pub use dispatch::PgDispatch;

use super::{RunStore, RunSummary, RunWriter, StoreError, StoredRun, redact};
use crate::journal::workflow::WorkflowLog;
use crate::journal::{Header, Journal};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// The schema version this orca writes. A database at a higher version is refused.
pub const SCHEMA: i32 = 2;

/// Each migration takes the schema from its index to the next version.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE orca_runs (
    run_id   text PRIMARY KEY,
    workflow text NOT NULL,
    started  text NOT NULL,
    status   text NOT NULL DEFAULT 'running'
);
CREATE TABLE orca_journal (
    run_id text NOT NULL,
    seq    bigint NOT NULL,
    line   text NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE SEQUENCE orca_claims;
CREATE TABLE orca_work (
    id          bigserial PRIMARY KEY,
    run_id      text NOT NULL,
    op          text NOT NULL,
    what        text NOT NULL,
    attempt     int NOT NULL,
    generation  int NOT NULL,
    -- fair share between runs: the n-th piece of work of every run goes before the
    -- (n+1)-th of any
    ordinal     bigint NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    job         text NOT NULL,
    state       text NOT NULL DEFAULT 'ready',
    worker      text,
    claim       bigint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    claims      int NOT NULL DEFAULT 0,
    expired     int NOT NULL DEFAULT 0,
    late        int NOT NULL DEFAULT 0,
    result      text,
    ready_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_at  timestamptz,
    done_at     timestamptz,
    UNIQUE (run_id, op, what, attempt, generation)
);
CREATE INDEX orca_work_ready ON orca_work (ordinal, id) WHERE state = 'ready';
CREATE INDEX orca_work_claimed ON orca_work (run_id, lease_until) WHERE state = 'claimed';
CREATE FUNCTION orca_work_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('orca_done', NEW.run_id); RETURN NULL; END $$;
CREATE TRIGGER orca_work_done AFTER UPDATE OF state ON orca_work
    FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION orca_work_done();
"#,
    // 2: the statement that records results notifies, with each result in its notification
    // (a row trigger sent one per row, with only the run, and the coordinator then read the
    // results again).
    r#"
DROP TRIGGER orca_work_done ON orca_work;
DROP FUNCTION orca_work_done();
"#,
];

/// A PostgreSQL database named by a URL (libpq's form, `?host=/dir` for a Unix socket).
#[derive(Clone)]
pub struct PgStore {
    config: tokio_postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    /// `--run-dir` / the local directory where this host keeps a run's logs.
    pub logs_root: PathBuf,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.shown)
    }
}

/// Runs `f` to its end on a runtime of its own: for the CLI's one-off queries, which are
/// made outside the engine's runtime.
pub(crate) fn block<F: std::future::Future>(f: F) -> Result<F::Output, StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot start a runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// The advisory lock key a run's coordinator holds.
fn run_lock_key(run: &str) -> i64 {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

impl PgStore {
    /// Parses the URL; connects only when asked to.
    pub fn new(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Address(format!("--store {shown}: {e}")))?;
        if config.get_hosts().is_empty() {
            // libpq's default: the local socket directory.
            config.host_path("/var/run/postgresql");
        }
        config.application_name("orca");
        config.connect_timeout(Duration::from_secs(10));
        Ok(PgStore {
            config,
            shown,
            logs_root: super::file::runs_root(),
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection, its driver spawned on the current runtime.
    pub async fn connect(&self) -> Result<Client, StoreError> {
        Self::connect_with(&self.config, &self.shown).await
    }

    /// The settings of the work queue's connections: commits do not wait for the WAL
    /// flush. A claim, heartbeat or result lost with a crash of the server only makes work
    /// run again (it is at-least-once anyway), and whatever the coordinator acted on is
    /// flushed by the journal's own commit, which waits and comes later in the log.
    fn queue_config(&self) -> tokio_postgres::Config {
        let mut c = self.config.clone();
        // Every query of the queue has its index: a generic plan cached while the table
        // was nearly empty must not scan it whole for ever after.
        let ours = "-c synchronous_commit=off -c enable_seqscan=off";
        let options = match c.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {ours}"),
            _ => ours.to_string(),
        };
        c.options(&options);
        c
    }

    /// A connection for the work queue (see [`PgStore::queue_config`]).
    pub async fn connect_queue(&self) -> Result<Client, StoreError> {
        Self::connect_with(&self.queue_config(), &self.shown).await
    }

    async fn connect_with(
        config: &tokio_postgres::Config,
        shown: &str,
    ) -> Result<Client, StoreError> {
        let (client, conn) = config.connect(NoTls).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot connect to {shown}: {}", db_error(&e)))
        })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }

    /// A connection whose notifications (`LISTEN`) arrive on the returned channel.
    pub async fn connect_listening(
        &self,
        channels: &[&str],
    ) -> Result<
        (
            Client,
            tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
        ),
        StoreError,
    > {
        let (client, mut conn) = self.config.connect(NoTls).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to {}: {}",
                self.shown,
                db_error(&e)
            ))
        })?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        if tx
                            .send((n.channel().to_string(), n.payload().to_string()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        let listen: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
        client
            .batch_execute(&listen)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.shown)))?;
        Ok((client, rx))
    }

    /// A pool of `size` connections (workers run several pieces of work at once).
    pub fn pool(&self, size: usize) -> Result<deadpool_postgres::Pool, StoreError> {
        let mgr = deadpool_postgres::Manager::from_config(
            self.queue_config(),
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(mgr)
            .max_size(size.max(1))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.shown)))
    }

    /// Checks the schema: creates or migrates it when `create`, else requires it. A schema
    /// from a newer orca is refused either way, before anything is written.
    pub async fn schema(&self, client: &mut Client, create: bool) -> Result<(), StoreError> {
        let err = |e: tokio_postgres::Error| {
            StoreError::Unavailable(format!("{}: {}", self.shown, db_error(&e)))
        };
        let version = current_version(client).await.map_err(err)?;
        if version > SCHEMA {
            return Err(StoreError::Schema(format!(
                "{} holds orca schema version {version}, newer than this orca's ({SCHEMA}): use a newer orca",
                self.shown
            )));
        }
        if version == SCHEMA {
            return Ok(());
        }
        if !create {
            return Err(StoreError::Schema(if version == 0 {
                format!(
                    "{} has no orca schema: no run was ever stored there (`orca run --store` or `orca worker` creates it)",
                    self.shown
                )
            } else {
                format!(
                    "{} holds orca schema version {version}; `orca run --store` or `orca worker` migrates it to {SCHEMA}",
                    self.shown
                )
            }));
        }
        let tx = client.transaction().await.map_err(err)?;
        // One migrator at a time; the others find the work done.
        tx.execute("SELECT pg_advisory_xact_lock(1869767521)", &[])
            .await
            .map_err(err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS orca_schema (version int NOT NULL)")
            .await
            .map_err(err)?;
        let row = tx
            .query_opt("SELECT version FROM orca_schema", &[])
            .await
            .map_err(err)?;
        let mut at: i32 = row.map_or(0, |r| r.get(0));
        if at > SCHEMA {
            return Err(StoreError::Schema(format!(
                "{} holds orca schema version {at}, newer than this orca's ({SCHEMA}): use a newer orca",
                self.shown
            )));
        }
        while at < SCHEMA {
            tx.batch_execute(MIGRATIONS[at as usize])
                .await
                .map_err(err)?;
            at += 1;
        }
        tx.execute("DELETE FROM orca_schema", &[])
            .await
            .map_err(err)?;
        tx.execute("INSERT INTO orca_schema (version) VALUES ($1)", &[&at])
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn read_async(&self, client: &Client, run: &str) -> Result<StoredRun, StoreError> {
        let rows = client
            .query(
                "SELECT line FROM orca_journal WHERE run_id = $1 ORDER BY seq",
                &[&run],
            )
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {}", self.shown, db_error(&e))))?;
        if rows.is_empty() {
            return Err(StoreError::Run(format!("{}: no run {run}", self.shown)));
        }
        let mut bytes = Vec::new();
        for r in rows {
            let line: &str = r.get(0);
            bytes.extend_from_slice(line.as_bytes());
        }
        let name = PathBuf::from(format!("{}#{run}", self.shown));
        let j = Journal::read_bytes(&bytes)
            .map_err(|e| StoreError::Journal(format!("{}: {e}", name.display())))?;
        let log = WorkflowLog::from_journal(j, &name).map_err(StoreError::Journal)?;
        Ok(StoredRun { log, bytes })
    }
}

/// A database error with its detail (tokio-postgres prints only "db error" otherwise).
pub(crate) fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s = format!("{s}: {x}");
                src = x.source();
            }
            s
        }
    }
}

async fn current_version(client: &Client) -> Result<i32, tokio_postgres::Error> {
    let exists = client
        .query_one("SELECT to_regclass('orca_schema') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_opt("SELECT version FROM orca_schema", &[])
        .await?
        .map_or(0, |r| r.get(0)))
}

impl RunStore for PgStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn create(&self, run: &str, header: Header) -> Result<Box<dyn RunWriter>, StoreError> {
        journal::PgRun::create(self.clone(), run, header).map(|r| Box::new(r) as Box<dyn RunWriter>)
    }

    fn read(&self, run: &str) -> Result<StoredRun, StoreError> {
        block(async {
            let mut client = self.connect().await?;
            self.schema(&mut client, false).await?;
            self.read_async(&client, run).await
        })?
    }

    fn reopen(&self, run: &str, wait: bool) -> Result<(StoredRun, Box<dyn RunWriter>), StoreError> {
        let (w, stored) = journal::PgRun::reopen(self.clone(), run, wait)?;
        Ok((stored, Box::new(w)))
    }

    fn list(&self) -> Result<Vec<RunSummary>, StoreError> {
        block(async {
            let mut client = self.connect().await?;
            self.schema(&mut client, false).await?;
            let rows = client
                .query(
                    "SELECT run_id, started, status, workflow FROM orca_runs ORDER BY started, run_id",
                    &[],
                )
                .await
                .map_err(|e| StoreError::Unavailable(format!("{}: {}", self.shown, db_error(&e))))?;
            let mut out = Vec::new();
            for r in rows {
                let run: String = r.get(0);
                let status: String = r.get(2);
                let status = if status == "running" && !held(&client, &run).await {
                    "interrupted".to_string()
                } else {
                    status
                };
                out.push(RunSummary {
                    run,
                    started: r.get(1),
                    status,
                    workflow: r.get(3),
                });
            }
            Ok(out)
        })?
    }

    fn run_dir(&self, run: &str) -> PathBuf {
        self.logs_root.join(run)
    }
}

/// Whether some coordinator holds `run` now (its advisory lock is taken).
async fn held(client: &Client, run: &str) -> bool {
    let key = run_lock_key(run);
    // A 64-bit advisory lock shows in pg_locks as classid (high half) and objid (low half).
    let (hi, lo) = ((key >> 32) as u32, key as u32);
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)",
            &[&i64::from(hi), &i64::from(lo)],
        )
        .await
        .is_ok_and(|r| r.get(0))
}

/// Where a path from a job is written on this host (logs of a phase run here).
pub(crate) fn ensure_parent(p: &Path) {
    if let Some(d) = p.parent() {
        let _ = std::fs::create_dir_all(d);
    }
}
