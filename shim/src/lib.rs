//! `libplex_pg_shim.so`: the SQLite C API, with Plex's library databases on
//! PostgreSQL, safe under `fork()`.
//!
//! See `docs/architecture.md` for how the pieces fit.

pub mod translate;
pub mod value;
