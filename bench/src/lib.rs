//! Benchmark support: the SQLite C API as a benchmark drives it (linked
//! dynamically, so the preloaded shim answers), the fixtures both sides of
//! a comparison share, how each setup (shim, launcher modes) is started, running a measured command, the statistics printed,
//! and where each program leaves its figures for the table.

pub mod capi;
pub mod cli;
pub mod fixture;
pub mod launch;
pub mod procs;
pub mod results;
pub mod stats;
