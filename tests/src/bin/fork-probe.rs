//! fork-probe: plays the shim's side of the shim↔launcher contract with real
//! PostgreSQL connections, and starts children in every way Plex does, so
//! the launcher's watchers can be tested before (and beside) the real shim.
//!
//! It speaks just enough of the PostgreSQL protocol over the server's Unix
//! socket (trust authentication, as the test clusters have) to open a
//! session and run `SELECT 1`, so every fd is known and nothing else runs
//! in the process: no runtime threads, no pool.
//!
//! Environment: `PLEX_PG_HOST` (socket directory), `PLEX_PG_PORT`,
//! `PLEX_PG_USER`, `PLEX_PG_DATABASE` (as `plex_pg_tests::Pg::env` sets
//! them); `PLEX_PG_SUPERVISOR` (reports are sent when set);
//! `PLEX_PG_FORK_HANDLER=0` turns the handler-like reset off.
//!
//! Scenarios (`fork-probe <scenario> [args]`), each printing what happened
//! on standard output, one `key: value` line per fact:
//! - `fork [--touch] [--hold MS]`: connect twice, fork; the child resets
//!   like the shim's fork handler (unless disabled), optionally writes on
//!   the inherited socket, sleeps, exits; the parent then checks its
//!   sessions still answer.
//! - `fork-exec`, `posix-spawn`, `vfork-exec`, `thread-fork`: connect, then
//!   start `/bin/true` that way (`thread-fork`: fork+exec from a thread that
//!   is not the main one).
//! - `reexec CODE MS`: start `fork-probe server CODE MS` with posix_spawn
//!   and exit 0 at once (Plex's start-up re-exec shape).
//! - `server CODE MS`: sleep MS milliseconds, exit CODE.
//! - `orphan`: leave a grandchild orphaned, then check that it was reaped.
//! - `thread-exec`: a thread that is not the main one execs `/bin/true`
//!   (the kernel gives it the main thread's id).
//! - `flood N connected|hello`: send N reports as fast as the launcher
//!   takes them: `Connected` with ever-new slot numbers (a hostile process
//!   in the tree), or `Hello` (from outside the tree, by a test); then print
//!   the parent's (the launcher's) peak memory, `parent_vm_hwm_kb`.
//! - `bench-fork N [--connect]`: fork N children one after the other, each
//!   `_exit`ing at once (with `--connect`, after the handler-like reset of
//!   two real sessions, so a watcher escalates them); prints the median and
//!   90th percentile of fork→child's first instruction and fork→reaped, in
//!   microseconds. The launcher's overhead is the difference with and
//!   without it (a figure, not a test: machines are noisy).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use plex_pg_config::report::{self, FdRole, HarmlessFd, Kind, MAX_DATAGRAM};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("");
    let code = match scenario {
        "fork" => fork(&args[1..]),
        "fork-exec" => start_true(Start::ForkExec),
        "posix-spawn" => start_true(Start::PosixSpawn),
        "vfork-exec" => start_true(Start::VforkExec),
        "thread-fork" => start_true(Start::ThreadFork),
        "reexec" => reexec(&args[1..]),
        "server" => server(&args[1..]),
        "orphan" => orphan(),
        "thread-exec" => thread_exec(),
        "bench-fork" => bench_fork(&args[1..]),
        "flood" => flood(&args[1..]),
        other => {
            eprintln!("fork-probe: unknown scenario {other:?}; see the module documentation");
            2
        }
    };
    std::process::exit(code);
}

fn say(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{key}: {value}");
    let _ = out.flush();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("fork-probe needs {name} in its environment"))
}

/// A PostgreSQL session over the Unix socket, speaking the protocol directly.
struct Session {
    stream: UnixStream,
}

impl Session {
    fn connect() -> Session {
        let path = format!("{}/.s.PGSQL.{}", env("PLEX_PG_HOST"), env("PLEX_PG_PORT"));
        let mut stream =
            UnixStream::connect(&path).unwrap_or_else(|e| panic!("connect {path}: {e}"));
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes()); // protocol 3.0
        for (k, v) in [
            ("user", env("PLEX_PG_USER")),
            ("database", env("PLEX_PG_DATABASE")),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        stream.write_all(&msg).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut s = Session { stream };
        loop {
            let (tag, payload) = s.read_message().expect("startup reply");
            match tag {
                b'R' if payload[..4] == [0, 0, 0, 0] => {}
                b'R' => panic!("the server asks for a password: use a trust socket"),
                b'E' => panic!("startup failed: {}", String::from_utf8_lossy(&payload)),
                b'Z' => return s,
                _ => {}
            }
        }
    }

