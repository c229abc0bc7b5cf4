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
mod writer;

pub use writer::{JournalWriter, SyncPolicy};

use crate::runtime::{Define, Step};
use serde::{Deserialize, Serialize};
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
}

impl Header {
    /// A header for a machine run starting now.
    pub fn for_machine(file: &Path, source: &str, clock: &str) -> Header {
        let wall = wall_ms();
        Header {
            format: FORMAT,
            orca: env!("CARGO_PKG_VERSION").to_string(),
            kind: "machine".into(),
            file: file.display().to_string(),
            hash: sha256_hex(source.as_bytes()),
            source: source.to_string(),
            instance: format!("{wall:x}-{:x}", std::process::id()),
            started: rfc3339(wall),
            clock: clock.into(),
        }
    }
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
    End(End),
}

/// One record: its sequence number (the header is 0), the wall-clock time it was written
/// (ms since the Unix epoch) and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub wall: u64,
    pub body: Body,
}

/// The line as serde sees it: exactly one body field is present.
#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    wall: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<Box<Header>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    define: Option<Define>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<End>,
}

impl Record {
    /// The line for this record, checksum and newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = Line {
            seq: self.seq,
            wall: self.wall,
            header: None,
            define: None,
            step: None,
            end: None,
        };
        match &self.body {
            Body::Header(h) => line.header = Some(h.clone()),
            Body::Define(d) => line.define = Some(d.clone()),
            Body::Step(s) => line.step = Some(s.clone()),
            Body::End(e) => line.end = Some(e.clone()),
        }
        let mut out = serde_json::to_vec(&line).expect("records serialize");
        seal(&mut out);
        out
    }
}

/// Appends the checksum to a serialized JSON object: the CRC-32 of the object as it was,
/// written as a last field, then a newline.
fn seal(json: &mut Vec<u8>) {
    let crc = crc32fast::hash(json);
    json.pop(); // the closing brace
    json.extend_from_slice(format!(",\"crc\":\"{crc:08x}\"}}\n").as_bytes());
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
        let bytes = std::fs::read(path).map_err(|source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Journal::read_bytes(&bytes)
    }

    /// Reads a journal from memory. A last line without its newline is a torn write: it is
    /// dropped with a warning. Any complete line that fails its checks is an error.
    pub fn read_bytes(bytes: &[u8]) -> Result<Journal, JournalError> {
        let mut stream = Records::new(bytes, Detail::Full)?;
        let records = stream.by_ref().collect::<Result<Vec<_>, _>>()?;
        Ok(Journal {
            header: stream.header.clone(),
            records,
            warnings: stream.warnings,
            valid_len: stream.lines.valid_len as u64,
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

/// The records of a journal, checked and decoded one at a time, without holding them all.
pub struct Records<'a> {
    pub header: Header,
    lines: LineReader<'a>,
    seq: u64,
    detail: Detail,
    /// Warnings so far (a torn last record).
    pub warnings: Vec<String>,
    failed: bool,
}

impl<'a> Records<'a> {
    /// Reads and checks the header; the records follow from the iterator.
    pub fn new(bytes: &'a [u8], detail: Detail) -> Result<Self, JournalError> {
        if bytes.is_empty() {
            return Err(JournalError::Empty);
        }
        let mut lines = LineReader::new(bytes);
        let first = match lines.next_line() {
            Some(Ok(l)) => l,
            Some(Err(_)) | None => return Err(JournalError::TornHeader),
        };
        let header = match parse_line(first, 0, Detail::Full) {
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
        };
        if header.format != FORMAT {
            return Err(JournalError::Version {
                found: header.format,
            });
        }
        Ok(Records {
            header,
            lines,
            seq: 1,
            detail,
            warnings: Vec::new(),
            failed: false,
        })
    }

    /// The length of the valid prefix read so far.
    pub fn valid_len(&self) -> u64 {
        self.lines.valid_len as u64
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let seq = self.seq;
        match self.lines.next_line()? {
            Ok(l) => {
                let corrupt = |reason| JournalError::Corrupt {
                    line: self.lines.line_no,
                    seq,
                    reason,
                };
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
            Err(torn) => {
                self.warnings.push(format!(
                    "line {}: the last record is incomplete ({torn} bytes, cut off while it was written); it was dropped",
                    self.lines.line_no
                ));
                None
            }
        }
    }
}

/// Splits a journal into complete lines (without the newline); a last piece without a newline
/// comes out as `Err(its length)`.
pub struct LineReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The 1-based number of the line last returned.
    pub line_no: usize,
    /// The end of the last complete line.
    pub valid_len: usize,
}

impl<'a> LineReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        LineReader {
            bytes,
            pos: 0,
            line_no: 0,
            valid_len: 0,
        }
    }

    pub fn next_line(&mut self) -> Option<Result<&'a [u8], usize>> {
        let rest = &self.bytes[self.pos..];
        if rest.is_empty() {
            return None;
        }
        self.line_no += 1;
        match memchr::memchr(b'\n', rest) {
            Some(n) => {
                self.pos += n + 1;
                self.valid_len = self.pos;
                Some(Ok(&rest[..n]))
            }
            None => {
                self.pos = self.bytes.len();
                Some(Err(rest.len()))
            }
        }
    }
}

