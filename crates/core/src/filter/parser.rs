//! The text form's recursive-descent parser. The grammar (also in `docs/filters.md`):
//!
//! ```text
//! filter    = [ "all" | expr ] [ "include" ids ] [ "exclude" ids ] ;
//! expr      = and_expr { "or" and_expr } ;
//! and_expr  = unary { "and" unary } ;
//! unary     = "not" unary | "(" expr ")" | condition ;
//! condition = field ( cmp value | "in" list | "contains" string | "exists" ) ;
//! cmp       = "==" | "=" | "!=" | "<" | "<=" | ">" | ">=" ;
//! list      = "[" value { "," value } [ "," ] "]" ;
//! ids       = "[" [ string { "," string } [ "," ] ] "]" ;
//! value     = string | number | "true" | "false" | status | timestamp | duration "ago" ;
//! ```
//!
//! Keywords, fixed field names and status values are case-insensitive.

use super::error::{ErrorKind, FilterError, Location, quoted};
use super::lexer::{Lexer, Tok, Token};
use super::model::{Condition, Expr, Field, Literal, Op, Part, TimeRef};
use super::{Filter, MAX_TEXT, Tally, check_ids};
use crate::ConnectionStatus;

/// Deepest nesting of parentheses and `not`s the parser follows (a guard for the
/// stack; the canonical tree's depth limit is checked after).
const MAX_NESTING: usize = 64;

pub(super) const FIELDS: &str = "id, product, status, activated, connected, group, fw.<component>, hw, \
     module.model, module.version, template, prop.<name> or meta.<key>";

/// Words that cannot start a condition.
const RESERVED: [&str; 9] = ["and", "or", "not", "in", "contains", "exists", "ago", "include", "exclude"];

const AFTER_CONDITION: &str = "`and`, `or`, `include`, `exclude` or the end of the filter";

/// What an empty filter should have said.
pub(super) const EMPTY_EXPECTED: &str = "a condition, `include`/`exclude` lists, or `all` for every device";

pub(super) fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_TEXT {
        return Err(FilterError::new(
            ErrorKind::Limit,
            Location::in_text(input, MAX_TEXT),
            format!("a filter's text is at most {MAX_TEXT} bytes"),
        ));
    }
    let mut p = Parser { input, lexer: Lexer::new(input), peeked: None, nesting: 0, tally: Tally::default() };
    p.filter()
}

struct Parser<'a> {
    input: &'a str,
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    nesting: usize,
    tally: Tally,
}

