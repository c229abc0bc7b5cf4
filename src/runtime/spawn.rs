//! Starting a command and waiting for it on the event loop, for what a workflow runs per
//! phase: `posix_spawn` with its environment passed as pointers, its stdout and stderr as
//! nonblocking pipes, and its exit heard through a pidfd.
//!
//! `tokio::process` does the same job with more work per command: std copies the whole
//! environment into a map and back into C strings whenever one variable is added (and every
//! phase adds its `ORCA_*` variables), and each pipe costs two `fcntl`s. For a workflow of
//! short commands that was a third of the runner's own time (see docs/performance.md).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use orca::runtime::spawn::{Child, Input, Spec};
//! let mut child = Child::spawn(&Spec {
//!     program: "sh",
//!     args: &["-c".into(), "echo hi".into()],
//!     env: &[("GREETING".into(), "hi".into())],
//!     cwd: None,
//!     stdin: Input::Null,
//! })?;
//! let status = child.wait().await?;
//! assert!(status.success());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// A document up to this size is put into the stdin pipe before the command starts: a pipe
/// holds at least one page, and the command's stdin then needs no writer at all.
const PREFILL: usize = 4096;

/// What a command reads on stdin.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// `/dev/null`.
    Null,
    /// These bytes, then end of file (written as the command reads when they are more than
    /// a pipe surely holds).
    Bytes(&'a [u8]),
}

/// What to start.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// Searched in `PATH` (the one in `env` if it sets one) unless it holds a `/`.
    pub program: &'a str,
    pub args: &'a [String],
    /// Added to (or replacing in) this process's environment.
    pub env: &'a [(String, String)],
    pub cwd: Option<&'a Path>,
    pub stdin: Input<'a>,
}

