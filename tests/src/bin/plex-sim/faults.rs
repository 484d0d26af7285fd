//! The faults the launcher must catch, each done by a forked child of the
//! server (and one self-test of plex-sim's own checks):
//!
//! Each child reports `injected: …` as soon as the fault is done, then what
//! followed, so a fault counts even when its child then hangs.
//!
//! - `stale-handle`: the child runs a query on the parent's database handle
//!   it inherited (the one whose hash query is half-read), through whatever
//!   SQLite is loaded (the shim, under `LD_PRELOAD`).
//! - `raw-write`: the child writes a PostgreSQL Query message straight onto an
//!   inherited socket that plex-sim did not open itself (preferably one whose
//!   peer is a PostgreSQL server).
//! - `exit-after-failed-exec`: the child's `execve` fails and it leaves
//!   through `exit()`, running the exit handlers, which close the sessions
//!   it inherited.
//! - `wrong-result`: a hash query's result is altered before its check, which
//!   must then fail the run.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use clap::ValueEnum;

use crate::children::{self, CStrings, ExecImage};
use crate::sqlite::{sqlite3, Connection};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Fault {
    StaleHandle,
    RawWrite,
    ExitAfterFailedExec,
    WrongResult,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::StaleHandle => "stale-handle",
            Fault::RawWrite => "raw-write",
            Fault::ExitAfterFailedExec => "exit-after-failed-exec",
            Fault::WrongResult => "wrong-result",
        }
    }

    /// The exit code of the fault's child when the fault was injected.
    pub fn injected_exit(self) -> i32 {
        match self {
            Fault::ExitAfterFailedExec => 127,
            _ => 0,
        }
    }
}

/// Report lines of a fault's child: `injected: …` once the fault is done
/// (so a child that hangs afterwards still counts), then `outcome: …`.
pub const INJECTED: &str = "injected: ";

fn announce(report_fd: i32, what: &str) {
    children::write_all_fd(report_fd, format!("{INJECTED}{what}\n").as_bytes());
}

/// Whether a fault child's report says the fault was injected.
pub fn was_injected(report: &str) -> bool {
    report.lines().any(|l| l.starts_with(INJECTED))
}

/// `stale-handle`, in the child: a query on the inherited handle. Whatever
/// the answer, the fault was injected; the report says what happened.
pub fn stale_handle_child(handle: *mut sqlite3, report_fd: i32) -> (i32, String) {
    announce(
        report_fd,
        &format!("a query on the parent's handle {handle:p}, whose hash query is half-read"),
    );
    // SAFETY: `handle` was opened by the parent before the fork; it is used,
    // never closed, here.
    let conn = unsafe { Connection::inherited(handle) };
    let outcome = conn
        .prepare("select count(*) from metadata_items")
        .and_then(|mut s| s.all_rows());
    match outcome {
        Ok(rows) => (
            0,
            format!("outcome: the query on the inherited handle answered {rows:?}"),
        ),
        Err(e) => (
            0,
            format!("outcome: the query on the inherited handle failed: {e}"),
        ),
    }
}

/// A socket's peer, and whether it is a PostgreSQL server.
#[derive(Debug, Clone)]
pub struct Peer {
    pub fd: i32,
    pub description: String,
    pub postgres: bool,
}

/// This process's open fds, in order.
pub fn open_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// Every socket among this process's open fds, with its peer.
pub fn sockets() -> Vec<Peer> {
    open_fds()
        .into_iter()
        .filter(|&fd| is_socket(fd))
        .map(peer_of)
        .collect()
}

/// Fds opened since start-up that now point to `/dev/null`: where the shim's
/// fork handler put the inherited PostgreSQL sockets (their numbers kept).
fn neutralized(startup: &[i32]) -> Vec<i32> {
    open_fds()
        .into_iter()
        .filter(|fd| !startup.contains(fd))
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|t| t == Path::new("/dev/null"))
        })
        .collect()
}

fn is_socket(fd: i32) -> bool {
    // SAFETY: fstat into a zeroed struct.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    }
}