/// A line decoded for [`Detail::Inputs`]: unknown fields (a step's `out`) are skipped.
#[derive(Deserialize)]
struct InputsLine {
    seq: u64,
    wall: u64,
    #[serde(default)]
    header: Option<Box<Header>>,
    #[serde(default)]
    define: Option<Define>,
    #[serde(default)]
    step: Option<InputsStep>,
    #[serde(default)]
    end: Option<End>,
}

#[derive(Deserialize)]
struct InputsStep {
    t: u64,
    input: crate::runtime::StepInput,
}

/// Decodes the input of a step record as the writer lays it out
/// (`{"seq":N,"wall":W,"step":{"t":T,"input":{...},...`) without reading the outcomes;
/// `None` for anything else, which then takes the general path.
fn fast_step_inputs(line: &[u8]) -> Option<Record> {
    fn num(b: &[u8]) -> Option<(u64, &[u8])> {
        let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 19 {
            return None;
        }
        let v = std::str::from_utf8(&b[..n]).ok()?.parse().ok()?;
        Some((v, &b[n..]))
    }
    let (seq, rest) = num(line.strip_prefix(b"{\"seq\":")?)?;
    let (wall, rest) = num(rest.strip_prefix(b",\"wall\":")?)?;
    let (t, rest) = num(rest.strip_prefix(b",\"step\":{\"t\":")?)?;
    let rest = rest.strip_prefix(b",\"input\":")?;
    // One value from the front of the slice; what follows it is not read.
    let mut de = serde_json::Deserializer::from_slice(rest);
    let input = crate::runtime::StepInput::deserialize(&mut de).ok()?;
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

/// Checks one complete line (no newline) and decodes it.
pub fn parse_line(line: &[u8], expect_seq: u64, detail: Detail) -> Result<Record, String> {
    check_crc(line)?;
    if detail == Detail::Inputs
        && let Some(rec) = fast_step_inputs(line)
    {
        if rec.seq != expect_seq {
            return Err(format!(
                "sequence number {} where {expect_seq} was expected (a record is missing or repeated)",
                rec.seq
            ));
        }
        return Ok(rec);
    }
    let bad = |e: serde_json::Error| format!("not a record: {e}");
    let parsed: Line = match detail {
        Detail::Full => serde_json::from_slice(line).map_err(bad)?,
        Detail::Inputs => {
            let l: InputsLine = serde_json::from_slice(line).map_err(bad)?;
            Line {
                seq: l.seq,
                wall: l.wall,
                header: l.header,
                define: l.define,
                step: l.step.map(|s| Step {
                    t: s.t,
                    input: s.input,
                    out: Vec::new(),
                }),
                end: l.end,
            }
        }
    };
    if parsed.seq != expect_seq {
        return Err(format!(
            "sequence number {} where {expect_seq} was expected (a record is missing or repeated)",
            parsed.seq
        ));
    }
    let bodies = [
        parsed.header.is_some(),
        parsed.define.is_some(),
        parsed.step.is_some(),
        parsed.end.is_some(),
    ];
    if bodies.iter().filter(|&&b| b).count() != 1 {
        return Err("a record holds exactly one of header, define, step, end".into());
    }
    let body = if let Some(h) = parsed.header {
        Body::Header(h)
    } else if let Some(d) = parsed.define {
        Body::Define(d)
    } else if let Some(s) = parsed.step {
        Body::Step(s)
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
    let hex = std::str::from_utf8(&line[n - 10..n - 2]).map_err(|_| "a bad checksum field")?;
    let want = u32::from_str_radix(hex, 16).map_err(|_| "a bad checksum field".to_string())?;
    let mut h = crc32fast::Hasher::new();
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
    fn reading_inputs_only_keeps_the_input_and_drops_the_outcomes() {
        let input = crate::runtime::StepInput::event(&crate::interpreter::Event::external("GO"));
        let full = Record {
            seq: 5,
            wall: 9,
            body: Body::Step(Step {
                t: 40,
                input: input.clone(),
                out: Vec::new(),
            }),
        };
        let line = full.to_line();
        let body = &line[..line.len() - 1];
        let fast = parse_line(body, 5, Detail::Inputs).unwrap();
        assert_eq!(fast, full);
        assert!(parse_line(body, 6, Detail::Inputs).is_err());
        let mut bad = body.to_vec();
        bad[30] ^= 4;
        assert!(parse_line(&bad, 5, Detail::Inputs).is_err());
    }
}
