//! The text form's tokens, read one at a time so that the leftmost problem is
//! the one reported.

use jiff::Timestamp;

use super::error::{ErrorKind, FilterError, Location, quoted};
use super::model::{Op, Period, parse_timestamp};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
    /// A keyword or field name: a letter or `_`, then letters, digits, `_`, `.`, `-`.
    Word(&'a str),
    /// A string literal, escapes resolved.
    Str(String),
    Number(f64),
    Period(Period),
    Time(Timestamp),
    /// `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Eof,
}

impl Tok<'_> {
    /// How a token is named in an error's `found`.
    pub(super) fn describe(&self, text: &str) -> String {
        match self {
            Tok::Eof => "end of input".into(),
            Tok::Str(_) => format!("the string {}", quoted(text)),
            _ => quoted(text),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token<'a> {
    pub tok: Tok<'a>,
    /// Byte range in the input.
    pub start: usize,
    pub end: usize,
}

pub(super) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a str) -> Self {
        Lexer { input, pos: 0 }
    }

    fn err(&self, kind: ErrorKind, at: usize, message: impl Into<String>) -> FilterError {
        FilterError::new(kind, Location::in_text(self.input, at), message)
    }

    fn peek_char(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, FilterError> {
        let rest = &self.input[self.pos..];
        let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        self.pos += rest.len() - trimmed.len();
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(Token { tok: Tok::Eof, start, end: start });
        };
        let next = self.input[start + c.len_utf8()..].chars().next();
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '=' if next == Some('=') => (Tok::Cmp(Op::Eq), 2),
            '=' => (Tok::Cmp(Op::Eq), 1),
            '!' if next == Some('=') => (Tok::Cmp(Op::Ne), 2),
            '<' if next == Some('=') => (Tok::Cmp(Op::Le), 2),
            '<' => (Tok::Cmp(Op::Lt), 1),
            '>' if next == Some('=') => (Tok::Cmp(Op::Ge), 2),
            '>' => (Tok::Cmp(Op::Gt), 1),
            '"' => return self.string(),
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                return self.literal();
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = rest_len(&self.input[start..], |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                (Tok::Word(&self.input[start..start + len]), len)
            }
            '!' => {
                return Err(self
                    .err(ErrorKind::Syntax, start, "`!` on its own is not an operator")
                    .expected("`!=`, or `not` before a condition to negate it")
                    .found("`!`"));
            }
            '&' | '|' => {
                let word = if c == '&' { "and" } else { "or" };
                return Err(self
                    .err(ErrorKind::Syntax, start, format!("`{c}` is not an operator; write `{word}`"))
                    .expected(format!("`{word}`"))
                    .found(format!("`{c}`")));
            }
            '\'' => {
                return Err(self
                    .err(ErrorKind::Syntax, start, "strings are written in double quotes")
                    .expected("`\"`")
                    .found("`'`"));
            }
            other => {
                return Err(self
                    .err(ErrorKind::Syntax, start, format!("unexpected character `{}`", other.escape_debug()))
                    .expected("a field, a value, an operator, `(`, `)`, `[`, `]` or `,`")
                    .found(format!("`{}`", other.escape_debug())));
            }
        };
        self.pos += len;
        Ok(Token { tok, start, end: self.pos })
    }

    /// A string in double quotes, with escapes `\"`, `\\`, `\n`, `\r`, `\t` and `\u{…}`.
    fn string(&mut self) -> Result<Token<'a>, FilterError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.input[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            let at = start + 1 + i;
            match c {
                '"' => {
                    self.pos = at + 1;
                    return Ok(Token { tok: Tok::Str(out), start, end: self.pos });
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'u')) => out.push(self.unicode_escape(at, &mut chars)?),
                    Some((_, other)) => {
                        return Err(self
                            .err(ErrorKind::InvalidLiteral, at, format!("unknown escape `\\{}`", other.escape_debug()))
                            .expected("one of \\\" \\\\ \\n \\r \\t \\u{…}")
                            .found(format!("`\\{}`", other.escape_debug())));
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self
            .err(ErrorKind::UnterminatedString, start, "this string is never closed")
            .expected("a closing `\"`")
            .found("end of input"))
    }

    /// The rest of `\u{1F600}` after the `u`; `at` is the backslash.
    fn unicode_escape(&self, at: usize, chars: &mut std::str::CharIndices<'_>) -> Result<char, FilterError> {
        let bad = || {
            self.err(ErrorKind::InvalidLiteral, at, "invalid unicode escape")
                .expected("`\\u{` and 1 to 6 hex digits of a Unicode scalar value, then `}`")
        };
        if chars.next().map(|(_, c)| c) != Some('{') {
            return Err(bad());
        }
        let mut hex = String::new();
        for (_, c) in chars.by_ref() {
            if c == '}' {
                return u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| (1..=6).contains(&hex.len()))
                    .and_then(char::from_u32)
                    .ok_or_else(bad);
            }
            if !c.is_ascii_hexdigit() || hex.len() == 6 {
                return Err(bad());
            }
            hex.push(c);
        }
        Err(bad())
    }

    /// A word that starts with a digit (or `-` and a digit): a number, a duration
    /// or a timestamp. Anything else that starts this way, like an unquoted
    /// version, is an error that says to quote it.
    fn literal(&mut self) -> Result<Token<'a>, FilterError> {
        let start = self.pos;
        let len =
            rest_len(&self.input[start..], |c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '+' | '-' | '_'));
        let text = &self.input[start..start + len];
        let end = start + len;
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let tok = if digits > 0 && digits < text.len() && text[digits..].bytes().all(|b| b.is_ascii_alphabetic()) {
            let p = Period::parse(text).map_err(|e| {
                let mut err = self.err(ErrorKind::InvalidLiteral, start, e.message).found(quoted(text));
                err.expected = e.expected;
                err
            })?;
            Tok::Period(p)
        } else if is_number(text) {
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Tok::Number(n),
                _ => {
                    return Err(self
                        .err(ErrorKind::InvalidLiteral, start, format!("the number {} is out of range", quoted(text)))
                        .found(quoted(text)));
                }
            }
        } else if looks_like_date(text) {
            let t = parse_timestamp(text).map_err(|e| {
                let mut err = self.err(ErrorKind::InvalidLiteral, start, e.message).found(quoted(text));
                err.expected = e.expected;
                err
            })?;
            Tok::Time(t)
        } else {
            return Err(self
                .err(ErrorKind::InvalidLiteral, start, format!("cannot read {} as a number, a duration or a timestamp", quoted(text)))
                .expected(format!(
                    "a number (20, 2.5), a duration (30d), a timestamp (2024-05-01T00:00:00Z), or text in double quotes (\"{text}\")"
                ))
                .found(quoted(text)));
        };
        self.pos = end;
        Ok(Token { tok, start, end })
    }
}

