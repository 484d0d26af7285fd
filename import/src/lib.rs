//! `plex-pg-import`: an existing Plex SQLite library into PostgreSQL.
//!
//! The schema is made by the shim's own translator from the file's
//! `sqlite_master` (so it is exactly what the shim builds), the rows are
//! loaded with `COPY`, every value is checked before and compared after,
//! and the result replaces the target schema in one transaction.
//! `docs/migration.md` is the user's guide; `import` the steps.

pub mod export;
pub mod import;
pub mod inuse;
pub mod pg;
pub mod plan;
pub mod progress;
pub mod sqlite;
pub mod value;
