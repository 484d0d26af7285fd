//! `plex-pg-launcher check`: one line per check, with what to do when it
//! fails; the exit status is non-zero when something would stop Plex from
//! working (a warning alone does not).
//!
//! Checks: the configuration; capabilities (the caps crate); ptrace
//! permission (Yama scope, another tracer, seccomp mode and no_new_privs
//! from `/proc/self/status`, then by trying `PTRACE_SEIZE` on a child,
//! `clone3` and `seccomp(2)`); the shim file (exists, its trust chain as
//! [`crate::trust`] checks it, and only then: loads); the user; PostgreSQL
//! reachability; where the library is ([`crate::guard::state`]) and
//! whether the launcher is in front of Plex ([`crate::switch::state`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use caps::{CapSet, Capability};
use plex_pg_config::settings::Mode;
use plex_pg_config::{ConfigError, Settings};
use plex_pg_tls::client::chain as error_chain;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, detail: impl AsRef<str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => {
                self.failed = true;
                "FAIL"
            }
        };
        println!("{tag} {what}: {}", detail.as_ref());
    }
}

/// Run every check, after listing every configuration problem
/// (`config_errors`; the checks then run on the settings that could be
/// applied); returns the exit status: 2 with a configuration error (the
/// launcher would refuse to start), 1 when another check failed, else 0.
pub fn run(settings: &Settings, config_errors: &[ConfigError]) -> i32 {
    let mut r = Report { failed: false };
    let file = settings
        .file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "none (defaults and environment)".into());
    r.line(
        Level::Ok,
        "config",
        format!(
            "file {file}; mode {}, watcher {}",
            format!("{:?}", settings.launcher.mode).to_lowercase(),
            format!("{:?}", settings.launcher.watcher).to_lowercase()
        ),
    );
    for e in config_errors {
        r.line(Level::Fail, "config", e.to_string());
    }
    for note in &settings.notes {
        r.line(Level::Ok, "config", note);
    }
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    for note in plex_pg_config::compat::env_notes(names) {
        r.line(Level::Warn, "config", note.to_string());
    }
    if let Err(e) = crate::trust::check_config(settings) {
        r.line(
            Level::Fail,
            "config",
            format!("{e}; the launcher refuses to start with this file"),
        );
    }
    let stop = crate::stop::grace_period(settings);
    r.line(
        if stop.systemd_kills_first {
            Level::Warn
        } else {
            Level::Ok
        },
        "stop",
        stop.why,
    );
    check_caps(&mut r, settings);
    check_ptrace(&mut r, settings);
    check_shim(&mut r, &settings.launcher.shim);
    check_user(&mut r, settings);
    check_log_files(&mut r, settings);
    check_postgres(&mut r, settings);
    check_connections(&mut r, settings);
    for (problem, text) in crate::guard::state(settings) {
        r.line(
            if problem { Level::Fail } else { Level::Ok },
            "library",
            text,
        );
    }
    for (problem, text) in crate::switch::state(Path::new(crate::switch::DEFAULT_SYSTEMD_DIR)) {
        r.line(
            if problem { Level::Warn } else { Level::Ok },
            "switch",
            text,
        );
    }
    if !config_errors.is_empty() {
        // As a start with this configuration would: 2, after every check.
        println!(
            "the configuration has {} error(s): the launcher would refuse to start",
            config_errors.len()
        );
        2
    } else if r.failed {
        println!("some checks failed: Plex would not work as configured");
        1
    } else {
        0
    }
}

