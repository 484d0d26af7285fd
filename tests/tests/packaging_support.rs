//! Shared by the `packaging_*` tests (included with `#[path]`): running the
//! packaging scripts with a bounded wait, timing each step, and saying what
//! is missing when a tool is not installed. Compiled on its own too, as a
//! test binary with no tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plex_pg_tests::{run, workspace_root, Run};

/// Run `cmd` (bounded by `limit`), print how long the step took on
/// standard error (cargo shows it with `--nocapture`, and in a failure),
/// and panic with its output unless it succeeded.
pub fn step(what: &str, cmd: &mut Command, limit: Duration) -> Run {
    let start = Instant::now();
    let out = run(cmd, limit);
    let took = start.elapsed();
    eprintln!("packaging step: {what}: {:.1} s", took.as_secs_f64());
    assert!(
        !out.timed_out,
        "{what} did not finish within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.code == Some(0),
        "{what} failed (exit {:?})\n--- stdout\n{}\n--- stderr\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    out
}

/// `bash packaging/<script> <args>` from the workspace root.
pub fn script(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.current_dir(workspace_root())
        .arg(Path::new("packaging").join(script))
        .args(args);
    cmd
}

/// Panic, saying how to get it, unless `tool` is on PATH.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is missing: install Debian's {package} (bash packaging/install-deps.sh does, as root); this test cannot run without it"
    );
}

/// Panic unless running as root, saying why it is needed.
pub fn require_root(why: &str) {
    assert!(
        nix_is_root(),
        "this test must run as root ({why}); CI runs as root, or run: sudo bash tests/run.sh"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The architecture as `uname -m` says it, e.g. `x86_64`.
pub fn arch() -> String {
    let out = run(Command::new("uname").arg("-m"), Duration::from_secs(10));
    out.assert_ok();
    out.stdout.trim().to_string()
}

/// The target directory, as the scripts compute it.
pub fn target_dir() -> PathBuf {
    plex_pg_tests::release_dir().parent().unwrap().to_path_buf()
}

/// The musl shim, built once per test binary by packaging/build-musl.sh
/// (a no-op when cargo finds it up to date).
pub fn musl_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        require("musl-gcc", "musl-tools");
        step(
            "build the musl shim (packaging/build-musl.sh)",
            &mut script("build-musl.sh", &[]),
            Duration::from_secs(40 * 60),
        );
        let shim = target_dir().join(format!(
            "{}-unknown-linux-musl/release/libplex_pg_shim.so",
            arch()
        ));
        assert!(
            shim.is_file(),
            "build-musl.sh succeeded but {} is missing",
            shim.display()
        );
        shim
    })
    .clone()
}

/// The shared libraries an ELF file needs (`readelf -d`, NEEDED entries).
pub fn needed(path: &Path) -> Vec<String> {
    let out = run(
        Command::new("readelf").arg("-d").arg(path),
        Duration::from_secs(30),
    );
    out.assert_ok();
    out.stdout
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split('[')
                .nth(1)
                .and_then(|r| r.split(']').next())
                .map(str::to_string)
        })
        .collect()
}
