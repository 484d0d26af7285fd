//! The Debian package, built by `bash packaging/build-deb.sh` as a person
//! would: lintian finds nothing that is not overridden with a reason; its
//! contents, modes and dependencies; the systemd drop-in runs Plex's own
//! ExecStart behind the launcher and `systemd-analyze verify` accepts it on
//! Plex's unit; and in a real Debian root made by debootstrap, the package
//! installs with the drop-in inactive, hands its configuration to the plex
//! group when Plex's package arrives (dpkg trigger), `plex-pg-launcher
//! enable` arms the drop-in, an upgrade of plex-pg keeps it armed, an
//! upgrade of Plex leaves it alone, `disable` takes it out, and purging
//! (armed) leaves no file behind.
//!
//! The Debian root is debootstrap's `minbase` variant of the build
//! machine's own release, with systemd (for `systemd-analyze verify
//! --root`) and the package's dependencies. debootstrap takes a minute or two, so its result is kept as a
//! tar file in `/var/cache/plex-pg-tests/` (override:
//! `PLEX_PG_DEBIAN_ROOT_CACHE`) and unpacked afresh for each run.

#[path = "packaging_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use plex_pg_tests::{run, workspace_root, TempDir};
use support::{needed, require, require_root, script, step};

/// The drop-in as shipped: inactive.
const DROP_IN: &str = "usr/share/plex-pg/systemd/10-plex-pg.conf";
/// Where `plex-pg-launcher enable` arms it.
const ARMED: &str = "etc/systemd/system/plexmediaserver.service.d/10-plex-pg.conf";
const CONFIG: &str = "etc/plex-pg/config.toml";

/// The package, built once for this test binary.
fn deb() -> PathBuf {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        for (tool, package) in [
            ("dpkg-deb", "dpkg"),
            ("dpkg-shlibdeps", "dpkg-dev"),
            ("help2man", "help2man"),
            ("musl-gcc", "musl-tools"),
        ] {
            require(tool, package);
        }
        let out = step(
            "build the .deb (packaging/build-deb.sh)",
            &mut script("build-deb.sh", &[]),
            Duration::from_secs(45 * 60),
        );
        let path = PathBuf::from(out.stdout.lines().last().unwrap_or("").trim());
        let path = if path.is_absolute() {
            path
        } else {
            workspace_root().join(path)
        };
        assert!(
            path.is_file(),
            "build-deb.sh did not print the path of a .deb: {:?}",
            out.stdout
        );
        let size = std::fs::metadata(&path).unwrap().len();
        eprintln!(
            "packaging: {} is {:.1} MiB",
            path.display(),
            size as f64 / (1024.0 * 1024.0)
        );
        path
    })
    .clone()
}

fn ok(what: &str, cmd: &mut Command) -> String {
    step(what, cmd, Duration::from_secs(300)).stdout
}

#[test]
fn lintian_is_clean_and_every_override_says_why() {
    require("lintian", "lintian");
    let deb = deb();
    let start = std::time::Instant::now();
    let out = run(
        Command::new("lintian")
            .args([
                "--pedantic",
                "--display-level",
                ">=pedantic",
                "--fail-on",
                "error,warning,info,pedantic",
            ])
            .arg(&deb),
        Duration::from_secs(600),
    );
    eprintln!(
        "packaging step: lintian --pedantic: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let tags: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.len() > 2 && l.as_bytes()[1] == b':')
        .collect();
    assert!(
        tags.is_empty() && out.code == Some(0),
        "lintian found (exit {:?}):\n{}\n{}",
        out.code,
        out.stdout,
        out.stderr
    );

    let overrides =
        std::fs::read_to_string(workspace_root().join("packaging/debian/lintian-overrides"))
            .unwrap();
    let mut reason = false;
    for line in overrides.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            reason = true;
        } else if line.is_empty() {
            reason = false;
        } else {
            assert!(
                line.starts_with("plex-pg: "),
                "not an override of this package: {line}"
            );
            assert!(
                reason,
                "the override {line:?} has no comment above it saying why"
            );
        }
    }
}

/// `(mode, owner/group, path)` of every entry of the package.
fn contents(deb: &Path) -> Vec<(String, String, String)> {
    ok(
        "dpkg-deb --contents",
        Command::new("dpkg-deb").arg("--contents").arg(deb),
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (
            f[0].to_string(),
            f[1].to_string(),
            f[5..].join(" ").trim_start_matches("./").to_string(),
        )
    })
    .collect()
}

