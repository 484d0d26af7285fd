//! A result row as SQLite presents it: each column's value, its storage
//! class, and SQLite's conversions between classes (`sqlite3_column_text`
//! on an integer, `sqlite3_column_int64` on text …).
//!
//! Each [`RowValue`] is also what `sqlite3_column_value` hands out as a
//! `sqlite3_value*`: it starts with a magic header so the shim's
//! `sqlite3_value_*` exports can tell their own values from the real
//! SQLite's (whose first bytes are a value union and a pointer, never this
//! pattern).

use crate::value::{Value, SQLITE_BLOB, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_NULL, SQLITE_TEXT};
use std::cell::OnceCell;

/// Marks a [`RowValue`] (two words no real `sqlite3_value` starts with).
pub const VALUE_MAGIC: [u64; 2] = [0x706c_6578_2d70_6776, 0x9e37_79b9_7f4a_7c15];

/// One column of one row.
#[repr(C)]
pub struct RowValue {
    magic: [u64; 2],
    cell: Cell,
    /// The text form of a number, made on first `column_text` and kept
    /// until the row goes away (SQLite keeps such pointers valid as long).
    rendered: OnceCell<Box<[u8]>>,
}

/// A value as stored: text and blobs keep a NUL after their bytes so a
/// pointer to them is a C string.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 bytes followed by one NUL.
    Text(Box<[u8]>),
    /// Bytes followed by one NUL (not part of the blob).
    Blob(Box<[u8]>),
}

fn with_nul(bytes: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    v.into_boxed_slice()
}

impl Cell {
    pub fn text(s: &str) -> Cell {
        Cell::Text(with_nul(s.as_bytes()))
    }
    pub fn blob(b: &[u8]) -> Cell {
        Cell::Blob(with_nul(b))
    }
    pub fn from_value(v: &Value) -> Cell {
        match v {
            Value::Null => Cell::Null,
            Value::Integer(i) => Cell::Integer(*i),
            Value::Real(f) => Cell::Real(*f),
            Value::Text(s) => Cell::text(s),
            Value::Blob(b) => Cell::blob(b),
        }
    }
    /// Back to a [`Value`] (for binding a column's value elsewhere).
    pub fn to_value(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Integer(i) => Value::Integer(*i),
            Cell::Real(f) => Value::Real(*f),
            Cell::Text(b) => Value::Text(String::from_utf8_lossy(&b[..b.len() - 1]).into_owned()),
            Cell::Blob(b) => Value::Blob(b[..b.len() - 1].to_vec()),
        }
    }
}

impl RowValue {
    pub fn new(cell: Cell) -> RowValue {
        RowValue {
            magic: VALUE_MAGIC,
            cell,
            rendered: OnceCell::new(),
        }
    }

    /// Whether `p` points at a [`RowValue`].
    ///
    /// # Safety
    /// `p` must point at least 16 readable bytes (any `sqlite3_value`,
    /// real or ours, does).
    pub unsafe fn is_ours(p: *const u8) -> bool {
        // SAFETY: this function's `# Safety` contract, which the caller
        // keeps, is what the calls below rely on.
        unsafe { !p.is_null() && std::ptr::read_unaligned(p as *const [u64; 2]) == VALUE_MAGIC }
    }

    pub fn cell(&self) -> &Cell {
        &self.cell
    }

    /// `sqlite3_column_type`.
    pub fn type_code(&self) -> i32 {
        match self.cell {
            Cell::Null => SQLITE_NULL,
            Cell::Integer(_) => SQLITE_INTEGER,
            Cell::Real(_) => SQLITE_FLOAT,
            Cell::Text(_) => SQLITE_TEXT,
            Cell::Blob(_) => SQLITE_BLOB,
        }
    }

    /// `sqlite3_value_numeric_type`: what the value is as a number, if
    /// text looks like one.
    pub fn numeric_type(&self) -> i32 {
        match &self.cell {
            Cell::Text(b) => {
                let s = std::str::from_utf8(&b[..b.len() - 1]).unwrap_or("").trim();
                if s.parse::<i64>().is_ok() {
                    SQLITE_INTEGER
                } else if !s.is_empty() && s.parse::<f64>().is_ok() {
                    SQLITE_FLOAT
                } else {
                    SQLITE_TEXT
                }
            }
            _ => self.type_code(),
        }
    }

    /// `sqlite3_column_int64`.
    pub fn int64(&self) -> i64 {
        match &self.cell {
            Cell::Null => 0,
            Cell::Integer(i) => *i,
            Cell::Real(f) => real_to_int(*f),
            Cell::Text(b) | Cell::Blob(b) => text_to_int(&b[..b.len() - 1]),
        }
    }

    /// `sqlite3_column_int`: the low 32 bits, as SQLite does.
    pub fn int(&self) -> i32 {
        self.int64() as i32
    }

    /// `sqlite3_column_double`.
    pub fn double(&self) -> f64 {
        match &self.cell {
            Cell::Null => 0.0,
            Cell::Integer(i) => *i as f64,
            Cell::Real(f) => *f,
            Cell::Text(b) | Cell::Blob(b) => text_to_real(&b[..b.len() - 1]),
        }
    }

