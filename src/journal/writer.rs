//! The append-only journal writer, with group commit.
//!
//! Appending serializes a record into a shared buffer and returns its sequence number; one
//! background thread writes whatever has accumulated in a single `write` and then `fsync`s
//! it, so records that arrive while a sync is under way share the next one. A record counts
//! as written once [`JournalWriter::durable`] reaches its sequence number.

use super::{Body, Header, Journal, JournalError, wall_ms};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Bytes waiting for the writer thread beyond which appends wait.
const MAX_PENDING: usize = 64 << 20;

/// When records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SyncPolicy {
    /// Every append waits for its own fsync.
    Always,
    /// Appends return at once; a background thread fsyncs in batches (group commit).
    #[default]
    Batch,
    /// Written by the operating system when it likes; nothing is fsynced.
    Never,
}

/// A handle on a journal being written; clones share it.
#[derive(Clone)]
pub struct JournalWriter {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

struct Shared {
    policy: SyncPolicy,
    path: PathBuf,
    state: Mutex<State>,
    /// Signals the writer thread (new data, close) and waiters (progress).
    wake: Condvar,
    done: Condvar,
    /// Locked by whoever writes a batch (the writer thread, or [`JournalWriter::write_now`]).
    file: Mutex<File>,
    /// The owner writes with [`JournalWriter::write_now`]; appends do not wake the thread.
    inline: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The sequence number of the next record.
    next_seq: u64,
    /// Every record below this is on disk (fsynced unless the policy is `Never`).
    durable: u64,
    error: Option<String>,
    closing: bool,
}

impl JournalWriter {
    /// Creates a journal (failing if the file exists) and writes its header.
    pub fn create(path: &Path, header: Header, policy: SyncPolicy) -> Result<Self, JournalError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let w = JournalWriter::start(file, path, policy, 0);
        w.append(Body::Header(Box::new(header)))
            .map_err(|e| JournalError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        Ok(w)
    }

