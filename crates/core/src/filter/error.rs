//! What is wrong with a filter, and where.

use std::fmt;

use crate::FieldError;

/// The kind of problem, as a stable machine-readable code (see [`ErrorKind::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text does not follow the grammar: a token was found where another was expected.
    Syntax,
    /// A string literal has no closing `"`.
    UnterminatedString,
    /// A literal cannot be read: a bad escape, a duration like `5Q`, a malformed
    /// number or timestamp, an unquoted version.
    InvalidLiteral,
    /// The field is not one the filter language knows.
    UnknownField,
    /// The operator is not defined for the field's type (`product < "x"`,
    /// `prop.beta < true`, `fw.host < "build-7"`).
    WrongOperator,
    /// The value does not fit the field (a number for a version, a timestamp for a
    /// property, an invalid device id).
    InvalidValue,
    /// A limit is exceeded: more than 10 property or metadata conditions, too many
    /// conditions, nesting too deep, a list too long.
    Limit,
    /// The JSON form's blocks are put together wrongly (an empty nested block,
    /// `include` inside a nested block).
    Structure,
}

impl ErrorKind {
    /// A short `snake_case` code, for API error details.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::UnterminatedString => "unterminated_string",
            ErrorKind::InvalidLiteral => "invalid_literal",
            ErrorKind::UnknownField => "unknown_field",
            ErrorKind::WrongOperator => "wrong_operator",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::Limit => "limit",
            ErrorKind::Structure => "structure",
        }
    }
}

/// Where in the input a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A place in the text form (or in a JSON document's source text).
    Text {
        /// Byte offset from the start of the input.
        offset: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column, counted in characters.
        column: usize,
    },
    /// A place in the JSON form, as a path: `properties[10]`, `status.time_since_activation`,
    /// `any[0].versions.firmware[1].value`. The empty path is the document itself.
    Json { path: String },
    /// A filter built in code, with no source to point into.
    Unknown,
}

impl Location {
    /// The location of byte `offset` in `input`. An offset inside a character or
    /// past the end is clamped to a character boundary.
    pub fn in_text(input: &str, offset: usize) -> Location {
        let mut offset = offset.min(input.len());
        while !input.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &input[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = input[line_start..offset].chars().count() + 1;
        Location::Text { offset, line, column }
    }

    pub fn json(path: impl Into<String>) -> Location {
        Location::Json { path: path.into() }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Text { line: 1, column, .. } => write!(f, "column {column}"),
            Location::Text { line, column, .. } => write!(f, "line {line}, column {column}"),
            Location::Json { path } if path.is_empty() => f.write_str("the filter"),
            Location::Json { path } => write!(f, "`{path}`"),
            Location::Unknown => f.write_str("the filter"),
        }
    }
}

/// One problem with a filter. Its `Display` is one sentence for a person:
/// `at column 25: unknown field "foo" (expected one of …, found "foo")`.
///
/// **Invariant:** `message` says what is wrong without repeating the location;
/// `expected` and `found`, when set, are short phrases (`"a closing \`\"\`"`,
/// `"end of input"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub kind: ErrorKind,
    pub location: Location,
    pub message: String,
    /// What would have been accepted here.
    pub expected: Option<String>,
    /// What was there instead, as written (or `end of input`).
    pub found: Option<String>,
}

impl FilterError {
    pub fn new(kind: ErrorKind, location: Location, message: impl Into<String>) -> Self {
        Self { kind, location, message: message.into(), expected: None, found: None }
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    /// The byte offset in the text form, when the error points into text.
    pub fn offset(&self) -> Option<usize> {
        match self.location {
            Location::Text { offset, .. } => Some(offset),
            _ => None,
        }
    }

    /// The problem as a [`FieldError`] on `field` (the request field that held the
    /// filter), for the crate's usual validation reports.
    pub fn to_field_error(&self, field: &str) -> FieldError {
        let field = match &self.location {
            Location::Json { path } if !path.is_empty() => format!("{field}.{path}"),
            _ => field.to_owned(),
        };
        let message = match &self.location {
            Location::Text { .. } => format!("at {}: {}", self.location, self.describe()),
            _ => self.describe(),
        };
        FieldError::new(field, message)
    }

    /// The message with what was expected and found, without the location.
    pub fn describe(&self) -> String {
        let mut s = self.message.clone();
        match (&self.expected, &self.found) {
            (Some(e), Some(f)) => s.push_str(&format!(" (expected {e}; found {f})")),
            (Some(e), None) => s.push_str(&format!(" (expected {e})")),
            (None, Some(f)) => s.push_str(&format!(" (found {f})")),
            (None, None) => {}
        }
        s
    }

    /// The offending line of `input` with a caret under the error's column, for a
    /// terminal. Empty when the error does not point into text.
    pub fn caret(&self, input: &str) -> String {
        let Location::Text { offset, column, .. } = self.location else { return String::new() };
        let Some(before) = input.get(..offset) else { return String::new() };
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let end = input[start..].find('\n').map_or(input.len(), |i| start + i);
        format!("{}\n{}^", &input[start..end], " ".repeat(column.saturating_sub(1)))
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.location, self.describe())
    }
}

impl std::error::Error for FilterError {}

impl From<FilterError> for crate::Error {
    fn from(e: FilterError) -> Self {
        crate::Error::Invalid(vec![e.to_field_error("filter")])
    }
}

/// Quotes a piece of input for `found`: `` `5Q` ``.
pub(crate) fn quoted(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() > MAX { format!("`{}…`", s.chars().take(MAX).collect::<String>()) } else { format!("`{s}`") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let input = "a\nbé c";
        assert_eq!(Location::in_text(input, 0), Location::Text { offset: 0, line: 1, column: 1 });
        assert_eq!(Location::in_text(input, 2), Location::Text { offset: 2, line: 2, column: 1 });
        // `é` is two bytes but one column.
        assert_eq!(Location::in_text(input, 6), Location::Text { offset: 6, line: 2, column: 4 });
        // Inside a character: clamped back to its start.
        assert_eq!(Location::in_text(input, 4), Location::Text { offset: 3, line: 2, column: 2 });
        assert_eq!(Location::in_text(input, 99), Location::Text { offset: 7, line: 2, column: 5 });
    }

    #[test]
    fn caret_points_at_the_column() {
        let input = "product == \"x\"\nand foo == 1";
        let e = FilterError::new(ErrorKind::UnknownField, Location::in_text(input, 19), "unknown field");
        assert_eq!(e.caret(input), "and foo == 1\n    ^");
        assert_eq!(e.to_string(), "at line 2, column 5: unknown field");
    }
}
