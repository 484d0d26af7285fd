//! The guard: never start Plex on an empty PostgreSQL schema while its
//! SQLite library sits in Plex's Databases folder. Plex would create an
//! empty library over PostgreSQL and the admin would find every movie,
//! collection and watch state gone (they are still in the SQLite file,
//! which `plex-pg-launcher import` brings over).
//!
//! The Databases folder is found as Plex finds it:
//! `$PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR/Plex Media Server/Plug-in
//! Support/Databases` (the variable Plex's unit and images set), default
//! `/var/lib/plexmediaserver/Library/Application Support`.
//! `launcher.allow_empty_library = true` lets a fresh install start.

use std::path::PathBuf;
use std::time::Duration;

use plex_pg_config::Settings;

/// Plex's default application-support directory (its .deb's unit).
pub const DEFAULT_SUPPORT_DIR: &str = "/var/lib/plexmediaserver/Library/Application Support";

/// Plex's Databases folder, from the environment Plex will get.
pub fn databases_dir() -> PathBuf {
    let base = std::env::var_os("PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SUPPORT_DIR));
    base.join("Plex Media Server")
        .join("Plug-in Support")
        .join("Databases")
}

/// Tables of a library in `schema` (the shim's own helper tables aside),
/// or why PostgreSQL could not be asked.
pub fn library_tables(settings: &Settings) -> Result<i64, String> {
    library_size(settings).map(|(tables, _)| tables)
}

/// Tables of the library in the schema, and about how many rows they hold
/// (PostgreSQL's statistics).
pub fn library_size(settings: &Settings) -> Result<(i64, i64), String> {
    let pg = &settings.postgres;
    let mut client =
        plex_pg_tls::client::connect(pg, "plex-pg-launcher guard", Duration::from_secs(5))?;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'sqlite\\_\\_%'",
            &[&pg.schema],
        )
        .map_err(|e| e.to_string())?;
    Ok((row.get(0), row.get(1)))
}

/// For `check`: where the library is. Lines of (is it a problem, text).
pub fn state(settings: &Settings) -> Vec<(bool, String)> {
    let dir = databases_dir();
    let library = dir.join("com.plexapp.plugins.library.db");
    let mut lines = Vec::new();
    let sqlite = std::fs::metadata(&library).ok().filter(|m| m.len() > 0);
    match &sqlite {
        Some(m) => {
            // Plex writes the -wal first: the newest change of the three files.
            let mut bytes = m.len();
            let mut newest = m.modified().ok();
            for suffix in ["-wal", "-shm"] {
                let mut p = library.clone().into_os_string();
                p.push(suffix);
                if let Ok(meta) = std::fs::metadata(&p) {
                    if suffix == "-wal" {
                        bytes += meta.len();
                    }
                    newest = newest.max(meta.modified().ok());
                }
            }
            let age = newest
                .and_then(|t| t.elapsed().ok())
                .map(|d| format!(", newest change {} min ago", d.as_secs() / 60))
                .unwrap_or_default();
            lines.push((
                false,
                format!(
                    "SQLite library present: {} ({bytes} bytes with its -wal{age})",
                    library.display(),
                ),
            ));
        }
        None => {
            let mut aside = library.clone().into_os_string();
            aside.push(".in-postgresql");
            if std::path::Path::new(&aside).exists() {
                lines.push((
                    false,
                    format!(
                        "no SQLite library in {}; {} was imported (renamed aside)",
                        dir.display(),
                        std::path::Path::new(&aside).display()
                    ),
                ));
            } else {
                lines.push((false, format!("no SQLite library in {}", dir.display())));
            }
        }
    }
    match library_size(settings) {
        Ok((0, _)) if sqlite.is_some() && !settings.launcher.allow_empty_library => lines.push((
            true,
            format!(
                "PostgreSQL schema {} holds no library while the SQLite library is there: the launcher would refuse to start Plex; run plex-pg-launcher import --from \"{}\" (docs/migration.md)",
                settings.postgres.schema,
                dir.display()
            ),
        )),
        Ok((0, _)) => lines.push((false, format!("PostgreSQL schema {} holds no library (Plex would start on an empty one)", settings.postgres.schema))),
        Ok((tables, rows)) => lines.push((false, format!("PostgreSQL schema {} holds a library: {tables} tables, about {rows} rows", settings.postgres.schema))),
        Err(e) => lines.push((false, format!("PostgreSQL schema {}: not known ({e})", settings.postgres.schema))),
    }
    lines
}

/// Why Plex must not start, or None. PostgreSQL out of reach is not a
/// reason here (the shim reports it, and retries); it is logged.
pub fn refusal(settings: &Settings) -> Option<String> {
    if settings.launcher.allow_empty_library {
        return None;
    }
    let dir = databases_dir();
    let library = dir.join("com.plexapp.plugins.library.db");
    let size = std::fs::metadata(&library).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        return None;
    }
    match library_tables(settings) {
        Ok(0) => Some(format!(
            "PostgreSQL schema {} holds no library, but Plex's SQLite library {} ({size} bytes) exists: starting Plex now would give it an empty library. \
             Stop here and bring the library over with plex-pg-launcher import --from \"{}\" (docs/migration.md); \
             for a fresh install with nothing to keep, set launcher.allow_empty_library = true (PLEX_PG_ALLOW_EMPTY_LIBRARY=1). Nothing was started",
            settings.postgres.schema,
            library.display(),
            dir.display()
        )),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(
                "the empty-library guard could not ask PostgreSQL ({e}); starting Plex anyway"
            );
            None
        }
    }
}
