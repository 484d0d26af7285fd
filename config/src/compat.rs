//! `PLEX_PG_*` variables that are not plex-pg's settings: the names that
//! plex-postgresql (the earlier shim) users already have in their units and
//! compose files, plex-pg's own variables that are not settings, and typos.
//!
//! plex-postgresql's variables that mean the same thing here are read as
//! settings ([`crate::settings`] maps them: `PLEX_PG_LOG_LEVEL`'s numbers,
//! `PLEX_PG_POOL_SIZE` with the cap following it, `PLEX_PG_RETRY_DELAYS`);
//! the ones with no meaning here are named, with why, by [`env_notes`], as
//! are variables nobody knows (with the nearest known name). The launcher
//! logs each at start and `plex-pg-launcher check` lists them:
//! a mistyped `PLEX_PG_MOD=enforce` never silently does nothing.

use std::fmt;

use crate::settings::{CONFIG_ENV, KEYS};

/// plex-postgresql's variables that plex-pg reads with their meaning,
/// beyond the names the two share (`PLEX_PG_HOST`, `_PORT`, `_DATABASE`,
/// `_USER`, `_PASSWORD`, `_SCHEMA`, `_POOL_MAX`): the variable and what it
/// becomes. `docs/configuration.md` is checked against this table.
pub const MAPPED: &[(&str, &str)] = &[
    (
        "PLEX_PG_LOG_LEVEL",
        "0, 1 and 2 (plex-postgresql's numbers) are `error`, `info` and `debug`",
    ),
    (
        "PLEX_PG_POOL_SIZE",
        "`pool.size`; when `pool.max` is not set and the size is above it, `pool.max` follows the size (plex-postgresql's cap defaults to its pool size)",
    ),
    (
        "PLEX_PG_RETRY_DELAYS",
        "`postgres.retry_for_ms`: the sum of the delays (comma-separated milliseconds), unless `PLEX_PG_RETRY_FOR_MS` is set",
    ),
];

/// plex-postgresql's variables that have no meaning in plex-pg, and why.
/// Each is ignored with a warning. `docs/configuration.md` lists them.
pub const IGNORED: &[(&str, &str)] = &[
    ("PLEX_PG_IDLE_TIMEOUT", "plex-pg closes no idle connection by age: it keeps `pool.size` of them open and closes the others as they are returned (set PLEX_PG_POOL_SIZE lower to hold fewer)"),
    ("PLEX_PG_SKIP_CLEAR_BINDINGS_FINALIZED", "a workaround for plex-postgresql's own statement cache; plex-pg has nothing to work around there"),
    ("PLEX_PG_OPENSSL_ARMCAP", "plex-pg's TLS is rustls, not OpenSSL"),
    ("PLEX_PG_NO_INIT_DELAY", "plex-pg's shim has no start-up delay"),
    ("PLEX_PG_MEM_TELEMETRY", "plex-pg's shim has no memory telemetry"),
    ("PLEX_PG_ALLOC_TRACK", "plex-pg's shim has no allocation tracking"),
    ("PLEX_PG_ALLOC_TRACE", "plex-pg's shim has no allocation tracing"),
    ("PLEX_PG_DISABLE_SHIM_INIT", "to run Plex without plex-pg, start it without the launcher"),
    ("PLEX_PG_FORCE_SQLITE_LIBRARY", "plex-pg routes databases by file name (`shim.route`, PLEX_PG_ROUTE); to keep the library on SQLite, start Plex without the launcher"),
    ("PLEX_PG_LIBPQ_DIR", "plex-pg does not use libpq"),
    ("PLEX_PG_SHIM_PATH", "the launcher's shim is `launcher.shim` (PLEX_PG_SHIM)"),
];

/// plex-pg's own variables that are not settings: set by the launcher for
/// the shim, or read by the tests and benchmarks.
pub const INTERNAL: &[&str] = &[
    CONFIG_ENV,
    crate::report::SUPERVISOR_ENV,
    "PLEX_PG_IMPORT_PAUSE_BEFORE_COMMIT",
    "PLEX_PG_TEST_PORT",
    "PLEX_PG_TEST_SOCKET_DIR",
    "PLEX_PG_DEBIAN_ROOT_CACHE",
    "PLEX_PG_BENCH_CHILD",
];

