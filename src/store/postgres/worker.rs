//! `orca worker`: claims ready work from `orca_work` with `FOR UPDATE SKIP LOCKED` (so
//! workers never wait for each other), holds it under a lease renewed by heartbeat, runs it
//! exactly as a local run would (`work::perform`) and records the result in the statement
//! that releases the claim. A result whose lease ran out (the coordinator gave the work
//! to someone else) is refused and counted.

use super::{PgStore, StoreError, db_error, ensure_parent};
use crate::runtime::workflow::work::{self, Job, WorkResult};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const RENEW: &str =
    "UPDATE orca_work w SET lease_until = clock_timestamp() + $1 * interval '1 second'
    FROM unnest($2::bigint[], $3::bigint[]) AS t(id, claim)
    WHERE w.id = t.id AND w.claim = t.claim AND w.state = 'claimed'
    RETURNING w.id";

/// Records results whose claims still hold and claims up to `$7` pieces of ready work, in
/// one statement (one round trip and one commit; a worker that finishes work usually has
/// room for more). Accepted results are told to the coordinators on `orca_done` at commit:
/// the piece's id, then its result when it fits a notification (at most 8,000 bytes in all),
/// or only the id (the coordinator reads the result from the table then). Rows with `true`
/// first are the accepted results' ids (the notification's column is not read); the others
/// are claimed work: id, claim, job, run, operation, phase, attempt from the second column.
const EXCHANGE: &str = "WITH done AS (
    UPDATE orca_work w SET state = 'done', result = t.result, done_at = clock_timestamp()
    FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS t(id, claim, result)
    WHERE w.id = t.id AND w.claim = t.claim AND w.state = 'claimed' AND w.lease_until > clock_timestamp()
    RETURNING w.id, w.result),
claimed AS (
    UPDATE orca_work w SET state = 'claimed', worker = $4, claim = nextval('orca_claims'),
        lease_until = clock_timestamp() + $5 * interval '1 second',
        claimed_at = clock_timestamp(), claims = w.claims + 1
    FROM (SELECT id FROM orca_work WHERE state = 'ready' AND tags <@ $6
          ORDER BY ordinal, id LIMIT $7 FOR UPDATE SKIP LOCKED) c
    WHERE w.id = c.id
    RETURNING w.id, w.claim, w.job, w.run_id, w.op, w.what, w.attempt)
SELECT true, id, NULL::bigint, pg_notify('orca_done', CASE WHEN octet_length(result) <= 7000
      THEN id || ' ' || result ELSE id::text END)::text, NULL::text, NULL::text, NULL::text, NULL::int
  FROM done
UNION ALL
SELECT false, id, claim, job, run_id, op, what, attempt FROM claimed";

const LATE: &str =
    "UPDATE orca_work SET late = late + 1 WHERE id = ANY($1) AND state = 'expired' RETURNING id";

/// How a worker works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Pieces of work at once.
    pub concurrency: usize,
    /// It runs work whose tags are all among these.
    pub tags: Vec<String>,
    /// A claim lasts this long without a heartbeat; heartbeats come every third of it.
    pub lease: Duration,
    /// Shown in `orca_work.worker`.
    pub name: String,
}

impl WorkerOptions {
    /// A name unique to this process: host, pid and a counter.
    pub fn default_name() -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{host}:{}:{n}", std::process::id())
    }
}

/// What a worker did, when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub ran: u64,
    /// Results refused because the lease had run out.
    pub refused: u64,
    /// Work stopped because its claim was taken back (a cancel, or a lease that ran out).
    pub lost: u64,
}

struct Running {
    claim: i64,
    cancel: Option<oneshot::Sender<()>>,
    what: String,
}

