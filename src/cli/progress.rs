//! The live view of `orca run WORKFLOW.ron` on a terminal: one spinner line per running
//! operation (indented by depth, with its lifecycle state, attempt and elapsed time), and a
//! ticked-off line above them for each operation that settles, like a todo list.

use crate::runtime::workflow::Change;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

pub struct Live {
    multi: MultiProgress,
    bars: HashMap<usize, ProgressBar>,
    style: ProgressStyle,
    total: usize,
    settled: usize,
    footer: ProgressBar,
}

impl Live {
    /// A view over a run of `total` operations, drawn on stdout.
    pub fn new(total: usize) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template("{prefix}{spinner:.cyan} {msg} {elapsed:.dim}")
            .expect("a valid template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let footer = multi.add(ProgressBar::new(total as u64));
        footer.set_style(
            ProgressStyle::with_template("{bar:30.green/dim} {pos}/{len} settled {msg}")
                .expect("a valid template")
                .progress_chars("━━─"),
        );
        Live {
            multi,
            bars: HashMap::new(),
            style,
            total,
            settled: 0,
            footer,
        }
    }

    /// The plan may grow (decompose); the footer follows.
    pub fn set_total(&mut self, total: usize) {
        if total != self.total {
            self.total = total;
            self.footer.set_length(total as u64);
        }
    }

    pub fn change(&mut self, c: &Change) {
        let depth = if c.op == 0 {
            0
        } else {
            c.path.matches('.').count() + 1
        };
        let indent = "  ".repeat(depth);
        let name = c.path.rsplit('.').next().unwrap_or(&c.path);
        let attempt = if c.attempt > 1 {
            format!(" (attempt {})", c.attempt)
        } else {
            String::new()
        };
        let settled = matches!(
            c.to,
            "Succeeded" | "Failed" | "Skipped" | "Cancelled" | "Compensated"
        );
        if settled {
            if let Some(bar) = self.bars.remove(&c.op) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            let mark = match c.to {
                "Succeeded" => "\x1b[32m✓\x1b[0m",
                "Compensated" => "\x1b[33m↺\x1b[0m",
                "Skipped" => "\x1b[2m-\x1b[0m",
                "Cancelled" => "\x1b[33m⊘\x1b[0m",
                _ => "\x1b[31m✗\x1b[0m",
            };
            let why = c
                .error
                .as_deref()
                .map(|e| format!("  \x1b[31m{e}\x1b[0m"))
                .unwrap_or_default();
            let _ = self.multi.println(format!(
                "{indent}{mark} {name} {}{attempt} \x1b[2m{:.1}s\x1b[0m{why}",
                c.to,
                c.elapsed_ms as f64 / 1000.0
            ));
            if c.to != "Compensated" {
                self.settled += 1;
                self.footer.set_position(self.settled as u64);
            }
            return;
        }
        let bar = self.bars.entry(c.op).or_insert_with(|| {
            let bar = self
                .multi
                .insert_before(&self.footer, ProgressBar::new_spinner());
            bar.set_style(self.style.clone());
            bar.set_prefix(indent.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        let why = match (c.to, c.error.as_deref()) {
            ("Retrying", Some(e)) => format!(" after: {e}"),
            _ => String::new(),
        };
        bar.set_message(format!("{name} {}{attempt}{why}", c.to));
    }

    /// Clears the spinners before the summary.
    pub fn finish(self) {
        for (_, bar) in self.bars {
            bar.finish_and_clear();
        }
        self.footer.finish_and_clear();
        let _ = self.multi.clear();
    }
}
