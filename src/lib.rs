//! orca: hierarchical state machines with SCXML semantics, written in RON, and workflows
//! built on them.
//!
//! The crate is layered; each layer uses only the ones listed before it:
//!
//! - [`model`]: the file formats as serde types, with source positions for diagnostics.
//! - [`chart`]: a machine compiled into indexed tables, every name resolved, every expression
//!   compiled, and validated.
//! - [`interpreter`]: the SCXML algorithm over a chart; pure (no I/O, no clock).
//! - [`runtime`]: tokio: the clock, invoked child machines and processes, event routing.
//! - [`journal`]: the durable event journal: writing, reading, replaying and verifying runs.
//! - [`stepper`]: `orca step` sessions: stepping by hand, back and forward, why.
//! - [`store`]: where workflow runs are kept: the file journal, or PostgreSQL.
//! - [`inspect`]: the live inspector: a web page that follows a run.
//! - [`cli`]: the `orca` command line.
//!
//! Below them all, `hint`: a memory prefetch for the verifier's and the interpreter's
//! hottest loops.

pub mod chart;
pub mod cli;
mod hint;
pub mod inspect;
pub mod interpreter;
pub mod journal;
pub mod lifecycle;
pub mod model;
pub mod runtime;
pub mod stepper;
pub mod store;
pub mod verify;
