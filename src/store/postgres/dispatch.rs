//! The coordinator's side of the work queue: work the engine would run is put in
//! `orca_work`, and its result comes back when a worker records it (in the `NOTIFY` that
//! the worker's statement sends; a poll covers results too long for a notification and
//! notifications lost with a connection). Leases that ran out
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

/// Hands out a batch of work in one statement: each piece is inserted as `ready`, or found
/// by its name (a coordinator that restarted), or made ready again when it had been
/// cancelled or had expired. One row comes back per piece, matched by name.
/// A piece already there is found by one probe of the unique index per piece (the `LATERAL
/// … LIMIT 1` keeps the planner from joining the other way round: a generic plan made while
/// the table was small once scanned every row of the run for each batch, 9 ms a batch).
/// Workers hear of it when it commits (`orca_ready`, sent by the same statement: a
/// volatile function in a CTE that is read is evaluated once).
const SUBMIT: &str = "WITH input AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[], $7::text[], $8::text[])
        AS t(op, what, attempt, generation, ordinal, tags, job)),
front AS (SELECT coalesce((SELECT ordinal FROM orca_work WHERE state = 'ready' ORDER BY ordinal, id LIMIT 1), 0) AS o,
    pg_notify('orca_ready', '') AS notified),
ins AS (
    INSERT INTO orca_work (run_id, op, what, attempt, generation, ordinal, tags, job)
    SELECT $1, i.op, i.what, i.attempt, i.generation, GREATEST(i.ordinal, front.o),
        ARRAY(SELECT json_array_elements_text(i.tags::json)), i.job
    FROM input i, front
    ON CONFLICT (run_id, op, what, attempt, generation) DO UPDATE
        SET state = 'ready', worker = NULL, lease_until = NULL, result = NULL,
            job = EXCLUDED.job, ready_at = clock_timestamp()
        WHERE orca_work.state IN ('cancelled', 'expired')
    RETURNING id, op, what, attempt, generation, state, result, ordinal)
SELECT id, op, what, attempt, generation, state, result, ordinal FROM ins
UNION ALL
SELECT w.id, w.op, w.what, w.attempt, w.generation, w.state, w.result, w.ordinal
    FROM input i CROSS JOIN LATERAL (SELECT * FROM orca_work w WHERE w.run_id = $1
        AND w.op = i.op AND w.what = i.what AND w.attempt = i.attempt
        AND w.generation = i.generation LIMIT 1) w
    WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.op = i.op AND ins.what = i.what
        AND ins.attempt = i.attempt AND ins.generation = i.generation)";

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

/// A piece of work's name within its run: operation, phase (`what`), attempt, generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WorkKey(String, &'static str, i32, i32);

type Reply = oneshot::Sender<Result<(i64, Option<WorkResult>), String>>;

/// A piece of work waiting for the next batch.
struct Queued {
    key: WorkKey,
    ordinal: i64,
    /// Its tags as a JSON list.
    tags: String,
    job: String,
    reply: Reply,
}

