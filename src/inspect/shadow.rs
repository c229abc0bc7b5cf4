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
use std::sync::mpsc;

enum Msg {
    /// Inputs in order, and the time the batch was handed over (inputs come in a burst,
    /// or the run waits and the batch goes at once: one clock reading serves them all).
    Inputs(u64, Vec<StepInput>),
    End,
}

/// Inputs are handed over in batches of at most this many (and whenever the run waits), so
/// that a fast run pays one message per batch, not per input.
const BATCH: usize = 256;

struct Tap {
    tx: mpsc::Sender<Msg>,
    buf: Vec<StepInput>,
}

impl InputTap for Tap {
    fn input(&mut self, input: &StepInput) {
        self.buf.push(input.clone());
        if self.buf.len() >= BATCH {
            self.idle();
        }
    }

    fn idle(&mut self) {
        if !self.buf.is_empty() {
            let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
            let _ = self.tx.send(Msg::Inputs(crate::journal::wall_ms(), batch));
        }
    }
}

/// A replay of a live run for its page; see the module's documentation.
pub struct Shadow {
    tx: mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shadow {
    /// Starts replaying into `hub` whatever [`Shadow::tap`] is given.
    pub fn start(hub: Arc<Hub>, chart: Arc<Chart>, host: Arc<Host>) -> Shadow {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("orca-inspect-replay".into())
            .spawn(move || {
                let mut runner = Runner::simulating(Instance::with_host(chart, host.clone()), host);
                let mut context = Arc::new(Json::Null);
                for msg in rx {
                    let Msg::Inputs(wall, batch) = msg else { break };
                    let mut timers = false;
                    let mut steps = Vec::with_capacity(batch.len());
                    for input in batch {
                        let step = runner.apply(input);
                        if let Some(c) = root_context(&step) {
                            context = Arc::new(c.clone());
                        }
                        timers |= touches_timers(&step);
                        steps.push((wall, step, context.clone()));
                    }
                    hub.push_steps(steps);
                    if timers {
                        hub.set_live(machine_live(runner.root()));
                    }
                }
            })
            .ok();
        Shadow { tx, thread }
    }

    /// The runner's side: each input, with the time it came, goes to the replay.
    pub fn tap(&self) -> Box<dyn InputTap> {
        Box::new(Tap {
            tx: self.tx.clone(),
            buf: Vec::with_capacity(BATCH),
        })
    }

    /// Waits until everything handed over has reached the hub.
    pub fn finish(mut self) {
        let _ = self.tx.send(Msg::End);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
