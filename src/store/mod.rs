//! Where workflow runs are kept: the file journal under `.orca/runs` (the default), or a
//! PostgreSQL database that one coordinating `orca run` and any number of `orca worker`s
//! share (docs/scale-out.md).
//!
//! Both keep the same thing: a run's journal, line for line in the format of
//! docs/journal.md (header, `op`, `rerun`, `define`, `end`), so everything that reads a run
//! (`resume`, `status`, `log`, `replay`) reads it the same way whichever store holds it.
//! PostgreSQL adds the work queue: the coordinator's [`Dispatch`](crate::runtime::workflow::Dispatch)
//! puts work in a table, workers claim it under a lease and record its result.

pub mod file;
pub mod postgres;

use crate::journal::workflow::WorkflowLog;
use crate::journal::{Body, Header};
use crate::runtime::workflow::WorkflowRecorder;

/// Why a store could not do what was asked. The message never holds a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's address cannot be used (a malformed URL).
    #[error("{0}")]
    Address(String),
    /// The store could not be reached or refused us.
    #[error("{0}")]
    Unavailable(String),
    /// The store holds data this orca cannot use (a newer schema, no schema).
    #[error("{0}")]
    Schema(String),
    /// No such run, or a run in use by another process.
    #[error("{0}")]
    Run(String),
    /// A run's journal cannot be read.
    #[error("{0}")]
    Journal(String),
}

/// One run as `orca runs` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run: String,
    pub started: String,
    /// `succeeded`, `failed`, `cancelled`, `running` (its coordinator holds it) or
    /// `interrupted`; `unreadable: why` for a damaged journal.
    pub status: String,
    pub workflow: String,
}

/// Takes a run's records: the engine's ([`WorkflowRecorder`]) and the command's own (a
/// `define` when a resume is forced, the `end`).
pub trait RunWriter: WorkflowRecorder {
    fn append(&mut self, body: Body) -> Result<(), String>;
    /// Everything appended is durable; the run is released for other processes.
    fn close(&mut self) -> Result<(), String>;
}

/// The durable state of workflow runs. The file store and PostgreSQL implement it.
pub trait RunStore {
    /// The store as the user named it, without a password.
    fn describe(&self) -> String;
    /// Starts a new run with this header; the run is held by this process until its writer
    /// is closed.
    fn create(&self, run: &str, header: Header) -> Result<Box<dyn RunWriter>, StoreError>;
    /// A run as recorded (for `status`, `log`, `replay`).
    fn read(&self, run: &str) -> Result<StoredRun, StoreError>;
    /// Holds a run to continue it (`resume`): its records so far and a writer after them.
    /// A run held by another process is refused (or waited for, with `wait`).
    fn reopen(&self, run: &str, wait: bool) -> Result<(StoredRun, Box<dyn RunWriter>), StoreError>;
    /// Every run, oldest first.
    fn list(&self) -> Result<Vec<RunSummary>, StoreError>;
    /// Where a run's logs go on this machine (`<run-dir>/logs`).
    fn run_dir(&self, run: &str) -> std::path::PathBuf;
}

/// A run's journal as read back: parsed, and as bytes (`orca log` and `orca replay` read
/// those like a file).
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub log: WorkflowLog,
    pub bytes: Vec<u8>,
}

/// The store named by `--store` or `ORCA_STORE`: a `postgresql://` (or `postgres://`) URL,
/// or nothing for the file store under `.orca/runs`.
pub fn open(url: Option<&str>) -> Result<Box<dyn RunStore>, StoreError> {
    match url {
        None => Ok(Box::new(file::FileStore::default())),
        Some(u) if is_postgres(u) => Ok(Box::new(postgres::PgStore::new(u)?)),
        Some(u) => Err(not_a_store(u)),
    }
}

/// The error for an address that names no store orca knows.
pub fn not_a_store(url: &str) -> StoreError {
    StoreError::Address(format!(
        "--store {}: not a store address (use postgresql://USER@HOST/DB, or postgresql:///DB?host=/socket/dir)",
        redact(url)
    ))
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgresql://") || url.starts_with("postgres://")
}

/// `url` with any password replaced by `***`: in the userinfo part
/// (`postgresql://user:secret@host`) and in a `password=` parameter.
///
/// ```
/// assert_eq!(
///     orca::store::redact("postgresql://me:secret@db/x?password=p&host=/run"),
///     "postgresql://me:***@db/x?password=***&host=/run"
/// );
/// ```
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => authority.to_string(),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgresql://a:b@h:5432/d"),
            "postgresql://a:***@h:5432/d"
        );
        assert_eq!(redact("postgresql://a@h/d"), "postgresql://a@h/d");
        assert_eq!(
            redact("postgres:///d?host=/tmp&password=x"),
            "postgres:///d?host=/tmp&password=***"
        );
        // An `@` in the password: the last one ends the user info.
        assert_eq!(redact("postgresql://u:p@ss@h/d"), "postgresql://u:***@h/d");
    }

    #[test]
    fn only_postgres_urls_are_stores() {
        assert!(open(Some("mysql://x")).is_err());
        assert!(is_postgres("postgres://x") && is_postgres("postgresql:///d?host=/s"));
    }
}
