//! Random statements over the fuzzer's tables ([`super::schema`]): typed
//! expressions (each generated for a [`Kind`], so comparisons and
//! arithmetic mostly stay within what one PostgreSQL type per column can
//! hold; literals of another class beside a column on purpose, now and
//! then), queries whose result SQLite defines (an `ORDER BY` over every
//! output column or ending with the rowid, or one aggregate row;
//! otherwise compared as a multiset), writes inside `BEGIN … ROLLBACK`
//! followed by a read of the whole table, and the groups of statements
//! whose results must agree with each other whatever the oracle says
//! (SQLancer's NoREC and ternary logic partitioning, [`Invariant`]).
//!
//! Forms whose result SQLite itself leaves open, or that would only
//! repeat a documented difference, are not generated: a text column
//! compared with a number column, `CASE` branches of different classes,
//! `LIMIT` or `DISTINCT` over values a `NOCASE` column makes tie,
//! `group_concat` (its order is the scan's), bare columns in grouped
//! queries, a `-0.0` literal. A `boolean` column used as a number (a
//! found difference) is generated rarely, so that it does not hide the
//! rest.

use super::rng::Rng;
use super::schema::{self, Column, Kind, Table, BLOBS, INTS, REALS, TEXTS};

/// One statement to run both ways.
#[derive(Clone, Debug)]
pub struct Statement {
    pub sql: String,
    /// Rows compared in order (the statement orders them totally);
    /// otherwise as a multiset.
    pub ordered: bool,
}

/// What the shim's results of a unit's statements must satisfy among
/// themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    /// NoREC: `SELECT count(*) … WHERE p` and `SELECT coalesce(sum(CASE
    /// WHEN p THEN 1 ELSE 0 END), 0) …` give the same number.
    NoRec,
    /// Ternary logic partitioning: the rows of `SELECT … FROM t` are the
    /// rows `WHERE p`, `WHERE NOT p` and `WHERE p IS NULL` together.
    Partition,
}

/// What one index of a run generates: one statement, or a few checked
/// together.
#[derive(Clone, Debug)]
pub struct Unit {
    pub index: usize,
    pub statements: Vec<Statement>,
    pub invariant: Option<Invariant>,
}

#[derive(Clone, Debug)]
struct Expr {
    sql: String,
    kind: Kind,
    /// Carries `NOCASE`: equal values may differ in case.
    nocase: bool,
}

impl Expr {
    fn new(sql: impl Into<String>, kind: Kind) -> Expr {
        Expr {
            sql: sql.into(),
            kind,
            nocase: false,
        }
    }
}

/// The columns a query can name: `(qualified name, column)`.
struct Scope {
    columns: Vec<(String, Column)>,
}

impl Scope {
    fn of(tables: &[(&Table, bool)]) -> Scope {
        let mut columns = Vec::new();
        for (t, qualify) in tables {
            let name = |c: &str| {
                if *qualify {
                    format!("{}.{c}", t.name)
                } else {
                    c.to_string()
                }
            };
            columns.push((
                name("id"),
                Column {
                    name: "id",
                    decl: "INTEGER",
                    kind: Kind::Int,
                    nocase: false,
                },
            ));
            for c in &t.columns {
                columns.push((name(c.name), c.clone()));
            }
        }
        Scope { columns }
    }

    fn of_kind(&self, kind: Kind) -> Vec<&(String, Column)> {
        self.columns
            .iter()
            .filter(|(_, c)| c.kind == kind)
            .collect()
    }
}

const LIKE_PATTERNS: &[&str] = &[
    "'a%'",
    "'%b%'",
    "'A_c'",
    "'%'",
    "''",
    "'%C'",
    "'h%o%'",
    "'_'",
    "'%\\%%' ESCAPE '\\'",
];
const GLOB_PATTERNS: &[&str] = &["'a*'", "'*B*'", "'[a-c]*'", "'?'", "'*'", "'[^a]*'", "'H*'"];

struct Gen<'a> {
    rng: &'a mut Rng,
    tables: &'a [Table],
}

