//! Running workflows in scratch directories with marker files.

use super::scratch::ScratchDir;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A fresh directory for one test, with an empty `m/` for marker files; removed when the
/// test is done with it.
pub fn scratch(name: &str) -> ScratchDir {
    let dir = ScratchDir::new("orca-wf", name);
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
