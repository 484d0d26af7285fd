//! The incident view (`demo --incident`, run by `tests/test_fork_fix.sh`):
//! the log lines the January 2026 write-up expects after the fix, printed as
//! they happen, for every child forked while the parent streams the
//! 40,000-row hash query:
//!
//! ```text
//! hash query started    (the server's log: the parent's backend executes it)
//! fork                  (the launcher's event: the child holds the parent's sockets)
//! FORK_CHILD handler    (the launcher's pool check, decided by the shim's AfterFork report)
//! own connection        (the shim's log in the child: a new session, slot 0)
//! hash query done       (the server's log: the parent's query finished)
//! ```
//!
//! Sources: the launcher's event log, the stderr of the tree (plex-sim's and
//! the shim's lines, at debug level), and the throwaway server's statement
//! log ([`super::server::DemoServer::log_statements`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::view::{thousands, View};

/// What the hash query looks like once translated for PostgreSQL.
const HASH_QUERY_TAIL: &str = "from metadata_items where hash is null";

struct InFlight {
    /// As the server logged it (`HH:MM:SS.mmm`, UTC).
    time: String,
    /// Seconds since midnight UTC, to compare with the launcher's events.
    second_of_day: f64,
    printed: bool,
}

/// A hash query the server finished before the fork that fell inside it
/// was read: the two logs are read in 100 ms ticks, and a 5,000-row query
/// starts and ends within one.
struct Finished {
    backend: i64,
    started: InFlight,
    /// Seconds since midnight UTC when the server logged its duration.
    ended: f64,
    duration: String,
}

/// How long a finished query is kept to be matched with a fork event read
/// later (the event log is read at most one tick after the server's).
const FINISHED_KEPT_SECONDS: f64 = 5.0;

/// How long before a fork the server may have sent a query's last row and
/// the parent still be reading it.
const SERVER_AHEAD_SECONDS: f64 = 1.0;

#[derive(Default)]
pub struct Incident {
    /// Backend pid → a hash query in flight there.
    in_flight: BTreeMap<i64, InFlight>,
    /// Hash queries finished in the last few seconds, not yet narrated.
    finished: VecDeque<Finished>,
    /// Children born holding their parent's sockets.
    forked: BTreeSet<i64>,
    pub forks_mid_query: u64,
    pub handlers_ok: u64,
    pub own_connections: u64,
    /// Parent hash queries seen start before a fork and finish after it.
    pub queries_done: u64,
    /// Whether the server's log is being read (a throwaway server only).
    pub server_log: bool,
}

impl Incident {
    /// A line of the server's log (`%m [%p] ` prefix).
    pub fn server_line(&mut self, line: &str, view: &mut View) {
        let Some((time, backend, message)) = parse_server_line(line) else {
            return;
        };
        if let Some(statement) = message.strip_prefix("execute ") {
            let text = statement
                .split_once(": ")
                .map(|(_, t)| t)
                .unwrap_or(statement);
            if text
                .to_ascii_lowercase()
                .trim_end()
                .ends_with(HASH_QUERY_TAIL)
            {
                let second_of_day = second_of_day(&time).unwrap_or(f64::MAX);
                self.in_flight.insert(
                    backend,
                    InFlight {
                        time,
                        second_of_day,
                        printed: false,
                    },
                );
            } else {
                self.in_flight.remove(&backend);
            }
        } else if let Some(rest) = message.strip_prefix("duration: ") {
            // With log_statement on, the execute's own duration line carries no text.
            if !rest.trim_end().ends_with(" ms") {
                return;
            }
            if let Some(query) = self.in_flight.remove(&backend) {
                if query.printed {
                    self.queries_done += 1;
                    view.line(&done_line(backend, rest.trim()));
                } else if let Some(ended) = second_of_day(&time) {
                    while self
                        .finished
                        .front()
                        .is_some_and(|f| f.ended < ended - FINISHED_KEPT_SECONDS)
                    {
                        self.finished.pop_front();
                    }
                    self.finished.push_back(Finished {
                        backend,
                        started: query,
                        ended,
                        duration: rest.trim().to_string(),
                    });
                }
            }
        }
    }

