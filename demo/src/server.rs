//! The PostgreSQL server the demo runs on: the one the settings name when
//! `postgres.host` is configured (file or `PLEX_PG_HOST`), with a schema of
//! the demo's own that is dropped afterwards; otherwise a throwaway cluster
//! started for the occasion ([`plex_pg_launcher::cluster`]) by a keeper process, and
//! stopped and removed afterwards, also when the demo is interrupted or
//! killed ([`keep_cluster`]).
//!
//! The demo also reads the server while plex-sim runs: how many movies the
//! fill has committed, how many statements PostgreSQL has run, and (for the
//! incident view) the server's own log of the hash query.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plex_pg_config::settings::{Settings, Source, CONFIG_ENV};
use serde_json::{json, Value};

use plex_pg_launcher::cluster::Cluster;

/// Where the server is and which schema the demo's library lives in.
#[derive(Clone, Debug)]
pub struct Coords {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
    pub schema: String,
}

pub struct DemoServer {
    /// The process that keeps the throwaway cluster; `None` on a configured server.
    keeper: Option<Keeper>,
    /// The configuration file the child launcher must read (a configured
    /// server may be described there).
    config_file: Option<PathBuf>,
    pub coords: Coords,
    client: Option<postgres::Client>,
    statements_at_start: Option<i64>,
}

/// The throwaway cluster lives in a process of its own (`demo
/// --cluster-keeper`, in its own process group): a Ctrl-C on the terminal
/// reaches the demo, not the server, so the demo can stop plex-sim first;
/// and the keeper stops and removes the cluster as soon as its standard
/// input closes, which happens even when the demo is killed.
struct Keeper {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// How long initdb and the server's start may take.
const START_LIMIT: Duration = Duration::from_secs(180);
/// How long stopping and removing the cluster may take.
const STOP_LIMIT: Duration = Duration::from_secs(90);

impl DemoServer {
    /// Whether the settings name a server (else the demo starts its own).
    pub fn configured(settings: &Settings) -> bool {
        settings.origin("postgres.host") != Source::Default
    }

