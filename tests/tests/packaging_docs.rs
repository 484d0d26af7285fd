//! The documentation that ships cannot drift from the code:
//! - docs/configuration.md lists exactly the keys of
//!   `plex_pg_config::settings::KEYS`, in order, with their environment
//!   variables, their one-line meaning, and defaults that are the built-in
//!   ones (each documented default, applied to the defaults, changes
//!   nothing);
//! - the packaged /etc/plex-pg/config.toml loads, names every key, and each
//!   commented value is the default;
//! - every `PLEX_PG_*` variable the docs mention exists;
//! - docs/troubleshooting.md quotes every warning and error the launcher
//!   logs, every start-up failure and every violation reason, and names
//!   every event an alert is built from.

use std::collections::BTreeSet;
use std::path::Path;

use plex_pg_config::compat;
use plex_pg_config::report::SUPERVISOR_ENV;
use plex_pg_config::settings::{Raw, Settings, Source, CONFIG_ENV, KEYS};
use plex_pg_tests::workspace_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Settings with the origins forgotten, to compare values only.
fn values(mut s: Settings) -> Settings {
    s.origins.clear();
    s.file = None;
    s
}

/// Whether `value` (a TOML value, as text) is the built-in default of `key`.
fn is_default(key: &str, value: &str) -> Result<bool, String> {
    let doc: toml::Table = format!("v = {value}")
        .parse()
        .map_err(|e| format!("{value} is not a TOML value: {e}"))?;
    let mut s = Settings::default();
    s.apply(key, Raw::Toml(&doc["v"]), &Source::Default)
        .map_err(|e| e.to_string())?;
    Ok(values(s) == values(Settings::default()))
}

/// The cells of the table rows of `section` (from its `## ` heading to the next).
fn table(doc: &str, section: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(&format!("## {section}\n"))
        .unwrap_or_else(|| panic!("no section {section:?}"));
    let rest = &doc[start + 3..];
    let body = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    body.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn unquote(cell: &str) -> &str {
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell)
}

#[test]
fn configuration_md_lists_every_key_with_its_variable_default_and_meaning() {
    let doc = read("docs/configuration.md");
    let rows = table(&doc, "Every key");
    let keys: Vec<&str> = rows.iter().map(|r| unquote(&r[0])).collect();
    let expected: Vec<&str> = KEYS.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(
        keys, expected,
        "docs/configuration.md must list KEYS, in order"
    );
    for (row, (key, var, meaning)) in rows.iter().zip(KEYS) {
        assert_eq!(
            row.len(),
            4,
            "{key}: key | variable | default | meaning: {row:?}"
        );
        assert_eq!(
            unquote(&row[1]),
            var.unwrap_or("—"),
            "{key}'s environment variable"
        );
        assert!(
            row[3].starts_with(meaning),
            "{key}: the meaning must start with KEYS' own words {meaning:?}: {:?}",
            row[3]
        );
        let default = unquote(&row[2]);
        assert_eq!(
            is_default(key, default),
            Ok(true),
            "{key}: the documented default {default} is not the built-in one"
        );
    }
}

#[test]
fn configuration_md_lists_every_plex_postgresql_variable_plex_pg_maps_or_ignores() {
    let doc = read("docs/configuration.md");
    let rows = table(&doc, "Coming from plex-postgresql");
    let listed: Vec<&str> = rows.iter().map(|r| unquote(&r[0])).collect();
    let expected: Vec<&str> = compat::MAPPED
        .iter()
        .chain(compat::IGNORED)
        .map(|(v, _)| *v)
        .collect();
    assert_eq!(
        listed, expected,
        "docs/configuration.md must list compat::MAPPED then compat::IGNORED, in order"
    );
    // Each ignored one is named as plex-postgresql's, not as a typo.
    for (var, _) in compat::IGNORED {
        assert!(
            matches!(
                &compat::env_notes([var])[..],
                [compat::EnvNote::Foreign { .. }]
            ),
            "{var}"
        );
    }
}

#[test]
fn docs_name_only_variables_that_exist() {
    let known: BTreeSet<&str> = KEYS
        .iter()
        .filter_map(|(_, v, _)| *v)
        .chain([CONFIG_ENV, SUPERVISOR_ENV])
        .chain(compat::MAPPED.iter().map(|(v, _)| *v))
        .chain(compat::IGNORED.iter().map(|(v, _)| *v))
        .collect();
    for path in [
        "docs/configuration.md",
        "docs/install.md",
        "docs/troubleshooting.md",
        "packaging/config.toml",
        "packaging/docker/docker-compose.yml",
        "packaging/docker/Dockerfile",
    ] {
        let text = read(path);
        for (i, _) in text.match_indices("PLEX_PG_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `PLEX_PG_*` stands for them all.
            assert!(
                name == "PLEX_PG_" || known.contains(name.as_str()),
                "{path} names {name}, which plex-pg does not read"
            );
        }
    }
}

