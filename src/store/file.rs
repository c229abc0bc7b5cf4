//! The embedded default: one directory per run under `.orca/runs` (or `--run-dir`), holding
//! `journal.jsonl`, the logs, and a `lock` that one process holds while it runs the run.

use super::{RunStore, RunSummary, RunWriter, StoreError, StoredRun};
use crate::journal::workflow::{WorkflowJournal, WorkflowLog};
use crate::journal::{Body, Header, JournalWriter, SyncPolicy};
use crate::runtime::workflow::{OpRecord, WorkflowRecorder};
use std::path::{Path, PathBuf};

/// The journal's file name inside a run directory.
pub const JOURNAL: &str = "journal.jsonl";

/// Where runs live unless `--run-dir` says otherwise.
pub fn runs_root() -> PathBuf {
    PathBuf::from(".orca").join("runs")
}

/// Runs as directories with a journal file each.
#[derive(Debug, Clone)]
pub struct FileStore {
    /// `--run-dir`: the one run directory this command uses (any run name maps to it).
    pub run_dir: Option<PathBuf>,
    pub sync: SyncPolicy,
}

impl Default for FileStore {
    fn default() -> Self {
        FileStore {
            run_dir: None,
            sync: SyncPolicy::Batch,
        }
    }
}

/// A run id or a directory, to the run directory.
pub fn run_dir_of(run: &str) -> PathBuf {
    let p = PathBuf::from(run);
    if p.is_dir() { p } else { runs_root().join(run) }
}

/// Holds the run directory for this process: a second `run` or `resume` of the same run
/// while this one is alive is refused instead of interleaving two writers in one journal.
pub fn lock_run(run_dir: &Path, wait: bool) -> Result<std::fs::File, String> {
    let path = run_dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if wait {
        f.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        return Ok(f);
    }
    // An advisory lock that goes with the descriptor, so also with a killed process.
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "run {} is in use by another orca process (still running?)",
            run_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Whether `journal` exists without a complete header line: what a runner killed before it
/// wrote its header leaves, a run that never started.
pub fn never_started(journal: &Path) -> bool {
    std::fs::read(journal).is_ok_and(|b| !b.contains(&b'\n'))
}

impl FileStore {
    fn dir(&self, run: &str) -> PathBuf {
        self.run_dir.clone().unwrap_or_else(|| run_dir_of(run))
    }
}

/// A journal writer and the run directory's lock, released together.
struct FileRun {
    journal: WorkflowJournal,
    _lock: std::fs::File,
}

impl WorkflowRecorder for FileRun {
    fn record(&mut self, rec: &OpRecord) -> Result<(), String> {
        self.journal.record(rec)
    }
    fn rerun(&mut self, from: &[String]) -> Result<(), String> {
        self.journal.rerun(from)
    }
    fn barrier(&mut self) -> Result<(), String> {
        self.journal.barrier()
    }
}

impl RunWriter for FileRun {
    fn append(&mut self, body: Body) -> Result<(), String> {
        self.journal.writer().append(body).map(drop)
    }
    fn close(&mut self) -> Result<(), String> {
        self.journal.writer().close()
    }
}

impl RunStore for FileStore {
    fn describe(&self) -> String {
        self.run_dir
            .as_ref()
            .unwrap_or(&runs_root())
            .display()
            .to_string()
    }

    fn create(&self, run: &str, header: Header) -> Result<Box<dyn RunWriter>, StoreError> {
        let dir = self.dir(run);
        std::fs::create_dir_all(&dir).map_err(|e| {
            StoreError::Run(format!(
                "cannot create the run directory {}: {e}",
                dir.display()
            ))
        })?;
        let lock = lock_run(&dir, false).map_err(StoreError::Run)?;
        let path = dir.join(JOURNAL);
        // Starting a run that never started replaces its journal.
        if never_started(&path) {
            let _ = std::fs::remove_file(&path);
        }
        let writer = JournalWriter::create(&path, header, self.sync)
            .map_err(|e| StoreError::Run(e.to_string()))?;
        Ok(Box::new(FileRun {
            journal: WorkflowJournal::new(writer),
            _lock: lock,
        }))
    }

    fn read(&self, run: &str) -> Result<StoredRun, StoreError> {
        let path = self.dir(run).join(JOURNAL);
        let bytes = std::fs::read(&path)
            .map_err(|e| StoreError::Run(format!("{}: {e}", path.display())))?;
        let j = crate::journal::Journal::read_bytes(&bytes)
            .map_err(|e| StoreError::Journal(format!("{}: {e}", path.display())))?;
        let log = WorkflowLog::from_journal(j, &path).map_err(StoreError::Journal)?;
        Ok(StoredRun { log, bytes })
    }

    fn reopen(&self, run: &str, wait: bool) -> Result<(StoredRun, Box<dyn RunWriter>), StoreError> {
        let dir = self.dir(run);
        let path = dir.join(JOURNAL);
        if !path.exists() {
            return Err(StoreError::Run(format!(
                "no run {run}: {} does not exist",
                path.display()
            )));
        }
        let lock = lock_run(&dir, wait).map_err(StoreError::Run)?;
        if never_started(&path) {
            return Err(StoreError::Journal(format!(
                "{}: the run was stopped before it started; start it again with `orca run WORKFLOW --run-dir {}`",
                path.display(),
                dir.display()
            )));
        }
        let (writer, journal) = JournalWriter::open_append(&path, self.sync)
            .map_err(|e| StoreError::Journal(e.to_string()))?;
        let bytes = std::fs::read(&path).unwrap_or_default();
        let log = WorkflowLog::from_journal(journal, &path).map_err(StoreError::Journal)?;
        Ok((
            StoredRun { log, bytes },
            Box::new(FileRun {
                journal: WorkflowJournal::new(writer),
                _lock: lock,
            }),
        ))
    }

    fn list(&self) -> Result<Vec<RunSummary>, StoreError> {
        let root = runs_root();
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join(JOURNAL).exists())
                .collect(),
            Err(_) => Vec::new(),
        };
        dirs.sort();
        Ok(dirs
            .into_iter()
            .map(|d| {
                let run = d
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match WorkflowLog::read(&d.join(JOURNAL)) {
                    Ok(l) => {
                        let held = lock_run(&d, false).is_err();
                        RunSummary {
                            run,
                            started: l.header.started.clone(),
                            status: l.end.map_or_else(
                                || if held { "running" } else { "interrupted" }.to_string(),
                                |e| e.ending,
                            ),
                            workflow: l.file,
                        }
                    }
                    Err(e) => RunSummary {
                        run,
                        started: String::new(),
                        status: format!("unreadable: {e}"),
                        workflow: String::new(),
                    },
                }
            })
            .collect())
    }

    fn run_dir(&self, run: &str) -> PathBuf {
        self.dir(run)
    }
}
