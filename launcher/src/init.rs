//! An init's duties, as tini and catatonit do them: forward signals to the
//! main process, reap every zombie (the loop in [`crate::supervisor`] calls
//! `waitpid`), and exit with the main process's status or 128+signal.
//!
//! The *main* process is the command the launcher started. Plex re-executes
//! itself at start-up and the first process may exit with status 0 while
//! the re-executed server, now adopted by the launcher (a subreaper), keeps
//! running: when the main process exits with 0 and leaves processes behind,
//! the oldest of the launcher's remaining children becomes the main
//! process; its status is the one that counts. When the main process exits
//! with anything else, whatever is left gets TERM, then KILL after the
//! grace period. Either way the launcher exits only when nothing is left.
//!
//! Stopping (TERM), as tini does: TERM goes to the main process and to
//! every other direct child of the launcher (adopted helpers, whose parent
//! is gone and cannot pass it on), and to any orphan adopted later while
//! stopping. The launcher exits as soon as the tree is empty, with the main
//! process's status; only what is still alive when the grace period ends
//! gets KILL.
//!
//! Every signal has an explicit fate ([`fate`]): none takes its default
//! action on the launcher (which would end Plex with it).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub(crate) use crate::observed::ExitStatus;

/// What the launcher does with a signal it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Passed on to the main process (TERM also to adopted helpers, and it
    /// starts the stop).
    Forward,
    /// SIGCHLD: a wake-up to reap.
    Reap,
    /// Job-control and pipe signals aimed at the launcher itself: ignored
    /// (the child gets them back at their defaults).
    Ignore,
    /// A synchronous fault (SEGV, BUS, ILL, FPE, TRAP, SYS) or an
    /// uncatchable signal (KILL, STOP): left to the kernel.
    Kernel,
}

/// Signals ignored by the launcher.
pub const IGNORED: &[libc::c_int] = &[libc::SIGPIPE, libc::SIGTTIN, libc::SIGTTOU, libc::SIGTSTP];

/// The fate of every signal number (1 to `SIGRTMAX`).
pub fn fate(sig: libc::c_int) -> Fate {
    match sig {
        libc::SIGCHLD => Fate::Reap,
        libc::SIGKILL | libc::SIGSTOP => Fate::Kernel,
        libc::SIGSEGV
        | libc::SIGBUS
        | libc::SIGILL
        | libc::SIGFPE
        | libc::SIGTRAP
        | libc::SIGSYS => Fate::Kernel,
        s if IGNORED.contains(&s) => Fate::Ignore,
        _ => Fate::Forward,
    }
}

/// Every signal number the kernel knows, realtime ones included.
pub fn all_signals() -> std::ops::RangeInclusive<libc::c_int> {
    1..=libc::SIGRTMAX()
}

fn signal_name(sig: libc::c_int) -> String {
    match Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) if sig >= libc::SIGRTMIN() => format!("SIGRTMIN+{}", sig - libc::SIGRTMIN()),
        Err(_) => format!("signal {sig}"),
    }
}

pub struct Init {
    me: i32,
    main: Option<i32>,
    status: Option<ExitStatus>,
    grace: Duration,
    kill_at: Option<Instant>,
    /// TERM was received: the tree is being stopped.
    stopping: bool,
    /// Direct children already sent TERM while stopping.
    termed: HashSet<i32>,
}

impl Init {
    pub fn new(main: i32, grace: Duration) -> Init {
        Init {
            me: std::process::id() as i32,
            main: Some(main),
            status: None,
            grace,
            kill_at: None,
            stopping: false,
            termed: HashSet::new(),
        }
    }

