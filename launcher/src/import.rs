//! `plex-pg-launcher import`: runs `plex-pg-import`, the program beside
//! this one (or on `PATH`), with the same configuration.
//!
//! The import lives in a program of its own because it links the shim's
//! crate (for its translator and its way to the real SQLite), and the
//! shim's crate exports the `sqlite3_*` functions and registers fork
//! handlers when loaded: neither belongs in the launcher, which forks Plex
//! and must stay free of them (`docs/migration.md`, "How it is built").

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::Args;

use crate::cli::Options;

/// `plex-pg-launcher import --from DIR [--replace]`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Plex's Databases folder (…/Plex Media Server/Plug-in Support/Databases).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Replace a target schema that already holds a library (it is kept aside under another name).
    #[arg(long)]
    pub replace: bool,
    /// Leave the SQLite files under their names (by default they are renamed to <name>.in-postgresql, read-only).
    #[arg(long)]
    pub keep_sqlite_files: bool,
}

/// `plex-pg-launcher export --to DIR`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// An existing folder to write com.plexapp.plugins.library.db (and blobs) into; no file there is overwritten.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// Replace this process by the export; returns an exit status only when
/// it cannot be started.
pub fn exec_export(options: &Options, args: &ExportArgs) -> i32 {
    let program = program();
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("--export-to").arg(&args.to);
    if let Some(config) = &options.config {
        cmd.arg("--config").arg(config);
    }
    let e = cmd.exec();
    eprintln!(
        "plex-pg-launcher: cannot run {}: {e}; it is installed beside plex-pg-launcher",
        program.display()
    );
    2
}

/// The import program: beside this executable, else on `PATH`.
fn program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("plex-pg-import")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("plex-pg-import"))
}

/// Replace this process by the import; returns an exit status only when
/// it cannot be started.
pub fn exec(options: &Options, args: &ImportArgs) -> i32 {
    let program = program();
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("--from").arg(&args.from);
    if let Some(config) = &options.config {
        cmd.arg("--config").arg(config);
    }
    if args.replace {
        cmd.arg("--replace");
    }
    if args.keep_sqlite_files {
        cmd.arg("--keep-sqlite-files");
    }
    let e = cmd.exec();
    eprintln!(
        "plex-pg-launcher: cannot run {}: {e}; it is installed beside plex-pg-launcher",
        program.display()
    );
    2
}