    /// Start a throwaway cluster through a keeper process (a few seconds:
    /// initdb). `interrupted` is polled while waiting.
    pub fn throwaway(interrupted: &dyn Fn() -> bool) -> Result<DemoServer, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program to start the cluster keeper: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--cluster-keeper")
            .env(CONFIG_ENV, "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the cluster keeper: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        let mut keeper = Keeper {
            child,
            stdin,
            log: PathBuf::new(),
        };
        let started = Instant::now();
        let line = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Disconnected) => break String::new(),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if interrupted() {
                        keeper.stop();
                        return Err("interrupted while PostgreSQL was starting".into());
                    }
                    if started.elapsed() > START_LIMIT {
                        keeper.stop();
                        return Err(format!(
                            "the throwaway PostgreSQL did not start within {} s",
                            START_LIMIT.as_secs()
                        ));
                    }
                }
            }
        };
        let said: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                keeper.stop();
                return Err("the cluster keeper ended without starting PostgreSQL".into());
            }
        };
        if let Some(e) = said["error"].as_str() {
            keeper.stop();
            return Err(format!(
                "cannot start a throwaway PostgreSQL: {e}. Install PostgreSQL (bash packaging/install-deps.sh does), \
                 or point the demo at a server: PLEX_PG_HOST, PLEX_PG_PORT, PLEX_PG_USER, PLEX_PG_PASSWORD, PLEX_PG_DATABASE"
            ));
        }
        keeper.log = PathBuf::from(said["log"].as_str().unwrap_or(""));
        let coords = Coords {
            host: said["host"].as_str().unwrap_or("").to_string(),
            port: said["port"].as_u64().unwrap_or(0) as u16,
            database: Cluster::DATABASE.into(),
            user: Cluster::USER.into(),
            password: Cluster::PASSWORD.into(),
            schema: "plex".into(),
        };
        Ok(DemoServer::with(Some(keeper), None, coords))
    }

    /// The configured server, with a schema nobody else uses.
    pub fn configured_server(settings: &Settings) -> Result<DemoServer, String> {
        let pg = &settings.postgres;
        // The demo uses the first server of the list.
        let first = pg.endpoints().swap_remove(0);
        let coords = Coords {
            host: first.host,
            port: first.port,
            database: pg.database.clone(),
            user: pg.user.clone(),
            password: pg.password.expose().to_string(),
            schema: format!("plex_pg_demo_{}", std::process::id()),
        };
        let mut server = DemoServer::with(None, settings.file.clone(), coords);
        if server.client.is_none() {
            return Err(format!(
                "cannot connect to the configured PostgreSQL at {} (database {:?}, user {:?}, from {}); \
                 `plex-pg-launcher check` says why, or unset PLEX_PG_HOST to let the demo start its own",
                pg.endpoint(),
                pg.database,
                pg.user,
                settings.origin("postgres.host")
            ));
        }
        server.drop_schemas();
        Ok(server)
    }

    fn with(keeper: Option<Keeper>, config_file: Option<PathBuf>, coords: Coords) -> DemoServer {
        let mut server = DemoServer {
            keeper,
            config_file,
            coords,
            client: None,
            statements_at_start: None,
        };
        server.client = server.connect();
        server.statements_at_start = server.statements_total();
        server
    }

    fn connect(&self) -> Option<postgres::Client> {
        let c = &self.coords;
        let mut config = postgres::Config::new();
        config
            .host(&c.host)
            .port(c.port)
            .dbname(&c.database)
            .user(&c.user);
        config
            .password(&c.password)
            .connect_timeout(Duration::from_secs(10));
        config.application_name("plex-pg-demo");
        config.connect(postgres::NoTls).ok()
    }

    /// One line: which server, which schema.
    pub fn describe(&self) -> String {
        let c = &self.coords;
        let place = if c.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", c.host, c.port)
        } else {
            format!("{}:{}", c.host, c.port)
        };
        match &self.keeper {
            Some(_) => format!("throwaway cluster at {place}, schema {}", c.schema),
            None => format!(
                "configured server {place}, database {}, schema {} (dropped afterwards)",
                c.database, c.schema
            ),
        }
    }

    /// The `PLEX_PG_*` variables for the launcher and plex-sim.
    pub fn env(&self) -> Vec<(String, String)> {
        let c = &self.coords;
        let config = match (&self.keeper, &self.config_file) {
            // Nothing from the machine's configuration leaks into a throwaway run.
            (Some(_), _) | (None, None) => "/dev/null".to_string(),
            (None, Some(file)) => file.display().to_string(),
        };
        vec![
            ("PLEX_PG_HOST".into(), c.host.clone()),
            ("PLEX_PG_PORT".into(), c.port.to_string()),
            ("PLEX_PG_DATABASE".into(), c.database.clone()),
            ("PLEX_PG_USER".into(), c.user.clone()),
            ("PLEX_PG_PASSWORD".into(), c.password.clone()),
            ("PLEX_PG_SCHEMA".into(), c.schema.clone()),
            (CONFIG_ENV.into(), config),
        ]
    }

    fn query_i64(&mut self, sql: &str) -> Option<i64> {
        let client = self.client.as_mut()?;
        client
            .query_one(sql, &[])
            .ok()
            .and_then(|row| row.try_get::<_, i64>(0).ok())
    }

    /// Movies the fill has committed so far (None before the schema exists).
    pub fn movies(&mut self) -> Option<i64> {
        let sql = format!(
            "SELECT count(*) FROM {}.metadata_items",
            quote_ident(&self.coords.schema)
        );
        self.query_i64(&sql)
    }

    fn statements_total(&mut self) -> Option<i64> {
        // A statement outside a transaction is a transaction of its own.
        self.query_i64(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
        )
    }

    /// Transactions PostgreSQL has finished in the demo's database since the
    /// demo started (its statistics lag by up to a second).
    pub fn statements(&mut self) -> Option<i64> {
        let now = self.statements_total()?;
        Some(now - self.statements_at_start.unwrap_or(0))
    }

    /// Make the throwaway server log every statement, with the backend's pid
    /// and the time in milliseconds; returns the server's log file. Only for
    /// the throwaway cluster (a configured server's log is not ours to change).
    pub fn log_statements(&mut self) -> Option<PathBuf> {
        let log = self.keeper.as_ref()?.log.clone();
        let client = self.client.as_mut()?;
        let settings = [
            "ALTER SYSTEM SET log_line_prefix = '%m [%p] '",
            // The incident view compares these times with the launcher's (UTC).
            "ALTER SYSTEM SET log_timezone = 'UTC'",
            "ALTER SYSTEM SET log_statement = 'all'",
            "ALTER SYSTEM SET log_min_duration_statement = 0",
            "ALTER SYSTEM SET log_parameter_max_length = 0",
            "SELECT pg_reload_conf()",
        ];
        for sql in settings {
            client.batch_execute(sql).ok()?;
        }
        Some(log)
    }

    /// At the end: a configured server gets the demo's schemas dropped; the
    /// throwaway cluster is stopped and removed. Returns what was done.
    pub fn finish(&mut self) -> String {
        self.client = None;
        match self.keeper.as_mut() {
            None => {
                self.client = self.connect();
                self.drop_schemas();
                self.client = None;
                format!("schemas {0} and {0}_blobs dropped", self.coords.schema)
            }
            Some(keeper) => keeper.stop(),
        }
    }

    fn drop_schemas(&mut self) {
        let schema = quote_ident(&self.coords.schema);
        let blobs = quote_ident(&format!("{}_blobs", self.coords.schema));
        if let Some(client) = self.client.as_mut() {
            if let Err(e) = client.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS {blobs} CASCADE"
            )) {
                eprintln!(
                    "plex-pg-demo: could not drop the demo's schemas {schema} and {blobs}: {e}"
                );
            }
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.as_mut() {
            keeper.stop();
        }
    }
}

