//! Which paths the launcher may trust while it runs as root: the trust
//! chain of a file it reads or loads (the configuration file, the shim), as
//! OpenSSH checks its own configuration.
//!
//! A path is trusted when every entry on the way to it — `/`, each
//! directory, each symbolic link followed, and the file itself — is owned
//! by root or by the launcher's own uid, and no directory or file on the
//! way is writable by group or others. Whoever could write any of them
//! could swap the file for their own: a shim that then runs inside Plex
//! (and, for `check`, as root), or a configuration that names the shim, the
//! alert command and the user Plex runs as.
//!
//! One exception, for directories like `/tmp`: a directory writable by
//! others is accepted on the way when it has the sticky bit, because others
//! can then neither rename nor remove the trusted entry inside it (which is
//! itself checked). A sticky directory is never accepted as the file.
//!
//! The walk resolves the path itself, component by component with
//! `lstat`, so a link's own owner is checked before it is followed, and the
//! entries its target goes through are checked too.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Most symbolic links followed in one walk (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Permission bits that let group or others write.
const GROUP_OTHER_WRITE: u32 = 0o022;

/// The uids the launcher trusts: root and itself.
pub fn trusted_uids() -> [u32; 2] {
    [0, nix::unistd::geteuid().as_raw()]
}

/// Why a path is not trusted: the entry at fault and what to do, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The entry that fails (the path itself, or a directory above it).
    pub entry: PathBuf,
    pub message: String,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Check the trust chain of `path` (a file that must exist). `Ok` with the
/// file's final, resolved location.
pub fn check_file(path: &Path) -> Result<PathBuf, Untrusted> {
    walk(path, Last::File)
}

/// Check the chain of the directories above an entry the launcher will
/// create or append to in `dir`: every entry up to `dir` is held to the
/// full rule; `dir` itself may also belong to `also_owner` (Plex's user,
/// whose log directory it may be) and may be writable, because what is
/// opened inside it is checked on its own (see [`crate::log_files`]).
pub fn check_parent_dir(dir: &Path, also_owner: Option<u32>) -> Result<PathBuf, Untrusted> {
    walk(dir, Last::OpenDir { also_owner })
}

#[derive(Clone, Copy)]
enum Last {
    File,
    OpenDir { also_owner: Option<u32> },
}

fn walk(path: &Path, last: Last) -> Result<PathBuf, Untrusted> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| fault(path, format!("cannot resolve {}: {e}", path.display())))?
            .join(path)
    };
    let trusted = trusted_uids();
    let mut todo: VecDeque<OsString> = components(&absolute);
    let mut current = PathBuf::from("/");
    check_entry(
        &current,
        &std::fs::symlink_metadata(&current).map_err(|e| fault(&current, e.to_string()))?,
        &trusted,
        todo.is_empty(),
        last,
        path,
    )?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            current.pop();
            continue;
        }
        let next = current.join(&name);
        let meta = std::fs::symlink_metadata(&next).map_err(|e| {
            fault(
                &next,
                format!("{} (on the way to {}): {e}", next.display(), path.display()),
            )
        })?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(fault(
                    path,
                    format!("{}: too many symbolic links", path.display()),
                ));
            }
            if !trusted.contains(&meta.uid()) {
                return Err(fault(
                    &next,
                    format!(
                        "{} (on the way to {}) is a symbolic link owned by uid {}, who could point it anywhere; replace it with a link owned by root",
                        next.display(),
                        path.display(),
                        meta.uid()
                    ),
                ));
            }
            let target = std::fs::read_link(&next).map_err(|e| fault(&next, e.to_string()))?;
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            for c in components(&target).into_iter().rev() {
                todo.push_front(c);
            }
            continue;
        }
        check_entry(&next, &meta, &trusted, todo.is_empty(), last, path)?;
        current = next;
    }
    Ok(current)
}

