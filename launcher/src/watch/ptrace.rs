//! The ptrace watcher: `PTRACE_SEIZE` from spawn, event stops only
//! (fork, vfork, clone, exec, exit), restarted with `PTRACE_CONT`; syscall
//! stops only for a process that holds a PostgreSQL socket it inherited.
//!
//! Traps handled:
//! - a child's first stop can arrive before its parent's fork event: the
//!   child is held stopped until the event says how it was born (or, after
//!   [`HOLD_LIMIT`], judged with what `/proc` says);
//! - exec by a thread other than the leader: the thread takes the leader's
//!   tid ([`Event::Exec`] carries the former tid) and the other threads are
//!   forgotten;
//! - ESRCH from any ptrace call: the tracee died; its exit is reported by
//!   `waitpid` later, so the error is ignored;
//! - group-stops (`PTRACE_EVENT_STOP` with a stopping signal) are left in
//!   place with `PTRACE_LISTEN`, never resumed, never re-injected; a
//!   signal-delivery stop is resumed with its signal;
//! - a vfork parent is resumed at once after its event (it then blocks in
//!   the kernel until the child execs or exits), and the child is never
//!   held waiting on the parent.
//!
//! Enforce mode denies a syscall by replacing its number with -1 at the
//! entry stop (the kernel skips it) and setting the return value to
//! `-EBADF` at the exit stop. On x86_64 these are `orig_rax` and `rax`
//! (`PTRACE_GETREGS`/`PTRACE_SETREGS`). On aarch64 the same is done with
//! `PTRACE_SETREGSET`: `NT_ARM_SYSTEM_CALL` to set the number to -1, and
//! `NT_PRSTATUS` to set `x0` at the exit stop; it is not built here, so
//! other architectures observe only (and say so).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::syscall_info::SyscallStop;
use nix::errno::Errno;
use nix::sys::ptrace::{self, Event as PtraceEvent, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use plex_pg_config::settings::Mode;

use super::{program_of, Action, Birth, Event};
use crate::init::ExitStatus;
use crate::sockets::{Kernel, PgFd};
use crate::verdict::Judge;

/// How long a child whose first stop came before its parent's event is
/// held before it is judged without the event.
pub const HOLD_LIMIT: Duration = Duration::from_secs(1);

/// The options every tracee gets (inherited by auto-attached children).
pub fn options() -> Options {
    Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACEEXIT
        | Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_EXITKILL
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Running (or stopped by us and handled).
    Running,
    /// Its parent's event was handled; its first stop has not come yet.
    AwaitingFirstStop,
    /// Its first stop came before its parent's event: kept stopped.
    Held(Instant),
}

#[derive(Debug)]
struct Thread {
    tgid: i32,
    start: Start,
    /// The entry of a denied syscall was seen; set its result at the exit.
    deny_pending: bool,
    /// A syscall that may drop an fd is running: recheck at its exit.
    recheck_at_exit: bool,
}

#[derive(Debug, Default)]
struct Traced {
    /// Stopped at every syscall while it holds an inherited socket.
    escalated: bool,
    /// The PostgreSQL sockets it held at birth.
    inherited: Vec<PgFd>,
    threads: usize,
}

/// Counters for the summary and the benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub event_stops: u64,
    pub syscall_stops: u64,
    pub escalations: u64,
}

pub struct Tracer {
    threads: HashMap<i32, Thread>,
    procs: HashMap<i32, Traced>,
    mode: Mode,
    kill_offender: bool,
    pub stats: Stats,
}

const PTRACE_EVENT_STOP: i32 = 128;

impl Tracer {
    pub fn new(mode: Mode, kill_offender: bool) -> Tracer {
        if mode == Mode::Enforce && !cfg!(target_arch = "x86_64") {
            tracing::error!("enforce mode can deny syscalls only on x86_64 in this build: inherited-socket use will be observed, not denied");
        }
        Tracer {
            threads: HashMap::new(),
            procs: HashMap::new(),
            mode,
            kill_offender,
            stats: Stats::default(),
        }
    }

    /// Seize the freshly forked `pid` (blocked on its gate, before exec).
    pub fn seize(&mut self, pid: i32) -> nix::Result<()> {
        ptrace::seize(Pid::from_raw(pid), options())?;
        self.threads.insert(
            pid,
            Thread {
                tgid: pid,
                start: Start::Running,
                deny_pending: false,
                recheck_at_exit: false,
            },
        );
        self.procs.insert(
            pid,
            Traced {
                threads: 1,
                ..Traced::default()
            },
        );
        Ok(())
    }

