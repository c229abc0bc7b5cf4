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
    Input(u64, StepInput),
    End,
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
                    let Msg::Input(wall, input) = msg else { break };
                    let step = runner.apply(input);
                    if let Some(c) = root_context(&step) {
                        context = Arc::new(c.clone());
                    }
                    let timers = touches_timers(&step);
                    hub.push_step(wall, step, context.clone());
                    if timers {
                        hub.set_live(machine_live(runner.root()));
                    }
                }
            })
            .ok();
        Shadow { tx, thread }
    }

    /// The runner's side: each input, with the time it came, goes to the replay.
    pub fn tap(&self) -> InputTap {
        let tx = self.tx.clone();
        Box::new(move |input: &StepInput| {
            let _ = tx.send(Msg::Input(crate::journal::wall_ms(), input.clone()));
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
