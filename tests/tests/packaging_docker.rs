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
            "\nexec s6-setuidgid plex {LAUNCHER} -- /bin/sh -c 'LD_LIBRARY_PATH=/usr/lib/plexmediaserver:/usr/lib/plexmediaserver/lib /usr/lib/plexmediaserver/Plex\\ Media\\ Server'\n"
        )),
        "plexinc/pms-docker: the launcher runs as plex, before the LD_LIBRARY_PATH Plex's command sets:\n{official}"
    );
    let linuxserver = rewritten(&dir, "linuxserver-svc-plex-run");
    assert!(
        linuxserver.contains(&format!("        s6-setuidgid abc {LAUNCHER} -- \"/usr/lib/plexmediaserver/Plex Media Server\"\n")),
        "linuxserver/plex: the launcher runs as abc under s6-notifyoncheck:\n{linuxserver}"
    );
    for text in [&official, &linuxserver] {
        assert_eq!(text.matches(LAUNCHER).count(), 1, "{text}");
    }
}

#[test]
fn an_unexpected_service_script_fails_the_image_build_with_a_reason() {
    let dir = TempDir::new("docker-run-bad");
    let none = dir.path().join("none");
    std::fs::write(
        &none,
        "#!/bin/sh\nexec \"/usr/lib/plexmediaserver/Plex Media Server\"\n",
    )
    .unwrap();
    let two = dir.path().join("two");
    std::fs::write(
        &two,
        "#!/bin/sh\nif x; then exec s6-setuidgid plex \"/usr/lib/plexmediaserver/Plex Media Server\"; else exec s6-setuidgid abc \"/usr/lib/plexmediaserver/Plex Media Server\"; fi\nexec s6-setuidgid abc \"/usr/lib/plexmediaserver/Plex Media Server\"\n",
    )
    .unwrap();
    for (script, found) in [(&none, "found 0"), (&two, "found 2")] {
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
