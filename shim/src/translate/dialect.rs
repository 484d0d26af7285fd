//! SQLite's dialect as Plex writes it: the tokenizer and parser front end.
//!
//! [`Source`] tokenizes one statement with sqlparser's SQLite dialect and
//! normalizes identifiers at the token level, the way SQLite's own lexer sees
//! them: a name is a name whether it is written bare, in double quotes,
//! backticks or brackets, and names compare case-insensitively. Every
//! identifier token becomes a double-quoted, ASCII-lowercased name, so the
//! printed PostgreSQL is immune to reserved words and case folding. Keywords
//! are left alone (the parser needs them).
//!
//! [`PlexDialect`] is SQLite's dialect plus the few spellings sqlparser does
//! not parse: `NOT GLOB`, `NOT MATCH`, `NOT REGEXP` and the postfix `ISNULL`.

use std::any::TypeId;
use std::collections::HashMap;

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, DataType, Expr, Query, SetExpr, SetOperator, SetQuantifier, Statement,
    UnaryOperator, Values, VisitMut, VisitorMut,
};
use sqlparser::dialect::{BindPlaceholderStyle, Dialect, Precedence, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::construct::parenthesized;
use super::Error;

/// SQLite's compound operators have one precedence and group left to
/// right (`A UNION B INTERSECT C` is `(A UNION B) INTERSECT C`), where
/// sqlparser, as standard SQL and PostgreSQL, binds `INTERSECT` tighter.
/// Each chain is rebuilt left to right, and a `UNION`/`EXCEPT` on the left
/// of an `INTERSECT` is parenthesized so that PostgreSQL reads it so.
struct LeftToRightCompounds;

impl VisitorMut for LeftToRightCompounds {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if matches!(query.body.as_ref(), SetExpr::SetOperation { .. }) {
            let empty = SetExpr::Values(Values {
                explicit_row: false,
                value_keyword: false,
                rows: vec![],
            });
            let chain = std::mem::replace(query.body.as_mut(), empty);
            let (mut operands, mut operators) = (Vec::new(), Vec::new());
            flatten_compound(chain, &mut operands, &mut operators);
            let mut operands = operands.into_iter();
            let mut acc = operands.next().expect("a compound has operands");
            for ((op, set_quantifier), right) in operators.into_iter().zip(operands) {
                let regrouped = op == SetOperator::Intersect
                    && matches!(&acc, SetExpr::SetOperation { op, .. } if *op != SetOperator::Intersect);
                if regrouped {
                    acc = parenthesized(acc, None);
                }
                acc = SetExpr::SetOperation {
                    left: Box::new(acc),
                    op,
                    set_quantifier,
                    right: Box::new(right),
                };
            }
            *query.body = acc;
        }
        ControlFlow::Continue(())
    }
}

/// The operands and operators of a compound, in the order written.
fn flatten_compound(
    set: SetExpr,
    operands: &mut Vec<SetExpr>,
    operators: &mut Vec<(SetOperator, SetQuantifier)>,
) {
    match set {
        SetExpr::SetOperation {
            left,
            op,
            set_quantifier,
            right,
        } => {
            flatten_compound(*left, operands, operators);
            operators.push((op, set_quantifier));
            flatten_compound(*right, operands, operators);
        }
        other => operands.push(other),
    }
}

/// SQLite's dialect, extended with the operators sqlparser lacks.
#[derive(Debug, Default)]
pub struct PlexDialect {
    sqlite: SQLiteDialect,
}

