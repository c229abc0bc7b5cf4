//! The durable event journal: one JSON object a line (so `jq` works on it), each with a
//! sequence number and a CRC-32 so that a torn or corrupted record is detected.
//!
//! ```text
//! {"seq":0,"wall":1764000000000,"header":{"format":1,...},"crc":"1c291ca3"}
//! {"seq":1,"wall":1764000000001,"step":{"t":0,"input":{"start":{}},"out":[...]},"crc":"..."}
//! ```
//!
//! The header holds the definition as loaded (text and SHA-256), so a journal replays without
//! the original file. Then come [`Body::Define`] records (machine files that invokes loaded),
//! [`Body::Step`] records (one input of the run and what it did, see
//! [`crate::runtime::Step`]) and, when the run ended cleanly, one [`Body::End`].
//! docs/journal.md describes the format for users.

pub mod replay;
pub mod workflow;
mod writer;

pub(crate) use writer::block_signals;
pub use writer::{JournalWriter, SyncPolicy};

use crate::runtime::{Define, Step};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The format version this build writes and reads.
pub const FORMAT: u32 = 1;

/// The length of the `,"crc":"xxxxxxxx"}` suffix of every line.
const CRC_SUFFIX: usize = 18;

/// The first record of every journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    /// The orca version that wrote it.
    pub orca: String,
    /// `machine` (workflows come with the orchestration runtime).
    pub kind: String,
    /// The definition's file, as given on the command line.
    pub file: String,
    /// SHA-256 of `source`, hex.
    pub hash: String,
    /// The definition as loaded.
    pub source: String,
    /// This run's id.
    pub instance: String,
    /// Wall-clock start, RFC 3339 (UTC).
    pub started: String,
    /// `virtual` or `real`.
    pub clock: String,
    /// Whether the journal may hold `rewind` records (a stepper session that went back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rewinds: bool,
}

impl Header {
    /// A header for a machine run starting now.
    pub fn for_machine(file: &Path, source: &str, clock: &str) -> Header {
        // One reading of the clock, so the instance name and `started` agree.
        let wall = wall_ms();
        let instance = format!("{wall:x}-{:x}", std::process::id());
        Header::new("machine", file, source, &instance, clock, wall)
    }

    /// A header for a run of `kind` that started at `started_ms` (wall clock, Unix ms).
    pub(crate) fn new(
        kind: &str,
        file: &Path,
        source: &str,
        instance: &str,
        clock: &str,
        started_ms: u64,
    ) -> Header {
        Header {
            format: FORMAT,
            orca: env!("CARGO_PKG_VERSION").to_string(),
            kind: kind.into(),
            file: file.display().to_string(),
            hash: sha256_hex(source.as_bytes()),
            source: source.to_string(),
            instance: instance.to_string(),
            started: rfc3339(started_ms),
            clock: clock.into(),
            rewinds: false,
        }
    }
}

/// A stepper session went back: from here on, the state is as it was after record `to`, and
/// the steps after that record (up to this one) are abandoned. History is never rewritten;
/// the abandoned steps stay in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rewind {
    pub to: u64,
}

/// How a run ended, when it ended cleanly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// `done`, `idle`, `bounded`, `failed` or `interrupted`.
    pub ending: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a record holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Header(Box<Header>),
    Define(Define),
    Step(Step),
    Rewind(Rewind),
    End(End),
    /// A workflow journal's event: one operation heard it and went to a state.
    Op(crate::runtime::workflow::OpRecord),
    /// A resumed workflow run makes what did not succeed (and `from`) run again.
    Rerun(Rerun),
}

/// See [`Body::Rerun`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rerun {
    /// Operation paths rerun although they succeeded (`orca resume --from`).
    #[serde(default)]
    pub from: Vec<String>,
}

impl From<&crate::runtime::Recorded> for Body {
    fn from(item: &crate::runtime::Recorded) -> Body {
        match item {
            crate::runtime::Recorded::Define(d) => Body::Define(d.clone()),
            crate::runtime::Recorded::Step(s) => Body::Step(s.clone()),
        }
    }
}

