//! The launcher follows a host name whose address changes mid-run (a
//! DNS-based failover, here an `/etc/hosts` entry rewritten): the shim's
//! connect report of a connection to the new address makes the launcher
//! recognise it as PostgreSQL's at once, so its pool checks still see the
//! connections children inherit. Runs as root (it edits `/etc/hosts` and
//! restores it, also when it fails).

#[path = "launcher_support.rs"]
mod support;

use plex_pg_tests::{
    pg, python_script, schema_with, unique_name, PG_DATABASE, PG_PASSWORD, PG_USER,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;
use support::{wait_for_file, Launcher, Run};

const HOSTS: &str = "/etc/hosts";

/// `/etc/hosts` as it was, written back when dropped.
struct HostsGuard {
    original: String,
}

impl HostsGuard {
    fn new() -> HostsGuard {
        HostsGuard {
            original: std::fs::read_to_string(HOSTS).expect("read /etc/hosts"),
        }
    }

    /// The original file plus `address name`. Written in place (the file
    /// may be a bind mount, which a rename would not replace).
    fn point(&self, name: &str, address: &str) {
        let mut text = self.original.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{address} {name}\n"));
        std::fs::write(HOSTS, text).expect("write /etc/hosts");
    }
}

impl Drop for HostsGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(HOSTS, &self.original) {
            eprintln!("could not restore /etc/hosts: {e}");
        }
    }
}

/// Forwards `listen` to `to`, byte for byte, for as long as the test runs:
/// the server "at the new address".
fn forward(listen: TcpListener, to: (&'static str, u16)) {
    std::thread::spawn(move || {
        for client in listen.incoming().flatten() {
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut into: TcpStream| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(std::net::Shutdown::Both);
                });
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
}

fn lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The peers of the sockets `child` inherited, as the launcher saw them.
fn inherited_peers(run: &Run, child: i64) -> Vec<String> {
    run.event_for("fork", child)["inherited"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|s| s["peer"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_host_name_that_moves_is_followed_on_the_next_connect() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test edits /etc/hosts: run it as root"
    );
    let server = pg();
    let port = server.port;
    let schema = schema_with(
        "moving",
        "CREATE TABLE moving (id bigint); INSERT INTO moving VALUES (1), (2)",
    );
    // The same server at a second address (the cluster listens on
    // 127.0.0.1 only): 127.0.0.2, same port.
    let second = TcpListener::bind(("127.0.0.2", port)).expect("bind 127.0.0.2");
    forward(second, ("127.0.0.1", port));

    let name = format!("{}.invalid", unique_name("plexpg-moving").replace('_', "-"));
    let hosts = HostsGuard::new();
    hosts.point(&name, "127.0.0.1");

    let mut l = Launcher::new();
    let ready = l.dir.path().join("ready");
    let go = l.dir.path().join("go");
    let db = l.dir.library_db();
    l.cmd
        .env("PLEX_PG_HOST", &name)
        .env("PLEX_PG_PORT", port.to_string())
        .env("PLEX_PG_DATABASE", PG_DATABASE)
        .env("PLEX_PG_USER", PG_USER)
        .env("PLEX_PG_PASSWORD", PG_PASSWORD)
        .env("PLEX_PG_SCHEMA", &schema)
        .env("PLEX_PG_FORK_HANDLER", "0")
        .env("PLEX_PG_ALLOW_EMPTY_LIBRARY", "1");
    let script = python_script("inherited_use.py").display().to_string();
    let (ready_at, go_at) = (ready.clone(), go.clone());
    let (hosts_ref, name_ref) = (&hosts, name.clone());
    let run = l.run_with(
        &[
            "python3",
            &script,
            &db,
            &ready.display().to_string(),
            &go.display().to_string(),
        ],
        Duration::from_secs(120),
        move |_| {
            assert!(
                wait_for_file(&ready_at, Duration::from_secs(60)),
                "phase 1 never ended"
            );
            // The name moves; the launcher resolves names every 30 s, and
            // this run is over well before that.
            hosts_ref.point(&name_ref, "127.0.0.2");
            std::fs::write(&go_at, "").unwrap();
        },
    );
    drop(hosts);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let phases = lines(&run);
    assert_eq!(phases.len(), 2, "{}", run.dump());
    for (phase, address) in phases.iter().zip(["127.0.0.1", "127.0.0.2"]) {
        assert_eq!(phase["one"], 1, "{}", run.dump());
        let child = phase["child"].as_i64().unwrap();
        let peers = inherited_peers(&run, child);
        let expected = format!("tcp:{address}:{port}");
        assert!(
            peers.iter().any(|p| p == &expected),
            "the child of the phase at {address} inherited a connection the launcher recognised as PostgreSQL's ({expected}): {peers:?}\n{}",
            run.dump()
        );
        assert_eq!(
            run.event_for("pool_check", child)["verdict"],
            "violation",
            "{}",
            run.dump()
        );
    }
    assert!(
        !run.stderr.contains("which no configured host has"),
        "the name resolved to the new address when resolved again: no warning\n{}",
        run.stderr
    );
}
