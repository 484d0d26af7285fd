//! The shim's log: `tracing` events written to `log.file` or standard
//! error, one `write(2)` per line and no lock of our own, so a thread
//! logging while another forks cannot leave the child's log stuck.
//!
//! Each line: `<UTC time> plex-pg[<pid>] <LEVEL> <message> <fields>`.
//! Nothing logged ever holds a password (the settings' `Secret` prints
//! `***`).

use plex_pg_config::rotate::Limits;
use plex_pg_config::settings::{Log, LogLevel};
use std::fmt;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

static LOG_FD: AtomicI32 = AtomicI32::new(2);

/// `log.file` and its rotation limits, when the log goes to a file: every
/// writer rotates it by the shared protocol (`plex_pg_config::rotate`).
static LOG_FILE: std::sync::OnceLock<(std::path::PathBuf, Limits)> = std::sync::OnceLock::new();

fn open_log(path: &std::path::Path) -> io::Result<std::os::fd::OwnedFd> {
    // OpenOptions opens with O_CLOEXEC: programs Plex executes do not
    // inherit the log.
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .into())
}

/// Start logging as `cfg` says. Returns what went wrong opening the log
/// file (then standard error is used).
pub fn init(cfg: &Log) -> Option<String> {
    let mut problem = None;
    if let Some(path) = &cfg.file {
        match open_log(path) {
            Ok(f) => {
                LOG_FD.store(std::os::fd::IntoRawFd::into_raw_fd(f), Ordering::Relaxed);
                let limits = Limits {
                    max_bytes: cfg.max_bytes,
                    keep: cfg.keep,
                };
                let _ = LOG_FILE.set((path.clone(), limits));
            }
            Err(e) => {
                problem = Some(format!(
                    "cannot open log file {}: {e}; logging to standard error",
                    path.display()
                ))
            }
        }
    }
    let level = match cfg.level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .event_format(LineFormat)
        .with_writer(FdWriter)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
    problem
}

/// Writes each formatted event with one `write(2)` (O_APPEND keeps lines
/// from processes sharing the file whole).
#[derive(Clone, Copy)]
struct FdWriter;

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fd: RawFd = LOG_FD.load(Ordering::Relaxed);
        if let Some((path, limits)) = LOG_FILE.get() {
            // A failed rotation must not lose the line: it goes on into
            // the current file.
            let _ = plex_pg_config::rotate::before_append(fd, path, buf.len(), *limits, &open_log);
        }
        // SAFETY: writing a valid buffer to an fd we opened (or stderr).
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for FdWriter {
    type Writer = FdWriter;
    fn make_writer(&'a self) -> FdWriter {
        *self
    }
}

struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        write!(
            w,
            "{}Z plex-pg[{}] {} ",
            crate::calendar::datetime(now.as_secs() as i64).replacen(' ', "T", 1),
            std::process::id(),
            event.metadata().level()
        )?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}