/// One record: its sequence number (the header is 0), the wall-clock time it was written
/// (ms since the Unix epoch) and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub wall: u64,
    pub body: Body,
}

/// A line as read back: exactly one body field is present (lines are written by
/// [`encode_line`]). `S` is what a step decodes
/// to: all of it ([`Step`]), or its input only ([`InputsStep`], unknown fields skipped).
#[derive(Deserialize)]
struct Line<S = Step> {
    seq: u64,
    wall: u64,
    #[serde(default)]
    header: Option<Box<Header>>,
    #[serde(default)]
    define: Option<Define>,
    #[serde(default = "none")]
    step: Option<S>,
    #[serde(default)]
    rewind: Option<Rewind>,
    #[serde(default)]
    end: Option<End>,
    #[serde(default)]
    op: Option<crate::runtime::workflow::OpRecord>,
    #[serde(default)]
    rerun: Option<Rerun>,
}

fn none<S>() -> Option<S> {
    None
}

impl Record {
    /// The line for this record, checksum and newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        self.body.encode_into(&mut out, self.seq, self.wall);
        out
    }
}

impl Body {
    /// Appends the line of a record with this body to `out`.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>, seq: u64, wall: u64) {
        match self {
            Body::Header(h) => encode_line(out, seq, wall, "header", h),
            Body::Define(d) => encode_line(out, seq, wall, "define", d),
            Body::Step(s) => encode_line(out, seq, wall, "step", s),
            Body::Rewind(r) => encode_line(out, seq, wall, "rewind", r),
            Body::End(e) => encode_line(out, seq, wall, "end", e),
            Body::Op(o) => encode_line(out, seq, wall, "op", o),
            Body::Rerun(r) => encode_line(out, seq, wall, "rerun", r),
        }
    }
}

/// Appends to `out` the line of a record whose body is `key: body`, checksum and newline
/// included: the fields in the order a [`Line`] reads them, from borrowed parts.
pub(crate) fn encode_line<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    seq: u64,
    wall: u64,
    key: &str,
    body: &T,
) {
    use serde::ser::{SerializeMap, Serializer};
    let start = out.len();
    let mut ser = serde_json::Serializer::new(&mut *out);
    let written = ser.serialize_map(Some(3)).and_then(|mut map| {
        map.serialize_entry("seq", &seq)?;
        map.serialize_entry("wall", &wall)?;
        map.serialize_entry(key, body)?;
        map.end()
    });
    if let Err(e) = written {
        // Not a partial line in the journal's buffer: it would be written out on close.
        out.truncate(start);
        panic!("records serialize: {e}");
    }
    // The checksum of the object as it was, written as a last field, then a newline.
    let crc = crc32fast::hash(&out[start..]);
    out.pop(); // the closing brace
    use std::io::Write;
    let _ = writeln!(out, ",\"crc\":\"{crc:08x}\"}}");
}

/// Why a journal cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the journal is empty")]
    Empty,
    #[error("line 1: the header is incomplete (the journal was cut off while it was written)")]
    TornHeader,
    #[error("line 1: {0}")]
    BadHeader(String),
    #[error("journal format {found} is not supported (this orca reads format {FORMAT})")]
    Version { found: u32 },
    #[error("line {line}{}: {reason}; nothing after it is trusted", seq_text(*.seq))]
    Corrupt {
        line: usize,
        /// The sequence number the record should have had.
        seq: u64,
        reason: String,
    },
}

fn seq_text(seq: u64) -> String {
    format!(" (record {seq})")
}

/// A journal as read: its header, the records after it, and what was repaired.
#[derive(Debug, Clone)]
pub struct Journal {
    pub header: Header,
    /// Every record after the header, in order.
    pub records: Vec<Record>,
    /// Warnings, e.g. a torn last record that was dropped.
    pub warnings: Vec<String>,
    /// The length of the valid prefix in bytes (a torn tail starts here).
    pub valid_len: u64,
}

