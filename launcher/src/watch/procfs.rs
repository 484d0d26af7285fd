//! The procfs watcher: scans `/proc` every `poll_interval_ms` for the
//! launcher's descendants. It needs no ptrace permission, and it is weaker:
//!
//! - it sees a process only if it is alive at a scan, and an exec only if
//!   the program changed between two scans;
//! - it cannot tell fork from vfork or clone ([`Birth::Unknown`]);
//! - a child's inherited sockets are those it holds at first sight that its
//!   parent also holds then, so a socket the parent closed in between, or
//!   one the child dropped before the scan, goes unseen;
//! - it never sees syscalls: no `inherited_fd_use`, and nothing is denied.
//!
//! What it does catch: a child still holding its parent's PostgreSQL socket
//! when the pool-check deadline comes (the January 2026 shape).
//!
//! Like the ptrace watcher, it only sees: what it sees goes out as
//! [`Event`]s for the judge.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::observed::{Birth, Event};
use crate::proc::{program_of, starttime};
use crate::sockets::{Kernel, PgFd};

#[derive(Debug)]
struct Seen {
    starttime: u64,
    program: Option<String>,
    inherited: Vec<PgFd>,
}

pub struct Poller {
    root: i32,
    interval: Duration,
    next: Instant,
    seen: HashMap<i32, Seen>,
}

impl Poller {
    /// Watch the descendants of `root` (the launcher); `main` was announced
    /// already, as spawned.
    pub fn new(root: i32, interval: Duration, main: i32) -> Poller {
        let mut seen = HashMap::new();
        seen.insert(
            main,
            Seen {
                starttime: starttime(main).unwrap_or(0),
                program: program_of(main),
                inherited: Vec::new(),
            },
        );
        Poller {
            root,
            interval,
            next: Instant::now(),
            seen,
        }
    }

    pub fn next_deadline(&self) -> Instant {
        self.next
    }

    /// Scan when due. `ignore`: the launcher's own helpers (alert commands).
    pub fn tick(
        &mut self,
        now: Instant,
        ignore: &HashSet<i32>,
        out: &mut Vec<Event>,
        kernel: &mut Kernel,
    ) {
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        self.scan(ignore, out, kernel);
    }

    fn scan(&mut self, ignore: &HashSet<i32>, out: &mut Vec<Event>, kernel: &mut Kernel) {
        let Some(rows) = crate::proc::processes() else {
            tracing::error!("the procfs watcher cannot list /proc: nothing is being watched");
            return;
        };
        // Descendants of the launcher, parents before children.
        let mut children: HashMap<i32, Vec<(i32, u64)>> = HashMap::new();
        for &(pid, ppid, start) in &rows {
            children.entry(ppid).or_default().push((pid, start));
        }
        let mut tree: Vec<(i32, i32, u64)> = Vec::new();
        let mut stack = vec![self.root];
        while let Some(parent) = stack.pop() {
            for &(pid, start) in children.get(&parent).map(|v| v.as_slice()).unwrap_or(&[]) {
                if parent == self.root && ignore.contains(&pid) {
                    continue;
                }
                tree.push((pid, parent, start));
                stack.push(pid);
            }
        }
        tree.sort_by_key(|&(_, _, start)| start);
        let alive: HashSet<i32> = tree.iter().map(|&(pid, _, _)| pid).collect();

        // Gone, or the pid now belongs to another process.
        let gone: Vec<i32> = self
            .seen
            .iter()
            .filter(|(pid, s)| {
                !alive.contains(pid)
                    || tree.iter().any(|&(p, _, start)| {
                        p == **pid && start != s.starttime && s.starttime != 0
                    })
            })
            .map(|(&pid, _)| pid)
            .collect();
        for pid in gone {
            self.seen.remove(&pid);
            out.push(Event::Exited { pid, status: None });
        }

        for (pid, ppid, start) in tree {
            match self.seen.get_mut(&pid) {
                Some(s) => {
                    if s.starttime == 0 {
                        s.starttime = start;
                    }
                    let program = program_of(pid);
                    if program.is_some() && program != s.program {
                        s.program = program.clone();
                        let still_held = Kernel::still_held(pid, &s.inherited).unwrap_or_default();
                        out.push(Event::Exec {
                            pid,
                            former_tid: None,
                            program,
                            still_held,
                        });
                    }
                }
                None => {
                    let mine = kernel.pg_fds(pid).unwrap_or_default();
                    let inherited: Vec<PgFd> = if mine.is_empty() {
                        Vec::new()
                    } else {
                        let parents = kernel.pg_fds(ppid).unwrap_or_default();
                        mine.into_iter()
                            .filter(|m| parents.iter().any(|p| p.inode == m.inode))
                            .collect()
                    };
                    self.seen.insert(
                        pid,
                        Seen {
                            starttime: start,
                            program: program_of(pid),
                            inherited: inherited.clone(),
                        },
                    );
                    out.push(Event::Born {
                        pid,
                        ppid,
                        birth: Birth::Unknown,
                        inherited,
                        escalated: false,
                    });
                }
            }
        }
    }
}