#[test]
fn contents_modes_dependencies_and_the_musl_shim() {
    let deb = deb();
    let entries = contents(&deb);
    let find = |path: &str| {
        entries
            .iter()
            .find(|(_, _, p)| p == path)
            .unwrap_or_else(|| panic!("{path} is not in the package: {entries:#?}"))
            .clone()
    };
    assert_eq!(find("usr/bin/plex-pg-launcher").0, "-rwxr-xr-x");
    assert_eq!(find("usr/bin/plex-pg-import").0, "-rwxr-xr-x");
    assert_eq!(find("usr/lib/plex-pg/libplex_pg_shim.so").0, "-rw-r--r--");
    assert_eq!(
        find(CONFIG),
        (
            "-rw-r-----".to_string(),
            "root/root".to_string(),
            CONFIG.to_string()
        ),
        "the configuration is not world-readable"
    );
    assert_eq!(find(DROP_IN).0, "-rw-r--r--");
    assert!(
        entries
            .iter()
            .all(|(_, _, p)| !p.contains("plexmediaserver.service.d")),
        "the package does not arm the drop-in itself: {entries:#?}"
    );
    find("usr/share/man/man1/plex-pg-import.1.gz");
    find("usr/share/man/man1/plex-pg-launcher.1.gz");
    // Every document of docs/ (install.md says they are all there).
    let docs = std::fs::read_dir(workspace_root().join("docs")).expect("read docs/");
    let mut names: Vec<String> = docs
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .collect();
    assert!(names.len() >= 10, "docs/ has its documents: {names:?}");
    names.extend([
        "README.md".into(),
        "copyright".into(),
        "changelog.gz".into(),
    ]);
    for doc in names {
        find(&format!("usr/share/doc/plex-pg/{doc}"));
    }
    assert!(
        entries.iter().all(|(_, owner, _)| owner == "root/root"),
        "every file belongs to root: {entries:#?}"
    );

    let conffiles = ok(
        "dpkg-deb --info conffiles",
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(conffiles.trim(), "/etc/plex-pg/config.toml");
    let depends = ok(
        "dpkg-deb --field Depends",
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg("Depends"),
    );
    assert!(
        depends.contains("libc6"),
        "the launcher's dependencies come from dpkg-shlibdeps: {depends}"
    );

    let dir = TempDir::new("deb-extract");
    ok(
        "dpkg-deb --extract",
        Command::new("dpkg-deb")
            .arg("--extract")
            .arg(&deb)
            .arg(dir.path()),
    );
    let shim = dir.path().join("usr/lib/plex-pg/libplex_pg_shim.so");
    assert_eq!(
        needed(&shim),
        ["libc.so"],
        "the packaged shim is the musl build"
    );
    let symbols = ok(
        "readelf --dyn-syms",
        Command::new("readelf").arg("--dyn-syms").arg(&shim),
    );
    for export in [
        "sqlite3_open_v2",
        "sqlite3_prepare_v2",
        "sqlite3_step",
        "sqlite3_exec",
    ] {
        assert!(
            symbols.contains(&format!(" {export}\n")),
            "the packaged shim exports {export}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CONFIG)).unwrap(),
        std::fs::read_to_string(workspace_root().join("packaging/config.toml")).unwrap()
    );
    let version = ok(
        "launcher --version",
        Command::new(dir.path().join("usr/bin/plex-pg-launcher")).arg("--version"),
    );
    let field = ok(
        "dpkg-deb --field Version",
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg("Version"),
    );
    assert_eq!(version.trim(), format!("plex-pg-launcher {}", field.trim()));
}

#[test]
fn the_man_page_covers_every_option() {
    let deb = deb();
    let dir = TempDir::new("deb-man");
    ok(
        "dpkg-deb --extract",
        Command::new("dpkg-deb")
            .arg("--extract")
            .arg(&deb)
            .arg(dir.path()),
    );
    let man = ok(
        "gzip -dc the man page",
        Command::new("gzip")
            .arg("-dc")
            .arg(dir.path().join("usr/share/man/man1/plex-pg-launcher.1.gz")),
    );
    let help = ok(
        "launcher --help",
        Command::new(dir.path().join("usr/bin/plex-pg-launcher")).arg("--help"),
    );
    let options: BTreeSet<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(options.len() >= 8, "--help lists the options: {help}");
    for option in options {
        // groff escapes the hyphens of options.
        assert!(
            man.contains(&option.replace('-', "\\-")),
            "the man page lacks {option}:\n{man}"
        );
    }
    assert!(
        man.contains("check"),
        "the man page names the check subcommand"
    );
}

/// The `ExecStart=` command of a unit file: continuation lines joined, the
/// last assignment that is not the empty reset.
fn exec_start(unit: &str) -> String {
    let joined = unit.replace("\\\n", "\u{1}");
    joined
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .rfind(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no ExecStart in:\n{unit}"))
        .replace('\u{1}', "\\\n")
}

#[test]
fn the_drop_in_runs_plex_own_command_behind_the_launcher() {
    let root = workspace_root();
    let unit =
        std::fs::read_to_string(root.join("packaging/test-fixtures/plexmediaserver.service"))
            .unwrap();
    let drop_in = std::fs::read_to_string(root.join("packaging/systemd/plex-pg.conf")).unwrap();
    assert!(
        drop_in.contains("\nExecStart=\n"),
        "the drop-in resets Plex's ExecStart before setting its own"
    );
    assert_eq!(
        exec_start(&drop_in),
        format!("/usr/bin/plex-pg-launcher -- {}", exec_start(&unit))
    );
    assert!(exec_start(&unit).ends_with("exec \"/usr/lib/plexmediaserver/Plex Media Server\"'"));
    for line in drop_in.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.starts_with("User=") && !line.starts_with("Group="),
            "Plex's user stays: {line}"
        );
        assert!(
            !line.contains("PLEX_PG_"),
            "settings belong in /etc/plex-pg/config.toml, not the drop-in: {line}"
        );
    }
}

/// The build machine's Debian release and where its packages come from.
fn release_and_mirror() -> (String, Option<String>) {
    let os = std::fs::read_to_string("/etc/os-release").expect("/etc/os-release");
    let codename = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_string())
        .filter(|c| !c.is_empty())
        .expect("this test needs a Debian build machine (no VERSION_CODENAME in /etc/os-release)");
    let mut mirror = None;
    let mut sources: Vec<PathBuf> = vec!["/etc/apt/sources.list".into()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        sources.extend(dir.flatten().map(|e| e.path()));
    }
    for path in sources {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "sources") {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::trim)
                };
                if field("Suites:").is_some_and(|s| s.split_whitespace().any(|s| s == codename))
                    && field("Types:").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"))
                {
                    mirror = mirror.or(field("URIs:")
                        .and_then(|u| u.split_whitespace().next())
                        .map(str::to_string));
                }
            }
        } else if path.extension().is_some_and(|e| e == "list") || path.ends_with("sources.list") {
            for line in text.lines() {
                let words: Vec<&str> = line
                    .split_whitespace()
                    .filter(|w| !w.starts_with('['))
                    .collect();
                if words.len() >= 3 && words[0] == "deb" && words[2] == codename {
                    mirror = mirror.or(Some(words[1].to_string()));
                }
            }
        }
    }
    (codename, mirror)
}

