//! Every way plex-sim starts a child, as Plex does: `fork()`+`execve`,
//! `vfork()`+`execve`, `posix_spawn`, and `fork()` without exec; the
//! children's kinds; and the registry of live children, reaped with
//! `waitpid` by the supervising thread, their exit codes logged.
//!
//! Executed children run the plex-sim binary itself in a helper role
//! (`--child tuner`, `--scanner`…) with `argv[0]` set to Plex's program name,
//! the whole environment (so `LD_PRELOAD` is inherited), and the signal
//! state of [`ChildReset`].

use std::collections::HashMap;
use std::ffi::{c_char, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::log;
use crate::signals::{self, ChildReset};
use crate::sqlite;

/// What a child is, in Plex's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum ChildKind {
    /// Plex Tuner Service: serves for a while.
    Tuner,
    /// Plex Script Host: runs briefly.
    ScriptHost,
    /// Plex Crash Uploader: exits at once.
    CrashUploader,
    /// Plex Transcoder: started in bursts, several within a second.
    Transcoder,
    /// Plex Media Scanner: plex-sim re-executed with `--scanner`, its own
    /// pool on the same database, writing media parts.
    Scanner,
    /// Forked without exec: opens its own connection and runs the hash query.
    ForkQuery,
}

impl ChildKind {
    pub fn name(self) -> &'static str {
        match self {
            ChildKind::Tuner => "tuner",
            ChildKind::ScriptHost => "script-host",
            ChildKind::CrashUploader => "crash-uploader",
            ChildKind::Transcoder => "transcoder",
            ChildKind::Scanner => "scanner",
            ChildKind::ForkQuery => "fork-query",
        }
    }

    /// Plex's name for the program (`argv[0]` of the executed child).
    pub fn program_name(self) -> &'static str {
        match self {
            ChildKind::Tuner => "Plex Tuner Service",
            ChildKind::ScriptHost => "Plex Script Host",
            ChildKind::CrashUploader => "Plex Crash Uploader",
            ChildKind::Transcoder => "Plex Transcoder",
            ChildKind::Scanner => "Plex Media Scanner",
            ChildKind::ForkQuery => "Plex Media Server",
        }
    }

    /// How Plex starts it when `--spawn` names no method.
    pub fn default_method(self) -> Method {
        match self {
            ChildKind::Tuner | ChildKind::Scanner | ChildKind::ForkQuery => Method::Fork,
            ChildKind::ScriptHost | ChildKind::Transcoder => Method::Vfork,
            ChildKind::CrashUploader => Method::PosixSpawn,
        }
    }

    /// How long the helper serves unless `--helper-ms` says otherwise.
    pub fn default_lifetime(self) -> Duration {
        Duration::from_millis(match self {
            ChildKind::Tuner => 1500,
            ChildKind::ScriptHost => 400,
            ChildKind::Transcoder => 800,
            _ => 0,
        })
    }
}

/// How a child is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Method {
    /// `fork()` then `execve` (for fork-query: no exec).
    Fork,
    /// `vfork()` then `execve`.
    Vfork,
    /// `posix_spawn`.
    PosixSpawn,
}

impl Method {
    pub fn label(self, execs: bool) -> &'static str {
        match (self, execs) {
            (Method::Fork, true) => "fork+exec",
            (Method::Fork, false) => "fork",
            (Method::Vfork, _) => "vfork+exec",
            (Method::PosixSpawn, _) => "posix_spawn",
        }
    }
}

/// NUL-terminated arrays of C strings, built before a fork so the child
/// allocates nothing.
pub struct CStrings {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

// SAFETY: the pointers point into the owned, never-modified strings.
unsafe impl Send for CStrings {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for CStrings {}

impl CStrings {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(items: I) -> CStrings {
        let strings: Vec<CString> = items
            .into_iter()
            .map(|s| {
                CString::new(s.as_ref().as_bytes()).unwrap_or_else(|_| CString::new("?").unwrap())
            })
            .collect();
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStrings {
            _strings: strings,
            ptrs,
        }
    }

    pub fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// The program children execute (this binary) and the environment they get.
pub struct ExecImage {
    pub path: CString,
    pub env: CStrings,
    pub reset: ChildReset,
}

impl ExecImage {
    /// This binary, with the whole current environment.
    pub fn current() -> io::Result<ExecImage> {
        let exe = std::env::current_exe()?;
        Ok(ExecImage::of(&exe))
    }

