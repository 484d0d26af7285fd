//! Values crossing between SQLite and PostgreSQL.
//!
//! Parameters go to PostgreSQL in text format (blobs as binary `bytea`),
//! whatever type PostgreSQL inferred for them: its input functions then
//! accept what SQLite's loose typing lets a client bind (an integer for a
//! boolean, text digits for a number). Results come back in binary format
//! and become SQLite storage classes: integers and booleans INTEGER, floats
//! REAL, `numeric` INTEGER when integral (else REAL), `bytea` BLOB, and
//! text-like types TEXT. A type with no SQLite meaning is an error naming
//! it, never a guess.

use crate::row::Cell;
use crate::value::Value;
use bytes::{BufMut, BytesMut};
use std::error::Error as StdError;
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};

type BoxError = Box<dyn StdError + Sync + Send>;

/// A bound SQLite value as a PostgreSQL parameter.
#[derive(Debug)]
pub struct Param<'a>(pub &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Blob(b) => {
                if *ty != Type::BYTEA && std::str::from_utf8(b).is_err() {
                    return Err(format!(
                        "a blob that is not UTF-8 cannot be bound where PostgreSQL expects {ty}"
                    )
                    .into());
                }
                out.put_slice(b);
            }
            Value::Text(s) if *ty == Type::BYTEA => out.put_slice(s.as_bytes()),
            Value::Text(s) => out.put_slice(s.as_bytes()),
            Value::Integer(i) if *ty == Type::BOOL => {
                out.put_slice(if *i != 0 { b"t" } else { b"f" })
            }
            Value::Integer(i) => out.put_slice(i.to_string().as_bytes()),
            Value::Real(f) if *ty == Type::BOOL => {
                out.put_slice(if *f != 0.0 { b"t" } else { b"f" })
            }
            Value::Real(f) if is_integer_type(ty) && f.fract() == 0.0 && f.abs() < 9.2e18 => {
                out.put_slice((*f as i64).to_string().as_bytes())
            }
            Value::Real(f) => out.put_slice(real_text(*f).as_bytes()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        if *ty == Type::BYTEA {
            Format::Binary
        } else {
            Format::Text
        }
    }

    to_sql_checked!();
}

fn is_integer_type(ty: &Type) -> bool {
    matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::OID)
}

/// A REAL in a form PostgreSQL's float and numeric inputs read back
/// exactly (Rust prints the shortest round-tripping digits).
fn real_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{f:?}")
    }
}

/// The widest type of the same family, so one prepared statement takes any
/// value SQLite could bind (an int4 guess would refuse 3,000,000,000).
pub fn widen(ty: &Type) -> Type {
    match *ty {
        Type::INT2 | Type::INT4 => Type::INT8,
        Type::FLOAT4 => Type::FLOAT8,
        _ => ty.clone(),
    }
}

/// A result column's value as an SQLite [`Cell`].
pub struct Column(pub Cell);

impl<'a> FromSql<'a> for Column {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let cell = match *ty {
            Type::INT2 => Cell::Integer(i16::from_be_bytes(raw.try_into()?) as i64),
            Type::INT4 => Cell::Integer(i32::from_be_bytes(raw.try_into()?) as i64),
            Type::INT8 => Cell::Integer(i64::from_be_bytes(raw.try_into()?)),
            Type::OID | Type::REGCLASS | Type::XID => Cell::Integer(u32::from_be_bytes(raw.try_into()?) as i64),
            Type::BOOL => Cell::Integer((raw.first() == Some(&1)) as i64),
            Type::FLOAT4 => Cell::Real(f32::from_be_bytes(raw.try_into()?) as f64),
            Type::FLOAT8 => Cell::Real(f64::from_be_bytes(raw.try_into()?)),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => Cell::blob(raw),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON | Type::XML => {
                Cell::text(std::str::from_utf8(raw)?)
            }
            Type::CHAR => Cell::text(std::str::from_utf8(raw)?),
            Type::JSONB => Cell::text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?),
            Type::DATE => Cell::text(&date_text(i32::from_be_bytes(raw.try_into()?) as i64)),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => Cell::text(&timestamp_text(i64::from_be_bytes(raw.try_into()?))),
            Type::UUID => Cell::text(&uuid_text(raw)?),
            _ => {
                return Err(format!(
                    "PostgreSQL type {ty} has no SQLite equivalent; the translation should cast it to text or a number"
                )
                .into())
            }
        };
        Ok(Column(cell))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Ok(Column(Cell::Null))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// `numeric` in binary form: digit count, weight, sign, scale, then base
