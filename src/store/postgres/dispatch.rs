//! The coordinator's side of the work queue: work the engine would run is put in
//! `orca_work`, and its result comes back when a worker records it (a `NOTIFY` wakes the
//! coordinator; a poll covers notifications lost with a connection). Leases that ran out
//! are expired here: the work comes back to the engine as a retryable failure, so the
//! operation's retry policy decides what happens next.

use super::{PgStore, StoreError, db_error};
use crate::runtime::workflow::work::WorkResult;
use crate::runtime::workflow::{Dispatch, DispatchedWork};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_postgres::{Client, Statement};

const SUBMIT: &str = "WITH ins AS (
    INSERT INTO orca_work (run_id, op, what, attempt, generation, ordinal, tags, job)
    VALUES ($1, $2, $3, $4, $5,
        GREATEST($6, coalesce((SELECT ordinal FROM orca_work WHERE state = 'ready' ORDER BY ordinal, id LIMIT 1), 0)),
        $7, $8)
    ON CONFLICT (run_id, op, what, attempt, generation) DO UPDATE
        SET state = 'ready', worker = NULL, lease_until = NULL, result = NULL,
            job = EXCLUDED.job, ready_at = clock_timestamp()
        WHERE orca_work.state IN ('cancelled', 'expired')
    RETURNING id, state, result, ordinal)
SELECT id, state, result, ordinal FROM ins
UNION ALL
SELECT id, state, result, ordinal FROM orca_work
    WHERE run_id = $1 AND op = $2 AND what = $3 AND attempt = $4 AND generation = $5
    AND NOT EXISTS (SELECT 1 FROM ins)";

const RESULTS: &str = "SELECT id, state, result FROM orca_work \
    WHERE id = ANY($1) AND state IN ('done', 'expired')";

const EXPIRE: &str = "UPDATE orca_work SET state = 'expired', expired = expired + 1 \
    WHERE run_id = $1 AND state = 'claimed' AND lease_until < clock_timestamp() RETURNING id";

const CANCEL: &str = "WITH c AS (UPDATE orca_work SET state = 'cancelled' \
    WHERE id = $1 AND state IN ('ready', 'claimed') RETURNING id) \
    SELECT pg_notify('orca_cancel', id::text) FROM c";

/// How often the coordinator looks for results without being notified, and for leases
/// that ran out.
const POLL: Duration = Duration::from_millis(200);

/// A connection with the statements the coordinator uses, prepared once.
struct Conn {
    client: Client,
    submit: Statement,
    results: Statement,
    expire: Statement,
    cancel: Statement,
}

struct Inner {
    store: PgStore,
    run: String,
    conn: tokio::sync::Mutex<Option<Rc<Conn>>>,
    waiters: RefCell<HashMap<i64, oneshot::Sender<WorkResult>>>,
    next_ordinal: Cell<i64>,
    poller: Cell<bool>,
    /// A `NOTIFY orca_ready` is due: sent once for all the work handed out together.
    notify_due: Cell<bool>,
    wake: tokio::sync::Notify,
}

/// Hands a run's work to workers through the database.
pub struct PgDispatch {
    inner: Rc<Inner>,
}

