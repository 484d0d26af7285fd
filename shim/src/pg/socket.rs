//! The connection's socket, as tokio-postgres wants it (`AsyncRead` +
//! `AsyncWrite`), without a tokio reactor: reads and writes are plain
//! non-blocking syscalls, and "would block" is `Pending`. The executor in
//! [`super::drive`] then waits for the socket with `poll(2)`.
//!
//! Owning the socket ourselves is what makes the pool fork-safe: we know
//! its fd and inode (for the launcher's reports and the child's fork
//! handler), it is close-on-exec from birth, and there is no runtime with
//! an epoll set or eventfd for a child to inherit.
//!
//! The invariant the child's fork handler relies on: **at the instant of
//! any `fork()`, a socket of ours is open if and only if its fd is
//! published in a [`SocketRecord`]**. It is kept by [`SOCKETS`], a lock the
//! fork handlers take before `fork()` (see `fork.rs`), held around the two
//! moments the answer changes: `socket(2)` together with publishing its fd
//! ([`SocketRecord::open`]), and `close(2)` together with withdrawing it
//! ([`SocketFd`]'s drop). Between those moments (connecting, TLS later,
//! start-up, queries, the polite goodbye) the fd is published, so a fork at
//! any point finds it. Publishing after `connect` (as this module once did)
//! let children of a process churning connections keep a parent's socket
//! the handler never saw; withdrawing before `close` would do the same for
//! the instant between the two, and withdrawing after `close` without the
//! lock would let the handler point an fd number another thread had just
//! reused at `/dev/null`.

use crate::lock::RawLock;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Held around creating a socket and publishing it, around closing one
/// and withdrawing it, and by the fork handlers across `fork()`. A leaf:
/// nothing else is locked while it is held, and what it guards are single
/// non-blocking syscalls.
static SOCKETS: RawLock = RawLock::new();

/// The lock the fork handlers take (last) before `fork()`.
pub fn fork_lock() -> &'static RawLock {
    &SOCKETS
}

/// What the executor needs to know about the socket while tokio-postgres
/// owns it.
#[derive(Debug, Default)]
pub struct Readiness {
    /// The last write would have blocked: wait for POLLOUT too.
    pub want_write: AtomicBool,
}

/// Where a socket's fd and inode are published for the fork handler (a
/// pool slot): from the `socket(2)` that made it to the `close(2)` that
/// ends it, atomically with both as far as `fork()` can tell.
#[derive(Debug)]
pub struct SocketRecord {
    pub fd: AtomicI32,
    pub inode: AtomicU64,
}

impl SocketRecord {
    pub const fn new() -> SocketRecord {
        SocketRecord {
            fd: AtomicI32::new(-1),
            inode: AtomicU64::new(0),
        }
    }

    /// A new close-on-exec socket (`socket(domain, kind, 0)`), published
    /// here before any fork can see its fd. A record holds one socket at a
    /// time: the previous one must be closed first.
    pub fn open(&'static self, domain: libc::c_int, kind: libc::c_int) -> io::Result<SocketFd> {
        SOCKETS.lock();
        // SAFETY: socket(2) takes no pointers.
        let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, 0) };
        let opened = if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            debug_assert_eq!(
                self.fd.load(Ordering::Relaxed),
                -1,
                "a pool slot holds one socket at a time"
            );
            self.inode.store(socket_inode(fd), Ordering::Release);
            self.fd.store(fd, Ordering::Release);
            Ok(SocketFd { fd, record: self })
        };
        SOCKETS.unlock();
        opened
    }
}

impl Default for SocketRecord {
    fn default() -> Self {
        Self::new()
    }
}

/// An open socket of ours, published in its record until dropped; the
/// drop closes it and withdraws it as one step under [`SOCKETS`].
#[derive(Debug)]
pub struct SocketFd {
    fd: RawFd,
    record: &'static SocketRecord,
}

impl SocketFd {
    pub fn inode(&self) -> u64 {
        self.record.inode.load(Ordering::Acquire)
    }
}

impl AsRawFd for SocketFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl AsFd for SocketFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as self lives.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl Drop for SocketFd {
    fn drop(&mut self) {
        SOCKETS.lock();
        // SAFETY: closing the fd we own, once.
        unsafe { libc::close(self.fd) };
        if self
            .record
            .fd
            .compare_exchange(self.fd, -1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.record.inode.store(0, Ordering::Release);
        }
        SOCKETS.unlock();
    }
}

/// The inode the kernel shows for a socket (`socket:[inode]`).
pub fn socket_inode(fd: RawFd) -> u64 {
    // SAFETY: fstat into a zeroed stat buffer.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0 {
            st.st_ino
        } else {
            0
        }
    }
}

pub struct Socket {
    fd: SocketFd,
    readiness: Arc<Readiness>,
}

impl Socket {
    /// Take a connected, non-blocking socket of ours.
    pub fn new(fd: SocketFd) -> (Socket, Arc<Readiness>) {
        let readiness = Arc::new(Readiness::default());
        (
            Socket {
                fd,
                readiness: readiness.clone(),
            },
            readiness,
        )
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        loop {
            // SAFETY: reading into a valid, writable buffer of that length.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    unfilled.as_mut_ptr().cast(),
                    unfilled.len(),
                )
            };
            if n >= 0 {
                buf.advance(n as usize);
                return Poll::Ready(Ok(()));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Poll::Pending,
                _ => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            // SAFETY: sending from a valid buffer; MSG_NOSIGNAL: a closed
            // peer is an error, not a SIGPIPE that would kill Plex.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                self.readiness.want_write.store(false, Ordering::Relaxed);
                return Poll::Ready(Ok(n as usize));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    self.readiness.want_write.store(true, Ordering::Relaxed);
                    return Poll::Pending;
                }
                _ => return Poll::Ready(Err(err)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// No `shutdown(2)`: closing the fd (on drop) ends our side, and a
    /// shutdown would also end it for any process sharing the socket.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
