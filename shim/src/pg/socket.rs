//! The connection's socket, as tokio-postgres wants it (`AsyncRead` +
//! `AsyncWrite`), without a tokio reactor: reads and writes are plain
//! non-blocking syscalls, and "would block" is `Pending`. The executor in
//! [`super::drive`] then waits for the socket with `poll(2)`.
//!
//! Owning the socket ourselves is what makes the pool fork-safe: we know
//! its fd and inode (for the launcher's reports and the child's fork
//! handler), it is close-on-exec from birth, and there is no runtime with
//! an epoll set or eventfd for a child to inherit.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the executor needs to know about the socket while tokio-postgres
/// owns it.
#[derive(Debug, Default)]
pub struct Readiness {
    /// The last write would have blocked: wait for POLLOUT too.
    pub want_write: AtomicBool,
}

/// Where a socket's fd and inode are published for the fork handler (a
/// pool slot). Published as soon as the socket exists, withdrawn before it
/// is closed, so a fork at any moment finds every socket of ours.
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
}

impl Default for SocketRecord {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Socket {
    fd: OwnedFd,
    readiness: Arc<Readiness>,
    record: Option<&'static SocketRecord>,
}

impl Socket {
    /// Take a connected, non-blocking, close-on-exec socket, publishing it
    /// in `record`.
    pub fn new(
        fd: OwnedFd,
        inode: u64,
        record: Option<&'static SocketRecord>,
    ) -> (Socket, Arc<Readiness>) {
        if let Some(r) = record {
            r.inode.store(inode, Ordering::Release);
            r.fd.store(fd.as_raw_fd(), Ordering::Release);
        }
        let readiness = Arc::new(Readiness::default());
        (
            Socket {
                fd,
                readiness: readiness.clone(),
                record,
            },
            readiness,
        )
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Withdraw before the fd closes (the field drops after this), so
        // the fork handler never neutralizes a number reused by another
        // file.
        if let Some(r) = self.record {
            let _ =
                r.fd.compare_exchange(self.fd.as_raw_fd(), -1, Ordering::AcqRel, Ordering::Relaxed);
        }
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
