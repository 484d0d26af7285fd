//! Support for plex-pg's integration tests: where the built artifacts are,
//! the PostgreSQL server the tests run against, and fresh names so tests
//! sharing one server never see each other's tables.
//!
//! The server: when `PLEX_PG_TEST_SOCKET_DIR` and `PLEX_PG_TEST_PORT` are set
//! (the README's test command starts one cluster for the whole run and sets
//! them), tests use it; otherwise each test binary starts its own throwaway
//! cluster on first use and stops it when the binary exits.
//!
//! The artifacts: tests run the release build (`cargo build --release
//! --workspace` first, as the test command does) because that is what ships.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

pub mod fuzz;

pub use plex_pg_launcher::cluster::{self, Cluster};

/// The role, password and database every test server has.
pub const PG_USER: &str = Cluster::USER;
pub const PG_PASSWORD: &str = Cluster::PASSWORD;
pub const PG_DATABASE: &str = Cluster::DATABASE;

/// Coordinates of a running test server.
#[derive(Clone, Debug)]
pub struct Pg {
    pub socket_dir: PathBuf,
    pub port: u16,
}

impl Pg {
    /// `PLEX_PG_*` variables pointing the shim at this server over its socket,
    /// with `schema` as the library's schema.
    pub fn env(&self, schema: &str) -> Vec<(String, String)> {
        vec![
            ("PLEX_PG_HOST".into(), self.socket_dir.display().to_string()),
            ("PLEX_PG_PORT".into(), self.port.to_string()),
            ("PLEX_PG_DATABASE".into(), PG_DATABASE.into()),
            ("PLEX_PG_USER".into(), PG_USER.into()),
            ("PLEX_PG_PASSWORD".into(), PG_PASSWORD.into()),
            ("PLEX_PG_SCHEMA".into(), schema.into()),
            // No file from the machine may leak into a test.
            ("PLEX_PG_CONFIG".into(), "/dev/null".into()),
        ]
    }

