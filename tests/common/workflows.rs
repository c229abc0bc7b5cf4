//! Running workflows in scratch directories with marker files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory for one test, with an empty `m/` for marker files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orca-wf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("m")).unwrap();
    dir
}

/// Runs the orca binary in `dir`.
pub fn orca(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("orca runs")
}
