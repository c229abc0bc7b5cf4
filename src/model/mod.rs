//! The file formats as data: RON syntax to serde types, with positions for diagnostics.
//!
//! This layer reads text and nothing else: no expressions are compiled and no names resolved
//! here (that is [`crate::chart`]).

pub mod diagnostic;
pub mod duration;
pub mod load;
pub mod load_workflow;
pub mod machine;
pub mod source;
mod tree_de;
pub mod workflow;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use duration::{DurationMs, DurationText};
pub use load::{LoadedMachine, load_machine_str};
pub use load_workflow::{LoadedWorkflow, load_workflow_file, load_workflow_str, parse_subtasks};
pub use machine::*;
pub use source::{SourceFile, Span};
