//! Reports to the launcher: datagrams on the Unix socket named by
//! `PLEX_PG_SUPERVISOR` (a path, or `@name` for an abstract socket).
//!
//! The socket is opened once per process, close-on-exec, and connected, so
//! a forked child reuses it and the kernel stamps each datagram with the
//! real sender's pid. The kernel queues only a few datagrams per socket
//! (`net.unix.max_dgram_qlen`, 10 by default), and a burst of forks sends
//! more than that, so a send waits for room, for at most [`SEND_TIMEOUT`]
//! (`SO_SNDTIMEO`): a slow launcher delays a report a little, a stuck one
//! costs it, and a gone one fails at once. Never a SIGPIPE. (A launcher
//! stalled for longer would stall the processes it traces anyway.)
//! [`Reporter::after_fork`] allocates nothing: it runs in the fork handler.
//! [`Reporter::tally`] never waits: the shim's figures are cumulative, so
//! one dropped on a full queue is made good by the next.

use plex_pg_config::report::{self, HarmlessFd, Kind, SlotSocket, Tally, MAX_AFTER_FORK};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// The longest a report waits for room in the launcher's queue.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Reporter {
    fd: AtomicI32,
}

impl Reporter {
    /// A reporter that sends nothing.
    pub const fn none() -> Reporter {
        Reporter {
            fd: AtomicI32::new(-1),
        }
    }

    /// Connect to the launcher named in the environment, if any. Returns
    /// the reporter and, when the variable is set but unusable, why.
    pub fn from_env() -> (Reporter, Option<String>) {
        let Some(addr) = std::env::var_os(report::SUPERVISOR_ENV).filter(|a| !a.is_empty()) else {
            return (Reporter::none(), None);
        };
        let addr = std::os::unix::ffi::OsStrExt::as_bytes(addr.as_os_str()).to_vec();
        match connect(&addr) {
            Ok(fd) => (Reporter { fd: AtomicI32::new(fd) }, None),
            Err(e) => (
                Reporter::none(),
                Some(format!(
                    "cannot reach the launcher at {} ({e}); fork-safety reports are off for this process",
                    String::from_utf8_lossy(&addr)
                )),
            ),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.fd.load(Ordering::Relaxed) >= 0
    }

    fn send(&self, buf: &[u8]) {
        self.send_with(buf, libc::MSG_NOSIGNAL)
    }

    fn send_with(&self, buf: &[u8], flags: libc::c_int) {
        let fd = self.fd.load(Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: sending a valid buffer on our socket.
            unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
        }
    }

    pub fn hello(&self, pool_capacity: u32, fork_handler: bool) {
        let mut buf = [0u8; 64];
        let (pid, ppid) = ids();
        if let Some(n) = report::encode_hello(
            &mut buf,
            pid,
            ppid,
            env!("CARGO_PKG_VERSION"),
            pool_capacity,
            fork_handler,
        ) {
            self.send(&buf[..n]);
        }
    }

    /// Connected or Closed.
    pub fn connection(&self, kind: Kind, slot: u32, fd: RawFd, inode: u64, generation: u64) {
        let mut buf = [0u8; 48];
        let (pid, ppid) = ids();
        if let Some(n) = report::encode_connection(
            &mut buf,
            kind,
            pid,
            ppid,
            SlotSocket { slot, fd, inode },
            generation,
        ) {
            self.send(&buf[..n]);
        }
    }

    /// From the child's fork handler: async-signal-safe.
    pub fn after_fork(&self, generation: u64, slots_in_use: u32, harmless: &[HarmlessFd]) {
        if !self.is_connected() {
            return;
        }
        // The largest AfterFork: a socket per pool slot and the pooler
        // probe's (4,144 bytes, `report::MAX_AFTER_FORK`). Zero-filled on
        // the child's stack, so sized for this report alone.
        let mut buf = [0u8; MAX_AFTER_FORK];
        let (pid, ppid) = ids();
        if let Some(n) =
            report::encode_after_fork(&mut buf, pid, ppid, generation, slots_in_use, harmless)
        {
            self.send(&buf[..n]);
        }
    }

    /// The shim's figures (see `crate::tally`), without waiting for room.
    pub fn tally(&self, t: &Tally) {
        let mut buf = [0u8; report::TALLY_LEN];
        let (pid, ppid) = ids();
        if let Some(n) = report::encode_tally(&mut buf, pid, ppid, t) {
            self.send_with(&buf[..n], libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
        }
    }
}

fn ids() -> (i32, i32) {
    // SAFETY: getpid/getppid cannot fail and are async-signal-safe.
    unsafe { (libc::getpid(), libc::getppid()) }
}

/// A close-on-exec datagram socket connected to `addr`.
fn connect(addr: &[u8]) -> std::io::Result<RawFd> {
    // SAFETY: socket/connect with a properly filled sockaddr_un.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let (abstract_name, name) = match addr.strip_prefix(b"@") {
            Some(rest) => (true, rest),
            None => (false, addr),
        };
        let offset = abstract_name as usize; // abstract names start with a NUL byte
        if name.len() + offset >= sa.sun_path.len() {
            libc::close(fd);
            return Err(std::io::Error::other("socket address too long"));
        }
        for (i, b) in name.iter().enumerate() {
            sa.sun_path[i + offset] = *b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>()
            + offset
            + name.len()
            + (!abstract_name) as usize;
        if libc::connect(
            fd,
            (&sa as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        ) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        let timeout = libc::timeval {
            tv_sec: SEND_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: SEND_TIMEOUT.subsec_micros() as libc::suseconds_t,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        Ok(fd)
    }
}
