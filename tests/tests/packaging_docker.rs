//! The Docker integration, without a Docker engine: the script that puts
//! the launcher in front of Plex inside each image's s6 service
//! (packaging/docker/insert-launcher.sh) run on faithful copies of both
//! images' service scripts; the Dockerfile copies everything the build
//! needs; docker-compose.yml is valid YAML wired to the Dockerfile's
//! arguments. (The launcher's behaviour as a container's PID 1 is tested in
//! packaging_pid1.rs.)

#[path = "packaging_support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use plex_pg_tests::{run, workspace_root, Run, TempDir};
use support::require;

const LAUNCHER: &str = "/usr/bin/plex-pg-launcher";

fn insert(script: &Path) -> Run {
    let mut cmd = Command::new("sh");
    cmd.arg(workspace_root().join("packaging/docker/insert-launcher.sh"))
        .arg(script);
    run(&mut cmd, Duration::from_secs(30))
}

/// Copy a fixture run script into `dir`, rewrite it, return its lines.
fn rewritten(dir: &TempDir, fixture: &str) -> String {
    let script = dir.path().join(fixture);
    std::fs::copy(
        workspace_root()
            .join("packaging/test-fixtures")
            .join(fixture),
        &script,
    )
    .unwrap();
    insert(&script).assert_ok();
    let once = std::fs::read_to_string(&script).unwrap();
    let again = insert(&script);
    again.assert_ok();
    assert!(
        again.stderr.contains("already starts Plex through"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&script).unwrap(),
        once,
        "a second run changes nothing"
    );
    let syntax = run(
        Command::new("bash").arg("-n").arg(&script),
        Duration::from_secs(30),
    );
    assert!(
        syntax.code == Some(0),
        "the rewritten script is still valid shell: {}",
        syntax.stderr
    );
    once
}

#[test]
fn the_launcher_goes_in_front_of_plex_in_both_images_s6_services() {
    let dir = TempDir::new("docker-run");
    let official = rewritten(&dir, "pms-docker-run");
    assert!(
        official.contains(&format!(
            "\nexec s6-setuidgid plex {LAUNCHER} -- /usr/lib/plexmediaserver/Plex\\ Media\\ Server\n"
        )),
        "plexinc/pms-docker: the launcher runs as plex:\n{official}"
    );
    let linuxserver = rewritten(&dir, "linuxserver-svc-plex-run");
    assert!(
        linuxserver.contains(&format!("            s6-setuidgid abc {LAUNCHER} -- \"/usr/lib/plexmediaserver/Plex Media Server\"\n")),
        "linuxserver/plex, root branch: the launcher runs as abc under s6-notifyoncheck:\n{linuxserver}"
    );
    assert!(
        linuxserver.contains(&format!("\n            {LAUNCHER} -- \"/usr/lib/plexmediaserver/Plex Media Server\"\n")),
        "linuxserver/plex, non-root branch: the launcher runs as the container's user:\n{linuxserver}"
    );
    let older = rewritten(&dir, "linuxserver-svc-plex-run-root-only");
    for (text, lines) in [(&official, 1), (&linuxserver, 2), (&older, 1)] {
        assert_eq!(text.matches(LAUNCHER).count(), lines, "{text}");
    }
}

fn executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Stand-ins for s6's programs and the launcher in `dir`: each records
/// what it was asked to do in `dir/calls` and goes on as the real one
/// would (s6-notifyoncheck and s6-setuidgid exec the rest of their line).
fn stubs(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.join("calls");
    let write = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
        executable(&path);
    };
    write(
        "s6-notifyoncheck",
        "while [ $# -gt 0 ]; do case \"$1\" in -d) shift;; -n|-w|-c|-t|-s) shift 2;; *) break;; esac; done\nexec \"$@\"",
    );
    write(
        "s6-setuidgid",
        &format!(
            "echo \"user $1\" >> '{}'\nshift\nexec \"$@\"",
            calls.display()
        ),
    );
    write(
        "launcher",
        &format!(
            "for a in \"$@\"; do echo \"arg $a\" >> '{}'; done",
            calls.display()
        ),
    );
    bin
}

