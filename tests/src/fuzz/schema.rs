//! The tables the fuzzer's statements run on, declared with Plex's types,
//! and the rows seeded into them: every SQLite value class a column of
//! that affinity keeps (SQLite would keep other classes too; PostgreSQL's
//! one type per column refuses them, a known difference), NULLs,
//! negative, zero and large numbers, empty and mixed-case texts.

use super::rng::Rng;

/// What a column or an expression holds, as far as generation cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: &'static str,
    pub decl: &'static str,
    pub kind: Kind,
    /// Declared `COLLATE NOCASE`.
    pub nocase: bool,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub name: &'static str,
    /// Without the rowid `id`.
    pub columns: Vec<Column>,
    pub autoincrement: bool,
}

const fn col(name: &'static str, decl: &'static str, kind: Kind) -> Column {
    Column {
        name,
        decl,
        kind,
        nocase: false,
    }
}

/// The three tables: `t1` has one column of each of Plex's declared types,
/// `t2` points at `t1` (joins), `t3` has a plain `INTEGER PRIMARY KEY`.
pub fn tables() -> Vec<Table> {
    vec![
        Table {
            name: "t1",
            columns: vec![
                col("i", "integer", Kind::Int),
                col("v", "varchar(255)", Kind::Text),
                col("f", "float", Kind::Real),
                col("b", "boolean", Kind::Int),
                col("d", "datetime", Kind::Int),
                col("di", "dt_integer(8)", Kind::Int),
                col("bl", "blob", Kind::Blob),
                Column {
                    nocase: true,
                    ..col("nc", "text", Kind::Text)
                },
            ],
            autoincrement: true,
        },
        Table {
            name: "t2",
            columns: vec![
                col("t1_id", "integer", Kind::Int),
                col("name", "varchar(255)", Kind::Text),
                col("score", "float", Kind::Real),
                col("at", "dt_integer(8)", Kind::Int),
                col("flag", "boolean", Kind::Int),
            ],
            autoincrement: true,
        },
        Table {
            name: "t3",
            columns: vec![
                col("k", "integer", Kind::Int),
                Column {
                    nocase: true,
                    ..col("s", "text", Kind::Text)
                },
                col("r", "float", Kind::Real),
            ],
            autoincrement: false,
        },
    ]
}

pub const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "-7",
    "42",
    "100",
    "-100",
    "2147483647",
    "2147483648",
    "-2147483649",
    "9007199254740993",
    "1234567890123",
];
pub const REALS: &[&str] = &[
    "0.0",
    "1.5",
    "-2.25",
    "3.0",
    "0.1",
    "1e10",
    "-0.001",
    "2.5",
    "100.0",
    "12345.678",
];
pub const TEXTS: &[&str] = &[
    "''",
    "'a'",
    "'A'",
    "'abc'",
    "'ABC'",
    "'Abc'",
    "'abd'",
    "'hello world'",
    "'Hello'",
    "'42'",
    "'-3'",
    "'3.5'",
    "' 7'",
    "'x%y'",
    "'a_b'",
    "'it''s'",
    "'zzz'",
    "'Z'",
    "'10'",
    "'9'",
];
pub const BLOBS: &[&str] = &["x''", "x'00'", "x'00ff'", "x'616263'", "x'414243'"];
/// Values of `boolean` columns and of timestamps (`datetime`,
/// `dt_integer(8)`), as Plex stores them.
const BOOLS: &[&str] = &["0", "1"];
const TIMES: &[&str] = &["0", "1600000000", "1700000000", "-1", "86400", "1234567890"];

/// A literal value for a column.
pub fn value(rng: &mut Rng, column: &Column) -> String {
    if rng.chance(15) {
        return "NULL".into();
    }
    let palette = match (column.kind, column.decl) {
        (Kind::Int, "boolean") => BOOLS,
        (Kind::Int, "datetime" | "dt_integer(8)") => TIMES,
        (Kind::Int, _) => INTS,
        (Kind::Real, _) => REALS,
        (Kind::Text, _) => TEXTS,
        (Kind::Blob, _) => BLOBS,
    };
    rng.pick(palette).to_string()
}

/// `CREATE TABLE` of a table.
pub fn create(table: &Table) -> String {
    let mut cols = vec![format!(
        "id INTEGER PRIMARY KEY{}",
        if table.autoincrement {
            " AUTOINCREMENT"
        } else {
            ""
        }
    )];
    for c in &table.columns {
        let collate = if c.nocase { " COLLATE NOCASE" } else { "" };
        cols.push(format!("{} {}{}", c.name, c.decl, collate));
    }
    format!("CREATE TABLE {} ({})", table.name, cols.join(", "))
}

/// `INSERT` of one row of random values (`t2.t1_id` points at a row of
/// `t1` most of the time).
pub fn insert(rng: &mut Rng, table: &Table) -> String {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let values: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            if c.name == "t1_id" && rng.chance(80) {
                (1 + rng.below(12)).to_string()
            } else {
                value(rng, c)
            }
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        names.join(", "),
        values.join(", ")
    )
}

/// The statements that make and fill the tables: a row of NULLs in each,
/// then random rows.
pub fn setup(seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let mut out = Vec::new();
    for (table, rows) in tables().iter().zip([12, 10, 6]) {
        out.push(create(table));
        out.push(format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            table
                .columns
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", "),
            vec!["NULL"; table.columns.len()].join(", ")
        ));
        for _ in 1..rows {
            out.push(insert(&mut rng, table));
        }
    }
    out
}
