//! The alert command: each violation, as its JSON event line, on the
//! standard input of `/bin/sh -c <alert_command>`, at most
//! `alert_limit_per_minute` runs in any 60 seconds (the rest are counted
//! and reported as suppressed).
//!
//! The command is the launcher's child: the supervisor's loop reaps it like
//! everything else and hands its status back here ([`Alerts::reaped`]).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::observed::ExitStatus;
use crate::spawn::{pipe, Spawn};

const WINDOW: Duration = Duration::from_secs(60);

pub struct Alerts {
    command: Option<String>,
    limit: u32,
    recent: VecDeque<Instant>,
    running: HashSet<i32>,
    pub sent: u64,
    pub suppressed: u64,
    pub failed: u64,
}

impl Alerts {
    pub fn new(command: Option<String>, limit_per_minute: u32) -> Alerts {
        Alerts {
            command,
            limit: limit_per_minute,
            recent: VecDeque::new(),
            running: HashSet::new(),
            sent: 0,
            suppressed: 0,
            failed: 0,
        }
    }

    /// Pids of alert commands still running (not part of Plex's tree).
    pub fn running(&self) -> &HashSet<i32> {
        &self.running
    }

    /// Run the alert command for one violation.
    pub fn raise(&mut self, line: &str) {
        let Some(command) = self.command.clone() else {
            return;
        };
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= self.limit {
            self.suppressed += 1;
            if self.suppressed == 1 || self.suppressed % 100 == 0 {
                tracing::warn!(
                    "alert_command rate limit ({} a minute) reached: {} alert(s) suppressed so far (every violation is still in the event log)",
                    self.limit,
                    self.suppressed
                );
            }
            return;
        }
        self.recent.push_back(now);
        match self.start(&command, line) {
            Ok(pid) => {
                self.running.insert(pid);
                self.sent += 1;
            }
            Err(e) => {
                self.failed += 1;
                tracing::error!("cannot run alert_command {command:?}: {e}");
            }
        }
    }

    fn start(&self, command: &str, line: &str) -> std::io::Result<i32> {
        let (read, write) = pipe()?;
        let args: Vec<OsString> = vec!["sh".into(), "-c".into(), command.into()];
        let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let mut spawn = Spawn::new(std::path::Path::new("/bin/sh"), &args, &env)?;
        spawn.stdin = Some(read.as_raw_fd());
        let child = spawn.start(false)?;
        drop(read);
        // One line is far below a pipe's capacity: this write does not block.
        let mut text = line.as_bytes().to_vec();
        text.push(b'\n');
        // SAFETY: writes `text`, a live buffer of that length, to the pipe we hold.
        let n = unsafe { libc::write(write.as_raw_fd(), text.as_ptr().cast(), text.len()) };
        if n < 0 {
            tracing::warn!(
                "writing the violation to alert_command failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(child.pid)
    }

    /// Whether `pid` was an alert command; logs how it ended.
    pub fn reaped(&mut self, pid: i32, status: ExitStatus) -> bool {
        if !self.running.remove(&pid) {
            return false;
        }
        if status != ExitStatus::Code(0) {
            self.failed += 1;
            tracing::warn!("alert_command (pid {pid}) ended with {}", status.describe());
        }
        true
    }
}