impl Journal {
    /// Reads a journal file.
    pub fn read_file(path: &Path) -> Result<Journal, JournalError> {
        Journal::collect(Records::open(path, Detail::Full)?)
    }

    /// Reads a journal from memory. A last line without its newline is a torn write: it is
    /// dropped with a warning. Any complete line that fails its checks is an error.
    pub fn read_bytes(bytes: &[u8]) -> Result<Journal, JournalError> {
        Journal::collect(Records::new(bytes, Detail::Full)?)
    }

    fn collect<R: BufRead>(mut stream: Records<R>) -> Result<Journal, JournalError> {
        let records = stream.by_ref().collect::<Result<Vec<_>, _>>()?;
        Ok(Journal {
            valid_len: stream.valid_len(),
            header: stream.header,
            records,
            warnings: stream.warnings,
        })
    }

    /// The step records, in order.
    pub fn steps(&self) -> impl Iterator<Item = (&Record, &Step)> {
        self.records.iter().filter_map(|r| match &r.body {
            Body::Step(s) => Some((r, s)),
            _ => None,
        })
    }

    /// How the run ended, if it ended cleanly.
    pub fn end(&self) -> Option<&End> {
        self.records.iter().rev().find_map(|r| match &r.body {
            Body::End(e) => Some(e),
            _ => None,
        })
    }
}

/// How much of each step record to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Everything.
    Full,
    /// The input only (the outcomes are checked by the checksum, not decoded): what a
    /// replay that rebuilds state needs, and much faster.
    Inputs,
}

/// The records of a journal, checked and decoded one at a time as they are read, so that a
/// journal of any size replays in constant memory.
///
/// ```
/// use orca::journal::{Detail, Records};
/// let journal = b"not a journal\n";
/// assert!(Records::new(&journal[..], Detail::Inputs).is_err());
/// ```
pub struct Records<R> {
    pub header: Header,
    lines: LineReader<R>,
    /// Where the records come from, for error messages (empty for memory).
    path: PathBuf,
    seq: u64,
    detail: Detail,
    /// Warnings so far (a torn last record).
    pub warnings: Vec<String>,
    failed: bool,
}

/// How much of a file is read at once: large enough that a read costs little per record, small
/// enough to stay in cache.
const READ_CHUNK: usize = 64 * 1024;

impl Records<BufReader<std::fs::File>> {
    /// Opens a journal file and checks its header.
    pub fn open(path: &Path, detail: Detail) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        Records::from(
            BufReader::with_capacity(READ_CHUNK, file),
            detail,
            path.to_path_buf(),
        )
    }
}

impl<R: BufRead> Records<R> {
    /// Reads and checks the header; the records follow from the iterator.
    pub fn new(input: R, detail: Detail) -> Result<Self, JournalError> {
        Records::from(input, detail, PathBuf::new())
    }

    /// [`Records::new`], naming `path` in errors.
    fn from(input: R, detail: Detail, path: PathBuf) -> Result<Self, JournalError> {
        let mut lines = LineReader::new(input);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let header = match lines.next_line().map_err(io)? {
            None => return Err(JournalError::Empty),
            Some(Piece::Torn(_)) => return Err(JournalError::TornHeader),
            Some(Piece::Complete(first)) => match parse_line(first, 0, Detail::Full) {
                Ok(Record {
                    body: Body::Header(h),
                    ..
                }) => *h,
                Ok(_) => {
                    return Err(JournalError::BadHeader(
                        "the first record is not a header".into(),
                    ));
                }
                Err(reason) => return Err(JournalError::BadHeader(reason)),
            },
        };
        if header.format != FORMAT {
            return Err(JournalError::Version {
                found: header.format,
            });
        }
        Ok(Records {
            header,
            lines,
            path,
            seq: 1,
            detail,
            warnings: Vec::new(),
            failed: false,
        })
    }

