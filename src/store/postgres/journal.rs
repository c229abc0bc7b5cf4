//! A run's journal written to `orca_journal` by a thread of its own, in groups: what the
//! engine records while the thread writes goes out in the next statement, and the engine's
//! barrier (before new work starts) waits until its records are committed. The thread's
//! connection holds the run's advisory lock, so one coordinator at a time runs a run.

use super::{PgStore, StoreError, StoredRun, block, db_error, run_lock_key};
use crate::journal::{Body, Header};
use crate::runtime::workflow::{OpRecord, WorkflowRecorder};
use crate::store::RunWriter;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Statement};

/// How long the database may stay unreachable before the run stops.
const OUTAGE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct State {
    next_seq: u64,
    /// The lines not yet handed to the thread, one after the other (each ends with `\n`),
    /// and the sequence number of the first.
    pending: Vec<u8>,
    pending_from: u64,
    /// Every record below this is committed.
    durable: u64,
    /// `orca_runs.status` to set with the next group (an end record was appended).
    status: Option<String>,
    error: Option<String>,
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
}

pub(super) struct PgRun {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    last: Option<u64>,
}

/// What the thread reports once it holds the run.
type Ready = Result<(u64, Option<StoredRun>), StoreError>;

impl PgRun {
    pub(super) fn create(store: PgStore, run: &str, header: Header) -> Result<PgRun, StoreError> {
        let mut first = Vec::new();
        Body::Header(Box::new(header.clone())).encode_into(
            &mut first,
            0,
            crate::journal::wall_ms(),
        );
        let first = String::from_utf8(first).map_err(|e| StoreError::Journal(e.to_string()))?;
        let run = run.to_string();
        PgRun::start(store, run.clone(), move |store, client| {
            Box::pin(async move {
                store.schema(client, true).await?;
                if !lock(client, &run, false).await? {
                    return Err(StoreError::Run(format!(
                        "run {run} is in use by another orca process"
                    )));
                }
                let e = |e: tokio_postgres::Error| {
                    StoreError::Unavailable(format!("{}: {}", store.shown, db_error(&e)))
                };
                let tx = client.transaction().await.map_err(e)?;
                let n = tx
                    .execute(
                        "INSERT INTO orca_runs (run_id, workflow, started) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&run, &header.file, &header.started],
                    )
                    .await
                    .map_err(e)?;
                if n == 0 {
                    return Err(StoreError::Run(format!(
                        "{}: a run {run} exists already",
                        store.shown
                    )));
                }
                tx.execute(
                    "INSERT INTO orca_journal (run_id, seq, line) VALUES ($1, 0, $2)",
                    &[&run, &first],
                )
                .await
                .map_err(e)?;
                tx.commit().await.map_err(e)?;
                Ok((1, None))
            })
        })
        .map(|(r, _)| r)
    }

    pub(super) fn reopen(
        store: PgStore,
        run: &str,
        wait: bool,
    ) -> Result<(PgRun, StoredRun), StoreError> {
        let run = run.to_string();
        let (r, stored) = PgRun::start(store, run.clone(), move |store, client| {
            Box::pin(async move {
                store.schema(client, false).await?;
                if !lock(client, &run, wait).await? {
                    return Err(StoreError::Run(format!(
                        "run {run} is in use by another orca process (its coordinator is alive; `orca resume --wait` stands by until it stops)"
                    )));
                }
                let stored = store.read_async(client, &run).await?;
                // One line per record, the header's included: the next sequence number.
                let next = stored.bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                Ok((next, Some(stored)))
            })
        })?;
        Ok((r, stored.expect("a reopened run's records")))
    }

    /// Starts the writer thread; `hold` runs first on its connection and decides whether
    /// the run is ours, and from which sequence number records continue.
    fn start<F>(
        store: PgStore,
        run: String,
        hold: F,
    ) -> Result<(PgRun, Option<StoredRun>), StoreError>
    where
        F: for<'a> FnOnce(
                &'a PgStore,
                &'a mut Client,
            )
                -> std::pin::Pin<Box<dyn std::future::Future<Output = Ready> + 'a>>
            + Send
            + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("orca-pg-journal".into())
            .spawn(move || {
                crate::journal::block_signals();
                let outcome = block(async {
                    let mut client = match store.connect().await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    match hold(&store, &mut client).await {
                        Ok((next, stored)) => {
                            {
                                let mut st = s.state.lock().expect("journal state");
                                st.next_seq = next;
                                st.durable = next;
                            }
                            let _ = ready_tx.send(Ok((next, stored)));
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                    write_loop(&store, &run, client, &s).await;
                });
                if let Err(e) = outcome {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start a thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok((_, stored))) => Ok((
                PgRun {
                    shared,
                    thread: Some(thread),
                    last: None,
                },
                stored,
            )),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StoreError::Unavailable("the journal thread stopped".into()))
            }
        }
    }

    fn push(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>, u64, u64),
        status: Option<String>,
    ) -> Result<(), String> {
        let mut st = self.shared.state.lock().expect("journal state");
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        if st.pending.is_empty() {
            st.pending_from = seq;
        }
        encode(&mut st.pending, seq, crate::journal::wall_ms());
        if status.is_some() {
            st.status = status;
        }
        self.last = Some(seq);
        self.shared.wake.notify_one();
        Ok(())
    }
}