impl Keeper {
    /// Close the keeper's standard input and wait (bounded) for it to stop
    /// and remove the cluster.
    fn stop(&mut self) -> String {
        if self.stdin.take().is_none() {
            return "PostgreSQL already stopped".into();
        }
        let started = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => {
                    return "throwaway PostgreSQL stopped and removed".into()
                }
                Ok(Some(status)) => return format!("the cluster keeper ended with {status}"),
                Ok(None) if started.elapsed() < STOP_LIMIT => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return format!(
                        "the cluster keeper did not stop within {} s: killed",
                        STOP_LIMIT.as_secs()
                    );
                }
            }
        }
    }
}

static KEEPER_STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn keeper_signal(_: libc::c_int) {
    KEEPER_STOP.store(true, Ordering::Relaxed);
}

/// `demo --cluster-keeper`: start a throwaway cluster, say where it is (one
/// JSON line on standard output), and stop and remove it when standard
/// input closes or TERM arrives. Exit status 0 once it is gone.
pub fn keep_cluster() -> i32 {
    // SAFETY: ignoring two signals has no precondition.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    // No SA_RESTART: the read below returns EINTR on TERM.
    super::catch(&[libc::SIGTERM], keeper_signal, 0);
    let cluster = match Cluster::start() {
        Ok(c) => c,
        Err(e) => {
            println!("{}", json!({"error": e.to_string()}));
            return 1;
        }
    };
    println!(
        "{}",
        json!({"host": cluster.socket_dir().display().to_string(), "port": cluster.port(), "log": cluster.log_file().display().to_string()})
    );
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 64];
    while !KEEPER_STOP.load(Ordering::Relaxed) {
        // SAFETY: reading into a valid buffer from fd 0.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0
            || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
        {
            break;
        }
    }
    drop(cluster);
    0
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
