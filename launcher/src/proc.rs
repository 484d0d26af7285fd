//! The one module that reads `/proc`: processes, their parents, programs,
//! socket fds and TCP tables, and the kernel settings that decide whether
//! ptrace is allowed. A leaf: it knows nothing of the launcher's types, only
//! pids, fds, inodes and strings, so the watchers, the socket classifier,
//! the init duties and the supervisor all read the kernel through it, and
//! the judge ([`crate::verdict`]) reads nothing at all.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

/// The program a process runs now (`/proc/<pid>/exe`), for events.
pub(crate) fn program_of(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}

/// A field of `/proc/<tid>/status` that is a number (`Tgid:`, `PPid:`).
pub(crate) fn status_number(tid: i32, field: &str) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().parse().ok())
}

/// A field of the launcher's own `/proc/self/status`, as text.
pub(crate) fn own_status_field(field: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

/// Yama's `ptrace_scope`, or `None` without Yama.
pub(crate) fn yama_ptrace_scope() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Every socket fd of `pid`: (fd, inode), sorted by fd.
pub(crate) fn socket_fds(pid: i32) -> io::Result<Vec<(i32, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(inode) = socket_inode(&entry.path()) {
            out.push((fd, inode));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The socket inode `fd` of `pid` refers to now, if it is a socket.
pub(crate) fn fd_inode(pid: i32, fd: i32) -> Option<u64> {
    socket_inode(Path::new(&format!("/proc/{pid}/fd/{fd}")))
}

/// What fd `fd` of `pid` is: `Some(Some(inode))` a socket,
/// `Some(None)` another file, `None` no such fd (or no such process).
pub(crate) fn fd_entry(pid: i32, fd: i32) -> Option<Option<u64>> {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    Some(
        target
            .to_str()
            .and_then(|s| s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()),
    )
}

/// Inode of a `socket:[N]` link.
fn socket_inode(link: &Path) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let s = target.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// TCP sockets of `pid`'s network namespace: inode → (remote, established).
pub(crate) fn tcp_table(pid: i32) -> HashMap<u64, (SocketAddr, bool)> {
    let mut table = HashMap::new();
    let Ok(process) = procfs::process::Process::new(pid) else {
        return table;
    };
    for entries in [process.tcp(), process.tcp6()].into_iter().flatten() {
        for e in entries {
            let established = e.state == procfs::net::TcpState::Established;
            table.insert(e.inode, (e.remote_address, established));
        }
    }
    table
}

/// When `pid` started (clock ticks after boot), which tells a process from
/// a later one with the same pid.
pub(crate) fn starttime(pid: i32) -> Option<u64> {
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.starttime)
}

/// The state letter of `pid` (`/proc/PID/stat`: R, S, D, T, t, Z…).
pub(crate) fn state(pid: i32) -> Option<char> {
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.state)
}

/// (pid, ppid, starttime) of every process; `None` when `/proc` cannot be
/// listed.
pub(crate) fn processes() -> Option<Vec<(i32, i32, u64)>> {
    let all = procfs::process::all_processes().ok()?;
    Some(
        all.flatten()
            .filter_map(|p| p.stat().ok())
            .map(|s| (s.pid, s.ppid, s.starttime))
            .collect(),
    )
}

/// (pid, ppid) of every process (empty when `/proc` cannot be listed).
pub(crate) fn process_table() -> Vec<(i32, i32)> {
    processes()
        .unwrap_or_default()
        .into_iter()
        .map(|(pid, ppid, _)| (pid, ppid))
        .collect()
}

/// The children of `pid` from `/proc/<pid>/task/<pid>/children` (alive or
/// not yet reaped); `None` when the kernel does not offer the file.
pub(crate) fn children(pid: i32) -> Option<Vec<i32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    Some(
        text.split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect(),
    )
}

/// Whether `pid` descends from `ancestor` (its parent chain in `/proc`
/// reaches it). A process that vanished meanwhile is not.
pub(crate) fn is_descendant(pid: i32, ancestor: i32) -> bool {
    let mut current = pid;
    // Deep enough for any real tree; bounded against a loop of stale reads.
    for _ in 0..256 {
        let Ok(stat) = procfs::process::Process::new(current).and_then(|p| p.stat()) else {
            return false;
        };
        if stat.ppid == ancestor {
            return true;
        }
        if stat.ppid <= 1 {
            return false;
        }
        current = stat.ppid;
    }
    false
}