fn is_keyword(tok: &Tok<'_>, keyword: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token<'a>, FilterError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("peeked"))
    }

    fn next(&mut self) -> Result<Token<'a>, FilterError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    fn peek_keyword(&mut self, keyword: &str) -> Result<bool, FilterError> {
        Ok(is_keyword(&self.peek()?.tok, keyword))
    }

    fn at(&self, offset: usize) -> Location {
        Location::in_text(self.input, offset)
    }

    /// An error about the token `t`: it was found where `expected` was.
    fn unexpected(&self, t: &Token<'a>, message: impl Into<String>, expected: impl Into<String>) -> FilterError {
        FilterError::new(ErrorKind::Syntax, self.at(t.start), message)
            .expected(expected)
            .found(t.tok.describe(&self.input[t.start..t.end]))
    }

    fn filter(&mut self) -> Result<Filter, FilterError> {
        let first = self.peek()?.tok.clone();
        if first == Tok::Eof {
            // Every device must be asked for in so many words (`all`), never by leaving a filter empty.
            let t = self.next()?;
            return Err(self.unexpected(&t, "the filter is empty", EMPTY_EXPECTED));
        }
        let criteria = if is_keyword(&first, "include") || is_keyword(&first, "exclude") {
            None
        } else if is_keyword(&first, "all") {
            self.next()?;
            None
        } else {
            Some(self.expr()?)
        };
        let mut include = None;
        let mut exclude = None;
        loop {
            let t = self.next()?;
            let slot = if is_keyword(&t.tok, "include") {
                &mut include
            } else if is_keyword(&t.tok, "exclude") {
                &mut exclude
            } else if t.tok == Tok::Eof {
                break;
            } else {
                let expected = match (&include, &exclude) {
                    (None, None) if criteria.is_some() => AFTER_CONDITION,
                    (None, None) => "a condition, `include`, `exclude` or the end of the filter",
                    _ => "`include`, `exclude` or the end of the filter",
                };
                return Err(self.unexpected(
                    &t,
                    format!("unexpected {}", t.tok.describe(&self.input[t.start..t.end])),
                    expected,
                ));
            };
            let word = &self.input[t.start..t.end];
            if slot.is_some() {
                return Err(FilterError::new(ErrorKind::Syntax, self.at(t.start), format!("`{word}` is given twice"))
                    .expected("one `include` list and one `exclude` list at most"));
            }
            *slot = Some(self.id_list(&word.to_ascii_lowercase())?);
        }
        Filter::assemble(criteria, include.unwrap_or_default(), exclude.unwrap_or_default(), self.at(0))
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut children = vec![self.and_expr()?];
        while self.peek_keyword("or")? {
            self.next()?;
            children.push(self.and_expr()?);
        }
        Ok(if children.len() == 1 { children.pop().expect("one") } else { Expr::Or(children) })
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut children = vec![self.unary()?];
        while self.peek_keyword("and")? {
            self.next()?;
            children.push(self.unary()?);
        }
        Ok(if children.len() == 1 { children.pop().expect("one") } else { Expr::And(children) })
    }

    fn nest(&mut self, t: &Token<'a>) -> Result<(), FilterError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(FilterError::new(
                ErrorKind::Limit,
                self.at(t.start),
                format!("parentheses and `not` nest more than {MAX_NESTING} levels deep"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let t = self.next()?;
        match &t.tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                self.nest(&t)?;
                let inner = self.unary()?;
                self.nesting -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.nest(&t)?;
                let inner = self.expr()?;
                let close = self.next()?;
                if close.tok != Tok::RParen {
                    return Err(self.unexpected(
                        &close,
                        format!("the `(` at {} is not closed", self.at(t.start)),
                        "`and`, `or` or `)`",
                    ));
                }
                self.nesting -= 1;
                Ok(inner)
            }
            Tok::Word(w) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => {
                let w = *w;
                self.condition(t.start, w)
            }
            _ => Err(self.unexpected(
                &t,
                format!("expected a condition, found {}", t.tok.describe(&self.input[t.start..t.end])),
                "a field (product, status, fw.host, prop.region, …), `not` or `(`",
            )),
        }
    }

    /// Reads a field name. Fixed names and prefixes are case-insensitive; the
    /// name after a prefix is kept as written, or given as a string right after
    /// the dot (`prop."my key"`).
    fn field(&mut self, start: usize, word: &'a str) -> Result<Field, FilterError> {
        let lower = word.to_ascii_lowercase();
        let fixed = match lower.as_str() {
            "id" => Some(Field::Id),
            "product" => Some(Field::Product),
            "status" | "connection_status" => Some(Field::Status),
            "activated" | "activated_at" => Some(Field::Activated),
            "connected" | "connected_at" | "last_seen" => Some(Field::Connected),
            "group" => Some(Field::Group),
            "hw" | "hardware" | "hardware_version" => Some(Field::Hardware),
            "module.model" | "module_model" => Some(Field::ModuleModel),
            "module.version" | "module_version" => Some(Field::ModuleVersion),
            "template" | "template_id" => Some(Field::Template),
            _ => None,
        };
        if let Some(f) = fixed {
            return Ok(f);
        }
        type Make = fn(String) -> Field;
        let prefixes: [(&str, Make); 6] = [
            ("fw.", Field::Firmware),
            ("firmware.", Field::Firmware),
            ("prop.", Field::Property),
            ("property.", Field::Property),
            ("meta.", Field::Metadata),
            ("metadata.", Field::Metadata),
        ];
        for (prefix, make) in prefixes {
            if !lower.starts_with(prefix) {
                continue;
            }
            let name = &word[prefix.len()..];
            if !name.is_empty() {
                return Ok(make(name.to_owned()));
            }
            let end = start + word.len();
            let t = self.peek()?;
            if let (Tok::Str(s), true) = (&t.tok, t.start == end) {
                let name = s.clone();
                self.next()?;
                return Ok(make(name));
            }
            let t = self.peek()?.clone();
            return Err(self.unexpected(
                &t,
                format!("`{word}` needs a name"),
                format!("a name right after `{word}`, like {word}region, or {word}\"my name\" in double quotes"),
            ));
        }
        Err(FilterError::new(ErrorKind::UnknownField, self.at(start), format!("unknown field `{word}`"))
            .expected(format!("one of {FIELDS}"))
            .found(quoted(word)))
    }

    fn condition(&mut self, start: usize, word: &'a str) -> Result<Expr, FilterError> {
        let field = self.field(start, word)?;
        let op_token = self.next()?;
        let op = match &op_token.tok {
            Tok::Cmp(op) => *op,
            Tok::Word(w) if w.eq_ignore_ascii_case("in") => Op::In,
            Tok::Word(w) if w.eq_ignore_ascii_case("contains") => Op::Contains,
            Tok::Word(w) if w.eq_ignore_ascii_case("exists") => Op::Exists,
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                return Err(self.unexpected(
                    &op_token,
                    format!("negate a whole condition with `not` in front of it: `not {field} …`"),
                    "an operator: ==, !=, <, <=, >, >=, in, contains or exists",
                ));
            }
            _ => {
                return Err(self.unexpected(
                    &op_token,
                    format!("expected an operator after `{field}`"),
                    "an operator: ==, !=, <, <=, >, >=, in, contains or exists",
                ));
            }
        };
        let ops = field.operators();
        if !ops.contains(&op) {
            // Report before reading the value, so that the operator is what is pointed at.
            let e = Condition::build(field, op, vec![]).expect_err("operator not allowed");
            return Err(self.condition_error(e, start, op_token.start, &[]));
        }
        let mut positions = Vec::new();
        let values = match op {
            Op::Exists => vec![],
            Op::In => self.list(&mut positions)?,
            _ => {
                let (v, at) = self.value()?;
                positions.push(at);
                vec![v]
            }
        };
        let cond = Condition::build(field, op, values)
            .map_err(|e| self.condition_error(e, start, op_token.start, &positions))?;
        if let Err((kind, message)) = self.tally.add(cond.field()) {
            return Err(FilterError::new(kind, self.at(start), message));
        }
        Ok(Expr::Cond(cond))
    }

    fn condition_error(
        &self,
        e: super::model::ConditionError,
        field_at: usize,
        op_at: usize,
        value_at: &[usize],
    ) -> FilterError {
        let offset = match e.part {
            Part::Field => field_at,
            Part::Op => op_at,
            Part::Value(i) => value_at.get(i).or(value_at.last()).copied().unwrap_or(op_at),
        };
        let mut err = FilterError::new(e.kind, self.at(offset), e.message);
        err.expected = e.expected;
        err
    }

    /// `[ value, … ]`, with the start offset of each value.
    fn list(&mut self, positions: &mut Vec<usize>) -> Result<Vec<Literal>, FilterError> {
        let open = self.next()?;
        if open.tok != Tok::LBracket {
            return Err(self.unexpected(&open, "`in` takes a list", "`[`, as in `in [\"a\", \"b\"]`"));
        }
        let mut values = Vec::new();
        loop {
            if self.peek()?.tok == Tok::RBracket {
                self.next()?;
                return Ok(values);
            }
            let (v, at) = self.value()?;
            values.push(v);
            positions.push(at);
            let t = self.next()?;
            match t.tok {
                Tok::Comma => {}
                Tok::RBracket => return Ok(values),
                _ => return Err(self.unexpected(&t, "the list goes on without a comma", "`,` or `]`")),
            }
        }
    }

    /// One value, and where it starts.
    fn value(&mut self) -> Result<(Literal, usize), FilterError> {
        let t = self.next()?;
        let v = match t.tok {
            Tok::Str(s) => Literal::String(s),
            Tok::Number(n) => Literal::Number(n),
            Tok::Time(ts) => Literal::Time(TimeRef::At(ts)),
            Tok::Period(p) => {
                let ago = self.next()?;
                if !is_keyword(&ago.tok, "ago") {
                    return Err(self.unexpected(
                        &ago,
                        format!("a duration is a time only with `ago`: `{p} ago`"),
                        "`ago`",
                    ));
                }
                Literal::Time(TimeRef::Ago(p))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Word(w) if ConnectionStatus::parse(&w.to_ascii_lowercase()).is_some() => {
                Literal::Status(ConnectionStatus::parse(&w.to_ascii_lowercase()).expect("status"))
            }
            Tok::Word(w) => {
                return Err(FilterError::new(ErrorKind::Syntax, self.at(t.start), format!("`{w}` is not a value"))
                    .expected(format!("a value: text in double quotes (\"{w}\"), a number, true, false, online, offline, initializing, a timestamp or a duration and `ago`"))
                    .found(quoted(w)));
            }
            _ => {
                return Err(self.unexpected(
                    &t,
                    "expected a value",
                    "a value: text in double quotes, a number, true, false, online, offline, initializing, a timestamp or a duration and `ago`",
                ));
            }
        };
        Ok((v, t.start))
    }

    /// `[ "id", … ]` after `include` or `exclude`.
    fn id_list(&mut self, which: &str) -> Result<Vec<String>, FilterError> {
        let open = self.next()?;
        if open.tok != Tok::LBracket {
            return Err(self.unexpected(
                &open,
                format!("`{which}` takes a list of device ids"),
                "`[`, as in `[\"dsn-1\", \"dsn-2\"]`",
            ));
        }
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        loop {
            let t = self.next()?;
            match t.tok {
                Tok::RBracket => break,
                Tok::Str(s) => {
                    ids.push(s);
                    positions.push(t.start);
                }
                _ => return Err(self.unexpected(&t, "expected a device id", "a device id in double quotes, or `]`")),
            }
            let t = self.next()?;
            match t.tok {
                Tok::Comma => {}
                Tok::RBracket => break,
                _ => return Err(self.unexpected(&t, "the list goes on without a comma", "`,` or `]`")),
            }
        }
        let mut first = None;
        check_ids(which, &ids, &mut |i, (kind, message)| {
            if first.is_none() {
                let at = positions.get(i).copied().unwrap_or(open.start);
                first = Some(FilterError::new(kind, Location::in_text(self.input, at), message));
            }
        });
        match first {
            Some(e) => Err(e),
            None => Ok(ids),
        }
    }
}
