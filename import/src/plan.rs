//! What a SQLite file holds, from its `sqlite_master`: the tables whose
//! rows are data, the virtual tables (and their shadow tables, which are
//! not), and what is created after the data (views, indexes, triggers).

use crate::sqlite::Db;

/// A virtual table and where its rows come from.
#[derive(Clone, Debug)]
pub struct Virtual {
    pub module: String,
    /// FTS `content=` table: the rows are rebuilt from it, not copied.
    pub content: Option<String>,
}

/// One object of `sqlite_master`.
#[derive(Clone, Debug)]
pub struct Object {
    pub kind: String,
    pub name: String,
    pub sql: String,
    pub virtual_table: Option<Virtual>,
    pub without_rowid: bool,
}

/// The objects to create, in the order SQLite lists them.
#[derive(Debug, Default)]
pub struct Plan {
    /// Tables and virtual tables (created first).
    pub tables: Vec<Object>,
    /// Views, indexes and triggers (after the data), in that order.
    pub after: Vec<Object>,
    /// Shadow tables of virtual tables, not created (their module keeps
    /// them; on PostgreSQL the translated table holds the rows).
    pub shadows: Vec<String>,
}

fn module_of(sql: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find(" USING ")? + " USING ".len();
    let rest = sql[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(rest[..end].to_ascii_lowercase())
}

/// The `content=` option of an FTS declaration, unquoted.
fn content_option(sql: &str) -> Option<String> {
    let open = sql.find('(')?;
    let args = sql[open + 1..].trim_end().strip_suffix(')')?;
    for arg in args.split(',') {
        let (k, v) = match arg.split_once('=') {
            Some(kv) => kv,
            None => continue,
        };
        if k.trim().eq_ignore_ascii_case("content") {
            let v = v.trim();
            let v = v
                .strip_prefix(['"', '\'', '`', '['])
                .and_then(|x| x.strip_suffix(['"', '\'', '`', ']']))
                .unwrap_or(v);
            if !v.is_empty() {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn shadow_suffixes(module: &str) -> &'static [&'static str] {
    match module {
        "fts3" | "fts4" => &["_content", "_segments", "_segdir", "_docsize", "_stat"],
        "fts5" => &["_data", "_idx", "_content", "_docsize", "_config"],
        "rtree" | "rtree_i32" => &["_node", "_rowid", "_parent"],
        "spellfix1" => &["_vocab"],
        _ => &[],
    }
}

/// Read the plan of an open database.
pub fn read(db: &Db) -> Result<Plan, String> {
    let rows = db.query_text(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid",
    )?;
    let mut objects = Vec::new();
    let mut shadows = Vec::new();
    for r in rows {
        let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let (kind, name, sql) = (get(0), get(1), get(2));
        let upper = sql.to_ascii_uppercase();
        let virtual_table = if upper.starts_with("CREATE VIRTUAL TABLE") {
            let module = module_of(&sql).unwrap_or_default();
            for s in shadow_suffixes(&module) {
                shadows.push(format!("{name}{s}").to_ascii_lowercase());
            }
            let content = if module.starts_with("fts") {
                content_option(&sql)
            } else {
                None
            };
            Some(Virtual { module, content })
        } else {
            None
        };
        let without_rowid = upper
            .replace(char::is_whitespace, "")
            .ends_with("WITHOUTROWID");
        objects.push(Object {
            kind,
            name,
            sql,
            virtual_table,
            without_rowid,
        });
    }
    let mut plan = Plan {
        shadows: shadows.clone(),
        ..Plan::default()
    };
    let internal = |name: &str| name.to_ascii_lowercase().starts_with("sqlite_");
    for kind in ["table", "view", "index", "trigger"] {
        for o in objects.iter().filter(|o| o.kind == kind) {
            if internal(&o.name) || shadows.contains(&o.name.to_ascii_lowercase()) {
                continue;
            }
            if kind == "table" {
                plan.tables.push(o.clone());
            } else {
                plan.after.push(o.clone());
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_content_option_is_read() {
        let sql = r#"CREATE VIRTUAL TABLE fts4_tag_titles USING fts4(content="tags", tag)"#;
        assert_eq!(module_of(sql).as_deref(), Some("fts4"));
        assert_eq!(content_option(sql).as_deref(), Some("tags"));
        assert_eq!(
            content_option("CREATE VIRTUAL TABLE f USING fts4(a, b)"),
            None
        );
    }
}