    /// The length of the valid prefix read so far.
    pub fn valid_len(&self) -> u64 {
        self.lines.valid_len
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Record, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let seq = self.seq;
        let piece = match self.lines.next_line() {
            Ok(p) => p?,
            Err(source) => {
                self.failed = true;
                return Some(Err(JournalError::Io {
                    path: self.path.clone(),
                    source,
                }));
            }
        };
        match piece {
            Piece::Complete(l) => {
                // One record per line, the header on line 1.
                let line = seq as usize + 1;
                let corrupt = |reason| JournalError::Corrupt { line, seq, reason };
                let rec = match parse_line(l, seq, self.detail) {
                    Ok(Record {
                        body: Body::Header(_),
                        ..
                    }) => Err(corrupt("a second header".into())),
                    Ok(r) => Ok(r),
                    Err(reason) => Err(corrupt(reason)),
                };
                self.failed = rec.is_err();
                self.seq += 1;
                Some(rec)
            }
            Piece::Torn(len) => {
                self.warnings.push(format!(
                    "line {}: the last record is incomplete ({len} bytes, cut off while it was written); it was dropped",
                    self.lines.line_no
                ));
                None
            }
        }
    }
}

impl<R: BufRead + Send + 'static> Records<R> {
    /// Reads, checks and decodes the records on a second thread, handing them over in
    /// batches: a replay then rebuilds state while the next records are being decoded.
    pub fn prefetch(self) -> Prefetched {
        // Batches amortise the hand-over; a few in flight keep both threads busy without
        // holding much of the journal in memory.
        const BATCH: usize = 512;
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let header = self.header.clone();
        let mut records = self;
        std::thread::Builder::new()
            .name("orca-journal-read".into())
            .spawn(move || {
                loop {
                    let mut batch = Vec::with_capacity(BATCH);
                    batch.extend(records.by_ref().take(BATCH));
                    let last = batch.len() < BATCH;
                    if tx.send(Fetched::Batch(batch)).is_err() {
                        return; // the reader stopped early
                    }
                    if last {
                        let _ = tx.send(Fetched::Done {
                            warnings: records.warnings,
                            valid_len: records.lines.valid_len,
                        });
                        return;
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::warn!("no thread to read the journal with: {e}"));
        Prefetched {
            header,
            rx,
            batch: Vec::new().into_iter(),
            warnings: Vec::new(),
            valid_len: 0,
        }
    }
}

enum Fetched {
    Batch(Vec<Result<Record, JournalError>>),
    Done {
        warnings: Vec<String>,
        valid_len: u64,
    },
}

/// The records of a journal decoded ahead on a second thread ([`Records::prefetch`]).
pub struct Prefetched {
    pub header: Header,
    rx: std::sync::mpsc::Receiver<Fetched>,
    batch: std::vec::IntoIter<Result<Record, JournalError>>,
    /// Warnings (a torn last record), known once every record was read.
    pub warnings: Vec<String>,
    /// The length of the valid prefix, known once every record was read.
    pub valid_len: u64,
}

impl Iterator for Prefetched {
    type Item = Result<Record, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(r);
            }
            match self.rx.recv().ok()? {
                Fetched::Batch(b) => self.batch = b.into_iter(),
                Fetched::Done {
                    warnings,
                    valid_len,
                } => {
                    self.warnings = warnings;
                    self.valid_len = valid_len;
                    return None;
                }
            }
        }
    }
}

/// A piece of a journal as [`LineReader`] splits it.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete line, without its newline.
    Complete(&'a [u8]),
    /// A last piece without a newline (a torn write), and its length.
    Torn(usize),
}

/// Splits a journal into lines as it reads it. A line is handed out straight from the
/// reader's buffer; only a line that straddles two reads is copied.
pub struct LineReader<R> {
    input: R,
    /// How much of the reader's buffer the last line took (consumed at the next call).
    used: usize,
    /// A line that straddles reads, put together.
    line: Vec<u8>,
    /// The 1-based number of the line last returned.
    pub line_no: usize,
    /// The end of the last complete line.
    pub valid_len: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(input: R) -> Self {
        LineReader {
            input,
            used: 0,
            line: Vec::new(),
            line_no: 0,
            valid_len: 0,
        }
    }

