//! `orca step` at a real terminal (a pseudo-terminal): Tab completes event names, Ctrl-P
//! recalls the previous line, history survives into the next session, Ctrl-C cancels a line
//! and Ctrl-D quits.

use rexpect::session::spawn_command;
use std::path::Path;
use std::process::Command;

fn stepper(history: &Path) -> Option<rexpect::session::PtySession> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orca"));
    cmd.args(["step"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("machines/order.ron"))
        .env("ORCA_HISTORY", history)
        .env("TERM", "xterm");
    let mut p = match spawn_command(cmd, Some(10_000)) {
        Ok(p) => p,
        Err(e) => {
            // A machine without pseudo-terminals cannot run this test at all.
            eprintln!("SKIPPED: no pseudo-terminal here ({e})");
            return None;
        }
    };
    p.exp_string("orca>").expect("a prompt");
    Some(p)
}

/// Types `typed`, presses Tab, then Enter.
fn type_tab_enter(p: &mut rexpect::session::PtySession, typed: &str) {
    p.send(typed).unwrap();
    p.send("\t").unwrap();
    p.flush().unwrap();
    p.send_line("").unwrap();
}

#[test]
fn tab_completes_and_history_is_recalled_and_kept() {
    let history = std::env::temp_dir().join(format!("orca-step-history-{}", std::process::id()));
    let _ = std::fs::remove_file(&history);

    let Some(mut p) = stepper(&history) else {
        return;
    };
    type_tab_enter(&mut p, "CHE");
    // (The pty reader sees bytes, so only ASCII is matched.)
    p.exp_string("orca>\u{1b}[0m CHECKOUT")
        .expect("CHE<Tab> completed to CHECKOUT");
    p.exp_string("step 1 at").expect("CHECKOUT was taken");
    p.exp_string("orca>").unwrap();
    p.send_line("back").unwrap();
    p.exp_string("step 0").unwrap();
    p.exp_string("orca>").unwrap();
    // Ctrl-P twice: `back`, then `CHECKOUT`.
    p.send_control('p').unwrap();
    p.send_control('p').unwrap();
    p.send_line("").unwrap();
    p.exp_string("step 1 at")
        .expect("history recalled CHECKOUT");
    p.exp_string("orca>").unwrap();
    // Ctrl-C drops the half-typed line; the session goes on.
    p.send("CANC").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("orca>").expect("a fresh prompt after Ctrl-C");
    p.send_line("tree").unwrap();
    p.exp_string("awaiting_payment").unwrap();
    p.exp_string("orca>").unwrap();
    // State paths complete after `tree`.
    type_tab_enter(&mut p, "tree shi");
    p.exp_string("orca>\u{1b}[0m tree paid.shipped")
        .expect("tree shi<Tab> completed to the state's path");
    p.exp_string("  paid.shipped")
        .expect("the subtree of paid.shipped");
    p.exp_string("orca>").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().expect("Ctrl-D quits");

    let kept = std::fs::read_to_string(&history).expect("history written");
    assert!(kept.contains("CHECKOUT") && kept.contains("tree"), "{kept}");
    assert!(
        !kept.contains("CANC\n"),
        "a cancelled line is not history: {kept}"
    );

    // The next session starts with that history.
    let mut p = stepper(&history).expect("a pty, as before");
    // Back over `tree paid.shipped` and `tree` to `CHECKOUT`.
    for _ in 0..3 {
        p.send_control('p').unwrap();
    }
    p.send_line("").unwrap();
    p.exp_string("step 1 at")
        .expect("the last session's CHECKOUT recalled");
    p.send_line("quit").unwrap();
    p.exp_eof().unwrap();
    let _ = std::fs::remove_file(&history);
}

#[test]
fn a_workflow_simulation_completes_operation_paths() {
    let dir = std::env::temp_dir().join(format!("orca-step-wf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wf = dir.join("w.ron");
    std::fs::write(
        &wf,
        r#"Workflow(id: "w", tasks: { "fetch-data": (run: Shell("false")), "other": (after: ["fetch-data"], run: Shell("false")) })"#,
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orca"));
    cmd.args(["step"])
        .arg(&wf)
        .env("ORCA_HISTORY", dir.join("history"))
        .env("TERM", "xterm");
    let mut p = match spawn_command(cmd, Some(10_000)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED: no pseudo-terminal here ({e})");
            return;
        }
    };
    p.exp_string("would run fetch-data").unwrap();
    p.exp_string("orca>").unwrap();
    type_tab_enter(&mut p, "ok fe");
    // (The pty reader sees bytes, so only ASCII is matched.)
    p.exp_string("orca>\u{1b}[0m ok fetch-data")
        .expect("ok fe<Tab> completed to the operation fetch-data");
    p.exp_string("fetch-data Succeeded")
        .expect("the answer was taken");
    p.exp_string("would run other").unwrap();
    p.send_line("quit").unwrap();
    p.exp_eof().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