fn check_caps(r: &mut Report, settings: &Settings) {
    let effective = match caps::read(None, CapSet::Effective) {
        Ok(set) => set,
        Err(e) => {
            return r.line(
                Level::Warn,
                "capabilities",
                format!("cannot read them: {e}"),
            )
        }
    };
    let has = |c| effective.contains(&c);
    let interesting = [
        Capability::CAP_SYS_PTRACE,
        Capability::CAP_SETUID,
        Capability::CAP_SETGID,
        Capability::CAP_KILL,
        Capability::CAP_SYS_ADMIN,
    ];
    let names: Vec<String> = interesting
        .iter()
        .filter(|c| has(**c))
        .map(|c| c.to_string())
        .collect();
    let ptrace = if has(Capability::CAP_SYS_PTRACE) {
        "CAP_SYS_PTRACE present"
    } else {
        "no CAP_SYS_PTRACE (fine: the launcher traces only processes of its own uid; with --user it runs as Plex's user)"
    };
    r.line(
        Level::Ok,
        "capabilities",
        format!(
            "{ptrace}; {} effective, of which {}",
            effective.len(),
            if names.is_empty() {
                "none that matter here".into()
            } else {
                names.join(",")
            }
        ),
    );
    if settings.launcher.user.is_some()
        && !(has(Capability::CAP_SETUID) && has(Capability::CAP_SETGID))
    {
        r.line(Level::Fail, "capabilities", "launcher.user is set but CAP_SETUID/CAP_SETGID are missing: start the launcher as root, or drop --user");
    }
}

fn status_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
}

fn check_ptrace(r: &mut Report, settings: &Settings) {
    let needed = settings.launcher.mode != Mode::Off;
    let missing = if settings.launcher.mode == Mode::Enforce {
        Level::Fail
    } else {
        Level::Warn
    };
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").map(|s| s.trim().to_string()) {
        Ok(v) if v == "3" => r.line(missing, "ptrace", "Yama ptrace_scope is 3: no process may trace; set it to 1 (sysctl kernel.yama.ptrace_scope=1) or use the procfs watcher"),
        Ok(v) if v == "2" => r.line(missing, "ptrace", "Yama ptrace_scope is 2: only CAP_SYS_PTRACE may trace; grant it, set the scope to 1, or use the procfs watcher"),
        Ok(v) => r.line(Level::Ok, "ptrace", format!("Yama ptrace_scope {v}: tracing one's own descendants is allowed")),
        Err(_) => r.line(Level::Ok, "ptrace", "no Yama on this kernel"),
    }
    if let Some(t) = status_field("TracerPid:").filter(|t| t != "0") {
        r.line(
            Level::Warn,
            "ptrace",
            format!(
                "the launcher is itself traced by pid {t} (a debugger?); tracing Plex still works"
            ),
        );
    }
    let seccomp = status_field("Seccomp:").unwrap_or_else(|| "?".into());
    let nnp = status_field("NoNewPrivs:").unwrap_or_else(|| "?".into());
    r.line(
        Level::Ok,
        "seccomp",
        format!(
            "mode {seccomp} ({}), no_new_privs {nnp}",
            match seccomp.as_str() {
                "0" => "no filter",
                "1" => "strict",
                "2" => "filtered (a container profile?)",
                _ => "unknown",
            }
        ),
    );
    match try_seize() {
        Ok(()) => r.line(Level::Ok, "ptrace", "PTRACE_SEIZE of a child works"),
        Err(e) if needed => r.line(
            missing,
            "ptrace",
            format!("PTRACE_SEIZE of a child failed: {e}; the launcher would fall back to the procfs watcher (enforce mode would refuse to start). In Docker, allow ptrace in the seccomp profile (or --cap-add SYS_PTRACE)"),
        ),
        Err(e) => r.line(Level::Ok, "ptrace", format!("PTRACE_SEIZE failed ({e}), not needed in mode off")),
    }
    // clone3 with a null argument: EFAULT/EINVAL means the syscall is allowed.
    // SAFETY: with a null argument and size 0 the kernel refuses before
    // creating anything; no memory is read or written.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    let errno = std::io::Error::last_os_error();
    match (rc, errno.raw_os_error()) {
        (-1, Some(libc::ENOSYS)) | (-1, Some(libc::EPERM)) => r.line(
            Level::Warn,
            "clone3",
            format!("clone3 is refused ({errno}): a seccomp profile blocks it; glibc falls back to clone, nothing to do unless Plex fails to start threads"),
        ),
        _ => r.line(Level::Ok, "clone3", "allowed"),
    }
    // seccomp(SECCOMP_GET_ACTION_AVAIL) only asks; it installs nothing.
    let action: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
                                   // SAFETY: the kernel reads one u32 from `action`, which lives through the call.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, 2u32, 0u32, &action as *const u32) };
    let errno = std::io::Error::last_os_error();
    if rc == 0 {
        r.line(Level::Ok, "seccomp(2)", "allowed");
    } else {
        r.line(
            Level::Warn,
            "seccomp(2)",
            format!("refused ({errno}); the launcher does not need it today"),
        );
    }
}