    /// The next line; `None` at the end of the input.
    pub fn next_line(&mut self) -> std::io::Result<Option<Piece<'_>>> {
        self.input.consume(std::mem::take(&mut self.used));
        self.line.clear();
        let mut fast = true;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                // The end: whatever was gathered has no newline.
                if self.line.is_empty() {
                    return Ok(None);
                }
                self.line_no += 1;
                return Ok(Some(Piece::Torn(self.line.len())));
            }
            match memchr::memchr(b'\n', buf) {
                Some(n) if fast => {
                    self.line_no += 1;
                    self.valid_len += n as u64 + 1;
                    self.used = n + 1;
                    // Borrowed again to tie the line to `self`, not to this loop.
                    let buf = self.input.fill_buf()?;
                    return Ok(Some(Piece::Complete(&buf[..n])));
                }
                Some(n) => {
                    self.line.extend_from_slice(&buf[..n]);
                    self.input.consume(n + 1);
                    self.line_no += 1;
                    self.valid_len += self.line.len() as u64 + 1;
                    return Ok(Some(Piece::Complete(&self.line)));
                }
                None => {
                    let len = buf.len();
                    self.line.extend_from_slice(buf);
                    self.input.consume(len);
                    fast = false;
                }
            }
        }
    }
}

/// A step decoded for [`Detail::Inputs`]: its `out` is skipped.
#[derive(Serialize, Deserialize)]
struct InputsStep {
    t: u64,
    input: crate::runtime::StepInput,
}

impl From<InputsStep> for Step {
    fn from(s: InputsStep) -> Step {
        Step {
            t: s.t,
            input: s.input,
            out: Vec::new(),
        }
    }
}

/// Decodes the input of a step record as the writer lays it out
/// (`{"seq":N,"wall":W,"step":{"t":T,"input":{...},...`) without reading the outcomes;
/// `None` for anything else, which then takes the general path.
fn fast_step_inputs(line: &[u8]) -> Option<Record> {
    fn num(b: &[u8]) -> Option<(u64, &[u8])> {
        let mut v = 0u64;
        let mut n = 0;
        while let Some(&d) = b.get(n)
            && d.is_ascii_digit()
        {
            v = v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            n += 1;
        }
        // 19 digits always fit in a u64; longer numbers take the general path.
        (n > 0 && n <= 19).then_some((v, &b[n..]))
    }
    let (seq, rest) = num(line.strip_prefix(b"{\"seq\":")?)?;
    let (wall, rest) = num(rest.strip_prefix(b",\"wall\":")?)?;
    let (t, rest) = num(rest.strip_prefix(b",\"step\":{\"t\":")?)?;
    let rest = rest.strip_prefix(b",\"input\":")?;
    let input = match plain_event(rest) {
        Some(input) => input,
        None => {
            // One value from the front of the slice; what follows it is not read.
            let mut de = serde_json::Deserializer::from_slice(rest);
            crate::runtime::StepInput::deserialize(&mut de).ok()?
        }
    };
    Some(Record {
        seq,
        wall,
        body: Body::Step(Step {
            t,
            input,
            out: Vec::new(),
        }),
    })
}

/// The commonest input, an event without data and with a name that needs no escapes
/// (`{"event":{"name":"GO"}}`), decoded without the general JSON parser; `None` for
/// anything else.
fn plain_event(b: &[u8]) -> Option<crate::runtime::StepInput> {
    let b = b.strip_prefix(b"{\"event\":{\"name\":\"")?;
    let end = memchr::memchr2(b'"', b'\\', b)?;
    if b[end] != b'"' || !b[end + 1..].starts_with(b"}}") || b[..end].iter().any(|&c| c < 0x20) {
        return None;
    }
    Some(crate::runtime::StepInput::Event {
        name: interned(&b[..end])?,
        data: serde_json::Value::Null,
    })
}