    /// `sqlite3_column_text`: NUL-terminated bytes, or None for NULL.
    pub fn text(&self) -> Option<&[u8]> {
        match &self.cell {
            Cell::Null => None,
            Cell::Text(b) | Cell::Blob(b) => Some(b),
            Cell::Integer(i) => Some(
                self.rendered
                    .get_or_init(|| with_nul(i.to_string().as_bytes())),
            ),
            Cell::Real(f) => Some(
                self.rendered
                    .get_or_init(|| with_nul(format_real(*f).as_bytes())),
            ),
        }
    }

    /// `sqlite3_column_blob`: the bytes (no NUL counted), None for NULL.
    /// Numbers come back as their text, as in SQLite.
    pub fn blob(&self) -> Option<&[u8]> {
        self.text().map(|b| &b[..b.len() - 1])
    }

    /// `sqlite3_column_bytes`.
    pub fn bytes(&self) -> i32 {
        self.blob().map_or(0, |b| b.len() as i32)
    }
}

/// SQLite's REAL → INTEGER: truncation toward zero, saturating.
fn real_to_int(f: f64) -> i64 {
    if f.is_nan() {
        0
    } else {
        f as i64
    }
}

/// SQLite's TEXT → INTEGER: the longest numeric prefix (leading blanks and
/// a sign allowed), 0 when there is none; a prefix that is a real number
/// is truncated.
fn text_to_int(b: &[u8]) -> i64 {
    let (num, is_real) = numeric_prefix(b);
    if is_real {
        return real_to_int(num.parse::<f64>().unwrap_or(0.0));
    }
    match num.parse::<i64>() {
        Ok(i) => i,
        Err(_) if !num.is_empty() && num != "-" && num != "+" => {
            if num.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            }
        }
        Err(_) => 0,
    }
}

fn text_to_real(b: &[u8]) -> f64 {
    numeric_prefix(b).0.parse::<f64>().unwrap_or(0.0)
}

/// The numeric prefix of `b` (after leading blanks), and whether it has a
/// fraction or an exponent.
fn numeric_prefix(b: &[u8]) -> (&str, bool) {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let mut i = start;
    let mut is_real = false;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    let mut any = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        let save = i;
        i += 1;
        if digits(&mut i) || any {
            any = true;
            is_real = true;
        } else {
            i = save;
        }
    }
    if any && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let save = i;
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) {
            is_real = true;
        } else {
            i = save;
        }
    }
    if !any {
        return ("", false);
    }
    (std::str::from_utf8(&b[start..i]).unwrap_or(""), is_real)
}

/// A REAL as SQLite prints it (`%!.15g`): 15 significant digits, trailing
/// zeros dropped, always a decimal point or an exponent (`1.0`, `0.1`,
/// `1.0e+20`).
pub fn format_real(f: f64) -> String {
    if f.is_nan() {
        return "NULL".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{:.14e}", f); // d.dddddddddddddde±x
    let (mantissa, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if negative { "-" } else { "" };
    if !(-4..15).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        return format!(
            "{sign}{first}.{rest}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    let mut out = String::from(sign);
    if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_print_as_sqlite_does() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1e20, "1.0e+20"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123456789012345.0, "123456789012345.0"),
            (1234567890123456.0, "1.23456789012346e+15"),
            (std::f64::consts::PI, "3.14159265358979"),
        ] {
            assert_eq!(format_real(f), s, "{f}");
        }
    }

    #[test]
    fn conversions_follow_sqlite() {
        let t = RowValue::new(Cell::text("  42abc"));
        assert_eq!(t.int64(), 42);
        assert_eq!(t.double(), 42.0);
        assert_eq!(RowValue::new(Cell::text("1.9")).int64(), 1);
        assert_eq!(RowValue::new(Cell::text("abc")).int64(), 0);
        assert_eq!(RowValue::new(Cell::text("-7e2x")).double(), -700.0);
        let i = RowValue::new(Cell::Integer(-12));
        assert_eq!(i.text().unwrap(), b"-12\0");
        assert_eq!(i.bytes(), 3);
        let r = RowValue::new(Cell::Real(2.0));
        assert_eq!(r.blob().unwrap(), b"2.0");
        assert_eq!(RowValue::new(Cell::Real(-3.99)).int64(), -3);
        let n = RowValue::new(Cell::Null);
        assert!(n.text().is_none());
        assert_eq!(n.bytes(), 0);
        let b = RowValue::new(Cell::blob(&[0, 1, 2]));
        assert_eq!(b.blob().unwrap(), &[0, 1, 2]);
        assert_eq!(b.type_code(), SQLITE_BLOB);
    }

    #[test]
    fn magic_tells_our_values_apart() {
        let v = RowValue::new(Cell::Integer(1));
        // SAFETY: a live RowValue, readable for its whole size.
        assert!(unsafe { RowValue::is_ours(&v as *const RowValue as *const u8) });
        let other = [0u64; 4];
        // SAFETY: 32 readable bytes, more than the magic's offset and size.
        assert!(!unsafe { RowValue::is_ours(other.as_ptr() as *const u8) });
    }
}
