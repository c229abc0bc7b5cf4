//! `orca replay JOURNAL [--to N] [--verify] [--machine FILE] [--json]` and
//! `orca log JOURNAL [--follow] [--json]`.

use super::exit;
use crate::journal::replay::{self, Divergence};
use crate::journal::{
    Body, Detail, Journal, JournalError, LineReader, Piece, Record, Records, parse_line, rfc3339,
};
use crate::model::{DurationMs, Json};
use crate::runtime::{Note, Outcome, Runner, Step};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The journal to replay (with --store: the run's id).
    journal: PathBuf,
    /// Print the state after record N instead of the timeline.
    #[arg(long, value_name = "N")]
    to: Option<u64>,
    /// Re-run every recorded input and report the first divergence from the recording
    /// (exit 1).
    #[arg(long)]
    verify: bool,
    /// Replay with this machine (or workflow) file instead of the definition embedded in
    /// the journal.
    #[arg(long, value_name = "FILE")]
    machine: Option<PathBuf>,
    /// JSON on stdout: one object per step, or one object for --to and --verify.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: super::workflow::StoreArgs,
}

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// The journal to print (with --store: the run's id).
    journal: PathBuf,
    /// Keep printing records as they are written, until the run's end record.
    #[arg(long)]
    follow: bool,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: super::workflow::StoreArgs,
}

/// Reads a journal, printing its warnings; an unreadable one is reported (exit 2).
pub(super) fn read(path: &Path) -> Result<Journal, u8> {
    match Journal::read_file(path) {
        Ok(j) => {
            for w in &j.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            Ok(j)
        }
        Err(e) => {
            eprintln!("{}: error: {e}", path.display());
            Err(exit::USAGE)
        }
    }
}

/// `orca replay`.
pub fn replay(args: ReplayArgs) -> u8 {
    if args.store.store.is_some() {
        let run = args.journal.display().to_string();
        let j = match stored(&run, &args.store) {
            Ok(j) => j,
            Err(code) => return code,
        };
        return super::workflow::replay_journal(
            &run,
            PathBuf::from("."),
            j,
            args.to,
            args.verify,
            args.machine.as_deref(),
            args.json,
        );
    }
    let kind = crate::journal::Records::open(&args.journal, crate::journal::Detail::Full)
        .map(|r| r.header.kind.clone());
    if matches!(kind.as_deref(), Ok("workflow")) {
        return super::workflow::replay(
            &args.journal,
            args.to,
            args.verify,
            args.machine.as_deref(),
            args.json,
        );
    }
    if let (Some(n), false) = (args.to, args.verify) {
        return replay_to(&args, n);
    }
    let journal = match read(&args.journal) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let mut runner = match replay::runner_for(&journal.header, args.machine.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: error: {e}", args.journal.display());
            return exit::USAGE;
        }
    };
    if args.verify {
        return verify(&args, &journal, &mut runner);
    }
    let mut out = std::io::stdout().lock();
    for rec in &journal.records {
        let step = match replay::apply(&mut runner, rec) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: error: record {}: {e}", args.journal.display(), rec.seq);
                return exit::USAGE;
            }
        };
        let Some(step) = step else {
            let _ = match &rec.body {
                Body::End(e) if args.json => {
                    writeln!(out, "{}", serde_json::json!({ "seq": rec.seq, "end": e }))
                }
                Body::End(e) => writeln!(out, "{:>5}  end: {}", rec.seq, end_text(e)),
                Body::Rewind(r) if args.json => {
                    let mut v = runner.root().snapshot();
                    v["seq"] = rec.seq.into();
                    v["rewind"] = r.to.into();
                    writeln!(out, "{v}")
                }
                Body::Rewind(r) => writeln!(
                    out,
                    "{:>5}  {:>8}  {:<24} → {}",
                    rec.seq,
                    "",
                    format!("back to after {}", r.to),
                    leaves(&runner).join(", ")
                ),
                _ => Ok(()),
            };
            continue;
        };
        let line = if args.json {
            let mut v = runner.root().snapshot();
            v["seq"] = rec.seq.into();
            v["t"] = step.t.into();
            v["input"] = serde_json::to_value(&step.input).unwrap_or(Json::Null);
            v["taken"] = step.taken().into();
            v.to_string()
        } else {
            let leaves = leaves(&runner);
            let moves = step.taken();
            let moves = if moves.is_empty() {
                String::new()
            } else {
                format!("   [{}]", moves.join("; "))
            };
            format!(
                "{:>5}  {:>8}  {:<24} → {}{moves}",
                rec.seq,
                DurationMs(step.t).to_string(),
                step.input.describe(),
                leaves.join(", ")
            )
        };
        if writeln!(out, "{line}").is_err() {
            return exit::OK; // stdout closed (a pager quit)
        }
    }
    exit::OK
}

