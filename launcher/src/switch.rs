//! The switch: `plex-pg-launcher enable` puts the launcher in front of
//! Plex's systemd unit, `plex-pg-launcher disable` takes it out, and
//! [`state`] tells `check` which way it is.
//!
//! The .deb ships the drop-in inactive (`/usr/share/plex-pg/systemd/`);
//! nothing puts Plex on PostgreSQL until the admin runs `enable` (issue
//! 13: a crash restart, a reboot or a Plex upgrade must not switch Plex
//! over by surprise). `enable` writes the drop-in the launcher was built
//! with ([`DROP_IN_TEXT`], the package's `packaging/systemd/plex-pg.conf`)
//! as `/etc/systemd/system/plexmediaserver.service.d/10-plex-pg.conf`: its
//! name sorts before `override.conf`, so what an admin sets with
//! `systemctl edit plexmediaserver` wins.
//!
//! Both refuse when the switch would hand Plex an empty library: `enable`
//! when the guard would refuse (an SQLite library and an empty schema,
//! unless `launcher.allow_empty_library`), `disable` when PostgreSQL holds
//! the library and no SQLite library is in Plex's Databases folder (run
//! `export` first; `--force` overrides). When PostgreSQL cannot be asked,
//! `enable` refuses beside an SQLite library, and `disable` refuses when
//! the library was imported (its file renamed `….in-postgresql`).
//!
//! The launcher runs as root here, so the drop-in is written without
//! following links: the systemd directory is opened with `O_NOFOLLOW` and
//! must be root's and not writable by others; the unit's `.d` directory is
//! created or opened relative to it, again with `O_NOFOLLOW` and the same
//! checks; the file is written to a new temporary name in that directory
//! (`O_CREAT|O_EXCL|O_NOFOLLOW`) and renamed over the drop-in's name, which
//! replaces whatever is there (a planted link included) without following
//! it. Removal is `unlinkat`, which removes a link itself, never its target.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use plex_pg_config::Settings;

use crate::trust;

/// The drop-in, as the package ships it (inactive) and `enable` installs it.
pub const DROP_IN_TEXT: &str = include_str!("../../packaging/systemd/plex-pg.conf");
/// Its file name: sorts before `override.conf` (`systemctl edit`), so an
/// admin's own settings win.
pub const DROP_IN_NAME: &str = "10-plex-pg.conf";
/// Plex's unit.
pub const UNIT: &str = "plexmediaserver.service";
/// Where `enable` installs the drop-in (its `<UNIT>.d` directory).
pub const DEFAULT_SYSTEMD_DIR: &str = "/etc/systemd/system";

/// `plex-pg-launcher enable`.
#[derive(Args, Debug)]
pub struct EnableArgs {
    /// systemd's directory for the admin's units; the drop-in goes in its plexmediaserver.service.d
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SYSTEMD_DIR)]
    pub systemd_dir: PathBuf,
}

/// `plex-pg-launcher disable`.
#[derive(Args, Debug)]
pub struct DisableArgs {
    /// systemd's directory for the admin's units; the drop-in goes in its plexmediaserver.service.d
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SYSTEMD_DIR)]
    pub systemd_dir: PathBuf,
    /// Take the launcher out even though PostgreSQL holds the library and no SQLite library is in place (Plex will then start on an empty one)
    #[arg(long)]
    pub force: bool,
}

/// The drop-in's path under `systemd_dir`.
pub fn drop_in_path(systemd_dir: &Path) -> PathBuf {
    systemd_dir.join(format!("{UNIT}.d")).join(DROP_IN_NAME)
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} holds a NUL byte", s.to_string_lossy()),
        )
    })
}

