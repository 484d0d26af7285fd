//! The demo's live output on standard output: full lines for what matters
//! (phases, alerts), and a status line with the running figures — redrawn
//! in place on a terminal, printed every few seconds otherwise (a log file
//! or a CI job then stays short).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often the status line is printed when standard output is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct View {
    terminal: bool,
    started: Instant,
    last_plain: Option<Instant>,
    status_on_screen: bool,
}

impl Default for View {
    fn default() -> View {
        View::new()
    }
}

impl View {
    pub fn new() -> View {
        View {
            terminal: std::io::stdout().is_terminal(),
            started: Instant::now(),
            last_plain: None,
            status_on_screen: false,
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// A line of its own, with the time since the demo started.
    pub fn line(&mut self, text: &str) {
        self.clear_status();
        println!("{} {text}", self.stamp());
    }

    /// The running figures.
    pub fn status(&mut self, text: &str) {
        let mut out = std::io::stdout();
        if self.terminal {
            let _ = write!(out, "\r\x1b[K{} {text}", self.stamp());
            let _ = out.flush();
            self.status_on_screen = true;
        } else if self.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            self.last_plain = Some(Instant::now());
            println!("{} {text}", self.stamp());
        }
    }

    /// Take the status line off the screen (before a full line, or at the end).
    pub fn clear_status(&mut self) {
        if self.status_on_screen {
            print!("\r\x1b[K");
            let _ = std::io::stdout().flush();
            self.status_on_screen = false;
        }
    }
}

/// A violation in the event log, in words; `None` for other events.
pub fn alert(event: &Value) -> Option<String> {
    let pid = &event["pid"];
    let ppid = &event["ppid"];
    match event["event"].as_str()? {
        "pool_check" if event["verdict"] == "violation" => Some(format!(
            "ALERT pool check failed: process {pid} (born by {} from {ppid}): {}",
            event["birth"].as_str().unwrap_or("?"),
            event["reason"].as_str().unwrap_or("no reason given")
        )),
        "inherited_fd_use" => Some(format!(
            "ALERT process {pid} (child of {ppid}) called {} on fd {}, a PostgreSQL connection of its parent: {}",
            event["syscall"].as_str().unwrap_or("?"),
            event["fd"],
            match event["action"].as_str() {
                Some("denied") => "denied (enforce)",
                Some("killed") => "denied and killed (enforce)",
                _ => "it ran (verify): the parent's session may now be corrupt",
            }
        )),
        _ => None,
    }
}

/// A number with thousands separators: 40000 → "40,000".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(40000), "40,000");
        assert_eq!(thousands(4686105), "4,686,105");
        assert_eq!(thousands(-1234), "-1,234");
    }

    #[test]
    fn alerts_name_the_process_and_what_happened() {
        let v: Value = serde_json::from_str(
            r#"{"event":"inherited_fd_use","pid":7,"ppid":6,"syscall":"write","fd":5,"action":"observed"}"#,
        )
        .unwrap();
        let a = alert(&v).unwrap();
        assert!(
            a.contains("process 7") && a.contains("write on fd 5") && a.contains("verify"),
            "{a}"
        );
        let ok: Value = serde_json::from_str(r#"{"event":"pool_check","verdict":"ok"}"#).unwrap();
        assert!(alert(&ok).is_none());
    }
}