    /// Run SQL as the test role with psql; stdout, unaligned, `|`-separated.
    pub fn psql(&self, sql: &str) -> String {
        let bin = cluster::find_pg_bin().expect("psql");
        cluster::psql(&bin, &self.socket_dir, self.port, PG_USER, PG_DATABASE, sql)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Pg::psql`], but an error is returned rather than a panic.
    pub fn try_psql(&self, sql: &str) -> std::io::Result<String> {
        let bin = cluster::find_pg_bin()?;
        cluster::psql(&bin, &self.socket_dir, self.port, PG_USER, PG_DATABASE, sql)
    }
}

static SHARED: OnceLock<Pg> = OnceLock::new();
static OWNED: Mutex<Option<Cluster>> = Mutex::new(None);

extern "C" fn stop_owned_cluster() {
    if let Ok(mut guard) = OWNED.lock() {
        drop(guard.take());
    }
}

/// The test server: the one named by the environment, or one started for
/// this test binary (stopped when it exits).
pub fn pg() -> &'static Pg {
    SHARED.get_or_init(|| {
        if let (Some(dir), Some(port)) = (
            std::env::var_os("PLEX_PG_TEST_SOCKET_DIR"),
            std::env::var("PLEX_PG_TEST_PORT").ok(),
        ) {
            return Pg {
                socket_dir: dir.into(),
                port: port.parse().expect("PLEX_PG_TEST_PORT"),
            };
        }
        let cluster =
            Cluster::start().unwrap_or_else(|e| panic!("cannot start a test PostgreSQL: {e}"));
        let pg = Pg {
            socket_dir: cluster.socket_dir().to_path_buf(),
            port: cluster.port(),
        };
        *OWNED.lock().unwrap() = Some(cluster);
        // SAFETY: registering a plain extern "C" fn with atexit.
        unsafe { libc::atexit(stop_owned_cluster) };
        pg
    })
}

/// A name no other test in this run uses: `<prefix>_<pid>_<n>`, lowercase,
/// valid as a PostgreSQL schema name.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}_{}_{}",
        prefix,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The release build's output directory (`CARGO_TARGET_DIR` honoured).
pub fn release_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        workspace_root().join(target)
    };
    target.join("release")
}

/// A file of the release build; panics with what to run when it is missing.
pub fn artifact(name: &str) -> PathBuf {
    let path = release_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

/// The shim, `libplex_pg_shim.so`: the release build's, or the one
/// `PLEX_PG_TEST_SHIM` names (`tests/run.sh` runs the fork tests over the
/// fork-audit build that way).
pub fn shim() -> PathBuf {
    match std::env::var_os("PLEX_PG_TEST_SHIM") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "PLEX_PG_TEST_SHIM names {}, which is missing",
                path.display()
            );
            path
        }
        None => artifact("libplex_pg_shim.so"),
    }
}

/// Plex's real SQL: `tests/fixtures/plex/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/plex").join(name)
}

/// A fresh temporary directory, removed when the value is dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let base = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/tmp".into());
        let dir = base.join(unique_name(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// Plex's library database file name in this directory, as the
    /// clients open it (routed to PostgreSQL by the shim's default pattern).
    pub fn library_db(&self) -> String {
        self.0
            .join("com.plexapp.plugins.library.db")
            .display()
            .to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a bounded run of a command gave.
#[derive(Debug)]
pub struct Run {
    /// None when the command was killed at the timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with everything the command printed unless it exited 0.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.code == Some(0),
            "command failed (code {:?}, timed out: {}):\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.timed_out,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run `cmd` to completion, killing it (and its process group) after
/// `timeout`. Output is collected by threads, so a chatty command cannot
/// block on a full pipe.
pub fn run(cmd: &mut std::process::Command, timeout: std::time::Duration) -> Run {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() >= deadline {
            timed_out = true;
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Run {
        code: status.and_then(|s| s.code()),
        timed_out,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Run the differential suite's runner, `tests/sql/run_case.py`, on the
/// case files `files`: on real SQLite (`shimmed` false, database
/// `reference.db` in `dir`) or through the shim (`LD_PRELOAD`, a file named
/// like Plex's library in `dir`, so PostgreSQL's schema `schema`). The run
/// as it went; each line of its output is one statement's outcome as JSON.
/// Shared by the differential suite (`tests/tests/translate_cases.rs`) and
/// the fuzzer (`fuzz::compare`).
pub fn run_case_files(
    dir: &TempDir,
    files: &[PathBuf],
    shimmed: bool,
    schema: &str,
    timeout: std::time::Duration,
) -> Run {
    let db = if shimmed {
        "com.plexapp.plugins.library.db"
    } else {
        "reference.db"
    };
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(workspace_root().join("tests/sql/run_case.py"))
        .arg(dir.path().join(db))
        .args(files)
        .env("TZ", "UTC");
    if shimmed {
        cmd.envs(pg().env(schema)).env("LD_PRELOAD", shim());
    }
    run(&mut cmd, timeout)
}

/// A Python helper script of the tests: `tests/python/<name>`.
pub fn python_script(name: &str) -> PathBuf {
    workspace_root().join("tests/python").join(name)
}

/// `python3 <script> <args>` with the shim preloaded and pointed at the
/// test server, library schema `schema`.
pub fn python_with_shim(script: &str, schema: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(python_script(script))
        .args(args)
        .envs(pg().env(schema))
        .env("LD_PRELOAD", shim());
    cmd
}

/// `plex-sim library <args>` (the generator of test libraries and what the
/// tests do with them, `docs/plex-sim.md`), on the real SQLite.
pub fn plex_sim_library(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(artifact("plex-sim"));
    cmd.arg("library").args(args);
    cmd
}

/// `plex-sim library <args>` with the shim preloaded and pointed at the
/// test server, library schema `schema`.
pub fn plex_sim_library_with_shim(schema: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = plex_sim_library(args);
    cmd.envs(pg().env(schema)).env("LD_PRELOAD", shim());
    cmd
}

/// A fresh schema with the given tables (PostgreSQL DDL), made with psql.
pub fn schema_with(prefix: &str, ddl: &str) -> String {
    let schema = unique_name(prefix);
    pg().psql(&format!(
        "CREATE SCHEMA {schema}; SET search_path = {schema}; {ddl}"
    ));
    schema
}

/// Stands in for the launcher's socket: collects the shim's reports.
pub struct ReportSink {
    pub path: PathBuf,
    _dir: TempDir,
    messages: std::sync::Arc<Mutex<Vec<plex_pg_config::report::Message>>>,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ReportSink {
    pub fn new() -> ReportSink {
        let dir = TempDir::new("reports");
        let path = dir.path().join("supervisor.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind report socket");
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(5)))
            .unwrap();
        let messages = std::sync::Arc::new(Mutex::new(Vec::new()));
        let paused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, stop) = (messages.clone(), paused.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; plex_pg_config::report::MAX_DATAGRAM];
            loop {
                if stop.load(Ordering::Acquire) {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                }
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        if let Ok(m) = plex_pg_config::report::decode(&buf[..n]) {
                            sink.lock().unwrap().push(m);
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });
        ReportSink {
            path,
            _dir: dir,
            messages,
            paused,
        }
    }

    /// Stop (or resume) reading, as a launcher busy elsewhere would:
    /// datagrams queue up meanwhile.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Every report received so far.
    pub fn messages(&self) -> Vec<plex_pg_config::report::Message> {
        self.messages.lock().unwrap().clone()
    }
}

impl Default for ReportSink {
    fn default() -> Self {
        Self::new()
    }
}

/// Open Plex's library database with Python's sqlite3 and the shim
/// preloaded, under `env`, and run `statements` (`attempt.py`): the
/// client's JSON answer (opened, rows, or the error's class and message),
/// its standard error, and how long it took.
pub fn attempt(
    env: &[(String, String)],
    statements: &[&str],
) -> (serde_json::Value, String, std::time::Duration) {
    let dir = TempDir::new("attempt");
    let db = dir.library_db();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(python_script("attempt.py"))
        .arg(&db)
        .args(statements)
        .envs(env.iter().cloned())
        .env("LD_PRELOAD", shim());
    let started = std::time::Instant::now();
    let out = run(&mut cmd, std::time::Duration::from_secs(90));
    out.assert_ok();
    let v =
        serde_json::from_str(out.stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
            panic!(
                "attempt.py's answer is not JSON ({e}): {}\n{}",
                out.stdout, out.stderr
            )
        });
    (v, out.stderr, started.elapsed())
}

/// A PgBouncer (Debian's `pgbouncer`) in front of a test server: its own
/// configuration in a temporary directory, listening on a free loopback
/// port, passing every database to the server's Unix socket; clients log
/// in as [`PG_USER`] with [`PG_PASSWORD`] (SCRAM). Run as the `postgres`
/// user when we are root (PgBouncer refuses root); stopped when dropped.
pub struct PgBouncer {
    child: std::process::Child,
    port: u16,
    dir: TempDir,
}

impl PgBouncer {
    /// Start one with `pool_mode` (`session`, `transaction` or
    /// `statement`) in front of the server at `socket_dir`/`port`; waits
    /// until it accepts connections.
    pub fn start(socket_dir: &Path, server_port: u16, pool_mode: &str) -> PgBouncer {
        use std::os::unix::process::CommandExt;
        let dir = TempDir::new("pgbouncer");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{PG_USER}\" \"{PG_PASSWORD}\"\n"),
        )
        .unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={} port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {}\npool_mode = {pool_mode}\nmax_client_conn = 1000\ndefault_pool_size = 100\nlogfile = {}\n",
                socket_dir.display(),
                dir.path().join("userlist.txt").display(),
                dir.path().join("pgbouncer.log").display(),
            ),
        )
        .unwrap();
        let mut cmd = std::process::Command::new("pgbouncer");
        cmd.arg(&ini)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = postgres_ids();
            for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
                std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).unwrap();
            }
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start pgbouncer ({e}): install Debian's pgbouncer (packaging/install-deps.sh does)")
        });
        let mut bouncer = PgBouncer { child, port, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!("pgbouncer exited ({status}): {}", bouncer.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer does not listen: {}",
                bouncer.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bouncer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// `PLEX_PG_*` variables pointing the shim (or the launcher) at this
    /// PgBouncer over TCP, library schema `schema`.
    pub fn env(&self, schema: &str) -> Vec<(String, String)> {
        vec![
            ("PLEX_PG_HOST".into(), "127.0.0.1".into()),
            ("PLEX_PG_PORT".into(), self.port.to_string()),
            ("PLEX_PG_DATABASE".into(), PG_DATABASE.into()),
            ("PLEX_PG_USER".into(), PG_USER.into()),
            ("PLEX_PG_PASSWORD".into(), PG_PASSWORD.into()),
            ("PLEX_PG_SCHEMA".into(), schema.into()),
            ("PLEX_PG_CONFIG".into(), "/dev/null".into()),
        ]
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `postgres` user's uid and gid (Debian's postgresql package makes it).
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no postgres user: install Debian's postgresql package"))
    };
    (id("-u"), id("-g"))
}

