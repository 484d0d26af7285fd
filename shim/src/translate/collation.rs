//! SQLite collations and the PostgreSQL collation standing for each.
//!
//! | SQLite        | PostgreSQL            | how it compares |
//! |---------------|-----------------------|-----------------|
//! | `BINARY`      | `"C"`                 | byte-wise, as SQLite |
//! | `NOCASE`      | `sqlite_nocase`       | ICU `und-u-ks-level2`, non-deterministic: case-insensitive equality, grouping and uniqueness; order is ICU's root order at secondary strength |
//! | `icu_root` (registered by Plex) | `sqlite_icu_root` | ICU root locale, as Plex's ICU collation |
//! | `naturalsort` (registered by Plex) | `sqlite_naturalsort` | ICU root with numeric ordering (`kn`): "2" before "10" |
//!
//! The three `sqlite_*` collations are created by `bootstrap`. `RTRIM` and
//! other names are errors.

use super::Error;

/// The PostgreSQL collation for a SQLite collation name.
pub fn postgres_collation(sqlite: &str) -> Result<&'static str, Error> {
    match sqlite
        .trim_matches(|c| c == '"' || c == '\'' || c == '`')
        .to_ascii_lowercase()
        .as_str()
    {
        "binary" => Ok("C"),
        "nocase" => Ok("sqlite_nocase"),
        "icu_root" => Ok("sqlite_icu_root"),
        "naturalsort" => Ok("sqlite_naturalsort"),
        other => Err(Error::new(format!("no such collation sequence: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_collations_map_and_others_fail() {
        assert_eq!(postgres_collation("NOCASE").unwrap(), "sqlite_nocase");
        assert_eq!(postgres_collation("icu_root").unwrap(), "sqlite_icu_root");
        assert_eq!(
            postgres_collation("\"naturalsort\"").unwrap(),
            "sqlite_naturalsort"
        );
        assert!(postgres_collation("rtrim")
            .unwrap_err()
            .message
            .contains("rtrim"));
    }
}
