//! `orca test-paths FILE`: the shortest inputs to every reachable state and across every
//! transition of a machine (for a workflow: the shortest answers that bring each operation to
//! each lifecycle state), as `orca step --script` files or JSON; `--check` runs each through
//! the stepper.

use super::exit;
use super::verify::Loaded;
use crate::stepper::Session;
use crate::verify::paths::{self, Goal, TestPath};
use crate::verify::{self, Options};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The machine or workflow.
    file: PathBuf,
    /// Write one `orca step --script` file per path into this directory.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Print the paths as one JSON list.
    #[arg(long)]
    json: bool,
    /// Run every path through `orca step`'s session and check that it reaches its state or
    /// takes its transition.
    #[arg(long)]
    check: bool,
    /// Stop exploring after this many distinct states.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_states: usize,
    /// Explore paths of at most this many inputs.
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
}

pub fn run(args: Args) -> u8 {
    let name = args.file.display().to_string();
    let (chart, text) = match super::verify::load_file(&args.file) {
        Ok((Loaded::Machine(chart), text)) => (chart, text),
        Ok((Loaded::Workflow(plan), text)) => return workflow(&args, &plan, &text),
        Err(code) => return code,
    };
    let opts = Options {
        depth: args.depth,
        max_states: args.max_states.max(1),
        ..Options::default()
    };
    let report = verify::explore(chart.clone(), &opts);
    let tests = paths::test_paths(&chart, &report);
    if let Some(dir) = &args.output {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("orca: cannot create {}: {e}", dir.display());
            return exit::USAGE;
        }
        for (n, t) in tests.iter().enumerate() {
            let kind = match t.goal {
                Goal::State(_) => "state",
                Goal::Transition(_) => "transition",
            };
            let out = dir.join(format!("{:03}-{kind}.steps", n + 1));
            if let Err(e) = std::fs::write(&out, paths::script(t)) {
                eprintln!("orca: cannot write {}: {e}", out.display());
                return exit::USAGE;
            }
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = tests
            .iter()
            .map(|t| {
                let (kind, target) = match &t.goal {
                    Goal::State(s) => ("state", chart.state(*s).path.clone()),
                    Goal::Transition(tr) => ("transition", chart.describe_transition(*tr)),
                };
                serde_json::json!({
                    "kind": kind,
                    "target": target,
                    "steps": t.inputs.iter().flat_map(crate::verify::Input::step_lines).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if !args.check && args.output.is_none() {
        for t in &tests {
            println!("{}", paths::script(t));
        }
    }
    if report.bounded.is_some() {
        eprintln!(
            "orca: the exploration stopped at its bound ({} states, {} left): states and transitions beyond it have no path",
            report.states,
            report.bounded.unwrap_or(0)
        );
    }
    if !args.check {
        return unchecked(report.bounded.is_some());
    }
    run_checks(
        tests
            .iter()
            .map(|t| (t.name.clone(), check(&chart, &name, &text, t))),
    )
}

/// The exit status without `--check`: 3 when a bound left states without a path.
fn unchecked(bounded: bool) -> u8 {
    if bounded {
        super::verify::BOUNDED
    } else {
        exit::OK
    }
}

/// Prints each failed check and `N passed, M failed`; exit 1 when one failed.
fn run_checks(results: impl Iterator<Item = (String, Result<(), String>)>) -> u8 {
    let (mut passed, mut failed) = (0, 0);
    for (name, result) in results {
        match result {
            Ok(()) => passed += 1,
            Err(why) => {
                failed += 1;
                println!("FAILED {name}: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 { exit::FAILED } else { exit::OK }
}

/// Runs one path through a stepper session, as `orca step --script` would, and through an
/// observed instance, which tells the transitions apart by identity (several can read alike,
/// e.g. two targetless ones in one state).
fn check(chart: &crate::chart::Chart, name: &str, text: &str, t: &TestPath) -> Result<(), String> {
    let mut session = Session::from_text(name, text)?;
    let mut last_taken = Vec::new();
    for input in &t.inputs {
        for cmd in super::verify::commands(input) {
            let reply = session.run(cmd);
            if let Some(e) = reply.error {
                return Err(format!("`{input}`: {e}"));
            }
            last_taken = reply.taken;
        }
    }
    let mut inst = crate::interpreter::Instance::new(session.instance().chart().clone());
    inst.observe(true);
    inst.start().map_err(|e| e.to_string())?;
    for input in &t.inputs {
        inst.take_observed();
        verify::apply(&mut inst, input).map_err(|e| format!("`{input}`: {e}"))?;
    }
    match t.goal {
        Goal::State(s) if session.instance().is_active(s) && inst.is_active(s) => Ok(()),
        Goal::State(_) => Err(format!(
            "ends in {:?}",
            session.instance().configuration_paths()
        )),
        Goal::Transition(tr) => {
            let want = chart.describe_transition(tr);
            let by_stepper = t.inputs.is_empty() || last_taken.contains(&want);
            if by_stepper && inst.take_observed().taken.contains(&tr) {
                Ok(())
            } else {
                Err(format!("the last step took {last_taken:?}, not {want}"))
            }
        }
    }
}

/// `orca test-paths WORKFLOW`: the shortest answers that bring each operation to each
/// lifecycle state it can reach, as `orca step --script` files; `--check` runs them through
/// the workflow stepper and checks the state.
fn workflow(args: &Args, plan: &crate::lifecycle::plan::Plan, text: &str) -> u8 {
    use crate::stepper::workflow::WorkflowSession;
    let name = args.file.display().to_string();
    let base = crate::lifecycle::plan::base_dir(&args.file);
    let r = verify::workflow::explore(plan, args.max_states.max(1), args.depth);
    let script = |(op, state, lines): &(String, &str, Vec<String>)| {
        let mut s = format!("# operation {op} {state} ({} answers)\n", lines.len());
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    };
    if let Some(dir) = &args.output {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("orca: cannot create {}: {e}", dir.display());
            return exit::USAGE;
        }
        for (n, t) in r.reached.iter().enumerate() {
            let out = dir.join(format!("{:03}-operation.steps", n + 1));
            if let Err(e) = std::fs::write(&out, script(t)) {
                eprintln!("orca: cannot write {}: {e}", out.display());
                return exit::USAGE;
            }
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = r
            .reached
            .iter()
            .map(|(op, state, lines)| {
                serde_json::json!({ "kind": "operation", "target": op, "state": state, "steps": lines })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if !args.check && args.output.is_none() {
        for t in &r.reached {
            println!("{}", script(t));
        }
    }
    if !args.check {
        return unchecked(r.bounded.is_some());
    }
    run_checks(r.reached.iter().map(|(op, state, lines)| {
        let outcome = (|| {
            let mut s = WorkflowSession::from_text(&name, text, base)?;
            for l in lines {
                if let Some(e) = s.run_line(l).error {
                    return Err(format!("`{l}`: {e}"));
                }
            }
            let e = s.engine();
            let id = (0..e.plan().ops.len())
                .find(|&i| e.plan().display_path(i) == op)
                .ok_or_else(|| format!("no operation `{op}`"))?;
            match e.state(id) {
                now if now == *state => Ok(()),
                now => Err(format!("`{op}` is {now}")),
            }
        })();
        (format!("operation {op} {state}"), outcome)
    }))
}
