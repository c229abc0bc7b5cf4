//! Running workflows in scratch directories with marker files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A fresh directory for one test, with an empty `m/` for marker files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orca-wf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("m")).unwrap();
    dir
}

/// Runs the orca binary in `dir`.
pub fn orca(dir: &Path, args: &[&str]) -> Output {
    orca_command(dir, args).output().expect("orca runs")
}

/// Starts the orca binary in `dir` in the background, its output piped.
pub fn spawn_orca(dir: &Path, args: &[&str]) -> Child {
    orca_command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orca starts")
}

fn orca_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orca"));
    cmd.args(args).current_dir(dir).env_remove("RUST_LOG");
    cmd
}