#[test]
fn the_rewritten_scripts_start_plex_through_the_launcher_in_the_root_and_the_non_root_branch() {
    for (fixture, user) in [
        ("pms-docker-run", Some("plex")),
        ("linuxserver-svc-plex-run", Some("abc")),
        ("linuxserver-svc-plex-run-root-only", Some("abc")),
    ] {
        for non_root in [false, true] {
            let dir = TempDir::new("docker-run-exec");
            let bin = stubs(dir.path());
            let script = dir.path().join("run");
            std::fs::copy(
                workspace_root()
                    .join("packaging/test-fixtures")
                    .join(fixture),
                &script,
            )
            .unwrap();
            let mut insert_cmd = Command::new("sh");
            insert_cmd
                .arg(workspace_root().join("packaging/docker/insert-launcher.sh"))
                .arg(&script)
                .env("INSERT_LAUNCHER_PATH", bin.join("launcher"));
            run(&mut insert_cmd, Duration::from_secs(30)).assert_ok();
            let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
            let mut cmd = Command::new("bash");
            cmd.arg(&script)
                .env("PATH", path)
                .env("PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR", dir.path());
            if non_root {
                cmd.env("LSIO_NON_ROOT_USER", "1");
            } else {
                cmd.env_remove("LSIO_NON_ROOT_USER");
            }
            run(&mut cmd, Duration::from_secs(30)).assert_ok();
            let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap_or_default();
            // Only linuxserver's two-branch script has a non-root branch.
            let expected_user = if non_root && fixture == "linuxserver-svc-plex-run" {
                None
            } else {
                user
            };
            let mut expected = String::new();
            if let Some(u) = expected_user {
                expected.push_str(&format!("user {u}\n"));
            }
            expected.push_str("arg --\narg /usr/lib/plexmediaserver/Plex Media Server\n");
            assert_eq!(
                calls, expected,
                "{fixture}, LSIO_NON_ROOT_USER {}: Plex must start through the launcher, as its user",
                if non_root { "set" } else { "unset" }
            );
        }
    }
}

#[test]
fn an_unexpected_service_script_fails_the_image_build_with_a_reason() {
    let dir = TempDir::new("docker-run-bad");
    let sudo = dir.path().join("sudo");
    std::fs::write(
        &sudo,
        "#!/bin/sh\nexec sudo -u plex \"/usr/lib/plexmediaserver/Plex Media Server\"\n",
    )
    .unwrap();
    let three = dir.path().join("three");
    std::fs::write(
        &three,
        "#!/bin/sh\nif x; then exec s6-setuidgid plex \"/usr/lib/plexmediaserver/Plex Media Server\"\nelse exec s6-setuidgid abc \"/usr/lib/plexmediaserver/Plex Media Server\"; fi\nexec s6-setuidgid abc \"/usr/lib/plexmediaserver/Plex Media Server\"\n",
    )
    .unwrap();
    let none = dir.path().join("none");
    std::fs::write(
        &none,
        "#!/bin/sh\necho \"Starting Plex Media Server.\"\nexec /opt/plex/start\n",
    )
    .unwrap();
    for (script, found) in [
        (&sudo, "0 have a known shape"),
        (&three, "found 3"),
        (&none, "found 0"),
    ] {
        let before = std::fs::read_to_string(script).unwrap();
        let out = insert(script);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr.contains(found) && out.stderr.contains("by hand"),
            "{}",
            out.stderr
        );
        assert_eq!(
            std::fs::read_to_string(script).unwrap(),
            before,
            "a failed run leaves the script alone"
        );
    }
    let missing = insert(&dir.path().join("no-such-run"));
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
}

const MOD_SERVICE: &str = "etc/s6-overlay/s6-rc.d/init-mod-plex-pg-launcher";

/// The mod's tree, as `build.sh --tree` makes it from a staged install
/// (stand-in binaries: the mod's layout and scripts are what is tested).
fn mod_tree(dir: &TempDir) -> std::path::PathBuf {
    let stage = dir.path().join("stage");
    std::fs::create_dir_all(stage.join("usr/bin")).unwrap();
    std::fs::create_dir_all(stage.join("usr/lib/plex-pg")).unwrap();
    std::fs::write(stage.join("usr/bin/plex-pg-launcher"), "#!/bin/sh\n").unwrap();
    executable(&stage.join("usr/bin/plex-pg-launcher"));
    std::fs::write(stage.join("usr/lib/plex-pg/libplex_pg_shim.so"), "").unwrap();
    let out = dir.path().join("mod");
    let built = run(
        Command::new("bash")
            .arg(workspace_root().join("packaging/docker-mod/build.sh"))
            .arg("--tree")
            .arg(&stage)
            .arg(&out),
        Duration::from_secs(30),
    );
    built.assert_ok();
    out
}