    /// An event of the launcher's log.
    pub fn event(&mut self, e: &Value, view: &mut View) {
        let pid = e["pid"].as_i64().unwrap_or(0);
        match e["event"].as_str().unwrap_or("") {
            "fork" if e["kind"] != "spawn" => {
                let inherited = e["inherited"].as_array().cloned().unwrap_or_default();
                if inherited.is_empty() {
                    return;
                }
                self.forked.insert(pid);
                // Queries that started before the fork: the parent's (a child's
                // own hash query starts after it).
                let born = e["time"].as_f64().unwrap_or(0.0).rem_euclid(86_400.0);
                for (backend, query) in self
                    .in_flight
                    .iter_mut()
                    .filter(|(_, q)| !q.printed && q.second_of_day <= born)
                {
                    query.printed = true;
                    view.line(&started_line(*backend, &query.time));
                }
                // Queries that spanned the fork but whose end was read first.
                let (mut spanned, rest): (Vec<Finished>, Vec<Finished>) = self
                    .finished
                    .drain(..)
                    .partition(|f| f.started.second_of_day <= born && born <= f.ended);
                self.finished = rest.into();
                // None in flight at the server: a short query (5,000 rows) is
                // all in the socket's buffers before the parent has read half
                // of it, so the server logs its end before the fork. The
                // parent's is then the last one started before the fork.
                if spanned.is_empty()
                    && !self
                        .in_flight
                        .values()
                        .any(|q| q.printed && q.second_of_day <= born)
                {
                    let last = (0..self.finished.len())
                        .filter(|&i| {
                            let f = &self.finished[i];
                            f.started.second_of_day <= born
                                && born - f.ended <= SERVER_AHEAD_SECONDS
                        })
                        .max_by(|&a, &b| {
                            self.finished[a]
                                .started
                                .second_of_day
                                .total_cmp(&self.finished[b].started.second_of_day)
                        });
                    if let Some(f) = last.and_then(|i| self.finished.remove(i)) {
                        spanned.push(Finished {
                            duration: format!(
                                "{} (sent before the fork; the parent was still reading)",
                                f.duration
                            ),
                            ..f
                        });
                    }
                }
                for f in &spanned {
                    view.line(&started_line(f.backend, &f.started.time));
                }
                let fds: Vec<String> = inherited.iter().map(|s| s["fd"].to_string()).collect();
                view.line(&format!(
                    "fork                 [launcher] process {pid} born by {} from {}, holding its {} PostgreSQL socket(s) (fds {})",
                    e["kind"].as_str().unwrap_or("?"),
                    e["ppid"],
                    inherited.len(),
                    fds.join(", ")
                ));
                for f in spanned {
                    self.queries_done += 1;
                    view.line(&done_line(f.backend, &f.duration));
                }
            }
            "pool_check" if self.forked.contains(&pid) => {
                if e["verdict"] == "ok" && e["trigger"] == "after_fork" {
                    self.handlers_ok += 1;
                    view.line(&format!(
                        "[FORK_CHILD {pid}]     fork handler ran: pool emptied ({} slots in use), inherited sockets made harmless; pool check ok",
                        e["slots_in_use"]
                    ));
                } else if e["verdict"] == "ok" {
                    view.line(&format!(
                        "[child {pid}]          pool check ok at {}",
                        e["trigger"].as_str().unwrap_or("?")
                    ));
                } else {
                    view.line(&format!(
                        "[child {pid}]          POOL CHECK VIOLATION ({}): {}",
                        e["trigger"].as_str().unwrap_or("?"),
                        e["reason"].as_str().unwrap_or("?")
                    ));
                }
            }
            "inherited_fd_use" => view.line(&format!(
                "[child {pid}]          USED ITS PARENT'S CONNECTION: {} on fd {} ({})",
                e["syscall"].as_str().unwrap_or("?"),
                e["fd"],
                e["action"].as_str().unwrap_or("?")
            )),
            _ => {}
        }
    }

