//! Values on both sides, in SQLite's classes: what a PostgreSQL column can
//! hold, how a value is written for `COPY`, how `COPY`'s output is read
//! back, and the order-independent checksum both sides are compared by.

use crate::sqlite::ValueRef;

/// A PostgreSQL column type the translator produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bigint`, `integer`, `smallint` (range in bits).
    Int(u32),
    /// `double precision`.
    Float8,
    /// `real` (rtree bounds).
    Float4,
    Text,
    Bytea,
    Bool,
    Numeric,
}

impl Kind {
    /// From `format_type`; None for a type the import does not know.
    pub fn from_pg(t: &str) -> Option<Kind> {
        Some(match t {
            "bigint" => Kind::Int(64),
            "integer" => Kind::Int(32),
            "smallint" => Kind::Int(16),
            "double precision" => Kind::Float8,
            "real" => Kind::Float4,
            "text" => Kind::Text,
            "bytea" => Kind::Bytea,
            "boolean" => Kind::Bool,
            t if t == "numeric" || t.starts_with("numeric(") => Kind::Numeric,
            t if t.starts_with("character varying") || t.starts_with("character(") => Kind::Text,
            _ => return None,
        })
    }
}

/// A value as the shim returns it: SQLite's class and its content.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Value {
    pub fn class(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "INTEGER",
            Value::Real(_) => "REAL",
            Value::Text(_) => "TEXT",
            Value::Blob(_) => "BLOB",
        }
    }

    /// A short rendering for messages.
    pub fn show(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => format!("{r:?}"),
            Value::Text(t) => {
                let s = String::from_utf8_lossy(t);
                let cut: String = s.chars().take(40).collect();
                let more = if cut.len() < s.len() { "…" } else { "" };
                format!("'{}'{more} ({} bytes)", cut.replace('\'', "''"), t.len())
            }
            Value::Blob(b) => format!("a {}-byte blob", b.len()),
        }
    }

    fn from_ref(v: ValueRef) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(t) => Value::Text(t.to_vec()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

/// What becomes of a SQLite value in a column of this kind.
pub enum Fit<'a> {
    /// Stored exactly; reads back as this same value.
    Exact(ValueRef<'a>),
    /// A documented conversion (a boolean column's `'t'`/`'f'` reads back
    /// as 1/0 through the shim: `docs/sql-support.md`, "Known
    /// differences"); reads back as this value.
    Converted(ValueRef<'a>),
    /// PostgreSQL's column cannot hold it: why.
    Refused(String),
}

/// Whether `kind` holds `v`, and what it reads back as.
pub fn fit(kind: Kind, v: ValueRef<'_>) -> Fit<'_> {
    use ValueRef as V;
    match (kind, v) {
        (_, V::Null) => Fit::Exact(V::Null),
        (Kind::Int(bits), V::Integer(i)) => {
            if bits == 64 || (i >= -(1i64 << (bits - 1)) && i < (1i64 << (bits - 1))) {
                Fit::Exact(v)
            } else {
                Fit::Refused(format!("out of range of a {bits}-bit integer"))
            }
        }
        (Kind::Float8, V::Real(_)) => Fit::Exact(v),
        (Kind::Float8, V::Integer(i)) => {
            // SQLite returns REAL for a REAL-affinity column; an INTEGER
            // here would read back as REAL: a change of class.
            Fit::Refused(format!("the integer {i} would read back as a REAL"))
        }
        (Kind::Float4, V::Real(r)) => {
            if (r as f32) as f64 == r || r.is_nan() {
                Fit::Exact(v)
            } else {
                Fit::Refused("needs more precision than a 4-byte real".into())
            }
        }
        (Kind::Text, V::Text(t)) => match std::str::from_utf8(t) {
            Ok(s) if !s.contains('\0') => Fit::Exact(v),
            Ok(_) => {
                Fit::Refused("text with a NUL character (PostgreSQL's text cannot hold one)".into())
            }
            Err(e) => Fit::Refused(format!(
                "text that is not valid UTF-8 (byte {} is not)",
                e.valid_up_to()
            )),
        },
        (Kind::Bytea, V::Blob(_)) => Fit::Exact(v),
        (Kind::Bool, V::Integer(0 | 1)) => Fit::Exact(v),
        (Kind::Bool, V::Text(t)) => match t.to_ascii_lowercase().as_slice() {
            b"t" | b"true" => Fit::Converted(V::Integer(1)),
            b"f" | b"false" => Fit::Converted(V::Integer(0)),
            _ => Fit::Refused("text that is not a boolean".into()),
        },
        (Kind::Bool, V::Integer(i)) => Fit::Refused(format!("{i} is not a boolean (0 or 1)")),
        (Kind::Numeric, V::Integer(_)) => Fit::Exact(v),
        (Kind::Numeric, V::Real(r)) if r.is_finite() && r.fract() != 0.0 => Fit::Exact(v),
        (Kind::Numeric, V::Real(r)) => Fit::Refused(format!(
            "the REAL {r:?} would read back as {}",
            if r.is_finite() {
                "an INTEGER"
            } else {
                "another value"
            }
        )),
        (_, other) => Fit::Refused(format!(
            "{} cannot go into a column of this type",
            Value::from_ref(other).class()
        )),
    }
}

/// Append `v` (already fitted to `kind`) in `COPY`'s text format.
pub fn encode(kind: Kind, v: ValueRef<'_>, out: &mut Vec<u8>) {
    use std::io::Write;
    match v {
        ValueRef::Null => out.extend_from_slice(b"\\N"),
        ValueRef::Integer(i) => match kind {
            Kind::Bool => out.push(if i != 0 { b't' } else { b'f' }),
            _ => {
                let _ = write!(out, "{i}");
            }
        },
        ValueRef::Real(r) => {
            if r.is_nan() {
                out.extend_from_slice(b"NaN");
            } else if r.is_infinite() {
                out.extend_from_slice(if r > 0.0 { b"Infinity" } else { b"-Infinity" });
            } else if kind == Kind::Numeric {
                let _ = write!(out, "{r}");
            } else {
                let _ = write!(out, "{r:?}");
            }
        }
        ValueRef::Text(t) => {
            for &b in t {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        }
        ValueRef::Blob(b) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\\\x");
            for &x in b {
                out.push(HEX[(x >> 4) as usize]);
                out.push(HEX[(x & 15) as usize]);
            }
        }
    }
}

/// Whether every column of a table can go through `COPY`'s binary format
/// (every kind but `numeric`, whose binary form is not written here).
pub fn binary_ok(kinds: impl IntoIterator<Item = Kind>) -> bool {
    kinds.into_iter().all(|k| k != Kind::Numeric)
}

/// The header of a binary `COPY` stream: signature, flags, no extension.
pub const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The trailer of a binary `COPY` stream.
pub const BINARY_TRAILER: &[u8] = &[0xff, 0xff];

/// Start a row of `n` fields in `COPY`'s binary format.
pub fn binary_row(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(n as i16).to_be_bytes());
}

/// Append `v` (already fitted to `kind`, which is not `Numeric`) as one
/// field of `COPY`'s binary format: its length, then PostgreSQL's send
/// form of the type. No allocation.
pub fn encode_binary(kind: Kind, v: ValueRef<'_>, out: &mut Vec<u8>) {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    match v {
        ValueRef::Null => out.extend_from_slice(&(-1i32).to_be_bytes()),
        ValueRef::Integer(i) => match kind {
            Kind::Bool => field(out, &[(i != 0) as u8]),
            Kind::Int(16) => field(out, &(i as i16).to_be_bytes()),
            Kind::Int(32) => field(out, &(i as i32).to_be_bytes()),
            Kind::Float8 => field(out, &(i as f64).to_bits().to_be_bytes()),
            Kind::Float4 => field(out, &(i as f32).to_bits().to_be_bytes()),
            _ => field(out, &i.to_be_bytes()),
        },
        ValueRef::Real(r) => match kind {
            Kind::Float4 => field(out, &(r as f32).to_bits().to_be_bytes()),
            _ => field(out, &r.to_bits().to_be_bytes()),
        },
        ValueRef::Text(t) | ValueRef::Blob(t) => field(out, t),
    }
}

/// One field of `COPY`'s binary output (None for NULL) for a column of
/// `kind` (not `Numeric`), as the shim returns it, borrowed.
pub fn decode_binary(kind: Kind, field: Option<&[u8]>) -> Result<ValueRef<'_>, String> {
    let Some(b) = field else {
        return Ok(ValueRef::Null);
    };
    let bad = || format!("PostgreSQL sent {} bytes for a {kind:?} column", b.len());
    let fixed = |n: usize| -> Result<u64, String> {
        if b.len() != n {
            return Err(bad());
        }
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    };
    Ok(match kind {
        Kind::Int(64) => ValueRef::Integer(fixed(8)? as i64),
        Kind::Int(32) => ValueRef::Integer(fixed(4)? as u32 as i32 as i64),
        Kind::Int(16) => ValueRef::Integer(fixed(2)? as u16 as i16 as i64),
        Kind::Int(_) => return Err(bad()),
        Kind::Float8 => ValueRef::Real(f64::from_bits(fixed(8)?)),
        Kind::Float4 => ValueRef::Real(f32::from_bits(fixed(4)? as u32) as f64),
        Kind::Bool => ValueRef::Integer((fixed(1)? != 0) as i64),
        Kind::Text => ValueRef::Text(b),
        Kind::Bytea => ValueRef::Blob(b),
        Kind::Numeric => return Err("numeric is read in text format".into()),
    })
}

