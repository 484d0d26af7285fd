//! TLS to PostgreSQL (`postgres.sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`), against a real server that serves TLS with certificates made
//! here by `openssl` and refuses plain TCP (`hostnossl … reject`), so a
//! connection that works over TCP is a TLS connection; the server's log
//! says which protocol each one used. Python's sqlite3 with the shim
//! preloaded is the client; the launcher's `check` is asked too.

#[path = "launcher_support.rs"]
mod support;

use plex_pg_tests::{artifact, attempt, python_script, run, shim, Cluster, TempDir};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The role that logs in with a client certificate (`cert` in pg_hba).
const CERT_USER: &str = "certuser";

struct Tls {
    cluster: Cluster,
    /// ca.crt (signed the server's and the client's), other_ca.crt (signed
    /// nothing here), client.crt/client.key (CN=certuser).
    certs: TempDir,
}

impl Tls {
    fn file(&self, name: &str) -> PathBuf {
        self.certs.path().join(name)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(60),
    );
    out.assert_ok();
}

/// A certificate authority (ECDSA P-256) named `name`.
fn authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3",
            "-subj",
            &format!("/CN=plex-pg test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf certificate `name` for `cn`, signed by `ca`, with `ext`.
fn leaf(dir: &Path, name: &str, cn: &str, ca: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// One TLS server for the whole binary.
fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let certs = TempDir::new("tls-certs");
        let dir = certs.path();
        authority(dir, "ca");
        authority(dir, "other_ca");
        leaf(
            dir,
            "server",
            "localhost",
            "ca",
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        );
        leaf(
            dir,
            "client",
            CERT_USER,
            "ca",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        std::fs::set_permissions(dir.join("client.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let mut cluster = Cluster::start().expect("start a PostgreSQL");
        cluster
            .psql(&format!("CREATE ROLE {CERT_USER} LOGIN SUPERUSER"))
            .expect("create the certificate role");
        cluster
            .serve_tls(
                &dir.join("server.crt"),
                &dir.join("server.key"),
                Some(&dir.join("ca.crt")),
                &format!(
                    "local all all trust\n\
                     hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                     hostssl all all 127.0.0.1/32 scram-sha-256\n\
                     hostnossl all all 127.0.0.1/32 reject\n"
                ),
            )
            .expect("serve TLS");
        Tls { cluster, certs }
    })
}

/// The shim's settings for the TLS server at `host`, plus `extra`.
fn env(host: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let t = tls();
    let mut env: Vec<(String, String)> = [
        ("PLEX_PG_HOST", host),
        ("PLEX_PG_PORT", &t.cluster.port().to_string()),
        ("PLEX_PG_DATABASE", Cluster::DATABASE),
        ("PLEX_PG_USER", Cluster::USER),
        ("PLEX_PG_PASSWORD", Cluster::PASSWORD),
        ("PLEX_PG_SCHEMA", "tls"),
        ("PLEX_PG_RETRY_FOR_MS", "20000"),
        ("PLEX_PG_CONFIG", "/dev/null"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

fn assert_opened(v: &Value, stderr: &str) {
    assert_eq!(v["opened"], true, "{v}\n{stderr}");
    assert_eq!(v["rows"], serde_json::json!([[1]]), "{v}\n{stderr}");
}

/// A failure retrying cannot fix: reported at once (well inside the 20 s
/// retry window), with `what` in the message.
fn assert_refused_at_once(v: &Value, stderr: &str, took: Duration, what: &[&str]) -> String {
    assert_eq!(v["opened"], false, "{v}\n{stderr}");
    let msg = v["error"]["message"].as_str().unwrap().to_string();
    for w in what {
        assert!(msg.contains(w), "{w:?} missing from: {msg}");
    }
    assert!(
        took < Duration::from_secs(10),
        "retried for {took:?}: {msg}\n{stderr}"
    );
    msg
}

/// Connections the server logged as authorized over TLS for `user`.
fn tls_sessions_logged(user: &str) -> usize {
    let log = std::fs::read_to_string(tls().cluster.log_file()).unwrap_or_default();
    let needle = format!(
        "user={user} database={} application_name=plex-pg SSL enabled (protocol=TLSv1.3",
        Cluster::DATABASE
    );
    log.matches(&needle).count()
}

#[test]
fn the_default_prefer_and_require_use_tls_where_plain_tcp_is_refused() {
    for mode in ["", "require"] {
        let before = tls_sessions_logged(Cluster::USER);
        let extra: &[(&str, &str)] = if mode.is_empty() {
            &[]
        } else {
            &[("PLEX_PG_SSLMODE", "require")]
        };
        let (v, stderr, _) = attempt(&env("127.0.0.1", extra), &["SELECT 1"]);
        assert_opened(&v, &stderr);
        std::thread::sleep(Duration::from_millis(200)); // the log is written asynchronously
        assert!(
            tls_sessions_logged(Cluster::USER) > before,
            "sslmode {mode:?}: the server logged no TLS 1.3 session for the shim"
        );
    }
}

#[test]
fn disable_is_refused_by_a_tls_only_server_and_allow_then_uses_tls() {
    let (v, stderr, took) = attempt(
        &env("127.0.0.1", &[("PLEX_PG_SSLMODE", "disable")]),
        &["SELECT 1"],
    );
    assert_refused_at_once(
        &v,
        &stderr,
        took,
        &["no encryption", "postgres.sslmode to prefer"],
    );
    let (v, stderr, _) = attempt(
        &env("127.0.0.1", &[("PLEX_PG_SSLMODE", "allow")]),
        &["SELECT 1"],
    );
    assert_opened(&v, &stderr);
}

#[test]
fn verify_full_accepts_the_right_name_and_refuses_another() {
    let ca = tls().file("ca.crt").display().to_string();
    let verify = [
        ("PLEX_PG_SSLMODE", "verify-full"),
        ("PLEX_PG_SSLROOTCERT", ca.as_str()),
    ];
    let (v, stderr, _) = attempt(&env("localhost", &verify), &["SELECT 1"]);
    assert_opened(&v, &stderr);
    // The certificate names localhost, not 127.0.0.1.
    let (v, stderr, took) = attempt(&env("127.0.0.1", &verify), &["SELECT 1"]);
    assert_refused_at_once(
        &v,
        &stderr,
        took,
        &[
            "TLS with PostgreSQL",
            "certificate",
            "postgres.sslmode = verify-full",
        ],
    );
}

#[test]
fn verify_ca_accepts_any_name_but_only_its_authority() {
    let ca = tls().file("ca.crt").display().to_string();
    let (v, stderr, _) = attempt(
        &env(
            "127.0.0.1",
            &[
                ("PLEX_PG_SSLMODE", "verify-ca"),
                ("PLEX_PG_SSLROOTCERT", &ca),
            ],
        ),
        &["SELECT 1"],
    );
    assert_opened(&v, &stderr);
    let other = tls().file("other_ca.crt").display().to_string();
    for mode in ["verify-ca", "require"] {
        // `require` with sslrootcert set checks the chain, as libpq does.
        let (v, stderr, took) = attempt(
            &env(
                "127.0.0.1",
                &[("PLEX_PG_SSLMODE", mode), ("PLEX_PG_SSLROOTCERT", &other)],
            ),
            &["SELECT 1"],
        );
        let msg =
            assert_refused_at_once(&v, &stderr, took, &["TLS with PostgreSQL", "certificate"]);
        assert!(
            msg.contains("UnknownIssuer") || msg.contains("unknown issuer"),
            "{mode}: {msg}"
        );
    }
}

#[test]
fn a_client_certificate_logs_in_without_a_password() {
    let t = tls();
    let cert = t.file("client.crt").display().to_string();
    let key = t.file("client.key").display().to_string();
    let before = tls_sessions_logged(CERT_USER);
    let base = [
        ("PLEX_PG_USER", CERT_USER),
        ("PLEX_PG_PASSWORD", ""),
        ("PLEX_PG_SSLMODE", "require"),
    ];
    let mut with_cert = base.to_vec();
    with_cert.extend([
        ("PLEX_PG_SSLCERT", cert.as_str()),
        ("PLEX_PG_SSLKEY", key.as_str()),
    ]);
    let (v, stderr, _) = attempt(&env("127.0.0.1", &with_cert), &["SELECT 1"]);
    assert_opened(&v, &stderr);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        tls_sessions_logged(CERT_USER) > before,
        "no TLS session logged for {CERT_USER}"
    );
    // Without the certificate the server refuses the role, at once.
    let (v, stderr, took) = attempt(&env("127.0.0.1", &base), &["SELECT 1"]);
    assert_refused_at_once(&v, &stderr, took, &["certificate"]);
}

#[test]
fn a_private_key_others_can_read_is_refused_naming_the_key() {
    let t = tls();
    let loose = TempDir::new("tls-loose-key");
    let key = loose.path().join("client.key");
    std::fs::copy(t.file("client.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cert = t.file("client.crt").display().to_string();
    let key = key.display().to_string();
    let (v, stderr, took) = attempt(
        &env(
            "127.0.0.1",
            &[
                ("PLEX_PG_USER", CERT_USER),
                ("PLEX_PG_SSLCERT", &cert),
                ("PLEX_PG_SSLKEY", &key),
            ],
        ),
        &["SELECT 1"],
    );
    assert_refused_at_once(
        &v,
        &stderr,
        took,
        &[
            "postgres.sslkey",
            "readable by others (mode 0644)",
            "chmod 06",
        ],
    );
}

#[test]
fn require_refuses_a_server_without_tls_and_prefer_falls_back_to_plain() {
    // The shared test server serves no TLS.
    let plain = plex_pg_tests::pg();
    let port = plain.port.to_string();
    let over_tcp = |mode: &str| {
        env(
            "127.0.0.1",
            &[
                ("PLEX_PG_PORT", &port),
                ("PLEX_PG_PASSWORD", plex_pg_tests::PG_PASSWORD),
                ("PLEX_PG_SSLMODE", mode),
            ],
        )
    };
    let (v, stderr, _) = attempt(&over_tcp("prefer"), &["SELECT 1"]);
    assert_opened(&v, &stderr);
    let (v, stderr, took) = attempt(&over_tcp("require"), &["SELECT 1"]);
    assert_refused_at_once(&v, &stderr, took, &["TLS", "postgres.sslmode = require"]);
}

/// The incident's shape over TLS: the parent streams 40,000 rows on a TLS
/// session while it forks 50 times; each child opens its own. A child
/// that wrote one byte on the parent's session would break its record
/// sequence and the parent's stream would fail.
#[test]
fn forked_children_never_touch_the_parents_tls_session() {
    let t = tls();
    t.cluster
        .psql(
            "CREATE SCHEMA IF NOT EXISTS tls_fork; SET search_path = tls_fork; \
             CREATE TABLE IF NOT EXISTS metadata_items (id bigint PRIMARY KEY, guid text, hash text); \
             TRUNCATE metadata_items; \
             INSERT INTO metadata_items SELECT g, 'guid-' || g, NULL FROM generate_series(1, 40000) g",
        )
        .unwrap();
    let dir = TempDir::new("tls-fork");
    let db = dir.library_db();
    let out = run(
        Command::new("python3")
            .arg(python_script("fork_stream.py"))
            .arg(&db)
            .arg("800")
            .envs(env(
                "127.0.0.1",
                &[
                    ("PLEX_PG_SSLMODE", "require"),
                    ("PLEX_PG_SCHEMA", "tls_fork"),
                ],
            ))
            .env("LD_PRELOAD", shim()),
        Duration::from_secs(240),
    );
    out.assert_ok();
    let got: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(got["rows"], 40_000, "every row, once: {}", out.stderr);
    assert_eq!(got["bad"], 0);
    let children = got["children"].as_array().unwrap();
    assert_eq!(children.len(), 50);
    for child in children {
        assert_eq!(child["exit"], 0);
        assert_eq!(
            child["count"], 40_000,
            "the child queried on its own TLS session: {child}"
        );
    }
}

/// The fork tests over TLS under the launcher: its pool checks must still
/// see the connections (TCP sockets to the server, TLS or not): 10 forks
/// while 40,000 rows stream pass their checks, and with the fork handler
/// off a child's use of its parent's TLS session is caught.
#[test]
fn the_launcher_sees_tls_connections_passes_forks_and_catches_an_inherited_use() {
    let t = tls();
    t.cluster
        .psql(
            "CREATE SCHEMA IF NOT EXISTS tls_launcher; SET search_path = tls_launcher; \
             CREATE TABLE IF NOT EXISTS metadata_items (id bigint PRIMARY KEY, guid text, hash text); \
             TRUNCATE metadata_items; \
             INSERT INTO metadata_items SELECT g, 'guid-' || g, NULL FROM generate_series(1, 40000) g",
        )
        .unwrap();
    let peer = format!("tcp:127.0.0.1:{}", t.cluster.port());
    let settings = env(
        "127.0.0.1",
        &[
            ("PLEX_PG_SSLMODE", "require"),
            ("PLEX_PG_SCHEMA", "tls_launcher"),
            ("PLEX_PG_ALLOW_EMPTY_LIBRARY", "1"),
        ],
    );
    let inherited_peers = |run: &support::Run, child: i64| -> Vec<String> {
        run.event_for("fork", child)["inherited"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|s| s["peer"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };

    // The fork handler on: every check passes.
    let mut l = support::Launcher::new();
    l.cmd.envs(settings.clone());
    let db = l.dir.library_db();
    let script = python_script("fork_stream.py").display().to_string();
    let run = l.run(&["python3", &script, &db, "4000"], Duration::from_secs(240));
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let got: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(got["rows"], 40_000, "{}", run.dump());
    let children = got["children"].as_array().unwrap();
    assert_eq!(children.len(), 10);
    for child in children {
        assert_eq!(child["count"], 40_000, "{child}");
        let pid = child["pid"].as_i64().unwrap();
        assert!(
            inherited_peers(&run, pid).contains(&peer),
            "the launcher saw the parent's TLS connection ({peer}) at the fork of {pid}\n{}",
            run.dump()
        );
        assert_eq!(
            run.event_for("pool_check", pid)["verdict"],
            "ok",
            "{}",
            run.dump()
        );
    }
    assert_eq!(run.summary()["pool_check_violations"], 0, "{}", run.dump());

    // The fork handler off: the child uses its parent's TLS session.
    let mut l = support::Launcher::new();
    l.cmd.envs(settings).env("PLEX_PG_FORK_HANDLER", "0");
    let db = l.dir.library_db();
    let script = python_script("inherited_use.py").display().to_string();
    let run = l.run(&["python3", &script, &db], Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let phase: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let child = phase["child"].as_i64().unwrap();
    assert!(
        inherited_peers(&run, child).contains(&peer),
        "{}",
        run.dump()
    );
    assert_eq!(
        run.event_for("pool_check", child)["verdict"],
        "violation",
        "{}",
        run.dump()
    );
    let uses = run.events("inherited_fd_use");
    assert!(
        uses.iter()
            .any(|u| u["pid"] == child && u["peer"] == peer.as_str()),
        "the child's use of the inherited TLS connection was caught\n{}",
        run.dump()
    );
}

#[test]
fn check_says_the_connection_is_encrypted() {
    let ca = tls().file("ca.crt").display().to_string();
    let out = run(
        Command::new(artifact("plex-pg-launcher"))
            .arg("check")
            .envs(env(
                "localhost",
                &[
                    ("PLEX_PG_SSLMODE", "verify-full"),
                    ("PLEX_PG_SSLROOTCERT", &ca),
                ],
            )),
        Duration::from_secs(60),
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ok   postgres:"))
        .unwrap_or_else(|| panic!("no postgres line:\n{}\n{}", out.stdout, out.stderr))
        .to_string();
    assert!(line.contains("encrypted: TLSv1.3"), "{line}");
    assert!(line.contains("postgres.sslmode = verify-full"), "{line}");
}