/// The event name for these bytes, shared with earlier records of this thread that had the
/// same name: a journal repeats a few names millions of times, and sharing them saves an
/// allocation and a free for every record. `None` if the bytes are not UTF-8.
fn interned(name: &[u8]) -> Option<std::sync::Arc<str>> {
    use std::cell::RefCell;
    use std::sync::Arc;
    // A handful of names, most recent first; a miss costs one allocation, as without it.
    const KEEP: usize = 32;
    thread_local! {
        static NAMES: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
    }
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(i) = names.iter().position(|n| n.as_bytes() == name) {
            let found = names[i].clone();
            if i > 0 {
                names[..=i].rotate_right(1);
            }
            return Some(found);
        }
        let fresh: Arc<str> = Arc::from(std::str::from_utf8(name).ok()?);
        names.truncate(KEEP - 1);
        names.insert(0, fresh.clone());
        Some(fresh)
    })
}

/// Checks one complete line (no newline) and decodes it.
pub fn parse_line(line: &[u8], expect_seq: u64, detail: Detail) -> Result<Record, String> {
    check_crc(line)?;
    let rec = match detail {
        Detail::Inputs => match fast_step_inputs(line) {
            Some(rec) => rec,
            None => decode::<InputsStep>(line)?,
        },
        Detail::Full => decode::<Step>(line)?,
    };
    if rec.seq != expect_seq {
        return Err(format!(
            "sequence number {} where {expect_seq} was expected (a record is missing or repeated)",
            rec.seq
        ));
    }
    Ok(rec)
}

/// Decodes a checked line, its step as `S`.
fn decode<S: serde::de::DeserializeOwned + Into<Step>>(line: &[u8]) -> Result<Record, String> {
    let parsed: Line<S> = serde_json::from_slice(line).map_err(|e| format!("not a record: {e}"))?;
    let bodies = [
        parsed.header.is_some(),
        parsed.define.is_some(),
        parsed.step.is_some(),
        parsed.rewind.is_some(),
        parsed.end.is_some(),
        parsed.op.is_some(),
        parsed.rerun.is_some(),
    ];
    if bodies.iter().filter(|&&b| b).count() != 1 {
        return Err(
            "a record holds exactly one of header, define, step, rewind, end, op, rerun".into(),
        );
    }
    let body = if let Some(h) = parsed.header {
        Body::Header(h)
    } else if let Some(d) = parsed.define {
        Body::Define(d)
    } else if let Some(s) = parsed.step {
        Body::Step(s.into())
    } else if let Some(r) = parsed.rewind {
        if r.to >= parsed.seq {
            return Err(format!(
                "a rewind to record {} from record {}",
                r.to, parsed.seq
            ));
        }
        Body::Rewind(r)
    } else if let Some(o) = parsed.op {
        Body::Op(o)
    } else if let Some(r) = parsed.rerun {
        Body::Rerun(r)
    } else {
        Body::End(parsed.end.expect("one body"))
    };
    Ok(Record {
        seq: parsed.seq,
        wall: parsed.wall,
        body,
    })
}