/// Fork a child with a pipe between us: the child runs `child(write end)`
/// and `_exit`s with what it returns; we get its pid and the read end.
///
/// # Safety
///
/// `child` runs in the forked child: it must make only async-signal-safe
/// calls (no allocation, no lock another thread may have held at the fork),
/// unless the process is single-threaded when this is called, as the
/// launcher is while `check` runs (which is also what makes `dlopen` there
/// safe). It must not unwind: it returns an exit code.
unsafe fn fork_with_pipe(
    child: impl FnOnce(i32) -> i32,
) -> Result<(i32, std::os::fd::OwnedFd), String> {
    use std::os::fd::AsRawFd;
    let (read, write) = crate::spawn::pipe().map_err(|e| e.to_string())?;
    // SAFETY: the child side runs only `child`, under the caller's contract,
    // then `_exit`s without running Rust's exit path.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if pid == 0 {
        let code = child(write.as_raw_fd());
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(code) };
    }
    Ok((pid, read))
}

/// Fork a child that waits, try to seize it, kill it.
fn try_seize() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let (gate_read, gate_write) = crate::spawn::pipe().map_err(|e| e.to_string())?;
    let waits_on = gate_read.as_raw_fd();
    // SAFETY: the child only read(2)s one byte, async-signal-safe.
    let (pid, _unused) = unsafe {
        fork_with_pipe(|_| {
            let mut b = 0u8;
            // SAFETY: reads one byte into `b`.
            libc::read(waits_on, (&mut b as *mut u8).cast(), 1);
            0
        })
    }?;
    drop(gate_read);
    let child = nix::unistd::Pid::from_raw(pid);
    let result = nix::sys::ptrace::seize(child, nix::sys::ptrace::Options::empty())
        .map_err(|e| e.to_string());
    drop(gate_write);
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::__WALL));
    result
}

fn check_shim(r: &mut Report, path: &Path) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return r.line(
                Level::Fail,
                "shim",
                format!(
                    "{}: {e}; install the shim or set launcher.shim / --shim",
                    path.display()
                ),
            )
        }
    };
    if !meta.is_file() {
        return r.line(
            Level::Fail,
            "shim",
            format!("{} is not a regular file", path.display()),
        );
    }
    // Never load (run the constructors of) a shim someone else could have swapped.
    if let Err(e) = crate::trust::check_file(path) {
        return r.line(
            Level::Fail,
            "shim",
            format!("{e}; the launcher refuses to start with it, and check does not load it"),
        );
    }
    match load_in_child(path) {
        Ok(()) => r.line(Level::Ok, "shim", format!("{} loads; it and the directories above it are owned by root and writable only by it", path.display())),
        Err(e) if e.contains("libc.so:") || e.contains("invalid ELF header") => r.line(
            Level::Warn,
            "shim",
            format!("{} is not loadable by this (glibc) launcher ({e}); expected for a musl build, which only Plex's musl runtime loads", path.display()),
        ),
        Err(e) => r.line(Level::Fail, "shim", format!("{} does not load: {e}", path.display())),
    }
    check_loader(r, path);
}

/// Plex's own dynamic loader: Plex's binaries are musl programs that name
/// the loader it bundles, so that is what loads the shim into Plex.
fn plex_loader() -> (PathBuf, PathBuf) {
    let name = format!("ld-musl-{}.so.1", std::env::consts::ARCH);
    (
        Path::new("/usr/lib/plexmediaserver/lib").join(&name),
        Path::new("/lib").join(name),
    )
}

