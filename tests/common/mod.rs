//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod machines;
pub mod workflows;
