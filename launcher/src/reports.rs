//! Receiving the shim's reports: a Unix datagram socket with `SO_PASSCRED`,
//! so every datagram carries the sender's pid as the kernel saw it.
//!
//! The socket lives in a fresh directory (mode 0700, owned by the launcher's
//! user, which is Plex's user once [`crate::privileges`] ran); its path is
//! passed to Plex in `PLEX_PG_SUPERVISOR`. The directory is removed when the
//! [`ReportSocket`] is dropped.
//!
//! Any process of Plex's user can send datagrams here, so rejections are
//! logged through [`RejectedLog`] (which says what to log; the judge hands
//! the lines to the human log): the first few of an interval in full,
//! the rest as one count when the interval ends — a flood costs a line per
//! interval, not a line per datagram.

use std::io;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use plex_pg_config::report::{self, Message, MAX_DATAGRAM};

/// How long a logging interval of rejected reports lasts.
pub const REJECTED_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Rejections logged in full per interval; the rest are counted.
pub const REJECTED_LOG_BURST: u32 = 5;

/// Rate-limited logging of rejected reports.
#[derive(Debug)]
pub struct RejectedLog {
    interval_start: std::time::Instant,
    in_interval: u32,
}

impl Default for RejectedLog {
    fn default() -> Self {
        RejectedLog {
            interval_start: std::time::Instant::now(),
            in_interval: 0,
        }
    }
}

impl RejectedLog {
    /// A report was rejected, for `why`: the lines to log (none once the
    /// interval's burst is used up).
    pub fn rejected(
        &mut self,
        now: std::time::Instant,
        why: impl FnOnce() -> String,
    ) -> Vec<String> {
        let mut lines: Vec<String> = self.flush(now).into_iter().collect();
        self.in_interval += 1;
        if self.in_interval <= REJECTED_LOG_BURST {
            lines.push(format!("rejected a report: {}", why()));
            if self.in_interval == REJECTED_LOG_BURST {
                lines.push(format!(
                    "further rejected reports in the next {} s are counted, not logged one by one",
                    REJECTED_LOG_INTERVAL.as_secs()
                ));
            }
        }
        lines
    }

    /// End the interval when it is over: the line that says how many were
    /// not shown, if any.
    pub fn flush(&mut self, now: std::time::Instant) -> Option<String> {
        if now.duration_since(self.interval_start) < REJECTED_LOG_INTERVAL {
            return None;
        }
        let line = (self.in_interval > REJECTED_LOG_BURST).then(|| {
            format!(
                "rejected {} more report(s) in the last {} s (counted in the summary's reports_rejected)",
                self.in_interval - REJECTED_LOG_BURST,
                REJECTED_LOG_INTERVAL.as_secs()
            )
        });
        self.interval_start = now;
        self.in_interval = 0;
        line
    }

    /// When [`RejectedLog::flush`] has a count to log.
    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        (self.in_interval > REJECTED_LOG_BURST).then(|| self.interval_start + REJECTED_LOG_INTERVAL)
    }
}

/// One datagram, decoded.
#[derive(Debug)]
pub struct Received {
    /// The sender's pid as the kernel attested it (thread group id).
    pub sender: Option<i32>,
    pub message: Result<Message, String>,
}

pub struct ReportSocket {
    fd: OwnedFd,
    dir: PathBuf,
    path: PathBuf,
}

/// Most bytes of a sun_path, with its NUL.
const SUN_PATH_MAX: usize = 108;

impl ReportSocket {
    /// Create the socket in a new directory under `base`.
    pub fn bind(base: &Path) -> io::Result<ReportSocket> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("plex-pg-launcher.{}.{nanos:x}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| annotate(e, &dir, "creating"))?;
        let path = dir.join("supervisor.sock");
        if path.as_os_str().len() >= SUN_PATH_MAX {
            let _ = std::fs::remove_dir(&dir);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the report socket path {} is longer than a Unix socket path may be; set TMPDIR to a shorter directory", path.display()),
            ));
        }
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(io::Error::from)?;
        setsockopt(&fd, sockopt::PassCred, &true).map_err(io::Error::from)?;
        // The kernel caps queued datagrams (net.unix.max_dgram_qlen), not
        // only bytes; a larger buffer still helps with bursts of big ones.
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(1 << 20));
        let addr = UnixAddr::new(&path).map_err(io::Error::from)?;
        bind(fd.as_raw_fd(), &addr).map_err(|e| annotate(io::Error::from(e), &path, "binding"))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(ReportSocket { fd, dir, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next datagram, or `None` when none is waiting.
    pub fn recv(&self) -> Option<Received> {
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let (len, truncated, sender) = match recvmsg::<()>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(msg) => {
                let sender = msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                        _ => None,
                    })
                });
                (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC), sender)
            }
            Err(nix::errno::Errno::EAGAIN) => return None,
            Err(nix::errno::Errno::EINTR) => return None,
            Err(e) => {
                tracing::warn!("reading the shim's reports failed: {e}");
                return None;
            }
        };
        let message = if truncated || len > MAX_DATAGRAM {
            Err(format!(
                "datagram longer than the largest report ({MAX_DATAGRAM} bytes)"
            ))
        } else {
            report::decode(&buf[..len]).map_err(|e| e.to_string())
        };
        Some(Received { sender, message })
    }
}

impl AsFd for ReportSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ReportSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn annotate(e: io::Error, path: &Path, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// The directory the report socket goes in: systemd's `RUNTIME_DIRECTORY`
/// when set, else the temporary directory.
pub fn default_base() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|v| std::env::split_paths(&v).next())
        .unwrap_or_else(std::env::temp_dir)
}