fn verify(args: &ReplayArgs, journal: &Journal, runner: &mut replay::Replayer) -> u8 {
    let against = match &args.machine {
        Some(m) => m.display().to_string(),
        None => format!("the definition recorded in it ({})", journal.header.file),
    };
    match replay::verify(journal, runner) {
        Err(e) => {
            eprintln!("{}: error: {e}", args.journal.display());
            exit::USAGE
        }
        Ok(Ok(steps)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "verified": true, "steps": steps })
                );
            } else {
                println!(
                    "{}: {steps} steps replayed against {against}: no divergence",
                    args.journal.display()
                );
            }
            exit::OK
        }
        Ok(Err(d)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "verified": false, "divergence": divergence_json(&d) })
                );
            } else {
                println!(
                    "{}: divergence at {d} (replayed against {against})",
                    args.journal.display()
                );
                let show = |o: &Option<Outcome>| {
                    o.as_ref()
                        .map(|o| format!("[{}]", o.config.join(", ")))
                        .unwrap_or_else(|| "nothing".into())
                };
                println!("  recorded configuration: {}", show(&d.expected));
                println!("  replayed configuration: {}", show(&d.actual));
            }
            exit::FAILED
        }
    }
}

fn divergence_json(d: &Divergence) -> Json {
    serde_json::json!({
        "seq": d.seq,
        "input": d.input,
        "instance": d.instance,
        "what": d.what,
        "expected": d.expected,
        "actual": d.actual,
    })
}

/// `orca replay --to N`: streams the journal, decoding only the inputs, and rebuilds the
/// state after record N without recording what the steps do (much faster than the timeline).
fn replay_to(args: &ReplayArgs, n: u64) -> u8 {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("{}: error: {e}", args.journal.display());
        exit::USAGE
    };
    let mut records = match Records::open(&args.journal, Detail::Inputs) {
        Ok(r) => r.prefetch(),
        Err(e) => return fail(&e),
    };
    let mut runner = match replay::runner_for(&records.header, args.machine.as_deref()) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    runner.set_recording(false);
    let rebuilt = replay::rebuild(&mut records, &mut runner, Some(n));
    // Reading stops at record N: warnings about the tail come only from a full read.
    for w in &records.warnings {
        eprintln!("{}: warning: {w}", args.journal.display());
    }
    let (last, step) = match rebuilt {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if last < n {
        return fail(&format!("--to {n}: the journal's last record is {last}"));
    }
    let step = step.and_then(|r| match r.body {
        Body::Step(s) => Some(s),
        _ => None,
    });
    print_state(&runner, n, step.as_ref(), args.json);
    exit::OK
}

/// The active atomic states of the root: the configuration in brief.
fn leaves(runner: &Runner) -> Vec<String> {
    let inst = runner.root();
    let chart = inst.chart();
    inst.configuration()
        .filter(|&s| chart.state(s).is_atomic())
        .map(|s| chart.state(s).path.clone())
        .collect()
}

