//! Running as Plex's user (`--user`): the whole launcher drops to that user
//! before it starts anything.
//!
//! Why the whole launcher and not only the child: without CAP_SYS_PTRACE
//! (Docker drops it by default) a process may trace, and read
//! `/proc/<pid>/fd` of, only processes of its own uid. A tracer running as
//! Plex's uid needs no capability at all. The launcher keeps nothing that
//! needs root once Plex runs: the event log is opened before the drop.
//!
//! Order: supplementary groups, then gid, then uid (after setuid the others
//! are no longer allowed), then `PR_SET_DUMPABLE` back to 1: changing uid
//! makes a process non-dumpable, its children inherit that until they exec,
//! and a non-dumpable process cannot be traced by an unprivileged tracer.

use std::ffi::CString;

use nix::unistd::{self, Gid, Uid, User};

/// The user to run as, looked up.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// Look `name` up (a name, or a numeric uid).
pub fn lookup(name: &str) -> Result<Target, String> {
    let found = match name.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)),
        Err(_) => User::from_name(name),
    };
    match found {
        Ok(Some(u)) => Ok(Target { name: u.name, uid: u.uid, gid: u.gid }),
        Ok(None) => Err(format!("user {name:?} does not exist on this system (create it, or change launcher.user / --user)")),
        Err(e) => Err(format!("cannot look up user {name:?}: {e}")),
    }
}

/// Become `target` for good. A no-op when we already are that user.
pub fn become_user(target: &Target) -> Result<(), String> {
    let euid = unistd::geteuid();
    if euid == target.uid && unistd::getegid() == target.gid {
        return Ok(());
    }
    if !euid.is_root() {
        return Err(format!(
            "running Plex as {:?} needs the launcher to start as root (it runs as uid {euid}); start it as root or drop --user",
            target.name
        ));
    }
    let cname = CString::new(target.name.as_str())
        .map_err(|_| "user name contains a NUL byte".to_string())?;
    unistd::initgroups(&cname, target.gid)
        .map_err(|e| format!("setting the groups of {:?}: {e}", target.name))?;
    unistd::setgid(target.gid).map_err(|e| format!("setgid({}): {e}", target.gid))?;
    unistd::setuid(target.uid).map_err(|e| format!("setuid({}): {e}", target.uid))?;
    // SAFETY: PR_SET_DUMPABLE takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "prctl(PR_SET_DUMPABLE): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