    /// Whether `tid` is one of ours.
    pub fn knows(&self, tid: i32) -> bool {
        self.threads.contains_key(&tid)
    }

    /// Handle one `waitpid` result. Exits of traced thread group leaders
    /// become [`Event::Exited`].
    pub fn on_status(&mut self, status: WaitStatus, judge: &mut Judge, kernel: &mut Kernel) {
        match status {
            WaitStatus::PtraceEvent(pid, sig, ev) => {
                self.stats.event_stops += 1;
                let tid = pid.as_raw();
                match ev {
                    e if e == PtraceEvent::PTRACE_EVENT_FORK as i32 => {
                        self.on_new(tid, Birth::Fork, judge, kernel)
                    }
                    e if e == PtraceEvent::PTRACE_EVENT_VFORK as i32 => {
                        self.on_new(tid, Birth::Vfork, judge, kernel)
                    }
                    e if e == PtraceEvent::PTRACE_EVENT_CLONE as i32 => {
                        self.on_new(tid, Birth::Clone, judge, kernel)
                    }
                    e if e == PtraceEvent::PTRACE_EVENT_EXEC as i32 => self.on_exec(tid, judge),
                    e if e == PtraceEvent::PTRACE_EVENT_EXIT as i32 => {
                        self.on_exit_stop(tid, judge)
                    }
                    PTRACE_EVENT_STOP => self.on_event_stop(tid, sig),
                    _ => self.resume(tid, None),
                }
            }
            WaitStatus::PtraceSyscall(pid) => {
                self.stats.syscall_stops += 1;
                self.on_syscall(pid.as_raw(), judge);
            }
            WaitStatus::Stopped(pid, sig) => {
                // Signal-delivery stop: deliver the signal.
                self.resume(pid.as_raw(), Some(sig));
            }
            WaitStatus::Exited(pid, code) => {
                self.on_death(pid.as_raw(), ExitStatus::Code(code), judge)
            }
            WaitStatus::Signaled(pid, sig, _) => {
                self.on_death(pid.as_raw(), ExitStatus::Signal(sig as i32), judge)
            }
            _ => {}
        }
    }

    /// Held children whose parent's event never came.
    pub fn tick(&mut self, now: Instant, judge: &mut Judge, kernel: &mut Kernel) {
        let overdue: Vec<i32> = self
            .threads
            .iter()
            .filter_map(|(&tid, t)| match t.start {
                Start::Held(since) if now.duration_since(since) >= HOLD_LIMIT => Some(tid),
                _ => None,
            })
            .collect();
        for tid in overdue {
            let tgid = status_field(tid, "Tgid:").unwrap_or(tid);
            if tgid != tid && self.procs.contains_key(&tgid) {
                // A thread of a known process: run it in its process's mode.
                self.threads.insert(
                    tid,
                    Thread {
                        tgid,
                        start: Start::Running,
                        deny_pending: false,
                        recheck_at_exit: false,
                    },
                );
                if let Some(p) = self.procs.get_mut(&tgid) {
                    p.threads += 1;
                }
                self.resume(tid, None);
                continue;
            }
            tracing::warn!("process {tid} started, but the fork event of its parent never came; judging it from /proc");
            self.threads.remove(&tid);
            let ppid = status_field(tid, "PPid:").unwrap_or(0);
            self.adopt_child(ppid, tid, Birth::Unknown, true, judge, kernel);
        }
    }