/// Whether the loader Plex uses loads the shim: musl's loader's list mode
/// (`ld-musl-*.so.1 --list SHIM`) resolves every library and symbol the
/// shim needs, without running Plex, as the loader would at Plex's start
/// (a glibc build of the shim fails here: musl lacks glibc's symbols).
/// Without Plex installed, the system's musl loader stands in.
fn check_loader(r: &mut Report, shim: &Path) {
    let (plex, system) = plex_loader();
    // Without Plex, the stand-in's verdict is a warning, not a failure.
    let (loader, whose, failing) = if plex.exists() {
        (plex, "Plex's loader", Level::Fail)
    } else if system.exists() {
        (
            system,
            "the system's musl loader (Plex's is not installed here)",
            Level::Warn,
        )
    } else {
        return r.line(
            Level::Warn,
            "loader",
            format!("neither Plex's loader ({}) nor a system musl loader ({}) is installed: cannot check that Plex can load the shim", plex.display(), system.display()),
        );
    };
    // It is executed: only a loader no one but root can have changed.
    if let Err(e) = crate::trust::check_file(&loader) {
        return r.line(Level::Warn, "loader", format!("{e}; not run"));
    }
    let out = std::process::Command::new(&loader)
        .arg("--list")
        .arg(shim)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => r.line(
            Level::Ok,
            "loader",
            format!("{whose} {} loads {}", loader.display(), shim.display()),
        ),
        Ok(out) => {
            let why: Vec<String> = String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(3)
                .map(str::to_string)
                .collect();
            r.line(
                failing,
                "loader",
                format!(
                    "{whose} {} cannot load {}: {}; Plex would start without plex-pg (musl's loader ignores a preload it cannot load): install the package's musl build of the shim, not a glibc build",
                    loader.display(),
                    shim.display(),
                    why.join("; ")
                ),
            )
        }
        Err(e) => r.line(
            Level::Warn,
            "loader",
            format!("cannot run {whose} {}: {e}", loader.display()),
        ),
    }
}

/// `dlopen` the shim in a child process (its constructors stay out of the
/// launcher); the child reports `dlerror()` through a pipe.
fn load_in_child(path: &Path) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| "path has a NUL byte".to_string())?;
    // SAFETY: `check` runs single-threaded, so the child may dlopen (which
    // allocates and locks); it then only writes to the pipe and returns.
    let (pid, read) = unsafe {
        fork_with_pipe(|out| {
            if libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL).is_null() {
                let msg = std::ffi::CStr::from_ptr(libc::dlerror()).to_bytes();
                libc::write(out, msg.as_ptr().cast(), msg.len());
                return 1;
            }
            0
        })
    }?;
    let mut msg = String::new();
    let _ = std::fs::File::from(read).read_to_string(&mut msg);
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .map_err(|e| e.to_string())?;
    match status {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        _ if !msg.is_empty() => Err(msg),
        other => Err(format!("the test process ended with {other:?}")),
    }
}

fn check_user(r: &mut Report, settings: &Settings) {
    if let Some(user) = &settings.launcher.user {
        match crate::privileges::lookup(user) {
            Ok(t) => r.line(
                Level::Ok,
                "user",
                format!("{} is uid {} gid {}", t.name, t.uid, t.gid),
            ),
            Err(e) => r.line(Level::Fail, "user", e),
        }
    }
}

