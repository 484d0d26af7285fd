//! Declared SQLite types, their affinity, and the PostgreSQL column type
//! that stores them.
//!
//! SQLite decides a column's affinity from its declared type by substring
//! rules (<https://www.sqlite.org/datatype3.html>, 3.1). PostgreSQL columns
//! have one type, and the runtime reports a storage class per PostgreSQL
//! type, so the type is chosen to give back what SQLite would for values of
//! the column's affinity:
//!
//! | affinity | declared (Plex)                    | PostgreSQL          | storage class read back |
//! |----------|------------------------------------|---------------------|-------------------------|
//! | INTEGER  | `integer`, `integer(8)`, `dt_integer(8)` | `bigint`      | INTEGER                 |
//! | TEXT     | `varchar(255)`, `text`             | `text` (no length: SQLite never truncates) | TEXT |
//! | REAL     | `float`, `real`, `double`          | `double precision`  | FLOAT                   |
//! | BLOB     | `blob`                             | `bytea`             | BLOB                    |
//! | NUMERIC  | `boolean`                          | `boolean`           | INTEGER 0/1             |
//! | NUMERIC  | `string`                           | `text`              | TEXT                    |
//! | NUMERIC  | `numeric`, `datetime`, `timestamp` … | `numeric`         | INTEGER if integral, else FLOAT |
//! | none     | (no type)                          | `text`              | TEXT                    |

/// SQLite's column affinities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

/// The affinity of a declared type, by SQLite's rules, in their order.
pub fn affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// The PostgreSQL type of a column declared `declared` (collation apart).
pub fn postgres_type(declared: &str) -> &'static str {
    let upper = declared.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return "text";
    }
    match affinity(declared) {
        Affinity::Integer => "bigint",
        Affinity::Text => "text",
        Affinity::Blob => "bytea",
        Affinity::Real => "double precision",
        Affinity::Numeric if upper.starts_with("BOOL") => "boolean",
        // Plex's `string` columns hold names; NUMERIC affinity would only
        // turn a digit-only name into a number.
        Affinity::Numeric if upper == "STRING" => "text",
        Affinity::Numeric => "numeric",
    }
}

/// Whether values of this PostgreSQL type are text (and take a collation).
pub fn is_text_type(pg_type: &str) -> bool {
    pg_type == "text"
}

/// The declared type SQLite gives a `CREATE TABLE … AS SELECT` column of
/// this PostgreSQL type (SQLite names the expression affinity).
pub fn ctas_declared_type(pg_type: &str) -> &'static str {
    match pg_type {
        "bigint" | "integer" | "smallint" => "INT",
        "text" | "character varying" => "TEXT",
        "double precision" | "real" => "REAL",
        "numeric" | "boolean" => "NUM",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plex_declared_types_map_by_affinity() {
        assert_eq!(postgres_type("dt_integer(8)"), "bigint");
        assert_eq!(postgres_type("integer(8)"), "bigint");
        assert_eq!(postgres_type("INTEGER"), "bigint");
        assert_eq!(postgres_type("varchar(255)"), "text");
        assert_eq!(postgres_type("boolean"), "boolean");
        assert_eq!(postgres_type("float"), "double precision");
        assert_eq!(postgres_type("blob"), "bytea");
        assert_eq!(postgres_type("datetime"), "numeric");
        assert_eq!(postgres_type(""), "text");
        // "POINT" contains "INT": SQLite's rule, not English.
        assert_eq!(affinity("POINT"), Affinity::Integer);
        assert_eq!(affinity("string"), Affinity::Numeric);
        assert_eq!(postgres_type("string"), "text");
    }
}
