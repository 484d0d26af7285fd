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

/// `log.file`, written by the launcher and by the shim in three Python
/// processes at once, rotated every 4,000 bytes: every line is whole and
/// every open and close each process logged is in one of the files.
#[test]
fn log_file_rotation_by_every_writer_loses_no_line() {
    let pg = plex_pg_tests::pg();
    let dir = plex_pg_tests::TempDir::new("log-rotation");
    let log = dir.path().join("plex-pg.log");
    let db = dir.library_db();
    let mut launcher = Launcher::new();
    launcher
        .cmd
        .envs(pg.env("log_rotation"))
        .env("PLEX_PG_LOG_FILE", &log)
        .env("PLEX_PG_LOG_LEVEL", "debug")
        .env("PLEX_PG_LOG_MAX_BYTES", "4000")
        .env("PLEX_PG_LOG_KEEP", "100");
    let script = format!(
        "import sqlite3\nfor i in range(40):\n    c = sqlite3.connect({db:?})\n    c.execute('SELECT 1').fetchall()\n    c.close()\n"
    );
    let shell = "for p in 1 2 3; do python3 -c \"$0\" & done; wait";
    let run = launcher.run(&["/bin/sh", "-c", shell, &script], Duration::from_secs(180));
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let name = log.file_name().unwrap().to_str().unwrap().to_string();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n == &name || n.starts_with(&format!("{name}.")))
        .collect();
    assert!(files.len() >= 3, "expected rotations: {files:?}");
    let (mut opened, mut closed) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        // One line over: two writers may both find room for their line.
        assert!(text.len() <= 4000 + 1000, "{file}: {} bytes", text.len());
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{file} ends mid-line"
        );
        for line in text.lines() {
            assert!(
                line.starts_with("20"),
                "{file}: a line that does not start with its timestamp (split?): {line:?}"
            );
            opened += line.contains(" on PostgreSQL (schema log_rotation)") as usize;
            closed += line.contains("DEBUG closed ") as usize;
        }
    }
    assert_eq!(
        (opened, closed),
        (120, 120),
        "every open and close of 3 × 40, once"
    );
}