    /// Forward a signal the launcher received (one whose [`fate`] is
    /// `Forward`). `helpers`: the launcher's alert commands, never signalled.
    pub fn forward(&mut self, sig: libc::c_int, helpers: &HashSet<i32>) {
        let name = signal_name(sig);
        if sig == libc::SIGTERM {
            if !self.stopping {
                tracing::info!(
                    "received SIGTERM: stopping; every process left in {} ms will be killed",
                    self.grace.as_millis()
                );
            }
            self.stopping = true;
            if self.kill_at.is_none() {
                self.kill_at = Some(Instant::now() + self.grace);
            }
            // Every TERM received is passed on once to each direct child,
            // the main process included (it is one).
            self.termed.clear();
            self.term_orphans(helpers);
            return;
        }
        let Some(main) = self.main else {
            tracing::info!("received {name}, but the main process has exited; waiting for the rest of the tree");
            return;
        };
        if sig != libc::SIGWINCH {
            tracing::info!("forwarding {name} to the main process {main}");
        }
        // SAFETY: kill(2) with a pid and a signal number.
        if unsafe { libc::kill(main, sig) } != 0 {
            tracing::warn!(
                "cannot forward {name} to {main}: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// While stopping: TERM every direct child not sent it yet (adopted
    /// helpers have no parent left to pass it on).
    fn term_orphans(&mut self, helpers: &HashSet<i32>) {
        for pid in direct_children(self.me, helpers) {
            if self.termed.insert(pid) {
                if Some(pid) == self.main {
                    tracing::info!("forwarding SIGTERM to the main process {pid}");
                } else {
                    tracing::info!(
                        "sending SIGTERM to {pid} ({}), adopted by the launcher",
                        crate::proc::program_of(pid).unwrap_or_else(|| "?".into())
                    );
                }
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
    }

    /// A process the launcher reaped exited. `ignore`: the launcher's helpers.
    pub fn reaped(&mut self, pid: i32, status: ExitStatus, ignore: &HashSet<i32>) {
        self.termed.remove(&pid);
        if Some(pid) != self.main {
            return;
        }
        let left = direct_children(self.me, ignore);
        if self.stopping {
            // Stopping: its status is the launcher's; what is left got TERM
            // and is waited for, up to the grace period.
            self.main = None;
            self.status = Some(status);
            tracing::info!(
                "main process {pid} ended with {}; waiting for {} process(es) left",
                status.describe(),
                left.len()
            );
            self.term_orphans(ignore);
            return;
        }
        if status == ExitStatus::Code(0) && !left.is_empty() {
            let next = oldest(&left);
            tracing::info!(
                "main process {pid} exited with status 0 and left {} process(es); supervising {next} ({}) as the main process",
                left.len(),
                crate::proc::program_of(next).unwrap_or_else(|| "?".into())
            );
            self.main = Some(next);
            return;
        }
        self.main = None;
        self.status = Some(status);
        tracing::info!("main process {pid} ended with {}", status.describe());
        if !left.is_empty() {
            tracing::warn!(
                "{} process(es) outlived the main process: sending TERM, KILL after {} ms",
                left.len(),
                self.grace.as_millis()
            );
            self.terminate_rest(Instant::now());
        }
    }

    fn terminate_rest(&mut self, now: Instant) {
        for pid in descendants(self.me) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if self.kill_at.is_none() {
            self.kill_at = Some(now + self.grace);
        }
    }

    /// TERM orphans adopted while stopping; KILL what is left once the
    /// grace period is over.
    pub fn tick(&mut self, now: Instant, helpers: &HashSet<i32>) {
        if self.stopping {
            self.term_orphans(helpers);
        }
        if let Some(at) = self.kill_at {
            if now >= at {
                let left = descendants(self.me);
                if !left.is_empty() {
                    tracing::warn!(
                        "grace period over: killing {} process(es) still running: {left:?}",
                        left.len()
                    );
                    for pid in left {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                self.kill_at = None;
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.kill_at
    }

    /// The exit code, once the main process is gone and nothing is left.
    pub fn finished(&self, ignore: &HashSet<i32>) -> Option<i32> {
        if self.main.is_some() {
            return None;
        }
        if !direct_children(self.me, ignore).is_empty() {
            return None;
        }
        Some(self.status.map(ExitStatus::exit_code).unwrap_or(1))
    }
}

/// The launcher's children (alive or not yet reaped), except `ignore`.
pub fn direct_children(me: i32, ignore: &HashSet<i32>) -> Vec<i32> {
    let mut out: Vec<i32> = crate::proc::children(me).unwrap_or_else(|| {
        crate::proc::process_table()
            .into_iter()
            .filter(|&(_, ppid)| ppid == me)
            .map(|(pid, _)| pid)
            .collect()
    });
    out.retain(|p| !ignore.contains(p));
    out
}

/// Every descendant of `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let table = crate::proc::process_table();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        for &(pid, ppid) in &table {
            if ppid == parent {
                out.push(pid);
                stack.push(pid);
            }
        }
    }
    out
}

fn oldest(pids: &[i32]) -> i32 {
    pids.iter()
        .copied()
        .min_by_key(|&p| crate::proc::starttime(p).unwrap_or(u64::MAX))
        .unwrap_or(pids[0])
}
