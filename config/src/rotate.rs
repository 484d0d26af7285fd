//! How every writer of `log.file` keeps it under `log.max_bytes`: the
//! launcher and the shim in each of Plex's processes append to the same
//! file, so rotating it is a protocol they share, defined once here.
//!
//! Before a line is appended, the writer looks at its file's size
//! (`fstat`). When the line would take it past the limit, the writer takes
//! `flock(LOCK_EX)` on its file and looks again at what the path names:
//!
//! - still its file: it renames `NAME.(keep-1)` → `NAME.keep` … `NAME` →
//!   `NAME.1` (renames replace names, never follow them) and opens a new
//!   `NAME`;
//! - another file: another writer has just rotated; it opens that one.
//!
//! Either way the new file takes the old one's fd number (`dup3`), so a
//! thread writing at the same moment writes to one file or the other,
//! never to a closed or reused fd. Lines are written with one `write(2)`
//! to an `O_APPEND` file, so no line is split and none is lost: lines
//! written to the old file while it is renamed are in `NAME.1`.
//!
//! `flock` is the kernel's, on the open file: a child forked while its
//! parent holds it shares the lock, so no fork can leave a writer stuck.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `log.max_bytes` and `log.keep` of the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// 0: never rotate.
    pub max_bytes: u64,
    /// Old files kept; 0: the file starts again empty.
    pub keep: u32,
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    name.into()
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: fstat fills the zeroed struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fd` is the caller's open fd.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Rotate the file `fd` has open at `path` if `incoming` more bytes would
/// take it past the limit, as the module's protocol says; `reopen` opens a
/// new `path` for appending (each writer opens files its own way). Returns
/// whether `fd` now names another file.
pub fn before_append(
    fd: RawFd,
    path: &Path,
    incoming: usize,
    limits: Limits,
    reopen: &dyn Fn(&Path) -> io::Result<std::os::fd::OwnedFd>,
) -> io::Result<bool> {
    if limits.max_bytes == 0 {
        return Ok(false);
    }
    let st = fstat(fd)?;
    if st.st_size <= 0 || st.st_size as u64 + incoming as u64 <= limits.max_bytes {
        // Not full; but if another writer rotated it away, follow: lines
        // written after a rotation belong in the new file.
        return match identity(path) {
            Some(now) if now != (st.st_dev, st.st_ino) => {
                switch_to(fd, &reopen(path)?)?;
                Ok(true)
            }
            _ => Ok(false),
        };
    }
    // SAFETY: a blocking flock of the caller's fd; released below.
    if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let result = rotate_locked(fd, &st, path, limits, reopen);
    // SAFETY: as above. After a dup3 `fd` names the new file, which this
    // writer never locked; the old file's lock goes with its last fd.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    result
}

fn rotate_locked(
    fd: RawFd,
    mine: &libc::stat,
    path: &Path,
    limits: Limits,
    reopen: &dyn Fn(&Path) -> io::Result<std::os::fd::OwnedFd>,
) -> io::Result<bool> {
    if identity(path) == Some((mine.st_dev, mine.st_ino)) {
        if limits.keep == 0 {
            // SAFETY: truncating the caller's own file.
            if unsafe { libc::ftruncate(fd, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(false);
        }
        let _ = std::fs::remove_file(numbered(path, limits.keep));
        for n in (1..limits.keep).rev() {
            match std::fs::rename(numbered(path, n), numbered(path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(path, numbered(path, 1))?;
    }
    switch_to(fd, &reopen(path)?)?;
    Ok(true)
}

/// The device and inode `path` names now, if anything.
fn identity(path: &Path) -> Option<(libc::dev_t, libc::ino_t)> {
    let cpath = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: stat fills the zeroed struct; the path is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::stat(cpath.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// Make `fd` name `new`'s file, keeping its number.
fn switch_to(fd: RawFd, new: &std::os::fd::OwnedFd) -> io::Result<()> {
    // SAFETY: both fds are open; dup3 replaces `fd`'s file atomically and
    // keeps its number, so concurrent writers never see it closed.
    if unsafe { libc::dup3(std::os::fd::AsRawFd::as_raw_fd(new), fd, libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd};

    fn open(path: &Path) -> io::Result<OwnedFd> {
        Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .into())
    }

    #[test]
    fn two_writers_rotate_one_file_and_lose_no_line() {
        let dir = std::env::temp_dir().join(format!("plex-pg-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plex-pg.log");
        let limits = Limits {
            max_bytes: 1000,
            keep: 100,
        };
        // Two writers, as two processes would have: each its own open file.
        let writers: Vec<std::fs::File> = (0..2).map(|_| open(&path).unwrap().into()).collect();
        let mut expected = Vec::new();
        for i in 0..300 {
            // An uneven interleaving: a writer is often not the one whose
            // line fills the file.
            let k = (i * i + i / 7) % 3 % 2;
            let w = &writers[k];
            let line = format!("writer {k} line {i:04} ..............................\n");
            before_append(w.as_raw_fd(), &path, line.len(), limits, &open).unwrap();
            (&*w).write_all(line.as_bytes()).unwrap();
            expected.push(line);
        }
        let mut files: Vec<(u32, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                let n = name.rsplit('.').next().unwrap().parse().unwrap_or(0);
                (n, std::fs::read_to_string(dir.join(&name)).unwrap())
            })
            .collect();
        assert!(files.len() > 10, "{} files", files.len());
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (_, text) in &files {
            assert!(text.len() <= 1000, "{} bytes", text.len());
        }
        let all: String = files.into_iter().map(|(_, t)| t).collect();
        assert_eq!(all, expected.concat(), "every line, once, in order");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
