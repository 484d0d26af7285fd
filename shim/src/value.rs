//! SQLite's values: the five storage classes a column or a parameter holds.

/// One SQLite value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// SQLite's fundamental datatype codes (`SQLITE_INTEGER` …).
pub const SQLITE_INTEGER: i32 = 1;
pub const SQLITE_FLOAT: i32 = 2;
pub const SQLITE_TEXT: i32 = 3;
pub const SQLITE_BLOB: i32 = 4;
pub const SQLITE_NULL: i32 = 5;

impl Value {
    /// The datatype code `sqlite3_column_type` returns for this value.
    pub fn type_code(&self) -> i32 {
        match self {
            Value::Null => SQLITE_NULL,
            Value::Integer(_) => SQLITE_INTEGER,
            Value::Real(_) => SQLITE_FLOAT,
            Value::Text(_) => SQLITE_TEXT,
            Value::Blob(_) => SQLITE_BLOB,
        }
    }
}
