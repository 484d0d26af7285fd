//! What the watchers saw, as plain data: the [`Event`]s that flow from
//! `waitpid` and the watchers ([`crate::watch`]) to the judge
//! ([`crate::verdict`]), and the small types both ends share ([`Birth`],
//! [`Action`], [`ExitStatus`]). A leaf: it depends on no other part of the
//! launcher but the socket type, so the watchers and the judge meet here
//! instead of importing each other.

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::sockets::PgFd;

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

/// How a process came to be (`kind` of a `fork` record, `birth` of a
/// `pool_check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Birth {
    /// Started by the launcher (the command).
    #[serde(rename = "spawn")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// The process exited holding `still_held`, as far as the ptrace
    /// watcher's account goes (its fds, closed with it, cannot be read).
    /// `unconfirmed`: it was not followed (a child trusted to its shim's
    /// fork handler whose AfterFork report never came): what it inherited,
    /// taken as still held.
    Exiting {
        pid: i32,
        still_held: Vec<PgFd>,
        unconfirmed: bool,
    },
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