/// Undo `COPY TO`'s text escapes in one field.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b == b'\\' && i + 1 < field.len() {
            i += 1;
            out.push(match field[i] {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'b' => 8,
                b'f' => 12,
                b'v' => 11,
                other => other,
            });
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One field of `COPY TO`'s text output for a column of `kind`, as the
/// shim returns it.
pub fn decode(kind: Kind, field: &[u8]) -> Result<Value, String> {
    if field == b"\\N" {
        return Ok(Value::Null);
    }
    let raw = unescape(field);
    let text = || String::from_utf8_lossy(&raw).into_owned();
    let bad = |what: &str| format!("PostgreSQL returned {:?} for a {what} column", text());
    Ok(match kind {
        Kind::Int(_) => Value::Integer(text().parse().map_err(|_| bad("integer"))?),
        Kind::Float8 | Kind::Float4 => {
            Value::Real(parse_float(&text()).ok_or_else(|| bad("real"))?)
        }
        Kind::Text => Value::Text(raw),
        Kind::Bool => match raw.as_slice() {
            b"t" => Value::Integer(1),
            b"f" => Value::Integer(0),
            _ => return Err(bad("boolean")),
        },
        Kind::Numeric => {
            let t = text();
            match t.parse::<i64>() {
                Ok(i) => Value::Integer(i),
                Err(_) => Value::Real(parse_float(&t).ok_or_else(|| bad("numeric"))?),
            }
        }
        Kind::Bytea => {
            let hex = raw.strip_prefix(b"\\x").ok_or_else(|| bad("bytea"))?;
            let mut out = Vec::with_capacity(hex.len() / 2);
            for pair in hex.chunks(2) {
                match (
                    pair.first().and_then(|&c| hex_value(c)),
                    pair.get(1).and_then(|&c| hex_value(c)),
                ) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(bad("bytea")),
                }
            }
            Value::Blob(out)
        }
    })
}

