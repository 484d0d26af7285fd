//! The event log rotates at `launcher.events_max_bytes` into numbered
//! files, keeping `launcher.events_keep` of them, and loses no line: a
//! launcher run that forks 60 processes, with the log rotated every 2,000
//! bytes, leaves files that read back, oldest first, as one log from
//! `start` to `summary` whose `fork` and `exit` lines match the summary's
//! counts.

#[path = "launcher_support.rs"]
mod launcher_support;

use std::time::Duration;

use launcher_support::Launcher;
use serde_json::Value;

#[test]
fn rotation_at_a_small_size_loses_no_line() {
    let mut launcher = Launcher::new();
    launcher
        .cmd
        .env("PLEX_PG_EVENTS_MAX_BYTES", "2000")
        .env("PLEX_PG_EVENTS_KEEP", "100");
    let events = launcher.events_path();
    let dir = events.parent().unwrap().to_path_buf();
    let run = launcher.run(
        &["/bin/sh", "-c", "for i in $(seq 60); do /bin/true; done"],
        Duration::from_secs(120),
    );
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let name = events.file_name().unwrap().to_str().unwrap().to_string();
    let mut numbered: Vec<u32> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().ok()?;
            n.strip_prefix(&format!("{name}."))?.parse().ok()
        })
        .collect();
    numbered.sort_unstable();
    assert!(
        numbered.len() >= 3,
        "expected several rotations, got {numbered:?}"
    );
    assert_eq!(
        numbered,
        (1..=numbered.len() as u32).collect::<Vec<_>>(),
        "numbered from 1 without gaps"
    );
    // Oldest (highest number) first, the current file last.
    let mut files: Vec<_> = numbered
        .iter()
        .rev()
        .map(|n| dir.join(format!("{name}.{n}")))
        .collect();
    files.push(events.clone());
    let mut lines = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.len() <= 2000,
            "{} is {} bytes",
            file.display(),
            text.len()
        );
        assert!(text.ends_with('\n'), "{} ends mid-line", file.display());
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", file.display()));
            lines.push(v);
        }
    }
    assert_eq!(lines.first().unwrap()["event"], "start");
    assert_eq!(lines.last().unwrap()["event"], "summary");
    let times: Vec<f64> = lines.iter().map(|v| v["time"].as_f64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "the files are out of order"
    );
    let summary = lines.last().unwrap();
    let count = |event: &str| lines.iter().filter(|v| v["event"] == event).count() as u64;
    assert_eq!(
        Some(count("fork")),
        summary["forks"].as_u64().map(|f| f + 1),
        "fork lines (with the spawn) vs the summary: {summary}"
    );
    assert_eq!(Some(count("exit")), summary["exits"].as_u64(), "{summary}");
    assert!(count("exit") >= 61, "{summary}");
}
