//! Signals the way Plex's server handles them: SIGCHLD and the stop signals
//! (TERM, INT, HUP) are blocked in every thread, and one supervising thread
//! takes them synchronously with `sigtimedwait`; executed children get
//! SIGCHLD unblocked and SIGPIPE at its default before they exec.

use std::time::Duration;

/// What a supervising thread was woken by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A child changed state: reap.
    Child,
    /// TERM, INT or HUP: stop cleanly. Carries the signal number.
    Stop(i32),
    /// Nothing within the timeout.
    Tick,
}

const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn set_of(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialized by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn handled() -> libc::sigset_t {
    set_of(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
}

/// Block SIGCHLD and the stop signals in the calling thread; threads started
/// afterwards inherit the mask. Call first thing in `main`.
pub fn block() {
    let set = handled();
    // SAFETY: valid set; changes only this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Wait up to `timeout` for one of the blocked signals.
pub fn wait(timeout: Duration) -> Wake {
    let set = handled();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set and timespec; info may be null.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    match sig {
        s if s == libc::SIGCHLD => Wake::Child,
        s if STOP_SIGNALS.contains(&s) => Wake::Stop(s),
        _ => Wake::Tick,
    }
}

/// A stop signal that is pending, taken (for loops that do not wait, like the fill).
pub fn take_pending_stop() -> Option<i32> {
    let set = set_of(&STOP_SIGNALS);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid set and timespec.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
    (sig > 0).then_some(sig)
}

/// The signal state an executed child starts with, ready before the fork so
/// the child only makes syscalls with it: SIGCHLD unblocked, the stop
/// signals still blocked (a plex-sim helper takes them with `sigtimedwait`,
/// so a TERM sent the instant after it starts is neither lost nor fatal
/// before it is ready), and SIGPIPE back to its default (Rust ignores it).
pub struct ChildReset {
    pub mask: libc::sigset_t,
    pub defaults: libc::sigset_t,
}

impl ChildReset {
    pub fn new() -> ChildReset {
        ChildReset {
            mask: set_of(&STOP_SIGNALS),
            defaults: set_of(&[libc::SIGPIPE]),
        }
    }

    /// In a child before `execve`. Async-signal-safe, legal after vfork.
    ///
    /// # Safety
    /// Only in a freshly forked or vforked child.
    pub unsafe fn apply_in_child(&self) {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
    }
}

/// Name of a signal for logs.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGALRM => "SIGALRM".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        other => format!("signal {other}"),
    }
}
