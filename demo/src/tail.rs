//! Following files that other processes append to (the launcher's event log,
//! the server's log): each call returns the complete lines written since the
//! last one, and keeps a partial last line for later.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Follow `path` from its current end (or from the start: `from_start`).
    pub fn new(path: &Path, from_start: bool) -> Tail {
        let offset = if from_start {
            0
        } else {
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        };
        Tail {
            path: path.to_path_buf(),
            offset,
            partial: Vec::new(),
        }
    }

    /// The complete lines appended since the last call (none while the file
    /// does not exist yet).
    pub fn lines(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut fresh = Vec::new();
        let Ok(n) = file.read_to_end(&mut fresh) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&complete)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn returns_complete_lines_and_keeps_the_partial_one() {
        let path = std::env::temp_dir().join(format!("plex-pg-tail-test-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        let mut tail = Tail::new(&path, true);
        assert!(tail.lines().is_empty());
        f.write_all(b"one\ntw").unwrap();
        assert_eq!(tail.lines(), vec!["one"]);
        f.write_all(b"o\n\nthree\n").unwrap();
        assert_eq!(tail.lines(), vec!["two", "three"]);
        assert!(tail.lines().is_empty());
        let _ = std::fs::remove_file(&path);
    }
}