    /// Opens an existing journal to append to it: reads it, cuts a torn last record off
    /// (with a warning in the returned journal) and continues its sequence.
    pub fn open_append(path: &Path, policy: SyncPolicy) -> Result<(Self, Journal), JournalError> {
        let journal = Journal::read_file(path)?;
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new().write(true).open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() > journal.valid_len {
            tracing::warn!(journal = %path.display(), "cutting off a torn last record");
            file.set_len(journal.valid_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        let next = journal.records.len() as u64 + 1;
        Ok((JournalWriter::start(file, path, policy, next), journal))
    }

    fn start(file: File, path: &Path, policy: SyncPolicy, next_seq: u64) -> Self {
        let shared = Arc::new(Shared {
            policy,
            path: path.to_path_buf(),
            state: Mutex::new(State {
                next_seq,
                durable: next_seq,
                ..State::default()
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            file: Mutex::new(file),
            inline: std::sync::atomic::AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("orca-journal".into())
            .spawn(move || {
                block_signals();
                s.write_loop()
            })
            .expect("a thread for the journal");
        JournalWriter {
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        }
    }

    /// Appends a record and returns its sequence number. With [`SyncPolicy::Always`] it
    /// returns once the record is on disk.
    pub fn append(&self, body: Body) -> Result<u64, String> {
        self.append_encoded(|out, seq, wall| body.encode_into(out, seq, wall))
    }

    /// [`append`](Self::append) of a workflow event, from a borrowed record.
    pub fn append_op(&self, rec: &crate::runtime::workflow::OpRecord) -> Result<u64, String> {
        self.append_encoded(|out, seq, wall| super::encode_line(out, seq, wall, "op", rec))
    }

    /// Appends the line `encode` writes for the next sequence number and the wall clock.
    fn append_encoded(&self, encode: impl FnOnce(&mut Vec<u8>, u64, u64)) -> Result<u64, String> {
        let (seq, was_empty) = {
            let mut st = self.shared.state.lock().expect("journal lock");
            if let Some(e) = &st.error {
                return Err(e.clone());
            }
            if st.closing {
                return Err("the journal is closed".into());
            }
            // Back-pressure: a producer faster than the disk waits instead of filling memory
            // (an inline owner writes it out itself, below).
            let inline = self
                .shared
                .inline
                .load(std::sync::atomic::Ordering::Relaxed);
            while !inline && st.pending.len() > MAX_PENDING && st.error.is_none() {
                st = self.shared.done.wait(st).expect("journal lock");
            }
            let seq = st.next_seq;
            let was_empty = st.pending.is_empty();
            encode(&mut st.pending, seq, wall_ms());
            st.next_seq += 1;
            (seq, was_empty)
        };
        if self
            .shared
            .inline
            .load(std::sync::atomic::Ordering::Relaxed)
            && self
                .shared
                .state
                .lock()
                .expect("journal lock")
                .pending
                .len()
                > MAX_PENDING
        {
            self.shared.write_pending()?;
        }
        // The writer sleeps only on an empty buffer: when there was data already, it has
        // been woken for it and takes this record along. Waking it per record costs a
        // system call each.
        if was_empty
            && !self
                .shared
                .inline
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.shared.wake.notify_one();
        }
        if self.shared.policy == SyncPolicy::Always {
            self.wait_durable(seq)?;
        }
        Ok(seq)
    }

    /// Waits until record `seq` is on disk.
    pub fn wait_durable(&self, seq: u64) -> Result<(), String> {
        let mut st = self.shared.state.lock().expect("journal lock");
        while st.durable <= seq && st.error.is_none() {
            st = self.shared.done.wait(st).expect("journal lock");
        }
        match &st.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// How many records are on disk: every record with a lower sequence number.
    pub fn durable(&self) -> u64 {
        self.shared.state.lock().expect("journal lock").durable
    }

    /// Writes what is pending now, on this thread (synced unless the policy is `Never`),
    /// instead of handing it to the writer thread and waiting: with `Never`, a record is
    /// safe from a crash of this process once it is written, and this costs one `write`.
    pub fn write_now(&self) -> Result<(), String> {
        self.shared.write_pending()
    }

    /// From now on appends stay in memory until [`JournalWriter::write_now`] (or close)
    /// writes them on the caller's thread: for an owner that writes at known points anyway,
    /// waking the writer thread for each record would only cost system calls.
    pub fn set_inline(&self, on: bool) {
        self.shared
            .inline
            .store(on, std::sync::atomic::Ordering::Relaxed);
        if !on {
            self.shared.wake.notify_one();
        }
    }

    /// The sync policy this journal was opened with.
    pub fn policy(&self) -> SyncPolicy {
        self.shared.policy
    }

    /// Writes and syncs everything appended so far, then stops the writer thread.
    pub fn close(&self) -> Result<(), String> {
        {
            let mut st = self.shared.state.lock().expect("journal lock");
            st.closing = true;
        }
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.lock().expect("journal lock").take() {
            let _ = t.join();
        }
        match &self.shared.state.lock().expect("journal lock").error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Shared {
    fn write_loop(&self) {
        loop {
            {
                let mut st = self.state.lock().expect("journal lock");
                while st.pending.is_empty() && !st.closing {
                    st = self.wake.wait(st).expect("journal lock");
                }
                if st.pending.is_empty() {
                    return; // closing, nothing left
                }
            }
            if self.write_pending().is_err() {
                return;
            }
        }
    }

    /// Writes (and, unless the policy is `Never`, syncs) what is pending, on the calling
    /// thread. The file lock is taken before the buffer, so batches reach the file in the
    /// order they were taken, whichever thread writes them.
    fn write_pending(&self) -> Result<(), String> {
        let mut file = self.file.lock().expect("journal file lock");
        let (batch, last) = {
            let mut st = self.state.lock().expect("journal lock");
            if let Some(e) = &st.error {
                return Err(e.clone());
            }
            (std::mem::take(&mut st.pending), st.next_seq)
        };
        if batch.is_empty() {
            return Ok(()); // another thread wrote it
        }
        let result = file.write_all(&batch).and_then(|_| match self.policy {
            SyncPolicy::Never => Ok(()),
            _ => file.sync_data(),
        });
        let mut st = self.state.lock().expect("journal lock");
        let outcome = match result {
            Ok(()) => {
                st.durable = last;
                tracing::debug!(target: "orca::journal", seq = last - 1, bytes = batch.len(), "journal synced");
                Ok(())
            }
            Err(e) => {
                let msg = format!("{}: {e}", self.path.display());
                tracing::error!(error = %msg, "journal write failed");
                st.error = Some(msg.clone());
                Err(msg)
            }
        };
        drop(st);
        // Inline, nobody waits on the thread; a wake would only cost a system call.
        if !self.inline.load(std::sync::atomic::Ordering::Relaxed) {
            self.done.notify_all();
        }
        outcome
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        // The last handle: write out what is pending rather than lose it.
        if Arc::strong_count(&self.thread) == 1 {
            let _ = self.close();
        }
    }
}

/// For a writer thread: signals (SIGCHLD of every command a workflow runs, SIGINT) go to
/// the threads that handle them, not to this one.
pub(crate) fn block_signals() {
    // SAFETY: blocks signals for the calling thread only; the set is initialised first.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}