/// Verifies the `,"crc":"xxxxxxxx"}` suffix against the rest of the line.
fn check_crc(line: &[u8]) -> Result<(), String> {
    let n = line.len();
    if n < CRC_SUFFIX + 2
        || !line.ends_with(b"\"}")
        || &line[n - CRC_SUFFIX..n - 10] != b",\"crc\":\""
    {
        return Err("no checksum at the end of the line".into());
    }
    let want = line[n - 10..n - 2]
        .iter()
        .try_fold(0u32, |acc, &c| {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None, // the writer writes lowercase only
            };
            Some(acc << 4 | u32::from(d))
        })
        .ok_or("a bad checksum field")?;
    // A hasher made once: making one detects the CPU's features each time.
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let mut h = FRESH.get_or_init(crc32fast::Hasher::new).clone();
    h.update(&line[..n - CRC_SUFFIX]);
    h.update(b"}");
    if h.finalize() != want {
        return Err("checksum mismatch (the record was changed or damaged)".into());
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// SHA-256, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `2026-11-24T22:16:47.123Z` for milliseconds since the epoch (UTC).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_header_names_its_instance_by_its_start() {
        let h = Header::for_machine(Path::new("m.ron"), "Machine()", "real");
        let (ms, _) = h.instance.split_once('-').unwrap();
        assert_eq!(rfc3339(u64::from_str_radix(ms, 16).unwrap()), h.started);
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_990_607_123), "2026-11-29T22:16:47.123Z");
    }

    #[test]
    fn a_sealed_line_checks_and_a_changed_one_does_not() {
        let rec = Record {
            seq: 3,
            wall: 7,
            body: Body::End(End {
                ending: "done".into(),
                message: None,
            }),
        };
        let line = rec.to_line();
        assert!(line.ends_with(b"\"}\n"));
        let body = &line[..line.len() - 1];
        assert_eq!(parse_line(body, 3, Detail::Full).unwrap(), rec);
        assert!(
            parse_line(body, 4, Detail::Full)
                .unwrap_err()
                .contains("sequence number 3")
        );
        let mut bad = body.to_vec();
        bad[10] ^= 1;
        assert!(parse_line(&bad, 3, Detail::Full).is_err());
    }

    #[test]
    fn a_rewind_must_point_back() {
        let line = |to| {
            let l = Record {
                seq: 4,
                wall: 0,
                body: Body::Rewind(Rewind { to }),
            }
            .to_line();
            l[..l.len() - 1].to_vec()
        };
        assert!(parse_line(&line(2), 4, Detail::Full).is_ok());
        assert!(parse_line(&line(2), 4, Detail::Inputs).is_ok());
        let err = parse_line(&line(4), 4, Detail::Full).unwrap_err();
        assert!(err.contains("a rewind to record 4 from record 4"), "{err}");
    }

    /// A step record with no outcomes, and its line without the newline.
    fn step_record(
        seq: u64,
        wall: u64,
        t: u64,
        input: crate::runtime::StepInput,
    ) -> (Record, Vec<u8>) {
        let rec = Record {
            seq,
            wall,
            body: Body::Step(Step {
                t,
                input,
                out: Vec::new(),
            }),
        };
        let mut line = rec.to_line();
        line.pop();
        (rec, line)
    }

    #[test]
    fn reading_inputs_only_keeps_the_input_and_drops_the_outcomes() {
        let input = crate::runtime::StepInput::event(&crate::interpreter::Event::external("GO"));
        let (full, line) = step_record(5, 9, 40, input);
        let body = &line[..];
        let fast = parse_line(body, 5, Detail::Inputs).unwrap();
        assert_eq!(fast, full);
        assert!(parse_line(body, 6, Detail::Inputs).is_err());
        let mut bad = body.to_vec();
        bad[30] ^= 4;
        assert!(parse_line(&bad, 5, Detail::Inputs).is_err());
    }

    #[test]
    fn the_plain_event_shortcut_agrees_with_the_json_parser() {
        use crate::runtime::StepInput;
        let names = [
            "GO",
            "",
            "a\"b",
            "x\\y",
            "tab\t",
            "é.ü",
            "done.invoke.x",
            "}}",
        ];
        let datas = [serde_json::Value::Null, serde_json::json!({"n": 1})];
        for name in names {
            for data in &datas {
                let input = StepInput::Event {
                    name: name.into(),
                    data: data.clone(),
                };
                let (_, line) = step_record(1, 0, 0, input.clone());
                let got = parse_line(&line, 1, Detail::Inputs).unwrap();
                match got.body {
                    Body::Step(s) => assert_eq!(s.input, input, "{name:?}"),
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}
