//! What an inspected run costs the run: handing over its inputs. The [`Shadow`] replays
//! them on a thread of its own, on a simulating runner over the same chart (runs are
//! deterministic given their inputs, which is what journals rely on too), and gives the
//! [`Hub`] the full steps: transitions taken, configurations, contexts, timers.

use super::{Hub, machine_live, root_context, touches_timers};
use crate::chart::Chart;
use crate::interpreter::{Host, Instance};
use crate::model::Json;
use crate::runtime::{InputTap, Runner, StepInput};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

enum Msg {
    /// Inputs in order.
    Inputs(Vec<StepInput>),
    End,
}

/// Inputs are handed over in batches of at most this many (and whenever the run waits), so
/// that a fast run pays one message per batch, not per input.
const BATCH: usize = 256;

/// At most this many batches wait for the replay (about a million inputs). A run that gets
/// further ahead than that is not held up: the page stops following it, and says so.
const QUEUE: usize = 4096;

struct Tap {
    tx: mpsc::SyncSender<Msg>,
    buf: Vec<StepInput>,
    behind: Arc<AtomicBool>,
}

impl InputTap for Tap {
    fn input(&mut self, input: &StepInput) {
        if self.behind.load(Ordering::Relaxed) {
            return;
        }
        self.buf.push(input.clone());
        if self.buf.len() >= BATCH {
            self.idle();
        }
    }

    fn idle(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
        if let Err(mpsc::TrySendError::Full(_)) = self.tx.try_send(Msg::Inputs(batch)) {
            // A replay that missed inputs would show states the run was never in.
            self.behind.store(true, Ordering::Relaxed);
        }
    }
}

/// A replay of a live run for its page; see the module's documentation.
pub struct Shadow {
    tx: mpsc::SyncSender<Msg>,
    behind: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
}

impl Shadow {
    /// Starts replaying into `hub` whatever [`Shadow::tap`] is given. The replay thread runs
    /// at a lower priority than the run, which it must never slow down.
    pub fn start(hub: Arc<Hub>, chart: Arc<Chart>, host: Arc<Host>) -> Shadow {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let behind = Arc::new(AtomicBool::new(false));
        let fell_behind = behind.clone();
        let spawned = std::thread::Builder::new()
            .name("orca-inspect-replay".into())
            .spawn(move || {
                // SAFETY: gettid and setpriority only read and set this thread's nice value.
                unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, 10);
                }
                let mut runner = Runner::simulating(Instance::with_host(chart, host.clone()), host);
                let mut context = Arc::new(Json::Null);
                for msg in rx {
                    let Msg::Inputs(batch) = msg else { break };
                    let mut timers = false;
                    let mut steps = Vec::with_capacity(batch.len());
                    for input in batch {
                        let step = runner.apply(input);
                        if let Some(c) = root_context(&step) {
                            context = Arc::new(c.clone());
                        }
                        timers |= touches_timers(&step);
                        steps.push((step, context.clone()));
                    }
                    hub.push_steps(steps);
                    if timers {
                        hub.set_live(machine_live(runner.root()));
                    }
                }
                if fell_behind.load(Ordering::Relaxed) {
                    hub.set_notice(
                        "the run got more than a million inputs ahead of this page, which stopped following it here; the run went on",
                    );
                }
                let _ = done_tx.send(());
            });
        if spawned.is_err() {
            behind.store(true, Ordering::Relaxed);
        }
        Shadow { tx, behind, done }
    }

    /// The runner's side: each input, with the time it came, goes to the replay.
    pub fn tap(&self) -> Box<dyn InputTap> {
        Box::new(Tap {
            tx: self.tx.clone(),
            buf: Vec::with_capacity(BATCH),
            behind: self.behind.clone(),
        })
    }

    /// Waits, at most `patience`, until everything handed over has reached the hub (the
    /// page then shows the run's end); after that the replay goes on while the process
    /// ends.
    pub fn finish(self, patience: Duration) {
        // The end marker waits its turn behind the queued batches, but never blocks.
        let deadline = Instant::now() + patience;
        loop {
            match self.tx.try_send(Msg::End) {
                Ok(()) => break,
                Err(mpsc::TrySendError::Disconnected(_)) => return,
                Err(mpsc::TrySendError::Full(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(mpsc::TrySendError::Full(_)) => return,
            }
        }
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}
