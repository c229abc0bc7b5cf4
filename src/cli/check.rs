//! `orca check FILE...`: machine and workflow files, every problem of each.

use super::{exit, report};
use crate::chart::{CompileOptions, compile};
use crate::lifecycle::plan::{self, Plan};
use crate::model::Diagnostics;
use crate::model::load::{self, FileKind};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine and workflow files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Print the diagnostics as one JSON list on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> u8 {
    let mut all = Diagnostics::default();
    let mut texts: HashMap<String, String> = HashMap::new();
    let mut unreadable = false;
    let opts = CompileOptions::default();
    for path in &args.files {
        let name = path.display().to_string();
        let file = match load::read_source(path) {
            Ok(f) => f,
            Err(d) => {
                unreadable |= d.iter().any(|d| d.code == "io");
                all.0.extend(d);
                continue;
            }
        };
        texts.insert(name.clone(), file.text.clone());
        let diags = if load::detect_kind(&file.text) == FileKind::Workflow {
            match Plan::load_source(file, plan::base_dir(path)) {
                Ok((_, warnings)) => warnings,
                Err(d) => d,
            }
        } else {
            match load::load_machine_source(file).and_then(|m| compile(&m, &opts)) {
                Ok((_, warnings)) => warnings,
                Err(d) => d,
            }
        };
        let summary = if diags.has_errors() {
            "errors"
        } else if diags.is_empty() {
            "ok"
        } else {
            "warnings"
        };
        tracing::debug!(file = %name, summary, "checked");
        all.0.extend(diags);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
        );
    } else {
        report::print(&all.0, |f| texts.get(f).cloned());
        let (e, w) = (all.errors().count(), all.warnings().count());
        if e + w > 0 {
            eprintln!(
                "{e} error{}, {w} warning{} in {} file{}",
                plural(e),
                plural(w),
                args.files.len(),
                plural(args.files.len())
            );
        }
    }
    if unreadable {
        exit::USAGE
    } else if all.has_errors() || (args.deny_warnings && !all.is_empty()) {
        exit::FAILED
    } else {
        exit::OK
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
