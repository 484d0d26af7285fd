//! Opening the files the launcher appends to — the event log and
//! `log.file` — while it may still be root, without letting Plex's user
//! (or anyone else) redirect the writes.
//!
//! Plex's user may own the log directory (it writes there after the
//! launcher drops to it), so it could plant a symbolic link or a hard link
//! named like the log, pointing at a root-owned file. The rules:
//!
//! - every directory above the log's directory passes the trust chain
//!   ([`crate::trust::check_parent_dir`]): nobody but root can swap them;
//! - the log's directory is opened once, and the file is opened relative to
//!   it (`openat`) with `O_NOFOLLOW` (a link is refused, not followed) and
//!   `O_NONBLOCK` (a FIFO does not hang the start);
//! - what was opened must be a regular file with one link (a hard link to
//!   another file would have two), owned by root, the launcher, or Plex's
//!   user. Anything else is refused with a message that says why.
//!
//! A new file is created with mode 0640. Before the first append, a last
//! line left unterminated by a killed run is ended with a newline, so the
//! next line does not glue onto it.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::trust;
use plex_pg_config::rotate::Limits;

/// Open `path` for appending (creating it 0640 when missing). `service_uid`:
/// Plex's user when the launcher will drop to it; that user may own the
/// file and its directory.
pub fn open_append(path: &Path, service_uid: Option<u32>) -> io::Result<File> {
    let refuse = |why: String| io::Error::new(io::ErrorKind::PermissionDenied, why);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    trust::check_parent_dir(dir, service_uid)
        .map_err(|e| refuse(format!("{e} (the directory of {})", path.display())))?;
    let cdir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let cname =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open(2) of a NUL-terminated path that lives through the call.
    let dirfd = unsafe {
        libc::open(
            cdir.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if dirfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dirfd` was just opened and nothing else owns it.
    let dirfd = unsafe { OwnedFd::from_raw_fd(dirfd) };
    let flags = libc::O_RDWR
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_CLOEXEC
        | libc::O_NOCTTY;
    // SAFETY: openat(2) relative to a directory fd we hold, of a
    // NUL-terminated name that lives through the call.
    let fd = unsafe {
        libc::openat(
            dirfd.as_raw_fd(),
            cname.as_ptr(),
            flags,
            0o640 as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Err(refuse(format!(
                "{} is a symbolic link; the launcher never follows a link there (whoever can write {} could point it at any file). Remove it",
                path.display(),
                dir.display()
            )));
        }
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Err(refuse(format!(
                "{} is a FIFO or a socket, not a file; remove it",
                path.display()
            )));
        }
        return Err(e);
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(format!(
            "{} is not a regular file; remove it",
            path.display()
        )));
    }
    if meta.nlink() != 1 {
        return Err(refuse(format!(
            "{} has {} hard links: it may be another file under a planted name; remove it and let the launcher create it",
            path.display(),
            meta.nlink()
        )));
    }
    let [root, me] = trust::trusted_uids();
    let owner = meta.uid();
    if owner != root && owner != me && Some(owner) != service_uid {
        return Err(refuse(format!(
            "{} is owned by {}, neither root nor Plex's user; remove it or `chown` it",
            path.display(),
            trust::describe_uid(owner)
        )));
    }
    // The fd was opened non-blocking only so a FIFO could not hang us.
    // SAFETY: F_SETFL with integer flags on an fd `file` owns.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_APPEND) };
    terminate_last_line(&mut file)?;
    Ok(file)
}

/// End an unterminated last line (a run killed mid-line) with a newline.
fn terminate_last_line(file: &mut File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        write_once(file, b"\n")?;
    }
    Ok(())
}

/// Write `bytes` with one `write(2)` (retried on EINTR). A short write
/// (a full disk) writes the rest with further calls, and is the only case
/// with more than one.
pub fn write_once(fd: &impl AsRawFd, bytes: &[u8]) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: a write of a live buffer to an fd we hold.
        let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}

/// A log the launcher appends whole lines to, kept under a size by the
/// rotation protocol the shim follows too ([`plex_pg_config::rotate`]):
/// when the next line would take it past `max_bytes`, `NAME` becomes
/// `NAME.1` (`NAME.1` becomes `NAME.2` …, the oldest beyond `keep` is
/// removed) and a new `NAME` is opened with [`open_append`]'s rules. A line
/// is never split between two files. Renames replace names, never follow
/// them, so a link planted at `NAME.1` is replaced, not written through; a
/// rotation that fails (a directory planted there) is reported and the
/// current file goes on growing: nothing is lost. Used for the event log
/// and for `log.file`.
pub struct Rotating {
    path: std::path::PathBuf,
    service_uid: Option<u32>,
    file: File,
    limits: Limits,
}

impl Rotating {
    /// Open `path` as [`open_append`] does. `max_bytes` 0: never rotate.
    pub fn open(
        path: &Path,
        service_uid: Option<u32>,
        max_bytes: u64,
        keep: u32,
    ) -> io::Result<Rotating> {
        Ok(Rotating {
            path: path.to_path_buf(),
            service_uid,
            file: open_append(path, service_uid)?,
            limits: Limits { max_bytes, keep },
        })
    }

    /// The file written now.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Rotate at `max_bytes` (0: never), keeping `keep` old files.
    pub fn set_limits(&mut self, max_bytes: u64, keep: u32) {
        self.limits = Limits { max_bytes, keep };
    }

    /// Append `line` (whole lines), rotating first when it would not fit.
    /// `Err`: the line was not written. `Ok(Some(e))`: it was, to the
    /// current file, because the rotation failed with `e`.
    pub fn append(&mut self, line: &[u8]) -> io::Result<Option<io::Error>> {
        let uid = self.service_uid;
        let reopen = |p: &Path| open_append(p, uid).map(OwnedFd::from);
        let rotation = plex_pg_config::rotate::before_append(
            self.file.as_raw_fd(),
            &self.path,
            line.len(),
            self.limits,
            &reopen,
        )
        .err();
        write_once(&self.file, line)?;
        Ok(rotation)
    }
}

/// For `tracing`'s writer: it hands over one formatted line per write. A
/// failed rotation does not lose the line (it goes on into the current
/// file).
impl io::Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::Rotating;

    #[test]
    fn whole_lines_rotate_into_numbered_files_and_the_oldest_goes() {
        let dir = std::env::temp_dir().join(format!("plex-pg-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut log = Rotating::open(&path, None, 100, 2).unwrap();
        let mut written = Vec::new();
        for i in 0..30 {
            let line = format!("{{\"line\":{i:03},\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}}\n");
            assert!(line.len() < 100);
            assert!(log.append(line.as_bytes()).unwrap().is_none());
            written.push(line);
        }
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let (now, one, two) = (
            read("events.jsonl"),
            read("events.jsonl.1"),
            read("events.jsonl.2"),
        );
        assert!(!dir.join("events.jsonl.3").exists(), "only 2 kept");
        for text in [&now, &one, &two] {
            assert!(text.len() <= 100 && text.ends_with('\n'), "{text:?}");
        }
        // The newest lines, in order, with none lost or split across files.
        let kept = format!("{two}{one}{now}");
        let tail: String = written[written.len() - kept.lines().count()..].concat();
        assert_eq!(kept, tail);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