    /// When the next [`Tracer::tick`] is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.threads
            .values()
            .filter_map(|t| match t.start {
                Start::Held(since) => Some(since + HOLD_LIMIT),
                _ => None,
            })
            .min()
    }

    fn resume(&self, tid: i32, sig: Option<Signal>) {
        let escalated = self
            .threads
            .get(&tid)
            .and_then(|t| self.procs.get(&t.tgid))
            .map(|p| p.escalated)
            .unwrap_or(false);
        let pid = Pid::from_raw(tid);
        let result = if escalated {
            ptrace::syscall(pid, sig)
        } else {
            ptrace::cont(pid, sig)
        };
        match result {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                tracing::error!("cannot resume traced process {tid}: {e}; it may stay stopped")
            }
        }
    }

    /// A fork, vfork or clone event in `parent`.
    fn on_new(&mut self, parent: i32, birth: Birth, judge: &mut Judge, kernel: &mut Kernel) {
        let child = match ptrace::getevent(Pid::from_raw(parent)) {
            Ok(c) => c as i32,
            Err(e) => {
                if e != Errno::ESRCH {
                    tracing::warn!("cannot read the new pid from the fork event of {parent}: {e}");
                }
                self.resume(parent, None);
                return;
            }
        };
        let parent_tgid = self.threads.get(&parent).map(|t| t.tgid).unwrap_or(parent);
        let was_held = matches!(
            self.threads.get(&child),
            Some(Thread {
                start: Start::Held(_),
                ..
            })
        );
        let child_tgid = status_field(child, "Tgid:").unwrap_or(child);
        if birth == Birth::Clone && child_tgid == parent_tgid {
            // A new thread of the same process.
            let start = if was_held {
                Start::Running
            } else {
                Start::AwaitingFirstStop
            };
            self.threads.insert(
                child,
                Thread {
                    tgid: parent_tgid,
                    start,
                    deny_pending: false,
                    recheck_at_exit: false,
                },
            );
            if let Some(p) = self.procs.get_mut(&parent_tgid) {
                p.threads += 1;
            }
            if was_held {
                self.resume(child, None);
            }
        } else {
            self.threads.remove(&child);
            self.adopt_child(parent_tgid, child, birth, was_held, judge, kernel);
        }
        self.resume(parent, None);
    }

    /// Record a new process: its inherited PostgreSQL sockets, read before
    /// it runs any instruction, decide whether it is escalated, and let it
    /// go if it is already at its first stop.
    fn adopt_child(
        &mut self,
        ppid: i32,
        child: i32,
        birth: Birth,
        at_first_stop: bool,
        judge: &mut Judge,
        kernel: &mut Kernel,
    ) {
        let inherited = if self.mode == Mode::Off {
            Vec::new()
        } else {
            kernel.pg_fds(child).unwrap_or_else(|e| {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    tracing::warn!("cannot read the fds of new process {child}: {e}");
                }
                Vec::new()
            })
        };
        let escalated = !inherited.is_empty();
        if escalated {
            self.stats.escalations += 1;
        }
        self.procs.insert(
            child,
            Traced {
                escalated,
                inherited: inherited.clone(),
                threads: 1,
            },
        );
        let start = if at_first_stop {
            Start::Running
        } else {
            Start::AwaitingFirstStop
        };
        self.threads.insert(
            child,
            Thread {
                tgid: child,
                start,
                deny_pending: false,
                recheck_at_exit: false,
            },
        );
        judge.handle(Event::Born {
            pid: child,
            ppid,
            birth,
            inherited,
            escalated,
        });
        if at_first_stop {
            self.resume(child, None);
        }
    }

    fn on_event_stop(&mut self, tid: i32, sig: Signal) {
        match self.threads.get_mut(&tid) {
            None => {
                // First stop of a child whose parent's event has not come.
                self.threads.insert(
                    tid,
                    Thread {
                        tgid: tid,
                        start: Start::Held(Instant::now()),
                        deny_pending: false,
                        recheck_at_exit: false,
                    },
                );
            }
            Some(t) if t.start == Start::AwaitingFirstStop => {
                t.start = Start::Running;
                self.resume(tid, None);
            }
            Some(t) if matches!(t.start, Start::Held(_)) => {}
            Some(_) => {
                if matches!(
                    sig,
                    Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                ) {
                    // Group-stop: stay stopped, but keep reporting.
                    let r = unsafe { libc::ptrace(libc::PTRACE_LISTEN, tid, 0usize, 0usize) };
                    if r < 0 {
                        let e = Errno::last();
                        if e != Errno::ESRCH {
                            tracing::warn!("PTRACE_LISTEN on {tid} failed: {e}");
                        }
                    }
                } else {
                    self.resume(tid, None);
                }
            }
        }
    }

    fn on_exec(&mut self, tid: i32, judge: &mut Judge) {
        let former = ptrace::getevent(Pid::from_raw(tid))
            .ok()
            .map(|f| f as i32)
            .filter(|&f| f != tid);
        let tgid = tid;
        // Every other thread of the process is gone; the execing one is now `tid`.
        self.threads.retain(|&t, th| th.tgid != tgid || t == tid);
        self.threads.insert(
            tid,
            Thread {
                tgid,
                start: Start::Running,
                deny_pending: false,
                recheck_at_exit: false,
            },
        );
        let p = self.procs.entry(tgid).or_default();
        p.threads = 1;
        let still_held = Kernel::still_held(tgid, &p.inherited).unwrap_or_default();
        if still_held.is_empty() && p.escalated {
            p.escalated = false;
            tracing::debug!("process {tgid} no longer holds an inherited PostgreSQL socket after exec: syscall stops off");
        }
        judge.handle(Event::Exec {
            pid: tgid,
            former_tid: former,
            program: program_of(tgid),
            still_held,
        });
        self.resume(tid, None);
    }

    fn on_exit_stop(&mut self, tid: i32, judge: &mut Judge) {
        if let Some(tgid) = self.threads.get(&tid).map(|t| t.tgid) {
            if let Some(p) = self.procs.get(&tgid) {
                if !p.inherited.is_empty() && (tid == tgid || p.threads <= 1) {
                    let still_held = Kernel::still_held(tgid, &p.inherited).unwrap_or_default();
                    judge.handle(Event::Exiting {
                        pid: tgid,
                        still_held,
                    });
                }
            }
        }
        self.resume(tid, None);
    }

    fn on_death(&mut self, tid: i32, status: ExitStatus, judge: &mut Judge) {
        let Some(thread) = self.threads.remove(&tid) else {
            return;
        };
        if let Some(p) = self.procs.get_mut(&thread.tgid) {
            p.threads = p.threads.saturating_sub(1);
        }
        if tid == thread.tgid {
            if let Some(p) = self.procs.remove(&tid) {
                if p.escalated {
                    // Died without an exit stop (SIGKILL) while, as far as
                    // the watcher saw, still holding inherited sockets.
                    judge.handle(Event::Exiting {
                        pid: tid,
                        still_held: p.inherited,
                    });
                }
            }
            self.threads.retain(|_, t| t.tgid != tid);
            judge.handle(Event::Exited {
                pid: tid,
                status: Some(status),
            });
        }
    }

    fn on_syscall(&mut self, tid: i32, judge: &mut Judge) {
        let pid = Pid::from_raw(tid);
        let info = match super::syscall_info::get(pid) {
            Ok(i) => i,
            Err(Errno::ESRCH) => return,
            Err(e) => {
                tracing::warn!("PTRACE_GET_SYSCALL_INFO on {tid} failed: {e}");
                self.resume(tid, None);
                return;
            }
        };
        let Some(tgid) = self.threads.get(&tid).map(|t| t.tgid) else {
            self.resume(tid, None);
            return;
        };
        match info {
            SyscallStop::Entry { nr, args } => {
                let escalated = self.procs.get(&tgid).map(|p| p.escalated).unwrap_or(false);
                if escalated {
                    self.check_entry(tid, tgid, nr, &args, judge);
                }
            }
            SyscallStop::Exit => self.on_syscall_exit(tid, tgid),
            SyscallStop::Other => {}
        }
        self.resume(tid, None);
    }

    fn check_entry(&mut self, tid: i32, tgid: i32, nr: i64, args: &[u64; 6], judge: &mut Judge) {
        if syscalls::drops_fds(nr) {
            if let Some(t) = self.threads.get_mut(&tid) {
                t.recheck_at_exit = true;
            }
            return;
        }
        let Some((name, positions)) = syscalls::uses_fd(nr) else {
            return;
        };
        let Some(p) = self.procs.get(&tgid) else {
            return;
        };
        for &pos in positions {
            let fd = args[pos] as i32;
            let Some(inode) = Kernel::fd_inode(tid, fd) else {
                continue;
            };
            let Some(socket) = p.inherited.iter().find(|s| s.inode == inode) else {
                continue;
            };
            let socket = PgFd {
                fd,
                inode,
                peer: socket.peer.clone(),
            };
            let action = match self.mode {
                Mode::Enforce if cfg!(target_arch = "x86_64") => {
                    if deny_entry(tid) {
                        if let Some(t) = self.threads.get_mut(&tid) {
                            t.deny_pending = true;
                        }
                        if self.kill_offender {
                            let _ = nix::sys::signal::kill(Pid::from_raw(tgid), Signal::SIGKILL);
                            Action::Killed
                        } else {
                            Action::Denied
                        }
                    } else {
                        Action::Observed
                    }
                }
                _ => Action::Observed,
            };
            judge.handle(Event::FdUse {
                pid: tgid,
                tid,
                fd,
                syscall: name,
                socket,
                action,
            });
            return;
        }
    }

    fn on_syscall_exit(&mut self, tid: i32, tgid: i32) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        if std::mem::take(&mut t.deny_pending) {
            set_return(tid, -(libc::EBADF as i64));
        }
        if std::mem::take(&mut t.recheck_at_exit) {
            if let Some(p) = self.procs.get_mut(&tgid) {
                if p.escalated
                    && Kernel::still_held(tgid, &p.inherited)
                        .map(|h| h.is_empty())
                        .unwrap_or(false)
                {
                    p.escalated = false;
                    tracing::debug!("process {tgid} no longer holds an inherited PostgreSQL socket: syscall stops off");
                }
            }
        }
    }
}