/// The dialect-specific parse decisions sqlparser makes by dialect type are
/// SQLite's: this dialect reports itself as [`SQLiteDialect`].
impl Dialect for PlexDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<SQLiteDialect>()
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.sqlite.is_delimited_identifier_start(ch)
    }
    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.sqlite.identifier_quote_style(identifier)
    }
    fn ordered_bind_placeholder_style(&self) -> Option<BindPlaceholderStyle> {
        self.sqlite.ordered_bind_placeholder_style()
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.sqlite.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.sqlite.is_identifier_part(ch)
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }
    fn supports_start_transaction_modifier(&self) -> bool {
        true
    }
    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
        self.sqlite.parse_statement(parser)
    }
    fn parse_data_type(&self, parser: &mut Parser) -> Option<Result<DataType, ParserError>> {
        self.sqlite.parse_data_type(parser)
    }
    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        if let Some(op) = negated_operator(parser) {
            parser.next_token();
            parser.next_token();
            let right = match parser.parse_subexpr(precedence) {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
            let positive = Expr::BinaryOp {
                left: Box::new(expr.clone()),
                op,
                right: Box::new(right),
            };
            return Some(Ok(Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: Box::new(Expr::Nested(Box::new(positive))),
            }));
        }
        if is_isnull_word(&parser.peek_token_ref().token) {
            parser.next_token();
            return Some(Ok(Expr::IsNull(Box::new(expr.clone()))));
        }
        self.sqlite.parse_infix(parser, expr, precedence)
    }
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        if negated_operator(parser).is_some() {
            return Some(Ok(self.prec_value(Precedence::Like)));
        }
        if is_isnull_word(&parser.peek_token_ref().token) {
            return Some(Ok(self.prec_value(Precedence::Is)));
        }
        self.sqlite.get_next_precedence(parser)
    }
    fn prec_value(&self, prec: Precedence) -> u8 {
        self.sqlite.prec_value(prec)
    }
    fn supports_in_empty_list(&self) -> bool {
        true
    }
    fn supports_limit_comma(&self) -> bool {
        true
    }
    fn supports_asc_desc_in_column_definition(&self) -> bool {
        true
    }
    fn supports_dollar_placeholder(&self) -> bool {
        true
    }
    fn supports_notnull_operator(&self) -> bool {
        true
    }
    fn supports_is_operator(&self) -> bool {
        true
    }
    fn supports_comma_separated_trim(&self) -> bool {
        true
    }
    fn supports_double_eq_assignment(&self) -> bool {
        true
    }
    fn supports_string_literal_column_names(&self) -> bool {
        true
    }
    fn supports_cast_empty_data_type_to_unspecified(&self) -> bool {
        true
    }
    fn supports_national_string_literal(&self) -> bool {
        false
    }
    fn supports_parens_around_table_factor(&self) -> bool {
        true
    }
    fn supports_numeric_literal_underscores(&self) -> bool {
        self.sqlite.supports_numeric_literal_underscores()
    }
    fn supports_unterminated_block_comments(&self) -> bool {
        self.sqlite.supports_unterminated_block_comments()
    }
    fn is_column_alias(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        self.sqlite.is_column_alias(kw, parser)
    }
    fn supports_over_keyword_as_column_alias(&self) -> bool {
        self.sqlite.supports_over_keyword_as_column_alias()
    }
    fn supports_indexed_by(&self) -> bool {
        self.sqlite.supports_indexed_by()
    }
    fn is_table_alias(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        self.sqlite.is_table_alias(kw, parser)
    }
    fn supports_comma_join_constraint(&self) -> bool {
        self.sqlite.supports_comma_join_constraint()
    }
    fn supports_aggregate_order_by_with_empty_args(&self) -> bool {
        self.sqlite.supports_aggregate_order_by_with_empty_args()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.sqlite.supports_bitwise_shift_operators()
    }
    fn supports_in_table_expression(&self) -> bool {
        self.sqlite.supports_in_table_expression()
    }
    fn is_table_factor(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        self.sqlite.is_table_factor(kw, parser)
    }
    fn supports_update_order_by(&self) -> bool {
        true
    }
    fn between_low_bound_precedence(&self) -> u8 {
        self.sqlite.between_low_bound_precedence()
    }
}

/// `NOT GLOB`, `NOT MATCH`, `NOT REGEXP` ahead: the operator they negate.
fn negated_operator(parser: &Parser) -> Option<BinaryOperator> {
    let is_not =
        matches!(&parser.peek_token_ref().token, Token::Word(w) if w.keyword == Keyword::NOT);
    if !is_not {
        return None;
    }
    match &parser.peek_nth_token_ref(1).token {
        Token::Word(w) if w.keyword == Keyword::GLOB => Some(BinaryOperator::Glob),
        Token::Word(w) if w.keyword == Keyword::MATCH => Some(BinaryOperator::Match),
        Token::Word(w) if w.keyword == Keyword::REGEXP => Some(BinaryOperator::Regexp),
        _ => None,
    }
}

fn is_isnull_word(token: &Token) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("isnull"))
}

