//! How a measured program is started: the setups every supervision
//! benchmark compares (no shim; the shim preloaded without the launcher,
//! the baseline; the launcher in each mode and watcher), and the command
//! line for each, so every benchmark starts them the same way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a program is started.
pub struct Setup {
    pub name: &'static str,
    pub shim: bool,
    /// The launcher's options, or None for no launcher.
    pub launcher: Option<&'static [&'static str]>,
}

pub const SETUPS: [Setup; 6] = [
    Setup {
        name: "no shim",
        shim: false,
        launcher: None,
    },
    Setup {
        name: "no launcher",
        shim: true,
        launcher: None,
    },
    Setup {
        name: "launcher off",
        shim: true,
        launcher: Some(&["--mode", "off"]),
    },
    Setup {
        name: "verify ptrace",
        shim: true,
        launcher: Some(&["--mode", "verify", "--watcher", "ptrace"]),
    },
    Setup {
        name: "verify procfs",
        shim: true,
        launcher: Some(&["--mode", "verify", "--watcher", "procfs"]),
    },
    Setup {
        name: "enforce",
        shim: true,
        launcher: Some(&["--mode", "enforce", "--watcher", "ptrace"]),
    },
];

/// What the launcher's variants are compared with: the shim, no launcher.
pub const BASELINE: usize = 1;
/// What the shim's preload is compared with.
pub const NO_SHIM: usize = 0;

/// The artifacts and the environment a setup's command needs.
pub struct Launch {
    pub shim: PathBuf,
    pub launcher: PathBuf,
    /// `PLEX_PG_*` (and PostgreSQL's) for the shim and the launcher.
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The release artifacts of this workspace, with `env`.
    pub fn new(env: Vec<(String, String)>) -> Launch {
        Launch {
            shim: plex_pg_tests::shim(),
            launcher: plex_pg_tests::artifact("plex-pg-launcher"),
            env,
        }
    }

    /// `program args` started as `setup` says; the launcher's events go to
    /// `events`.
    pub fn command(
        &self,
        setup: &Setup,
        program: &Path,
        args: &[OsString],
        events: &Path,
    ) -> Command {
        let mut cmd = match setup.launcher {
            None => Command::new(program),
            Some(options) => {
                let mut c = Command::new(&self.launcher);
                c.arg("--shim")
                    .arg(&self.shim)
                    .args(options)
                    .arg("--events")
                    .arg(events);
                c.args(["--grace-period-ms", "2000", "--"]).arg(program);
                c
            }
        };
        cmd.args(args)
            .env_remove("LD_PRELOAD")
            .envs(self.env.iter().cloned());
        if setup.shim && setup.launcher.is_none() {
            cmd.env("LD_PRELOAD", &self.shim);
        }
        cmd
    }
}

/// The launcher's closing summary event in `events`, if it wrote one.
pub fn launcher_summary(events: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or(serde_json::Value::Null)
}
