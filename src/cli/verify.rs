//! `orca verify FILE...`: explore every reachable state of machines (and the outcomes of
//! workflows), check their properties, and write each counterexample as a journal.

use super::{exit, report};
use crate::chart::{CompileOptions, compile};
use crate::lifecycle::plan::{self, Plan};
use crate::model::load::{self, FileKind};
use crate::stepper::{Command, Session};
use crate::verify::{self, Finding, Input, Options, Report};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Exit status when a bound stopped an exploration: nothing is proven beyond it.
pub const BOUNDED: u8 = 3;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine and workflow files to verify.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Explore paths of at most this many inputs.
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
    /// Stop after this many distinct states.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_states: usize,
    /// Keep every context value in the state (by default values that no guard, invariant or
    /// delay can depend on are left out).
    #[arg(long)]
    exact: bool,
    /// Fail (exit 1) on warnings too: never-taken transitions, possible `error.execution`,
    /// deadlocks, traps, unbounded growth.
    #[arg(long)]
    deny_findings: bool,
    /// Where counterexample journals are written.
    #[arg(long, value_name = "DIR", default_value = ".orca/verify")]
    counterexamples: PathBuf,
    /// Print one JSON object per file on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> u8 {
    let opts = Options {
        depth: args.depth,
        max_states: args.max_states.max(1),
        exact: args.exact,
        ..Options::default()
    };
    let mut worst = exit::OK;
    for path in &args.files {
        let code = verify_file(path, &opts, &args);
        worst = worse(worst, code);
    }
    worst
}

/// Usage errors first, then failures, then bounds.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        exit::USAGE => 3,
        exit::FAILED => 2,
        BOUNDED => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// A file `verify` and `test-paths` can work on, loaded; its text kept for the stepper.
pub enum Loaded {
    Machine(Arc<crate::chart::Chart>),
    Workflow(Plan),
}

/// Loads a machine or a workflow, printing what is wrong with it (`Err`: the exit status).
pub fn load_file(path: &Path) -> Result<(Loaded, String), u8> {
    let name = path.display().to_string();
    let file = load::read_source(path).map_err(|d| {
        report::print(&d.0, |_| None);
        exit::USAGE
    })?;
    let text = file.text.clone();
    let loaded = if load::detect_kind(&text) == FileKind::Workflow {
        Plan::load_source(file, plan::base_dir(path)).map(|(p, _)| Loaded::Workflow(p))
    } else {
        load::load_machine_source(file)
            .and_then(|m| compile(&m, &CompileOptions::default()))
            .map(|(c, _)| Loaded::Machine(Arc::new(c)))
    };
    match loaded {
        Ok(l) => Ok((l, text)),
        Err(d) => {
            report::print(&d.0, |f| (f == name).then(|| text.clone()));
            Err(exit::USAGE)
        }
    }
}

