//! Progress of a table's load: on a terminal (standard error), one line
//! redrawn in place — the table, a bar, rows of the table's total, bytes,
//! rate and time left — at most ten times a second, cleared when the table
//! is done (the `loaded …` line on standard output then says it). Not on a
//! terminal (a log, a pipe), a plain `loading …` line on standard output
//! every 5 s or so while a large table loads, and nothing else.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// One table's load.
pub struct TableProgress {
    name: String,
    total: u64,
    started: Instant,
    terminal: bool,
    last: Instant,
    drawn: bool,
}

impl TableProgress {
    /// `total`: the rows the table holds (counted when every value was checked).
    pub fn new(name: &str, total: u64) -> TableProgress {
        TableProgress::with_terminal(name, total, std::io::stderr().is_terminal())
    }

    fn with_terminal(name: &str, total: u64, terminal: bool) -> TableProgress {
        let now = Instant::now();
        TableProgress {
            name: name.to_string(),
            total,
            started: now,
            terminal,
            last: now,
            drawn: false,
        }
    }

    /// The line for `rows` and `bytes` so far, after `secs`.
    fn line(&self, rows: u64, bytes: u64, secs: f64) -> String {
        let rate = rows as f64 / secs.max(1e-6);
        let left = self.total.saturating_sub(rows);
        let eta = if rate > 0.0 {
            format!("{:.0} s", left as f64 / rate)
        } else {
            "?".into()
        };
        if self.terminal {
            const WIDTH: u64 = 24;
            let filled = (rows.min(self.total) * WIDTH / self.total.max(1)) as usize;
            format!(
                "  loading {} [{}{}] {rows}/{} rows, {:.1} MB, {rate:.0} rows/s, {eta} left",
                self.name,
                "#".repeat(filled),
                "-".repeat(WIDTH as usize - filled),
                self.total,
                bytes as f64 / 1e6,
            )
        } else {
            format!(
                "  loading {}: {rows} of {} rows so far, {:.1} MB ({rate:.0} rows/s, about {eta} left)",
                self.name,
                self.total,
                bytes as f64 / 1e6,
            )
        }
    }

    /// Called as rows go out (cheap unless it is time to show something).
    pub fn update(&mut self, rows: u64, bytes: u64) {
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let line = self.line(rows, bytes, self.started.elapsed().as_secs_f64());
        if self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.drawn = true;
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// The table is done: the bar is cleared.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for TableProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_rows_bytes_rate_and_time_left() {
        let p = TableProgress::with_terminal("metadata_items", 1000, false);
        let line = p.line(250, 2_500_000, 0.5);
        assert_eq!(
            line,
            "  loading metadata_items: 250 of 1000 rows so far, 2.5 MB (500 rows/s, about 2 s left)"
        );
        let p = TableProgress::with_terminal("tags", 100, true);
        let line = p.line(50, 1_000, 1.0);
        assert!(
            line.contains("[############------------] 50/100 rows")
                && line.contains("50 rows/s, 1 s left"),
            "{line}"
        );
        // More rows than counted (a row added since) never overflows the bar.
        assert!(p.line(150, 0, 1.0).contains("[########################]"));
    }
}
