//! The settings: one TOML file, then `PLEX_PG_*` environment overrides, then
//! (for the launcher) its command line.
//!
//! Every key is applied through [`Settings::apply`], whatever its source, so a
//! value means the same thing in the file, in the environment and on the
//! command line, and a bad one is reported with the key and where it came
//! from ([`ConfigError`]). Unknown keys in the file are errors, not silently
//! ignored typos.
//!
//! Secrets never reach a message: the value of a secret key
//! ([`is_secret`]) is never quoted in an error, and a syntax error in the
//! file gives its line and column, never the source line (which may hold a
//! password), with anything that looks like a secret's value blanked out.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the configuration file is looked for when `PLEX_PG_CONFIG` is unset.
pub const DEFAULT_PATH: &str = "/etc/plex-pg/config.toml";

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "PLEX_PG_CONFIG";

/// Every setting: its key in the TOML file, the environment variable that
/// overrides it (if any), and one line on what it means. `docs/configuration.md`
/// is checked against this table by a test.
pub const KEYS: &[(&str, Option<&str>, &str)] = &[
    ("postgres.host", Some("PLEX_PG_HOST"), "host name, IP address, or Unix-socket directory of the PostgreSQL server; several, comma-separated (or a TOML list), are tried in order"),
    ("postgres.port", Some("PLEX_PG_PORT"), "TCP port, or the number in the socket name .s.PGSQL.<port>; one for every host, or one per host"),
    ("postgres.database", Some("PLEX_PG_DATABASE"), "database that holds Plex's library"),
    ("postgres.user", Some("PLEX_PG_USER"), "role to connect as"),
    ("postgres.password", Some("PLEX_PG_PASSWORD"), "password for that role (never logged)"),
    ("postgres.schema", Some("PLEX_PG_SCHEMA"), "schema of the main library database; other routed databases get <schema>_<name>"),
    ("postgres.connect_timeout_ms", Some("PLEX_PG_CONNECT_TIMEOUT_MS"), "timeout of one connection attempt"),
    ("postgres.retry_for_ms", Some("PLEX_PG_RETRY_FOR_MS"), "how long a dead server is retried, with backoff, before a call fails (long enough for a failover)"),
    ("postgres.target_session_attrs", Some("PLEX_PG_TARGET_SESSION_ATTRS"), "read-write: only a server that accepts writes (the primary); any: the first that answers"),
    ("postgres.sslmode", Some("PLEX_PG_SSLMODE"), "TLS, libpq's names: disable, allow, prefer, require, verify-ca or verify-full; never over a Unix socket"),
    ("postgres.sslrootcert", Some("PLEX_PG_SSLROOTCERT"), "certificates (PEM file) of the authorities trusted to sign the server's, or system for the system's store; verify-ca and verify-full need it"),
    ("postgres.sslcert", Some("PLEX_PG_SSLCERT"), "client certificate (PEM file, its chain after it) for servers that ask for one; empty: none"),
    ("postgres.sslkey", Some("PLEX_PG_SSLKEY"), "the client certificate's private key (PEM file, readable by its owner only)"),
    ("postgres.keepalives_idle_s", Some("PLEX_PG_KEEPALIVES_IDLE"), "TCP keepalive: seconds idle before the first probe"),
    ("postgres.keepalives_interval_s", Some("PLEX_PG_KEEPALIVES_INTERVAL"), "TCP keepalive: seconds between probes"),
    ("postgres.keepalives_count", Some("PLEX_PG_KEEPALIVES_COUNT"), "TCP keepalive: probes lost before the connection is dead"),
    ("postgres.tcp_user_timeout_ms", Some("PLEX_PG_TCP_USER_TIMEOUT_MS"), "how long sent data may stay unacknowledged before the connection is dead; 0: the kernel's default"),
    ("pool.size", Some("PLEX_PG_POOL_SIZE"), "connections kept open while idle"),
    ("pool.max", Some("PLEX_PG_POOL_MAX"), "most connections open at once (the pool's slots)"),
    ("pool.acquire_timeout_ms", Some("PLEX_PG_POOL_TIMEOUT_MS"), "how long a call waits for a free connection before SQLITE_BUSY"),
    ("pool.statement_cache", Some("PLEX_PG_STATEMENT_CACHE"), "prepared statements kept per connection"),
    ("pool.pipeline_writes", Some("PLEX_PG_PIPELINE_WRITES"), "in a transaction, send a write that cannot fail without waiting for its answer (read when a result is next needed); false: one round trip per write, for measurement"),
    ("shim.route", Some("PLEX_PG_ROUTE"), "file-name patterns (* and ?) of the databases that run on PostgreSQL; comma-separated in the environment"),
    ("shim.real_sqlite", Some("PLEX_PG_REAL_SQLITE"), "path of the real libsqlite3; empty: the next one in the link order (dlsym RTLD_NEXT)"),
    ("shim.fork_handler", Some("PLEX_PG_FORK_HANDLER"), "the child's fork handler; 0 reproduces the crash of January 2026, for tests only"),
    ("log.level", Some("PLEX_PG_LOG_LEVEL"), "error, warn, info, debug or trace"),
    ("log.file", Some("PLEX_PG_LOG_FILE"), "file to append the log to; empty: standard error"),
    ("log.max_bytes", Some("PLEX_PG_LOG_MAX_BYTES"), "the log file's size at which it is rotated (to <file>.1, <file>.2 …), by whichever process writes the line that would pass it; 0: never"),
    ("log.keep", Some("PLEX_PG_LOG_KEEP"), "rotated log files kept"),
    ("launcher.mode", Some("PLEX_PG_MODE"), "off, verify or enforce"),
    ("launcher.watcher", Some("PLEX_PG_WATCHER"), "auto, ptrace or procfs"),
    ("launcher.events", Some("PLEX_PG_EVENTS"), "file for the JSON event log, - for standard output; empty: none"),
    ("launcher.metrics_listen", Some("PLEX_PG_METRICS_LISTEN"), "address:port where the launcher serves Prometheus metrics on /metrics (e.g. 127.0.0.1:9187); empty: none"),
    ("launcher.events_max_bytes", Some("PLEX_PG_EVENTS_MAX_BYTES"), "the event log file's size at which it is rotated (to <file>.1, <file>.2 …); 0: never"),
    ("launcher.events_keep", Some("PLEX_PG_EVENTS_KEEP"), "rotated event log files kept"),
    ("launcher.shim", Some("PLEX_PG_SHIM"), "path of libplex_pg_shim.so"),
    ("launcher.user", None, "user to run Plex as (name); empty: the launcher's own"),
    ("launcher.grace_period_ms", Some("PLEX_PG_GRACE_PERIOD_MS"), "after TERM, how long the tree may take to exit before KILL"),
    ("launcher.poll_interval_ms", Some("PLEX_PG_POLL_INTERVAL_MS"), "how often the procfs watcher scans the tree"),
    ("launcher.alert_command", None, "command run with each violation as JSON on its standard input"),
    ("launcher.alert_limit_per_minute", None, "most alert_command runs a minute"),
    ("launcher.kill_offender", None, "in enforce mode, also kill a process that used an inherited socket"),
    ("launcher.allow_empty_library", Some("PLEX_PG_ALLOW_EMPTY_LIBRARY"), "start Plex on a schema holding no library even though a SQLite library exists in Plex's Databases folder (a fresh install); false: refuse, and say to run the import"),
];

