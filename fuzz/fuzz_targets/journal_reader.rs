//! Any bytes through the journal readers: none may panic, and reading the whole input at once
//! and streaming it through a tiny buffer (every line straddling reads) must accept exactly
//! the same records, with the same warnings or the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orca::journal::{Detail, Journal, Records};
use std::io::BufReader;

fuzz_target!(|data: &[u8]| {
    let whole = Journal::read_bytes(data);
    let streamed = Records::new(BufReader::with_capacity(7, data), Detail::Full).map(|mut r| {
        let records: Result<Vec<_>, _> = r.by_ref().collect();
        (records, r.warnings)
    });
    match (whole, streamed) {
        (Ok(j), Ok((Ok(records), warnings))) => {
            assert_eq!(j.records, records);
            assert_eq!(j.warnings, warnings);
        }
        (Err(a), Err(b)) | (Err(a), Ok((Err(b), _))) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("the readers disagree: {a:?} / {b:?}"),
    }
    // The inputs-only reader decodes less; it must still never panic.
    if let Ok(r) = Records::new(data, Detail::Inputs) {
        r.for_each(drop);
    }
});
