//! `orca step FILE [--json]`: the interactive stepper (docs/stepper.md). The session itself is
//! `orca::stepper`; this is its terminal and its scripted mode.

use super::exit;
use crate::stepper::{Command, Session};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The machine to step through.
    file: PathBuf,
    /// One JSON object per command on stdout (for scripts), never a prompt.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> u8 {
    let mut session = match Session::open(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::USAGE;
        }
    };
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal() && !args.json;
    let mut out = std::io::stdout().lock();
    if interactive {
        let _ = writeln!(
            out,
            "{}\n(type `help` for the commands)",
            session.view(None)
        );
    }
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            let _ = write!(out, "orca> ");
            let _ = out.flush();
        }
        let Some(Ok(line)) = lines.next() else { break };
        if line.trim().is_empty() && !args.json {
            continue;
        }
        let before = session.instance().context().clone();
        let reply = match Command::parse(&line) {
            Ok(cmd) => session.run(cmd),
            Err(e) => crate::stepper::Reply {
                error: Some(e),
                ..Default::default()
            },
        };
        let written = if args.json {
            writeln!(out, "{}", session.json(&reply))
        } else {
            if let Some(e) = &reply.error {
                eprintln!("error: {e}");
            }
            let mut text = String::new();
            for t in &reply.taken {
                text.push_str(&format!("→ {t}\n"));
            }
            if reply.ignored {
                text.push_str("(ignored: no transition is enabled for it)\n");
            }
            if let Some(t) = &reply.text {
                text.push_str(t);
                text.push('\n');
            }
            if reply.changed {
                text.push_str(&session.view(Some(&before)));
                text.push('\n');
            }
            write!(out, "{text}")
        };
        if written.is_err() || reply.quit {
            break;
        }
    }
    let _ = out.flush();
    exit::OK
}
