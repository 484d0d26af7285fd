//! The rest of Plex's schema for `plex-sim library generate`: every table
//! `generator.rs` does not fill itself (accounts, devices, directories,
//! play queues, statistics, agents, subscriptions, settings of media,
//! parts and streams, clusters, relations, activities, preferences,
//! schema migrations, …), in the proportions of a real library: a few
//! accounts and devices, small play queues, statistics and settings
//! proportional to the items. Foreign-key-like columns point at rows that
//! exist (items, media, parts, streams, accounts, devices, sections, the
//! generator's own parent rows). Tricky values throughout: Unicode, empty
//! strings, NULLs, blobs (empty ones too), REALs that need all 17 digits,
//! 2^63−1 and −2^63, negative ids where the column allows, rows without a
//! primary key (duplicates included). Every value is a function of the
//! item count and the row number: the same N gives the same library.

use crate::generator::{insert_many, Result, REALS, TITLES};
use crate::sqlite::{Connection, Value};

/// Base of the timestamps (seconds since the epoch).
const T0: i64 = 1_600_000_000;

/// Client types of `view_settings`.
const CLIENTS: [&str; 4] = ["Plex Web", "Plex for iOS", "Plex for Android (TV)", ""];

/// Account names: the admin, then shared and managed users.
const NAMES: [Option<&str>; 8] = [
    Some("admin"),
    Some("Zoë"),
    Some("日本の友達 👪"),
    Some(""),
    Some("o'brien \"jr\""),
    None,
    Some("kid\tone"),
    Some("Ελένη"),
];

/// A row of values (`Value::from` of each).
macro_rules! row {
    ($($v:expr),* $(,)?) => { vec![$(Value::from($v)),*] };
}

fn opt<T: Into<Value>>(o: Option<T>) -> Value {
    o.map_or(Value::Null, Into::into)
}

fn title(i: i64) -> Value {
    opt(TITLES[i.rem_euclid(6) as usize].map(|t| format!("{t} {i}")))
}

fn real(i: i64) -> f64 {
    REALS[i.rem_euclid(6) as usize]
}

/// Bytes of a blob, some of them zero (empty when `len` is 0).
fn bytes(seed: i64, len: i64) -> Vec<u8> {
    (0..len)
        .map(|k| ((seed * 31 + k * 7) % 256) as u8)
        .collect()
}

/// The library's sizes: how many rows of each kind, from N items.
pub struct Shape {
    items: i64,
    accounts: i64,
    devices: i64,
    settings: i64,
}

impl Shape {
    pub fn new(items: i64) -> Shape {
        Shape {
            items,
            accounts: 3 + (items / 25_000).min(5),
            devices: 4 + (items / 10_000).min(12),
            // generator.rs: a metadata_item_settings row for i % 10 < 3.
            settings: (items / 10) * 3 + (items % 10).min(2),
        }
    }

    /// The k-th item (wrapping), or the negative one when there are none.
    fn item(&self, k: i64) -> i64 {
        if self.items > 0 {
            k.rem_euclid(self.items) + 1
        } else {
            -5
        }
    }

    /// The k-th account's id (wrapping): the admin is 1, the others have
    /// plex.tv's large ids.
    fn account(&self, k: i64) -> i64 {
        match k.rem_euclid(self.accounts) {
            0 => 1,
            k => 10_000_000 + k * 7_919,
        }
    }

    /// The k-th device's id (wrapping).
    fn device(&self, k: i64) -> i64 {
        k.rem_euclid(self.devices) + 1
    }

    /// `count` rows, one per k in 0..count.
    fn n(count: i64) -> std::ops::Range<i64> {
        0..count.max(1)
    }
}

/// The directory of item `i`'s file (media part `i`'s `directory_id`).
pub fn item_directory(i: i64) -> i64 {
    i + 2
}

