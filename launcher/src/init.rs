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

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The launcher's own exit code for this status (128+signal).
    pub fn exit_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }

    pub fn describe(self) -> String {
        match self {
            ExitStatus::Code(c) => format!("exit status {c}"),
            ExitStatus::Signal(s) => {
                let name = Signal::try_from(s)
                    .map(|s| s.as_str())
                    .unwrap_or("an unknown signal");
                format!("signal {s} ({name})")
            }
        }
    }
}

/// The signals forwarded to the main process.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

pub struct Init {
    me: i32,
    main: Option<i32>,
    status: Option<ExitStatus>,
    grace: Duration,
    kill_at: Option<Instant>,
}

impl Init {
    pub fn new(main: i32, grace: Duration) -> Init {
        Init {
            me: std::process::id() as i32,
            main: Some(main),
            status: None,
            grace,
            kill_at: None,
        }
    }

    pub fn main(&self) -> Option<i32> {
        self.main
    }

    /// Forward a signal the launcher received.
    pub fn forward(&mut self, sig: Signal) {
        let Some(main) = self.main else {
            tracing::info!(
                "received {sig}, but the main process has exited; waiting for the rest of the tree"
            );
            if sig == Signal::SIGTERM {
                self.terminate_rest(Instant::now());
            }
            return;
        };
        if sig != Signal::SIGWINCH {
            tracing::info!("forwarding {sig} to the main process {main}");
        }
        if let Err(e) = kill(Pid::from_raw(main), sig) {
            tracing::warn!("cannot forward {sig} to {main}: {e}");
        }
        if sig == Signal::SIGTERM && self.kill_at.is_none() {
            self.kill_at = Some(Instant::now() + self.grace);
            tracing::info!(
                "every process left in {} ms will be killed",
                self.grace.as_millis()
            );
        }
    }

    /// A process the launcher reaped exited. `ignore`: the launcher's helpers.
    pub fn reaped(&mut self, pid: i32, status: ExitStatus, ignore: &HashSet<i32>) {
        if Some(pid) != self.main {
            return;
        }
        let left = direct_children(self.me, ignore);
        if status == ExitStatus::Code(0) && !left.is_empty() {
            let next = oldest(&left);
            tracing::info!(
                "main process {pid} exited with status 0 and left {} process(es); supervising {next} ({}) as the main process",
                left.len(),
                crate::watch::program_of(next).unwrap_or_else(|| "?".into())
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

    /// KILL what is left once the grace period is over.
    pub fn tick(&mut self, now: Instant) {
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
    let mut out: Vec<i32> = match std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
    {
        Ok(text) => text
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect(),
        Err(_) => process_table()
            .into_iter()
            .filter(|&(_, ppid)| ppid == me)
            .map(|(pid, _)| pid)
            .collect(),
    };
    out.retain(|p| !ignore.contains(p));
    out
}

/// Every descendant of `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let table = process_table();
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

/// (pid, ppid) of every process.
fn process_table() -> Vec<(i32, i32)> {
    procfs::process::all_processes()
        .map(|all| {
            all.flatten()
                .filter_map(|p| p.stat().ok())
                .map(|s| (s.pid, s.ppid))
                .collect()
        })
        .unwrap_or_default()
}

fn oldest(pids: &[i32]) -> i32 {
    pids.iter()
        .copied()
        .min_by_key(|&p| {
            procfs::process::Process::new(p)
                .and_then(|p| p.stat())
                .map(|s| s.starttime)
                .unwrap_or(u64::MAX)
        })
        .unwrap_or(pids[0])
}
