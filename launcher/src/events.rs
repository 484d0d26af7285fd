//! The JSON event log: one object a line, the launcher's interface to tests,
//! alerting and people (schema in `docs/events.md`).
//!
//! Every line has `time` (seconds since the epoch, millisecond precision) and
//! `event`; the other fields depend on the event. The log is flushed after
//! every line, so a reader tailing it sees each event as it happens.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Map;
pub use serde_json::Value;

/// Where events go.
pub struct EventLog {
    out: Option<Box<dyn Write>>,
    /// Set after the first failed write, so a full disk is reported once.
    failed: bool,
}

impl EventLog {
    /// `None`: no event log. `Some("-")`: standard output. Otherwise a file,
    /// appended to (created with mode 0640 when missing).
    pub fn open(target: Option<&str>) -> io::Result<EventLog> {
        let out: Option<Box<dyn Write>> = match target {
            None => None,
            Some("-") => Some(Box::new(io::stdout())),
            Some(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                let file: File = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(Path::new(path))?;
                Some(Box::new(file))
            }
        };
        Ok(EventLog { out, failed: false })
    }

    /// A log that drops everything (mode `off` without an events file).
    pub fn none() -> EventLog {
        EventLog {
            out: None,
            failed: false,
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
            let result = writeln!(out, "{line}").and_then(|_| out.flush());
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