fn refuse(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

/// A directory root may write in: owned by root (or this uid), writable by
/// nobody else.
fn check_dir_fd(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    // SAFETY: fstat on an fd we own, into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a plain syscall on fds this function holds and NUL-terminated paths; its result is checked.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(refuse(format!("{} is not a directory", path.display())));
    }
    if !trust::trusted_uids().contains(&st.st_uid) {
        return Err(refuse(format!(
            "{} is owned by {}, not root: whoever owns it could redirect what the launcher writes there as root; `chown root:root` it",
            path.display(),
            trust::describe_uid(st.st_uid)
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(refuse(format!(
            "{} is writable by group or others (mode {:o}): anyone who can write there could plant a link; `chmod go-w` it",
            path.display(),
            st.st_mode & 0o7777
        )));
    }
    Ok(())
}

/// Open a directory without following a link at its last component.
fn open_dir_at(at: Option<&OwnedFd>, name: &Path, shown: &Path) -> io::Result<OwnedFd> {
    let c = cstr(name.as_os_str())?;
    let flags = libc::O_DIRECTORY | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: open/openat on a NUL-terminated path; the fd is owned at once.
    let fd = unsafe {
        match at {
            Some(dir) => libc::openat(dir.as_raw_fd(), c.as_ptr(), flags),
            None => libc::open(c.as_ptr(), flags),
        }
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) {
            return Err(refuse(format!(
                "{} is a symbolic link or not a directory; the launcher, as root, never writes through a link there. Remove it (systemd drop-ins belong in a real directory)",
                shown.display()
            )));
        }
        return Err(io::Error::new(
            e.kind(),
            format!("cannot open {}: {e}", shown.display()),
        ));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The unit's `.d` directory, opened safely (and created when `create`).
/// `Ok(None)`: it does not exist and was not to be created.
fn open_unit_dir(systemd_dir: &Path, create: bool) -> io::Result<Option<(OwnedFd, PathBuf)>> {
    trust::check_parent_dir(systemd_dir, None)
        .map_err(|e| refuse(format!("{e} (where the drop-in goes)")))?;
    let base = open_dir_at(None, systemd_dir, systemd_dir)?;
    check_dir_fd(&base, systemd_dir)?;
    let name = format!("{UNIT}.d");
    let shown = systemd_dir.join(&name);
    if create {
        let c = cstr(OsStr::new(&name))?;
        // SAFETY: mkdirat on a NUL-terminated name relative to an owned fd.
        if unsafe { libc::mkdirat(base.as_raw_fd(), c.as_ptr(), 0o755) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", shown.display()),
                ));
            }
        }
    }
    match open_dir_at(Some(&base), Path::new(&name), &shown) {
        Ok(fd) => {
            check_dir_fd(&fd, &shown)?;
            Ok(Some((fd, shown)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write the drop-in into `systemd_dir`'s unit directory: a temporary file
/// beside it, then renamed over its name. Returns its path.
pub fn install_drop_in(systemd_dir: &Path, text: &str) -> io::Result<PathBuf> {
    let (dir, shown) = open_unit_dir(systemd_dir, true)?.expect("created");
    let tmp = format!(".{DROP_IN_NAME}.{}.tmp", std::process::id());
    let ctmp = cstr(OsStr::new(&tmp))?;
    let cname = cstr(OsStr::new(DROP_IN_NAME))?;
    // A leftover of a killed run of this pid: it is ours to remove.
    // SAFETY: unlinkat on a NUL-terminated name relative to an owned fd.
    unsafe { libc::unlinkat(dir.as_raw_fd(), ctmp.as_ptr(), 0) };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat with a NUL-terminated name; the fd is owned at once.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), ctmp.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot create {}: {e}", shown.join(&tmp).display()),
        ));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let written = (|| {
        file.write_all(text.as_bytes())?;
        // The umask may have taken bits away: systemd wants it readable.
        // SAFETY: fchmod on an fd we own.
        if unsafe { libc::fchmod(file.as_raw_fd(), 0o644) } != 0 {
            return Err(io::Error::last_os_error());
        }
        file.sync_all()?;
        // SAFETY: renameat between two NUL-terminated names in one owned dir.
        if unsafe {
            libc::renameat(
                dir.as_raw_fd(),
                ctmp.as_ptr(),
                dir.as_raw_fd(),
                cname.as_ptr(),
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })();
    if let Err(e) = written {
        // SAFETY: as above.
        unsafe { libc::unlinkat(dir.as_raw_fd(), ctmp.as_ptr(), 0) };
        return Err(io::Error::new(
            e.kind(),
            format!("cannot write {}: {e}", shown.join(DROP_IN_NAME).display()),
        ));
    }
    // SAFETY: fsync on an fd we own (the rename made durable).
    unsafe { libc::fsync(dir.as_raw_fd()) };
    Ok(shown.join(DROP_IN_NAME))
}

/// Remove the drop-in (a link planted there is removed, not followed), and
/// the unit's directory when that leaves it empty. `Ok(false)`: it was not
/// installed.
pub fn remove_drop_in(systemd_dir: &Path) -> io::Result<bool> {
    let Some((dir, shown)) = open_unit_dir(systemd_dir, false)? else {
        return Ok(false);
    };
    let cname = cstr(OsStr::new(DROP_IN_NAME))?;
    // SAFETY: unlinkat on a NUL-terminated name relative to an owned fd.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(false);
        }
        return Err(io::Error::new(
            e.kind(),
            format!("cannot remove {}: {e}", shown.join(DROP_IN_NAME).display()),
        ));
    }
    // SAFETY: fsync on an fd we own.
    unsafe { libc::fsync(dir.as_raw_fd()) };
    drop(dir);
    // Only when empty (an admin's override.conf stays): rmdir refuses otherwise.
    let _ = std::fs::remove_dir(&shown);
    Ok(true)
}

/// Is the drop-in installed under `systemd_dir` (a regular file)?
pub fn installed(systemd_dir: &Path) -> bool {
    std::fs::symlink_metadata(drop_in_path(systemd_dir)).is_ok_and(|m| m.is_file())
}

/// Is systemd the running init (`sd_booted`'s test)?
pub fn systemd_running() -> bool {
    crate::systemd::running()
}

fn daemon_reload() {
    if !systemd_running() {
        println!("systemd is not running here: it reads the drop-in when it starts");
        return;
    }
    match crate::systemd::systemctl(&["daemon-reload"], Duration::from_secs(60)) {
        Ok(o) if o.success => println!("systemctl daemon-reload: done"),
        Ok(o) => println!(
            "WARNING: systemctl daemon-reload failed ({}); run it yourself before restarting Plex",
            o.stderr.trim()
        ),
        Err(e) => println!(
            "WARNING: cannot run systemctl daemon-reload ({e}); run it yourself before restarting Plex"
        ),
    }
}

/// A variable of Plex's unit's environment (`systemctl show -p
/// Environment`), when systemd runs and sets it.
fn unit_environment(name: &str) -> Option<String> {
    environment_value(&crate::systemd::show(UNIT, "Environment")?, name)
}

/// `name`'s value in systemd's `Environment=` list (`A=1 "B=two words"`).
fn environment_value(list: &str, name: &str) -> Option<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in list.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    words.push(word);
    words
        .into_iter()
        .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// Plex's Databases folder as Plex under systemd will see it: the
/// variable in this environment, else the one Plex's unit sets, else the
/// default ([`crate::guard::databases_dir`]).
fn plex_databases_dir() -> PathBuf {
    const VAR: &str = "PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR";
    if std::env::var_os(VAR).is_none_or(|v| v.is_empty()) {
        if let Some(dir) = unit_environment(VAR).filter(|v| !v.is_empty()) {
            return PathBuf::from(dir)
                .join("Plex Media Server")
                .join("Plug-in Support")
                .join("Databases");
        }
    }
    crate::guard::databases_dir()
}

/// The SQLite library in Plex's Databases folder, when it holds anything.
fn sqlite_library() -> Option<(PathBuf, u64)> {
    let library = plex_databases_dir().join("com.plexapp.plugins.library.db");
    let size = std::fs::metadata(&library).map(|m| m.len()).ok()?;
    (size > 0).then_some((library, size))
}

/// Why `enable` must not arm the switch now, or None.
pub fn enable_refusal(settings: &Settings) -> Option<String> {
    if settings.launcher.allow_empty_library {
        return None;
    }
    let (library, size) = sqlite_library()?;
    let dir = plex_databases_dir();
    match crate::guard::library_tables(settings) {
        Ok(0) => Some(format!(
            "PostgreSQL schema {} holds no library, but Plex's SQLite library {} ({size} bytes) exists: with the launcher in front, Plex would start on an empty library (and the launcher would refuse to start it). \
             Bring the library over first: plex-pg-launcher import --from \"{}\" (docs/migration.md), then plex-pg-launcher enable. \
             For a fresh install with nothing to keep, set launcher.allow_empty_library = true",
            settings.postgres.schema,
            library.display(),
            dir.display()
        )),
        Ok(_) => None,
        Err(e) => Some(format!(
            "cannot tell whether PostgreSQL schema {} holds the library ({e}), and Plex's SQLite library {} ({size} bytes) exists: not switching blind. \
             Make PostgreSQL reachable (plex-pg-launcher check), then run enable again",
            settings.postgres.schema,
            library.display()
        )),
    }
}

/// Why `disable` must not take the launcher out now, or None.
pub fn disable_refusal(settings: &Settings) -> Option<String> {
    if sqlite_library().is_some() {
        return None;
    }
    let dir = plex_databases_dir();
    match crate::guard::library_tables(settings) {
        Ok(0) => None,
        Ok(tables) => Some(format!(
            "PostgreSQL schema {} holds the library ({tables} tables) and there is no SQLite library in {}: without the launcher, Plex would start on an empty library. \
             Write the library back first: plex-pg-launcher export --to DIR, then put the files into that folder (docs/migration.md, \"Back out\"), then plex-pg-launcher disable. \
             To take the launcher out anyway: plex-pg-launcher disable --force",
            settings.postgres.schema,
            dir.display()
        )),
        Err(e) => {
            let mut aside = dir
                .join("com.plexapp.plugins.library.db")
                .into_os_string();
            aside.push(".in-postgresql");
            if !Path::new(&aside).exists() {
                // Nothing says a library was ever moved to PostgreSQL.
                println!(
                    "warning: cannot ask PostgreSQL whether schema {} holds a library ({e}); no library was imported from {}: taking the launcher out",
                    settings.postgres.schema,
                    dir.display()
                );
                return None;
            }
            Some(format!(
                "cannot tell whether PostgreSQL schema {} holds the library ({e}), and the SQLite library in {} was imported (renamed to {}): not switching blind. \
                 Make PostgreSQL reachable (plex-pg-launcher check) and export the library (plex-pg-launcher export --to DIR), or, knowing what you lose, plex-pg-launcher disable --force",
                settings.postgres.schema,
                dir.display(),
                Path::new(&aside).display()
            ))
        }
    }
}

/// `plex-pg-launcher enable`: exit status 0 done, 3 refused, 1 failed.
pub fn enable(settings: &Settings, args: &EnableArgs) -> i32 {
    if let Some(why) = enable_refusal(settings) {
        eprintln!("plex-pg-launcher enable: refused: {why}");
        eprintln!("plex-pg-launcher enable: nothing was changed");
        return 3;
    }
    match install_drop_in(&args.systemd_dir, DROP_IN_TEXT) {
        Ok(path) => {
            println!(
                "installed {}: Plex starts through plex-pg-launcher (the library on PostgreSQL schema {}) at its next start",
                path.display(),
                settings.postgres.schema
            );
            daemon_reload();
            println!("next: systemctl restart plexmediaserver (then: plex-pg-launcher check; journalctl -u plexmediaserver)");
            println!("to go back: plex-pg-launcher export --to DIR, put the files in place, plex-pg-launcher disable (docs/migration.md)");
            0
        }
        Err(e) => {
            eprintln!("plex-pg-launcher enable: {e}");
            eprintln!("plex-pg-launcher enable: Plex's start is unchanged");
            1
        }
    }
}

/// `plex-pg-launcher disable`: exit status 0 done, 3 refused, 1 failed.
pub fn disable(settings: &Settings, args: &DisableArgs) -> i32 {
    if !installed(&args.systemd_dir)
        && std::fs::symlink_metadata(drop_in_path(&args.systemd_dir)).is_err()
    {
        println!(
            "{} is not installed: Plex does not start through the launcher (nothing to do)",
            drop_in_path(&args.systemd_dir).display()
        );
        return 0;
    }
    if !args.force {
        if let Some(why) = disable_refusal(settings) {
            eprintln!("plex-pg-launcher disable: refused: {why}");
            eprintln!("plex-pg-launcher disable: nothing was changed");
            return 3;
        }
    }
    match remove_drop_in(&args.systemd_dir) {
        Ok(_) => {
            println!(
                "removed {}: Plex starts on its SQLite files at its next start",
                drop_in_path(&args.systemd_dir).display()
            );
            daemon_reload();
            println!("next: systemctl restart plexmediaserver");
            0
        }
        Err(e) => {
            eprintln!("plex-pg-launcher disable: {e}");
            1
        }
    }
}

/// `systemctl show -p ExecStart plexmediaserver`'s program and arguments,
/// when systemd runs and knows the unit.
pub fn effective_exec_start() -> Option<String> {
    let value = crate::systemd::show(UNIT, "ExecStart")?;
    if value.is_empty() {
        return None;
    }
    // `{ path=… ; argv[]=… ; ignore_errors=… }`: the argv part.
    let argv = value
        .split(" ; ")
        .find_map(|p| p.trim_start_matches("{ ").strip_prefix("argv[]="))
        .map(str::to_string)
        .unwrap_or(value);
    Some(argv)
}

/// For `check`: is the launcher in front of Plex? Lines of (is it a
/// problem, text).
pub fn state(systemd_dir: &Path) -> Vec<(bool, String)> {
    let path = drop_in_path(systemd_dir);
    let mut lines = Vec::new();
    let armed = installed(systemd_dir);
    if armed {
        lines.push((
            false,
            format!(
                "drop-in {} installed: Plex's unit starts it through the launcher (plex-pg-launcher disable takes it out)",
                path.display()
            ),
        ));
    } else if std::fs::symlink_metadata(&path).is_ok() {
        lines.push((
            true,
            format!(
                "{} exists but is not a regular file: remove it, then plex-pg-launcher enable",
                path.display()
            ),
        ));
    } else {
        lines.push((
            false,
            format!(
                "drop-in not installed ({}): under systemd, Plex starts on its SQLite files; plex-pg-launcher enable puts the launcher in front",
                path.display()
            ),
        ));
    }
    match effective_exec_start() {
        Some(argv) => {
            let fronted = argv
                .split_whitespace()
                .next()
                .is_some_and(|p| p.ends_with("/plex-pg-launcher"));
            let problem = fronted != armed;
            let what = match (fronted, armed) {
                (true, true) => "the launcher is in front of Plex",
                (false, false) => "the launcher is not in front of Plex",
                (true, false) => "the launcher is in front of Plex through another unit file than the drop-in (systemctl cat plexmediaserver shows which)",
                (false, true) => "the launcher is NOT in front of Plex although the drop-in is installed: run systemctl daemon-reload, or a later drop-in (systemctl cat plexmediaserver) sets ExecStart",
            };
            let shown: String = argv.chars().take(160).collect();
            lines.push((problem, format!("systemd's ExecStart of {UNIT}: {shown}; {what}")));
        }
        None if systemd_running() => lines.push((
            false,
            format!("systemd does not know {UNIT} (Plex's package not installed?)"),
        )),
        None => lines.push((
            false,
            "systemd is not running here (a container?): the drop-in does not apply; the image's own start decides".into(),
        )),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(name: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!(
                "plex-pg-switch-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn installs_then_removes_and_leaves_the_directory_as_it_was() {
        let t = Tmp::new("plain");
        let path = install_drop_in(&t.0, DROP_IN_TEXT).unwrap();
        assert_eq!(path, drop_in_path(&t.0));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), DROP_IN_TEXT);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o644);
        assert!(installed(&t.0));
        // Again: replaced in place, no temporary file left.
        install_drop_in(&t.0, "[Service]\n").unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(DROP_IN_NAME)]);
        assert!(remove_drop_in(&t.0).unwrap());
        assert!(!installed(&t.0));
        assert!(
            !t.0.join(format!("{UNIT}.d")).exists(),
            "the empty unit directory is removed"
        );
        assert!(!remove_drop_in(&t.0).unwrap(), "removing twice is no error");
    }

    #[test]
    fn an_admins_override_stays_and_sorts_after_the_drop_in() {
        let t = Tmp::new("override");
        let unit_dir = t.0.join(format!("{UNIT}.d"));
        std::fs::create_dir(&unit_dir).unwrap();
        std::fs::write(unit_dir.join("override.conf"), "[Service]\nNice=5\n").unwrap();
        install_drop_in(&t.0, DROP_IN_TEXT).unwrap();
        assert!(DROP_IN_NAME < "override.conf");
        assert!(remove_drop_in(&t.0).unwrap());
        assert_eq!(
            std::fs::read_to_string(unit_dir.join("override.conf")).unwrap(),
            "[Service]\nNice=5\n"
        );
    }

    #[test]
    fn a_link_planted_at_the_drop_ins_name_is_replaced_not_followed() {
        let t = Tmp::new("link-file");
        let victim = t.0.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let unit_dir = t.0.join(format!("{UNIT}.d"));
        std::fs::create_dir(&unit_dir).unwrap();
        std::os::unix::fs::symlink(&victim, unit_dir.join(DROP_IN_NAME)).unwrap();
        assert!(!installed(&t.0), "a link is not an installed drop-in");
        install_drop_in(&t.0, DROP_IN_TEXT).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(unit_dir.join(DROP_IN_NAME))
            .unwrap()
            .is_file());
        // A link planted again is removed itself on disable, its target kept.
        std::fs::remove_file(unit_dir.join(DROP_IN_NAME)).unwrap();
        std::os::unix::fs::symlink(&victim, unit_dir.join(DROP_IN_NAME)).unwrap();
        assert!(remove_drop_in(&t.0).unwrap());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(unit_dir.join(DROP_IN_NAME)).is_err());
    }

    #[test]
    fn a_link_planted_as_the_unit_directory_is_refused() {
        let t = Tmp::new("link-dir");
        let elsewhere = t.0.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, t.0.join(format!("{UNIT}.d"))).unwrap();
        let e = install_drop_in(&t.0, DROP_IN_TEXT).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        let e = remove_drop_in(&t.0).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let t = Tmp::new("writable");
        let unit_dir = t.0.join(format!("{UNIT}.d"));
        std::fs::create_dir(&unit_dir).unwrap();
        std::fs::set_permissions(&unit_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = install_drop_in(&t.0, DROP_IN_TEXT).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        assert!(!unit_dir.join(DROP_IN_NAME).exists());
        std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = install_drop_in(&t.0, DROP_IN_TEXT).unwrap_err();
        assert!(e.to_string().contains("writable"), "{e}");
    }

    #[test]
    fn a_variable_of_the_units_environment_is_found_quoted_or_not() {
        let list = "PLEX_MEDIA_SERVER_HOME=/usr/lib/plexmediaserver \"PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR=/var/lib/plexmediaserver/Library/Application Support\" TMPDIR=/tmp";
        assert_eq!(
            environment_value(list, "PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR").as_deref(),
            Some("/var/lib/plexmediaserver/Library/Application Support")
        );
        assert_eq!(environment_value(list, "TMPDIR").as_deref(), Some("/tmp"));
        assert_eq!(environment_value(list, "HOME"), None);
        assert_eq!(environment_value("", "TMPDIR"), None);
    }

    #[test]
    fn the_drop_in_sets_the_launcher_in_front() {
        assert!(DROP_IN_TEXT.contains("\nExecStart=\nExecStart=/usr/bin/plex-pg-launcher -- "));
    }
}
