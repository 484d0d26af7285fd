//! Log lines on stderr, each written with one `write(2)`: no lock is taken,
//! so a child forked while another thread was logging can still log, and
//! lines of the parent and its children never interleave.
//!
//! Every line names the process: `plex-sim[<pid>] <role>: <LEVEL> <text>`.

use std::fmt::Arguments;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static ROLE: OnceLock<String> = OnceLock::new();
static QUIET: AtomicBool = AtomicBool::new(false);

/// Name the role this process plays (`server`, `scanner`, `tuner`…).
pub fn set_role(role: &str) {
    let _ = ROLE.set(role.to_string());
}

/// `--quiet`: only warnings and errors.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

pub fn write(level: Level, args: Arguments<'_>) {
    if level == Level::Info && QUIET.load(Ordering::Relaxed) {
        return;
    }
    let tag = match level {
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    };
    let role = ROLE.get().map(String::as_str).unwrap_or("plex-sim");
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let line = format!("plex-sim[{pid}] {role}: {tag} {args}\n");
    write_stderr(line.as_bytes());
}

/// Raw bytes to fd 2, retried on partial writes.
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing a valid buffer to fd 2.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}
pub(crate) use {error, info, warning};