/// A started command, in its own process group. Dropping it before it was waited for kills
/// it (SIGKILL to the command, as `kill_on_drop` does), and it is reaped later.
pub struct Child {
    pid: libc::pid_t,
    exit: Exit,
    /// The reading ends of the command's stdout and stderr.
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

enum Exit {
    /// Readable once the process has exited.
    Pidfd(AsyncFd<OwnedFd>),
    /// Kernels before 5.3 have no pidfd: every SIGCHLD is a reason to look.
    Signal(tokio::signal::unix::Signal),
    Reaped(ExitStatus),
    /// It can no longer be waited for: reaped elsewhere.
    Lost,
}

/// Commands dropped before they were reaped, tried again at each spawn so that a long-lived
/// process does not gather zombies.
static ORPHANS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

impl Child {
    /// Starts `spec`. Must be called within a tokio runtime (the pipes and the pidfd register
    /// with its reactor).
    pub fn spawn(spec: &Spec) -> io::Result<Child> {
        reap_orphans();
        let argv_owned = std::iter::once(spec.program)
            .chain(spec.args.iter().map(String::as_str))
            .map(cstring)
            .collect::<io::Result<Vec<CString>>>()?;
        // A name given twice: the last value wins, as it does in std and in shells (a
        // second copy in `envp` would be seen first by `getenv`).
        let env_owned = spec
            .env
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| !spec.env[i + 1..].iter().any(|(later, _)| later == k))
            .map(|(_, (k, v))| {
                if k.is_empty() || k.contains('=') {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("invalid environment variable name `{k}`"),
                    ));
                }
                cstring(&format!("{k}={v}"))
            })
            .collect::<io::Result<Vec<CString>>>()?;
        let path_override = spec.env.iter().rev().find(|(k, _)| k == "PATH");
        let program = if spec.program.contains('/') {
            argv_owned[0].clone()
        } else {
            resolve(
                spec.program,
                path_override.map(|(_, p)| p.as_str()),
                spec.cwd,
            )?
        };
        let argv = null_terminated(argv_owned.iter().map(|c| c.as_ptr()));
        let envp =
            null_terminated(inherited_env(spec.env).chain(env_owned.iter().map(|c| c.as_ptr())));
        let cwd = spec.cwd.map(|d| cstring_os(d.as_os_str())).transpose()?;

        let (out_r, out_w) = pipe_pair()?;
        let (err_r, err_w) = pipe_pair()?;
        let mut stdin_writer = None;
        let stdin_r = match spec.stdin {
            Input::Null => None,
            Input::Bytes(doc) => {
                let (r, w) = pipe_pair()?;
                if doc.len() <= PREFILL {
                    // Written whole into an empty pipe: cannot block. The writing end then
                    // closes, so the command sees end of file after the document.
                    let mut w = std::fs::File::from(w);
                    io::Write::write_all(&mut w, doc)?;
                } else {
                    stdin_writer = Some((w, doc.to_vec()));
                }
                Some(r)
            }
        };

        let mut actions = FileActions::new()?;
        match &stdin_r {
            Some(r) => actions.dup2(r.as_raw_fd(), 0)?,
            None => actions.open(0, c"/dev/null", libc::O_RDONLY)?,
        }
        actions.dup2(out_w.as_raw_fd(), 1)?;
        actions.dup2(err_w.as_raw_fd(), 2)?;
        if let Some(dir) = &cwd {
            actions.chdir(dir)?;
        }
        let attr = Attr::new()?;
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call: argv and envp are NULL-terminated
        // arrays of pointers into CStrings (or `environ`) that outlive it.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                program.as_ptr(),
                &actions.0,
                &attr.0,
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        if rc != 0 {
            if rc == libc::ENOENT || rc == libc::EACCES {
                // Removed or changed since it was found: look again next time.
                forget(spec.program);
            }
            return Err(io::Error::from_raw_os_error(rc));
        }
        drop((out_w, err_w, stdin_r));
        let exit = match watch(pid) {
            Ok(exit) => exit,
            Err(e) => {
                // Nothing could wait for it: stop it rather than leave it running unseen.
                abandon(pid);
                return Err(e);
            }
        };
        let mut child = Child {
            pid,
            exit,
            stdout: None,
            stderr: None,
        };
        child.stdout = Some(receiver(out_r)?);
        child.stderr = Some(receiver(err_r)?);
        if let Some((w, doc)) = stdin_writer {
            set_nonblocking(&w)?;
            let mut w = pipe::Sender::from_owned_fd_unchecked(w)?;
            tokio::spawn(async move {
                // A command that does not read its stdin closes the pipe: not an error.
                let _ = tokio::io::AsyncWriteExt::write_all(&mut w, &doc).await;
            });
        }
        Ok(child)
    }

    /// The command's process id, which is also its process group's.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Waits for the command to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            let reaped = match &mut self.exit {
                Exit::Reaped(status) => return Ok(*status),
                Exit::Lost => {
                    return Err(io::Error::other(
                        "the command's exit status was taken by someone else",
                    ));
                }
                Exit::Pidfd(fd) => {
                    let mut ready = fd.readable().await?;
                    let reaped = try_reap(self.pid);
                    if matches!(reaped, Ok(None)) {
                        ready.clear_ready();
                    }
                    reaped
                }
                Exit::Signal(sigchld) => {
                    let reaped = try_reap(self.pid);
                    if matches!(reaped, Ok(None)) {
                        sigchld.recv().await;
                    }
                    reaped
                }
            };
            match reaped {
                Ok(Some(status)) => self.exit = Exit::Reaped(status),
                Ok(None) => {}
                Err(e) => {
                    // It can no longer be waited for (SIGCHLD ignored, or reaped elsewhere):
                    // never signal that pid again, it may be another process's by now.
                    if e.raw_os_error() == Some(libc::ECHILD) {
                        self.exit = Exit::Lost;
                    }
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !matches!(self.exit, Exit::Reaped(_) | Exit::Lost) {
            abandon(self.pid);
        }
    }
}

/// Kills a command nothing will wait for (as `kill_on_drop` does) and reaps it now or at a
/// later spawn.
fn abandon(pid: libc::pid_t) {
    // SAFETY: kill(2) touches no memory; the pid is ours and not yet reaped, so it cannot
    // have been reused.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    if !matches!(try_reap(pid), Ok(Some(_))) {
        ORPHANS.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }
}

fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
    if !orphans.is_empty() {
        orphans.retain(|&pid| matches!(try_reap(pid), Ok(None)));
    }
}

/// `Some(status)` when `pid` has exited (and is now reaped), `None` while it runs.
fn try_reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: wait4 writes only `status`; no rusage is asked for.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, std::ptr::null_mut()) };
        match rc {
            0 => return Ok(None),
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            -1 => return Err(io::Error::last_os_error()),
            _ => return Ok(Some(ExitStatus::from_raw(status))),
        }
    }
}

fn watch(pid: libc::pid_t) -> io::Result<Exit> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor (close-on-exec).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: the descriptor was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open, and the same descriptor,
        // until the AsyncFd is dropped.
        let registered =
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        return registered.map(Exit::Pidfd).map_err(io::Error::from);
    }
    Ok(Exit::Signal(tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::child(),
    )?))
}