fn parse_float(t: &str) -> Option<f64> {
    match t {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => t.parse().ok(),
    }
}

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// A 64-bit finalizer (a bijection that mixes every bit into every bit).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Bytes (text or blob) with their class and length, 8 at a time.
fn hash_bytes(class: u64, b: &[u8]) -> u64 {
    let mut h = mix(class.wrapping_mul(K1) ^ (b.len() as u64).wrapping_mul(K2));
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(K1).rotate_left(29).wrapping_add(K2);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K1).rotate_left(29);
    }
    mix(h)
}

/// One value's 64-bit hash: its class and content (REAL by its bits).
/// Not a keyed hash: both sides are hashed by this process, for a
/// comparison, not against an adversary.
fn hash_value(v: ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Null => mix(K2),
        ValueRef::Integer(i) => mix(mix(i as u64) ^ K1),
        ValueRef::Real(r) => mix(mix(r.to_bits()) ^ K2.rotate_left(17)),
        ValueRef::Text(t) => hash_bytes(3, t),
        ValueRef::Blob(b) => hash_bytes(4, b),
    }
}

/// The borrowed form of an owned value.
pub fn as_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Real(r) => ValueRef::Real(*r),
        Value::Text(t) => ValueRef::Text(t),
        Value::Blob(b) => ValueRef::Blob(b),
    }
}