fn postgres_port() -> u16 {
    std::env::var("PLEX_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432)
}

fn peer_of(fd: i32) -> Peer {
    // SAFETY: getpeername into a sockaddr_storage of the right length.
    let (family, addr) = unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) != 0
        {
            return Peer {
                fd,
                description: "no peer (not connected)".into(),
                postgres: false,
            };
        }
        (i32::from(addr.ss_family), addr)
    };
    match family {
        libc::AF_UNIX => {
            // SAFETY: the family says this is a sockaddr_un.
            let un =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_un>() };
            let bytes: Vec<u8> = un
                .sun_path
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
            let postgres = path
                .file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b".s.PGSQL."));
            Peer {
                fd,
                description: format!("unix socket {}", path.display()),
                postgres,
            }
        }
        libc::AF_INET | libc::AF_INET6 => {
            let port = if family == libc::AF_INET {
                // SAFETY: the family says this is a sockaddr_in.
                u16::from_be(unsafe {
                    (*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()).sin_port
                })
            } else {
                // SAFETY: the family says this is a sockaddr_in6.
                u16::from_be(unsafe {
                    (*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>())
                        .sin6_port
                })
            };
            Peer {
                fd,
                description: format!("TCP port {port}"),
                postgres: port == postgres_port(),
            }
        }
        other => Peer {
            fd,
            description: format!("socket of family {other}"),
            postgres: false,
        },
    }
}

/// A PostgreSQL simple-protocol Query message.
pub fn query_message(sql: &str) -> Vec<u8> {
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    msg.extend_from_slice(sql.as_bytes());
    msg.push(0);
    msg
}

/// The SQL the raw write sends.
pub const RAW_WRITE_SQL: &str = "SELECT 'plex-sim raw write from a forked child'";

/// Exit code of a fault's child when the shim's fork handler had already
/// made the fault impossible (not an error: the defence worked).
pub const PREVENTED: i32 = 3;

/// `raw-write`, in the child: pick the inherited socket and write on it.
/// `startup` lists the fds the process had before it opened anything.
pub fn raw_write_child(startup: &[i32], report_fd: i32) -> (i32, String) {
    let socks = sockets();
    let target = socks
        .iter()
        .find(|p| p.postgres)
        .or_else(|| socks.iter().find(|p| !startup.contains(&p.fd)))
        .cloned();
    let Some(target) = target else {
        let nulls = neutralized(startup);
        if !nulls.is_empty() {
            return (
                PREVENTED,
                format!(
                    "prevented: no socket to write on; fds {nulls:?}, opened since start-up, now point to /dev/null \
                     (the shim's fork handler made the inherited sockets harmless)"
                ),
            );
        }
        return (
            2,
            format!(
                "not injected: no socket to write on: no PostgreSQL peer and no socket opened since start-up among {} \
                 sockets (this fault needs the shim's PostgreSQL connections: run plex-sim with the shim preloaded)",
                socks.len()
            ),
        );
    };
    let msg = query_message(RAW_WRITE_SQL);
    let peer = format!(
        "{}{}",
        target.description,
        if target.postgres {
            ", a PostgreSQL server"
        } else {
            ""
        }
    );
    // SAFETY: writing a valid buffer to an fd this process holds.
    let n = unsafe { libc::write(target.fd, msg.as_ptr().cast(), msg.len()) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return (
            2,
            format!(
                "not injected: writing a PostgreSQL Query message on inherited fd {} ({peer}) failed: {e}",
                target.fd
            ),
        );
    }
    announce(
        report_fd,
        &format!(
            "wrote {n} bytes (a PostgreSQL Query message) on inherited fd {} ({peer})",
            target.fd
        ),
    );
    (
        0,
        "outcome: the child leaves without reading the answer".into(),
    )
}

/// `exit-after-failed-exec`, in the child: `execve` of a missing program
/// fails; the report is written, then `exit(127)` runs the exit handlers.
pub fn exit_after_failed_exec_child(
    image: &ExecImage,
    missing: &CStr,
    argv: &CStrings,
    report_fd: i32,
) -> ! {
    announce(
        report_fd,
        &format!("execve of the missing {missing:?}, then exit() instead of _exit()"),
    );
    // SAFETY: in a forked child; exit() is the fault being injected.
    unsafe {
        libc::execve(missing.as_ptr(), argv.as_ptr(), image.env.as_ptr());
        let e = std::io::Error::last_os_error();
        let report = format!(
            "outcome: execve failed: {e}; leaving through exit(), which runs the exit handlers\n"
        );
        children::write_all_fd(report_fd, report.as_bytes());
        libc::exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_message_is_framed() {
        let m = query_message("SELECT 1");
        assert_eq!(m[0], b'Q');
        assert_eq!(
            u32::from_be_bytes([m[1], m[2], m[3], m[4]]) as usize,
            m.len() - 1
        );
        assert_eq!(*m.last().unwrap(), 0);
    }

    #[test]
    fn a_socketpair_is_seen_with_no_postgres_peer() {
        let mut fds = [0; 2];
        // SAFETY: valid array.
        assert_eq!(
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) },
            0
        );
        let socks = sockets();
        let mine: Vec<&Peer> = socks.iter().filter(|p| fds.contains(&p.fd)).collect();
        assert_eq!(mine.len(), 2, "{socks:?}");
        assert!(mine.iter().all(|p| !p.postgres));
        // SAFETY: closing our own fds.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