/// `restart_workload.py` (an autocommit insert into `events (id, at)` every
/// 10 ms, each outcome a JSON line) with the shim preloaded, under `env`
/// (the `PLEX_PG_*` settings: servers and schema), for `seconds`; running
/// while a test restarts or fails over the server.
pub struct Workload {
    child: std::process::Child,
    out: std::thread::JoinHandle<Vec<String>>,
    err: std::thread::JoinHandle<String>,
    _dir: TempDir,
}

impl Workload {
    pub fn start(env: &[(String, String)], seconds: f64) -> Workload {
        use std::io::BufRead;
        let dir = TempDir::new("workload");
        let db = dir.library_db();
        let mut child = std::process::Command::new("python3")
            .arg(python_script("restart_workload.py"))
            .arg(&db)
            .arg(seconds.to_string())
            .env("PLEX_PG_CONFIG", "/dev/null")
            .envs(env.iter().cloned())
            .env("LD_PRELOAD", shim())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start restart_workload.py");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let out = std::thread::spawn(move || stdout.lines().map_while(Result::ok).collect());
        let stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        Workload {
            child,
            out,
            err,
            _dir: dir,
        }
    }

    /// Wait (at most `limit`: longer is a hang, and panics) for the end:
    /// each statement's outcome (`{"id", "ok", "error"}`) and stderr.
    pub fn finish(mut self, limit: std::time::Duration) -> (Vec<serde_json::Value>, String) {
        let deadline = std::time::Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the workload hung: {}", self.err.join().unwrap_or_default());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let status = self.child.wait().unwrap();
        let err = self.err.join().unwrap_or_default();
        assert!(status.success(), "the workload failed ({status}): {err}");
        let lines = self
            .out
            .join()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, err)
    }
}

/// The ids of the writes a workload saw succeed.
pub fn ok_ids(lines: &[serde_json::Value]) -> Vec<i64> {
    lines
        .iter()
        .filter(|v| v["ok"] == true)
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

/// plex-sim's journal at `path`, one JSON value per complete line. Writers
/// append each line with one `write(2)`, but a reader polling while they
/// write can see the last line half-written: a line without its `\n` is
/// still being written and is left for the next read. A complete line that
/// is not JSON is a bug in plex-sim and panics.
pub fn plex_sim_journal(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}")))
        .collect()
}