/// A `PLEX_PG_*` variable plex-pg does not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvNote {
    /// Nobody's variable: a typo, most likely.
    Unknown {
        name: String,
        nearest: Option<&'static str>,
    },
    /// plex-postgresql's, with no meaning here.
    Foreign { name: String, why: &'static str },
}

impl fmt::Display for EnvNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvNote::Unknown {
                name,
                nearest: Some(near),
            } => write!(
                f,
                "{name} is not a plex-pg variable and is ignored: did you mean {near}?"
            ),
            EnvNote::Unknown {
                name,
                nearest: None,
            } => write!(
                f,
                "{name} is not a plex-pg variable and is ignored (docs/configuration.md lists them all)"
            ),
            EnvNote::Foreign { name, why } => write!(
                f,
                "{name} is plex-postgresql's and is ignored: {why}"
            ),
        }
    }
}

/// Every variable name plex-pg reads or knows: the settings', plex-postgresql's
/// mapped and ignored ones, and the internal ones.
fn known() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter_map(|(_, var, _)| *var)
        .chain(MAPPED.iter().map(|(v, _)| *v))
        .chain(INTERNAL.iter().copied())
}

/// The notes for the `PLEX_PG_*` names among `names` (an environment's
/// variable names) that plex-pg does not read, in the order given.
pub fn env_notes<I, S>(names: I) -> Vec<EnvNote>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut notes = Vec::new();
    for name in names {
        let name = name.as_ref();
        if !name.starts_with("PLEX_PG_") || known().any(|k| k == name) {
            continue;
        }
        if let Some((_, why)) = IGNORED.iter().find(|(v, _)| *v == name) {
            notes.push(EnvNote::Foreign {
                name: name.to_string(),
                why,
            });
            continue;
        }
        notes.push(EnvNote::Unknown {
            name: name.to_string(),
            nearest: nearest(name),
        });
    }
    notes
}

/// The known variable closest to `name`, if it is close enough to be a
/// typo of it: within a third of its length in edits (at least two).
fn nearest(name: &str) -> Option<&'static str> {
    let tail = &name["PLEX_PG_".len()..];
    known()
        .filter(|k| k.starts_with("PLEX_PG_"))
        .map(|k| (edit_distance(tail, &k["PLEX_PG_".len()..]), k))
        .filter(|(d, k)| *d <= (k.len() - "PLEX_PG_".len()).div_ceil(3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (the names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_names_the_variable_it_was_meant_to_be() {
        let notes = env_notes(["PLEX_PG_MOD", "PLEX_PG_POOLSIZE", "PLEX_PG_SSL_MODE"]);
        let nearest: Vec<_> = notes
            .iter()
            .map(|n| match n {
                EnvNote::Unknown { nearest, .. } => *nearest,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            nearest,
            [
                Some("PLEX_PG_MODE"),
                Some("PLEX_PG_POOL_SIZE"),
                Some("PLEX_PG_SSLMODE")
            ]
        );
        assert!(notes[0].to_string().contains("did you mean PLEX_PG_MODE?"));
    }

    #[test]
    fn known_and_foreign_names() {
        let notes = env_notes([
            "PLEX_PG_MODE",
            "PLEX_PG_CONFIG",
            "PLEX_PG_SUPERVISOR",
            "PLEX_PG_RETRY_DELAYS",
            "HOME",
            "PLEX_PG_IDLE_TIMEOUT",
            "PLEX_PG_COMPLETELY_DIFFERENT",
        ]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            matches!(&notes[0], EnvNote::Foreign { name, .. } if name == "PLEX_PG_IDLE_TIMEOUT")
        );
        assert_eq!(
            notes[1],
            EnvNote::Unknown {
                name: "PLEX_PG_COMPLETELY_DIFFERENT".into(),
                nearest: None
            }
        );
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("MODE", "MOD"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
