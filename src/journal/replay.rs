//! Rebuilding a run from its journal: the recorded inputs go through a replaying
//! [`Runner`] (no processes, no clock), which gives back every instance exactly, pending
//! delayed events included. Verification compares what each step does now with what it did.

use super::{Body, Header, Journal, Record};
use crate::chart::{CompileOptions, load_chart_file, load_chart_str};
use crate::interpreter::{Host, Instance};
use crate::runtime::{Define, Outcome, Runner, Step, StepInput};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A runner that replays the journal whose header this is, with the definition embedded in
/// the header, or with `machine` instead (to test a changed file against a recorded run).
pub fn runner_for(header: &Header, machine: Option<&Path>) -> Result<Replayer, String> {
    if header.kind != "machine" {
        return Err(format!(
            "this journal records a {}; only machine journals can be replayed by this version",
            header.kind
        ));
    }
    let runner = fresh_runner(header, machine)?;
    Ok(Replayer {
        header: header.clone(),
        machine: machine.map(Path::to_path_buf),
        runner,
        line: header.rewinds.then(Vec::new),
        defines: Vec::new(),
        recording: true,
    })
}

fn fresh_runner(header: &Header, machine: Option<&Path>) -> Result<Runner, String> {
    let host = Arc::new(Host::default());
    let opts: CompileOptions = host.compile_options();
    let loaded = match machine {
        Some(path) => load_chart_file(path, &opts),
        None => load_chart_str(&header.file, &header.source, &opts),
    };
    let chart = match loaded {
        Ok((chart, _)) => chart,
        Err(d) => return Err(d.to_string().trim().to_string()),
    };
    Ok(Runner::replaying(
        Instance::with_host(Arc::new(chart), host.clone()),
        host,
    ))
}

/// A replaying [`Runner`] that also follows `rewind` records: it keeps the inputs in effect
/// (only for journals that may rewind) and rebuilds from them when the session went back.
/// Derefs to the runner for everything else.
pub struct Replayer {
    header: Header,
    machine: Option<PathBuf>,
    runner: Runner,
    /// The inputs in effect, with their records' sequence numbers.
    line: Option<Vec<(u64, StepInput)>>,
    defines: Vec<Define>,
    recording: bool,
}

impl std::ops::Deref for Replayer {
    type Target = Runner;
    fn deref(&self) -> &Runner {
        &self.runner
    }
}

impl std::ops::DerefMut for Replayer {
    fn deref_mut(&mut self) -> &mut Runner {
        &mut self.runner
    }
}

impl Replayer {
    /// See [`Runner::set_recording`]; kept across rewinds.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
        self.runner.set_recording(on);
    }

    fn step(&mut self, seq: u64, input: StepInput) -> Step {
        if let Some(line) = &mut self.line {
            line.push((seq, input.clone()));
        }
        self.runner.apply(input)
    }

    fn define(&mut self, d: &Define) -> Result<(), String> {
        if self.line.is_some() {
            self.defines.push(d.clone());
        }
        self.runner.define(d)
    }

    /// Back to the state after record `to`: a fresh runner replays the inputs in effect then.
    fn rewind(&mut self, seq: u64, to: u64) -> Result<(), String> {
        let Some(line) = &mut self.line else {
            return Err(format!(
                "record {seq} rewinds, but the header does not allow rewinds"
            ));
        };
        rewind_line(line, to);
        let mut runner = fresh_runner(&self.header, self.machine.as_deref())?;
        runner.set_recording(self.recording);
        for d in &self.defines {
            runner.define(d)?;
        }
        for (_, input) in line.iter() {
            runner.apply(input.clone());
        }
        self.runner = runner;
        Ok(())
    }
}

/// The inputs in effect after `records` (with the sequence numbers of their records): every
/// step's, except those a later rewind abandoned.
pub fn inputs_in_effect(records: &[Record]) -> Vec<(u64, StepInput)> {
    let mut line = Vec::new();
    for r in records {
        match &r.body {
            Body::Step(s) => line.push((r.seq, s.input.clone())),
            Body::Rewind(rw) => rewind_line(&mut line, rw.to),
            _ => {}
        }
    }
    line
}

/// Drops the inputs recorded after record `to`.
fn rewind_line(line: &mut Vec<(u64, StepInput)>, to: u64) {
    line.retain(|(seq, _)| *seq <= to);
}

/// Applies one record to a replaying runner: a definition is made available, a step's input
/// is applied (and what it did now is returned), a rewind goes back.
pub fn apply(replayer: &mut Replayer, record: &Record) -> Result<Option<Step>, String> {
    match &record.body {
        Body::Define(d) => replayer.define(d).map(|_| None),
        Body::Step(s) => Ok(Some(replayer.step(record.seq, s.input.clone()))),
        Body::Rewind(r) => replayer.rewind(record.seq, r.to).map(|_| None),
        Body::Header(_) | Body::End(_) => Ok(None),
        Body::Op(_) | Body::Rerun(_) => Err(workflow_record(record.seq)),
    }
}

