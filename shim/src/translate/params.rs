//! SQLite's parameters: `?`, `?NNN`, `:name`, `@name`, `$name`.
//!
//! SQLite numbers parameters by their order in the text: `?NNN` is index
//! NNN, a plain `?` takes the largest index so far plus one, and a name takes
//! the index of its first appearance (a repeated name is one parameter).
//! [`number_parameters`] does that numbering on the token stream and rewrites
//! every placeholder of the syntax tree to the canonical `?N` (N = SQLite's
//! 1-based index). [`to_postgres`] renumbers one finished PostgreSQL
//! statement: each use of a `?N` becomes its own `$k`, in order, and
//! `args[k - 1]` records which SQLite parameter feeds it.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{Statement, Value, ValueWithSpan, VisitMut, VisitorMut};
use sqlparser::tokenizer::Token;

use super::dialect::Source;
use super::Error;

/// SQLite's largest parameter number (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_PARAMETER: usize = 32766;

/// The parameters of a statement, by SQLite index.
#[derive(Debug, Default)]
pub struct Parameters {
    /// `names[i]` is the name of parameter `i + 1` (`None` for `?`).
    pub names: Vec<Option<String>>,
    /// SQLite index (1-based) of the placeholder starting at each location.
    by_location: HashMap<(u64, u64), usize>,
}

impl Parameters {
    /// Number the placeholders of `source` as SQLite does.
    pub fn from_source(source: &Source) -> Result<Parameters, Error> {
        let mut p = Parameters::default();
        for t in &source.tokens {
            if let Token::Placeholder(text) = &t.token {
                let index = p.index_of(text)?;
                p.by_location
                    .insert((t.span.start.line, t.span.start.column), index);
            }
        }
        Ok(p)
    }

    fn index_of(&mut self, text: &str) -> Result<usize, Error> {
        if text == "?" {
            self.names.push(None);
            return Ok(self.names.len());
        }
        if let Some(digits) = text.strip_prefix('?') {
            let n: usize = digits
                .parse()
                .ok()
                .filter(|n| (1..=MAX_PARAMETER).contains(n))
                .ok_or_else(|| {
                    Error::new(format!(
                        "variable number must be between ?1 and ?{MAX_PARAMETER}"
                    ))
                })?;
            if self.names.len() < n {
                self.names.resize(n, None);
            }
            self.names[n - 1] = Some(text.to_string());
            return Ok(n);
        }
        if let Some(i) = self.names.iter().position(|n| n.as_deref() == Some(text)) {
            return Ok(i + 1);
        }
        self.names.push(Some(text.to_string()));
        Ok(self.names.len())
    }

    /// Rewrite every placeholder of `statement` to the canonical `?N`.
    pub fn canonicalize(&self, statement: &mut Statement) -> Result<(), Error> {
        let mut v = Canonicalize {
            params: self,
            error: None,
        };
        let _ = statement.visit(&mut v);
        v.error.map_or(Ok(()), Err)
    }
}

struct Canonicalize<'a> {
    params: &'a Parameters,
    error: Option<Error>,
}

impl VisitorMut for Canonicalize<'_> {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if let Value::Placeholder(text) = &mut value.value {
            let key = (value.span.start.line, value.span.start.column);
            match self.params.by_location.get(&key) {
                Some(index) => *text = format!("?{index}"),
                None => {
                    self.error = Some(Error::new(format!(
                        "parameter {text} could not be numbered"
                    )));
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The SQLite index of a canonical placeholder.
pub fn canonical_index(value: &Value) -> Option<usize> {
    match value {
        Value::Placeholder(t) => t.strip_prefix('?')?.parse().ok(),
        _ => None,
    }
}

/// Renumber a finished statement to `$1 … $n`, one per use; returns, for
/// each `$k`, the 0-based SQLite parameter index feeding it.
pub fn to_postgres(statement: &mut Statement) -> Vec<usize> {
    let mut v = Renumber { args: Vec::new() };
    let _ = statement.visit(&mut v);
    v.args
}

struct Renumber {
    args: Vec<usize>,
}

impl VisitorMut for Renumber {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if let Some(index) = canonical_index(&value.value) {
            // Each use is its own `$k`: PostgreSQL infers a type per use
            // (`:a` may fill an integer and a real column).
            self.args.push(index - 1);
            value.value = Value::Placeholder(format!("${}", self.args.len()));
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(sql: &str) -> (Vec<Option<String>>, String, Vec<usize>) {
        let source = Source::new(sql).unwrap();
        let params = Parameters::from_source(&source).unwrap();
        let mut st = source.parse().unwrap();
        params.canonicalize(&mut st).unwrap();
        let args = to_postgres(&mut st);
        (params.names, st.to_string(), args)
    }

    #[test]
    fn plain_question_marks_count_up() {
        let (names, sql, args) = numbered("SELECT ?, ?, ?");
        assert_eq!(names, vec![None, None, None]);
        assert_eq!(sql, "SELECT $1, $2, $3");
        assert_eq!(args, vec![0, 1, 2]);
    }

    #[test]
    fn numbered_and_named_share_one_sequence() {
        let (names, sql, args) = numbered("SELECT ?3, ?, :a, @b, $c, :a");
        assert_eq!(names[2].as_deref(), Some("?3"));
        assert_eq!(names[3], None);
        assert_eq!(names[4].as_deref(), Some(":a"));
        assert_eq!(names[5].as_deref(), Some("@b"));
        assert_eq!(names[6].as_deref(), Some("$c"));
        assert_eq!(names.len(), 7);
        assert_eq!(sql, "SELECT $1, $2, $3, $4, $5, $6");
        assert_eq!(args, vec![2, 3, 4, 5, 6, 4]);
    }

    #[test]
    fn out_of_range_number_is_an_error() {
        let source = Source::new("SELECT ?0").unwrap();
        assert!(Parameters::from_source(&source).is_err());
    }
}