fn check_postgres(r: &mut Report, settings: &Settings) {
    let pg = &settings.postgres;
    match plex_pg_tls::client::connect(pg, "plex-pg-launcher check", Duration::from_secs(10)) {
        Ok(mut client) => match client.query_one(
            "SELECT current_setting('server_version'), \
                    (SELECT CASE WHEN ssl THEN version || ' ' || cipher END FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
            &[],
        ) {
            Ok(row) => {
                let v: String = row.get(0);
                let encrypted = match row.get::<_, Option<String>>(1) {
                    Some(tls) => format!("encrypted: {tls}"),
                    None => "not encrypted".to_string(),
                };
                r.line(Level::Ok, "postgres", format!("{} answers (PostgreSQL {v}, {encrypted}, postgres.sslmode = {}), database {:?} as {:?}", pg.endpoint(), pg.sslmode.name(), pg.database, pg.user))
            }
            Err(e) => r.line(Level::Fail, "postgres", format!("{} connected but a query failed: {}", pg.endpoint(), error_chain(&e))),
        },
        Err(e) => r.line(
            Level::Fail,
            "postgres",
            format!("{e}; check postgres.* in the configuration and that the server runs"),
        ),
    }
    check_pooling(r, pg);
    let endpoints = pg.endpoints();
    if endpoints.len() > 1 {
        for endpoint in endpoints {
            check_host(r, pg, &endpoint);
        }
    }
}

/// Whether the servers keep a session's state between transactions (a
/// server, or PgBouncer in session mode) or a pooler hands each
/// transaction to another backend (PgBouncer's `pool_mode = transaction`
/// or `statement`), which plex-pg refuses (see `plex_pg_tls::pooler`).
fn check_pooling(r: &mut Report, pg: &plex_pg_config::settings::Postgres) {
    match plex_pg_tls::pooler::probe(pg, "plex-pg-launcher check", Duration::from_secs(10)) {
        Ok(None) => r.line(
            Level::Ok,
            "postgres pooling",
            "one backend per session (PostgreSQL itself, or a pooler in session mode)",
        ),
        Ok(Some(why)) => r.line(Level::Fail, "postgres pooling", why),
        Err(e) => r.line(
            Level::Warn,
            "postgres pooling",
            format!("could not tell whether a pooler pools per transaction: {e}"),
        ),
    }
}

/// At the launcher's start: why Plex must not start on these servers (a
/// pooler in transaction or statement mode), or None. A server that does
/// not answer is no reason: the shim waits for it.
pub fn pooler_refusal(settings: &Settings) -> Option<String> {
    match plex_pg_tls::pooler::probe(
        &settings.postgres,
        "plex-pg-launcher",
        Duration::from_secs(5),
    ) {
        Ok(Some(why)) => Some(format!("{why}. Nothing was started")),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!("the pooler probe could not run ({e}); starting Plex anyway");
            None
        }
    }
}

/// One server of several: whether it answers, as what (a primary takes
/// the library's writes; a standby is skipped until promoted), and with
/// TLS or not. A server that does not answer is a warning: the list is
/// there so that one may be down.
fn check_host(
    r: &mut Report,
    pg: &plex_pg_config::settings::Postgres,
    endpoint: &plex_pg_config::settings::Endpoint,
) {
    let mut one = pg.clone();
    one.hosts = vec![endpoint.host.clone()];
    one.ports = vec![endpoint.port];
    one.target_session_attrs = plex_pg_config::settings::SessionAttrs::Any;
    let what = format!("postgres host {endpoint}");
    let mut client = match plex_pg_tls::client::connect(
        &one,
        "plex-pg-launcher check",
        Duration::from_secs(5),
    ) {
        Ok(c) => c,
        Err(e) => return r.line(Level::Warn, &what, format!("does not answer: {e}")),
    };
    match client.query_one(
        "SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only')::bool, \
                inet_server_addr()::text, \
                (SELECT CASE WHEN ssl THEN version END FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
        &[],
    ) {
        Ok(row) => {
            let read_only: bool = row.get(0);
            let address = row
                .get::<_, Option<String>>(1)
                .map_or("a Unix socket".to_string(), |a| format!("address {a}"));
            let tls = row
                .get::<_, Option<String>>(2)
                .map_or("not encrypted".to_string(), |v| format!("encrypted: {v}"));
            let role = if read_only {
                "read-only (a standby): skipped for the library until it is promoted"
            } else {
                "primary: accepts writes"
            };
            r.line(Level::Ok, &what, format!("{role}; {address}, {tls}"))
        }
        Err(e) => r.line(Level::Warn, &what, format!("answers, but a query failed: {}", error_chain(&e))),
    }
}