/// The order-independent checksum of a table: the wrapping sums of two
/// 64-bit hashes of every row (each chained over the row's value hashes
/// in column order, so a value counts with its row and its column), and
/// per column the sum of its values' hashes, so a difference can be
/// narrowed to a column even without a rowid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    pub sum: [u64; 2],
    pub columns: Vec<u64>,
}

impl Checksum {
    pub fn new(columns: usize) -> Checksum {
        Checksum {
            rows: 0,
            sum: [0, 0],
            columns: vec![0; columns],
        }
    }

    /// Add one row.
    pub fn add<'a>(&mut self, row: impl Iterator<Item = ValueRef<'a>>) {
        let mut r = self.row();
        for (i, v) in row.enumerate() {
            r.value(i, v);
        }
        r.finish();
    }

    /// Add one row value by value (no row is built): `value` for each
    /// column in order, then `finish`. The same sums as [`Checksum::add`].
    pub fn row(&mut self) -> RowSum<'_> {
        RowSum {
            a: K1,
            b: K2,
            sum: self,
        }
    }

    /// A short rendering (the two sums).
    pub fn short(&self) -> String {
        format!("{:08x}", (self.sum[0] ^ self.sum[1].rotate_left(32)) >> 32)
    }
}

/// One row being added to a [`Checksum`].
pub struct RowSum<'c> {
    a: u64,
    b: u64,
    sum: &'c mut Checksum,
}

