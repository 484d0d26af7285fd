//! The test harness itself: the throwaway cluster starts, answers over its
//! socket, and asks for a password over TCP.

use plex_pg_tests::{pg, Cluster};

#[test]
fn cluster_answers_and_restarts() {
    let mut c = Cluster::start().expect("start cluster");
    assert_eq!(c.psql("SELECT 40000 + 2").unwrap().trim(), "40002");
    let pid_before = c.psql("SELECT pg_backend_pid()").unwrap();
    c.restart().expect("restart");
    assert_eq!(c.psql("SELECT current_user").unwrap().trim(), Cluster::USER);
    assert!(!pid_before.is_empty());
    let dir = c.socket_dir().to_path_buf();
    drop(c);
    assert!(
        !dir.exists(),
        "the cluster's directory is removed when it is dropped"
    );
}

#[test]
fn shared_server_is_reachable() {
    let out = pg().psql("SELECT current_database()");
    assert_eq!(out.trim(), plex_pg_tests::PG_DATABASE);
}
