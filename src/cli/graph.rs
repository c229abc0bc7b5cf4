//! `orca graph FILE [--format mermaid|dot] [--output PATH]`

use super::{exit, report};
use crate::chart::graph::{Format, render};
use crate::chart::{CompileOptions, load_chart_file};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The machine file to draw.
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
}

pub fn run(args: Args) -> u8 {
    let opts = CompileOptions {
        allow_unknown_host_actions: true,
        ..CompileOptions::default()
    };
    let chart = match load_chart_file(&args.file, &opts) {
        Ok((chart, _)) => chart,
        Err(diags) => {
            report::print(&diags.0, |_| std::fs::read_to_string(&args.file).ok());
            return exit::USAGE;
        }
    };
    let text = render(
        &chart,
        match args.format {
            GraphFormat::Mermaid => Format::Mermaid,
            GraphFormat::Dot => Format::Dot,
        },
    );
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