/// How deep the parser may nest. SQLite takes expressions 1,000 deep
/// (`SQLITE_MAX_EXPR_DEPTH`: a chain of `OR`s, which sqlparser parses
/// without nesting) and nests parentheses, `NOT` and unary minus 93 to 94
/// deep before its parser's stack is full; sqlparser counts a few levels
/// per nesting, and its default (50) refused 30 parentheses. sqlparser
/// grows its stack as it recurses (`stacker`); the translation runs with
/// room to grow as well (`translate::translate`'s caller).
pub const PARSER_RECURSION_LIMIT: usize = 1000;

/// One statement's tokens, identifiers normalized, with what the
/// translation needs to know about the original text.
pub struct Source<'a> {
    /// The statement as the client wrote it.
    pub text: &'a str,
    /// Tokens after normalization, whitespace and comments dropped.
    pub tokens: Vec<TokenWithSpan>,
    /// Byte offset in `text` of the start of each line (1-based lines).
    line_starts: Vec<usize>,
    /// Whether every line is ASCII, so a column is a byte count (token
    /// locations count characters; finding one by walking the line made a
    /// 500-row VALUES on one line quadratic).
    ascii: bool,
    /// Identifiers as written (before lowercasing), by token start.
    original_names: HashMap<(u64, u64), String>,
}

impl<'a> Source<'a> {
    /// Tokenize `text` and normalize its identifiers.
    pub fn new(text: &'a str) -> Result<Source<'a>, Error> {
        let dialect = PlexDialect::default();
        let raw = Tokenizer::new(&dialect, text)
            .tokenize_with_location()
            .map_err(|e| Error::new(format!("{e}")))?;
        let mut original_names = HashMap::new();
        let mut tokens = Vec::with_capacity(raw.len());
        for mut t in merge_named_placeholders(raw) {
            match &mut t.token {
                Token::Whitespace(_) => continue,
                Token::Word(w) if is_identifier_word(w) => {
                    original_names.insert(loc_key(t.span.start), w.value.clone());
                    w.value = w.value.to_ascii_lowercase();
                    w.quote_style = Some('"');
                    w.keyword = Keyword::NoKeyword;
                }
                _ => {}
            }
            tokens.push(t);
        }
        let mut line_starts = vec![0, 0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ok(Source {
            text,
            tokens,
            line_starts,
            original_names,
            ascii: text.is_ascii(),
        })
    }

    /// The first keyword of the statement, upper-case (`""` for none).
    pub fn first_word(&self) -> String {
        self.word_at(0)
    }

    /// The `i`-th token as an upper-case bare word (`""` if it is not one).
    pub fn word_at(&self, i: usize) -> String {
        match self.tokens.get(i).map(|t| &t.token) {
            Some(Token::Word(w)) if w.quote_style.is_none() || w.keyword == Keyword::NoKeyword => {
                w.value.to_ascii_uppercase()
            }
            _ => String::new(),
        }
    }

    /// Parse the tokens into exactly one statement.
    pub fn parse(&self) -> Result<Statement, Error> {
        let dialect = PlexDialect::default();
        let mut parser = Parser::new(&dialect)
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .with_tokens_with_locations(self.tokens.clone());
        let statement = parser
            .parse_statement()
            .map_err(|e| Error::new(self.syntax_message(e)))?;
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token_ref().token != Token::EOF {
            return Err(Error::new(format!(
                "near \"{}\": syntax error (one statement expected)",
                parser.peek_token_ref().token
            )));
        }
        let mut statement = statement;
        let _ = statement.visit(&mut LeftToRightCompounds);
        Ok(statement)
    }

    /// Byte offset in the text of a token location.
    pub fn offset(&self, loc: Location) -> usize {
        let line_start = self
            .line_starts
            .get(loc.line as usize)
            .copied()
            .unwrap_or(self.text.len());
        if self.ascii {
            return (line_start + loc.column.saturating_sub(1) as usize).min(self.text.len());
        }
        let line = &self.text[line_start..];
        line.char_indices()
            .nth(loc.column.saturating_sub(1) as usize)
            .map(|(i, _)| line_start + i)
            .unwrap_or(self.text.len())
    }

    /// The original text between two token locations.
    pub fn slice(&self, start: Location, end: Location) -> &'a str {
        let (a, b) = (self.offset(start), self.offset(end));
        &self.text[a.min(b)..b]
    }

    /// An identifier as written before lowercasing (for a double-quoted
    /// name SQLite falls back to reading as a string, `DEFAULT "t"`).
    pub fn original_name(&self, start: Location) -> Option<&str> {
        self.original_names.get(&loc_key(start)).map(String::as_str)
    }
}

/// `:name` and `@name` arrive as a sign and a word: one placeholder.
fn merge_named_placeholders(raw: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(raw.len());
    let mut it = raw.into_iter().peekable();
    while let Some(t) = it.next() {
        let sign = match t.token {
            Token::Colon => Some(':'),
            Token::AtSign => Some('@'),
            _ => None,
        };
        if let (Some(sign), Some(next)) = (sign, it.peek()) {
            if let Token::Word(w) = &next.token {
                if w.quote_style.is_none() && next.span.start == t.span.end {
                    let name = format!("{sign}{}", w.value);
                    let span = t.span.union(&next.span);
                    it.next();
                    out.push(TokenWithSpan::new(Token::Placeholder(name), span));
                    continue;
                }
            }
        }
        out.push(t);
    }
    out
}

/// Words that name something: quoted words, and bare words that are not
/// keywords sqlparser knows (`ISNULL` is SQLite's and must stay a word).
fn is_identifier_word(w: &sqlparser::tokenizer::Word) -> bool {
    match w.quote_style {
        Some(_) => true,
        None => w.keyword == Keyword::NoKeyword && !w.value.eq_ignore_ascii_case("isnull"),
    }
}

fn loc_key(l: Location) -> (u64, u64) {
    (l.line, l.column)
}

impl Source<'_> {
    /// A parse error as `syntax error at or near "<token as written>"`
    /// (PostgreSQL's wording), with the parser's expectation.
    fn syntax_message(&self, e: ParserError) -> String {
        let text = e.to_string();
        let detail = text.strip_prefix("sql parser error: ").unwrap_or(&text);
        let detail = detail.split(" at Line: ").next().unwrap_or(detail);
        let near = error_location(&text)
            .and_then(|loc| self.tokens.iter().find(|t| t.span.start == loc))
            .map(|t| self.slice(t.span.start, t.span.end).to_string());
        match near {
            Some(token) => format!("syntax error at or near \"{token}\" ({detail})"),
            None => format!("syntax error ({detail})"),
        }
    }
}