/// What the Debian root has beyond `minbase`: systemd (for
/// `systemd-analyze verify --root`) and the package's own dependencies
/// (`libsqlite3-0`, which `plex-pg-import` loads), so `dpkg -i` can
/// configure it as apt would.
const INCLUDE: &str = "systemd,libsqlite3-0";

/// A fresh Debian root: debootstrap's result, cached as a tar file.
fn debian_root() -> TempDir {
    require("debootstrap", "debootstrap");
    let (codename, mirror) = release_and_mirror();
    let cache = std::env::var_os("PLEX_PG_DEBIAN_ROOT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/plex-pg-tests".into());
    // The name lists what was included: a root cached before a package
    // joined the list is never reused.
    let tar = cache.join(format!(
        "{codename}-minbase-{}.tar",
        INCLUDE.replace(',', "-")
    ));
    if !tar.is_file() {
        std::fs::create_dir_all(&cache)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", cache.display()));
        let made = TempDir::new("debootstrap");
        let mut cmd = Command::new("debootstrap");
        cmd.args([
            "--variant=minbase",
            &format!("--include={INCLUDE}"),
            &codename,
        ])
        .arg(made.path());
        if let Some(m) = &mirror {
            cmd.arg(m);
        }
        step(
            &format!(
                "debootstrap {codename} (first run on this machine; cached in {})",
                tar.display()
            ),
            &mut cmd,
            Duration::from_secs(20 * 60),
        );
        let partial = tar.with_extension("tar.partial");
        step(
            "tar the Debian root",
            Command::new("tar")
                .arg("-C")
                .arg(made.path())
                .arg("-cf")
                .arg(&partial)
                .arg("."),
            Duration::from_secs(300),
        );
        std::fs::rename(&partial, &tar).unwrap();
    }
    let root = TempDir::new("debian-root");
    step(
        &format!("unpack the Debian root from {}", tar.display()),
        Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .arg("-xf")
            .arg(&tar),
        Duration::from_secs(300),
    );
    root
}