    fn read_message(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head)?;
        let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; len.saturating_sub(4)];
        self.stream.read_exact(&mut payload)?;
        Ok((head[0], payload))
    }

    /// `SELECT 1`: Ok when the session still answers correctly.
    fn select_one(&mut self) -> Result<(), String> {
        let sql = b"SELECT 1\0";
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 4) as u32).to_be_bytes());
        msg.extend_from_slice(sql);
        self.stream.write_all(&msg).map_err(|e| e.to_string())?;
        let mut got_one = false;
        loop {
            let (tag, payload) = self.read_message().map_err(|e| e.to_string())?;
            match tag {
                b'D' => got_one = payload.ends_with(b"1"),
                b'E' => return Err(String::from_utf8_lossy(&payload).into_owned()),
                b'Z' => {
                    return if got_one {
                        Ok(())
                    } else {
                        Err("no row".into())
                    }
                }
                _ => {}
            }
        }
    }

    fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/self/fd/{}", self.stream.as_raw_fd()))
            .map(|m| m.ino())
            .unwrap_or(0)
    }
}

/// The report socket, when the launcher asked for reports.
struct Reporter {
    socket: Option<UnixDatagram>,
}

impl Reporter {
    fn new() -> Reporter {
        let socket = std::env::var_os(report::SUPERVISOR_ENV).map(|path| {
            let s = UnixDatagram::unbound().expect("datagram socket");
            s.connect(&path)
                .unwrap_or_else(|e| panic!("connect to the supervisor socket: {e}"));
            s
        });
        Reporter { socket }
    }

    fn send(&self, bytes: &[u8]) {
        if let Some(s) = &self.socket {
            // SAFETY: send(2) on a connected socket; safe in a forked child.
            unsafe { libc::send(s.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        }
    }

    fn hello(&self, handler: bool) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let (pid, ppid) = ids();
        let n = report::encode_hello(&mut buf, pid, ppid, "fork-probe", 2, handler).unwrap();
        self.send(&buf[..n]);
    }

    fn connected(&self, slot: u32, session: &Session) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let (pid, ppid) = ids();
        let n = report::encode_connection(
            &mut buf,
            Kind::Connected,
            pid,
            ppid,
            report::SlotSocket {
                slot,
                fd: session.stream.as_raw_fd(),
                inode: session.inode(),
            },
            1,
        )
        .unwrap();
        self.send(&buf[..n]);
    }
}

/// `flood N connected|hello`: see the module's documentation.
fn flood(args: &[String]) -> i32 {
    let n: u64 = args
        .first()
        .and_then(|v| v.parse().ok())
        .expect("flood N connected|hello");
    let connected = args.get(1).is_some_and(|k| k == "connected");
    let reporter = Reporter::new();
    let mut buf = [0u8; MAX_DATAGRAM];
    let (pid, ppid) = ids();
    for i in 0..n {
        let len = if connected {
            let socket = report::SlotSocket {
                slot: i as u32,
                fd: 3,
                inode: 1000 + i,
            };
            report::encode_connection(&mut buf, Kind::Connected, pid, ppid, socket, 1).unwrap()
        } else {
            report::encode_hello(&mut buf, pid, ppid, "flood", 2, true).unwrap()
        };
        reporter.send(&buf[..len]);
    }
    // Let the launcher drain its queue before its peak is read.
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{ppid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches(" kB").to_string());
    say("sent", n);
    say("parent_vm_hwm_kb", hwm.unwrap_or_else(|| "?".into()));
    0
}

fn ids() -> (i32, i32) {
    unsafe { (libc::getpid(), libc::getppid()) }
}

fn handler_enabled() -> bool {
    std::env::var("PLEX_PG_FORK_HANDLER")
        .map(|v| v != "0")
        .unwrap_or(true)
}

fn connect_and_report(n: u32) -> (Vec<Session>, Reporter) {
    let reporter = Reporter::new();
    reporter.hello(handler_enabled());
    let sessions: Vec<Session> = (0..n).map(|_| Session::connect()).collect();
    for (slot, s) in sessions.iter().enumerate() {
        reporter.connected(slot as u32, s);
    }
    (sessions, reporter)
}

