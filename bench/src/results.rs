//! Where a benchmark program leaves its figures for the table: one JSON
//! file per program in `<target>/plex-pg-bench/`, beside criterion's
//! `<target>/criterion/`.

use std::path::PathBuf;

use serde_json::Value;

/// `<target>/plex-pg-bench`, created on first use.
pub fn dir() -> PathBuf {
    let dir = target_dir().join("plex-pg-bench");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The cargo target directory (`CARGO_TARGET_DIR` honoured).
pub fn target_dir() -> PathBuf {
    plex_pg_tests::release_dir()
        .parent()
        .expect("the release directory has a parent")
        .to_path_buf()
}

/// Write one program's figures (`<name>.json`); returns the path.
pub fn write(name: &str, value: &Value) -> PathBuf {
    let path = dir().join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(value).unwrap();
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// One program's figures, or None when it has not run.
pub fn read(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Criterion's median for `group/function`: (point estimate, 95 % CI low,
/// high), in nanoseconds; None when that benchmark has not run.
pub fn criterion_median(group: &str, function: &str) -> Option<(f64, f64, f64)> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let m = &v["median"];
    Some((
        m["point_estimate"].as_f64()?,
        m["confidence_interval"]["lower_bound"].as_f64()?,
        m["confidence_interval"]["upper_bound"].as_f64()?,
    ))
}
