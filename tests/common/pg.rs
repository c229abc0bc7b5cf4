//! A real PostgreSQL for the tests that need one.
//!
//! `ORCA_TEST_PG` names a server (a URL whose user may create databases; `.ci/run` starts
//! one and sets it). Without it, a throwaway server is started here with `initdb` and
//! `pg_ctl` in a temporary directory, on a Unix socket only, and stopped when the test
//! process exits. When neither is possible the test fails, saying why: it never passes by
//! skipping.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A server tests can create databases on.
pub struct Server {
    /// `postgresql://postgres@/postgres?host=/dir` or the URL given.
    pub url: String,
    /// The data directory, when this process started the server (it may restart it).
    pub data: Option<PathBuf>,
    /// The socket directory of a server started here.
    pub socket: Option<PathBuf>,
}

static SHARED: OnceLock<Server> = OnceLock::new();
static DBS: AtomicU32 = AtomicU32::new(0);

/// The server of this test process (started once).
pub fn server() -> &'static Server {
    SHARED.get_or_init(|| match std::env::var("ORCA_TEST_PG") {
        Ok(url) if !url.is_empty() => Server {
            url,
            data: None,
            socket: None,
        },
        _ => Server::start("shared"),
    })
}

/// Runs `cmd` as the `postgres` user when we are root (initdb and postgres refuse root).
fn as_owner(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs a real PostgreSQL: set ORCA_TEST_PG to a server URL, or put `{program}` \
         (PostgreSQL's server programs) on PATH so that the test can start one"
    );
}

impl Server {
    /// Starts a private server (a test that restarts the server owns one).
    pub fn start(tag: &str) -> Server {
        require("initdb");
        require("pg_ctl");
        let dir = std::env::temp_dir().join(format!("orca-pg-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = is_root();
        if root {
            let ok = Command::new("chown")
                .args(["postgres:", dir.to_str().unwrap()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot give {} to the postgres user", dir.display());
        }
        let data = dir.join("data");
        let out = as_owner("initdb")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ])
            .args(["--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = Server {
            url: format!("postgresql://postgres@/postgres?host={}", dir.display()),
            data: Some(data),
            socket: Some(dir.clone()),
        };
        s.pg_ctl("start");
        // Stopped when this process exits, however it exits.
        let me = std::process::id();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null; do sleep 1; done; {} -D {} -m immediate stop >/dev/null 2>&1; rm -rf {}",
                if root { "runuser -u postgres -- pg_ctl" } else { "pg_ctl" },
                s.data.as_ref().unwrap().display(),
                dir.display()
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        s
    }

    /// `pg_ctl start`, `stop` or `restart` of a server started here.
    pub fn pg_ctl(&self, what: &str) {
        let data = self.data.as_ref().expect("a server this test started");
        let socket = self.socket.as_ref().unwrap();
        let opts = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c max_connections=200",
            socket.display()
        );
        let out = as_owner("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-w", "-m", "fast"])
            .args([
                "-l",
                socket.join("log").to_str().unwrap(),
                "-o",
                &opts,
                what,
            ])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl {what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new, empty database; its URL.
    pub fn database(&self, name: &str) -> String {
        let db = format!(
            "t{}_{}_{}",
            std::process::id(),
            DBS.fetch_add(1, Ordering::Relaxed),
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        self.psql(&format!("CREATE DATABASE {db}"));
        with_database(&self.url, &db)
    }

    /// Runs SQL against the server's own database.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").unwrap() + 3;
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..path_start])
}

/// Runs SQL with psql; its output, unaligned and without headers. Fails the test on error.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs (PostgreSQL's client is needed for these tests)");
    assert!(
        out.status.success(),
        "psql `{sql}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The socket directory in a URL's `host=` parameter, if any.
pub fn socket_dir(url: &str) -> Option<&Path> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|p| p.strip_prefix("host="))
        .map(Path::new)
}
