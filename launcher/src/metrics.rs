//! The launcher's Prometheus endpoint (`launcher.metrics_listen`, off by
//! default): the summary's counts while Plex runs, in the Prometheus text
//! format, on `GET /metrics`; and `plex-pg-launcher status`, which reads
//! them back.
//!
//! The shim's own figures come from its Tally reports ([`crate::tally`]):
//! statements, their latency histogram, errors by SQLite code, connects,
//! reconnects, and each live process's pool.
//!
//! The supervisor's loop copies the judge's counts into a [`Shared`]
//! snapshot after each round (a mutex, a few dozen integers and a line per
//! live process using the shim); one thread
//! serves the snapshot, a request at a time, with short timeouts so a slow
//! or silent client cannot hold it. Nothing on this path touches the
//! traced tree or the judge: the endpoint only reads what was counted.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::verdict::Counts;

/// What the endpoint shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub counts: Counts,
    pub alerts_sent: u64,
    pub alerts_suppressed: u64,
    pub alerts_failed: u64,
    pub mode: &'static str,
    pub watcher: &'static str,
    /// Processes of Plex's tree alive now.
    pub tree: u64,
    /// The shim's figures.
    pub shim: crate::tally::Summary,
}

/// The snapshot the loop writes and the server reads.
pub type Shared = Arc<Mutex<Snapshot>>;

/// Bind `listen` and serve `shared` from a thread. Bound before the
/// launcher drops to Plex's user, so the error comes at start.
pub fn serve(listen: &str, shared: Shared) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &shared);
            }
        })?;
    Ok(addr)
}

fn answer(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    // The request line is all that matters; read until the headers end.
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let (status, kind, body) =
        if line.starts_with("GET ") && (target == "/metrics" || target.starts_with("/metrics?")) {
            let snapshot = shared.lock().map(|s| s.clone()).unwrap_or_default();
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render(&snapshot),
            )
        } else {
            (
                "404 Not Found",
                "text/plain; charset=utf-8",
                "only GET /metrics is served here\n".to_string(),
            )
        };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The Prometheus text exposition of `s`.
pub fn render(s: &Snapshot) -> String {
    let c = &s.counts;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(
            out,
            "# HELP plexpg_{name} {help}\n# TYPE plexpg_{name} {kind}"
        );
        for (labels, value) in samples {
            let _ = writeln!(out, "plexpg_{name}{labels} {value}");
        }
    };
    metric(
        "processes_total",
        "counter",
        "Processes of Plex's tree seen, the command included.",
        &[("", c.processes)],
    );
    metric(
        "forks_total",
        "counter",
        "Processes forked or cloned in Plex's tree.",
        &[("", c.forks)],
    );
    metric(
        "execs_total",
        "counter",
        "Programs executed in Plex's tree.",
        &[("", c.execs)],
    );
    metric(
        "exits_total",
        "counter",
        "Processes of Plex's tree that ended.",
        &[("", c.exits)],
    );
    metric(
        "tree_processes",
        "gauge",
        "Processes of Plex's tree alive now.",
        &[("", s.tree)],
    );
    metric(
        "pool_checks_total",
        "counter",
        "Pool checks of new processes, by verdict.",
        &[
            ("{verdict=\"ok\"}", c.pool_checks_ok),
            ("{verdict=\"violation\"}", c.pool_check_violations),
        ],
    );
    let observed = c.inherited_fd_uses.saturating_sub(c.denied + c.killed);
    metric(
        "inherited_fd_uses_total",
        "counter",
        "Uses of an inherited PostgreSQL socket, by what the launcher did.",
        &[
            ("{action=\"observed\"}", observed),
            ("{action=\"denied\"}", c.denied),
            ("{action=\"killed\"}", c.killed),
        ],
    );
    metric(
        "alerts_total",
        "counter",
        "Runs of launcher.alert_command, by outcome.",
        &[
            ("{outcome=\"sent\"}", s.alerts_sent),
            ("{outcome=\"suppressed\"}", s.alerts_suppressed),
            ("{outcome=\"failed\"}", s.alerts_failed),
        ],
    );
    let accepted = c.reports.saturating_sub(c.reports_rejected);
    metric(
        "reports_total",
        "counter",
        "The shim's reports received, by result.",
        &[
            ("{result=\"accepted\"}", accepted),
            ("{result=\"rejected\"}", c.reports_rejected),
        ],
    );
    let info = format!(
        "{{mode=\"{}\",watcher=\"{}\",version=\"{}\"}}",
        s.mode,
        s.watcher,
        env!("CARGO_PKG_VERSION")
    );
    metric(
        "launcher_info",
        "gauge",
        "The launcher's mode, the watcher running and its version.",
        &[(&info, 1)],
    );
    shim(&mut out, &s.shim);
    out
}

