//! The shim's log: `tracing` events written to `log.file` or standard
//! error, one `write(2)` per line and no lock of our own, so a thread
//! logging while another forks cannot leave the child's log stuck.
//!
//! Each line: `<UTC time> plex-pg[<pid>] <LEVEL> <message> <fields>`.
//! Nothing logged ever holds a password (the settings' `Secret` prints
//! `***`).

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

/// Start logging as `cfg` says. Returns what went wrong opening the log
/// file (then standard error is used).
pub fn init(cfg: &Log) -> Option<String> {
    let mut problem = None;
    if let Some(path) = &cfg.file {
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        match opened {
            // OpenOptions opens with O_CLOEXEC: programs Plex executes do
            // not inherit the log.
            Ok(f) => LOG_FD.store(std::os::fd::IntoRawFd::into_raw_fd(f), Ordering::Relaxed),
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
