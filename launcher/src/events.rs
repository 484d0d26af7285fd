//! The JSON event log: one object a line, the launcher's interface to tests,
//! alerting and people (schema in `docs/events.md`).
//!
//! Every line has `time` (seconds since the epoch, millisecond precision) and
//! `event`; the other fields depend on the event. Each line, newline
//! included, is one `write(2)` on an `O_APPEND` descriptor: several writers
//! sharing the file (two launchers, a launcher and a script) never
//! interleave inside a line, and a reader tailing it sees each event whole.
//! The file is opened by [`crate::log_files`], which refuses planted links
//! and ends a previous run's unterminated last line.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Map;
pub use serde_json::Value;

/// Where events go.
pub struct EventLog {
    out: Option<Out>,
    /// Set after the first failed write, so a full disk is reported once.
    failed: bool,
    /// Set after the first failed rotation, likewise.
    rotation_failed: bool,
}

enum Out {
    Stdout,
    File(crate::log_files::Rotating),
}

impl EventLog {
    /// `None`: no event log. `Some("-")`: standard output. Otherwise a file,
    /// appended to (created with mode 0640 when missing), opened as
    /// [`crate::log_files::open_append`] does; `service_uid` is Plex's user
    /// when the launcher will drop to it.
    pub fn open(target: Option<&str>, service_uid: Option<u32>) -> io::Result<EventLog> {
        let out = match target {
            None => None,
            Some("-") => Some(Out::Stdout),
            Some(path) => Some(Out::File(crate::log_files::Rotating::open(
                Path::new(path),
                service_uid,
                0,
                0,
            )?)),
        };
        Ok(EventLog {
            out,
            failed: false,
            rotation_failed: false,
        })
    }

    /// Rotate the file at `max_bytes` (0: never), keeping `keep` old ones
    /// (`launcher.events_max_bytes`, `launcher.events_keep`).
    pub fn rotate_at(&mut self, max_bytes: u64, keep: u32) {
        if let Some(Out::File(f)) = self.out.as_mut() {
            f.set_limits(max_bytes, keep);
        }
    }

    /// A log that drops everything (mode `off` without an events file).
    pub fn none() -> EventLog {
        EventLog {
            out: None,
            failed: false,
            rotation_failed: false,
        }
    }

    /// Write one event: `fields` must be a JSON object; `time` and `event`
    /// are put first. Returns the line written (without newline), which the
    /// alert command receives for violations.
    pub fn emit(&mut self, event: &str, fields: Value) -> String {
        let mut rest = match fields {
            Value::Object(map) => Value::Object(map),
            _ => Value::Object(Map::new()),
        }
        .to_string();
        rest.remove(0); // the object's `{`: its fields follow ours
        let line = format!(
            "{{\"time\":{},\"event\":{}{}{rest}",
            now_seconds(),
            Value::from(event),
            if rest == "}" { "" } else { "," }
        );
        if let Some(out) = self.out.as_mut() {
            let mut whole = Vec::with_capacity(line.len() + 1);
            whole.extend_from_slice(line.as_bytes());
            whole.push(b'\n');
            let result = match out {
                Out::Stdout => {
                    let mut stdout = io::stdout().lock();
                    stdout.flush().and_then(|_| write_once(&stdout, &whole))
                }
                Out::File(f) => match f.append(&whole) {
                    Ok(Some(e)) => {
                        if !self.rotation_failed {
                            tracing::warn!("cannot rotate the event log: {e}; it grows past launcher.events_max_bytes until this is fixed");
                        }
                        self.rotation_failed = true;
                        Ok(())
                    }
                    Ok(None) => {
                        self.rotation_failed = false;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                if !self.failed {
                    tracing::error!("cannot write to the event log: {e}; further events are lost until it works again");
                }
                self.failed = true;
            } else {
                self.failed = false;
            }
        }
        line
    }
}

/// Write `bytes` with one `write(2)` (retried on EINTR). A short write
/// (a full disk) writes the rest with further calls, and is the only case
/// with more than one.
pub fn write_once(fd: &impl AsRawFd, bytes: &[u8]) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: a write of a live buffer to an fd we hold.
        let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}

/// Seconds since the epoch, rounded to the millisecond.
fn now_seconds() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

/// Read an event log back: one JSON value per non-empty line. For tests,
/// `demo`, and people's scripts.
pub fn read(path: &Path) -> io::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect()
}

/// One line of JSON.
pub fn parse_line(line: &str) -> io::Result<Value> {
    serde_json::from_str(line)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}: {line}")))
}
