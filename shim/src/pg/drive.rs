//! A minimal executor: runs one future, together with the connection's
//! I/O future, on the calling thread, and sleeps in `poll(2)` on the socket
//! when neither can progress. This is what the `postgres` crate's sync
//! wrapper does with a tokio runtime; doing it with one syscall and no
//! runtime keeps every fd of a connection known (see [`super::socket`]).
//!
//! Progress between the two futures (a request queued, a response
//! delivered) goes through tokio-postgres's channels, which wake the waker
//! they were polled with: ours sets a flag, and a set flag means "poll
//! again before sleeping".

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

/// The waker: remembers that something was woken.
#[derive(Default)]
pub struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Why driving stopped before the future finished.
#[derive(Debug)]
pub enum Stop {
    /// The connection's I/O future ended: the server closed the
    /// connection, or I/O failed.
    ConnectionEnded(Option<tokio_postgres::Error>),
    /// The deadline passed.
    TimedOut,
    /// `poll(2)` itself failed.
    Io(io::Error),
}

/// Something that makes the connection's I/O progress when polled.
pub trait Pump {
    /// Poll the connection; `Ready` means it has ended.
    fn pump(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tokio_postgres::Error>>;
}

/// Drive `fut` to completion on this thread.
pub fn block_on<F: Future>(
    fd: RawFd,
    want_write: &AtomicBool,
    flag: &Arc<Flag>,
    pump: &mut dyn Pump,
    fut: F,
    deadline: Option<Instant>,
) -> Result<F::Output, Stop> {
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        flag.0.store(false, Ordering::Release);
        // The future first: the next row of a result is usually already
        // received, and then the connection need not be touched at all
        // (no syscall per row).
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        if let Poll::Ready(end) = pump.pump(&mut cx) {
            // The future may still complete from what was already received.
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Ok(v);
            }
            return Err(Stop::ConnectionEnded(end.err()));
        }
        if flag.0.load(Ordering::Acquire) {
            continue;
        }
        wait(fd, want_write.load(Ordering::Relaxed), deadline)?;
    }
}

/// Drive a future that owns the socket itself (the start-up handshake,
/// before there is a connection future to pump).
pub fn block_on_alone<F: Future>(
    fd: RawFd,
    want_write: &AtomicBool,
    fut: F,
    deadline: Option<Instant>,
) -> Result<F::Output, Stop> {
    struct Nothing;
    impl Pump for Nothing {
        fn pump(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), tokio_postgres::Error>> {
            Poll::Pending
        }
    }
    block_on(
        fd,
        want_write,
        &Arc::new(Flag::default()),
        &mut Nothing,
        fut,
        deadline,
    )
}

/// Sleep until the socket is readable (or writable, when a write is
/// pending), or the deadline passes.
fn wait(fd: RawFd, want_write: bool, deadline: Option<Instant>) -> Result<(), Stop> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | if want_write { libc::POLLOUT } else { 0 },
        revents: 0,
    };
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Stop::TimedOut);
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n > 0 {
            return Ok(());
        }
        if n == 0 {
            continue; // the loop re-checks the deadline
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(Stop::Io(err));
        }
    }
}

/// Poll three futures to completion together, in order (`a`, then `b`,
/// then `c`, on every poll). With tokio-postgres this pipelines their
/// requests: each is sent on its first poll, so three statements cost one
/// round trip.
pub async fn join3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> (A::Output, B::Output, C::Output) {
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                rc = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() && rc.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap(), rc.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Poll futures to completion together, in order on every poll, like
/// [`join3`] for any number: each request is sent on its first poll, so
/// they all cost one round trip. Their outputs, in order.
pub async fn join_all<'a, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + 'a>>>) -> Vec<T> {
    let mut futures = futures;
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(done.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}
