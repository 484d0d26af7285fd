//! Watching Plex's process tree. Two watchers, one event stream:
//!
//! - [`ptrace`]: every fork, vfork, clone, exec and exit, seen as it
//!   happens; syscall stops only for a process holding a PostgreSQL socket
//!   it inherited, and only while it holds one.
//! - [`procfs`]: polls `/proc`; sees only what is still there at the next
//!   scan (see `docs/launcher.md` for what that misses).
//!
//! Both produce [`Event`]s, which [`crate::verdict::Judge`] turns into
//! verdicts and event-log lines.

pub mod procfs;
pub mod ptrace;
pub mod syscall_info;

use crate::init::ExitStatus;
use crate::sockets::PgFd;

/// How a process came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Birth {
    /// Started by the launcher (the command).
    Spawned,
    /// `fork()`: glibc ran its fork handlers in the child.
    Fork,
    /// `vfork()`, or `posix_spawn()` (a `CLONE_VFORK` clone): no handlers.
    Vfork,
    /// Another `clone()` that made a new process: no handlers.
    Clone,
    /// Found by the procfs watcher, which cannot tell how.
    Unknown,
}

impl Birth {
    pub fn name(self) -> &'static str {
        match self {
            Birth::Spawned => "spawn",
            Birth::Fork => "fork",
            Birth::Vfork => "vfork",
            Birth::Clone => "clone",
            Birth::Unknown => "unknown",
        }
    }
}

/// What the launcher did about a syscall on an inherited socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `verify`: let it happen.
    Observed,
    /// `enforce`: the syscall failed with EBADF.
    Denied,
    /// `enforce` with `kill_offender`: denied, and the process was killed.
    Killed,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Observed => "observed",
            Action::Denied => "denied",
            Action::Killed => "killed",
        }
    }
}

/// What a watcher saw.
#[derive(Clone, Debug)]
pub enum Event {
    /// A new process (not a thread). `inherited`: the PostgreSQL sockets it
    /// held at birth, before running any instruction (ptrace) or at first
    /// sight and also held by its parent (procfs).
    Born {
        pid: i32,
        ppid: i32,
        birth: Birth,
        inherited: Vec<PgFd>,
        escalated: bool,
    },
    /// The process executed a program. `still_held`: which of its inherited
    /// sockets survived the exec.
    Exec {
        pid: i32,
        former_tid: Option<i32>,
        program: Option<String>,
        still_held: Vec<PgFd>,
    },
    /// The process is exiting, its fds still open (ptrace's exit stop).
    Exiting { pid: i32, still_held: Vec<PgFd> },
    /// The process is gone. `status` is unknown to the procfs watcher for
    /// processes that are not the launcher's children.
    Exited {
        pid: i32,
        status: Option<ExitStatus>,
    },
    /// A syscall on a PostgreSQL socket the process inherited.
    FdUse {
        pid: i32,
        tid: i32,
        fd: i32,
        syscall: &'static str,
        socket: PgFd,
        action: Action,
    },
}

/// The program a process runs now, for events.
pub fn program_of(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}