fn wait_child(pid: i32) -> i32 {
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// What the shim's fork handler does in the child, prepared before fork so
/// the child neither allocates nor locks: `dup3` /dev/null over each
/// session's socket (the number stays reserved), then one AfterFork report.
struct Reset {
    fds: Vec<(i32, u64)>,
    harmless: [HarmlessFd; 2],
    devnull: CString,
    buf: [u8; MAX_DATAGRAM],
}

impl Reset {
    fn prepare(sessions: &[Session]) -> Reset {
        let fds: Vec<(i32, u64)> = sessions
            .iter()
            .map(|s| (s.stream.as_raw_fd(), s.inode()))
            .collect();
        let mut harmless = [HarmlessFd {
            fd: 0,
            role: FdRole::Socket,
            inode: 0,
        }; 2];
        for (h, &(fd, inode)) in harmless.iter_mut().zip(&fds) {
            *h = HarmlessFd {
                fd,
                role: FdRole::Socket,
                inode,
            };
        }
        Reset {
            fds,
            harmless,
            devnull: CString::new("/dev/null").unwrap(),
            buf: [0u8; MAX_DATAGRAM],
        }
    }

    /// In the child, right after fork.
    fn run_in_child(&mut self, reporter: &Reporter) {
        unsafe {
            let null = libc::open(self.devnull.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            for &(fd, _) in &self.fds {
                libc::dup3(null, fd, libc::O_CLOEXEC);
            }
            libc::close(null);
            let used = &self.harmless[..self.fds.len().min(2)];
            let n = report::encode_after_fork(
                &mut self.buf,
                libc::getpid(),
                libc::getppid(),
                2,
                0,
                used,
            )
            .unwrap_or(0);
            reporter.send(&self.buf[..n]);
        }
    }
}

fn fork(args: &[String]) -> i32 {
    let touch = args.iter().any(|a| a == "--touch");
    let hold_ms: u64 = args
        .iter()
        .position(|a| a == "--hold")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let handler = handler_enabled();
    let (mut sessions, reporter) = connect_and_report(2);
    let first_fd = sessions[0].stream.as_raw_fd();
    let mut reset = Reset::prepare(&sessions);
    let mut line = [0u8; 64];
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            if handler {
                reset.run_in_child(&reporter);
            }
            if touch {
                // A Sync message: harmless to a server, corrupting to a shared session.
                let sync = [b'S', 0, 0, 0, 4];
                let r = libc::write(first_fd, sync.as_ptr().cast(), sync.len());
                let e = *libc::__errno_location();
                let text: &[u8] = if r == 5 {
                    b"child touch: ok\n"
                } else if e == libc::EBADF {
                    b"child touch: EBADF\n"
                } else {
                    b"child touch: error\n"
                };
                line[..text.len()].copy_from_slice(text);
                libc::write(1, line.as_ptr().cast(), text.len());
            }
            if hold_ms > 0 {
                libc::usleep((hold_ms * 1000) as libc::c_uint);
            }
            libc::_exit(0);
        }
    }
    say("child", pid);
    let status = wait_child(pid);
    say("child status", status);
    for (i, s) in sessions.iter_mut().enumerate() {
        match s.select_one() {
            Ok(()) => say(&format!("parent session {i}"), "ok"),
            Err(e) => say(&format!("parent session {i}"), format!("broken ({e})")),
        }
    }
    0
}

#[derive(Clone, Copy)]
enum Start {
    ForkExec,
    PosixSpawn,
    VforkExec,
    ThreadFork,
}

fn start_true(how: Start) -> i32 {
    let (mut sessions, _reporter) = connect_and_report(1);
    let path = CString::new("/bin/true").unwrap();
    let argv = [path.as_ptr(), std::ptr::null()];
    let pid = unsafe {
        match how {
            Start::ForkExec => {
                let pid = libc::fork();
                if pid == 0 {
                    libc::execv(path.as_ptr(), argv.as_ptr());
                    libc::_exit(127);
                }
                pid
            }
            Start::VforkExec => {
                // vfork(2) as the kernel sees it (CLONE_VM | CLONE_VFORK), on a
                // stack of its own: libc::vfork cannot be used soundly from Rust.
                extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
                    unsafe {
                        let argv = arg as *const *const libc::c_char;
                        libc::execv(*argv, argv);
                        libc::_exit(127)
                    }
                }
                let mut stack = vec![0u8; 256 * 1024];
                let top = stack.as_mut_ptr().add(stack.len() - 64);
                let top = (top as usize & !15) as *mut libc::c_void;
                libc::clone(
                    child,
                    top,
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                    argv.as_ptr() as *mut libc::c_void,
                )
            }
            Start::PosixSpawn => {
                let mut pid = 0;
                extern "C" {
                    static environ: *const *const libc::c_char;
                }
                let rc = libc::posix_spawn(
                    &mut pid,
                    path.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr() as _,
                    environ as _,
                );
                assert_eq!(rc, 0, "posix_spawn failed");
                pid
            }
            Start::ThreadFork => {
                let path = path.clone();
                std::thread::spawn(move || {
                    let argv = [path.as_ptr(), std::ptr::null()];
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::execv(path.as_ptr(), argv.as_ptr());
                        libc::_exit(127);
                    }
                    pid
                })
                .join()
                .unwrap()
            }
        }
    };
    say("child", pid);
    say("child status", wait_child(pid));
    say(
        "parent session 0",
        if sessions[0].select_one().is_ok() {
            "ok"
        } else {
            "broken"
        },
    );
    0
}