/// This process's environment without the variables `overrides` sets, as pointers into
/// `environ` (no copy: the strings live as long as nobody changes the environment, which
/// Rust makes an `unsafe` promise of its callers).
fn inherited_env(overrides: &[(String, String)]) -> impl Iterator<Item = *const libc::c_char> {
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: `environ` is a NULL-terminated array of NUL-terminated strings.
    let mut at = unsafe { environ };
    std::iter::from_fn(move || {
        loop {
            if at.is_null() {
                return None;
            }
            // SAFETY: `at` points into the NULL-terminated array, before or at its end.
            let entry = unsafe { *at };
            if entry.is_null() {
                return None;
            }
            at = unsafe { at.add(1) };
            // SAFETY: each entry is a NUL-terminated string.
            let bytes = unsafe { CStr::from_ptr(entry) }.to_bytes();
            let key = bytes.split(|&b| b == b'=').next().unwrap_or(bytes);
            if !overrides.iter().any(|(k, _)| k.as_bytes() == key) {
                return Some(entry);
            }
        }
    })
}

/// Where `PATH` lookups found each program, with the `PATH` they searched. A lookup tries
/// every directory in turn, and letting exec do it (`posix_spawnp`) costs a failed `execve`
/// per directory before the right one, in every command: with nine directories on `PATH`
/// that was most of what a short command cost beyond make's. Like a shell's command hash,
/// a program found once is run from there until it is gone.
static RESOLVED: Mutex<Option<HashMap<String, (OsString, CString)>>> = Mutex::new(None);

/// The path `program` runs from: the first executable file named so in a directory of
/// `path` (this process's `PATH` when `None`, `/bin:/usr/bin` when there is none). A relative
/// directory (an empty one is `.`) is taken from `cwd`, where the command will run, and
/// what is found through one is not remembered: it depends on that directory.
fn resolve(program: &str, path: Option<&str>, cwd: Option<&Path>) -> io::Result<CString> {
    let path: OsString = match path {
        Some(p) => p.into(),
        None => std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into()),
    };
    let mut cache = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some((searched, found)) = cache.get(program)
        && *searched == path
    {
        return Ok(found.clone());
    }
    let mut relative_before = false;
    let mut denied = false;
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = Path::new(OsStr::from_bytes(if dir.is_empty() { b"." } else { dir }));
        let full = if dir.is_absolute() {
            dir.join(program)
        } else {
            relative_before = true;
            std::path::absolute(cwd.unwrap_or(Path::new(".")).join(dir).join(program))?
        };
        let Ok(meta) = std::fs::metadata(&full) else {
            continue;
        };
        let full = cstring_os(full.as_os_str())?;
        // SAFETY: access(2) reads the NUL-terminated path only.
        if meta.is_file() && unsafe { libc::access(full.as_ptr(), libc::X_OK) } == 0 {
            if !relative_before {
                cache.insert(program.to_string(), (path, full.clone()));
            }
            return Ok(full);
        }
        denied = true;
    }
    // As execvp says it: a file that is there but cannot be run is "permission denied".
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

fn forget(program: &str) {
    if let Some(cache) = RESOLVED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        cache.remove(program);
    }
}

fn cstring(s: &str) -> io::Result<CString> {
    cstring_os(OsStr::new(s))
}

fn cstring_os(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} holds a NUL byte"),
        )
    })
}

/// The `char *const[]` that exec takes (C's `const` is on the array, not the strings).
fn null_terminated(items: impl Iterator<Item = *const libc::c_char>) -> Vec<*mut libc::c_char> {
    let mut v: Vec<*mut libc::c_char> = items.map(<*const _>::cast_mut).collect();
    v.push(std::ptr::null_mut());
    v
}

/// A pipe, both ends close-on-exec (the command gets its end through dup2).
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills both descriptors on success; they are owned at once.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// One ioctl, where `fcntl` takes two (get the flags, set them).
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let mut on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &mut on) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn receiver(fd: OwnedFd) -> io::Result<pipe::Receiver> {
    set_nonblocking(&fd)?;
    pipe::Receiver::from_owned_fd_unchecked(fd)
}

struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<Self> {
        // SAFETY: init fills the zeroed structure; Drop destroys it.
        unsafe {
            let mut a = std::mem::zeroed();
            check(libc::posix_spawn_file_actions_init(&mut a))?;
            Ok(FileActions(a))
        }
    }
    fn dup2(&mut self, fd: libc::c_int, to: libc::c_int) -> io::Result<()> {
        // SAFETY: the structure was initialised in `new`.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, fd, to) })
    }
    fn open(&mut self, to: libc::c_int, path: &CStr, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: as above; glibc copies the path.
        check(unsafe {
            libc::posix_spawn_file_actions_addopen(&mut self.0, to, path.as_ptr(), flags, 0)
        })
    }
    fn chdir(&mut self, dir: &CStr) -> io::Result<()> {
        // SAFETY: as above; glibc copies the path.
        check(unsafe { libc::posix_spawn_file_actions_addchdir_np(&mut self.0, dir.as_ptr()) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.0);
        }
    }
}