/// The `Line: l, Column: c` a parser error names.
fn error_location(message: &str) -> Option<Location> {
    let rest = &message[message.rfind("Line: ")? + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some(Location {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_become_lowercase_double_quoted() {
        let s = Source::new("SELECT `Index`, [My Col], \"T\".x FROM 'tbl'").unwrap();
        let printed = s.parse().unwrap().to_string();
        assert_eq!(
            printed, "SELECT \"index\", \"my col\", \"t\".\"x\" FROM 'tbl'",
            "before names::normalize"
        );
    }

    #[test]
    fn not_glob_and_isnull_parse() {
        let s = Source::new("SELECT a NOT GLOB 'x*' AND b ISNULL AND c NOTNULL FROM t").unwrap();
        let printed = s.parse().unwrap().to_string();
        assert_eq!(
            printed,
            "SELECT NOT (\"a\" GLOB 'x*') AND \"b\" IS NULL AND \"c\" IS NOT NULL FROM \"t\""
        );
    }

    #[test]
    fn syntax_errors_name_the_token_as_written() {
        let e = Source::new("SELEC 1").unwrap().parse().unwrap_err();
        assert!(
            e.message.starts_with("syntax error at or near \"SELEC\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn two_statements_are_refused() {
        let s = Source::new("SELECT 1; SELECT 2").unwrap();
        assert!(s.parse().is_err());
    }

    #[test]
    fn slices_follow_original_text() {
        let s = Source::new("CREATE TABLE x (a\n  dt_integer(8))").unwrap();
        let a = s
            .tokens
            .iter()
            .position(|t| matches!(&t.token, Token::Word(w) if w.value == "dt_integer"))
            .unwrap();
        let close = s.tokens[a + 3].span.end;
        assert_eq!(s.slice(s.tokens[a].span.start, close), "dt_integer(8)");
    }
}