/// Run `args` inside the root with chroot.
fn chroot(root: &Path, args: &[&str]) -> plex_pg_tests::Run {
    let mut cmd = Command::new("chroot");
    cmd.arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut cmd, Duration::from_secs(300))
}

fn chroot_ok(root: &Path, args: &[&str]) -> String {
    let out = chroot(root, args);
    assert!(
        out.code == Some(0),
        "in the Debian root, {args:?} failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    out.stdout + &out.stderr
}

/// Every path under `root`, with a digest of each file under etc/.
fn snapshot(root: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mut digest = 0;
            if meta.is_file() && rel.starts_with("etc/") {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&path).unwrap().hash(&mut h);
                (meta.mode(), meta.uid(), meta.gid()).hash(&mut h);
                digest = h.finish();
            }
            out.insert(rel, digest);
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// dpkg's own records and logs change with every operation.
fn dpkg_bookkeeping(path: &str) -> bool {
    path.starts_with("var/lib/dpkg/")
        || path == "var/log/dpkg.log"
        || path == "var/log/alternatives.log"
}

/// What differs between two snapshots, except dpkg's bookkeeping and `allowed`.
fn differences(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    allowed: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (path, digest) in after {
        match before.get(path) {
            None => diff.push(format!("added {path}")),
            Some(d) if d != digest => diff.push(format!("changed {path}")),
            _ => {}
        }
    }
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        diff.push(format!("removed {path}"));
    }
    diff.retain(|d| {
        let path = d.split_once(' ').unwrap().1;
        !dpkg_bookkeeping(path) && !allowed(path)
    });
    diff
}

/// Where `path` really is under `root`, relative to it: `lib` is a symbolic
/// link to `usr/lib` in a merged-/usr root.
fn in_root(root: &Path, path: &str) -> String {
    let full = root.join(path);
    let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
        return path.to_string();
    };
    let Ok(parent) = parent.canonicalize() else {
        return path.to_string();
    };
    let real = parent.join(name);
    real.strip_prefix(root.canonicalize().unwrap())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