impl PgDispatch {
    /// A dispatcher for `run`. Connects when the first work is handed out.
    pub fn new(store: PgStore, run: &str) -> PgDispatch {
        PgDispatch {
            inner: Rc::new(Inner {
                store,
                run: run.to_string(),
                conn: tokio::sync::Mutex::new(None),
                waiters: RefCell::new(HashMap::new()),
                next_ordinal: Cell::new(0),
                poller: Cell::new(false),
                notify_due: Cell::new(false),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl Inner {
    async fn conn(&self) -> Result<Rc<Conn>, StoreError> {
        let mut g = self.conn.lock().await;
        if let Some(c) = &*g
            && !c.client.is_closed()
        {
            return Ok(c.clone());
        }
        *g = None;
        let client = self.store.connect_queue().await?;
        let e = |e: tokio_postgres::Error| StoreError::Unavailable(db_error(&e));
        let c = Rc::new(Conn {
            submit: client.prepare(SUBMIT).await.map_err(e)?,
            results: client.prepare(RESULTS).await.map_err(e)?,
            expire: client.prepare(EXPIRE).await.map_err(e)?,
            cancel: client.prepare(CANCEL).await.map_err(e)?,
            client,
        });
        *g = Some(c.clone());
        Ok(c)
    }

    /// Puts the work in the queue (or finds it there): its id, and its result if a worker
    /// recorded one already (a coordinator that restarted).
    async fn submit(
        &self,
        w: &DispatchedWork,
        job: &str,
        ordinal: i64,
    ) -> Result<(i64, Option<WorkResult>), String> {
        let c = self.conn().await.map_err(|e| e.to_string())?;
        let tags: Vec<String> = w.tags.clone();
        let row = c
            .client
            .query_one(
                &c.submit,
                &[
                    &self.run,
                    &w.op,
                    &w.what,
                    &(w.attempt as i32),
                    &(w.generation as i32),
                    &ordinal,
                    &tags,
                    &job,
                ],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let id: i64 = row.get(0);
        let state: &str = row.get(1);
        // Queued behind others' work: this run's next pieces go after it.
        let placed: i64 = row.get(3);
        self.next_ordinal
            .set(self.next_ordinal.get().max(placed + 1));
        let result = match state {
            "done" => Some(parse_result(row.get(2))),
            _ => None,
        };
        Ok((id, result))
    }

    async fn cancel(&self, id: i64) {
        for _ in 0..3 {
            if let Ok(c) = self.conn().await
                && c.client.query(&c.cancel, &[&id]).await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its lease will run out instead; a result it records after that is refused.
    }

    /// Delivers the results of work that ended, and expires leases that ran out.
    async fn collect(&self, expire: bool) -> Result<(), String> {
        let ids: Vec<i64> = self.waiters.borrow().keys().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let c = self.conn().await.map_err(|e| e.to_string())?;
        let mut ended: Vec<(i64, WorkResult)> = Vec::new();
        if expire {
            for r in c
                .client
                .query(&c.expire, &[&self.run])
                .await
                .map_err(|e| db_error(&e))?
            {
                let id: i64 = r.get(0);
                tracing::warn!(
                    work = id,
                    "a worker's lease ran out: its work counts as failed"
                );
                ended.push((id, lost()));
            }
        }
        for r in c
            .client
            .query(&c.results, &[&ids])
            .await
            .map_err(|e| db_error(&e))?
        {
            let id: i64 = r.get(0);
            let state: &str = r.get(1);
            ended.push((
                id,
                if state == "done" {
                    parse_result(r.get(2))
                } else {
                    lost()
                },
            ));
        }
        let mut w = self.waiters.borrow_mut();
        for (id, result) in ended {
            if let Some(tx) = w.remove(&id) {
                let _ = tx.send(result);
            }
        }
        Ok(())
    }
}

fn lost() -> WorkResult {
    WorkResult::Failed {
        error: "the worker running it was lost (its lease ran out)".into(),
        retryable: true,
    }
}

fn parse_result(text: Option<&str>) -> WorkResult {
    match text.map(serde_json::from_str::<WorkResult>) {
        Some(Ok(r)) => r,
        Some(Err(e)) => WorkResult::Failed {
            error: format!("the result recorded by the worker is unreadable: {e}"),
            retryable: false,
        },
        None => WorkResult::Failed {
            error: "no result was recorded".into(),
            retryable: true,
        },
    }
}

/// Waits for results until the dispatcher and all its work are gone (only this task holds
/// `inner` then).
async fn poll_loop(inner: Rc<Inner>) {
    let mut listener: Option<tokio::sync::mpsc::UnboundedReceiver<(String, String)>> = None;
    let mut _listening: Option<Client> = None;
    let mut last_expiry = Instant::now();
    let mut delay = Duration::from_millis(50);
    while Rc::strong_count(&inner) > 1 {
        if listener.is_none()
            && let Ok((c, rx)) = inner.store.connect_listening(&["orca_done"]).await
        {
            _listening = Some(c);
            listener = Some(rx);
        }
        tokio::select! {
            n = async { match &mut listener { Some(l) => l.recv().await, None => std::future::pending().await } } => {
                if n.is_none() {
                    listener = None;
                }
            }
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        if let Some(l) = &mut listener {
            while l.try_recv().is_ok() {}
        }
        let expire = last_expiry.elapsed() >= POLL;
        if expire {
            last_expiry = Instant::now();
        }
        match inner.collect(expire).await {
            Ok(()) => delay = Duration::from_millis(50),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read work results; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

impl Dispatch for PgDispatch {
    fn dispatch(
        &mut self,
        work: DispatchedWork,
        cancel: oneshot::Receiver<()>,
    ) -> Pin<Box<dyn Future<Output = WorkResult>>> {
        let inner = self.inner.clone();
        if !inner.poller.replace(true) {
            tokio::task::spawn_local(poll_loop(inner.clone()));
        }
        Box::pin(async move {
            let job = match serde_json::to_string(&work.job) {
                Ok(j) => j,
                Err(e) => {
                    return WorkResult::Failed {
                        error: format!("cannot hand the work out: {e}"),
                        retryable: false,
                    };
                }
            };
            let mut cancel = cancel;
            // Taken now, before any await: work handed out together gets successive places.
            let ordinal = inner.next_ordinal.get();
            inner.next_ordinal.set(ordinal + 1);
            let mut delay = Duration::from_millis(50);
            let id = loop {
                match inner.submit(&work, &job, ordinal).await {
                    Ok((_, Some(result))) => return result,
                    Ok((id, None)) => break id,
                    Err(e) => tracing::warn!(error = %e, "cannot hand work out; retrying"),
                }
                tokio::select! {
                    _ = &mut cancel => return cancelled(),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            };
            if !inner.notify_due.replace(true) {
                let inner = inner.clone();
                tokio::task::spawn_local(async move {
                    // After the other submissions of this turn of the event loop.
                    tokio::task::yield_now().await;
                    inner.notify_due.set(false);
                    if let Ok(c) = inner.conn().await {
                        let _ = c.client.execute("NOTIFY orca_ready", &[]).await;
                    }
                });
            }
            let (tx, rx) = oneshot::channel();
            inner.waiters.borrow_mut().insert(id, tx);
            inner.wake.notify_one();
            tokio::select! {
                r = rx => r.unwrap_or_else(|_| lost()),
                _ = cancel => {
                    inner.waiters.borrow_mut().remove(&id);
                    inner.cancel(id).await;
                    cancelled()
                }
            }
        })
    }
}

fn cancelled() -> WorkResult {
    WorkResult::Failed {
        error: "cancelled".into(),
        retryable: false,
    }
}
