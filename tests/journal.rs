//! The journal (issue #4): replay of generated runs reproduces every configuration and the
//! pending timers; a journal cut at any byte reads back as a clean prefix; damaged bytes give a
//! clean error; the writer's durability policies.
//!
//! `PROPTEST_CASES` raises the case count (default 48).

mod common;

use common::machines::{EVENTS, build, gen_state};
use orca::chart::{CompileOptions, load_chart_str};
use orca::interpreter::{Event, Instance};
use orca::journal::replay::{apply, rebuild, runner_for, verify};
use orca::journal::{
    Body, Detail, End, Header, Journal, JournalError, JournalWriter, Record, Records, SyncPolicy,
};
use orca::model::load::to_ron;
use orca::runtime::{RunOptions, Runner, StepInput};
use proptest::prelude::*;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
enum In {
    Send(usize),
    Advance(u64),
}

fn inputs() -> impl Strategy<Value = Vec<In>> {
    prop::collection::vec(
        prop_oneof![3 => (0..EVENTS.len()).prop_map(In::Send), 2 => (0u64..3000).prop_map(In::Advance)],
        0..25,
    )
}

/// What a moment of a run looks like from outside: configuration, context, timers, status.
fn moment(r: &Runner) -> String {
    let root = r.root();
    format!(
        "{} {:?} {:?}",
        root.snapshot(),
        root.timers(),
        root.status()
    )
}

/// Runs `text` live with a recorder, returning the journal bytes and each moment.
fn record(text: &str, inputs: &[In]) -> Option<(Vec<u8>, Vec<String>)> {
    let (chart, _) = load_chart_str("gen.ron", text, &CompileOptions::default()).ok()?;
    let mut runner = Runner::new(
        Instance::new(Arc::new(chart)),
        Default::default(),
        RunOptions::default(),
    );
    let items = Arc::new(Mutex::new(Vec::new()));
    let sink = items.clone();
    runner.set_recorder(Box::new(move |r| sink.lock().unwrap().push(r.clone())));
    let mut moments = Vec::new();
    runner.apply(StepInput::Start {});
    moments.push(moment(&runner));
    let mut now = 0;
    for i in inputs {
        match i {
            In::Send(e) => runner.apply(StepInput::event(&Event::external(EVENTS[*e]))),
            In::Advance(ms) => {
                now += ms;
                runner.apply(StepInput::Advance { to: now })
            }
        };
        moments.push(moment(&runner));
    }
    let header = Header::for_machine(Path::new("gen.ron"), text, "virtual");
    let mut bytes = Record {
        seq: 0,
        wall: 0,
        body: Body::Header(Box::new(header)),
    }
    .to_line();
    for (i, item) in items.lock().unwrap().iter().enumerate() {
        let body = Body::from(item);
        bytes.extend(
            Record {
                seq: i as u64 + 1,
                wall: 0,
                body,
            }
            .to_line(),
        );
    }
    Some((bytes, moments))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    /// Replaying a journal rebuilds every moment of the run (configuration, context, pending
    /// delayed events, status), and verification finds no divergence.
    #[test]
    fn replay_reproduces_every_configuration_and_timer(
        roots in prop::collection::vec(gen_state(), 1..4),
        inputs in inputs(),
    ) {
        let text = to_ron(&build(&roots)).unwrap();
        if let Some((bytes, moments)) = record(&text, &inputs) {
            let journal = Journal::read_bytes(&bytes).unwrap();
            prop_assert!(journal.warnings.is_empty());
            let mut runner = runner_for(&journal.header, None).unwrap();
            let mut replayed = Vec::new();
            for rec in &journal.records {
                if apply(&mut runner, rec).unwrap().is_some() {
                    replayed.push(moment(&runner));
                }
            }
            prop_assert_eq!(&replayed, &moments, "{}", text);
            let mut again = runner_for(&journal.header, None).unwrap();
            prop_assert_eq!(verify(&journal, &mut again).unwrap(), Ok(moments.len()));
        }
    }

    /// Streaming agrees with reading whole: lines split across reads of any size, inputs-only
    /// decoding, and decoding on a second thread all give the same records, and rebuilding
    /// from the stream reaches the run's last moment. Also for a torn tail.
    #[test]
    fn streamed_reads_agree_with_whole_reads(
        roots in prop::collection::vec(gen_state(), 1..4),
        inputs in inputs(),
        chunk in 1usize..400,
        cut in 0usize..200,
    ) {
        let text = to_ron(&build(&roots)).unwrap();
        if let Some((mut bytes, moments)) = record(&text, &inputs) {
            let torn = cut > 0 && cut < 100 && bytes.len() > cut;
            if torn {
                bytes.truncate(bytes.len() - cut);
            }
            let whole = Journal::read_bytes(&bytes).unwrap();
            let reader = std::io::BufReader::with_capacity(chunk, &bytes[..]);
            let mut streamed = Records::new(reader, Detail::Full).unwrap();
            let full: Vec<Record> = streamed.by_ref().map(Result::unwrap).collect();
            prop_assert_eq!(&full, &whole.records);
            prop_assert_eq!(&streamed.warnings, &whole.warnings);
            prop_assert_eq!(streamed.valid_len(), whole.valid_len);

            let reader = std::io::BufReader::with_capacity(chunk, std::io::Cursor::new(bytes.clone()));
            let mut fetched = Records::new(reader, Detail::Inputs).unwrap().prefetch();
            let inputs_only: Vec<Record> = fetched.by_ref().map(Result::unwrap).collect();
            prop_assert_eq!(&fetched.warnings, &whole.warnings);
            prop_assert_eq!(inputs_only.len(), whole.records.len());
            for (a, b) in inputs_only.iter().zip(&whole.records) {
                match (&a.body, &b.body) {
                    (Body::Step(x), Body::Step(y)) => {
                        prop_assert_eq!(&x.input, &y.input);
                        prop_assert_eq!(x.t, y.t);
                    }
                    (x, y) => prop_assert_eq!(x, y),
                }
            }

            let mut runner = runner_for(&whole.header, None).unwrap();
            runner.set_recording(false);
            let (last, _) = rebuild(inputs_only.into_iter().map(Ok), &mut runner, None).unwrap();
            prop_assert_eq!(last, whole.records.last().map_or(0, |r| r.seq));
            if !torn {
                prop_assert_eq!(&moment(&runner), moments.last().unwrap());
            }
        }
    }

    /// Any single damaged bit is caught: an error naming the line, or (when it hits the last
    /// newline) a torn last record dropped with a warning. Never accepted silently.
    #[test]
    fn a_flipped_bit_is_never_accepted_silently(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = sample_journal();
        let whole = Journal::read_bytes(&bytes).unwrap();
        let mut bad = bytes.clone();
        let i = pos.index(bad.len());
        bad[i] ^= 1 << bit;
        match Journal::read_bytes(&bad) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(j) => {
                prop_assert!(!j.warnings.is_empty(), "flip at {} accepted", i);
                prop_assert!(j.records.len() < whole.records.len());
            }
        }
    }
}

