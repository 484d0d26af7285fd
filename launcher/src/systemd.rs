//! Asking systemd, the one way every part of the launcher does it.
//!
//! The launcher runs as root, often with an environment and a `PATH` it did
//! not choose. So `systemctl` is run only:
//!
//! - by absolute path (`/usr/bin/systemctl`, else `/bin/systemctl`), and
//!   only if the file and every directory above it are root's and writable
//!   by nobody else ([`trusted`]): a `systemctl` planted earlier in `PATH`,
//!   or in a directory Plex's user can write, is never run;
//! - with an empty environment and standard input from `/dev/null`;
//! - with a time limit, after which it is killed: a hung systemd never hangs
//!   a start, a stop or a `check`.
//!
//! Users: [`crate::stop`] (the unit's `TimeoutStopSec`), [`crate::check`]
//! (the unit's `User=`), [`crate::switch`] (`daemon-reload`, the unit's
//! `ExecStart` and `Environment`).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `systemctl` is looked for, in order.
const SYSTEMCTL: [&str; 2] = ["/usr/bin/systemctl", "/bin/systemctl"];

/// How long a `systemctl show` may take.
pub const SHOW_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether systemd is the running init (its runtime directory exists).
pub fn running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// What one run of `systemctl` gave.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run `systemctl args…` by the module's rules, killed after `limit`.
pub fn systemctl(args: &[&str], limit: Duration) -> Result<Output, String> {
    let program = SYSTEMCTL
        .iter()
        .map(Path::new)
        .find(|p| trusted(p))
        .ok_or_else(|| {
            format!(
                "no systemctl owned by root and writable only by root at {}",
                SYSTEMCTL.join(" or ")
            )
        })?;
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    // Read both pipes while it runs, so a long answer cannot block it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "systemctl {} did not answer within {} s: killed",
                    args.join(" "),
                    limit.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for systemctl: {e}")),
        }
    };
    Ok(Output {
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// One property of `unit` (`systemctl show --property=P --value`), trimmed;
/// `None` when systemd cannot say (not running, unknown unit, no answer).
pub fn show(unit: &str, property: &str) -> Option<String> {
    if !running() {
        return None;
    }
    let prop = format!("--property={property}");
    let out = systemctl(&["show", &prop, "--value", "--", unit], SHOW_TIMEOUT).ok()?;
    out.success.then(|| out.stdout.trim().to_string())
}

/// A file root owns and only root may change, in directories of the same.
pub fn trusted(path: &Path) -> bool {
    let mut p = Some(path);
    while let Some(at) = p {
        match std::fs::metadata(at) {
            Ok(m) if m.uid() == 0 && m.mode() & 0o022 == 0 => {}
            _ => return false,
        }
        p = at.parent();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_others_can_write_or_under_such_a_directory_is_not_trusted() {
        let dir = std::env::temp_dir().join(format!("plex-pg-systemd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("systemctl");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        // The temporary directory is world-writable (sticky): never trusted.
        assert!(!trusted(&file));
        assert!(!trusted(Path::new("/nonexistent/systemctl")));
        // Root's own /usr/bin is (when run as root, as CI does; the owner
        // is root whoever runs the test).
        if Path::new("/usr/bin").exists() {
            assert!(trusted(Path::new("/usr/bin")));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn systemctl_runs_with_an_empty_environment_and_its_output_is_read() {
        if !SYSTEMCTL.iter().any(|p| trusted(Path::new(p))) {
            // No trusted systemctl here: it is refused, with the reason.
            let e = systemctl(&["--version"], SHOW_TIMEOUT).unwrap_err();
            assert!(e.contains("owned by root"), "{e}");
            return;
        }
        let out = systemctl(&["--version"], Duration::from_secs(10)).unwrap();
        assert!(out.success && out.stdout.starts_with("systemd "), "{out:?}");
    }
}