/// Takes the run's advisory lock on this connection (waiting for it with `wait`).
async fn lock(client: &Client, run: &str, wait: bool) -> Result<bool, StoreError> {
    let key = run_lock_key(run);
    let q = if wait {
        "SELECT pg_advisory_lock($1) IS NOT NULL"
    } else {
        "SELECT pg_try_advisory_lock($1)"
    };
    client
        .query_one(q, &[&key])
        .await
        .map(|r| r.get(0))
        .map_err(|e| StoreError::Unavailable(db_error(&e)))
}

async fn write_loop(store: &PgStore, run: &str, mut client: Client, s: &Shared) {
    // A resumed run is running again from its first new record on (not before: a resume
    // that finds nothing to do leaves the run as it was).
    let mut first = true;
    let mut statement = None;
    loop {
        let (from, lines, upto, status) = {
            let mut st = s.state.lock().expect("journal state");
            while st.pending.is_empty() && st.status.is_none() && !st.closing {
                st = s.wake.wait(st).expect("journal state");
            }
            if st.pending.is_empty() && st.status.is_none() && st.closing {
                return;
            }
            let upto = (!st.pending.is_empty()).then_some(st.next_seq);
            let from = upto.map(|_| st.pending_from as i64);
            // Lines are JSON, so UTF-8.
            let lines = String::from_utf8_lossy(&st.pending).into_owned();
            st.pending.clear();
            (from, lines, upto, st.status.take())
        };
        let status = match status {
            None if first && from.is_some() => Some("running".to_string()),
            s => s,
        };
        first = false;
        let since = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            match write(
                &client,
                &mut statement,
                run,
                from,
                &lines,
                status.as_deref(),
            )
            .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %db_error(&e), "cannot write the journal; reconnecting");
                }
            }
            if since.elapsed() > OUTAGE {
                let mut st = s.state.lock().expect("journal state");
                st.error = Some(format!(
                    "{}: the database was unreachable for {}s",
                    store.shown,
                    OUTAGE.as_secs()
                ));
                s.done.notify_all();
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            if client.is_closed() {
                let Ok(c) = store.connect().await else {
                    continue;
                };
                client = c;
                statement = None;
                // The lock went with the old connection: take it again, or another
                // coordinator has the run now and this one must stop.
                match lock(&client, run, false).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let mut st = s.state.lock().expect("journal state");
                        st.error = Some(format!(
                            "run {run} was taken over by another coordinator while the database was unreachable"
                        ));
                        s.done.notify_all();
                        return;
                    }
                    Err(_) => continue,
                }
            }
        }
        let mut st = s.state.lock().expect("journal state");
        if let Some(u) = upto {
            st.durable = st.durable.max(u);
        }
        s.done.notify_all();
    }
}

/// A group of lines as one row (numbered by its first line; a reader concatenates the rows
/// in order) and, when it changes, the run's status: one statement, so one round trip and
/// atomic without a transaction around it. A group written again after a lost connection
/// finds its row there already.
const WRITE: &str = "WITH lines AS (INSERT INTO orca_journal (run_id, seq, line) \
       SELECT $1, $2, $3 WHERE $2::bigint IS NOT NULL ON CONFLICT DO NOTHING) \
     UPDATE orca_runs SET status = $4 WHERE run_id = $1 AND $4::text IS NOT NULL";

/// Writes with `statement`, prepared on `client` the first time (`None` again after a
/// reconnection: a statement belongs to its connection).
async fn write(
    client: &Client,
    statement: &mut Option<Statement>,
    run: &str,
    from: Option<i64>,
    lines: &str,
    status: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let st = match statement {
        Some(st) => st,
        None => statement.insert(client.prepare(WRITE).await?),
    };
    client
        .execute(&*st, &[&run, &from, &lines, &status])
        .await?;
    Ok(())
}

impl WorkflowRecorder for PgRun {
    fn record(&mut self, rec: &OpRecord) -> Result<(), String> {
        self.push(
            |out, seq, wall| crate::journal::encode_line(out, seq, wall, "op", rec),
            None,
        )
    }

    fn rerun(&mut self, from: &[String]) -> Result<(), String> {
        let body = Body::Rerun(crate::journal::Rerun {
            from: from.to_vec(),
        });
        self.push(|out, seq, wall| body.encode_into(out, seq, wall), None)
    }

    fn barrier(&mut self) -> Result<(), String> {
        let Some(last) = self.last else {
            return Ok(());
        };
        let mut st = self.shared.state.lock().expect("journal state");
        while st.durable <= last && st.error.is_none() {
            st = self.shared.done.wait(st).expect("journal state");
        }
        match &st.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl RunWriter for PgRun {
    fn append(&mut self, body: Body) -> Result<(), String> {
        let status = match &body {
            Body::End(e) => Some(e.ending.clone()),
            _ => None,
        };
        self.push(|out, seq, wall| body.encode_into(out, seq, wall), status)
    }

    fn close(&mut self) -> Result<(), String> {
        let r = self.barrier();
        self.shared.state.lock().expect("journal state").closing = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        r
    }
}

impl Drop for PgRun {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.state.lock().expect("journal state").closing = true;
            self.shared.wake.notify_all();
            let _ = t.join();
        }
    }
}