/// A journal of a real run of a shipped machine, with timers.
fn sample_journal() -> Vec<u8> {
    use std::sync::OnceLock;
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let text = std::fs::read_to_string("machines/connection.ron").unwrap();
            let ins = [
                In::Send(0),
                In::Advance(100),
                In::Send(1),
                In::Advance(20_000),
                In::Send(2),
            ];
            record(&text, &ins).unwrap().0
        })
        .clone()
}

#[test]
fn a_journal_cut_at_any_byte_reads_as_a_clean_prefix() {
    let bytes = sample_journal();
    let whole = Journal::read_bytes(&bytes).unwrap();
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    for cut in 0..=bytes.len() {
        let part = &bytes[..cut];
        match Journal::read_bytes(part) {
            Ok(j) => {
                assert!(
                    cut >= header_end,
                    "cut {cut}: a header was read from a torn one"
                );
                let complete = part.iter().filter(|&&b| b == b'\n').count() - 1;
                assert_eq!(j.records.len(), complete, "cut {cut}");
                assert_eq!(j.records[..], whole.records[..complete], "cut {cut}");
                let torn = part.last() != Some(&b'\n');
                assert_eq!(!j.warnings.is_empty(), torn, "cut {cut}");
                let end = part.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                assert_eq!(j.valid_len, end as u64, "cut {cut}");
            }
            Err(JournalError::Empty) => assert_eq!(cut, 0),
            Err(JournalError::TornHeader) => assert!(cut > 0 && cut < header_end),
            Err(e) => panic!("cut {cut}: {e}"),
        }
    }
}