/// Whether `key`'s value is secret: never shown in an error or a log line.
pub fn is_secret(key: &str) -> bool {
    key.rsplit('.')
        .next()
        .is_some_and(|name| name.contains("password"))
}

/// Where a value came from, for error messages and `check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    CommandLine,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the built-in default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::CommandLine => f.write_str("the command line"),
        }
    }
}

/// A configuration error: which key, where it came from, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `section.name`, or empty for an error about the whole file.
    pub key: String,
    pub source: Source,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(
                f,
                "bad value for `{}` in {}: {}",
                self.key, self.source, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A password: shown as `***` by `Debug`, so it never reaches a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postgres {
    /// The servers, tried in this order (libpq's comma-separated list):
    /// host names, IP addresses or Unix-socket directories.
    pub hosts: Vec<String>,
    /// One port for every host, or one per host, in the same order.
    pub ports: Vec<u16>,
    pub database: String,
    pub user: String,
    pub password: Secret,
    pub schema: String,
    pub connect_timeout: Duration,
    pub retry_for: Duration,
    /// Which server a connection may stay on (libpq's `target_session_attrs`).
    pub target_session_attrs: SessionAttrs,
    /// TLS (libpq's `sslmode`), the authorities trusted to sign the
    /// server's certificate (a PEM file, `system`, or empty), and the
    /// client's certificate and key (PEM files, or empty).
    pub sslmode: SslMode,
    pub sslrootcert: String,
    pub sslcert: String,
    pub sslkey: String,
    /// TCP keepalive: idle time before the first probe, time between
    /// probes, probes lost before the connection is dead.
    pub keepalives_idle: Duration,
    pub keepalives_interval: Duration,
    pub keepalives_count: u32,
    /// How long sent data may stay unacknowledged (`TCP_USER_TIMEOUT`).
    pub tcp_user_timeout: Duration,
}

/// libpq's `target_session_attrs`, the two values the library can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAttrs {
    /// The first server that accepts the connection.
    Any,
    /// The first server that accepts writes (`transaction_read_only` off):
    /// the primary, never a standby.
    ReadWrite,
}

/// libpq's `sslmode`, with libpq's meanings. TLS is never used over a
/// Unix socket (libpq does not either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain first; TLS if the server refuses a plain connection.
    Allow,
    /// TLS if the server offers it, plain otherwise; the certificate is
    /// not checked.
    Prefer,
    /// TLS or nothing; the certificate is not checked (unless
    /// `sslrootcert` is set: then as `VerifyCa`, as libpq does).
    Require,
    /// TLS, the certificate signed by an authority of `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// libpq's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// One server: a host (or Unix-socket directory) and its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// True when `host` names a Unix-socket directory rather than a host.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The socket file for a Unix-socket `host`: `<dir>/.s.PGSQL.<port>`.
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.is_unix_socket()
            .then(|| Path::new(&self.host).join(format!(".s.PGSQL.{}", self.port)))
    }
}