fn print_state(runner: &Runner, seq: u64, step: Option<&Step>, json: bool) {
    let inst = runner.root();
    let timers: Vec<Json> = inst.timers().iter().map(|t| t.to_json()).collect();
    let children: Vec<Json> = runner
        .children()
        .map(|(path, machine)| {
            let path = path.to_vec();
            let mut v = match runner.instance(&path) {
                Some(child) if machine => child.snapshot(),
                _ => serde_json::json!({ "command": true }),
            };
            v["invoke"] = path.join("/").into();
            v
        })
        .collect();
    if json {
        let mut v = inst.snapshot();
        v["seq"] = seq.into();
        v["t"] = inst.now().into();
        v["timers"] = timers.into();
        v["children"] = children.into();
        println!("{v}");
        return;
    }
    let input = step
        .map(|s| s.input.describe())
        .unwrap_or_else(|| "header".into());
    println!(
        "after record {seq} ({input}), virtual time {}:",
        DurationMs(inst.now())
    );
    let chart = inst.chart();
    println!("configuration:");
    for s in inst.configuration() {
        let st = chart.state(s);
        println!("{}{}", "  ".repeat(st.depth as usize), st.name);
    }
    println!(
        "context: {}",
        serde_json::to_string(inst.context()).unwrap_or_default()
    );
    if timers.is_empty() {
        println!("timers: none");
    } else {
        println!("timers:");
        for t in inst.timers() {
            println!(
                "  at {}: {} to {}",
                DurationMs(t.due),
                t.event.name,
                t.target
            );
        }
    }
    for c in &children {
        println!("invoked: {c}");
    }
    match inst.status() {
        crate::interpreter::Status::Done => println!(
            "done: output {}",
            inst.output().cloned().unwrap_or(Json::Null)
        ),
        crate::interpreter::Status::Failed(e) => println!("failed: {e}"),
        _ => {}
    }
}

fn end_text(e: &crate::journal::End) -> String {
    match &e.message {
        Some(m) => format!("{} ({m})", e.ending),
        None => e.ending.clone(),
    }
}

/// `orca log`.
pub fn log(args: LogArgs) -> u8 {
    let run = args.journal.display().to_string();
    let journal = if args.store.store.is_some() {
        stored(&run, &args.store)
    } else {
        read(&args.journal)
    };
    let journal = match journal {
        Ok(j) => j,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    let start = journal.header.started.clone();
    let header_line = if args.json {
        serde_json::json!({ "seq": 0, "header": {
            "file": journal.header.file, "hash": journal.header.hash,
            "instance": journal.header.instance, "started": start,
            "clock": journal.header.clock, "orca": journal.header.orca,
        }})
        .to_string()
    } else {
        format!(
            "journal of {} (sha256 {}), run {} started {start}, {} clock",
            journal.header.file,
            &journal.header.hash[..12.min(journal.header.hash.len())],
            journal.header.instance,
            journal.header.clock
        )
    };
    if writeln!(out, "{header_line}").is_err() {
        return exit::OK;
    }
    let mut ended = false;
    for rec in &journal.records {
        ended |= matches!(rec.body, Body::End(_));
        if print_record(&mut out, rec, args.json).is_err() {
            return exit::OK;
        }
    }
    let _ = out.flush();
    if !args.follow || ended {
        return exit::OK;
    }
    drop(out);
    if args.store.store.is_some() {
        return follow_stored(&args, &run, journal.records.len());
    }
    follow(&args, journal.valid_len, journal.records.len() as u64 + 1)
}

/// A run's journal from `--store`, its warnings printed.
fn stored(run: &str, store: &super::workflow::StoreArgs) -> Result<Journal, u8> {
    let s = super::workflow::read_run(run, store)?;
    match Journal::read_bytes(&s.bytes) {
        Ok(j) => {
            for w in &j.warnings {
                eprintln!("{run}: warning: {w}");
            }
            Ok(j)
        }
        Err(e) => {
            eprintln!("{run}: error: {e}");
            Err(exit::USAGE)
        }
    }
}

/// Follows a run in a store: its new records, read again every 200 ms, until its end.
fn follow_stored(args: &LogArgs, run: &str, mut shown: usize) -> u8 {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let j = match stored(run, &args.store) {
            Ok(j) => j,
            Err(code) => return code,
        };
        let mut out = std::io::stdout().lock();
        for rec in j.records.iter().skip(shown) {
            if print_record(&mut out, rec, args.json).is_err() {
                return exit::OK;
            }
            if matches!(rec.body, Body::End(_)) {
                let _ = out.flush();
                return exit::OK;
            }
        }
        let _ = out.flush();
        shown = shown.max(j.records.len());
    }
}