/// The first place where a replay did something else than the recorded run.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub seq: u64,
    /// The input of that record, described.
    pub input: String,
    pub instance: String,
    pub what: String,
    pub expected: Option<Outcome>,
    pub actual: Option<Outcome>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record {} ({}), instance {}: {}",
            self.seq, self.input, self.instance, self.what
        )
    }
}

/// Compares a recorded step with the same input applied now.
pub fn compare(seq: u64, recorded: &Step, actual: &Step) -> Option<Divergence> {
    let div = |instance: &str, what: String, e: Option<&Outcome>, a: Option<&Outcome>| {
        Some(Divergence {
            seq,
            input: recorded.input.describe(),
            instance: instance.to_string(),
            what,
            expected: e.cloned(),
            actual: a.cloned(),
        })
    };
    if recorded.t != actual.t {
        return div(
            "#",
            format!(
                "applied at virtual time {} ms, recorded at {} ms",
                actual.t, recorded.t
            ),
            None,
            None,
        );
    }
    let n = recorded.out.len().max(actual.out.len());
    for i in 0..n {
        let (e, a) = (recorded.out.get(i), actual.out.get(i));
        let name = e.or(a).map(|o| o.instance.as_str()).unwrap_or("#");
        let (Some(e), Some(a)) = (e, a) else {
            let what = if e.is_some() {
                "was active in the recording but did nothing now"
            } else {
                "did something now that it did not in the recording"
            };
            return div(name, what.into(), e, a);
        };
        if e == a {
            continue;
        }
        let what = if e.instance != a.instance {
            format!("instance {} acted where {} did", a.instance, e.instance)
        } else if e.config != a.config {
            format!(
                "configuration [{}] where [{}] was recorded",
                a.config.join(", "),
                e.config.join(", ")
            )
        } else if e.status != a.status {
            format!("status {} where {} was recorded", a.status, e.status)
        } else if e.context != a.context {
            "the context differs".to_string()
        } else {
            let k = e
                .notes
                .iter()
                .zip(&a.notes)
                .position(|(x, y)| x != y)
                .unwrap_or(e.notes.len().min(a.notes.len()));
            let show = |n: Option<&crate::runtime::Note>| {
                n.map(|n| serde_json::to_string(n).unwrap_or_default())
                    .unwrap_or_else(|| "nothing".into())
            };
            format!(
                "did {} where the recording has {}",
                show(a.notes.get(k)),
                show(e.notes.get(k))
            )
        };
        return div(name, what, Some(e), Some(a));
    }
    None
}

/// Replays a whole journal and reports the first divergence, if any; `Ok` holds the number
/// of steps verified.
pub fn verify(
    journal: &Journal,
    runner: &mut Replayer,
) -> Result<Result<usize, Divergence>, String> {
    let mut steps = 0;
    for rec in &journal.records {
        if let Some(actual) = apply(runner, rec)? {
            let Body::Step(recorded) = &rec.body else {
                unreachable!("only steps produce steps")
            };
            if let Some(d) = compare(rec.seq, recorded, &actual) {
                return Ok(Err(d));
            }
            steps += 1;
        }
    }
    Ok(Ok(steps))
}

/// Rebuilds state from a stream of records, up to and including record `to` (all when
/// `None`), without keeping them: the fast path of `orca replay --to`. Returns the sequence
/// number of the last record applied and the last step record (as replayed).
pub fn rebuild(
    records: impl Iterator<Item = Result<Record, super::JournalError>>,
    runner: &mut Replayer,
    to: Option<u64>,
) -> Result<(u64, Option<Record>), String> {
    // The last step's record: its sequence number and wall time; the step itself is kept
    // apart so that each step does not build a record only to drop it at the next.
    let mut last: Option<(u64, u64, Step)> = None;
    let mut seq = 0;
    for rec in records {
        let rec = rec.map_err(|e| e.to_string())?;
        if to.is_some_and(|n| rec.seq > n) {
            break;
        }
        seq = rec.seq;
        match rec.body {
            Body::Define(ref d) => runner.define(d).map_err(|e| format!("record {seq}: {e}"))?,
            Body::Rewind(ref r) => runner.rewind(seq, r.to)?,
            Body::Step(s) => last = Some((rec.seq, rec.wall, runner.step(seq, s.input))),
            Body::Header(_) | Body::End(_) => {}
            Body::Op(_) | Body::Rerun(_) => return Err(workflow_record(seq)),
        }
    }
    let last = last.map(|(seq, wall, step)| Record {
        seq,
        wall,
        body: Body::Step(step),
    });
    Ok((seq, last))
}

fn workflow_record(seq: u64) -> String {
    format!(
        "record {seq} is a workflow operation's event: this is a workflow journal \
         (use `orca status` or `orca log`)"
    )
}
