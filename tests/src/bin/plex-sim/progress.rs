//! Progress of long work on stderr: a bar redrawn in place on a terminal,
//! otherwise a line at every tenth of the way (so logs stay short).

use std::io::IsTerminal;
use std::time::Instant;

use crate::log;

pub struct Progress {
    what: String,
    total: u64,
    done: u64,
    started: Instant,
    terminal: bool,
    last_tenth: u64,
}

impl Progress {
    pub fn new(what: &str, total: u64) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        log::info!("{what}: writing {total}");
        Progress {
            what: what.to_string(),
            total: total.max(1),
            done: 0,
            started: Instant::now(),
            terminal,
            last_tenth: 0,
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        if self.terminal {
            let width = 30;
            let filled = (self.done * width / self.total) as usize;
            let bar = format!(
                "{}{}",
                "#".repeat(filled),
                "-".repeat(width as usize - filled)
            );
            log::write_stderr(
                format!(
                    "\r{}: [{bar}] {}/{} ({rate:.0}/s)  ",
                    self.what, self.done, self.total
                )
                .as_bytes(),
            );
        } else {
            let tenth = self.done * 10 / self.total;
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                log::info!(
                    "{}: {}/{} ({}%, {rate:.0}/s)",
                    self.what,
                    self.done,
                    self.total,
                    tenth * 10
                );
            }
        }
    }

    pub fn finish(&mut self) {
        if self.terminal {
            log::write_stderr(b"\n");
        }
        log::info!(
            "{}: {} written in {:.1} s",
            self.what,
            self.done,
            self.started.elapsed().as_secs_f64()
        );
    }
}