    pub fn of(path: &Path) -> ExecImage {
        let env = CStrings::new(std::env::vars_os().map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        }));
        ExecImage {
            path: CString::new(path.as_os_str().as_bytes())
                .unwrap_or_else(|_| CString::new("/").unwrap()),
            env,
            reset: ChildReset::new(),
        }
    }
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// How long a fork waits for other threads to leave SQLite.
const FORK_QUIESCE_WAIT: Duration = Duration::from_millis(500);

fn gate_for_fork() -> Option<sqlite::ForkGate> {
    let gate = sqlite::gate_for_fork(FORK_QUIESCE_WAIT);
    if let Some(g) = gate.as_ref().filter(|g| !g.quiesced) {
        log::info!(
            "forking while {} threads are still inside SQLite after {} ms (waiting out a lock held by a thread the gate stopped)",
            g.inside,
            FORK_QUIESCE_WAIT.as_millis()
        );
    }
    gate
}

/// Read the exec-error pipe: empty when `execve` succeeded, else the errno.
fn exec_outcome(read: OwnedFd) -> Option<io::Error> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(read.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 4 - got) };
        if n > 0 {
            got += n as usize;
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            break;
        }
    }
    (got == 4).then(|| io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))
}

/// A started child; `exec_error` when its `execve` failed (it then exits 127).
pub struct Started {
    pub pid: i32,
    pub exec_error: Option<io::Error>,
}

/// `fork()`, then in the child a clean signal state and `execve`.
pub fn fork_exec(image: &ExecImage, argv: &CStrings) -> io::Result<Started> {
    let (read, write) = cloexec_pipe()?;
    let gate = gate_for_fork();
    // SAFETY: the child only makes async-signal-safe calls on data prepared above.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child; execve replaces it or we report errno and _exit.
        unsafe {
            image.reset.apply_in_child();
            libc::execve(image.path.as_ptr(), argv.as_ptr(), image.env.as_ptr());
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            libc::write(write.as_raw_fd(), errno.to_ne_bytes().as_ptr().cast(), 4);
            libc::_exit(127);
        }
    }
    drop(gate);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(write);
    Ok(Started {
        pid,
        exec_error: exec_outcome(read),
    })
}

/// `vfork()`, then `execve`: the parent thread is suspended until the child
/// has executed or exited. Kept apart and never inlined so the child, which
/// shares the parent's stack, only calls functions with prepared arguments.
#[inline(never)]
unsafe fn vfork_and_exec(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    reset: &ChildReset,
    error_fd: i32,
) -> i32 {
    #[allow(deprecated)]
    let pid = libc::vfork();
    if pid == 0 {
        reset.apply_in_child();
        libc::execve(path, argv, envp);
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        libc::write(error_fd, (&errno as *const i32).cast(), 4);
        libc::_exit(127);
    }
    pid
}

