//! Workflow journals: the header holds the workflow as loaded; then one [`Body::Op`] record
//! per event delivered to an operation, and an [`Body::End`] when the run ended cleanly.

use super::SyncPolicy;
use super::{Body, End, Header, Journal, JournalError, JournalWriter, Rerun};
use crate::runtime::workflow::{Entry, OpRecord, WorkflowRecorder};
use std::path::Path;

impl Header {
    /// A header for a workflow run starting now; `run_id` names the run.
    pub fn for_workflow(file: &Path, source: &str, run_id: &str) -> Header {
        Header::new("workflow", file, source, run_id, "real", super::wall_ms())
    }
}

/// The engine's records go to a journal writer. The barrier waits until everything
/// appended is on disk (fsynced, or written with `--sync never`), so work never starts
/// before the events that led to it are durable.
pub struct WorkflowJournal {
    writer: JournalWriter,
    last: Option<u64>,
}

impl WorkflowJournal {
    pub fn new(writer: JournalWriter) -> Self {
        // With `never`, records are written at each barrier on the engine's thread (and at
        // close); with a sync policy the writer thread's group commit does the work.
        if writer.policy() == SyncPolicy::Never {
            writer.set_inline(true);
        }
        WorkflowJournal { writer, last: None }
    }

    pub fn writer(&self) -> &JournalWriter {
        &self.writer
    }
}

impl WorkflowRecorder for WorkflowJournal {
    fn record(&mut self, rec: &OpRecord) -> Result<(), String> {
        self.last = Some(self.writer.append_op(rec)?);
        Ok(())
    }

    fn rerun(&mut self, from: &[String]) -> Result<(), String> {
        self.last = Some(self.writer.append(Body::Rerun(Rerun {
            from: from.to_vec(),
        }))?);
        Ok(())
    }

    fn barrier(&mut self) -> Result<(), String> {
        match (self.last, self.writer.policy()) {
            (None, _) => Ok(()),
            // Written is enough for `never`: do it here rather than wait for the thread.
            (Some(_), SyncPolicy::Never) => self.writer.write_now(),
            (Some(seq), _) => self.writer.wait_durable(seq),
        }
    }
}

/// A workflow run's journal as read back.
#[derive(Debug, Clone)]
pub struct WorkflowLog {
    pub header: Header,
    /// The workflow in effect: the header's, or the last one a `resume --force` recorded.
    pub file: String,
    pub source: String,
    pub records: Vec<Entry>,
    /// Per operation path (`""` for the root): the wall-clock times (ms) of its first and
    /// last record, which `orca status` shows as its duration.
    pub spans: std::collections::HashMap<String, (u64, u64)>,
    /// How the run ended, when the last thing in the journal is an end record (a resume
    /// that was interrupted leaves records after an earlier end).
    pub end: Option<End>,
    pub warnings: Vec<String>,
}

impl WorkflowLog {
    /// Reads a workflow journal; a machine journal is refused.
    pub fn read(path: &Path) -> Result<WorkflowLog, String> {
        let j = Journal::read_file(path).map_err(|e: JournalError| e.to_string())?;
        WorkflowLog::from_journal(j, path)
    }

    /// A workflow run from a journal read elsewhere (from a database); `path` names it in
    /// messages.
    pub fn from_journal(j: Journal, path: &Path) -> Result<WorkflowLog, String> {
        if j.header.kind != "workflow" {
            return Err(format!(
                "{}: this is a {} journal, not a workflow run's",
                path.display(),
                j.header.kind
            ));
        }
        let mut records = Vec::new();
        let mut end = None;
        let mut spans = std::collections::HashMap::new();
        let mut file = j.header.file.clone();
        let mut source = j.header.source.clone();
        for r in j.records {
            match r.body {
                // Records after an end record come from a resume: the run goes on.
                Body::Op(o) => {
                    end = None;
                    let span = spans.entry(o.op.clone()).or_insert((r.wall, r.wall));
                    span.1 = r.wall;
                    records.push(Entry::Op(o));
                }
                Body::Rerun(r) => {
                    end = None;
                    records.push(Entry::Rerun { from: r.from });
                }
                Body::End(e) => end = Some(e),
                Body::Header(_) => {}
                Body::Define(d) => {
                    file = d.file;
                    source = d.source;
                }
                other => {
                    return Err(format!(
                        "{}: record {} is not a workflow record ({other:?})",
                        path.display(),
                        r.seq
                    ));
                }
            }
        }
        Ok(WorkflowLog {
            header: j.header,
            file,
            source,
            records,
            spans,
            end,
            warnings: j.warnings,
        })
    }
}