    /// A line of the tree's standard error (plex-sim, the shim, the launcher).
    pub fn stderr_line(&mut self, line: &str, view: &mut View) {
        if let Some((pid, slot, fd)) = parse_shim_connected(line) {
            if self.forked.contains(&pid) {
                self.own_connections += 1;
                view.line(&format!("[child {pid}]          created its own PostgreSQL connection in pool slot {slot} (fd {fd})"));
            }
        } else if let Some((pid, rows)) = parse_started_mid_query(line) {
            self.forks_mid_query += 1;
            view.line(&format!(
                "                     [plex-sim] process {pid} was started while the parent's hash query was in flight ({} rows read)",
                thousands(rows)
            ));
        } else if let Some((pid, how)) = parse_child_exit(line) {
            if self.forked.contains(&pid) {
                view.line(&format!("[child {pid}]          {how}"));
            }
        }
    }

    /// The incident's own verdict lines.
    pub fn verdict(&self, items: u32) -> Vec<String> {
        let mut lines = vec![
            format!(
                "children forked while the {}-row hash query was in flight: {}",
                thousands(i64::from(items)),
                self.forks_mid_query
            ),
            format!(
                "fork handlers that emptied the inherited pool (pool check ok): {}",
                self.handlers_ok
            ),
            format!(
                "children that then created their own connection: {}",
                self.own_connections
            ),
        ];
        if self.server_log {
            lines.push(format!(
                "parent hash queries in flight at a fork that completed: {}",
                self.queries_done
            ));
        }
        lines
    }
}

fn started_line(backend: i64, time: &str) -> String {
    format!("hash query started   [PostgreSQL backend {backend}, {time}] SELECT id,guid FROM metadata_items where hash is null")
}

fn done_line(backend: i64, duration: &str) -> String {
    format!("hash query done      [PostgreSQL backend {backend}] after {duration}: the parent's query completed")
}

/// `2026-01-10 12:00:00.123 UTC [4242] LOG:  message` → (time, backend, message).
fn parse_server_line(line: &str) -> Option<(String, i64, &str)> {
    let open = line.find(" [")?;
    let close = open + line[open..].find("] ")?;
    let backend: i64 = line[open + 2..close].parse().ok()?;
    let message = line[close + 2..].strip_prefix("LOG:")?.trim_start();
    let time = line[..open].split(' ').nth(1).unwrap_or("").to_string();
    Some((time, backend, message))
}

