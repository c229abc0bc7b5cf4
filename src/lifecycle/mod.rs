//! The operation lifecycle and the compiled workflow it runs over.
//!
//! Pure like the interpreter: no I/O, no clock. [`plan`] turns a loaded workflow into a tree
//! of operations with every name resolved and every policy made effective; [`machine`] is the
//! lifecycle each operation goes through, written with `statig`, which answers events with
//! [`machine::Command`]s that the runtime performs; [`graph`] draws a plan.

pub mod graph;
pub mod machine;
pub mod plan;