/// How many Plex processes are expected to open the library at once, each
/// with a full pool, in the connection budget: the server and two Scanners
/// (a library scan runs the Scanner beside the server; a second scan or a
/// maintenance task may run another).
const PROCESSES_AT_ONCE: u64 = 3;

/// What PostgreSQL leaves plex-pg, from its settings and what else is
/// connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionBudget {
    pub max_connections: u64,
    /// `superuser_reserved_connections` plus `reserved_connections` (16+).
    pub reserved: u64,
    /// Connections open now that are not plex-pg's.
    pub others: u64,
    /// The role's and the database's `CONNECTION LIMIT`, the lower, if any.
    pub limit: Option<u64>,
}

impl ConnectionBudget {
    /// Connections plex-pg's processes can open.
    pub fn available(&self) -> u64 {
        let server = self
            .max_connections
            .saturating_sub(self.reserved)
            .saturating_sub(self.others);
        self.limit.map_or(server, |l| l.min(server))
    }

    /// The verdict for pools of `pool_max` slots: a line's level (fail,
    /// warn or ok) and its text.
    pub fn judge(&self, pool_max: u64) -> (Option<bool>, String) {
        let available = self.available();
        let need = pool_max * PROCESSES_AT_ONCE;
        let limit = self
            .limit
            .map(|l| format!(", a CONNECTION LIMIT of {l} on the role or database"))
            .unwrap_or_default();
        let figures = format!(
            "max_connections {} less {} reserved and {} other connection(s) open now{limit}: {available} for plex-pg",
            self.max_connections, self.reserved, self.others
        );
        if available < pool_max {
            (
                Some(true),
                format!("{figures}, fewer than one process's pool.max = {pool_max}: Plex will get SQLITE_BUSY when its pool fills; raise max_connections or lower pool.max"),
            )
        } else if available < need {
            (
                None,
                format!("{figures}; the server and two Scanners at once, each with pool.max = {pool_max}, can ask for {need}: lower pool.max to {} or raise max_connections", available / PROCESSES_AT_ONCE),
            )
        } else {
            (
                Some(false),
                format!("{figures}; room for the server and two Scanners at once with pool.max = {pool_max} ({need})"),
            )
        }
    }
}

/// `max_connections` and the connections already taken against the pools
/// plex-pg's processes will open.
fn check_connections(r: &mut Report, settings: &Settings) {
    let pg = &settings.postgres;
    let Ok(mut client) =
        plex_pg_tls::client::connect(pg, "plex-pg-launcher check", Duration::from_secs(10))
    else {
        return; // check_postgres said why.
    };
    let row = client.query_one(
        "SELECT current_setting('max_connections')::bigint, \
                current_setting('superuser_reserved_connections')::bigint \
                  + coalesce(current_setting('reserved_connections', true)::bigint, 0), \
                (SELECT count(*) FROM pg_stat_activity \
                  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
                    AND coalesce(application_name, '') NOT LIKE 'plex-pg%'), \
                (SELECT min(l) FROM (SELECT rolconnlimit AS l FROM pg_roles WHERE rolname = current_user \
                  UNION ALL SELECT datconnlimit FROM pg_database WHERE datname = current_database()) AS limits \
                  WHERE l >= 0)::bigint",
        &[],
    );
    match row {
        Ok(row) => {
            let budget = ConnectionBudget {
                max_connections: row.get::<_, i64>(0) as u64,
                reserved: row.get::<_, i64>(1) as u64,
                others: row.get::<_, i64>(2) as u64,
                limit: row.get::<_, Option<i64>>(3).map(|l| l as u64),
            };
            let (failed, text) = budget.judge(settings.pool.max as u64);
            let level = match failed {
                Some(true) => Level::Fail,
                None => Level::Warn,
                Some(false) => Level::Ok,
            };
            r.line(level, "connections", text);
        }
        Err(e) => r.line(
            Level::Warn,
            "connections",
            format!("cannot read max_connections: {}", error_chain(&e)),
        ),
    }
}