/// The `'static` name of a phase as the table spells it.
fn what_name(s: &str) -> &'static str {
    const NAMES: [&str; 6] = [
        "analyze",
        "research",
        "decompose",
        "execute",
        "integrate",
        "compensate",
    ];
    NAMES.iter().copied().find(|n| *n == s).unwrap_or("unknown")
}

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
    /// Work waiting to be handed out in the next batch.
    queue: RefCell<Vec<Queued>>,
    /// A task hands the queue out.
    flushing: Cell<bool>,
    /// Results heard of before anyone waited for them (a worker can be that quick), or
    /// another run's: kept for a while as their text, with when they came.
    early: RefCell<HashMap<i64, (String, Instant)>>,
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
                queue: RefCell::new(Vec::new()),
                flushing: Cell::new(false),
                early: RefCell::new(HashMap::new()),
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

    /// Hands out everything queued for submission, one statement per batch, until nothing
    /// is left; each submitter hears its own piece's id (and its result, when a worker
    /// recorded one already: a coordinator that restarted), or the error.
    async fn flush(&self) {
        // After the other submissions of this turn of the event loop.
        tokio::task::yield_now().await;
        loop {
            let batch = std::mem::take(&mut *self.queue.borrow_mut());
            if batch.is_empty() {
                break;
            }
            // The same piece twice in one batch is sent once; both hear the answer.
            let mut replies: HashMap<WorkKey, Vec<Reply>> = HashMap::new();
            let mut rows: Vec<Queued> = Vec::new();
            for mut q in batch {
                let (dummy, _) = oneshot::channel();
                let reply = std::mem::replace(&mut q.reply, dummy);
                let first = !replies.contains_key(&q.key);
                replies.entry(q.key.clone()).or_default().push(reply);
                if first {
                    rows.push(q);
                }
            }
            match self.submit(&rows).await {
                Ok(found) => {
                    for (key, answer) in found {
                        for r in replies.remove(&key).unwrap_or_default() {
                            let _ = r.send(Ok(answer.clone()));
                        }
                    }
                    for r in replies.into_values().flatten() {
                        let _ = r.send(Err("the database did not return the work".into()));
                    }
                }
                Err(e) => {
                    for r in replies.into_values().flatten() {
                        let _ = r.send(Err(e.clone()));
                    }
                }
            }
        }
        self.flushing.set(false);
    }

    /// One statement for `rows`: each piece's name with its id and recorded result.
    #[allow(clippy::type_complexity)]
    async fn submit(
        &self,
        rows: &[Queued],
    ) -> Result<Vec<(WorkKey, (i64, Option<WorkResult>))>, String> {
        let c = self.conn().await.map_err(|e| e.to_string())?;
        let ops: Vec<&str> = rows.iter().map(|q| q.key.0.as_str()).collect();
        let whats: Vec<&str> = rows.iter().map(|q| q.key.1).collect();
        let attempts: Vec<i32> = rows.iter().map(|q| q.key.2).collect();
        let generations: Vec<i32> = rows.iter().map(|q| q.key.3).collect();
        let ordinals: Vec<i64> = rows.iter().map(|q| q.ordinal).collect();
        let tags: Vec<&str> = rows.iter().map(|q| q.tags.as_str()).collect();
        let jobs: Vec<&str> = rows.iter().map(|q| q.job.as_str()).collect();
        let found = c
            .client
            .query(
                &c.submit,
                &[
                    &self.run,
                    &ops,
                    &whats,
                    &attempts,
                    &generations,
                    &ordinals,
                    &tags,
                    &jobs,
                ],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let mut out = Vec::with_capacity(found.len());
        for row in found {
            let id: i64 = row.get(0);
            let key = WorkKey(
                row.get::<_, String>(1),
                what_name(row.get(2)),
                row.get(3),
                row.get(4),
            );
            let state: &str = row.get(5);
            // Queued behind others' work: this run's next pieces go after it.
            let placed: i64 = row.get(7);
            self.next_ordinal
                .set(self.next_ordinal.get().max(placed + 1));
            let result = (state == "done").then(|| parse_result(row.get(6)));
            out.push((key, (id, result)));
        }
        Ok(out)
    }

    /// Takes in an `orca_done` notification: `ID RESULT`, or `ID` alone when the result is
    /// too long to be sent. False when a result must be read from the table.
    fn heard(&self, payload: &str) -> bool {
        let (id, result) = match payload.split_once(' ') {
            Some((id, r)) => (id, Some(r)),
            None => (payload, None),
        };
        let Ok(id) = id.parse::<i64>() else {
            return false;
        };
        match result {
            Some(r) => match self.waiters.borrow_mut().remove(&id) {
                Some(tx) => {
                    let _ = tx.send(parse_result(Some(r)));
                }
                None => {
                    self.early
                        .borrow_mut()
                        .insert(id, (r.to_string(), Instant::now()));
                }
            },
            // Read now when it is awaited; one of ours not awaited yet is read by the next
            // poll.
            None => return !self.waiters.borrow().contains_key(&id),
        }
        true
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

/// How long a result heard of before its piece was waited for is kept (the poll finds it
/// later anyway).
const EARLY: Duration = Duration::from_secs(2);

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
        let mut first = None;
        tokio::select! {
            n = async { match &mut listener { Some(l) => l.recv().await, None => std::future::pending().await } } => {
                match n {
                    Some((_, payload)) => first = Some(payload),
                    None => listener = None,
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        // A result in its notification is delivered as it is; one without (too long) is read.
        let mut read = first.is_some_and(|p| !inner.heard(&p));
        if let Some(l) = &mut listener {
            while let Ok((_, payload)) = l.try_recv() {
                read |= !inner.heard(&payload);
            }
        }
        let expire = last_expiry.elapsed() >= POLL;
        if expire {
            last_expiry = Instant::now();
            let now = Instant::now();
            inner
                .early
                .borrow_mut()
                .retain(|_, (_, at)| now.duration_since(*at) < EARLY);
        }
        if !read && !expire {
            continue;
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
            let tags = serde_json::to_string(&work.tags).unwrap_or_else(|_| "[]".into());
            let key = WorkKey(
                work.op.clone(),
                work.what,
                work.attempt as i32,
                work.generation as i32,
            );
            let id = loop {
                let (reply, answer) = oneshot::channel();
                inner.queue.borrow_mut().push(Queued {
                    key: key.clone(),
                    ordinal,
                    tags: tags.clone(),
                    job: job.clone(),
                    reply,
                });
                if !inner.flushing.replace(true) {
                    let inner = inner.clone();
                    tokio::task::spawn_local(async move { inner.flush().await });
                }
                match answer.await {
                    Ok(Ok((_, Some(result)))) => return result,
                    Ok(Ok((id, None))) => break id,
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot hand work out; retrying"),
                    Err(_) => tracing::warn!("cannot hand work out; retrying"),
                }
                tokio::select! {
                    _ = &mut cancel => return cancelled(),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            };
            let early = inner.early.borrow_mut().remove(&id);
            if let Some((text, _)) = early {
                return parse_result(Some(&text));
            }
            let (tx, rx) = oneshot::channel();
            inner.waiters.borrow_mut().insert(id, tx);
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
