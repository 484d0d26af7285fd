//! `plex-pg-import --from DIR [--config FILE] [--replace]` (run as
//! `plex-pg-launcher import`), and `plex-pg-import --export-to DIR` (run
//! as `plex-pg-launcher export --to DIR`).

use std::path::PathBuf;
use std::process::exit;

use clap::Parser;
use plex_pg_config::Settings;
use plex_pg_import::import::{self, Failure, Options};

#[derive(Parser, Debug)]
#[command(
    name = "plex-pg-import",
    version,
    about = "Bring an existing Plex SQLite library into PostgreSQL: schema through the shim's translator, rows by COPY, every value verified, switched in one transaction"
)]
struct Cli {
    /// Plex's Databases folder (…/Plex Media Server/Plug-in Support/Databases).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "export_to",
        conflicts_with = "export_to"
    )]
    from: Option<PathBuf>,
    /// Write the library from PostgreSQL to SQLite files in DIR instead (the way back).
    #[arg(long, value_name = "DIR")]
    export_to: Option<PathBuf>,
    /// Configuration file (default: $PLEX_PG_CONFIG, else /etc/plex-pg/config.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replace a target schema that already holds a library (it is kept aside under another name).
    #[arg(long)]
    replace: bool,
    /// Leave the SQLite files under their names (by default they are renamed to <name>.in-postgresql, read-only).
    #[arg(long)]
    keep_sqlite_files: bool,
}

fn main() {
    let cli = Cli::parse();
    let env = |k: &str| std::env::var(k).ok();
    let settings = match &cli.config {
        Some(path) => Settings::load_file(Some(path), &env),
        None => Settings::load(&env),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("plex-pg-import: {e}");
            exit(2);
        }
    };
    let result = match (cli.from, cli.export_to) {
        (_, Some(dir)) => plex_pg_import::export::run(&settings, &dir),
        (Some(from), None) => import::run(
            &settings,
            &Options {
                from,
                replace: cli.replace,
                keep_files: cli.keep_sqlite_files,
            },
        ),
        (None, None) => {
            eprintln!("plex-pg-import: give --from DIR or --export-to DIR");
            exit(2);
        }
    };
    match result {
        Ok(()) => exit(0),
        Err(Failure::Refused(m)) => {
            eprintln!("plex-pg-import: refused: {m}");
            exit(3);
        }
        Err(Failure::Failed(m)) => {
            eprintln!("plex-pg-import: {m}");
            eprintln!("plex-pg-import: nothing was switched or written; PostgreSQL is as it was");
            exit(1);
        }
    }
}
