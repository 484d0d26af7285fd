//! The journal: one JSON object a line, appended by every plex-sim process
//! of a run (server, scanner, helpers, forked children) to one file opened
//! with `O_APPEND`, each line with one `write(2)`, so lines never mix.
//!
//! - `{"event":"committed", "pid", "role", "db", "table", "id", "values"}`
//!   once a write transaction has committed: the values the row must hold
//!   (the last line for a `(db, table, id)` wins). This is what makes "every
//!   write reported committed is in the database" checkable afterwards.
//! - `{"event":"child", "pid", "ppid", "kind"}` written by a child itself
//!   when it starts, to check the server's account of its children.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value as Json};

pub struct Journal {
    file: File,
    path: PathBuf,
    role: String,
}

impl Journal {
    pub fn open(path: &Path, role: &str) -> Result<Journal, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the journal {}: {e}", path.display()))?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            role: role.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, mut line: Map<String, Json>) -> Result<(), String> {
        // SAFETY: getpid/getppid have no preconditions.
        line.insert("pid".into(), json!(unsafe { libc::getpid() }));
        line.insert("role".into(), json!(self.role));
        let mut text = Json::Object(line).to_string();
        text.push('\n');
        (&self.file)
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot append to the journal {}: {e}", self.path.display()))
    }

    /// A write transaction committed: `values` is what the row now holds.
    pub fn committed(&self, db: &str, table: &str, id: i64, values: Json) -> Result<(), String> {
        let mut line = Map::new();
        line.insert("event".into(), json!("committed"));
        line.insert("db".into(), json!(db));
        line.insert("table".into(), json!(table));
        line.insert("id".into(), json!(id));
        line.insert("values".into(), values);
        self.append(line)
    }

    /// This process started as a child of `kind`.
    pub fn child_started(&self, kind: &str) -> Result<(), String> {
        let mut line = Map::new();
        line.insert("event".into(), json!("child"));
        line.insert("kind".into(), json!(kind));
        // SAFETY: getppid has no preconditions.
        line.insert("ppid".into(), json!(unsafe { libc::getppid() }));
        self.append(line)
    }
}