/// Fill every table `generator.rs` leaves empty in the library file.
pub fn fill(lib: &Connection, items: i64) -> Result<()> {
    let s = Shape::new(items);
    people(lib, &s)?;
    files(lib, &s)?;
    settings(lib, &s)?;
    queues(lib, &s)?;
    statistics(lib, &s)?;
    agents(lib, &s)?;
    subscriptions(lib, &s)?;
    relations(lib, &s)?;
    server(lib, &s)?;
    migrations(lib)?;
    // The blobs table of the library file itself (Plex's schema creates it
    // in both files).
    insert_many(
        lib,
        "INSERT INTO blobs (id, blob, linked_type, linked_id, linked_guid, created_at, blob_type) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        Shape::n(2).map(|k| {
            row![
                k + 1,
                bytes(k, 64 * k),
                "metadata_item",
                s.item(k),
                opt((k == 1).then_some("plex://movie/ünï")),
                T0 + k,
                k,
            ]
        }),
    )
}

/// The blobs file's `schema_migrations`.
pub fn fill_blobs(blobs: &Connection) -> Result<()> {
    migrations(blobs)
}

/// Plex's migrations: versions (timestamps as text), some with the SQL
/// that undoes them.
fn migrations(conn: &Connection) -> Result<()> {
    insert_many(
        conn,
        "INSERT INTO schema_migrations (version, rollback_sql, optimize_on_rollback, min_version) \
         VALUES (?, ?, ?, ?)",
        (0..60).map(|k| {
            row![
                format!("{}", 20_080_000_000_000_i64 + k * 1_013_370_011),
                match k % 4 {
                    0 => Value::Null,
                    1 => format!(
                        "DROP INDEX IF EXISTS 'index_{k}';\nALTER TABLE \"t{k}\" DROP COLUMN c"
                    )
                    .into(),
                    2 => "".into(),
                    _ => format!("UPDATE x SET y = 'it''s {k}'").into(),
                },
                match k % 3 {
                    0 => Value::Null,
                    1 => Value::Integer(1),
                    _ => Value::Integer(0),
                },
                opt((k % 5 == 0).then(|| format!("1.{}.{k}", 20 + k / 10))),
            ]
        }),
    )
}