/// Tails a journal being written, from byte `offset` and record `seq`, until its end record.
fn follow(args: &LogArgs, mut offset: u64, mut seq: u64) -> u8 {
    let mut line_no = seq as usize + 1;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut buf = Vec::new();
        let read = std::fs::File::open(&args.journal).and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_to_end(&mut buf)
        });
        if let Err(e) = read {
            eprintln!("{}: error: {e}", args.journal.display());
            return exit::USAGE;
        }
        let mut lines = LineReader::new(&buf[..]);
        let mut out = std::io::stdout().lock();
        while let Ok(Some(Piece::Complete(line))) = lines.next_line() {
            let rec = match parse_line(line, seq, Detail::Full) {
                Ok(r) => r,
                Err(reason) => {
                    let e = JournalError::Corrupt {
                        line: line_no,
                        seq,
                        reason,
                    };
                    eprintln!("{}: error: {e}", args.journal.display());
                    return exit::USAGE;
                }
            };
            if print_record(&mut out, &rec, args.json).is_err() {
                return exit::OK;
            }
            if matches!(rec.body, Body::End(_)) {
                return exit::OK;
            }
            seq += 1;
            line_no += 1;
        }
        let _ = out.flush();
        offset += lines.valid_len;
    }
}

fn print_record(out: &mut impl Write, rec: &Record, json: bool) -> std::io::Result<()> {
    if json {
        let line = rec.to_line();
        // The record as written, checksum and all: `jq` reads it as it is.
        return out.write_all(&line);
    }
    let wall = rfc3339(rec.wall);
    match &rec.body {
        Body::Header(_) => Ok(()),
        Body::Op(o) => {
            let who = if o.op.is_empty() { "(root)" } else { &o.op };
            let detail = match &o.event {
                crate::lifecycle::machine::Event::PhaseFailed { error, .. }
                | crate::lifecycle::machine::Event::CompensationFailed { error } => {
                    format!(" ({error})")
                }
                crate::lifecycle::machine::Event::ChildSettled { child, outcome, .. } => {
                    format!(" ({child}: {})", outcome.as_str())
                }
                crate::lifecycle::machine::Event::PhaseSucceeded { phase, .. } => {
                    format!(" ({})", phase.as_str())
                }
                _ => String::new(),
            };
            writeln!(
                out,
                "{wall} {:>5}  {who}  {}{detail} → {}",
                rec.seq,
                o.event.name(),
                o.state
            )
        }
        Body::Rerun(r) if r.from.is_empty() => writeln!(
            out,
            "{wall} {:>5}  resumed: what did not succeed runs again",
            rec.seq
        ),
        Body::Rerun(r) => writeln!(
            out,
            "{wall} {:>5}  resumed: what did not succeed, and {}, run again",
            rec.seq,
            r.from.join(", ")
        ),
        Body::Define(d) => writeln!(
            out,
            "{wall} {:>5}  loaded {} ({} bytes)",
            rec.seq,
            d.file,
            d.source.len()
        ),
        Body::End(e) => writeln!(out, "{wall} {:>5}  end: {}", rec.seq, end_text(e)),
        Body::Rewind(r) => writeln!(
            out,
            "{wall} {:>5}  back to the state after record {}",
            rec.seq, r.to
        ),
        Body::Step(s) => {
            writeln!(
                out,
                "{wall} {:>5}  t={}  {}",
                rec.seq,
                DurationMs(s.t),
                s.input.describe()
            )?;
            for o in &s.out {
                for n in &o.notes {
                    writeln!(out, "        {:<8} {}", o.instance, note_text(n))?;
                }
                if o.status != "running" {
                    writeln!(out, "        {:<8} {}", o.instance, o.status)?;
                }
            }
            Ok(())
        }
    }
}

fn note_text(n: &Note) -> String {
    match n {
        Note::Micro(m) => {
            let on = m
                .event
                .as_deref()
                .map(|e| format!("{e}: "))
                .unwrap_or_default();
            if m.taken.is_empty() {
                format!("{on}entered {}", m.entered.join(", "))
            } else {
                format!("{on}{}", m.taken.join("; "))
            }
        }
        Note::Ignored(e) => format!("{e}: ignored (no transition enabled)"),
        Note::Error(e) => format!("error.execution: {e}"),
        Note::Sent { event, to, due } => match due {
            Some(d) => format!("sent {event} to {to}, due at {}", DurationMs(*d)),
            None => format!("sent {event} to {to}"),
        },
        Note::Cancelled(id) => format!("cancelled send {id}"),
        Note::Log { label, value } => match label {
            Some(l) => format!("log {l}: {value}"),
            None => format!("log {value}"),
        },
        Note::Invoke { id, src } => format!("invoked {id}: {src}"),
        Note::CancelInvoke(id) => format!("stopped invoke {id}"),
        Note::Call { name, args } => format!("call {name}({})", Json::from(args.clone())),
    }
}
