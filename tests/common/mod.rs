//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod machines;
pub mod pg;
pub mod scratch;
pub mod workflows;

/// Proptest's case count: `PROPTEST_CASES` when set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}
