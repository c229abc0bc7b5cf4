//! `orca graph FILE [--format mermaid|dot] [--output PATH]`: a machine's states and
//! transitions, or a workflow's operation tree and dependencies.

use super::{exit, report};
use crate::chart::graph::{Format, render};
use crate::chart::{CompileOptions, compile};
use crate::lifecycle::graph::render as render_workflow;
use crate::lifecycle::plan::{self, Plan};
use crate::model::Diagnostics;
use crate::model::load::{self, FileKind};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The machine or workflow file to draw.
    file: PathBuf,
    /// Output format.
    #[arg(long, default_value = "mermaid")]
    format: GraphFormat,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum GraphFormat {
    Mermaid,
    Dot,
    /// The structure as JSON: states and transitions, or operations and dependencies.
    Json,
}

pub fn run(args: Args) -> u8 {
    let format = match args.format {
        GraphFormat::Mermaid => Format::Mermaid,
        GraphFormat::Dot => Format::Dot,
        GraphFormat::Json => Format::Json,
    };
    let text = match draw(&args.file, format) {
        Ok(text) => text,
        Err(diags) => {
            report::print(&diags.0, |_| std::fs::read_to_string(&args.file).ok());
            return exit::USAGE;
        }
    };
    match &args.output {
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("orca: cannot write {}: {e}", path.display());
                exit::USAGE
            }
        },
        None => {
            print!("{text}");
            exit::OK
        }
    }
}

/// Loads `path` as whichever kind of file it is and renders it.
fn draw(path: &Path, format: Format) -> Result<String, Diagnostics> {
    let file = load::read_source(path)?;
    if load::detect_kind(&file.text) == FileKind::Workflow {
        let (plan, _) = Plan::load_source(file, plan::base_dir(path))?;
        return Ok(render_workflow(&plan, format));
    }
    let opts = CompileOptions {
        allow_unknown_host_actions: true,
        ..CompileOptions::default()
    };
    let (chart, _) = compile(&load::load_machine_source(file)?, &opts)?;
    Ok(render(&chart, format))
}