/// The command's own process group (so it and its children can be signalled together), no
/// blocked signals, and every signal at its default disposition ([`reset_signals`]).
struct Attr(libc::posix_spawnattr_t);

/// The signals a command starts with at their default disposition: every one except those
/// this process ignored when it first started a command (ignored stays ignored across exec,
/// which `nohup` relies on), but SIGPIPE always, which Rust ignores for itself.
///
/// Naming them all is also quicker: for a signal not named, glibc's child asks for its
/// disposition and then sets it, two system calls per signal (about 120 in all) while the
/// parent waits for the exec; for a named one it only sets it.
fn reset_signals() -> &'static libc::sigset_t {
    static SET: std::sync::OnceLock<libc::sigset_t> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        // SAFETY: the set is initialised by sigemptyset before use; sigaction only reads
        // the current disposition into `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in 1..=libc::SIGRTMAX() {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                if old.sa_sigaction == libc::SIG_IGN && sig != libc::SIGPIPE {
                    continue;
                }
                // glibc refuses its own internal signals here; they are left to it.
                libc::sigaddset(&mut set, sig);
            }
            set
        }
    })
}

impl Attr {
    fn new() -> io::Result<Self> {
        // SAFETY: init fills the zeroed structure; the sigsets are filled before use.
        unsafe {
            let mut a = std::mem::zeroed();
            check(libc::posix_spawnattr_init(&mut a))?;
            let mut attr = Attr(a);
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::posix_spawnattr_setpgroup(&mut attr.0, 0))?;
            check(libc::posix_spawnattr_setsigmask(&mut attr.0, &none))?;
            check(libc::posix_spawnattr_setsigdefault(
                &mut attr.0,
                reset_signals(),
            ))?;
            check(libc::posix_spawnattr_setflags(
                &mut attr.0,
                (libc::POSIX_SPAWN_SETPGROUP
                    | libc::POSIX_SPAWN_SETSIGMASK
                    | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
            ))?;
            Ok(attr)
        }
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            libc::posix_spawnattr_destroy(&mut self.0);
        }
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Runs `sh -c line` and gives (exit code, stdout, stderr).
    fn sh(
        line: &str,
        env: &[(String, String)],
        cwd: Option<&Path>,
        input: Input,
    ) -> (i32, String, String) {
        rt().block_on(async {
            let args = ["-c".to_string(), line.to_string()];
            let mut child = Child::spawn(&Spec {
                program: "sh",
                args: &args,
                env,
                cwd,
                stdin: input,
            })
            .unwrap();
            let (mut out, mut err) = (String::new(), String::new());
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .await
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .unwrap();
            let status = child.wait().await.unwrap();
            (status.code().unwrap_or(-1), out, err)
        })
    }

    #[test]
    fn environment_is_inherited_with_the_added_variables_replacing() {
        let env = [("ORCA_SPAWN_TEST".to_string(), "x".to_string())];
        let (code, out, _) = sh(
            "printf '%s|%s' \"$ORCA_SPAWN_TEST\" \"${PATH:+set}\"",
            &env,
            None,
            Input::Null,
        );
        assert_eq!((code, out.as_str()), (0, "x|set"));
        // The environment the command was given, not the shell's view of it (a shell keeps
        // the last of two copies).
        let given = "tr '\\0' '\\n' < /proc/$$/environ | grep '^PATH=\\|^ORCA_TWICE='";
        let env = [
            ("PATH".to_string(), "/nowhere:/usr/bin:/bin".to_string()),
            ("ORCA_TWICE".to_string(), "first".to_string()),
            ("ORCA_TWICE".to_string(), "last".to_string()),
        ];
        let (_, out, _) = sh(given, &env, None, Input::Null);
        assert_eq!(
            out, "PATH=/nowhere:/usr/bin:/bin\nORCA_TWICE=last\n",
            "one copy of each, the replaced PATH, the last of a name given twice"
        );
    }