impl fmt::Display for Endpoint {
    /// `host:port` (`[addr]:port` for IPv6), or the socket path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.socket_path() {
            Some(p) => write!(f, "{}", p.display()),
            None if self.host.contains(':') => write!(f, "[{}]:{}", self.host, self.port),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl Postgres {
    /// The servers in the order they are tried.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, host)| Endpoint {
                host: host.clone(),
                port: *self.ports.get(i).or(self.ports.first()).unwrap_or(&5432),
            })
            .collect()
    }

    /// Where the servers are, for messages: `host:port` or the socket path,
    /// comma-separated when there are several.
    pub fn endpoint(&self) -> String {
        self.endpoints()
            .iter()
            .map(Endpoint::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub size: u32,
    pub max: u32,
    pub acquire_timeout: Duration,
    pub statement_cache: u32,
    pub pipeline_writes: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shim {
    pub route: Vec<String>,
    pub real_sqlite: Option<PathBuf>,
    pub fork_handler: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub level: LogLevel,
    pub file: Option<PathBuf>,
    pub max_bytes: u64,
    pub keep: u32,
}

/// What the launcher does about fork safety.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Init duties only.
    Off,
    /// Observe, cross-check and alert; never change what Plex does.
    Verify,
    /// Also deny a syscall on an inherited PostgreSQL socket (EBADF).
    Enforce,
}

/// How the launcher watches Plex's process tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watcher {
    Auto,
    Ptrace,
    Procfs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launcher {
    pub mode: Mode,
    pub watcher: Watcher,
    pub events: Option<String>,
    pub metrics_listen: Option<String>,
    pub events_max_bytes: u64,
    pub events_keep: u32,
    pub shim: PathBuf,
    pub user: Option<String>,
    pub grace_period: Duration,
    pub poll_interval: Duration,
    pub alert_command: Option<String>,
    pub alert_limit_per_minute: u32,
    pub kill_offender: bool,
    pub allow_empty_library: bool,
}

/// All of plex-pg's settings, with where each came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub postgres: Postgres,
    pub pool: Pool,
    pub shim: Shim,
    pub log: Log,
    pub launcher: Launcher,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Keys set by something other than the default, and by what.
    pub origins: Vec<(&'static str, Source)>,
    /// Values read with plex-postgresql's meaning (`crate::compat`), one
    /// line each, for the launcher to log once and `check` to show.
    pub notes: Vec<String>,
}

/// The default route: Plex's two library databases.
pub const DEFAULT_ROUTE: [&str; 2] = [
    "com.plexapp.plugins.library.db",
    "com.plexapp.plugins.library.blobs.db",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            postgres: Postgres {
                hosts: vec!["/var/run/postgresql".into()],
                ports: vec![5432],
                database: "plex".into(),
                user: "plex".into(),
                password: Secret::default(),
                schema: "plex".into(),
                connect_timeout: Duration::from_secs(5),
                retry_for: Duration::from_secs(30),
                target_session_attrs: SessionAttrs::ReadWrite,
                sslmode: SslMode::Prefer,
                sslrootcert: String::new(),
                sslcert: String::new(),
                sslkey: String::new(),
                keepalives_idle: Duration::from_secs(30),
                keepalives_interval: Duration::from_secs(10),
                keepalives_count: 3,
                tcp_user_timeout: Duration::from_secs(30),
            },
            pool: Pool {
                size: 8,
                max: 32,
                acquire_timeout: Duration::from_secs(5),
                statement_cache: 256,
                pipeline_writes: true,
            },
            shim: Shim {
                route: DEFAULT_ROUTE.iter().map(|s| s.to_string()).collect(),
                real_sqlite: None,
                fork_handler: true,
            },
            log: Log {
                level: LogLevel::Info,
                file: None,
                max_bytes: 16 << 20,
                keep: 4,
            },
            launcher: Launcher {
                mode: Mode::Verify,
                watcher: Watcher::Auto,
                events: None,
                metrics_listen: None,
                events_max_bytes: 64 << 20,
                events_keep: 4,
                shim: "/usr/lib/plex-pg/libplex_pg_shim.so".into(),
                user: None,
                grace_period: Duration::from_secs(10),
                poll_interval: Duration::from_millis(100),
                alert_command: None,
                alert_limit_per_minute: 6,
                kill_offender: false,
                allow_empty_library: false,
            },
            file: None,
            origins: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// The most slots a pool may have: the fork handler walks a fixed array.
pub const POOL_MAX_LIMIT: u32 = 256;

/// A value to apply: from the TOML file, or text from the environment or the
/// command line.
#[derive(Clone, Copy, Debug)]
pub enum Raw<'a> {
    Toml(&'a toml::Value),
    Text(&'a str),
}

impl<'a> Raw<'a> {
    fn describe(&self) -> String {
        match self {
            Raw::Toml(v) => v.to_string(),
            Raw::Text(s) => format!("{s:?}"),
        }
    }

    /// What kind of value this is, without the value: for secret keys.
    fn kind(&self) -> &'static str {
        match self {
            Raw::Text(_) | Raw::Toml(toml::Value::String(_)) => "a string",
            Raw::Toml(toml::Value::Integer(_)) => "a number",
            Raw::Toml(toml::Value::Float(_)) => "a number",
            Raw::Toml(toml::Value::Boolean(_)) => "a boolean",
            Raw::Toml(toml::Value::Datetime(_)) => "a date",
            Raw::Toml(toml::Value::Array(_)) => "a list",
            Raw::Toml(toml::Value::Table(_)) => "a table",
        }
    }

    fn string(&self) -> Result<String, String> {
        match self {
            Raw::Toml(toml::Value::String(s)) => Ok(s.clone()),
            Raw::Text(s) => Ok(s.to_string()),
            _ => Err(format!("expected a string, got {}", self.describe())),
        }
    }

    fn nonempty(&self) -> Result<String, String> {
        let s = self.string()?;
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(s)
        }
    }

    fn optional_string(&self) -> Result<Option<String>, String> {
        Ok(Some(self.string()?).filter(|s| !s.is_empty()))
    }

    fn int(&self, min: i64, max: i64) -> Result<i64, String> {
        let n = match self {
            Raw::Toml(toml::Value::Integer(n)) => *n,
            Raw::Text(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("expected a whole number, got {}", self.describe()))?,
            _ => return Err(format!("expected a whole number, got {}", self.describe())),
        };
        if n < min || n > max {
            return Err(format!("{n} is out of range: expected {min} to {max}"));
        }
        Ok(n)
    }

    fn millis(&self, min: i64, max: i64) -> Result<Duration, String> {
        Ok(Duration::from_millis(self.int(min, max)? as u64))
    }

    fn bool(&self) -> Result<bool, String> {
        match self {
            Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
            Raw::Toml(toml::Value::Integer(0)) => Ok(false),
            Raw::Toml(toml::Value::Integer(1)) => Ok(true),
            Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(format!(
                    "expected true/false (or 1/0), got {}",
                    self.describe()
                )),
            },
            _ => Err(format!("expected true or false, got {}", self.describe())),
        }
    }

    fn list(&self) -> Result<Vec<String>, String> {
        let items: Vec<String> = match self {
            Raw::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!("expected a list of strings, found {other}")),
                })
                .collect::<Result<_, _>>()?,
            Raw::Toml(toml::Value::String(s)) => split_list(s),
            Raw::Text(s) => split_list(s),
            _ => {
                return Err(format!(
                    "expected a list of strings, got {}",
                    self.describe()
                ))
            }
        };
        Ok(items)
    }

    fn choice<T: Copy>(&self, options: &[(&str, T)]) -> Result<T, String> {
        let s = self.string()?;
        let wanted = s.trim().to_ascii_lowercase();
        options
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                format!(
                    "expected one of {}, got {}",
                    names.join(", "),
                    self.describe()
                )
            })
    }
}