/// The user Plex (and the launcher in front of it) runs as: `launcher.user`,
/// else the `User=` of Plex's systemd unit, else whoever runs `check`.
fn service_user(settings: &Settings) -> Option<crate::privileges::Target> {
    if let Some(name) = &settings.launcher.user {
        return crate::privileges::lookup(name).ok();
    }
    let name = crate::systemd::show(crate::switch::UNIT, "User")?;
    if name.is_empty() {
        return None;
    }
    crate::privileges::lookup(&name).ok()
}

/// Whether `user` may append to `path` (or create it in its directory):
/// asked in a child that has become the user, so the kernel answers with
/// every rule it applies (modes, ACLs, read-only mounts).
fn writable_as(user: &crate::privileges::Target, path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let target = if path.exists() {
        path.to_path_buf()
    } else {
        match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let cpath = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| "the path has a NUL byte".to_string())?;
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    // SAFETY: `check` is single-threaded; the child makes only plain
    // syscalls (setgroups, setgid, setuid, access) and returns a code.
    let (pid, _read) = unsafe {
        fork_with_pipe(|_| {
            let groups = [gid];
            if libc::setgroups(1, groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return 100;
            }
            if libc::access(cpath.as_ptr(), libc::W_OK) == 0 {
                0
            } else {
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(1)
                    .min(99)
            }
        })
    }?;
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(nix::sys::wait::WaitStatus::Exited(_, 100)) => {
            Err(format!("cannot become {} to try", user.name))
        }
        Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => Err(format!(
            "{} cannot write {}: {}",
            user.name,
            target.display(),
            std::io::Error::from_raw_os_error(errno)
        )),
        other => Err(format!("the test process ended with {other:?}")),
    }
}

/// The event log and `log.file`, as the user that will write them.
fn check_log_files(r: &mut Report, settings: &Settings) {
    let files: Vec<(&str, PathBuf)> = [
        settings
            .launcher
            .events
            .as_deref()
            .filter(|e| *e != "-")
            .map(|e| ("launcher.events", PathBuf::from(e))),
        settings.log.file.clone().map(|f| ("log.file", f)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if files.is_empty() {
        return;
    }
    let Some(user) = service_user(settings) else {
        return r.line(
            Level::Warn,
            "logs",
            "cannot tell which user Plex runs as (no launcher.user, no User= in plexmediaserver.service): the event log and log file were not checked",
        );
    };
    for (key, path) in files {
        match writable_as(&user, &path) {
            Ok(()) => r.line(
                Level::Ok,
                "logs",
                format!("{} ({key}) is writable by {}, who runs Plex", path.display(), user.name),
            ),
            Err(e) => r.line(
                Level::Fail,
                "logs",
                format!("{e}: the launcher, running as {}, could not write {} ({key}); make the directory writable by that user (the package's drop-in sets LogsDirectory=plex-pg) or change {key}", user.name, path.display()),
            ),
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::ConnectionBudget;

    #[test]
    fn the_pools_of_three_processes_against_what_postgresql_leaves() {
        let budget = |max, reserved, others, limit| ConnectionBudget {
            max_connections: max,
            reserved,
            others,
            limit,
        };
        // Debian's default server: 100, 3 reserved; plex-pg's default pool.max 32.
        let (verdict, text) = budget(100, 3, 0, None).judge(32);
        assert_eq!(verdict, Some(false), "{text}");
        assert!(text.contains("97 for plex-pg"), "{text}");
        let (verdict, text) = budget(100, 3, 10, None).judge(32);
        assert_eq!(verdict, None, "{text}");
        assert!(text.contains("lower pool.max to 29"), "{text}");
        assert_eq!(budget(100, 3, 70, None).judge(32).0, Some(true));
        // A CONNECTION LIMIT on the role counts too.
        assert_eq!(budget(500, 3, 0, Some(20)).judge(32).0, Some(true));
        assert_eq!(budget(10, 20, 0, None).available(), 0);
    }
}
