//! `plex-pg-launcher check`: one line per check, with what to do when it
//! fails; the exit status is non-zero when something would stop Plex from
//! working (a warning alone does not).
//!
//! Checks: the configuration; capabilities (the caps crate); ptrace
//! permission (Yama scope, another tracer, seccomp mode and no_new_privs
//! from `/proc/self/status`, then by trying `PTRACE_SEIZE` on a child,
//! `clone3` and `seccomp(2)`); the shim file (exists, its trust chain as
//! [`crate::trust`] checks it, and only then: loads); the user; PostgreSQL
//! reachability.

use std::path::Path;
use std::time::Duration;

use caps::{CapSet, Capability};
use plex_pg_config::settings::Mode;
use plex_pg_config::Settings;
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

/// Run every check; returns the exit status.
pub fn run(settings: &Settings) -> i32 {
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
    if let Err(e) = crate::trust::check_config(settings) {
        r.line(
            Level::Fail,
            "config",
            format!("{e}; the launcher refuses to start with this file"),
        );
    }
    check_caps(&mut r, settings);
    check_ptrace(&mut r, settings);
    check_shim(&mut r, &settings.launcher.shim);
    check_user(&mut r, settings);
    check_postgres(&mut r, settings);
    for (problem, text) in crate::guard::state(settings) {
        r.line(
            if problem { Level::Fail } else { Level::Ok },
            "library",
            text,
        );
    }
    if r.failed {
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
/// `child` must only make async-signal-safe calls (the launcher is
/// single-threaded when `check` runs, which also makes `dlopen` safe).
fn fork_with_pipe(child: impl FnOnce(i32) -> i32) -> Result<(i32, std::os::fd::OwnedFd), String> {
    use std::os::fd::AsRawFd;
    let (read, write) = crate::spawn::pipe().map_err(|e| e.to_string())?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if pid == 0 {
        let code = child(write.as_raw_fd());
        unsafe { libc::_exit(code) };
    }
    Ok((pid, read))
}

/// Fork a child that waits, try to seize it, kill it.
fn try_seize() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let (gate_read, gate_write) = crate::spawn::pipe().map_err(|e| e.to_string())?;
    let waits_on = gate_read.as_raw_fd();
    let (pid, _unused) = fork_with_pipe(|_| {
        let mut b = 0u8;
        unsafe { libc::read(waits_on, (&mut b as *mut u8).cast(), 1) };
        0
    })?;
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
}

/// `dlopen` the shim in a child process (its constructors stay out of the
/// launcher); the child reports `dlerror()` through a pipe.
fn load_in_child(path: &Path) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| "path has a NUL byte".to_string())?;
    let (pid, read) = fork_with_pipe(|out| unsafe {
        if libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL).is_null() {
            let msg = std::ffi::CStr::from_ptr(libc::dlerror()).to_bytes();
            libc::write(out, msg.as_ptr().cast(), msg.len());
            return 1;
        }
        0
    })?;
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
