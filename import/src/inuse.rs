//! Is the library in use? The import refuses while Plex runs or while any
//! other process holds one of SQLite's locks on the file.
//!
//! SQLite locks with POSIX record locks: in a database file the bytes from
//! 0x40000000 (PENDING, RESERVED, the SHARED range); in WAL mode the `-shm`
//! file's bytes 120–128 (the writer, checkpointer, recovery and reader
//! locks, and byte 128 that every connection holding the file open keeps
//! locked). `F_GETLK` answers with the holder's pid without taking anything.

use std::os::fd::AsRawFd;
use std::path::Path;

/// The process holding a lock on `path` in `[start, start + len)`, if any.
fn lock_holder(path: &Path, start: i64, len: i64) -> Option<i32> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: a zeroed flock is a valid value; F_GETLK only fills it in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = start as _;
    fl.l_len = len as _;
    // SAFETY: an open fd and a valid flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if rc != 0 || fl.l_type == libc::F_UNLCK as _ {
        return None;
    }
    Some(fl.l_pid)
}

fn process_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A running Plex Media Server (its `comm` is cut to 15 bytes).
fn plex_running() -> Option<i32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == std::process::id() {
            continue;
        }
        let comm = process_name(pid);
        if comm == "Plex Media Serv" {
            return Some(pid);
        }
    }
    None
}

/// Why the file cannot be imported now, or `None` when nothing else uses it.
pub fn in_use(db: &Path) -> Option<String> {
    if let Some(pid) = plex_running() {
        return Some(format!(
            "Plex Media Server is running (pid {pid}); stop it first (systemctl stop plexmediaserver), then run the import again"
        ));
    }
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    let checks = [
        (db.to_path_buf(), 0x4000_0000i64, 512i64),
        (std::path::PathBuf::from(shm), 120, 9),
    ];
    for (path, start, len) in checks {
        if let Some(pid) = lock_holder(&path, start, len) {
            return Some(format!(
                "{} is open in another process (pid {pid}, {}), which holds a SQLite lock on it; stop that process (Plex, Plex's SQLite tool, a scanner) and run the import again",
                db.display(),
                process_name(pid)
            ));
        }
    }
    None
}