/// `HH:MM:SS.mmm` → seconds since midnight.
fn second_of_day(time: &str) -> Option<f64> {
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The shim's `plex-pg[<pid>] DEBUG connected to PostgreSQL slot=S fd=F …`.
fn parse_shim_connected(line: &str) -> Option<(i64, i64, i64)> {
    let rest = &line[line.find("plex-pg[")? + 8..];
    let (pid, rest) = rest.split_once(']')?;
    if !rest.contains("connected to PostgreSQL") {
        return None;
    }
    let field = |name: &str| -> Option<i64> {
        let at = rest.find(&format!(" {name}="))? + name.len() + 2;
        rest[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((pid.parse().ok()?, field("slot")?, field("fd")?))
}

/// plex-sim's `started … pid N while worker W's hash query was in flight (R rows read)`.
fn parse_started_mid_query(line: &str) -> Option<(i64, i64)> {
    let rest = &line[line.find(" INFO started ")?..];
    let pid = rest[rest.find(" pid ")? + 5..]
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let rows = rest[rest.find("in flight (")? + 11..]
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((pid, rows))
}

/// plex-sim's `child KIND (METHOD) pid N exited with code C after S s`.
fn parse_child_exit(line: &str) -> Option<(i64, &str)> {
    let rest = &line[line.find(" INFO child ")?..];
    let after_pid = &rest[rest.find(" pid ")? + 5..];
    let (pid, how) = after_pid.split_once(' ')?;
    Some((pid.parse().ok()?, how))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lines_it_narrates() {
        assert_eq!(
            parse_server_line("2026-11-29 08:46:22.874 UTC [28643] LOG:  execute s25: SELECT 1"),
            Some(("08:46:22.874".into(), 28643, "execute s25: SELECT 1"))
        );
        assert!(parse_server_line("2026-11-29 08:46:22.874 UTC [28643] DETAIL:  x").is_none());
        assert_eq!(
            parse_shim_connected(
                r#"2026-11-29T08:46:21Z plex-pg[28649] DEBUG connected to PostgreSQL slot=0 fd=11 inode=391018 schema="exp1""#
            ),
            Some((28649, 0, 11))
        );
        assert_eq!(
            parse_started_mid_query("plex-sim[1] server: INFO started fork-query (fork) pid 28649 while worker 0's hash query was in flight (20000 rows read)"),
            Some((28649, 20000))
        );
        assert_eq!(
            parse_child_exit("plex-sim[1] server: INFO child fork-query (fork) pid 28649 exited with code 0 after 0.15 s"),
            Some((28649, "exited with code 0 after 0.15 s"))
        );
    }

    #[test]
    fn a_query_in_flight_at_a_fork_is_narrated_to_its_end() {
        let mut view = View::new();
        let mut i = Incident {
            server_log: true,
            ..Incident::default()
        };
        i.server_line("2026-11-29 08:46:22.874 UTC [7] LOG:  execute s25: SELECT id, guid FROM metadata_items WHERE hash IS NULL", &mut view);
        // 08:46:22.900 UTC on some day: after the query on backend 7 started.
        let fork: Value = serde_json::from_str(
            r#"{"time":1795941982.9,"event":"fork","kind":"fork","pid":9,"ppid":8,"inherited":[{"fd":6}]}"#,
        )
        .unwrap();
        // A query starting after the fork is the child's own, not the parent's.
        i.server_line("2026-11-29 08:46:22.950 UTC [11] LOG:  execute s1: SELECT id, guid FROM metadata_items WHERE hash IS NULL", &mut view);
        i.event(&fork, &mut view);
        let check: Value =
            serde_json::from_str(r#"{"event":"pool_check","pid":9,"verdict":"ok","trigger":"after_fork","slots_in_use":0}"#).unwrap();
        i.event(&check, &mut view);
        i.stderr_line(
            "2026-11-29T08:46:21Z plex-pg[9] DEBUG connected to PostgreSQL slot=0 fd=11 inode=5",
            &mut view,
        );
        i.server_line(
            "2026-11-29 08:46:22.965 UTC [7] LOG:  duration: 91.174 ms",
            &mut view,
        );
        i.server_line(
            "2026-11-29 08:46:23.001 UTC [11] LOG:  duration: 50.0 ms",
            &mut view,
        );
        assert_eq!(
            (i.handlers_ok, i.own_connections, i.queries_done),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_query_that_spanned_a_fork_is_narrated_when_its_end_was_read_first() {
        let mut view = View::new();
        let mut i = Incident {
            server_log: true,
            ..Incident::default()
        };
        // Start and end read in one tick, before the fork's event.
        i.server_line("2026-11-29 08:46:22.874 UTC [7] LOG:  execute s25: SELECT id, guid FROM metadata_items WHERE hash IS NULL", &mut view);
        i.server_line(
            "2026-11-29 08:46:22.965 UTC [7] LOG:  duration: 91.174 ms",
            &mut view,
        );
        // One that ended before the fork is not the parent's when another spans it.
        i.server_line("2026-11-29 08:46:22.700 UTC [8] LOG:  execute s25: SELECT id, guid FROM metadata_items WHERE hash IS NULL", &mut view);
        i.server_line(
            "2026-11-29 08:46:22.800 UTC [8] LOG:  duration: 100.0 ms",
            &mut view,
        );
        let fork: Value = serde_json::from_str(
            r#"{"time":1795941982.9,"event":"fork","kind":"fork","pid":9,"ppid":8,"inherited":[{"fd":6}]}"#,
        )
        .unwrap();
        i.event(&fork, &mut view);
        assert_eq!(i.queries_done, 1);
        // Narrated once only.
        let again: Value = serde_json::from_str(
            r#"{"time":1795941982.91,"event":"fork","kind":"fork","pid":10,"ppid":8,"inherited":[{"fd":6}]}"#,
        )
        .unwrap();
        i.event(&again, &mut view);
        // …the second fork gets the one that ended before it (the server
        // sends a short result whole before the parent has read it).
        assert_eq!(i.queries_done, 2);
        let third: Value = serde_json::from_str(
            r#"{"time":1795941982.92,"event":"fork","kind":"fork","pid":11,"ppid":8,"inherited":[{"fd":6}]}"#,
        )
        .unwrap();
        i.event(&third, &mut view);
        assert_eq!(i.queries_done, 2, "each query is narrated once");
    }
}
