//! The command line: `plex-pg-launcher [OPTIONS] -- COMMAND [ARGS…]`,
//! `plex-pg-launcher check` and `plex-pg-launcher import`
//! ([`crate::import::ImportArgs`]), `export`, `enable` and `disable`
//! ([`crate::switch`]). Every option is also a key of the TOML file
//! (`launcher.*`); a value given here is applied through
//! `Settings::apply`, so a bad one is reported with its key and "the
//! command line" as its source, like a bad value in the file.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use plex_pg_config::settings::{Raw, Settings, Source};
use plex_pg_config::ConfigError;

#[derive(Parser, Debug)]
#[command(
    name = "plex-pg-launcher",
    version,
    about = "Start Plex Media Server with the plex-pg shim, act as its init, and supervise fork safety",
    after_help = "Example: plex-pg-launcher --user plex -- \"/usr/lib/plexmediaserver/Plex Media Server\""
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The program to start (Plex) and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub program: Vec<OsString>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the configuration, privileges, ptrace permission, the shim and
    /// PostgreSQL; one line per check, non-zero exit if Plex would not work.
    Check,
    /// Bring an existing Plex SQLite library into PostgreSQL: the schema
    /// through the shim's translator, the rows by COPY, every value
    /// verified, switched in one transaction (runs plex-pg-import).
    Import(crate::import::ImportArgs),
    /// Write the library from PostgreSQL back to SQLite files (the way
    /// back), verified the same way (runs plex-pg-import).
    Export(crate::import::ExportArgs),
    /// Put the launcher in front of Plex's systemd unit (installs the drop-in
    /// /etc/systemd/system/plexmediaserver.service.d/10-plex-pg.conf and reloads
    /// systemd); refused while an SQLite library sits beside an empty schema.
    Enable(crate::switch::EnableArgs),
    /// Take the launcher out of Plex's start (removes the drop-in, reloads
    /// systemd); refused while PostgreSQL holds the library and no SQLite
    /// library is in place (run export first).
    Disable(crate::switch::DisableArgs),
    /// Print the running launcher's metrics (processes, forks, pool checks,
    /// inherited-socket uses, alerts, reports), read from
    /// launcher.metrics_listen.
    Status,
}

/// Options shared by every subcommand; each overrides a `launcher.*` key.
#[derive(Args, Debug, Default)]
pub struct Options {
    /// Configuration file (default: $PLEX_PG_CONFIG, else /etc/plex-pg/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// off | verify | enforce  [launcher.mode]
    #[arg(long, global = true, value_name = "MODE")]
    pub mode: Option<String>,
    /// auto | ptrace | procfs  [launcher.watcher]
    #[arg(long, global = true, value_name = "WATCHER")]
    pub watcher: Option<String>,
    /// JSON event log file, `-` for standard output  [launcher.events]
    #[arg(long, global = true, value_name = "FILE")]
    pub events: Option<String>,
    /// Path of libplex_pg_shim.so  [launcher.shim]
    #[arg(long, global = true, value_name = "PATH")]
    pub shim: Option<String>,
    /// Run Plex (and the launcher) as this user  [launcher.user]
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// After TERM, milliseconds before KILL  [launcher.grace_period_ms]
    #[arg(long, global = true, value_name = "MS")]
    pub grace_period_ms: Option<String>,
    /// procfs watcher scan interval in milliseconds  [launcher.poll_interval_ms]
    #[arg(long, global = true, value_name = "MS")]
    pub poll_interval_ms: Option<String>,
}

impl Options {
    /// The settings: the file, the `PLEX_PG_*` environment, then these
    /// options; the first problem.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let (settings, errors) = self.settings_all();
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(settings),
        }
    }

    /// The settings with every key that could be applied, and every
    /// problem (`check` shows them all at once).
    pub fn settings_all(&self) -> (Settings, Vec<ConfigError>) {
        let env = |k: &str| std::env::var(k).ok();
        let explicit = self.config.clone().or_else(|| {
            env(plex_pg_config::settings::CONFIG_ENV)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        let (mut settings, mut errors) = Settings::load_file_all(explicit.as_deref(), &env);
        let overrides = [
            ("launcher.mode", &self.mode),
            ("launcher.watcher", &self.watcher),
            ("launcher.events", &self.events),
            ("launcher.shim", &self.shim),
            ("launcher.user", &self.user),
            ("launcher.grace_period_ms", &self.grace_period_ms),
            ("launcher.poll_interval_ms", &self.poll_interval_ms),
        ];
        let mut applied = false;
        for (key, value) in overrides {
            if let Some(v) = value {
                applied = true;
                if let Err(e) = settings.apply(key, Raw::Text(v), &Source::CommandLine) {
                    errors.push(e);
                }
            }
        }
        if applied {
            // The command line may have changed what the keys' checks saw.
            for e in settings.validate_all() {
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
        (settings, errors)
    }
}