pub fn vfork_exec(image: &ExecImage, argv: &CStrings) -> io::Result<Started> {
    let (read, write) = cloexec_pipe()?;
    // SAFETY: all arguments are prepared; see vfork_and_exec.
    let pid = unsafe {
        vfork_and_exec(
            image.path.as_ptr(),
            argv.as_ptr(),
            image.env.as_ptr(),
            &image.reset,
            write.as_raw_fd(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(write);
    Ok(Started {
        pid,
        exec_error: exec_outcome(read),
    })
}

/// `posix_spawn` with the child's signal state of [`ChildReset`].
pub fn posix_spawn(image: &ExecImage, argv: &CStrings) -> io::Result<Started> {
    // SAFETY: attr is initialized before use and destroyed after.
    unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        if libc::posix_spawnattr_init(&mut attr) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::posix_spawnattr_setsigmask(&mut attr, &image.reset.mask);
        libc::posix_spawnattr_setsigdefault(&mut attr, &image.reset.defaults);
        libc::posix_spawnattr_setflags(
            &mut attr,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as _,
        );
        let mut pid = 0;
        let rc = libc::posix_spawn(
            &mut pid,
            image.path.as_ptr(),
            std::ptr::null(),
            &attr,
            argv.as_ptr() as *const *mut c_char,
            image.env.as_ptr() as *const *mut c_char,
        );
        libc::posix_spawnattr_destroy(&mut attr);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Started {
            pid,
            exec_error: None,
        })
    }
}

/// Start an executed child by `method`.
pub fn spawn_exec(method: Method, image: &ExecImage, argv: &CStrings) -> io::Result<Started> {
    match method {
        Method::Fork => fork_exec(image, argv),
        Method::Vfork => vfork_exec(image, argv),
        Method::PosixSpawn => posix_spawn(image, argv),
    }
}

/// `fork()` without exec: the child runs `body`, writes its report to a
/// pipe the parent keeps, and leaves with `_exit` (no atexit handler, no
/// destructor). `alarm` bounds the child. Returns the pid and the report pipe.
/// `body` gets the report pipe's fd, for a child that leaves by itself.
pub fn fork_call(
    alarm_secs: u32,
    body: &mut dyn FnMut(i32) -> (i32, String),
) -> io::Result<(i32, OwnedFd)> {
    let (read, write) = cloexec_pipe()?;
    let gate = gate_for_fork();
    // SAFETY: the child is single-threaded; see the module docs on what it may do.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        sqlite::forget_gate_after_fork();
        // SAFETY: in the child.
        unsafe { libc::alarm(alarm_secs) };
        let (code, report) = body(write.as_raw_fd());
        write_all_fd(write.as_raw_fd(), report.as_bytes());
        // SAFETY: leaving the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(gate);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(write);
    Ok((pid, read))
}

pub fn write_all_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing a valid buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Read what a child wrote to its report pipe (after it exited).
fn read_report(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------- the registry

/// What the server knows of a live child.
pub struct Record {
    /// The kind's or the fault's name.
    pub kind: String,
    pub method: &'static str,
    pub started: Instant,
    /// Rows the hash query had read when the child started, if it was in flight.
    pub mid_hash_query_rows: Option<usize>,
    pub report: Option<OwnedFd>,
    /// The exit code that means success.
    pub expect_exit: i32,
    /// Kill it if it still runs then.
    pub deadline: Instant,
    pub exec_error: Option<String>,
}

/// A reaped child.
#[derive(Debug, Clone)]
pub struct Finished {
    pub pid: i32,
    pub kind: String,
    pub method: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub seconds: f64,
    pub mid_hash_query_rows: Option<usize>,
    pub report: Option<String>,
    pub expect_exit: i32,
    pub exec_error: Option<String>,
    /// The server killed it for running past its deadline.
    pub killed_overdue: bool,
}

impl Finished {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(self.expect_exit) && !self.killed_overdue
    }

    pub fn status(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (_, Some(s)) => format!("was killed by {}", signals::name(s)),
            _ => "ended".into(),
        }
    }
}

#[derive(Default)]
pub struct Registry {
    live: Mutex<HashMap<i32, Record>>,
    overdue_killed: Mutex<Vec<i32>>,
}

impl Registry {
    /// Start a child with `start` while holding the registry, so the reaper
    /// cannot see its exit before it is recorded.
    pub fn start<F>(&self, start: F) -> io::Result<i32>
    where
        F: FnOnce() -> io::Result<(i32, Record)>,
    {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let (pid, record) = start()?;
        live.insert(pid, record);
        Ok(pid)
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Reap every child that has ended (`waitpid(-1, WNOHANG)`).
    pub fn reap(&self) -> Vec<Finished> {
        let mut done = Vec::new();
        loop {
            let mut status = 0;
            // SAFETY: valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            let record = self
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid);
            let Some(record) = record else {
                log::warning!(
                    "reaped pid {pid}, which plex-sim did not start (status {status:#x})"
                );
                continue;
            };
            let killed_overdue = {
                let mut killed = self
                    .overdue_killed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let was = killed.contains(&pid);
                killed.retain(|p| *p != pid);
                was
            };
            done.push(Finished {
                pid,
                kind: record.kind,
                method: record.method,
                exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
                signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
                seconds: record.started.elapsed().as_secs_f64(),
                mid_hash_query_rows: record.mid_hash_query_rows,
                report: record.report.as_ref().map(read_report),
                expect_exit: record.expect_exit,
                exec_error: record.exec_error,
                killed_overdue,
            });
        }
        done
    }

    /// SIGKILL every child past its deadline; returns `(pid, kind)` of each.
    pub fn kill_overdue(&self) -> Vec<(i32, String)> {
        let now = Instant::now();
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut killed = self
            .overdue_killed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let out: Vec<(i32, String)> = live
            .iter()
            .filter(|(p, r)| r.deadline <= now && !killed.contains(p))
            .map(|(p, r)| (*p, r.kind.clone()))
            .collect();
        for (pid, _) in &out {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
            killed.push(*pid);
        }
        out
    }

    /// Send `sig` to every live child.
    pub fn signal_all(&self, sig: i32) -> usize {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for pid in live.keys() {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(*pid, sig) };
        }
        live.len()
    }
}