impl Gen<'_> {
    fn literal(&mut self, kind: Kind) -> Expr {
        if self.rng.chance(8) {
            return Expr::new("NULL", kind);
        }
        let palette = match kind {
            Kind::Int => INTS,
            Kind::Real => REALS,
            Kind::Text => TEXTS,
            Kind::Blob => BLOBS,
        };
        Expr::new(*self.rng.pick(palette), kind)
    }

    fn small_int(&mut self) -> Expr {
        Expr::new(
            self.rng.pick(&["0", "1", "2", "3", "-1", "5"]).to_string(),
            Kind::Int,
        )
    }

    fn leaf(&mut self, scope: &Scope, kind: Kind) -> Expr {
        // A boolean column as a number is a known difference (PostgreSQL's
        // boolean): rarely, so that it does not hide the rest.
        let booleans = self.rng.chance(5);
        let cols: Vec<_> = scope
            .of_kind(kind)
            .into_iter()
            .filter(|(_, c)| booleans || c.decl != "boolean")
            .collect();
        if !cols.is_empty() && self.rng.chance(70) {
            let (sql, c) = self.rng.pick(&cols);
            return Expr {
                sql: sql.clone(),
                kind,
                nocase: c.nocase,
            };
        }
        self.literal(kind)
    }

    fn expr(&mut self, scope: &Scope, kind: Kind, depth: u32) -> Expr {
        if depth == 0 || self.rng.chance(35) {
            return self.leaf(scope, kind);
        }
        let d = depth - 1;
        match kind {
            Kind::Int => self.int_expr(scope, d),
            Kind::Real => self.real_expr(scope, d),
            Kind::Text => self.text_expr(scope, d),
            Kind::Blob => self.blob_expr(scope, d),
        }
    }

    /// A number: integer or real.
    fn number(&mut self, scope: &Scope, depth: u32) -> Expr {
        let kind = if self.rng.chance(70) {
            Kind::Int
        } else {
            Kind::Real
        };
        self.expr(scope, kind, depth)
    }

    /// Shared forms of every kind: CASE, coalesce, ifnull, nullif, min/max.
    fn common(&mut self, scope: &Scope, kind: Kind, d: u32) -> Expr {
        let a = self.expr(scope, kind, d);
        let b = self.expr(scope, kind, d);
        let sql = match self.rng.below(6) {
            0 => {
                let p = self.cond(scope, d);
                format!("CASE WHEN {} THEN {} ELSE {} END", p, a.sql, b.sql)
            }
            1 => {
                let c = self.expr(scope, kind, d);
                let w = self.expr(scope, kind, d);
                format!(
                    "CASE {} WHEN {} THEN {} ELSE {} END",
                    a.sql, w.sql, b.sql, c.sql
                )
            }
            2 => format!("coalesce({}, {})", a.sql, b.sql),
            3 => format!("ifnull({}, {})", a.sql, b.sql),
            4 => format!("nullif({}, {})", a.sql, b.sql),
            _ => format!("{}({}, {})", self.rng.pick(&["min", "max"]), a.sql, b.sql),
        };
        Expr {
            sql,
            kind,
            nocase: false,
        }
    }

    fn int_expr(&mut self, scope: &Scope, d: u32) -> Expr {
        let sql = match self.rng.below(16) {
            0..=2 => {
                let a = self.expr(scope, Kind::Int, d);
                let b = self.expr(scope, Kind::Int, d);
                let op = self.rng.pick(&["+", "-", "*", "/", "%"]);
                format!("({} {op} {})", a.sql, b.sql)
            }
            3 => {
                let a = self.expr(scope, Kind::Int, d);
                let b = self.expr(scope, Kind::Int, d);
                let op = self.rng.pick(&["&", "|"]);
                format!("({} {op} {})", a.sql, b.sql)
            }
            4 => {
                let a = self.expr(scope, Kind::Int, d);
                let k = self.small_int();
                format!("({} {} {})", a.sql, self.rng.pick(&["<<", ">>"]), k.sql)
            }
            5 => format!("abs({})", self.expr(scope, Kind::Int, d).sql),
            6 => format!("length({})", self.expr(scope, Kind::Text, d).sql),
            7 => {
                let a = self.expr(scope, Kind::Text, d);
                let b = self.expr(scope, Kind::Text, d);
                format!("instr({}, {})", a.sql, b.sql)
            }
            8 => format!("CAST({} AS INTEGER)", self.expr(scope, Kind::Real, d).sql),
            9 => format!("- {}", self.expr(scope, Kind::Int, d).sql),
            10 => return self.common(scope, Kind::Int, d),
            11 => format!("({})", self.cond(scope, d)),
            12 => format!("unicode({})", self.expr(scope, Kind::Text, d).sql),
            13 => format!("length({})", self.expr(scope, Kind::Blob, d).sql),
            14 => {
                // A text that reads as a number, in arithmetic.
                let t = self.rng.pick(&["'42'", "'-3'", "'10'", "' 7'"]);
                let a = self.expr(scope, Kind::Int, d);
                format!("({t} {} {})", self.rng.pick(&["+", "-", "*"]), a.sql)
            }
            _ => {
                let p = self.cond(scope, d);
                let a = self.expr(scope, Kind::Int, d);
                let b = self.expr(scope, Kind::Int, d);
                format!("iif({p}, {}, {})", a.sql, b.sql)
            }
        };
        Expr::new(sql, Kind::Int)
    }

    fn real_expr(&mut self, scope: &Scope, d: u32) -> Expr {
        let sql = match self.rng.below(7) {
            0..=2 => {
                let a = self.expr(scope, Kind::Real, d);
                let b = self.number(scope, d);
                let op = self.rng.pick(&["+", "-", "*", "/"]);
                if self.rng.chance(50) {
                    format!("({} {op} {})", a.sql, b.sql)
                } else {
                    format!("({} {op} {})", b.sql, a.sql)
                }
            }
            3 => {
                let a = self.expr(scope, Kind::Real, d);
                format!("round({}, {})", a.sql, self.rng.below(3))
            }
            4 => format!("abs({})", self.expr(scope, Kind::Real, d).sql),
            5 => format!("CAST({} AS REAL)", self.expr(scope, Kind::Int, d).sql),
            _ => return self.common(scope, Kind::Real, d),
        };
        Expr::new(sql, Kind::Real)
    }

    fn text_expr(&mut self, scope: &Scope, d: u32) -> Expr {
        let sql = match self.rng.below(17) {
            0 | 1 => {
                let a = self.expr(scope, Kind::Text, d);
                let b = self.expr(scope, Kind::Text, d);
                format!("({} || {})", a.sql, b.sql)
            }
            2 => format!(
                "{}({})",
                self.rng.pick(&["lower", "upper", "trim", "ltrim", "rtrim"]),
                self.expr(scope, Kind::Text, d).sql
            ),
            3 => {
                let a = self.expr(scope, Kind::Text, d);
                let s = self.small_int();
                if self.rng.chance(50) {
                    let n = self.small_int();
                    format!("substr({}, {}, {})", a.sql, s.sql, n.sql)
                } else {
                    format!("substr({}, {})", a.sql, s.sql)
                }
            }
            4 => {
                let a = self.expr(scope, Kind::Text, d);
                let from = self.rng.pick(&["'a'", "'b'", "'A'", "' '", "'l'"]);
                let to = self.rng.pick(&["''", "'x'", "'AA'"]);
                format!("replace({}, {from}, {to})", a.sql)
            }
            5 => format!("CAST({} AS TEXT)", self.expr(scope, Kind::Int, d).sql),
            6 => {
                let k = *self
                    .rng
                    .pick(&[Kind::Int, Kind::Real, Kind::Text, Kind::Blob]);
                format!("typeof({})", self.expr(scope, k, d).sql)
            }
            7 => format!("hex({})", self.expr(scope, Kind::Blob, d).sql),
            8 => format!("CAST({} AS TEXT)", self.expr(scope, Kind::Real, d).sql),
            9 => {
                let n = self.number(scope, d);
                let t = self.expr(scope, Kind::Text, d);
                format!("({} || {})", n.sql, t.sql)
            }
            10 => format!(
                "{}({}, {})",
                self.rng.pick(&["trim", "ltrim", "rtrim"]),
                self.expr(scope, Kind::Text, d).sql,
                self.rng.pick(&["'a'", "'xy'", "' 7'", "''"])
            ),
            11 => {
                let k = *self
                    .rng
                    .pick(&[Kind::Int, Kind::Real, Kind::Text, Kind::Blob]);
                format!("quote({})", self.expr(scope, k, d).sql)
            }
            12 => match self.rng.below(4) {
                0 => format!("printf('%d', {})", self.expr(scope, Kind::Int, d).sql),
                1 => format!("printf('%.2f', {})", self.expr(scope, Kind::Real, d).sql),
                2 => format!(
                    "printf('%s-%s', {}, {})",
                    self.expr(scope, Kind::Text, d).sql,
                    self.expr(scope, Kind::Int, d).sql
                ),
                _ => format!(
                    "printf('%5d|%-4s|', {}, {})",
                    self.expr(scope, Kind::Int, d).sql,
                    self.expr(scope, Kind::Text, d).sql
                ),
            },
            13 => {
                let p = self.cond(scope, d);
                let a = self.expr(scope, Kind::Text, d);
                let b = self.expr(scope, Kind::Text, d);
                format!("iif({p}, {}, {})", a.sql, b.sql)
            }
            14 => format!("char({} + 65)", self.small_int().sql),
            _ => return self.common(scope, Kind::Text, d),
        };
        Expr::new(sql, Kind::Text)
    }

    fn blob_expr(&mut self, scope: &Scope, d: u32) -> Expr {
        match self.rng.below(2) {
            0 => Expr::new(
                format!("CAST({} AS BLOB)", self.expr(scope, Kind::Text, d).sql),
                Kind::Blob,
            ),
            _ => self.common(scope, Kind::Blob, d),
        }
    }

    /// A condition (true, false or NULL).
    fn cond(&mut self, scope: &Scope, depth: u32) -> String {
        let d = depth.saturating_sub(1);
        let choice = if depth == 0 {
            self.rng.below(6)
        } else {
            self.rng.below(14)
        };
        match choice {
            0 | 1 => {
                let kind =
                    *self
                        .rng
                        .pick(&[Kind::Int, Kind::Int, Kind::Real, Kind::Text, Kind::Blob]);
                let a = self.expr(scope, kind, d);
                let b = if matches!(kind, Kind::Int | Kind::Real) {
                    self.number(scope, d)
                } else {
                    self.expr(scope, kind, d)
                };
                let op = self
                    .rng
                    .pick(&["=", "<>", "<", "<=", ">", ">=", "IS", "IS NOT", "==", "!="]);
                format!("{} {op} {}", a.sql, b.sql)
            }
            2 => {
                let kind = *self
                    .rng
                    .pick(&[Kind::Int, Kind::Real, Kind::Text, Kind::Blob]);
                let a = self.expr(scope, kind, d);
                format!(
                    "{} {}",
                    a.sql,
                    self.rng
                        .pick(&["IS NULL", "IS NOT NULL", "ISNULL", "NOTNULL"])
                )
            }
            3 => {
                let a = self.expr(scope, Kind::Text, d);
                let not = if self.rng.chance(30) { "NOT " } else { "" };
                format!("{} {not}LIKE {}", a.sql, self.rng.pick(LIKE_PATTERNS))
            }
            4 => {
                let a = self.expr(scope, Kind::Text, d);
                let not = if self.rng.chance(30) { "NOT " } else { "" };
                format!("{} {not}GLOB {}", a.sql, self.rng.pick(GLOB_PATTERNS))
            }
            5 => {
                // A column as a truth value: a boolean one mostly.
                let cols = scope.of_kind(Kind::Int);
                let flags: Vec<_> = cols.iter().filter(|(_, c)| c.decl == "boolean").collect();
                let (name, _) = if !flags.is_empty() && self.rng.chance(70) {
                    *self.rng.pick(&flags)
                } else {
                    self.rng.pick(&cols)
                };
                let form = *self
                    .rng
                    .pick(&["{}", "NOT {}", "{} = 1", "{} = 0", "{} IS NULL"]);
                form.replace("{}", name)
            }
            6 => {
                let kind = *self.rng.pick(&[Kind::Int, Kind::Real, Kind::Text]);
                let a = self.expr(scope, kind, d);
                let lo = self.literal(kind);
                let hi = self.literal(kind);
                let not = if self.rng.chance(30) { "NOT " } else { "" };
                format!("{} {not}BETWEEN {} AND {}", a.sql, lo.sql, hi.sql)
            }
            7 => {
                let kind = *self.rng.pick(&[Kind::Int, Kind::Real, Kind::Text]);
                let a = self.expr(scope, kind, d);
                let n = 1 + self.rng.below(4);
                let items: Vec<String> = (0..n).map(|_| self.literal(kind).sql).collect();
                let not = if self.rng.chance(30) { "NOT " } else { "" };
                format!("{} {not}IN ({})", a.sql, items.join(", "))
            }
            8 => {
                // IN a subquery of another table, same kind.
                let kind = *self.rng.pick(&[Kind::Int, Kind::Text, Kind::Real]);
                let a = self.expr(scope, kind, d);
                let t = self.rng.pick(self.tables).clone();
                let inner = Scope::of(&[(&t, false)]);
                let cols = inner.of_kind(kind);
                let (c, _) = self.rng.pick(&cols);
                let p = self.cond(&inner, 0);
                let not = if self.rng.chance(30) { "NOT " } else { "" };
                let limit = if self.rng.chance(25) {
                    format!(" ORDER BY {c} DESC, id LIMIT {}", 1 + self.rng.below(3))
                } else {
                    String::new()
                };
                format!(
                    "{} {not}IN (SELECT {c} FROM {} WHERE {p}{limit})",
                    a.sql, t.name
                )
            }
            9 => {
                let t = self.rng.pick(self.tables).clone();
                let inner = Scope::of(&[(&t, true)]);
                let p = self.cond(&inner, 0);
                let not = if self.rng.chance(30) { "NOT " } else { "" };
                format!("{not}EXISTS (SELECT 1 FROM {} WHERE {p})", t.name)
            }
            10 if self.rng.chance(50) => {
                // A column beside a literal of another class: SQLite's
                // affinity rules (docs/sql-support.md, "loose typing").
                let (kind, lit) = if self.rng.chance(50) {
                    (
                        Kind::Int,
                        *self.rng.pick(&["'42'", "'7'", "'-1'", "'abc'", "''"]),
                    )
                } else {
                    (Kind::Text, *self.rng.pick(&["42", "7", "10", "3.5"]))
                };
                let cols = scope.of_kind(kind);
                let (name, _) = self.rng.pick(&cols);
                let op = self.rng.pick(&["=", "<>", "<", ">="]);
                format!("{name} {op} {lit}")
            }
            10 if self.rng.chance(50) => {
                let p = self.cond(scope, d);
                format!(
                    "({p}) {}",
                    self.rng
                        .pick(&["IS TRUE", "IS FALSE", "IS NOT TRUE", "IS NOT FALSE"])
                )
            }
            10 => format!("NOT ({})", self.cond(scope, d)),
            11 | 12 => {
                let a = self.cond(scope, d);
                let b = self.cond(scope, d);
                format!("({a}) {} ({b})", self.rng.pick(&["AND", "OR"]))
            }
            _ => {
                let kind = *self.rng.pick(&[Kind::Int, Kind::Real]);
                let a = self.expr(scope, kind, d);
                let q = self.scalar_subquery(kind);
                format!("{} {} {q}", a.sql, self.rng.pick(&["=", "<", ">", "<>"]))
            }
        }
    }

    /// `(SELECT aggregate FROM t WHERE p)`.
    fn scalar_subquery(&mut self, kind: Kind) -> String {
        let t = self.rng.pick(self.tables).clone();
        let inner = Scope::of(&[(&t, false)]);
        let cols = inner.of_kind(kind);
        let (c, _) = self.rng.pick(&cols);
        let p = self.cond(&inner, 0);
        let agg = self.rng.pick(&["max", "min", "count", "sum"]);
        format!("(SELECT {agg}({c}) FROM {} WHERE {p})", t.name)
    }

    fn random_kind(&mut self) -> Kind {
        *self.rng.pick(&[
            Kind::Int,
            Kind::Int,
            Kind::Real,
            Kind::Text,
            Kind::Text,
            Kind::Blob,
        ])
    }

    fn table(&mut self) -> Table {
        self.rng.pick(self.tables).clone()
    }

    /// `ORDER BY` every output column, in random directions, some with
    /// explicit NULL placement.
    fn order_by(&mut self, n: usize) -> String {
        let terms: Vec<String> = (1..=n)
            .map(|i| {
                let dir = *self.rng.pick(&["", " ASC", " DESC"]);
                let nulls = if self.rng.chance(15) {
                    *self.rng.pick(&[" NULLS FIRST", " NULLS LAST"])
                } else {
                    ""
                };
                format!("{i}{dir}{nulls}")
            })
            .collect();
        format!(" ORDER BY {}", terms.join(", "))
    }

    fn outputs(&mut self, scope: &Scope, n: usize) -> Vec<Expr> {
        (0..n)
            .map(|_| {
                let k = self.random_kind();
                self.expr(scope, k, 2)
            })
            .collect()
    }

    fn select_list(&mut self, outs: &[Expr]) -> String {
        outs.iter()
            .enumerate()
            .map(|(i, e)| {
                if self.rng.chance(25) {
                    format!("{} AS c{i}", e.sql)
                } else {
                    e.sql.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT [DISTINCT] … FROM t [WHERE p] ORDER BY … [LIMIT …]`.
    fn plain_select(&mut self) -> Statement {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let n = 1 + self.rng.below(3);
        let outs = self.outputs(&scope, n);
        let nocase = outs.iter().any(|e| e.nocase);
        let distinct = !nocase && self.rng.chance(20);
        let mut sql = format!(
            "SELECT {}{} FROM {}",
            if distinct { "DISTINCT " } else { "" },
            self.select_list(&outs),
            t.name
        );
        if self.rng.chance(70) {
            sql += &format!(" WHERE {}", self.cond(&scope, 2));
        }
        let ordered = self.rng.chance(85);
        if ordered {
            sql += &self.order_by(n);
            if !nocase && self.rng.chance(30) {
                sql += &format!(" LIMIT {}", self.rng.below(6));
                if self.rng.chance(40) {
                    sql += &format!(" OFFSET {}", self.rng.below(4));
                }
            }
        }
        Statement {
            sql,
            ordered: ordered && !nocase,
        }
    }

    fn aggregate(&mut self, scope: &Scope) -> Expr {
        let k = *self
            .rng
            .pick(&[Kind::Int, Kind::Int, Kind::Real, Kind::Text]);
        let e = self.expr(scope, k, 1);
        let numeric = matches!(k, Kind::Int | Kind::Real);
        let (sql, kind) = match self.rng.below(8) {
            0 => ("count(*)".to_string(), Kind::Int),
            1 => (format!("count({})", e.sql), Kind::Int),
            2 if !e.nocase => (format!("count(DISTINCT {})", e.sql), Kind::Int),
            3 if numeric => (format!("sum({})", e.sql), k),
            4 if numeric => (
                format!("{}({})", self.rng.pick(&["avg", "total"]), e.sql),
                Kind::Real,
            ),
            5 if numeric => {
                let f = *self.rng.pick(&["sum", "avg", "total"]);
                let kind = if f == "sum" { k } else { Kind::Real };
                (format!("{f}(DISTINCT {})", e.sql), kind)
            }
            _ if !e.nocase => (format!("{}({})", self.rng.pick(&["min", "max"]), e.sql), k),
            _ => ("count(*)".to_string(), Kind::Int),
        };
        Expr::new(sql, kind)
    }

    /// One aggregate row: `SELECT agg, … FROM t [WHERE p]`.
    fn aggregate_row(&mut self) -> Statement {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let n = 1 + self.rng.below(3);
        let aggs: Vec<String> = (0..n).map(|_| self.aggregate(&scope).sql).collect();
        let mut sql = format!("SELECT {} FROM {}", aggs.join(", "), t.name);
        if self.rng.chance(70) {
            sql += &format!(" WHERE {}", self.cond(&scope, 2));
        }
        Statement { sql, ordered: true }
    }

    /// `SELECT key, agg … GROUP BY key [HAVING …] ORDER BY …`.
    fn grouped(&mut self) -> Statement {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let k = self.random_kind();
        let mut key = self.expr(&scope, k, 1);
        while key.nocase {
            key = self.expr(&scope, Kind::Int, 1);
        }
        let n = 1 + self.rng.below(2);
        let aggs: Vec<String> = (0..n).map(|_| self.aggregate(&scope).sql).collect();
        let mut sql = format!("SELECT {}, {} FROM {}", key.sql, aggs.join(", "), t.name);
        if self.rng.chance(50) {
            sql += &format!(" WHERE {}", self.cond(&scope, 1));
        }
        sql += &format!(
            " GROUP BY {}",
            if self.rng.chance(30) {
                "1".to_string()
            } else {
                key.sql.clone()
            }
        );
        if self.rng.chance(40) {
            let agg = self.aggregate(&scope);
            let lit = if agg.kind == Kind::Text {
                self.literal(Kind::Text)
            } else {
                self.small_int()
            };
            sql += &format!(
                " HAVING {} {} {}",
                agg.sql,
                self.rng.pick(&[">", "<", "=", ">="]),
                lit.sql
            );
        }
        let ordered = self.rng.chance(85);
        if ordered {
            sql += &self.order_by(n + 1);
        }
        Statement { sql, ordered }
    }

    /// `t1 [LEFT] JOIN t2 ON t1.id = t2.t1_id`.
    fn join(&mut self) -> Statement {
        let ts = self.tables.to_vec();
        let (a, b) = (&ts[0], &ts[1]);
        let scope = Scope::of(&[(a, true), (b, true)]);
        let n = 1 + self.rng.below(3);
        let outs = self.outputs(&scope, n);
        let nocase = outs.iter().any(|e| e.nocase);
        let kind = *self
            .rng
            .pick(&["JOIN", "LEFT JOIN", "INNER JOIN", "LEFT OUTER JOIN"]);
        let on = *self.rng.pick(&[
            "t1.id = t2.t1_id",
            "t1.id = t2.t1_id",
            "t1.i = t2.t1_id",
            "t1.di = t2.at",
            "t1.id < t2.t1_id",
        ]);
        let mut sql = format!(
            "SELECT {} FROM t1 {kind} t2 ON {on}",
            self.select_list(&outs)
        );
        if self.rng.chance(30) {
            sql += &format!(" AND {}", self.cond(&scope, 1));
        }
        if self.rng.chance(60) {
            sql += &format!(" WHERE {}", self.cond(&scope, 1));
        }
        sql += &self.order_by(n);
        Statement {
            sql,
            ordered: !nocase,
        }
    }

    /// `SELECT e FROM a … UNION|UNION ALL|INTERSECT|EXCEPT SELECT e' FROM b … ORDER BY 1`.
    fn compound(&mut self) -> Statement {
        let kind = *self.rng.pick(&[Kind::Int, Kind::Real, Kind::Text]);
        let mut parts = Vec::new();
        let mut nocase = false;
        for _ in 0..2 {
            let t = self.table();
            let scope = Scope::of(&[(&t, false)]);
            let e = self.expr(&scope, kind, 1);
            nocase |= e.nocase;
            parts.push(format!(
                "SELECT {} FROM {} WHERE {}",
                e.sql,
                t.name,
                self.cond(&scope, 1)
            ));
        }
        let op = self
            .rng
            .pick(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"]);
        let mut sql = format!("{} {op} {}", parts[0], parts[1]);
        sql += &self.order_by(1);
        Statement {
            sql,
            ordered: !nocase,
        }
    }

    /// A CTE or a subquery in `FROM` over one table, read by its named
    /// columns.
    fn derived(&mut self) -> Statement {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let n = 1 + self.rng.below(3);
        let outs = self.outputs(&scope, n);
        let nocase = outs.iter().any(|e| e.nocase);
        let list: Vec<String> = outs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{} AS c{i}", e.sql))
            .collect();
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let inner = format!(
            "SELECT {} FROM {} WHERE {}",
            list.join(", "),
            t.name,
            self.cond(&scope, 1)
        );
        let mut sql = if self.rng.chance(50) {
            format!("WITH q AS ({inner}) SELECT {} FROM q", names.join(", "))
        } else {
            format!("SELECT {} FROM ({inner}) AS q", names.join(", "))
        };
        sql += &self.order_by(n);
        Statement {
            sql,
            ordered: !nocase,
        }
    }

    /// A window function beside the rowid, ordered by the rowid.
    fn window(&mut self) -> Statement {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let k = *self.rng.pick(&[Kind::Int, Kind::Real]);
        let e = self.expr(&scope, k, 1);
        let kk = *self.rng.pick(&[Kind::Int, Kind::Text]);
        let mut key = self.expr(&scope, kk, 0);
        if key.nocase {
            key = Expr::new("id", Kind::Int);
        }
        let func = match self.rng.below(5) {
            0 => "row_number()".to_string(),
            1 => "rank()".to_string(),
            2 => format!("sum({})", e.sql),
            3 => format!("count({})", e.sql),
            _ => format!("max({})", e.sql),
        };
        let over = if self.rng.chance(50) {
            format!("PARTITION BY {} ORDER BY id", key.sql)
        } else {
            format!("ORDER BY {}, id", key.sql)
        };
        Statement {
            sql: format!(
                "SELECT id, {func} OVER ({over}) FROM {} ORDER BY id",
                t.name
            ),
            ordered: true,
        }
    }

    /// `ORDER BY` expressions that are not selected, then the rowid.
    fn ordered_by_other(&mut self) -> Statement {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let n = 1 + self.rng.below(2);
        let outs = self.outputs(&scope, n);
        let k = self.random_kind();
        let key = self.expr(&scope, k, 1);
        let dir = *self.rng.pick(&["", " DESC", " ASC"]);
        let mut sql = format!(
            "SELECT {} FROM {} ORDER BY {}{dir}, id",
            self.select_list(&outs),
            t.name,
            key.sql
        );
        if self.rng.chance(40) {
            sql += &format!(" LIMIT {}", 1 + self.rng.below(5));
        }
        Statement { sql, ordered: true }
    }

    fn no_rec(&mut self) -> Vec<Statement> {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let p = self.cond(&scope, 2);
        vec![
            Statement {
                sql: format!("SELECT count(*) FROM {} WHERE {p}", t.name),
                ordered: true,
            },
            Statement {
                sql: format!(
                    "SELECT coalesce(sum(CASE WHEN {p} THEN 1 ELSE 0 END), 0) FROM {}",
                    t.name
                ),
                ordered: true,
            },
        ]
    }

    fn partition(&mut self) -> Vec<Statement> {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let p = self.cond(&scope, 2);
        let list = if self.rng.chance(50) {
            "*".to_string()
        } else {
            let n = 1 + self.rng.below(2);
            let outs = self.outputs(&scope, n);
            outs.iter()
                .map(|e| e.sql.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let base = format!("SELECT {list} FROM {}", t.name);
        [
            base.clone(),
            format!("{base} WHERE {p}"),
            format!("{base} WHERE NOT ({p})"),
            format!("{base} WHERE ({p}) IS NULL"),
        ]
        .into_iter()
        .map(|sql| Statement {
            sql,
            ordered: false,
        })
        .collect()
    }

    /// An `INSERT`, `UPDATE` or `DELETE` in a transaction, the whole
    /// table in rowid order, and `ROLLBACK`: every unit starts from the
    /// seeded rows, so a write that fails on one side only cannot make
    /// every later statement differ. Inserted rows get explicit rowids
    /// (sequences are not transactional: a rolled-back rowid is not
    /// handed out again, a known difference).
    fn write(&mut self, index: usize) -> Vec<Statement> {
        let t = self.table();
        let scope = Scope::of(&[(&t, false)]);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
        let sql = match self.rng.below(5) {
            0 | 1 => {
                let values: Vec<String> = t
                    .columns
                    .iter()
                    .map(|c| schema::value(self.rng, c))
                    .collect();
                format!(
                    "INSERT INTO {} (id, {}) VALUES ({}, {})",
                    t.name,
                    names.join(", "),
                    1000 + index,
                    values.join(", ")
                )
            }
            2 => {
                let c = self.rng.pick(&t.columns).clone();
                let e = self.expr(&scope, c.kind, 1);
                let e = if c.decl == "boolean" {
                    format!("({}) <> 0", e.sql)
                } else {
                    e.sql
                };
                format!(
                    "UPDATE {} SET {} = {e} WHERE {}",
                    t.name,
                    c.name,
                    self.cond(&scope, 1)
                )
            }
            3 => format!("DELETE FROM {} WHERE {}", t.name, self.cond(&scope, 1)),
            _ => format!(
                "INSERT INTO {} (id, {}) SELECT id + {}, {} FROM {} WHERE {} ORDER BY id LIMIT 2",
                t.name,
                names.join(", "),
                1000 * (index + 1),
                names.join(", "),
                t.name,
                self.cond(&scope, 1)
            ),
        };
        let plain = |sql: &str| Statement {
            sql: sql.to_string(),
            ordered: true,
        };
        vec![
            plain("BEGIN"),
            plain(&sql),
            plain(&format!("SELECT * FROM {} ORDER BY id", t.name)),
            plain("ROLLBACK"),
        ]
    }
}

/// Unit `index` of the run from `seed`.
pub fn unit(seed: u64, index: usize) -> Unit {
    let mut rng = Rng::for_statement(seed, index);
    let tables = schema::tables();
    let mut g = Gen {
        rng: &mut rng,
        tables: &tables,
    };
    let (statements, invariant) = match g.rng.below(24) {
        0..=4 => (vec![g.plain_select()], None),
        5 | 6 => (vec![g.aggregate_row()], None),
        7..=9 => (vec![g.grouped()], None),
        10 | 11 => (vec![g.join()], None),
        12 => (vec![g.compound()], None),
        13 => (vec![g.derived()], None),
        14 => (vec![g.window()], None),
        15 => (vec![g.ordered_by_other()], None),
        16 | 17 => (g.no_rec(), Some(Invariant::NoRec)),
        18 | 19 => (g.partition(), Some(Invariant::Partition)),
        _ => (g.write(index), None),
    };
    Unit {
        index,
        statements,
        invariant,
    }
}