#[test]
fn a_damaged_record_in_the_middle_names_its_line_and_sequence_number() {
    let bytes = sample_journal();
    let text = String::from_utf8(bytes).unwrap();
    let mut damaged: Vec<String> = text.lines().map(String::from).collect();
    damaged[3] = damaged[3].replacen("\"t\":", "\"t\": ", 1);
    let damaged = damaged.join("\n") + "\n";
    let err = Journal::read_bytes(damaged.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 4 (record 3): checksum mismatch (the record was changed or damaged); nothing after it is trusted"
    );
    // A record taken out: the sequence numbers say so.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    let gap = lines.join("\n") + "\n";
    let err = Journal::read_bytes(gap.as_bytes()).unwrap_err().to_string();
    assert!(
        err.starts_with("line 3 (record 2): sequence number 3 where 2 was expected"),
        "{err}"
    );
}

#[test]
fn garbage_is_a_clean_error() {
    for bad in [
        &b"not a journal\n"[..],
        b"\xff\xfe\n",
        b"{}\n",
        b"{\"seq\":0,\"crc\":\"00000000\"}\n",
        b"\n\n\n",
    ] {
        assert!(Journal::read_bytes(bad).is_err());
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("orca-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn end(ending: &str) -> Body {
    Body::End(End {
        ending: ending.into(),
        message: None,
    })
}

#[test]
fn every_policy_writes_every_record_and_appending_continues_the_sequence() {
    for policy in [SyncPolicy::Always, SyncPolicy::Batch, SyncPolicy::Never] {
        let path = temp(&format!("{policy:?}.jsonl"));
        let header = Header::for_machine(Path::new("m.ron"), "Machine(states: {})", "virtual");
        let w = JournalWriter::create(&path, header, policy).unwrap();
        for i in 0..500u64 {
            let step = orca::runtime::Step {
                t: i,
                input: StepInput::Advance { to: i },
                out: vec![],
            };
            assert_eq!(w.append(Body::Step(step)).unwrap(), i + 1);
        }
        w.close().unwrap();
        assert_eq!(w.durable(), 501);
        let j = Journal::read_file(&path).unwrap();
        assert_eq!(j.records.len(), 500);
        // A torn tail is cut off when the journal is opened again, and the sequence goes on.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"seq\":501,\"wa").unwrap();
        drop(f);
        let (w, read) = JournalWriter::open_append(&path, policy).unwrap();
        assert_eq!(read.warnings.len(), 1);
        assert_eq!(w.append(end("done")).unwrap(), 501);
        w.close().unwrap();
        let j = Journal::read_file(&path).unwrap();
        assert!(j.warnings.is_empty());
        assert_eq!(j.records.len(), 501);
        assert_eq!(j.end().unwrap().ending, "done");
    }
}

#[test]
fn an_existing_journal_is_never_overwritten() {
    let path = temp("exists.jsonl");
    std::fs::write(&path, b"precious").unwrap();
    let header = Header::for_machine(Path::new("m.ron"), "", "virtual");
    assert!(JournalWriter::create(&path, header, SyncPolicy::Batch).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn writing_inline_and_from_other_threads_keeps_the_order() {
    let step = |i: u64| {
        Body::Step(orca::runtime::Step {
            t: i,
            input: StepInput::Advance { to: i },
            out: vec![],
        })
    };
    for (policy, inline) in [
        (SyncPolicy::Never, true),
        (SyncPolicy::Never, false),
        (SyncPolicy::Batch, false),
    ] {
        let path = temp(&format!("inline-{policy:?}-{inline}.jsonl"));
        let header = Header::for_machine(Path::new("m.ron"), "Machine(states: {})", "virtual");
        let w = JournalWriter::create(&path, header, policy).unwrap();
        w.set_inline(inline);
        // Appends from two threads, and writes from this one, race with the writer thread.
        let w2 = w.clone();
        let other = std::thread::spawn(move || {
            for _ in 0..300 {
                w2.append(end("x")).unwrap();
                if inline {
                    w2.write_now().unwrap();
                }
            }
        });
        for i in 0..300u64 {
            w.append(step(i)).unwrap();
            if i % 7 == 0 {
                w.write_now().unwrap();
            }
        }
        other.join().unwrap();
        w.write_now().unwrap();
        // Inline, what was written is on the file before close.
        let j = Journal::read_file(&path).unwrap();
        if inline {
            assert_eq!(j.records.len(), 600);
        }
        w.close().unwrap();
        let j = Journal::read_file(&path).unwrap();
        assert_eq!(j.records.len(), 600, "{policy:?} inline {inline}");
        // The reader checks that sequence numbers follow each other.
        assert_eq!(j.records.last().unwrap().seq, 600);
    }
}