fn verify_file(path: &Path, opts: &Options, args: &Args) -> u8 {
    let name = path.display().to_string();
    let (chart, text) = match load_file(path) {
        Ok((Loaded::Machine(chart), text)) => (chart, text),
        Ok((Loaded::Workflow(plan), _)) => return verify_workflow(path, &plan, opts, args),
        Err(code) => return code,
    };
    let started = Instant::now();
    let bar = (!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.set_prefix(name.clone());
        b
    });
    let report = verify::explore_with(chart.clone(), opts, false, &mut |p| {
        if let Some(b) = &bar {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!(
                "{} states ({:.0}/s), frontier {}, depth {}, {:.1} MiB",
                p.states,
                p.states as f64 / secs,
                p.frontier,
                p.depth,
                p.bytes as f64 / (1 << 20) as f64
            ));
            b.tick();
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let elapsed = started.elapsed();
    let mut journals = Vec::new();
    for (n, f) in report.findings.iter().enumerate() {
        journals.push(
            if matches!(f.kind, verify::FindingKind::NeverTaken { .. }) {
                None
            } else {
                write_journal(path, &text, &args.counterexamples, &chart.id, n + 1, f)
            },
        );
    }
    if args.json {
        let mut j = json_report(&name, &report, &journals, elapsed);
        j["cut_payloads"] = verify::inputs::cut_events(&chart).into();
        println!("{j}");
    } else {
        print_report(&name, &chart, &report, &journals, elapsed);
    }
    outcome(&report, args.deny_findings)
}

/// `orca verify WORKFLOW`: every order and outcome of its work; counterexamples are written
/// as `orca step` scripts (a simulation runs nothing, so it has no journal).
fn verify_workflow(path: &Path, plan: &Plan, opts: &Options, args: &Args) -> u8 {
    let name = path.display().to_string();
    let started = Instant::now();
    let r = verify::workflow::explore(plan, opts.max_states, opts.depth);
    let elapsed = started.elapsed();
    let mut scripts = Vec::new();
    for (n, f) in r.findings.iter().enumerate() {
        let out = args
            .counterexamples
            .join(format!("{}-{}.steps", sanitize(&plan.id), n + 1));
        let body = f.path.iter().map(|l| format!("{l}\n")).collect::<String>();
        let written =
            std::fs::create_dir_all(&args.counterexamples).and_then(|_| std::fs::write(&out, body));
        scripts.push(match written {
            Ok(()) => Some(out),
            Err(e) => {
                eprintln!("orca: cannot write {}: {e}", out.display());
                None
            }
        });
    }
    if args.json {
        let findings: Vec<serde_json::Value> = r
            .findings
            .iter()
            .zip(&scripts)
            .map(|(f, s)| {
                serde_json::json!({
                    "kind": kind_name(&f.kind),
                    "severity": if f.error { "error" } else { "warning" },
                    "message": f.message,
                    "path": f.path,
                    "script": s.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "file": name,
                "states": r.states,
                "steps": r.steps,
                "depth": r.depth,
                "complete": r.bounded.is_none(),
                "frontier": r.bounded.unwrap_or(0),
                "seconds": elapsed.as_secs_f64(),
                "ends": { "succeeded": r.ends.0, "failed": r.ends.1 },
                "findings": findings,
            })
        );
    } else {
        let scope = match r.bounded {
            None => "every order and outcome of its work".to_string(),
            Some(frontier) => format!("BOUNDED: {frontier} states left unexplored at the bound"),
        };
        println!(
            "{name}: {} states, {} steps, depth {}, {:.2}s, {} ends ({} succeeded, {} failed), {scope}",
            r.states,
            r.steps,
            r.depth,
            elapsed.as_secs_f64(),
            r.ends.0 + r.ends.1,
            r.ends.0,
            r.ends.1,
        );
        for (f, s) in r.findings.iter().zip(&scripts) {
            let level = if f.error { "error" } else { "warning" };
            println!("{name}:1:1: {level}: {}", f.message);
            println!(
                "  shortest path ({} answers): {}",
                f.path.len(),
                f.path.join(", ")
            );
            if let Some(s) = s {
                println!("  replay: orca step {name} < {}", s.display());
            }
        }
        if r.findings.is_empty() {
            println!(
                "  no findings{}",
                if r.bounded.is_some() {
                    " within the bound (nothing is proven beyond it)"
                } else {
                    ""
                }
            );
        }
    }
    status(
        r.findings.iter().map(|f| f.error),
        r.bounded.is_some(),
        args.deny_findings,
    )
}

/// The exit status of one file's report.
pub fn outcome(report: &Report, deny_findings: bool) -> u8 {
    status(
        report.findings.iter().map(|f| f.error),
        report.bounded.is_some(),
        deny_findings,
    )
}

/// The exit status: 1 on an error (or a warning, denied), else 3 when bounded, else 0.
/// `severities`: per finding, whether it is an error.
fn status(severities: impl Iterator<Item = bool>, bounded: bool, deny_findings: bool) -> u8 {
    let (mut errors, mut warnings) = (false, false);
    for e in severities {
        errors |= e;
        warnings |= !e;
    }
    if errors || (deny_findings && warnings) {
        exit::FAILED
    } else if bounded {
        BOUNDED
    } else {
        exit::OK
    }
}

/// Writes a finding's path as a journal through a stepper session, so that `orca replay`
/// and `orca step --journal` open it; `None` (said on stderr) if it cannot be written.
fn write_journal(
    file: &Path,
    text: &str,
    dir: &Path,
    id: &str,
    n: usize,
    f: &Finding,
) -> Option<PathBuf> {
    let mut session = match Session::from_text(&file.display().to_string(), text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca: cannot replay the counterexample: {e}");
            return None;
        }
    };
    for input in &f.path {
        for cmd in commands(input) {
            if let Some(e) = session.run(cmd).error {
                eprintln!("orca: cannot replay the counterexample at `{input}`: {e}");
                return None;
            }
        }
    }
    // The stepper runs invoked child machines, which the verifier leaves to the environment:
    // say so when that makes the journal end elsewhere than the path the verifier found.
    let mut explored = crate::interpreter::Instance::new(session.instance().chart().clone());
    let _ = explored.start();
    for input in &f.path {
        let _ = verify::apply(&mut explored, input);
    }
    let (ran, saw) = (session.instance(), &explored);
    if ran.configuration_paths() != saw.configuration_paths() || ran.context() != saw.context() {
        eprintln!(
            "orca: warning: the counterexample's journal ends in {:?}, not in {:?} as explored: the stepper runs the machine's invoked children, the verifier does not",
            ran.configuration_paths(),
            saw.configuration_paths()
        );
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("orca: cannot create {}: {e}", dir.display());
        return None;
    }
    let out = dir.join(format!("{}-{n}.jsonl", sanitize(id)));
    let _ = std::fs::remove_file(&out);
    match session.save(&out) {
        Ok(_) => Some(out),
        Err(e) => {
            eprintln!("orca: cannot write {}: {e}", out.display());
            None
        }
    }
}

/// The stepper commands of one input.
pub fn commands(input: &Input) -> Vec<Command> {
    match input {
        Input::Event(e) => vec![Command::Send {
            name: e.name.to_string(),
            data: e.data.clone(),
        }],
        Input::Tick => vec![Command::Tick(None)],
        Input::Set(values) => values
            .iter()
            .map(|(name, value)| Command::Set {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn print_report(
    name: &str,
    chart: &crate::chart::Chart,
    report: &Report,
    journals: &[Option<PathBuf>],
    elapsed: std::time::Duration,
) {
    let secs = elapsed.as_secs_f64();
    let scope = match report.bounded {
        None => "every reachable state".to_string(),
        Some(frontier) => format!("BOUNDED: {frontier} states left unexplored at the bound"),
    };
    println!(
        "{name}: {} states, {} steps, depth {}, {:.2}s ({:.0} states/s), {}",
        report.states,
        report.steps,
        report.depth,
        secs,
        report.states as f64 / secs.max(1e-9),
        scope
    );
    if !report.ignored.is_empty() {
        println!(
            "  values no guard, invariant or delay depends on, left out: {}",
            report.ignored.join(", ")
        );
    }
    for name in verify::inputs::cut_events(chart) {
        println!(
            "  `{name}`: its guards' literals combine into more payloads than the {} tried; choose them in `verify.events`",
            verify::inputs::MAX_PAYLOADS
        );
    }
    for (f, journal) in report.findings.iter().zip(journals) {
        let at = f
            .span
            .map(|s| chart.source.line_col(s.start))
            .map_or("1:1".to_string(), |lc| format!("{}:{}", lc.line, lc.col));
        let level = if f.error { "error" } else { "warning" };
        println!("{name}:{at}: {level}: {}", f.message);
        if !f.path.is_empty() || journal.is_some() {
            let steps: Vec<String> = f.path.iter().map(ToString::to_string).collect();
            println!(
                "  shortest path ({} input{}): {}",
                steps.len(),
                if steps.len() == 1 { "" } else { "s" },
                if steps.is_empty() {
                    "(the start)".to_string()
                } else {
                    steps.join(", ")
                }
            );
        }
        if let Some(j) = journal {
            println!(
                "  replay: orca replay {}   step: orca step {name} --journal {}",
                j.display(),
                j.display()
            );
        }
    }
    let (e, w) = (
        report.findings.iter().filter(|f| f.error).count(),
        report.findings.iter().filter(|f| !f.error).count(),
    );
    if e + w == 0 {
        println!(
            "  no findings{}",
            if report.bounded.is_some() {
                " within the bound (nothing is proven beyond it)"
            } else {
                ""
            }
        );
    }
}

fn json_report(
    name: &str,
    report: &Report,
    journals: &[Option<PathBuf>],
    elapsed: std::time::Duration,
) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = report
        .findings
        .iter()
        .zip(journals)
        .map(|(f, j)| {
            serde_json::json!({
                "kind": kind_name(&f.kind),
                "severity": if f.error { "error" } else { "warning" },
                "message": f.message,
                "path": f.path.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "steps": f.path.iter().flat_map(Input::step_lines).collect::<Vec<_>>(),
                "journal": j.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    serde_json::json!({
        "file": name,
        "states": report.states,
        "steps": report.steps,
        "depth": report.depth,
        "complete": report.bounded.is_none(),
        "frontier": report.bounded.unwrap_or(0),
        "seconds": elapsed.as_secs_f64(),
        "bytes": report.bytes,
        "ignored": report.ignored,
        "findings": findings,
    })
}

/// A finding's kind as `--json` names it.
pub fn kind_name(k: &verify::FindingKind) -> &'static str {
    use verify::FindingKind::*;
    match k {
        Invariant { .. } => "invariant",
        NeverReach { .. } => "never_reach",
        CannotReach { .. } => "always_can_reach",
        Trap => "trap",
        Deadlock => "deadlock",
        NeverTaken { .. } => "never_taken",
        ExecutionError { .. } => "error_execution",
        Loop { .. } => "microstep_limit",
        UnboundedGrowth { .. } => "unbounded_growth",
        DependencyOrder { .. } => "dependency_order",
        CompensationOrder { .. } => "compensation_order",
        Uncompensated { .. } => "uncompensated",
    }
}