/// The stand-in for Plex's package, at `version`.
fn plex_package(dir: &Path, version: &str) -> PathBuf {
    let fixtures = workspace_root().join("packaging/test-fixtures");
    let tree = dir.join(format!("plexmediaserver-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("lib/systemd/system")).unwrap();
    std::fs::create_dir_all(tree.join("usr/lib/plexmediaserver")).unwrap();
    let control = std::fs::read_to_string(fixtures.join("plexmediaserver/control.in"))
        .unwrap()
        .replace("@VERSION@", version);
    std::fs::write(tree.join("DEBIAN/control"), control).unwrap();
    std::fs::copy(
        fixtures.join("plexmediaserver/postinst"),
        tree.join("DEBIAN/postinst"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("plexmediaserver.service"),
        tree.join("lib/systemd/system/plexmediaserver.service"),
    )
    .unwrap();
    std::fs::write(
        tree.join("usr/lib/plexmediaserver/Plex Media Server"),
        format!("#!/bin/sh\necho 'Plex stand-in {version}'\n"),
    )
    .unwrap();
    for (path, mode) in [
        ("DEBIAN/postinst", 0o755),
        ("usr/lib/plexmediaserver/Plex Media Server", 0o755),
    ] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tree.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let deb = dir.join(format!("plexmediaserver_{version}_all.deb"));
    ok(
        "build the Plex stand-in package",
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&deb),
    );
    deb
}

fn group_id(root: &Path, name: &str) -> Option<u32> {
    std::fs::read_to_string(root.join("etc/group"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:x:"))
                .and_then(|r| r.split(':').next())
                .and_then(|g| g.parse().ok())
        })
}

#[test]
fn installs_into_and_purges_from_a_debian_root() {
    require_root("debootstrap and chroot");
    require("chroot", "coreutils");
    require("systemd-analyze", "systemd");
    let deb = deb();
    let root = debian_root();
    let root = root.path();
    let inbox = root.join("tmp/plex-pg-test");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::copy(&deb, inbox.join("plex-pg.deb")).unwrap();
    let pristine = snapshot(root);

    // 1. Without Plex: installs, says what to do, and purges to nothing.
    let said = chroot_ok(root, &["dpkg", "-i", "/tmp/plex-pg-test/plex-pg.deb"]);
    for words in [
        "Plex was not restarted",
        "plex-pg-launcher check",
        "systemctl restart plexmediaserver",
        "there is no plex group yet",
        "plex-pg-launcher import --from",
        "plex-pg-launcher enable",
    ] {
        assert!(
            said.contains(words),
            "the post-install message says {words:?}:\n{said}"
        );
    }
    assert!(
        !root.join(ARMED).exists()
            && !root
                .join("etc/systemd/system/plexmediaserver.service.d")
                .exists(),
        "installing does not put the launcher in front of Plex"
    );
    let version = chroot_ok(root, &["plex-pg-launcher", "--version"]);
    assert!(
        version.starts_with("plex-pg-launcher "),
        "the launcher runs with the root's own libraries: {version}"
    );
    let meta = std::fs::metadata(root.join(CONFIG)).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o640, 0, 0),
        "no plex group yet: root only"
    );
    chroot_ok(root, &["dpkg", "-r", "plex-pg"]);
    assert!(
        root.join(CONFIG).is_file(),
        "remove keeps the configuration (a conffile)"
    );
    assert!(
        !root.join(DROP_IN).exists()
            && !root.join(ARMED).exists()
            && !root.join("usr/bin/plex-pg-launcher").exists()
    );
    chroot_ok(root, &["dpkg", "-P", "plex-pg"]);
    let left = differences(&pristine, &snapshot(root), &|_| false);
    assert!(
        left.is_empty(),
        "install then purge changed the root: {left:#?}"
    );

    // 2. With Plex's package arriving after plex-pg: the trigger gives the
    //    configuration to the plex group; systemd accepts Plex's unit with
    //    the drop-in; upgrading Plex keeps it; purging plex-pg leaves only
    //    what Plex's package made.
    chroot_ok(root, &["dpkg", "-i", "/tmp/plex-pg-test/plex-pg.deb"]);
    let packages = TempDir::new("plex-stand-in");
    std::fs::copy(
        plex_package(packages.path(), "1.40.0"),
        inbox.join("plex-1.deb"),
    )
    .unwrap();
    std::fs::copy(
        plex_package(packages.path(), "1.41.0"),
        inbox.join("plex-2.deb"),
    )
    .unwrap();
    chroot_ok(root, &["dpkg", "-i", "/tmp/plex-pg-test/plex-1.deb"]);
    let plex_gid = group_id(root, "plex").expect("the Plex stand-in created the plex group");
    let meta = std::fs::metadata(root.join(CONFIG)).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o640, 0, plex_gid),
        "the trigger gave the configuration to the plex group"
    );
    let overrides = chroot_ok(
        root,
        &["dpkg-statoverride", "--list", "/etc/plex-pg/config.toml"],
    );
    assert_eq!(overrides.trim(), "root plex 640 /etc/plex-pg/config.toml");

    // 3. The switch is the admin's: enable arms the drop-in (the text the
    //    package ships), an upgrade of plex-pg keeps it armed, disable
    //    takes it out.
    assert!(!root.join(ARMED).exists());
    let enabled = chroot_ok(root, &["plex-pg-launcher", "enable"]);
    assert!(
        enabled.contains("systemctl restart plexmediaserver"),
        "{enabled}"
    );
    let shipped = std::fs::read(root.join(DROP_IN)).unwrap();
    assert_eq!(std::fs::read(root.join(ARMED)).unwrap(), shipped);
    let meta = std::fs::symlink_metadata(root.join(ARMED)).unwrap();
    assert!(meta.is_file());
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o644, 0));
    let upgraded = chroot_ok(root, &["dpkg", "-i", "/tmp/plex-pg-test/plex-pg.deb"]);
    assert!(
        upgraded.contains("stays in front of Plex"),
        "the upgrade says it stays armed:\n{upgraded}"
    );
    assert_eq!(
        std::fs::read(root.join(ARMED)).unwrap(),
        shipped,
        "an upgrade of an armed plex-pg keeps it armed"
    );
    let checked = chroot(root, &["plex-pg-launcher", "check"]);
    assert!(
        checked.stdout.contains("switch: drop-in /etc/systemd/system/plexmediaserver.service.d/10-plex-pg.conf installed"),
        "check reports the switch:\n{}",
        checked.stdout
    );

    let verify = run(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg("plexmediaserver.service"),
        Duration::from_secs(120),
    );
    assert!(
        verify.code == Some(0)
            && verify.stdout.trim().is_empty()
            && verify.stderr.trim().is_empty(),
        "systemd-analyze verify of Plex's unit with the drop-in:\n{}\n{}",
        verify.stdout,
        verify.stderr
    );

    let drop_in = std::fs::read(root.join(ARMED)).unwrap();
    chroot_ok(root, &["dpkg", "-i", "/tmp/plex-pg-test/plex-2.deb"]);
    assert_eq!(
        std::fs::read(root.join(ARMED)).unwrap(),
        drop_in,
        "upgrading Plex leaves the drop-in as it was"
    );
    assert_eq!(
        std::fs::metadata(root.join(CONFIG)).unwrap().gid(),
        plex_gid
    );

    let disabled = chroot_ok(root, &["plex-pg-launcher", "disable"]);
    assert!(disabled.contains("removed"), "{disabled}");
    assert!(
        !root.join(ARMED).exists()
            && !root
                .join("etc/systemd/system/plexmediaserver.service.d")
                .exists(),
        "disable takes the drop-in out"
    );
    let checked = chroot(root, &["plex-pg-launcher", "check"]);
    assert!(
        checked.stdout.contains("switch: drop-in not installed"),
        "check reports the switch:\n{}",
        checked.stdout
    );
    // Armed again: purging takes it out (prerm runs disable).
    chroot_ok(root, &["plex-pg-launcher", "enable"]);

    // What systemd (LogsDirectory) and the launcher would have written.
    std::fs::create_dir_all(root.join("var/log/plex-pg")).unwrap();
    std::fs::write(
        root.join("var/log/plex-pg/events.jsonl"),
        "{\"event\":\"start\"}\n",
    )
    .unwrap();
    chroot_ok(root, &["dpkg", "-P", "plex-pg"]);
    for gone in [
        "etc/plex-pg",
        "usr/lib/plex-pg",
        "var/log/plex-pg",
        "usr/bin/plex-pg-launcher",
        "lib/systemd/system/plexmediaserver.service.d",
        "etc/systemd/system/plexmediaserver.service.d",
        "usr/share/plex-pg",
        "usr/share/doc/plex-pg",
    ] {
        assert!(!root.join(gone).exists(), "purge left {gone}");
    }
    let overrides = chroot(
        root,
        &["dpkg-statoverride", "--list", "/etc/plex-pg/config.toml"],
    );
    assert_ne!(
        overrides.code,
        Some(0),
        "purge removed the statoverride: {}",
        overrides.stdout
    );

    let plex_files: BTreeSet<String> = chroot_ok(root, &["dpkg", "-L", "plexmediaserver"])
        .lines()
        .map(|l| in_root(root, l.trim_start_matches('/')))
        .collect();
    let is_plex_doing = |path: &str| {
        plex_files.contains(path)
            || path.starts_with("tmp/plex-pg-test")
            // The stand-in's postinst added the plex user and group, with
            // the backups shadow's tools keep.
            || ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"].iter().any(|f| path.trim_end_matches('-') == *f)
    };
    let left = differences(&pristine, &snapshot(root), &is_plex_doing);
    assert!(
        left.is_empty(),
        "purging plex-pg left something that Plex's package did not make: {left:#?}"
    );
}
