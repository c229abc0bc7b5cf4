//! Any text through the machine loader and compiler: a chart or diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orca::chart::{CompileOptions, load_chart_str};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load_chart_str("fuzz.ron", text, &CompileOptions::default());
    }
});