fn rest_len(s: &str, keep: impl Fn(char) -> bool) -> usize {
    s.find(|c: char| !keep(c)).unwrap_or(s.len())
}

/// `-?digits(.digits)?([eE][+-]?digits)?`
fn is_number(s: &str) -> bool {
    let b = s.strip_prefix('-').unwrap_or(s).as_bytes();
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = digits(b);
    if i == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        let d = digits(&b[i + 1..]);
        if d == 0 {
            return false;
        }
        i += 1 + d;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let d = digits(&b[i..]);
        if d == 0 {
            return false;
        }
        i += d;
    }
    i == b.len()
}

/// `dddd-dd-dd…`
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Result<Vec<Tok<'_>>, FilterError> {
        let mut lx = Lexer::new(s);
        let mut out = vec![];
        loop {
            let t = lx.next_token()?;
            if t.tok == Tok::Eof {
                return Ok(out);
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn reads_every_kind_of_token() {
        let toks = tokens(r#"fw.host<"2.0.0" and(x>=-2.5e3, 30d 2024-05-01T00:00:00Z)!=[=]"#).unwrap();
        assert_eq!(
            toks,
            vec![
                Tok::Word("fw.host"),
                Tok::Cmp(Op::Lt),
                Tok::Str("2.0.0".into()),
                Tok::Word("and"),
                Tok::LParen,
                Tok::Word("x"),
                Tok::Cmp(Op::Ge),
                Tok::Number(-2500.0),
                Tok::Comma,
                Tok::Period(Period::parse("30d").unwrap()),
                Tok::Time("2024-05-01T00:00:00Z".parse().unwrap()),
                Tok::RParen,
                Tok::Cmp(Op::Ne),
                Tok::LBracket,
                Tok::Cmp(Op::Eq),
                Tok::RBracket,
            ]
        );
    }

    #[test]
    fn strings_resolve_escapes() {
        assert_eq!(tokens(r#""a\"b\\c\n\t\u{e9}""#).unwrap(), vec![Tok::Str("a\"b\\c\n\t\u{e9}".into())]);
        let e = tokens(r#""a\qb""#).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::InvalidLiteral, Some(2)));
        assert_eq!(tokens(r#""\u{110000}""#).unwrap_err().kind, ErrorKind::InvalidLiteral);
        let e = tokens(r#"x == "abc"#).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::UnterminatedString, Some(5)));
        assert_eq!(tokens(r#""abc\"#).unwrap_err().kind, ErrorKind::UnterminatedString);
    }

    #[test]
    fn literals_that_are_not_numbers_durations_or_timestamps_are_errors() {
        let e = tokens("x > 5Q ago").unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::InvalidLiteral, Some(4)));
        assert!(e.message.contains("unknown duration unit `Q`"), "{e}");
        let e = tokens("x == 2.0.0").unwrap_err();
        assert!(e.expected.unwrap().contains("\"2.0.0\""));
        assert_eq!(tokens("1e999").unwrap_err().kind, ErrorKind::InvalidLiteral);
        assert_eq!(tokens("2024-13-01").unwrap_err().kind, ErrorKind::InvalidLiteral);
        assert_eq!(tokens("x && y").unwrap_err().kind, ErrorKind::Syntax);
        assert_eq!(tokens("x == 'a'").unwrap_err().kind, ErrorKind::Syntax);
    }
}