impl RowSum<'_> {
    /// Column `i`'s value (columns in order).
    pub fn value(&mut self, i: usize, v: ValueRef<'_>) {
        let h = hash_value(v);
        let i = i as u64;
        self.a = mix(self.a ^ h ^ i.wrapping_mul(K2));
        self.b = mix(self.b.wrapping_add(h.rotate_left(23)).wrapping_mul(K1) ^ i);
        if let Some(slot) = self.sum.columns.get_mut(i as usize) {
            *slot = slot.wrapping_add(mix(h ^ (i + 1).wrapping_mul(K1)));
        }
    }

    /// The row is complete.
    pub fn finish(self) {
        self.sum.rows += 1;
        self.sum.sum[0] = self.sum.sum[0].wrapping_add(mix(self.a));
        self.sum.sum[1] = self.sum.sum[1].wrapping_add(mix(self.b ^ K1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(kind: Kind, v: ValueRef) -> Value {
        let mut out = Vec::new();
        encode(kind, v, &mut out);
        // COPY TO escapes the same way COPY FROM reads.
        decode(kind, &out).unwrap()
    }

    #[test]
    fn values_survive_copy_text_encoding() {
        let reals = [
            0.1,
            1.0 / 3.0,
            -0.0,
            1e300,
            5e-324,
            f64::MAX,
            123456789.12345678,
        ];
        for r in reals {
            assert_eq!(
                roundtrip(Kind::Float8, ValueRef::Real(r)),
                Value::Real(r),
                "{r:?}"
            );
        }
        assert_eq!(
            roundtrip(Kind::Int(64), ValueRef::Integer(i64::MAX)),
            Value::Integer(i64::MAX)
        );
        let text = "tab\there\nnew \\ back é 日本".as_bytes();
        assert_eq!(
            roundtrip(Kind::Text, ValueRef::Text(text)),
            Value::Text(text.to_vec())
        );
        assert_eq!(
            roundtrip(Kind::Bytea, ValueRef::Blob(&[0, 255, 9, 10])),
            Value::Blob(vec![0, 255, 9, 10])
        );
        assert_eq!(
            roundtrip(Kind::Numeric, ValueRef::Real(2.5)),
            Value::Real(2.5)
        );
    }

    #[test]
    fn values_survive_copy_binary_encoding() {
        let cases: Vec<(Kind, ValueRef)> = vec![
            (Kind::Int(64), ValueRef::Integer(i64::MAX)),
            (Kind::Int(64), ValueRef::Integer(-5)),
            (Kind::Int(32), ValueRef::Integer(-2_000_000_000)),
            (Kind::Int(16), ValueRef::Integer(-300)),
            (Kind::Float8, ValueRef::Real(-0.0)),
            (Kind::Float8, ValueRef::Real(1.0 / 3.0)),
            (Kind::Float4, ValueRef::Real(0.5)),
            (Kind::Bool, ValueRef::Integer(1)),
            (Kind::Bool, ValueRef::Integer(0)),
            (Kind::Text, ValueRef::Text("tab\there é".as_bytes())),
            (Kind::Text, ValueRef::Text(b"")),
            (Kind::Bytea, ValueRef::Blob(&[0, 255, 9])),
            (Kind::Bytea, ValueRef::Null),
        ];
        for (kind, v) in cases {
            let mut out = Vec::new();
            encode_binary(kind, v, &mut out);
            let len = i32::from_be_bytes(out[..4].try_into().unwrap());
            let field = (len >= 0).then(|| &out[4..]);
            if let Some(f) = field {
                assert_eq!(f.len(), len as usize);
            }
            let back = decode_binary(kind, field).unwrap();
            match (v, back) {
                (ValueRef::Real(a), ValueRef::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                _ => assert_eq!(v, back, "{kind:?}"),
            }
        }
        assert!(!binary_ok([Kind::Text, Kind::Numeric]));
        assert_eq!(BINARY_HEADER.len(), 19);
    }

    #[test]
    fn refused_and_converted_values() {
        assert!(matches!(
            fit(Kind::Int(64), ValueRef::Text(b"abc")),
            Fit::Refused(_)
        ));
        assert!(matches!(
            fit(Kind::Bool, ValueRef::Text(b"t")),
            Fit::Converted(ValueRef::Integer(1))
        ));
        assert!(matches!(
            fit(Kind::Text, ValueRef::Text(b"\xff")),
            Fit::Refused(_)
        ));
        assert!(matches!(
            fit(Kind::Text, ValueRef::Integer(5)),
            Fit::Refused(_)
        ));
    }

    #[test]
    fn checksum_tells_classes_values_and_columns_apart() {
        let sum = |row: &[ValueRef]| {
            let mut c = Checksum::new(row.len());
            c.add(row.iter().copied());
            c
        };
        let rows: Vec<Vec<ValueRef>> = vec![
            vec![ValueRef::Integer(1)],
            vec![ValueRef::Integer(2)],
            vec![ValueRef::Real(1.0)],
            vec![ValueRef::Real(-0.0)],
            vec![ValueRef::Real(0.0)],
            vec![ValueRef::Text(b"1")],
            vec![ValueRef::Blob(b"1")],
            vec![ValueRef::Text(b"")],
            vec![ValueRef::Blob(b"")],
            vec![ValueRef::Null],
            vec![ValueRef::Text(b"abcdefgh")],
            vec![ValueRef::Text(b"abcdefgh\0")],
            vec![ValueRef::Text(b"abcdefgi")],
            vec![ValueRef::Null, ValueRef::Integer(1)],
            vec![ValueRef::Integer(1), ValueRef::Null],
        ];
        for (i, x) in rows.iter().enumerate() {
            for (j, y) in rows.iter().enumerate() {
                if i != j {
                    assert_ne!(sum(x).sum, sum(y).sum, "{x:?} and {y:?}");
                }
            }
        }
    }

    #[test]
    fn checksum_ignores_row_order_not_column_order() {
        let rows = [
            [ValueRef::Integer(1), ValueRef::Text(b"a")],
            [ValueRef::Integer(2), ValueRef::Text(b"b")],
        ];
        let mut x = Checksum::new(2);
        let mut y = Checksum::new(2);
        x.add(rows[0].iter().copied());
        x.add(rows[1].iter().copied());
        y.add(rows[1].iter().copied());
        y.add(rows[0].iter().copied());
        assert_eq!(x, y);
        let mut z = Checksum::new(2);
        z.add([ValueRef::Integer(1), ValueRef::Text(b"b")].into_iter());
        z.add([ValueRef::Integer(2), ValueRef::Text(b"a")].into_iter());
        assert_ne!(x.sum, z.sum);
    }
}
