//! Repeated human log lines, limited: a child using an inherited socket in
//! a loop makes the same `FORK-SAFETY VIOLATION` line dozens of times a
//! second. The first of a kind (a process, an fd, a syscall, what the
//! launcher did) is logged in full; repeats within [`WINDOW`] are counted
//! and said in one line when the window ends ("… 32 more times in 1.0 s"),
//! a line per window while they go on. A window with no repeat ends the
//! kind: its next occurrence is logged in full again.
//!
//! Only the human log is limited: the event log and the alert command see
//! every record ([`crate::sink`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::events::Record;

/// How long repeats are counted before their count is logged.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Most kinds followed at once; past it, lines are logged unlimited (a
/// bound on memory, never reached by one misbehaving child).
pub const MAX_KINDS: usize = 4096;

/// What makes two records the same for the human log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    pid: i32,
    fd: i32,
    syscall: String,
    action: &'static str,
}

impl Kind {
    /// The kind of a record that may repeat (an inherited socket's use);
    /// `None` for the others, which are logged every time.
    pub fn of(record: &Record) -> Option<Kind> {
        match record {
            Record::InheritedFdUse {
                pid,
                fd,
                syscall,
                action,
                ..
            } => Some(Kind {
                pid: *pid,
                fd: *fd,
                syscall: syscall.clone(),
                action: action.name(),
            }),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        format!(
            "FORK-SAFETY VIOLATION of process {} ({} on fd {}, {})",
            self.pid, self.syscall, self.fd, self.action
        )
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    repeats: u64,
}

/// The kinds seen in their window.
#[derive(Debug, Default)]
pub struct Repeats {
    windows: HashMap<Kind, Window>,
}

impl Repeats {
    /// Whether to log a record of `kind` seen at `now` in full; also the
    /// count line of its window, when that window has just ended.
    pub fn seen(&mut self, kind: Kind, now: Instant) -> (bool, Option<String>) {
        let mut summary = None;
        if let Some(w) = self.windows.get_mut(&kind) {
            let elapsed = now.duration_since(w.started);
            if elapsed < WINDOW {
                w.repeats += 1;
                return (false, None);
            }
            if w.repeats > 0 {
                summary = Some(count_line(&kind, w.repeats, elapsed));
                // Still repeating: count this one in a new window.
                w.started = now;
                w.repeats = 1;
                return (false, summary);
            }
            self.windows.remove(&kind);
        }
        if self.windows.len() < MAX_KINDS {
            self.windows.insert(
                kind,
                Window {
                    started: now,
                    repeats: 0,
                },
            );
        }
        (true, summary)
    }

    /// The count lines of windows ended by `now`; kinds whose window had no
    /// repeat are forgotten.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        self.windows.retain(|kind, w| {
            let elapsed = now.duration_since(w.started);
            if elapsed < WINDOW {
                return true;
            }
            if w.repeats == 0 {
                return false;
            }
            lines.push(count_line(kind, w.repeats, elapsed));
            w.started = now;
            w.repeats = 0;
            true
        });
        lines.sort();
        lines
    }

    /// Every count not logged yet (at exit).
    pub fn flush(&mut self, now: Instant) -> Vec<String> {
        let mut lines: Vec<String> = self
            .windows
            .drain()
            .filter(|(_, w)| w.repeats > 0)
            .map(|(k, w)| count_line(&k, w.repeats, now.duration_since(w.started)))
            .collect();
        lines.sort();
        lines
    }

    /// When [`Repeats::tick`] has a line to log.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.windows
            .values()
            .filter(|w| w.repeats > 0)
            .map(|w| w.started + WINDOW)
            .min()
    }
}

fn count_line(kind: &Kind, repeats: u64, over: Duration) -> String {
    format!(
        "… the same {} {repeats} more time(s) in {:.1} s (each one is in the event log)",
        kind.describe(),
        over.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(pid: i32, fd: i32) -> Kind {
        Kind {
            pid,
            fd,
            syscall: "read".into(),
            action: "observed",
        }
    }

    #[test]
    fn the_first_is_logged_repeats_are_counted_and_said_once_a_window() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut r = Repeats::default();
        assert_eq!(r.seen(kind(7, 6), ms(0)), (true, None));
        // Another fd or process is another kind: in full too.
        assert_eq!(r.seen(kind(7, 5), ms(1)), (true, None));
        assert_eq!(r.seen(kind(8, 6), ms(1)), (true, None));
        for i in 0..32 {
            assert_eq!(r.seen(kind(7, 6), ms(10 + i)), (false, None));
        }
        assert_eq!(r.next_deadline(), Some(ms(1000)));
        assert!(r.tick(ms(999)).is_empty());
        let lines = r.tick(ms(1000));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("32 more time(s) in 1.0 s")
                && lines[0].contains("process 7 (read on fd 6"),
            "{}",
            lines[0]
        );
        // The kinds with no repeat are forgotten: logged in full again.
        assert_eq!(r.seen(kind(7, 5), ms(1500)), (true, None));
        // Still repeating after its count line: counted, not logged.
        assert_eq!(r.seen(kind(7, 6), ms(1200)), (false, None));
        // A repeat that comes when the window is over brings its count.
        let (full, line) = r.seen(kind(7, 6), ms(2300));
        assert!(!full);
        assert!(line.unwrap().contains("1 more time(s) in 1.3 s"));
        // At exit, what is still counted is said.
        let last = r.flush(ms(2400));
        assert_eq!(last.len(), 1, "{last:?}");
        assert!(last[0].contains("1 more time(s)"), "{}", last[0]);
        assert_eq!(r.next_deadline(), None);
        // A quiet window ends the kind.
        assert_eq!(r.seen(kind(7, 6), ms(5000)), (true, None));
        assert!(r.tick(ms(6100)).is_empty());
        assert_eq!(r.seen(kind(7, 6), ms(6200)), (true, None));
    }
}