/// The names of `path`, `.` dropped, `..` kept.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn check_entry(
    entry: &Path,
    meta: &std::fs::Metadata,
    trusted: &[u32; 2],
    is_last: bool,
    last: Last,
    asked: &Path,
) -> Result<(), Untrusted> {
    let on_the_way = if is_last {
        String::new()
    } else {
        format!(" (a directory above {})", asked.display())
    };
    let owner_ok = trusted.contains(&meta.uid())
        || matches!(last, Last::OpenDir { also_owner: Some(u) } if is_last && u == meta.uid());
    if !owner_ok {
        return Err(fault(
            entry,
            format!(
                "{}{on_the_way} is owned by {}, not root: that user could replace what the launcher trusts; `chown root {}`",
                entry.display(),
                describe_uid(meta.uid()),
                entry.display()
            ),
        ));
    }
    let writable = meta.mode() & GROUP_OTHER_WRITE != 0;
    let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
    let allowed = match (is_last, last) {
        (false, _) => !writable || sticky_dir,
        (true, Last::File) => !writable,
        (true, Last::OpenDir { .. }) => true,
    };
    if !allowed {
        return Err(fault(
            entry,
            format!(
                "{}{on_the_way} is writable by group or others (mode {:04o}): anyone in them could replace what the launcher trusts; `chmod go-w {}`",
                entry.display(),
                meta.mode() & 0o7777,
                entry.display()
            ),
        ));
    }
    if is_last && matches!(last, Last::File) && !meta.is_file() {
        return Err(fault(
            entry,
            format!("{} is not a regular file", entry.display()),
        ));
    }
    Ok(())
}

fn fault(entry: &Path, message: String) -> Untrusted {
    Untrusted {
        entry: entry.to_path_buf(),
        message,
    }
}

/// `uid 1000 (alice)`.
pub fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// The configuration file's extra rule: one that holds a password must not
/// be readable by others (the .deb installs it 0640 root:plex).
pub fn check_secret_file(path: &Path) -> Result<(), Untrusted> {
    let meta =
        std::fs::metadata(path).map_err(|e| fault(path, format!("{}: {e}", path.display())))?;
    if meta.mode() & 0o004 != 0 {
        return Err(fault(
            path,
            format!(
                "{} holds postgres.password and is readable by every user (mode {:04o}); `chmod o-r {}` (the package installs it 0640 root:plex)",
                path.display(),
                meta.mode() & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The configuration file the settings were read from, checked: its trust
/// chain, and, when it holds `postgres.password`, that others cannot read
/// it. `/dev/null` ("no file") and no file at all pass.
pub fn check_config(settings: &plex_pg_config::Settings) -> Result<(), Untrusted> {
    let Some(file) = &settings.file else {
        return Ok(());
    };
    if file == Path::new("/dev/null") {
        return Ok(());
    }
    check_file(file)?;
    let password_from_file = matches!(
        settings.origin("postgres.password"),
        plex_pg_config::settings::Source::File(_)
    );
    if password_from_file && !settings.postgres.password.is_empty() {
        check_secret_file(file)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plex-pg-trust-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn a_private_file_in_a_private_directory_is_trusted() {
        let dir = scratch("ok");
        let f = dir.join("f");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_file(&f).is_ok(), "{:?}", check_file(&f));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_world_writable_file_or_directory_is_not() {
        let dir = scratch("ww");
        let f = dir.join("f");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check_file(&f).unwrap_err();
        assert_eq!(e.entry, f);
        assert!(e.message.contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_file(&f).unwrap_err();
        assert_eq!(e.entry, dir);
        assert!(e.message.contains("a directory above"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn links_are_followed_and_their_targets_checked() {
        let dir = scratch("link");
        let inner = dir.join("inner");
        std::fs::create_dir(&inner).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(inner.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("inner", dir.join("via")).unwrap();
        assert_eq!(check_file(&dir.join("via/f")).unwrap(), inner.join("f"));
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(check_file(&dir.join("via/f")).unwrap_err().entry, inner);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
