//! plex-pg's shared configuration and the shim→launcher contract.
//!
//! Both `libplex_pg_shim.so` and `plex-pg-launcher` read the same TOML file
//! (`PLEX_PG_CONFIG`, default [`DEFAULT_PATH`]) and the same `PLEX_PG_*`
//! environment overrides through [`settings`]. The datagrams the shim sends
//! the launcher are defined once, in [`report`], so the two sides cannot
//! drift apart.

pub mod compat;
pub mod report;
pub mod rotate;
pub mod settings;

pub use settings::{ConfigError, Settings, Source, DEFAULT_PATH};