/// 10000 digits. Integral values that fit become INTEGER, others REAL.
fn numeric(raw: &[u8]) -> Result<Cell, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        Ok(u16::from_be_bytes(
            raw.get(i * 2..i * 2 + 2)
                .ok_or("short numeric")?
                .try_into()?,
        ))
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i32;
    let sign = word(2)?;
    match sign {
        0xC000 => return Ok(Cell::Real(f64::NAN)),
        0xD000 => return Ok(Cell::Real(f64::INFINITY)),
        0xF000 => return Ok(Cell::Real(f64::NEG_INFINITY)),
        _ => {}
    }
    let negative = sign == 0x4000;
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<_, _>>()?;
    // Integral when no digit sits after the decimal point.
    let integral = digits
        .iter()
        .enumerate()
        .all(|(i, d)| *d == 0 || (weight - i as i32) >= 0);
    if integral && weight < 5 {
        let mut v: i128 = 0;
        for i in 0..=weight.max(-1) {
            let d = digits.get(i as usize).copied().unwrap_or(0) as i128;
            v = v * 10_000 + d;
        }
        let v = if negative { -v } else { v };
        if let Ok(v) = i64::try_from(v) {
            return Ok(Cell::Integer(v));
        }
    }
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    text.push_str("0.");
    for d in &digits {
        text.push_str(&format!("{d:04}"));
    }
    text.push_str(&format!("e{}", (weight + 1) * 4));
    Ok(Cell::Real(text.parse()?))
}

/// Days since 2000-01-01 as `YYYY-MM-DD` (the proleptic Gregorian calendar).
fn date_text(days_since_2000: i64) -> String {
    let (y, m, d) = crate::calendar::civil_from_days(days_since_2000 + 10_957);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Microseconds since 2000-01-01 00:00:00 as SQLite's datetime text.
fn timestamp_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let mut s = format!(
        "{} {:02}:{:02}:{:02}",
        date_text(days),
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        s.push_str(&format!(".{:03}", frac / 1000));
    }
    s
}

fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("bad uuid".into());
    }
    let h: Vec<String> = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(words: &[u16]) -> Cell {
        let raw: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        numeric(&raw).unwrap()
    }

    #[test]
    fn numerics() {
        // 12345678 = [1234, 5678], weight 1
        assert_eq!(num(&[2, 1, 0, 0, 1234, 5678]), Cell::Integer(12_345_678));
        // -5
        assert_eq!(num(&[1, 0, 0x4000, 0, 5]), Cell::Integer(-5));
        // 0
        assert_eq!(num(&[0, 0, 0, 0]), Cell::Integer(0));
        // 1.5 = [1, 5000], weight 0, dscale 1
        assert_eq!(num(&[2, 0, 0, 1, 1, 5000]), Cell::Real(1.5));
        // 0.25 = [2500], weight -1
        assert_eq!(num(&[1, 0xFFFF, 0, 2, 2500]), Cell::Real(0.25));
        // 10000 = [1], weight 1
        assert_eq!(num(&[1, 1, 0, 0, 1]), Cell::Integer(10_000));
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(
            timestamp_text(86_400 * 1_000_000 + 3_661_000_000),
            "2000-01-02 01:01:01"
        );
        assert_eq!(timestamp_text(500_000), "2000-01-01 00:00:00.500");
    }

    #[test]
    fn parameters_in_text_form() {
        let mut out = BytesMut::new();
        Param(&Value::Integer(7))
            .to_sql(&Type::BOOL, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"t");
        out.clear();
        Param(&Value::Real(3.0))
            .to_sql(&Type::INT8, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"3");
        out.clear();
        Param(&Value::Real(0.1))
            .to_sql(&Type::FLOAT8, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"0.1");
        assert!(matches!(
            Param(&Value::Null).to_sql(&Type::TEXT, &mut out).unwrap(),
            IsNull::Yes
        ));
        assert!(matches!(
            Param(&Value::Blob(vec![1])).encode_format(&Type::BYTEA),
            Format::Binary
        ));
        assert!(matches!(
            Param(&Value::Integer(1)).encode_format(&Type::INT8),
            Format::Text
        ));
    }
}