    #[test]
    fn stdin_small_and_large_cwd_and_exit_status() {
        let (code, out, _) = sh("cat", &[], None, Input::Bytes(b"{\"a\":1}"));
        assert_eq!((code, out.as_str()), (0, "{\"a\":1}"));
        let big = vec![b'y'; 3 * PREFILL + 7];
        let (_, out, _) = sh("wc -c", &[], None, Input::Bytes(&big));
        assert_eq!(out.trim(), (3 * PREFILL + 7).to_string());
        let (_, out, _) = sh("wc -c", &[], None, Input::Null);
        assert_eq!(out.trim(), "0", "no input is /dev/null");
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let (_, out, _) = sh("pwd -P", &[], Some(&dir), Input::Null);
        assert_eq!(out.trim(), dir.display().to_string());
        let (code, _, err) = sh("echo oops >&2; exit 3", &[], None, Input::Null);
        assert_eq!((code, err.as_str()), (3, "oops\n"));
    }

    #[test]
    fn own_process_group_and_sigpipe_at_its_default() {
        // Field 5 of /proc/PID/stat is the process group.
        let (_, out, _) = sh(
            "set -- $(cat /proc/$$/stat); [ \"$1\" = \"$5\" ] && echo own",
            &[],
            None,
            Input::Null,
        );
        assert_eq!(out.trim(), "own");
        // The test harness ignores SIGPIPE; `yes` would then report a broken pipe.
        let (code, out, err) = sh("yes | head -n 1", &[], None, Input::Null);
        assert_eq!((code, out.as_str(), err.as_str()), (0, "y\n", ""));
    }

    /// Runs `program` with `PATH` set to `path` (and `cwd`), giving its stdout or the error.
    fn run_found(program: &str, path: &str, cwd: Option<&Path>) -> io::Result<String> {
        let env = [("PATH".to_string(), path.to_string())];
        rt().block_on(async {
            let mut child = Child::spawn(&Spec {
                program,
                args: &[],
                env: &env,
                cwd,
                stdin: Input::Null,
            })?;
            let mut out = String::new();
            let mut stdout = child.stdout.take().unwrap();
            stdout.read_to_string(&mut out).await?;
            child.wait().await?;
            Ok(out)
        })
    }

    /// Writes an executable (or, with `mode` 0o644, not executable) script saying `says`.
    fn tool(dir: &Path, name: &str, says: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho {says}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn programs_are_found_in_path_and_looked_for_again_when_gone() {
        let base = std::env::temp_dir().join(format!("orca-spawn-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        let path = format!("{}:{}:/usr/bin:/bin", a.display(), b.display());
        let errno = |r: io::Result<String>| r.unwrap_err().raw_os_error();

        assert_eq!(errno(run_found("orca-t1", &path, None)), Some(libc::ENOENT));
        tool(&b, "orca-t1", "b", 0o755);
        assert_eq!(run_found("orca-t1", &path, None).unwrap(), "b\n");
        std::fs::remove_file(b.join("orca-t1")).unwrap();
        assert_eq!(errno(run_found("orca-t1", &path, None)), Some(libc::ENOENT));
        tool(&a, "orca-t1", "a", 0o755);
        assert_eq!(
            run_found("orca-t1", &path, None).unwrap(),
            "a\n",
            "found again"
        );

        // A file that cannot be run is passed over, and is "permission denied" when it is
        // all there is, as execvp says.
        tool(&a, "orca-t2", "not executable", 0o644);
        assert_eq!(errno(run_found("orca-t2", &path, None)), Some(libc::EACCES));
        tool(&b, "orca-t2", "b", 0o755);
        assert_eq!(run_found("orca-t2", &path, None).unwrap(), "b\n");

        // A relative directory on PATH is taken from where the command runs, each time.
        tool(&a.join("bin"), "orca-t3", "in a", 0o755);
        tool(&b.join("bin"), "orca-t3", "in b", 0o755);
        let relative = "bin:/usr/bin:/bin";
        assert_eq!(run_found("orca-t3", relative, Some(&a)).unwrap(), "in a\n");
        assert_eq!(run_found("orca-t3", relative, Some(&b)).unwrap(), "in b\n");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_dropped_child_is_killed_and_reaped() {
        let rt = rt();
        let pid = rt.block_on(async {
            let args = ["30".to_string()];
            let child = Child::spawn(&Spec {
                program: "sleep",
                args: &args,
                env: &[],
                cwd: None,
                stdin: Input::Null,
            })
            .unwrap();
            child.id() as libc::pid_t
        });
        // Killed at once; reaped by this wait or by the next spawn.
        let mut gone = false;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            sh("true", &[], None, Input::Null);
            // SAFETY: signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid, 0) } == -1 {
                gone = true;
                break;
            }
        }
        assert!(gone, "the dropped `sleep` was neither killed nor reaped");
    }
}