/// A field of `/proc/<tid>/status` that is a number.
fn status_field(tid: i32, field: &str) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(target_arch = "x86_64")]
fn deny_entry(tid: i32) -> bool {
    let pid = Pid::from_raw(tid);
    match ptrace::getregs(pid) {
        Ok(mut regs) => {
            regs.orig_rax = u64::MAX; // -1: no such syscall, skipped by the kernel
            ptrace::setregs(pid, regs).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn deny_entry(_tid: i32) -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn set_return(tid: i32, value: i64) {
    let pid = Pid::from_raw(tid);
    if let Ok(mut regs) = ptrace::getregs(pid) {
        regs.rax = value as u64;
        let _ = ptrace::setregs(pid, regs);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn set_return(_tid: i32, _value: i64) {}

/// The syscalls that matter to the watcher, by number.
mod syscalls {
    #[cfg(target_arch = "x86_64")]
    const USES: &[(libc::c_long, &str, &[usize])] = &[
        (libc::SYS_read, "read", &[0]),
        (libc::SYS_write, "write", &[0]),
        (libc::SYS_pread64, "pread64", &[0]),
        (libc::SYS_pwrite64, "pwrite64", &[0]),
        (libc::SYS_readv, "readv", &[0]),
        (libc::SYS_writev, "writev", &[0]),
        (libc::SYS_preadv, "preadv", &[0]),
        (libc::SYS_pwritev, "pwritev", &[0]),
        (libc::SYS_preadv2, "preadv2", &[0]),
        (libc::SYS_pwritev2, "pwritev2", &[0]),
        (libc::SYS_sendto, "sendto", &[0]),
        (libc::SYS_recvfrom, "recvfrom", &[0]),
        (libc::SYS_sendmsg, "sendmsg", &[0]),
        (libc::SYS_recvmsg, "recvmsg", &[0]),
        (libc::SYS_sendmmsg, "sendmmsg", &[0]),
        (libc::SYS_recvmmsg, "recvmmsg", &[0]),
        (libc::SYS_shutdown, "shutdown", &[0]),
        (libc::SYS_setsockopt, "setsockopt", &[0]),
        (libc::SYS_getsockopt, "getsockopt", &[0]),
        (libc::SYS_ioctl, "ioctl", &[0]),
        (libc::SYS_connect, "connect", &[0]),
        (libc::SYS_bind, "bind", &[0]),
        (libc::SYS_listen, "listen", &[0]),
        (libc::SYS_accept, "accept", &[0]),
        (libc::SYS_accept4, "accept4", &[0]),
        (libc::SYS_sendfile, "sendfile", &[0, 1]),
        (libc::SYS_splice, "splice", &[0, 2]),
        (libc::SYS_tee, "tee", &[0, 1]),
        (libc::SYS_copy_file_range, "copy_file_range", &[0, 2]),
        (libc::SYS_epoll_ctl, "epoll_ctl", &[2]),
    ];
    #[cfg(not(target_arch = "x86_64"))]
    const USES: &[(libc::c_long, &str, &[usize])] = &[];

    #[cfg(target_arch = "x86_64")]
    const DROPS: &[libc::c_long] = &[
        libc::SYS_close,
        libc::SYS_close_range,
        libc::SYS_dup2,
        libc::SYS_dup3,
    ];
    #[cfg(not(target_arch = "x86_64"))]
    const DROPS: &[libc::c_long] = &[];

    /// A syscall that reads, writes or otherwise acts on a socket, with the
    /// argument positions holding fds.
    pub fn uses_fd(nr: i64) -> Option<(&'static str, &'static [usize])> {
        USES.iter()
            .find(|(n, _, _)| *n == nr)
            .map(|(_, name, pos)| (*name, *pos))
    }

    /// A syscall after which an inherited socket may be gone.
    pub fn drops_fds(nr: i64) -> bool {
        DROPS.contains(&nr)
    }
}