/// The first of `errors`, if any.
fn first(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

const MAX_MS: i64 = 24 * 3600 * 1000;

impl Settings {
    /// Apply one key's value from `source`. The key is `section.name`.
    pub fn apply(&mut self, key: &str, raw: Raw<'_>, source: &Source) -> Result<(), ConfigError> {
        let fail = |message: String| ConfigError {
            key: key.to_string(),
            source: source.clone(),
            message,
        };
        let (static_key, result) = match KEYS.iter().find(|(k, _, _)| *k == key) {
            // A secret's value is never quoted: say only what kind it was.
            Some((k, _, _)) if is_secret(k) => {
                (*k, self.set(k, raw).map_err(|_| format!("expected a string, got {} (the value is not shown: it is secret; quote it)", raw.kind())))
            }
            Some((k, _, _)) => (*k, self.set(k, raw)),
            None => {
                return Err(fail(format!(
                    "unknown key (known keys: {})",
                    KEYS.iter().map(|(k, _, _)| *k).collect::<Vec<_>>().join(", ")
                )))
            }
        };
        result.map_err(fail)?;
        self.origins.retain(|(k, _)| *k != static_key);
        self.origins.push((static_key, source.clone()));
        Ok(())
    }

    fn set(&mut self, key: &str, raw: Raw<'_>) -> Result<(), String> {
        match key {
            "postgres.host" => {
                let hosts = raw.list()?;
                if hosts.is_empty() {
                    return Err("must not be empty".into());
                }
                self.postgres.hosts = hosts;
            }
            "postgres.port" => {
                let port = |r: Raw<'_>| r.int(1, 65535).map(|n| n as u16);
                self.postgres.ports = match raw {
                    Raw::Toml(toml::Value::Integer(_)) => vec![port(raw)?],
                    Raw::Toml(toml::Value::Array(items)) => items
                        .iter()
                        .map(|v| port(Raw::Toml(v)))
                        .collect::<Result<_, _>>()?,
                    _ => raw
                        .list()?
                        .iter()
                        .map(|p| port(Raw::Text(p)))
                        .collect::<Result<_, _>>()?,
                };
                if self.postgres.ports.is_empty() {
                    return Err("must not be empty".into());
                }
            }
            "postgres.target_session_attrs" => {
                self.postgres.target_session_attrs = raw.choice(&[
                    ("read-write", SessionAttrs::ReadWrite),
                    ("any", SessionAttrs::Any),
                ])?
            }
            "postgres.sslmode" => {
                self.postgres.sslmode = raw.choice(&[
                    ("disable", SslMode::Disable),
                    ("allow", SslMode::Allow),
                    ("prefer", SslMode::Prefer),
                    ("require", SslMode::Require),
                    ("verify-ca", SslMode::VerifyCa),
                    ("verify-full", SslMode::VerifyFull),
                ])?
            }
            "postgres.sslrootcert" => self.postgres.sslrootcert = raw.string()?,
            "postgres.sslcert" => self.postgres.sslcert = raw.string()?,
            "postgres.sslkey" => self.postgres.sslkey = raw.string()?,
            "postgres.keepalives_idle_s" => {
                self.postgres.keepalives_idle = Duration::from_secs(raw.int(1, 7200)? as u64)
            }
            "postgres.keepalives_interval_s" => {
                self.postgres.keepalives_interval = Duration::from_secs(raw.int(1, 600)? as u64)
            }
            "postgres.keepalives_count" => self.postgres.keepalives_count = raw.int(1, 100)? as u32,
            "postgres.tcp_user_timeout_ms" => {
                self.postgres.tcp_user_timeout = raw.millis(0, MAX_MS)?
            }
            "postgres.database" => self.postgres.database = raw.nonempty()?,
            "postgres.user" => self.postgres.user = raw.nonempty()?,
            "postgres.password" => self.postgres.password = Secret(raw.string()?),
            "postgres.schema" => {
                let s = raw.nonempty()?;
                if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || s.starts_with(|c: char| c.is_ascii_digit())
                {
                    return Err(format!(
                        "{s:?} is not a plain schema name (letters, digits and _, not starting with a digit)"
                    ));
                }
                self.postgres.schema = s.to_ascii_lowercase();
            }
            "postgres.connect_timeout_ms" => {
                self.postgres.connect_timeout = raw.millis(1, MAX_MS)?
            }
            "postgres.retry_for_ms" => self.postgres.retry_for = raw.millis(0, MAX_MS)?,
            "pool.size" => self.pool.size = raw.int(0, POOL_MAX_LIMIT as i64)? as u32,
            "pool.max" => self.pool.max = raw.int(1, POOL_MAX_LIMIT as i64)? as u32,
            "pool.acquire_timeout_ms" => self.pool.acquire_timeout = raw.millis(0, MAX_MS)?,
            "pool.statement_cache" => self.pool.statement_cache = raw.int(0, 100_000)? as u32,
            "pool.pipeline_writes" => self.pool.pipeline_writes = raw.bool()?,
            "shim.route" => {
                let route = raw.list()?;
                if let Some(bad) = route.iter().find(|p| p.contains('/')) {
                    return Err(format!(
                        "{bad:?}: patterns match file names, not paths (no '/')"
                    ));
                }
                self.shim.route = route;
            }
            "shim.real_sqlite" => self.shim.real_sqlite = raw.optional_string()?.map(PathBuf::from),
            "shim.fork_handler" => self.shim.fork_handler = raw.bool()?,
            "log.level" => {
                // plex-postgresql's numbers: 0 error, 1 info, 2 debug.
                let numbered = match raw {
                    Raw::Toml(toml::Value::Integer(n)) => Some(*n),
                    Raw::Text(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                if let Some(n) = numbered {
                    let (level, name) = match n {
                        0 => (LogLevel::Error, "error"),
                        1 => (LogLevel::Info, "info"),
                        2 => (LogLevel::Debug, "debug"),
                        _ => return Err(format!("{n} is not a level: expected error, warn, info, debug or trace (or plex-postgresql's 0, 1 or 2)")),
                    };
                    self.log.level = level;
                    self.notes.push(format!(
                        "log level {n} read with plex-postgresql's numbering: {name}"
                    ));
                    return Ok(());
                }
                self.log.level = raw.choice(&[
                    ("error", LogLevel::Error),
                    ("warn", LogLevel::Warn),
                    ("info", LogLevel::Info),
                    ("debug", LogLevel::Debug),
                    ("trace", LogLevel::Trace),
                ])?
            }
            "log.file" => self.log.file = raw.optional_string()?.map(PathBuf::from),
            "log.max_bytes" => self.log.max_bytes = raw.int(0, 1 << 40)? as u64,
            "log.keep" => self.log.keep = raw.int(0, 100)? as u32,
            "launcher.mode" => {
                self.launcher.mode = raw.choice(&[
                    ("off", Mode::Off),
                    ("verify", Mode::Verify),
                    ("enforce", Mode::Enforce),
                ])?
            }
            "launcher.watcher" => {
                self.launcher.watcher = raw.choice(&[
                    ("auto", Watcher::Auto),
                    ("ptrace", Watcher::Ptrace),
                    ("procfs", Watcher::Procfs),
                ])?
            }
            "launcher.events" => self.launcher.events = raw.optional_string()?,
            "launcher.metrics_listen" => {
                self.launcher.metrics_listen = match raw.optional_string()? {
                    Some(a) => {
                        a.parse::<std::net::SocketAddr>().map_err(|_| {
                            format!(
                                "{a:?} is not an address:port such as 127.0.0.1:9187 or [::1]:9187"
                            )
                        })?;
                        Some(a)
                    }
                    None => None,
                }
            }
            "launcher.events_max_bytes" => {
                self.launcher.events_max_bytes = raw.int(0, 1 << 40)? as u64
            }
            "launcher.events_keep" => self.launcher.events_keep = raw.int(0, 100)? as u32,
            "launcher.shim" => self.launcher.shim = PathBuf::from(raw.nonempty()?),
            "launcher.user" => self.launcher.user = raw.optional_string()?,
            "launcher.grace_period_ms" => self.launcher.grace_period = raw.millis(0, MAX_MS)?,
            "launcher.poll_interval_ms" => self.launcher.poll_interval = raw.millis(1, 60_000)?,
            "launcher.alert_command" => self.launcher.alert_command = raw.optional_string()?,
            "launcher.alert_limit_per_minute" => {
                self.launcher.alert_limit_per_minute = raw.int(0, 10_000)? as u32
            }
            "launcher.kill_offender" => self.launcher.kill_offender = raw.bool()?,
            "launcher.allow_empty_library" => self.launcher.allow_empty_library = raw.bool()?,
            _ => unreachable!("key {key} is in KEYS but has no setter"),
        }
        Ok(())
    }

    /// Apply a whole TOML document (`[section]` tables of keys); the first
    /// error ([`Settings::apply_toml_all`] keeps going).
    pub fn apply_toml(&mut self, text: &str, source: &Source) -> Result<(), ConfigError> {
        first(self.apply_toml_all(text, source))
    }

    /// Apply a whole TOML document, every key that can be; the errors of
    /// the others, in the file's order.
    pub fn apply_toml_all(&mut self, text: &str, source: &Source) -> Vec<ConfigError> {
        let doc: toml::Table = match text.parse() {
            Ok(doc) => doc,
            Err(e) => {
                return vec![ConfigError {
                    key: String::new(),
                    source: source.clone(),
                    message: syntax_error(&e, text),
                }]
            }
        };
        let mut errors = Vec::new();
        for (section, value) in &doc {
            let Some(table) = value.as_table() else {
                errors.push(ConfigError {
                    key: section.clone(),
                    source: source.clone(),
                    message: "expected a [section] table".into(),
                });
                continue;
            };
            for (name, v) in table {
                if let Err(e) = self.apply(&format!("{section}.{name}"), Raw::Toml(v), source) {
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// Apply every `PLEX_PG_*` override found by `env`; the first error
    /// ([`Settings::apply_env_all`] keeps going).
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        first(self.apply_env_all(env))
    }

    /// Apply every `PLEX_PG_*` override found by `env` that can be, and
    /// plex-postgresql's variables that map onto a setting
    /// ([`crate::compat::MAPPED`]); the errors of the others.
    pub fn apply_env_all(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (key, var, _) in KEYS {
            let Some(var) = var else { continue };
            if let Some(value) = env(var) {
                if let Err(e) = self.apply(key, Raw::Text(&value), &Source::Env(var.to_string())) {
                    errors.push(e);
                }
            }
        }
        const DELAYS: &str = "PLEX_PG_RETRY_DELAYS";
        if let (None, Some(delays)) = (env("PLEX_PG_RETRY_FOR_MS"), env(DELAYS)) {
            let source = Source::Env(DELAYS.to_string());
            let total = split_list(&delays)
                .iter()
                .map(|d| d.parse::<u64>())
                .sum::<Result<u64, _>>();
            let applied = match total {
                Ok(total) => self
                    .apply("postgres.retry_for_ms", Raw::Text(&total.to_string()), &source)
                    .map(|()| total),
                Err(_) => Err(ConfigError {
                    key: "postgres.retry_for_ms".into(),
                    source,
                    message: format!(
                        "expected plex-postgresql's comma-separated delays in milliseconds, got {delays:?}"
                    ),
                }),
            };
            match applied {
                Ok(total) => self.notes.push(format!(
                    "{DELAYS} read with plex-postgresql's meaning: a dead server is retried for {total} ms (postgres.retry_for_ms)"
                )),
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Checks that involve more than one key: the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        first(self.validate_all())
    }

    /// Checks that involve more than one key: every problem.
    pub fn validate_all(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let (hosts, ports) = (self.postgres.hosts.len(), self.postgres.ports.len());
        if ports != 1 && ports != hosts {
            errors.push(ConfigError {
                key: "postgres.port".into(),
                source: self.origin("postgres.port"),
                message: format!(
                    "{ports} ports for {hosts} hosts (postgres.host, from {}): give one port for every host, or one per host",
                    self.origin("postgres.host")
                ),
            });
        }
        let pg = &self.postgres;
        if matches!(pg.sslmode, SslMode::VerifyCa | SslMode::VerifyFull)
            && pg.sslrootcert.is_empty()
        {
            errors.push(ConfigError {
                key: "postgres.sslrootcert".into(),
                source: self.origin("postgres.sslmode"),
                message: format!(
                    "postgres.sslmode = {} checks the server's certificate, but no authority is trusted: set postgres.sslrootcert to a PEM file of the authority that signed it, or to system",
                    pg.sslmode.name()
                ),
            });
        }
        if pg.sslcert.is_empty() != pg.sslkey.is_empty() {
            let (set, unset) = if pg.sslkey.is_empty() {
                ("postgres.sslcert", "postgres.sslkey")
            } else {
                ("postgres.sslkey", "postgres.sslcert")
            };
            errors.push(ConfigError {
                key: unset.into(),
                source: self.origin(set),
                message: format!(
                    "{set} is set but {unset} is not: a client certificate needs both"
                ),
            });
        }
        if self.pool.size > self.pool.max {
            errors.push(ConfigError {
                key: "pool.size".into(),
                source: self.origin("pool.size"),
                message: format!(
                    "{} is larger than pool.max ({}, from {})",
                    self.pool.size,
                    self.pool.max,
                    self.origin("pool.max")
                ),
            });
        }
        errors
    }

    /// Where `key`'s current value came from.
    pub fn origin(&self, key: &str) -> Source {
        self.origins
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| s.clone())
            .unwrap_or(Source::Default)
    }

    /// Load the settings as the shim and the launcher do: the file named by
    /// `PLEX_PG_CONFIG` (an error if it is missing), else [`DEFAULT_PATH`]
    /// (fine if missing), then the environment overrides.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let explicit = env(CONFIG_ENV).filter(|s| !s.is_empty()).map(PathBuf::from);
        Self::load_file(explicit.as_deref(), env)
    }

    /// Like [`Settings::load`], with the file given (`--config`); `None`
    /// means the default path, which may be absent.
    pub fn load_file(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let (settings, errors) = Self::load_file_all(path, env);
        first(errors).map(|()| settings)
    }

    /// Like [`Settings::load_file`], but every problem: the settings with
    /// each key that could be applied (the others keep their defaults) and
    /// every error, the file's first, then the environment's, then those
    /// between keys. `check` shows them all at once.
    pub fn load_file_all(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Settings, Vec<ConfigError>) {
        let mut settings = Settings::default();
        let mut errors = Vec::new();
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let source = Source::File(path.clone());
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                errors.extend(settings.apply_toml_all(&text, &source));
                settings.file = Some(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(e) => errors.push(ConfigError {
                key: String::new(),
                source,
                message: format!("cannot read: {e}"),
            }),
        }
        errors.extend(settings.apply_env_all(env));
        settings.pool_max_follows_size();
        errors.extend(settings.validate_all());
        (settings, errors)
    }

    /// plex-postgresql's rule, kept for its users' `PLEX_PG_POOL_SIZE=50`:
    /// when `pool.max` was not set and the size is above it, the cap follows
    /// the size instead of refusing the start.
    fn pool_max_follows_size(&mut self) {
        if self.pool.size > self.pool.max && self.origin("pool.max") == Source::Default {
            let from = self.origin("pool.size");
            self.notes.push(format!(
                "pool.max follows pool.size = {} (from {from}): pool.max was not set, and plex-postgresql's cap defaults to its pool size",
                self.pool.size
            ));
            self.pool.max = self.pool.size;
            self.origins.push(("pool.max", from));
        }
    }

    /// The PostgreSQL schema for a routed database file name: the main
    /// library database uses `postgres.schema`; any other routed file gets
    /// `<schema>_<name>`, where name is the file's stem without the
    /// `com.plexapp.plugins.library.` prefix, lowercased, other characters
    /// replaced by `_` (the blobs database: `plex_blobs`).
    pub fn schema_for(&self, file_name: &str) -> String {
        let stem = file_name.strip_suffix(".db").unwrap_or(file_name);
        if stem == "com.plexapp.plugins.library" {
            return self.postgres.schema.clone();
        }
        let tail = stem
            .strip_prefix("com.plexapp.plugins.library.")
            .unwrap_or(stem);
        let slug: String = tail
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}_{}", self.postgres.schema, slug)
    }

    /// Whether a database path is routed to PostgreSQL: its file name matches
    /// one of `shim.route`.
    pub fn routes(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.shim
            .route
            .iter()
            .any(|p| glob_match(p.as_bytes(), name.as_bytes()))
    }
}

/// A TOML syntax error without the source line `toml` would quote (it may
/// hold a password): line, column and the parser's message, with anything
/// that looks like the value of a secret key blanked out.
fn syntax_error(e: &toml::de::Error, text: &str) -> String {
    let mut message = e.message().trim().replace('\n', "; ");
    for secret in secret_looking_values(text) {
        message = message.replace(&secret, "***");
    }
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("TOML syntax error at line {line}, column {column}: {message} (the line is not quoted: it may hold a secret)")
        }
        None => format!("TOML syntax error: {message}"),
    }
}

/// The text after `=` on lines whose key is secret, with and without
/// quotes, for blanking out of messages (whatever the parser made of them).
fn secret_looking_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        if !is_secret(key) {
            continue;
        }
        let value = value.trim();
        for v in [value, value.trim_matches(|c| c == '"' || c == '\'')] {
            if v.len() >= 3 && !out.iter().any(|o| o == v) {
                out.push(v.to_string());
            }
        }
    }
    // Longest first, so a quoted form is blanked before its inner text.
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out
}

/// `*` and `?` matching, as a shell does for file names.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn write_temp(text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plex-pg-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.toml",
            text.len() * 7919 + text.bytes().map(|b| b as usize).sum::<usize>()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn file_then_env_override() {
        let path = write_temp(
            "[postgres]\nhost = \"db.example\"\nport = 6543\n[pool]\nsize = 4\nmax = 16\n",
        );
        let s = Settings::load_file(
            Some(&path),
            &env_of(&[("PLEX_PG_PORT", "7000"), ("PLEX_PG_POOL_MAX", "20")]),
        )
        .unwrap();
        assert_eq!(s.postgres.hosts, ["db.example"]);
        assert_eq!(s.postgres.ports, [7000]);
        assert_eq!(s.pool.size, 4);
        assert_eq!(s.pool.max, 20);
        assert_eq!(
            s.origin("postgres.port"),
            Source::Env("PLEX_PG_PORT".into())
        );
        assert_eq!(s.origin("postgres.host"), Source::File(path.clone()));
        assert_eq!(s.origin("postgres.user"), Source::Default);
    }

    #[test]
    fn bad_env_value_names_key_and_variable() {
        let err = Settings::load_file(None, &env_of(&[("PLEX_PG_POOL_SIZE", "many")])).unwrap_err();
        assert_eq!(err.key, "pool.size");
        assert_eq!(err.source, Source::Env("PLEX_PG_POOL_SIZE".into()));
        let text = err.to_string();
        assert!(
            text.contains("pool.size")
                && text.contains("PLEX_PG_POOL_SIZE")
                && text.contains("\"many\""),
            "{text}"
        );
    }

    #[test]
    fn bad_file_value_names_key_and_file() {
        let path = write_temp("[launcher]\nmode = \"paranoid\"\n");
        let err = Settings::load_file(Some(&path), &env_of(&[])).unwrap_err();
        assert_eq!(err.key, "launcher.mode");
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("off, verify, enforce"),
            "{text}"
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let path = write_temp("[pool]\nsise = 3\n");
        let err = Settings::load_file(Some(&path), &env_of(&[])).unwrap_err();
        assert_eq!(err.key, "pool.sise");
        assert!(err.message.starts_with("unknown key"));
    }

    #[test]
    fn syntax_error_names_the_file() {
        let path = write_temp("[pool\nsize = 3\n");
        let err = Settings::load_file(Some(&path), &env_of(&[])).unwrap_err();
        assert!(err.key.is_empty());
        assert!(err.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn explicit_missing_file_is_an_error_default_is_not() {
        let missing = Path::new("/nonexistent/plex-pg.toml");
        let err = Settings::load_file(Some(missing), &env_of(&[])).unwrap_err();
        assert!(err.message.contains("cannot read"));
        let err =
            Settings::load(&env_of(&[("PLEX_PG_CONFIG", "/nonexistent/x.toml")])).unwrap_err();
        assert_eq!(err.source, Source::File("/nonexistent/x.toml".into()));
    }

    #[test]
    fn size_above_max_is_rejected_with_both_sources() {
        let err = Settings::load_file(
            None,
            &env_of(&[("PLEX_PG_POOL_SIZE", "40"), ("PLEX_PG_POOL_MAX", "10")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "pool.size");
        assert!(err.message.contains("PLEX_PG_POOL_MAX"), "{}", err.message);
    }

    #[test]
    fn password_never_shows_in_debug() {
        let s = Settings::load_file(None, &env_of(&[("PLEX_PG_PASSWORD", "hunter2")])).unwrap();
        assert_eq!(s.postgres.password.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_password_of_the_wrong_type_is_not_quoted() {
        let path = write_temp("[postgres]\npassword = 424242\n");
        let err = Settings::load_file(Some(&path), &env_of(&[])).unwrap_err();
        assert_eq!(err.key, "postgres.password");
        let text = err.to_string();
        assert!(!text.contains("424242"), "{text}");
        assert!(
            text.contains("a number") && text.contains("not shown"),
            "{text}"
        );
    }

    #[test]
    fn a_syntax_error_never_quotes_the_line_holding_a_password() {
        for doc in [
            "[postgres]\npassword = \"hunter2-unterminated\n",
            "[postgres]\npassword = 'hunter2-unterminated\n",
            "[postgres]\npassword = hunter2-bare\n",
            "[postgres]\npassword = \"hunter2-x\" junk\n",
        ] {
            let path = write_temp(doc);
            let err = Settings::load_file(Some(&path), &env_of(&[])).unwrap_err();
            let text = err.to_string();
            assert!(!text.contains("hunter2"), "{doc:?} gave {text}");
            assert!(text.contains("line 2"), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
        }
    }

    #[test]
    fn secret_keys() {
        assert!(is_secret("postgres.password"));
        assert!(!is_secret("postgres.user"));
    }

    #[test]
    fn routing_by_file_name() {
        let s = Settings::default();
        assert!(s.routes("/var/lib/plex/Plug-in Support/Databases/com.plexapp.plugins.library.db"));
        assert!(s.routes("com.plexapp.plugins.library.blobs.db"));
        assert!(!s.routes("/x/com.plexapp.plugins.library.db-wal"));
        assert!(!s.routes("/x/com.plexapp.dlna.db"));
        let s = Settings::load_file(
            None,
            &env_of(&[("PLEX_PG_ROUTE", "*.library.db, test-?.db")]),
        )
        .unwrap();
        assert!(s.routes("/a/b/com.plexapp.plugins.library.db"));
        assert!(s.routes("test-1.db"));
        assert!(!s.routes("test-12.db"));
        assert!(Settings::load_file(None, &env_of(&[("PLEX_PG_ROUTE", "a/b.db")])).is_err());
    }

    #[test]
    fn schema_per_routed_file() {
        let s = Settings::default();
        assert_eq!(s.schema_for("com.plexapp.plugins.library.db"), "plex");
        assert_eq!(
            s.schema_for("com.plexapp.plugins.library.blobs.db"),
            "plex_blobs"
        );
        assert_eq!(s.schema_for("My-Test.db"), "plex_my_test");
    }

    #[test]
    fn booleans_and_choices_from_text() {
        let s = Settings::load_file(
            None,
            &env_of(&[
                ("PLEX_PG_FORK_HANDLER", "0"),
                ("PLEX_PG_MODE", "Enforce"),
                ("PLEX_PG_LOG_LEVEL", "debug"),
            ]),
        )
        .unwrap();
        assert!(!s.shim.fork_handler);
        assert_eq!(s.launcher.mode, Mode::Enforce);
        assert_eq!(s.log.level, LogLevel::Debug);
    }

    #[test]
    fn socket_directory_endpoint() {
        let mut s = Settings::default();
        assert_eq!(s.postgres.endpoint(), "/var/run/postgresql/.s.PGSQL.5432");
        s.postgres.hosts = vec!["10.0.0.2".into()];
        assert_eq!(s.postgres.endpoint(), "10.0.0.2:5432");
    }

    #[test]
    fn several_hosts_in_libpq_syntax() {
        let env = env_of(&[
            ("PLEX_PG_HOST", "db1, db2,::1"),
            ("PLEX_PG_PORT", "5432,5433,5434"),
        ]);
        let s = Settings::load_file(None, &env).unwrap();
        let e = s.postgres.endpoints();
        assert_eq!(e.len(), 3);
        assert_eq!((e[1].host.as_str(), e[1].port), ("db2", 5433));
        assert_eq!(s.postgres.endpoint(), "db1:5432, db2:5433, [::1]:5434");
        // One port serves every host.
        let s = Settings::load_file(
            None,
            &env_of(&[("PLEX_PG_HOST", "a,b"), ("PLEX_PG_PORT", "6000")]),
        )
        .unwrap();
        assert!(s.postgres.endpoints().iter().all(|e| e.port == 6000));
        // Two ports for three hosts is an error naming the key.
        let err = Settings::load_file(
            None,
            &env_of(&[("PLEX_PG_HOST", "a,b,c"), ("PLEX_PG_PORT", "1,2")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "postgres.port");
        assert!(err.to_string().contains("2 ports for 3 hosts"), "{err}");
        let err = Settings::load_file(None, &env_of(&[("PLEX_PG_PORT", "5432,x")])).unwrap_err();
        assert_eq!(err.key, "postgres.port");
    }

    #[test]
    fn failover_and_keepalive_defaults() {
        let s = Settings::default();
        assert_eq!(s.postgres.target_session_attrs, SessionAttrs::ReadWrite);
        assert!(
            s.postgres.retry_for >= Duration::from_secs(30),
            "a failover takes longer than 10 s"
        );
        let dead_after = s.postgres.keepalives_idle
            + s.postgres.keepalives_interval * s.postgres.keepalives_count;
        assert!(dead_after <= Duration::from_secs(60), "{dead_after:?}");
        let env = env_of(&[("PLEX_PG_TARGET_SESSION_ATTRS", "primary")]);
        let err = Settings::load_file(None, &env).unwrap_err();
        assert_eq!(err.key, "postgres.target_session_attrs");
    }

    #[test]
    fn tls_settings_in_libpq_terms_and_their_mistakes_named() {
        assert_eq!(
            Settings::default().postgres.sslmode,
            SslMode::Prefer,
            "libpq's default"
        );
        let env = env_of(&[
            ("PLEX_PG_SSLMODE", "Verify-Full"),
            ("PLEX_PG_SSLROOTCERT", "system"),
        ]);
        let s = Settings::load_file(None, &env).unwrap();
        assert_eq!(s.postgres.sslmode, SslMode::VerifyFull);
        assert_eq!(s.postgres.sslrootcert, "system");
        let env = env_of(&[("PLEX_PG_SSLMODE", "verify-ca")]);
        let err = Settings::load_file(None, &env).unwrap_err();
        assert_eq!(err.key, "postgres.sslrootcert");
        assert!(
            err.message.contains("no authority is trusted"),
            "{}",
            err.message
        );
        let env = env_of(&[("PLEX_PG_SSLCERT", "/etc/plex-pg/client.crt")]);
        let err = Settings::load_file(None, &env).unwrap_err();
        assert_eq!(err.key, "postgres.sslkey");
        let env = env_of(&[("PLEX_PG_SSLMODE", "on")]);
        let err = Settings::load_file(None, &env).unwrap_err();
        assert_eq!(err.key, "postgres.sslmode");
        assert!(err.message.contains("verify-full"), "{}", err.message);
    }

    #[test]
    fn every_problem_at_once_file_then_environment_then_between_keys() {
        let path = write_temp(
            "[pool]\nsize = \"many\"\nmax = 0\n[launcher]\nmode = \"loud\"\nwatch = \"x\"\n[postgres]\nsslmode = \"verify-full\"\n",
        );
        let (settings, errors) =
            Settings::load_file_all(Some(&path), &env_of(&[("PLEX_PG_PORT", "port")]));
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "launcher.mode",
                "launcher.watch",
                "pool.max",
                "pool.size",
                "postgres.port",
                "postgres.sslrootcert"
            ],
            "{errors:#?}"
        );
        // What could be applied was: the file's sslmode is in force.
        assert_eq!(settings.postgres.sslmode, SslMode::VerifyFull);
        let first = Settings::load_file(Some(&path), &|_| None).unwrap_err();
        assert_eq!(first.key, "launcher.mode");
    }

    #[test]
    fn plex_postgresql_variables_start_with_their_meaning() {
        let s = Settings::load_file(
            None,
            &env_of(&[
                ("PLEX_PG_POOL_SIZE", "50"),
                ("PLEX_PG_LOG_LEVEL", "1"),
                ("PLEX_PG_RETRY_DELAYS", "500,1000,2000,3000,4000"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.pool.size, s.pool.max), (50, 50));
        assert_eq!(
            s.origin("pool.max"),
            Source::Env("PLEX_PG_POOL_SIZE".into())
        );
        assert_eq!(s.log.level, LogLevel::Info);
        assert_eq!(s.postgres.retry_for, Duration::from_millis(10_500));
        assert_eq!(s.notes.len(), 3, "{:?}", s.notes);
        for (n, level) in [
            ("0", LogLevel::Error),
            ("2", LogLevel::Debug),
            ("DEBUG", LogLevel::Debug),
        ] {
            let s = Settings::load_file(None, &env_of(&[("PLEX_PG_LOG_LEVEL", n)])).unwrap();
            assert_eq!(s.log.level, level, "{n}");
        }
        assert!(Settings::load_file(None, &env_of(&[("PLEX_PG_LOG_LEVEL", "7")])).is_err());
        // plex-pg's own window wins over plex-postgresql's delays.
        let s = Settings::load_file(
            None,
            &env_of(&[
                ("PLEX_PG_RETRY_FOR_MS", "60000"),
                ("PLEX_PG_RETRY_DELAYS", "1,2"),
            ]),
        )
        .unwrap();
        assert_eq!(s.postgres.retry_for, Duration::from_secs(60));
        let err =
            Settings::load_file(None, &env_of(&[("PLEX_PG_RETRY_DELAYS", "1,soon")])).unwrap_err();
        assert_eq!(err.source, Source::Env("PLEX_PG_RETRY_DELAYS".into()));
    }
}
