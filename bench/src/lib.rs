//! Benchmark support: the SQLite C API as a benchmark drives it (linked
//! dynamically, so the preloaded shim answers), the fixtures both sides of
//! a comparison share, and the statistics printed.

pub mod capi;
pub mod fixture;
pub mod stats;