fn reexec(args: &[String]) -> i32 {
    let me = std::env::current_exe().expect("current_exe");
    let child = std::process::Command::new(me)
        .arg("server")
        .args(args)
        .spawn()
        .expect("spawn the server");
    say("server", child.id());
    // Exit without waiting: the server is orphaned, as Plex's first process does.
    std::mem::forget(child);
    0
}

fn server(args: &[String]) -> i32 {
    let code: i32 = args.first().and_then(|v| v.parse().ok()).unwrap_or(0);
    let ms: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(ms));
    code
}

fn orphan() -> i32 {
    let (r, w) = {
        let mut fds = [0; 2];
        unsafe { libc::pipe(fds.as_mut_ptr()) };
        (fds[0], fds[1])
    };
    let child = unsafe { libc::fork() };
    if child == 0 {
        unsafe {
            let grandchild = libc::fork();
            if grandchild == 0 {
                libc::usleep(100_000);
                libc::_exit(0);
            }
            let bytes = grandchild.to_ne_bytes();
            libc::write(w, bytes.as_ptr().cast(), 4);
            libc::_exit(0);
        }
    }
    wait_child(child);
    let mut bytes = [0u8; 4];
    unsafe { libc::read(r, bytes.as_mut_ptr().cast(), 4) };
    let grandchild = i32::from_ne_bytes(bytes);
    say("grandchild", grandchild);
    // Bounded: the grandchild exits after 100 ms; its new parent must reap it.
    for _ in 0..300 {
        if !std::path::Path::new(&format!("/proc/{grandchild}")).exists() {
            say("orphan", "reaped");
            return 0;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    say("orphan", "not reaped");
    1
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn bench_fork(args: &[String]) -> i32 {
    let n: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let connect = args.iter().any(|a| a == "--connect");
    let (sessions, reporter) = if connect {
        connect_and_report(2)
    } else {
        (Vec::new(), Reporter::new())
    };
    let mut reset = Reset::prepare(&sessions);
    let mut pipe = [0; 2];
    unsafe { libc::pipe(pipe.as_mut_ptr()) };
    let (mut first, mut reaped) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t0 = now_ns();
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let t1 = now_ns();
            unsafe {
                if connect {
                    reset.run_in_child(&reporter);
                }
                let d = (t1 - t0).to_ne_bytes();
                libc::write(pipe[1], d.as_ptr().cast(), 8);
                libc::_exit(0);
            }
        }
        let mut d = [0u8; 8];
        unsafe { libc::read(pipe[0], d.as_mut_ptr().cast(), 8) };
        wait_child(pid);
        reaped.push(now_ns() - t0);
        first.push(u64::from_ne_bytes(d));
    }
    let pct = |v: &mut Vec<u64>, p: usize| {
        v.sort_unstable();
        v[(v.len() * p / 100).min(v.len() - 1)] as f64 / 1000.0
    };
    say("forks", n);
    say(
        "fork to child (us, median)",
        format!("{:.1}", pct(&mut first, 50)),
    );
    say(
        "fork to child (us, p90)",
        format!("{:.1}", pct(&mut first, 90)),
    );
    say(
        "fork to child (us, p99)",
        format!("{:.1}", pct(&mut first, 99)),
    );
    say(
        "fork to reaped (us, median)",
        format!("{:.1}", pct(&mut reaped, 50)),
    );
    say(
        "fork to reaped (us, p90)",
        format!("{:.1}", pct(&mut reaped, 90)),
    );
    say(
        "fork to reaped (us, p99)",
        format!("{:.1}", pct(&mut reaped, 99)),
    );
    0
}

fn thread_exec() -> i32 {
    let path = CString::new("/bin/true").unwrap();
    std::thread::spawn(move || {
        say("exec from thread", unsafe {
            libc::syscall(libc::SYS_gettid)
        });
        let argv = [path.as_ptr(), std::ptr::null()];
        unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
        std::process::exit(127);
    });
    // The exec replaces the whole process; this sleep never ends normally.
    std::thread::sleep(Duration::from_secs(30));
    1
}