#[test]
fn the_linuxserver_mod_is_an_s6_oneshot_that_runs_before_plex() {
    let dir = TempDir::new("docker-mod");
    let tree = mod_tree(&dir);
    for file in [
        "usr/bin/plex-pg-launcher",
        "usr/lib/plex-pg/libplex_pg_shim.so",
        "usr/lib/plex-pg/insert-launcher.sh",
        "etc/s6-overlay/s6-rc.d/init-mod-plex-pg-launcher/dependencies.d/init-mods",
        "etc/s6-overlay/s6-rc.d/init-mods-end/dependencies.d/init-mod-plex-pg-launcher",
        "etc/s6-overlay/s6-rc.d/user/contents.d/init-mod-plex-pg-launcher",
    ] {
        assert!(tree.join(file).is_file(), "the mod has no {file}");
    }
    let service = tree.join(MOD_SERVICE);
    assert_eq!(
        std::fs::read_to_string(service.join("type")).unwrap(),
        "oneshot\n"
    );
    let up = std::fs::read_to_string(service.join("up")).unwrap();
    assert_eq!(
        up.trim(),
        format!("/{MOD_SERVICE}/run"),
        "up runs the mod's script"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(service.join("run"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o111, 0o111, "the oneshot's script is executable");
    let dockerfile =
        std::fs::read_to_string(workspace_root().join("packaging/docker/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("\nFROM scratch AS mod\n")
            && dockerfile.contains("\nCOPY packaging/docker-mod/root/ /\n"),
        "the Dockerfile's mod stage"
    );
}

#[test]
fn the_mods_oneshot_rewrites_plexs_service_on_both_branches_and_refuses_an_unknown_shape() {
    let dir = TempDir::new("docker-mod-run");
    let tree = mod_tree(&dir);
    let svc = tree.join("etc/s6-overlay/s6-rc.d/svc-plex");
    std::fs::create_dir_all(&svc).unwrap();
    let oneshot = |root: &Path| {
        run(
            Command::new("bash")
                .arg(root.join(MOD_SERVICE).join("run"))
                .env("MOD_TEST_ROOT", root),
            Duration::from_secs(30),
        )
    };
    std::fs::copy(
        workspace_root().join("packaging/test-fixtures/linuxserver-svc-plex-run"),
        svc.join("run"),
    )
    .unwrap();
    // Every container start runs it again: the second changes nothing.
    for _ in 0..2 {
        let out = oneshot(&tree);
        out.assert_ok();
        assert!(
            out.stdout.contains("Plex starts through plex-pg-launcher"),
            "{out:?}"
        );
        let text = std::fs::read_to_string(svc.join("run")).unwrap();
        assert_eq!(
            text.matches(&format!("{LAUNCHER} -- \"/usr/lib/plexmediaserver"))
                .count(),
            2,
            "{text}"
        );
    }
    let unknown = "#!/bin/sh\nexec sudo -u abc \"/usr/lib/plexmediaserver/Plex Media Server\"\n";
    std::fs::write(svc.join("run"), unknown).unwrap();
    let out = oneshot(&tree);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("Plex is NOT started"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(svc.join("run")).unwrap(), unknown);
}

#[test]
fn the_dockerfile_copies_every_workspace_member_and_names_no_registry_host() {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("packaging/docker/Dockerfile")).unwrap();
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    let mut needed: Vec<String> = members
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    needed.extend(["docs", "packaging"].map(String::from));
    for dir in needed {
        assert!(
            dockerfile.contains(&format!("\nCOPY {dir} {dir}\n")),
            "the Dockerfile's build stage does not copy {dir}/"
        );
    }
    assert!(dockerfile.contains("COPY Cargo.toml Cargo.lock README.md ./"));
    assert!(
        dockerfile.contains("ARG S6_RUN=/etc/services.d/plex/run"),
        "the official image's s6 v2 service is the default"
    );
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM ") || l.starts_with("ARG PLEX_IMAGE="))
    {
        let image = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("PLEX_IMAGE=");
        let first = image.split('/').next().unwrap();
        assert!(
            !(image.contains('/') && first.contains('.')),
            "{line}: images are named without a registry host"
        );
    }
}

#[test]
fn docker_compose_is_valid_and_wired_to_the_dockerfile() {
    require("python3", "python3");
    let script = r#"
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
print(json.dumps(doc))
"#;
    let out = run(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(workspace_root().join("packaging/docker/docker-compose.yml")),
        Duration::from_secs(30),
    );
    assert!(out.code == Some(0), "docker-compose.yml does not parse (python3-yaml: bash packaging/install-deps.sh installs it):\n{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let services = &doc["services"];
    for name in ["postgres", "plex", "plex-linuxserver"] {
        assert!(
            services[name].is_object(),
            "service {name} missing: {services:#}"
        );
    }
    for plex in ["plex", "plex-linuxserver"] {
        let s = &services[plex];
        assert_eq!(s["build"]["dockerfile"], "packaging/docker/Dockerfile");
        assert_eq!(s["depends_on"]["postgres"]["condition"], "service_healthy");
        assert_eq!(
            s["environment"]["PLEX_PG_HOST"], "postgres",
            "Plex reaches the postgres service by name"
        );
        assert_eq!(s["environment"]["PLEX_PG_MODE"], "verify");
        assert!(s["cap_add"].is_null(), "no added capability");
    }
    assert_eq!(
        services["plex-linuxserver"]["build"]["args"]["S6_RUN"],
        "/etc/s6-overlay/s6-rc.d/svc-plex/run"
    );
    assert_eq!(
        services["plex-linuxserver"]["build"]["args"]["PLEX_IMAGE"],
        "linuxserver/plex:latest"
    );
    assert_eq!(
        services["postgres"]["environment"]["POSTGRES_PASSWORD"],
        services["plex"]["environment"]["PLEX_PG_PASSWORD"],
        "one password for both sides"
    );
}