#[test]
fn the_packaged_config_loads_names_every_key_and_comments_only_defaults() {
    let path = workspace_root().join("packaging/config.toml");
    let s = Settings::load_file(Some(&path), &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.launcher.mode,
        plex_pg_config::settings::Mode::Verify,
        "the package starts Plex in verify mode"
    );
    assert_eq!(
        s.launcher.events.as_deref(),
        Some("/var/log/plex-pg/events.jsonl")
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let mut section = String::new();
    let mut named = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (commented, body) = match line.strip_prefix("# ") {
            Some(b) => (true, b),
            None => (false, line),
        };
        let Some((name, value)) = body.split_once(" = ") else {
            continue;
        };
        if section.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let key = format!("{section}.{name}");
        assert!(
            KEYS.iter().any(|(k, _, _)| *k == key),
            "config.toml names {key}, which is not a key"
        );
        if commented {
            assert_eq!(
                is_default(&key, value),
                Ok(true),
                "config.toml shows {key} = {value} as the default, but it is not"
            );
        }
        named.push(key);
    }
    for (key, _, _) in KEYS {
        assert!(
            named.iter().any(|k| k == key),
            "config.toml does not mention {key}"
        );
    }
}

/// The text of the string literal starting at `src[at]` (a `"`), with
/// escapes and line continuations resolved.
fn literal(src: &str, at: usize) -> String {
    let mut out = String::new();
    let mut chars = src[at + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('\n') => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// The longest run of a format string between placeholders.
fn longest_fixed_part(format: &str) -> String {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    for c in format.chars() {
        match c {
            '{' => {
                depth += 1;
                parts.push(std::mem::take(&mut current));
            }
            '}' if depth > 0 => depth -= 1,
            c if depth == 0 => current.push(c),
            _ => {}
        }
    }
    parts.push(current);
    const EDGE: [char; 9] = [' ', '(', ')', ':', ',', ';', '.', '\'', '"'];
    parts
        .into_iter()
        .map(|p| p.trim_matches(EDGE).to_string())
        .max_by_key(|p| p.len())
        .unwrap_or_default()
}

/// Format strings of the launcher's warnings, errors, start-up failures and
/// violation reasons: `(file, format string)`.
fn launcher_messages() -> Vec<(String, String)> {
    const CALLS: [&str; 4] = [
        "tracing::warn!(",
        "tracing::error!(",
        "fail(",
        "reasons.push(format!(",
    ];
    let mut found = Vec::new();
    let mut stack = vec![workspace_root().join("launcher/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // The throwaway cluster and the demo are not part of running Plex.
            let not_plex = path.ends_with("cluster.rs")
                || path.ends_with("demo.rs")
                || path.parent().is_some_and(|d| d.ends_with("demo"));
            if path.extension().is_none_or(|e| e != "rs") || not_plex {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            let name = path
                .strip_prefix(workspace_root())
                .unwrap_or(Path::new("?"))
                .display()
                .to_string();
            for call in CALLS {
                for (i, _) in src.match_indices(call) {
                    // The message is the first string literal of the call,
                    // before its statement or block ends.
                    let rest = &src[i + call.len()..];
                    let Some(q) = rest.find(['"', ';', '}']) else {
                        continue;
                    };
                    if rest.as_bytes()[q] == b'"' {
                        found.push((name.clone(), literal(rest, q)));
                    }
                }
            }
        }
    }
    assert!(
        found.len() >= 20,
        "the scan of launcher/src found too few messages: {found:#?}"
    );
    found
}

#[test]
fn troubleshooting_covers_every_launcher_warning_error_and_alert() {
    let doc = read("docs/troubleshooting.md");
    let mut missing = Vec::new();
    for (file, message) in launcher_messages() {
        let part = longest_fixed_part(&message);
        if part.len() >= 6 && !doc.contains(&part) {
            missing.push(format!("{file}: {part:?}  (from {message:?})"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md does not quote these launcher messages:\n{}",
        missing.join("\n")
    );
    for event in [
        "pool_check",
        "inherited_fd_use",
        "watch_degraded",
        "summary",
        "launcher.alert_command",
    ] {
        assert!(
            doc.contains(&format!("`{event}`")),
            "docs/troubleshooting.md does not explain `{event}`"
        );
    }
    for action in ["observed", "denied", "killed"] {
        assert!(
            doc.contains(&format!("`{action}`")),
            "docs/troubleshooting.md does not explain the action `{action}`"
        );
    }
}