/// The shim's families, from its Tally reports.
fn shim(out: &mut String, shim: &crate::tally::Summary) {
    use plex_pg_config::report::LATENCY_BOUNDS_US;
    let t = &shim.total;
    fn family(out: &mut String, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            out,
            "# HELP plexpg_shim_{name} {help}\n# TYPE plexpg_shim_{name} {kind}"
        );
    }
    family(
        out,
        "statements_total",
        "counter",
        "Statements the shim ran on PostgreSQL (executions, not rows), in every process.",
    );
    let _ = writeln!(out, "plexpg_shim_statements_total {}", t.statements());
    family(
        out,
        "errors_total",
        "counter",
        "Failed statements (prepare or step) by SQLite primary result code.",
    );
    for (code, n) in t.errors.iter().enumerate().filter(|(_, n)| **n > 0) {
        let _ = writeln!(
            out,
            "plexpg_shim_errors_total{{code=\"{}\"}} {n}",
            crate::tally::code_name(code)
        );
    }
    family(
        out,
        "connects_total",
        "counter",
        "PostgreSQL connections the shim's pools opened.",
    );
    let _ = writeln!(out, "plexpg_shim_connects_total {}", t.connects);
    family(
        out,
        "reconnects_total",
        "counter",
        "Connections opened in place of one the server closed or broke.",
    );
    let _ = writeln!(out, "plexpg_shim_reconnects_total {}", t.reconnects);
    family(
        out,
        "statement_seconds",
        "histogram",
        "Time of a statement's first step (PostgreSQL's answer and the first row).",
    );
    let mut cumulative = 0;
    for (i, n) in t.buckets.iter().enumerate() {
        cumulative += n;
        let le = match LATENCY_BOUNDS_US.get(i) {
            Some(&us) => (us as f64 / 1e6).to_string(),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(
            out,
            "plexpg_shim_statement_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "plexpg_shim_statement_seconds_sum {}\nplexpg_shim_statement_seconds_count {cumulative}",
        t.latency_us as f64 / 1e6
    );
    family(
        out,
        "processes",
        "gauge",
        "Live processes of Plex's tree whose shim reported its figures.",
    );
    let _ = writeln!(out, "plexpg_shim_processes {}", shim.pools.len());
    family(
        out,
        "pool_slots_in_use",
        "gauge",
        "Pool slots holding a PostgreSQL connection, per process.",
    );
    for p in &shim.pools {
        let _ = writeln!(
            out,
            "plexpg_shim_pool_slots_in_use{{pid=\"{}\"}} {}",
            p.pid, p.slots_in_use
        );
    }
    family(
        out,
        "pool_slots_max",
        "gauge",
        "Pool slots a process may use (pool.max), per process.",
    );
    for p in &shim.pools {
        let _ = writeln!(
            out,
            "plexpg_shim_pool_slots_max{{pid=\"{}\"}} {}",
            p.pid, p.slots_max
        );
    }
}

/// `plex-pg-launcher status`: the running launcher's metrics, read from
/// `listen`.
pub fn status(listen: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(listen).map_err(|e| {
        format!("cannot reach the launcher's metrics at {listen} (launcher.metrics_listen): {e}; is Plex running under plex-pg-launcher with that setting?")
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("reading the metrics from {listen}: {e}"))?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(format!(
            "{listen} did not answer as plex-pg-launcher's metrics endpoint"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_count_is_a_sample_with_its_labels() {
        let s = Snapshot {
            counts: Counts {
                processes: 5,
                forks: 4,
                pool_checks_ok: 3,
                pool_check_violations: 1,
                inherited_fd_uses: 6,
                denied: 2,
                reports: 10,
                reports_rejected: 3,
                ..Counts::default()
            },
            mode: "enforce",
            watcher: "ptrace",
            ..Snapshot::default()
        };
        let text = render(&s);
        for line in [
            "plexpg_forks_total 4",
            "plexpg_pool_checks_total{verdict=\"violation\"} 1",
            "plexpg_inherited_fd_uses_total{action=\"observed\"} 4",
            "plexpg_inherited_fd_uses_total{action=\"denied\"} 2",
            "plexpg_reports_total{result=\"accepted\"} 7",
            "# TYPE plexpg_tree_processes gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.contains("mode=\"enforce\",watcher=\"ptrace\""));
    }

    #[test]
    fn the_shims_figures_are_counters_a_histogram_and_gauges_per_process() {
        let mut tallies = crate::tally::Tallies::default();
        let mut t = plex_pg_config::report::Tally {
            seq: 1,
            slots_in_use: 2,
            slots_max: 20,
            connects: 3,
            reconnects: 1,
            latency_us: 2_500_000,
            ..Default::default()
        };
        t.buckets[0] = 5;
        t.buckets[3] = 2;
        t.buckets[14] = 1;
        t.errors[1] = 2;
        t.errors[19] = 1;
        tallies.update(77, &t);
        let text = render(&Snapshot {
            shim: tallies.summary(),
            ..Snapshot::default()
        });
        for line in [
            "plexpg_shim_statements_total 8",
            "plexpg_shim_errors_total{code=\"SQLITE_ERROR\"} 2",
            "plexpg_shim_errors_total{code=\"SQLITE_CONSTRAINT\"} 1",
            "plexpg_shim_connects_total 3",
            "plexpg_shim_reconnects_total 1",
            "plexpg_shim_statement_seconds_bucket{le=\"0.000125\"} 5",
            "plexpg_shim_statement_seconds_bucket{le=\"0.0005\"} 5",
            "plexpg_shim_statement_seconds_bucket{le=\"0.001\"} 7",
            "plexpg_shim_statement_seconds_bucket{le=\"1.024\"} 7",
            "plexpg_shim_statement_seconds_bucket{le=\"+Inf\"} 8",
            "plexpg_shim_statement_seconds_sum 2.5",
            "plexpg_shim_statement_seconds_count 8",
            "plexpg_shim_processes 1",
            "plexpg_shim_pool_slots_in_use{pid=\"77\"} 2",
            "plexpg_shim_pool_slots_max{pid=\"77\"} 20",
            "# TYPE plexpg_shim_statement_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("SQLITE_BUSY"), "only codes seen: {text}");
    }

    #[test]
    fn the_endpoint_serves_metrics_and_status_reads_them() {
        let shared: Shared = Arc::default();
        shared.lock().unwrap().counts.forks = 42;
        let addr = serve("127.0.0.1:0", shared.clone()).unwrap();
        let body = status(&addr.to_string()).unwrap();
        assert!(body.contains("plexpg_forks_total 42"), "{body}");
        shared.lock().unwrap().counts.forks = 43;
        assert!(status(&addr.to_string())
            .unwrap()
            .contains("plexpg_forks_total 43"));
        let mut other = TcpStream::connect(addr).unwrap();
        write!(other, "GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut text = String::new();
        other.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    }
}