/// Runs until `stop` resolves, then finishes the work it holds and returns (a second
/// `stop`-style interruption is the caller's: it drops this future, and the work's
/// processes are stopped with it). Needs a `LocalSet`.
///
/// Errors only when the store cannot be used at the start (no connection, a newer
/// schema); once running, a lost database is waited for with backoff.
pub async fn run(
    store: PgStore,
    opts: WorkerOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<WorkerStats, StoreError> {
    {
        let mut c = store.connect().await?;
        store.schema(&mut c, true).await?;
    }
    let pool = store.pool(2)?;
    let span = tracing::info_span!("worker", name = %opts.name);
    let _g = span.enter();
    let lease_s = opts.lease.as_secs_f64();
    let heartbeat = opts.lease / 3;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(i64, WorkResult)>();
    let mut running: HashMap<i64, Running> = HashMap::new();
    let mut results: Vec<(i64, i64, String)> = Vec::new();
    let mut stats = WorkerStats::default();
    let mut listener: Option<mpsc::UnboundedReceiver<(String, String)>> = None;
    let mut _listening = None;
    let mut stopping = false;
    let mut delay = Duration::from_millis(50);
    let mut beat = tokio::time::interval(heartbeat.max(Duration::from_millis(10)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let mut failed = false;
        if listener.is_none()
            && !stopping
            && let Ok((c, rx)) = store
                .connect_listening(&["orca_ready", "orca_cancel"])
                .await
        {
            _listening = Some(c);
            listener = Some(rx);
        }
        // Results recorded and more work claimed, in one statement.
        let room = if stopping {
            0
        } else {
            opts.concurrency.saturating_sub(running.len())
        };
        let mut claimed_all = false;
        if !results.is_empty() || room > 0 {
            match exchange(&pool, &results, &opts, lease_s, room).await {
                Ok((refused, jobs)) => {
                    for id in &refused {
                        tracing::warn!(
                            work = id,
                            "result refused: the lease had run out, and the work was given to the run's retry policy"
                        );
                    }
                    stats.refused += refused.len() as u64;
                    results.clear();
                    claimed_all = room > 0 && jobs.len() == room;
                    for (id, claim, job, what) in jobs {
                        let (cancel_tx, cancel_rx) = oneshot::channel();
                        running.insert(
                            id,
                            Running {
                                claim,
                                cancel: Some(cancel_tx),
                                what,
                            },
                        );
                        let tx = done_tx.clone();
                        tokio::task::spawn_local(async move {
                            ensure_parent(&job.log_stem);
                            let result = work::perform(job, cancel_rx, |_| {}).await;
                            let _ = tx.send((id, result));
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record results or claim work; retrying");
                    failed = true;
                }
            }
        }
        if failed {
            listener = None;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        } else {
            delay = Duration::from_millis(50);
        }
        if stopping && running.is_empty() && results.is_empty() {
            return Ok(stats);
        }
        // More may be ready already: claim again before waiting.
        if claimed_all && !failed {
            while let Ok((id, r)) = done_rx.try_recv() {
                finished(&mut running, &mut results, &mut stats, id, r);
            }
            continue;
        }
        tokio::select! {
            d = done_rx.recv() => {
                if let Some((id, r)) = d {
                    finished(&mut running, &mut results, &mut stats, id, r);
                }
                while let Ok((id, r)) = done_rx.try_recv() {
                    finished(&mut running, &mut results, &mut stats, id, r);
                }
            }
            n = async { match &mut listener { Some(l) => l.recv().await, None => std::future::pending().await } } => {
                match n {
                    None => listener = None,
                    Some(n) => {
                        let mut notes = vec![n];
                        if let Some(l) = &mut listener {
                            while let Ok(n) = l.try_recv() {
                                notes.push(n);
                            }
                        }
                        for (channel, payload) in notes {
                            if channel == "orca_cancel"
                                && let Ok(id) = payload.parse::<i64>()
                                && let Some(r) = running.get_mut(&id)
                                && let Some(c) = r.cancel.take()
                            {
                                stats.lost += 1;
                                let _ = c.send(());
                            }
                        }
                    }
                }
            }
            _ = beat.tick() => {
                if !running.is_empty() {
                    match renew(&pool, lease_s, &running).await {
                        Ok(alive) => {
                            for (id, r) in running.iter_mut() {
                                if !alive.contains(id) && let Some(c) = r.cancel.take() {
                                    tracing::warn!(work = id, what = %r.what, "the claim was taken back (cancelled, or the lease ran out): stopping the work");
                                    stats.lost += 1;
                                    let _ = c.send(());
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot renew leases; retrying"),
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut stop, if !stopping => {
                tracing::info!(running = running.len(), "stopping: finishing the work held");
                stopping = true;
                listener = None;
            }
        }
    }
}

fn finished(
    running: &mut HashMap<i64, Running>,
    results: &mut Vec<(i64, i64, String)>,
    stats: &mut WorkerStats,
    id: i64,
    r: WorkResult,
) {
    let Some(run) = running.remove(&id) else {
        return;
    };
    // Recorded even when the claim was taken back meanwhile: the database refuses it then
    // (and counts it, when the lease had run out).
    stats.ran += 1;
    let text = serde_json::to_string(&r).unwrap_or_else(|e| {
        serde_json::to_string(&WorkResult::Failed {
            error: format!("cannot record the result: {e}"),
            retryable: false,
        })
        .unwrap_or_default()
    });
    results.push((id, run.claim, text));
}

/// Records `results` and claims up to `room` more pieces of work ([`EXCHANGE`]): the
/// results refused because their lease had run out, and the work claimed. A claimed job
/// this orca cannot read is recorded at once as failed.
#[allow(clippy::type_complexity)]
async fn exchange(
    pool: &deadpool_postgres::Pool,
    results: &[(i64, i64, String)],
    opts: &WorkerOptions,
    lease_s: f64,
    room: usize,
) -> Result<(Vec<i64>, Vec<(i64, i64, Job, String)>), String> {
    let c = pool.get().await.map_err(|e| e.to_string())?;
    let st = c.prepare_cached(EXCHANGE).await.map_err(|e| db_error(&e))?;
    let rows = exchange_rows(&c, &st, results, opts, lease_s, room).await?;
    let (done, claimed): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.get::<_, bool>(0));
    let accepted: HashSet<i64> = done.iter().map(|r| r.get(1)).collect();
    let mut jobs = Vec::with_capacity(claimed.len());
    let mut unreadable = Vec::new();
    for r in claimed {
        let id: i64 = r.get(1);
        let claim: i64 = r.get(2);
        let text: &str = r.get(3);
        let what = format!(
            "{} {} {} attempt {}",
            r.get::<_, &str>(4),
            r.get::<_, &str>(5),
            r.get::<_, &str>(6),
            r.get::<_, i32>(7)
        );
        match serde_json::from_str::<Job>(text) {
            Ok(job) => jobs.push((id, claim, job, what)),
            Err(e) => {
                let result = serde_json::to_string(&WorkResult::Failed {
                    error: format!("the worker cannot read this work: {e}"),
                    retryable: false,
                })
                .unwrap_or_default();
                unreadable.push((id, claim, result));
            }
        }
    }
    if !unreadable.is_empty() {
        exchange_rows(&c, &st, &unreadable, opts, lease_s, 0).await?;
    }
    drop(c);
    let ids: Vec<i64> = results.iter().map(|r| r.0).collect();
    Ok((refused(pool, &ids, &accepted).await?, jobs))
}

/// One execution of [`EXCHANGE`] (prepared as `st` on `c`): its rows.
async fn exchange_rows(
    c: &deadpool_postgres::Object,
    st: &tokio_postgres::Statement,
    results: &[(i64, i64, String)],
    opts: &WorkerOptions,
    lease_s: f64,
    room: usize,
) -> Result<Vec<tokio_postgres::Row>, String> {
    let ids: Vec<i64> = results.iter().map(|r| r.0).collect();
    let claims: Vec<i64> = results.iter().map(|r| r.1).collect();
    let texts: Vec<&str> = results.iter().map(|r| r.2.as_str()).collect();
    c.query(
        st,
        &[
            &ids,
            &claims,
            &texts,
            &opts.name,
            &lease_s,
            &opts.tags,
            &(room as i64),
        ],
    )
    .await
    .map_err(|e| db_error(&e))
}

async fn renew(
    pool: &deadpool_postgres::Pool,
    lease_s: f64,
    running: &HashMap<i64, Running>,
) -> Result<HashSet<i64>, String> {
    let (ids, claims): (Vec<i64>, Vec<i64>) = running
        .iter()
        .filter(|(_, r)| r.cancel.is_some())
        .map(|(&id, r)| (id, r.claim))
        .unzip();
    let c = pool.get().await.map_err(|e| e.to_string())?;
    let st = c.prepare_cached(RENEW).await.map_err(|e| db_error(&e))?;
    let rows = c
        .query(&st, &[&lease_s, &ids, &claims])
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Of the results sent (`ids`), those not accepted because their lease had run out (not
/// because the coordinator cancelled the work), counted on their rows.
async fn refused(
    pool: &deadpool_postgres::Pool,
    ids: &[i64],
    accepted: &HashSet<i64>,
) -> Result<Vec<i64>, String> {
    let refused: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|i| !accepted.contains(i))
        .collect();
    if refused.is_empty() {
        return Ok(Vec::new());
    }
    let c = pool.get().await.map_err(|e| e.to_string())?;
    let st = c.prepare_cached(LATE).await.map_err(|e| db_error(&e))?;
    let late = c.query(&st, &[&refused]).await.map_err(|e| db_error(&e))?;
    Ok(late.iter().map(|r| r.get(0)).collect())
}
