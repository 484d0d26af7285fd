//! `libplex_pg_shim.so`: the SQLite C API, with Plex's library databases on
//! PostgreSQL, safe under `fork()`.
//!
//! How a call flows: [`api`] (the exports) asks [`registry`] whether the
//! handle is routed. If not, the call goes to the real SQLite ([`real`]).
//! If so: [`registry`] owns the handle's life (open, close) and the real
//! statements that stand for routed ones; [`connection`] holds the
//! handle's state between calls, [`statement`] plans a statement
//! ([`translate`]) and runs it on a connection from the [`pool`] through
//! [`pg`]; rows come back as [`row`] values. [`runtime`] holds the
//! process-wide state, created at the first routed open, and the one path
//! to a ready connection (`Runtime::ready_lease`). [`fork`] keeps it all
//! safe across `fork()` without knowing any of it: `runtime` and
//! `registry` join it with their locks and child-side resets. [`report`]
//! tells the launcher ([`tally`]: the figures for its metrics). The
//! dependencies go one way, top to bottom:
//! api → registry → statement → maintenance → connection → runtime →
//! pool → pg, with fork, lock and error below them all.
//! `docs/architecture.md` tells the whole story.

mod api;
mod atomicity;
mod audit;
mod backup;
mod calendar;
mod clock;
mod connection;
mod error;
mod fork;
mod lock;
mod log;
mod maintenance;
mod pg;
mod pool;
mod registry;
mod report;
mod row;
mod runtime;
mod split;
mod statement;
mod tally;

// Used outside the crate: `real` and `sys` by plex-pg-import (the real
// SQLite's entry points), `translate` and `value` by plex-pg-import and the
// benchmarks.
pub mod real;
pub mod sys;
pub mod translate;
pub mod value;

/// Runs when the library is loaded: only registers the fork handlers
/// (which do nothing until a routed database is opened).
extern "C" fn on_load() {
    fork::register();
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;