/// Accounts, devices, and what belongs to them alone.
fn people(lib: &Connection, s: &Shape) -> Result<()> {
    insert_many(
        lib,
        "INSERT INTO accounts (id, name, created_at, updated_at, default_audio_language, \
         default_subtitle_language, auto_select_subtitle, auto_select_audio) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (0..s.accounts).map(|k| {
            row![
                s.account(k),
                opt(NAMES[k as usize % NAMES.len()]),
                T0 - 86_400 * k,
                opt((k % 2 == 0).then_some(T0 + k)),
                ["en", "fr", "ja", ""][k as usize % 4],
                opt((k % 3 != 0).then_some("fr")),
                // Plex's own default is the text 't'.
                if k == 0 { Value::from("t") } else { Value::Integer(k % 2) },
                if k % 3 == 2 { Value::Null } else { Value::Integer(1) },
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO devices (id, identifier, name, created_at, updated_at, platform) VALUES (?, ?, ?, ?, ?, ?)",
        (0..s.devices).map(|k| {
            row![
                s.device(k),
                format!("{:016x}-{k}", (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                match k % 5 {
                    0 => Value::from(format!("Salon · TV {k} 📺")),
                    1 => Value::from(""),
                    2 => Value::Null,
                    _ => Value::from(format!("iPhone de Zoë {k}")),
                },
                T0 + 3_600 * k,
                T0 + 7_200 * k,
                match k % 4 {
                    0 => Value::from("iOS"),
                    1 => Value::from("Android"),
                    2 => Value::from(""),
                    _ => Value::Null,
                },
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO library_section_permissions (library_section_id, account_id, permission) VALUES (1, ?, ?)",
        (1..s.accounts).map(|k| row![s.account(k), [1_i64, 0, -1][k as usize % 3]]),
    )?;
    insert_many(
        lib,
        "INSERT INTO view_settings (account_id, client_type, view_group, view_id, sort_id, sort_asc, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (0..s.accounts * CLIENTS.len() as i64).map(|k| {
            row![
                s.account(k / CLIENTS.len() as i64),
                CLIENTS[k as usize % CLIENTS.len()],
                ["secondary", "movie", "", "collection"][k as usize % 4],
                k % 7,
                k % 5,
                if k % 3 == 2 { Value::Null } else { Value::Integer(k % 2) },
                T0 + k,
                T0 + 2 * k,
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO metadata_item_accounts (account_id, metadata_item_id) VALUES (?, ?)",
        Shape::n(s.items / 100).map(|k| row![s.account(k % (s.accounts - 1) + 1), s.item(k * 97)]),
    )
}

/// Directories of the files, and where the items are (locations).
fn files(lib: &Connection, s: &Shape) -> Result<()> {
    insert_many(
        lib,
        "INSERT INTO directories (id, library_section_id, parent_directory_id, path, created_at, \
         updated_at, deleted_at) VALUES (?, 1, ?, ?, ?, ?, ?)",
        [
            row![1, Value::Null, "", T0, T0, Value::Null],
            row![2, Value::Null, "", T0, T0, Value::Null],
        ]
        .into_iter()
        .chain((1..=s.items).map(|i| {
            let t = TITLES[(i % 6) as usize].unwrap_or("");
            row![
                item_directory(i),
                1,
                format!("{t} {i} ({})", 1990 + i % 30),
                T0 + i,
                T0 + 2 * i,
                opt((i % 97 == 0).then_some(T0 + 3 * i)),
            ]
        })),
    )?;
    insert_many(
        lib,
        "INSERT INTO locatables (location_id, locatable_id, locatable_type, created_at, updated_at, \
         extra_data, geocoding_version) VALUES (3, ?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 50).map(|k| {
            row![
                s.item(k * 50),
                if k % 2 == 0 { "MetadataItem" } else { "métadonnée" },
                T0 + k,
                T0 + k,
                opt((k % 3 == 0).then_some("{\"pv:city\":\"Zürich\"}")),
                opt((k % 2 == 1).then_some(k)),
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO location_places (location_id, guid) VALUES (?, ?)",
        [
            row![3, "plex://place/zürich"],
            row![3, ""],
            row![Value::Null, "plex://place/東京"],
            row![Value::Null, "plex://place/東京"],
        ]
        .into_iter(),
    )
}

/// Per-account settings of media, parts and streams; markers of the
/// play state.
fn settings(lib: &Connection, s: &Shape) -> Result<()> {
    insert_many(
        lib,
        "INSERT INTO media_item_settings (account_id, media_item_id, settings, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?)",
        Shape::n(s.items / 20).map(|k| {
            row![
                s.account(k),
                s.item(k * 20),
                match k % 3 {
                    0 => Value::from(format!("audioBoost={}&subtitleSize=100", k % 300)),
                    1 => Value::from(""),
                    _ => Value::Null,
                },
                T0 + k,
                opt((k % 2 == 0).then_some(T0 + 2 * k)),
            ]
        }),
    )?;
    // Part i's streams are 3i-2 (video), 3i-1 (audio), 3i (subtitles).
    insert_many(
        lib,
        "INSERT INTO media_part_settings (account_id, media_part_id, selected_audio_stream_id, \
         selected_subtitle_stream_id, settings, created_at, updated_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 10).map(|k| {
            let part = s.item(k * 10);
            row![
                s.account(k),
                part,
                3 * part - 1,
                // Plex's "no subtitles" is a negative id.
                if k % 4 == 0 { -1 } else { 3 * part },
                opt((k % 5 == 0).then_some("viewOffset=0")),
                T0 + k,
                T0 + k,
                if k == 1 { i64::MIN } else { k },
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO media_stream_settings (account_id, media_stream_id, extra_data, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?)",
        Shape::n(s.items / 50).map(|k| {
            row![
                s.account(k),
                3 * s.item(k * 50),
                opt((k % 2 == 0).then(|| format!("{{\"offset\":{}}}", k * 100))),
                T0 + k,
                T0 + k,
            ]
        }),
    )?;
    if s.settings > 0 {
        insert_many(
            lib,
            "INSERT INTO metadata_item_setting_markers (marker_type, metadata_item_setting_id, \
             start_time_offset, end_time_offset, title, created_at, updated_at, extra_data) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (0..(s.settings + 2) / 3).map(|k| {
                row![
                    k % 3,
                    3 * k + 1,
                    k * 1_000,
                    opt((k % 4 != 0).then_some(k * 1_000 + 90_000)),
                    match k % 3 {
                        0 => Value::from("Générique"),
                        1 => Value::from(""),
                        _ => Value::Null,
                    },
                    T0 + k,
                    T0 + k,
                    opt((k % 6 == 0).then_some("{\"pv:version\":\"5\"}")),
                ]
            }),
        )?;
    }
    Ok(())
}

/// Play queues (one per device, a few items each), their generators, and
/// the download queues.
fn queues(lib: &Connection, s: &Shape) -> Result<()> {
    const LEN: i64 = 20;
    let q = s.devices;
    insert_many(
        lib,
        "INSERT INTO play_queue_generators (id, playlist_id, metadata_item_id, uri, \"limit\", continuous, \
         \"order\", created_at, updated_at, changed_at, recursive, type, extra_data) \
         VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (1..=q).map(|g| {
            let item = s.item(g * 37);
            row![
                g,
                item,
                format!("library://x/item/%2Flibrary%2Fmetadata%2F{item}"),
                opt((g % 2 == 0).then_some(50)),
                g % 2,
                real(g),
                T0 + g,
                T0 + g,
                g,
                if g % 3 == 0 { Value::Null } else { Value::Integer(1) },
                g % 3,
                opt((g % 2 == 1).then_some("")),
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO play_queues (id, client_identifier, account_id, playlist_id, sync_item_id, \
         play_queue_generator_id, generator_start_index, generator_end_index, generator_items_count, \
         generator_ids, seed, current_play_queue_item_id, last_added_play_queue_item_id, version, \
         created_at, updated_at, metadata_type, total_items_count, generator_generator_ids, extra_data) \
         VALUES (?, ?, ?, NULL, NULL, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (1..=q).map(|p| {
            row![
                p,
                format!("{:016x}-{}", (p as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), p - 1),
                s.account(p - 1),
                p,
                LEN - 1,
                LEN,
                if p % 3 == 0 { Value::Blob(Vec::new()) } else { Value::Blob(bytes(p, 8 * LEN)) },
                if p == 1 { i64::MAX } else { -p * 1_000_003 },
                (p - 1) * LEN + 1 + p % LEN,
                p * LEN,
                p,
                T0 + p,
                T0 + 2 * p,
                [1_i64, 8, 10][p as usize % 3],
                LEN,
                if p % 2 == 0 { Value::Null } else { Value::Blob(bytes(-p, 4)) },
                opt((p % 4 == 0).then_some("{\"repeat\":0}")),
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO play_queue_items (play_queue_id, metadata_item_id, \"order\", up_next, \
         play_queue_generator_id) VALUES (?, ?, ?, ?, ?)",
        (0..q * LEN).map(|k| {
            let p = k / LEN + 1;
            row![
                p,
                s.item(k * 13),
                // Plex inserts between two items at the midpoint.
                if k % 7 == 3 {
                    real(k)
                } else {
                    (k % LEN) as f64 * 1.5
                },
                if k % 5 == 0 {
                    Value::Integer(1)
                } else {
                    Value::Integer(0)
                },
                opt((k % LEN != 0).then_some(p)),
            ]
        }),
    )?;
    let dq = s.devices / 2;
    insert_many(
        lib,
        "INSERT INTO download_queues (id, owner, client_identifier, extra_data) VALUES (?, ?, ?, ?)",
        (1..=dq).map(|d| {
            row![
                d,
                s.account(d),
                format!("dl-{d}-ünï"),
                opt((d % 2 == 0).then_some("")),
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO download_queue_items (queue_id, key, \"order\", status, decision_params, error, \
         decision_result, metadata_item_id, media_part_id, expiration, extra_data) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 200 + 3).map(|k| {
            let item = s.item(k * 200);
            row![
                k % dq.max(1) + 1,
                format!("/library/metadata/{item}"),
                k,
                k % 4,
                opt((k % 2 == 0).then_some("videoQuality=60&maxVideoBitrate=4000")),
                match k % 5 {
                    0 => Value::from("Transcodeur indisponible — réessayer"),
                    1 => Value::from(""),
                    _ => Value::Null,
                },
                opt((k % 3 == 0).then_some("{\"directPlay\":true}")),
                item,
                item,
                if k == 2 { i64::MAX } else { T0 + 86_400 * k },
                Value::Null,
            ]
        }),
    )
}

/// Plex's dashboard: bandwidth and plays per account, device and hour;
/// the host's resources every few minutes.
fn statistics(lib: &Connection, s: &Shape) -> Result<()> {
    insert_many(
        lib,
        "INSERT INTO statistics_bandwidth (account_id, device_id, timespan, at, lan, bytes) \
         VALUES (?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 10 + 2).map(|k| {
            row![
                s.account(k),
                s.device(k),
                [6_i64, 4, 1][k as usize % 3],
                T0 + 3_600 * k,
                if k % 4 == 3 {
                    Value::Null
                } else {
                    Value::Integer(k % 2)
                },
                match k {
                    0 => i64::MAX,
                    1 => 0,
                    k => k * 1_048_583,
                },
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO statistics_media (account_id, device_id, timespan, at, metadata_type, count, duration) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 10 + 1).map(|k| {
            row![
                s.account(k),
                s.device(k + 1),
                [6_i64, 4, 1][k as usize % 3],
                T0 + 3_600 * k,
                [1_i64, 4, 10][k as usize % 3],
                k % 9 + 1,
                if k == 0 { -1 } else { k * 61_000 },
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO statistics_resources (timespan, at, host_cpu_utilization, process_cpu_utilization, \
         host_memory_utilization, process_memory_utilization) VALUES (6, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 20 + 1).map(|k| {
            row![
                T0 + 300 * k,
                real(k),
                (k % 100) as f64 / 3.0,
                if k % 5 == 0 { Value::Null } else { Value::Real(0.1 * k as f64) },
                1.0 / (k + 7) as f64,
            ]
        }),
    )
}

/// Metadata agents and their groups; external metadata sources and items.
fn agents(lib: &Connection, s: &Shape) -> Result<()> {
    const PROVIDERS: [(&str, &str); 5] = [
        ("tv.plex.agents.movie", "Plex Movie"),
        ("tv.plex.agents.series", "Plex Series"),
        ("com.plexapp.agents.imdb", "Plex Movie (Legacy)"),
        ("tv.plex.agents.none", ""),
        ("org.example.agents.ünï", "Agent ünïcode 🎞"),
    ];
    insert_many(
        lib,
        "INSERT INTO metadata_agent_providers (identifier, title, uri, agent_type, metadata_types, online, \
         created_at, updated_at, extra_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        PROVIDERS.iter().enumerate().map(|(k, (id, title))| {
            let k = k as i64;
            row![
                *id,
                *title,
                opt((k % 2 == 0).then(|| format!("https://metadata.provider.example/{k}"))),
                k % 3,
                ["1", "2,3,4", "", "1,2,3,4,8,9,10", "13"][k as usize],
                if k == 3 { Value::Null } else { Value::Integer(k % 2) },
                T0 + k,
                T0 + k,
                opt((k == 4).then_some("{\"pv:key\":\"välue\"}")),
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO metadata_agent_provider_groups (id, title, primary_identifier, created_at, updated_at, \
         extra_data) VALUES (?, ?, ?, ?, ?, ?)",
        [
            row![1, "Films", "tv.plex.agents.movie", T0, T0, Value::Null],
            row![2, "Séries & 日本", "tv.plex.agents.series", T0, T0 + 1, ""],
        ]
        .into_iter(),
    )?;
    insert_many(
        lib,
        "INSERT INTO metadata_agent_provider_group_items (metadata_agent_provider_group_id, \
         metadata_agent_provider_id, \"order\") VALUES (?, ?, ?)",
        [(1, 1), (1, 3), (1, 5), (2, 2), (2, 4), (2, 5)]
            .into_iter()
            .enumerate()
            .map(|(k, (g, p))| {
                row![
                    g,
                    p,
                    if k == 5 {
                        Value::Null
                    } else {
                        Value::Real(real(k as i64))
                    },
                ]
            }),
    )?;
    insert_many(
        lib,
        "INSERT INTO external_metadata_sources (id, uri, source_title, user_title, online) VALUES (?, ?, ?, ?, ?)",
        [
            row![1, "provider://tv.plex.provider.vod", "Films & séries", Value::Null, 1],
            row![2, "server://abc/com.plexapp.plugins.library", "Bibliothèque d'Ann", "", 0],
        ]
        .into_iter(),
    )?;
    // The id is no primary key here: NULL, repeated and negative ids.
    insert_many(
        lib,
        "INSERT INTO external_metadata_items (id, external_metadata_source_id, library_section_id, \
         metadata_type, guid, title, parent_title, year, added_at, updated_at, extra_data) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 20 + 3).map(|k| {
            let item = s.item(k * 20);
            row![
                match k {
                    0 => Value::Null,
                    1 | 2 => Value::Integer(-7),
                    k => Value::Integer(k),
                },
                k % 2 + 1,
                if k % 2 == 0 { Value::Integer(1) } else { Value::Null },
                1,
                format!("plex://movie/{item:x}"),
                title(item),
                opt((k % 3 == 0).then_some("")),
                1990 + k % 30,
                T0 + k,
                T0 + k,
                Value::Null,
            ]
        }),
    )
}

/// Subscriptions (DVR), what they grab, what they want; media versions.
fn subscriptions(lib: &Connection, s: &Shape) -> Result<()> {
    let subs = s.items / 2_000 + 2;
    insert_many(
        lib,
        "INSERT INTO media_subscriptions (id, \"order\", metadata_type, target_metadata_item_id, \
         target_library_section_id, target_section_location_id, extra_data, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)",
        (1..=subs).map(|m| {
            row![
                m,
                real(m),
                [1_i64, 2, 4][m as usize % 3],
                s.item(m * 101),
                if m % 2 == 0 { Value::Integer(2) } else { Value::Integer(1) },
                opt((m % 2 == 1).then(|| format!("{{\"pr:title\":\"{}\"}}", "Émission ✓"))),
                T0 + m,
                T0 + m,
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO media_grabs (uuid, status, error, metadata_item_id, media_subscription_id, extra_data, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 500 + 1).map(|k| {
            row![
                format!("{:032x}", (k as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
                k % 5,
                if k % 4 == 3 { Value::Integer(-k) } else { Value::Null },
                s.item(k * 500),
                k % subs + 1,
                opt((k % 2 == 0).then_some("")),
                T0 + k,
                T0 + k,
            ]
        }),
    )?;
    // No primary key: a row twice, NULLs.
    insert_many(
        lib,
        "INSERT INTO metadata_subscription_desired_items (sub_id, remote_id) VALUES (?, ?)",
        Shape::n(s.items / 200 + 2)
            .map(|k| row![k % subs + 1, format!("plex://episode/{k:x}")])
            .chain([
                row![1, "plex://episode/0"],
                row![Value::Null, ""],
                row![2, Value::Null],
            ]),
    )?;
    insert_many(
        lib,
        "INSERT INTO versioned_metadata_items (metadata_item_id, generator_id, target_tag_id, state, \
         state_context, selected_media_id, version_media_id, media_decision, file_size) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        Shape::n(s.items / 100).map(|k| {
            let item = s.item(k * 100 + 1);
            row![
                item,
                k % s.devices + 1,
                k % 3 + 1,
                k % 4,
                opt((k % 2 == 0).then_some(k % 7)),
                item,
                item,
                k % 3,
                match k {
                    0 => i64::MAX,
                    k => k * 700_001_003,
                },
            ]
        }),
    )
}

/// Relations between items (extras, similar), clusters of items, the
/// remote ids of items.
fn relations(lib: &Connection, s: &Shape) -> Result<()> {
    insert_many(
        lib,
        "INSERT INTO metadata_relations (metadata_item_id, related_metadata_item_id, relation_type, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        Shape::n(s.items / 10).map(|k| {
            row![
                s.item(k * 10),
                if k == 0 { -5 } else { s.item(k * 10 + 3) },
                k % 3,
                T0 + k,
                opt((k % 2 == 0).then_some(T0 + k)),
            ]
        }),
    )?;
    let clusters = s.items / 1_000 + 2;
    insert_many(
        lib,
        "INSERT INTO metadata_item_clusters (id, zoom_level, library_section_id, title, count, starts_at, \
         ends_at, extra_data) VALUES (?, ?, 1, ?, ?, ?, ?, ?)",
        (1..=clusters).map(|c| {
            row![
                c,
                c % 4,
                match c % 3 {
                    0 => Value::from(format!("Été {c} ☀")),
                    1 => Value::from(""),
                    _ => Value::Null,
                },
                c * 10,
                T0 + 86_400 * c,
                T0 + 86_400 * c + 3_600,
                Value::Null,
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO metadata_item_clusterings (metadata_item_id, metadata_item_cluster_id, \"index\", version) \
         VALUES (?, ?, ?, ?)",
        Shape::n(s.items / 10).map(|k| row![s.item(k * 10), k % clusters + 1, k % 100, 1]),
    )?;
    insert_many(
        lib,
        "INSERT INTO remote_id_translation (id, type, local_id, remote_id) VALUES (?, ?, ?, ?)",
        Shape::n(s.items / 100)
            .map(|k| {
                let item = s.item(k * 100 + 7);
                row![k + 1, 1, item, format!("plex://movie/{item:x}")]
            })
            .chain([
                row![-3, 2, i64::MAX, ""],
                row![-4, Value::Null, i64::MIN, Value::Null],
            ]),
    )
}

/// The server's own tables: preferences, plugins, hubs, channels,
/// resources of media providers, activities.
fn server(lib: &Connection, s: &Shape) -> Result<()> {
    insert_many(
        lib,
        "INSERT INTO preferences (name, value) VALUES (?, ?)",
        [
            ("FriendlyName", Value::from("Serveur de Zoë 🎬")),
            ("ScheduledLibraryUpdatesEnabled", "1".into()),
            ("EmptyValue", "".into()),
            ("NullValue", Value::Null),
            (
                "LastAutomaticMirroredBackup",
                (T0 + s.items).to_string().into(),
            ),
            ("quote'd \"name\"", "line\nbreak\ttab \\ back".into()),
            ("ButlerStartHour", "2".into()),
            ("LanNetworksBandwidth", "192.168.0.0/24,fd00::/8".into()),
        ]
        .into_iter()
        .map(|(n, v)| vec![Value::from(n), v]),
    )?;
    insert_many(
        lib,
        "INSERT INTO plugins (id, identifier, framework_version, access_count, installed_at, accessed_at, \
         modified_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            row![1, "com.plexapp.system", 2, 42, T0, T0 + 1, T0 + 2],
            row![2, "com.plexapp.agents.imdb", 2, 0, T0, Value::Null, Value::Null],
            row![3, "org.example.plugins.ünï", Value::Null, i64::MAX, T0, T0, T0],
        ]
        .into_iter(),
    )?;
    insert_many(
        lib,
        "INSERT INTO plugin_prefixes (plugin_id, name, prefix, art_url, thumb_url, titlebar_url, share, \
         has_store_services, prefs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row![1, "System", "/system", Value::Null, Value::Null, Value::Null, 0, 0, 1],
            row![2, "IMDb", "/video/imdb", "", "", "", 1, Value::Null, 0],
            row![3, "Ünïcode ✓", "/video/ünï", "/:/art", "/:/thumb", Value::Null, "t", "f", Value::Null],
        ]
        .into_iter(),
    )?;
    insert_many(
        lib,
        "INSERT INTO hub_templates (section, identifier, title, home_visibility, recommended_visibility, \
         \"order\", extra_data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            "movie.recentlyadded",
            "movie.inprogress",
            "movie.recentlyreleased",
            "movie.genre",
            "movie.director",
            "movie.topunwatched",
            "movie.by.actor.or.director",
            "home.ondeck",
            "home.continue",
            "custom.collection.ünï",
        ]
        .into_iter()
        .enumerate()
        .map(|(k, id)| {
            let k = k as i64;
            row![
                if k < 7 { Value::from("1") } else { Value::from("") },
                id,
                match k % 4 {
                    0 => Value::from(format!("Récemment ajoutés {k}")),
                    1 => Value::from(""),
                    2 => Value::Null,
                    _ => Value::from("続きを見る"),
                },
                k % 3 - 1,
                k % 2,
                real(k),
                opt((k % 2 == 0).then_some("{\"pv:promoted\":\"1\"}")),
            ]
        }),
    )?;
    insert_many(
        lib,
        "INSERT INTO custom_channels (name, description, playlist_id, start_time, ordering, visibility, \
         displayed_on, content_rating) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row!["Ciné-club 🎞", "Les classiques, tous les soirs", s.item(3), T0, 1, 1, 3, "PG-13"],
            row!["", Value::Null, Value::Null, Value::Null, 0, 0, 0, ""],
        ]
        .into_iter(),
    )?;
    insert_many(
        lib,
        "INSERT INTO media_provider_resources (id, parent_id, type, status, state, identifier, protocol, uri, \
         uuid, extra_data, last_seen_at, created_at, updated_at, data) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (1..=6).map(|r| {
            row![
                r,
                if r <= 2 { Value::Null } else { Value::Integer((r - 1) / 2) },
                r % 3 + 1,
                r % 2,
                r % 4,
                ["tv.plex.grabbers.hdhomerun", "tv.plex.providers.epg.cloud", "", "ünï", "x", "y"][r as usize - 1],
                opt((r % 2 == 1).then_some("livetv")),
                format!("http://192.168.1.{r}:5004"),
                format!("{:08x}-0000-4000-8000-{:012x}", r * 7_919, r),
                opt((r == 2).then_some("{\"lineup\":\"Île-de-France\"}")),
                T0 + r,
                T0,
                T0 + r,
                match r {
                    1 => Value::Blob(Vec::new()),
                    2 => Value::Null,
                    r => Value::Blob(bytes(r, 100 * r)),
                },
            ]
        }),
    )?;
    // Plex's butler and scans; a parent before its children. The times
    // are NUMERIC: integers, a fractional REAL, NULL.
    insert_many(
        lib,
        "INSERT INTO activities (id, parent_id, type, title, subtitle, scheduled_at, started_at, finished_at, \
         cancelled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row![
                1,
                Value::Null,
                "library.update.section",
                "Analyse de « Films »",
                "",
                T0,
                T0 + 1,
                Value::Null,
                0
            ],
            row![
                2,
                1,
                "media.generate.bif",
                Value::Null,
                "日本語のタイトル",
                1_700_000_000.25,
                Value::Null,
                T0 + 2,
                1
            ],
            row![
                -7,
                1,
                "butler.task",
                "Optimize database",
                Value::Null,
                Value::Null,
                T0 + 3,
                T0 + 4,
                Value::Null
            ],
            row![
                i64::MAX,
                Value::Null,
                "",
                "",
                "",
                i64::MAX,
                -1,
                0.1 + 0.2,
                "f"
            ],
        ]
        .into_iter(),
    )
}
