//! The text form of a filter: what `Display` writes, which parses back to the
//! same filter.

use std::fmt::{self, Write};

use super::Filter;
use super::model::{Condition, Expr, Literal, Test};

/// A string literal in double quotes, escaping `"`, `\` and control characters.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Literal {
    /// The literal as the text form writes it: strings quoted, times unquoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => f.write_str(&quote(s)),
            // `Display` for f64 is the shortest text that reads back to the same number,
            // and never uses an exponent, so the lexer reads it as a number.
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Status(s) => f.write_str(s.as_str()),
            Literal::Time(t) => write!(f, "{t}"),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.field())?;
        match self.test() {
            Test::In(values) => {
                f.write_str("in [")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Test::Contains(s) => write!(f, "contains {}", quote(s)),
            Test::Exists => f.write_str("exists"),
            t => write!(f, "{} {}", t.op(), t.value().expect("a comparison has a value")),
        }
    }
}

/// How tightly the surrounding context binds, to decide on parentheses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Context {
    Top,
    Or,
    And,
    Not,
}

fn write_expr(f: &mut fmt::Formatter<'_>, e: &Expr, ctx: Context) -> fmt::Result {
    let (children, sep, own) = match e {
        Expr::Cond(c) => return write!(f, "{c}"),
        Expr::Not(inner) => {
            f.write_str("not ")?;
            return write_expr(f, inner, Context::Not);
        }
        Expr::And(cs) => (cs, " and ", Context::And),
        Expr::Or(cs) => (cs, " or ", Context::Or),
    };
    let parens = ctx > own;
    if parens {
        f.write_str("(")?;
    }
    for (i, c) in children.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write_expr(f, c, own)?;
    }
    if parens {
        f.write_str(")")?;
    }
    Ok(())
}

fn write_ids(f: &mut fmt::Formatter<'_>, keyword: &str, ids: &[String]) -> fmt::Result {
    write!(f, "{keyword} [")?;
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(&quote(id))?;
    }
    f.write_str("]")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(f, self, Context::Top)
    }
}

impl fmt::Display for Filter {
    /// The canonical text form: `all` when there are no criteria, then the
    /// `include` and `exclude` lists when they are not empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.criteria() {
            Some(e) => write!(f, "{e}")?,
            None => f.write_str("all")?,
        }
        if !self.include().is_empty() {
            f.write_str(" ")?;
            write_ids(f, "include", self.include())?;
        }
        if !self.exclude().is_empty() {
            f.write_str(" ")?;
            write_ids(f, "exclude", self.exclude())?;
        }
        Ok(())
    }
}
