//! The filter model: an expression tree of typed, validated conditions.
//!
//! A [`Condition`] is one field tested one way (`fw.host < "2.0.0"`). It can only be
//! built through [`Condition::new`] or [`Condition::build`], which check that the
//! operator is defined for the field's type and that every value fits, so a
//! `Condition` that exists is valid. [`Expr`] combines conditions with and, or
//! and not; [`super::Filter`] holds the tree in canonical form (see there).

use std::fmt;
use std::str::FromStr;

use jiff::tz::Offset;
use jiff::{SignedDuration, Span, Timestamp};

use super::error::ErrorKind;
use super::{MAX_LIST, MAX_NAME, MAX_STRING};
use crate::{ConnectionStatus, Version};

/// What a condition tests on a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The device id (DSN). Text, always present.
    Id,
    /// The product key (OEM model). Text, always present.
    Product,
    /// The connection status. Always present.
    Status,
    /// When the device was activated (`activated_at`). A time, may be missing.
    Activated,
    /// When the device was last connected (`last_seen_at`). A time, may be missing.
    Connected,
    /// Membership of a static group. The device record does not hold its groups:
    /// evaluation is given them.
    Group,
    /// The installed version of one firmware component (`fw.host`). May be missing.
    Firmware(String),
    /// The hardware version. A version, may be missing.
    Hardware,
    /// The connectivity module's model. Text, may be missing.
    ModuleModel,
    /// The connectivity module's firmware version. A version, may be missing.
    ModuleVersion,
    /// The template id. Text, may be missing.
    Template,
    /// A typed property (`prop.region`). May be missing.
    Property(String),
    /// A metadata entry (`meta.campaign`). Text, may be missing.
    Metadata(String),
}

/// The type of a field, which decides its operators and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Compared as exact, case-sensitive strings.
    Text,
    /// Compared as semantic versions where both sides are semver, as strings otherwise.
    Version,
    /// `online`, `offline` or `initializing`.
    Status,
    /// A point in time, compared with absolute timestamps or relative `30d ago`.
    Time,
    /// The set of groups the device belongs to.
    Group,
    /// A typed value: boolean, number or string.
    Property,
}

impl FieldType {
    fn describe(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Version => "a version",
            FieldType::Status => "a connection status",
            FieldType::Time => "a time",
            FieldType::Group => "group membership",
            FieldType::Property => "a property",
        }
    }
}

impl Field {
    pub fn field_type(&self) -> FieldType {
        match self {
            Field::Id | Field::Product | Field::ModuleModel | Field::Template | Field::Metadata(_) => FieldType::Text,
            Field::Firmware(_) | Field::Hardware | Field::ModuleVersion => FieldType::Version,
            Field::Status => FieldType::Status,
            Field::Activated | Field::Connected => FieldType::Time,
            Field::Group => FieldType::Group,
            Field::Property(_) => FieldType::Property,
        }
    }

    /// Whether a device may lack this field (so that `exists` means something).
    pub fn is_optional(&self) -> bool {
        !matches!(self, Field::Id | Field::Product | Field::Status | Field::Group)
    }

    /// The operators defined for this field, in the order the docs list them.
    pub fn operators(&self) -> &'static [Op] {
        use Op::*;
        match self {
            Field::Id | Field::Product | Field::Status | Field::Group => &[Eq, Ne, In],
            Field::ModuleModel | Field::Template | Field::Metadata(_) => &[Eq, Ne, In, Exists],
            Field::Firmware(_) | Field::Hardware | Field::ModuleVersion => &[Eq, Ne, Lt, Le, Gt, Ge, In, Exists],
            Field::Activated | Field::Connected => &[Lt, Le, Gt, Ge, Exists],
            Field::Property(_) => &[Eq, Ne, Lt, Le, Gt, Ge, In, Contains, Exists],
        }
    }

    /// The name after the prefix of a named field (`host` in `fw.host`).
    pub fn name(&self) -> Option<&str> {
        match self {
            Field::Firmware(n) | Field::Property(n) | Field::Metadata(n) => Some(n),
            _ => None,
        }
    }

    /// The text form's name for fields without a name part, or the prefix (`fw.`).
    pub(crate) fn keyword(&self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Product => "product",
            Field::Status => "status",
            Field::Activated => "activated",
            Field::Connected => "connected",
            Field::Group => "group",
            Field::Firmware(_) => "fw.",
            Field::Hardware => "hw",
            Field::ModuleModel => "module.model",
            Field::ModuleVersion => "module.version",
            Field::Template => "template",
            Field::Property(_) => "prop.",
            Field::Metadata(_) => "meta.",
        }
    }
}

/// A name of a firmware component, property or metadata key is written bare in
/// the text form when it is made only of these characters.
pub(crate) fn is_bare_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl fmt::Display for Field {
    /// The field as the text form writes it: `product`, `fw.host`, `prop."my key"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())?;
        match self.name() {
            Some(n) if is_bare_name(n) => f.write_str(n),
            Some(n) => f.write_str(&super::render::quote(n)),
            None => Ok(()),
        }
    }
}

/// An operator as written. Which ones a field takes is [`Field::operators`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    Exists,
}

impl Op {
    pub const ALL: [Op; 9] = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::In, Op::Contains, Op::Exists];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Contains => "contains",
            Op::Exists => "exists",
        }
    }

    /// Reads an operator; `=` is accepted for `==`.
    pub fn parse(s: &str) -> Option<Op> {
        if s == "=" {
            return Some(Op::Eq);
        }
        Op::ALL.into_iter().find(|o| o.as_str().eq_ignore_ascii_case(s))
    }

    fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Op::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown operator `{s}`, expected one of ==, !=, <, <=, >, >=, in, contains, exists"
            ))
        })
    }
}

/// A value a condition compares with.
///
/// **Invariant** (kept by [`Condition`]): numbers are finite; timestamps are whole
/// microseconds (the store's precision).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
    Status(ConnectionStatus),
    Time(TimeRef),
}

// Numbers are finite (a `Condition` invariant), so equality is reflexive.
impl Eq for Literal {}

impl Literal {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Literal::String(s) => Some(s),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Literal::String(_) => "text",
            Literal::Number(_) => "a number",
            Literal::Bool(_) => "a boolean",
            Literal::Status(_) => "a connection status",
            Literal::Time(_) => "a time",
        }
    }
}

/// A point in time a condition compares with: absolute, or relative to the
/// evaluation's `now` (kept relative in the model, resolved at evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeRef {
    /// A fixed instant, whole microseconds.
    At(Timestamp),
    /// `now` minus a period: `30d ago`.
    Ago(Period),
}

impl TimeRef {
    /// The instant this refers to when evaluated at `now`, truncated to whole
    /// microseconds (so that the store, which keeps microseconds, and in-memory
    /// evaluation compare the same instants).
    pub fn resolve(&self, now: Timestamp) -> Timestamp {
        match self {
            TimeRef::At(t) => *t,
            TimeRef::Ago(p) => p.before(now),
        }
    }

    /// Reads an RFC 3339 timestamp (`2024-05-01T00:00:00Z`, any offset), a date
    /// (`2024-05-01`, midnight UTC) or a relative time (`30d ago`).
    pub fn parse(s: &str) -> Result<TimeRef, LiteralError> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix("ago").filter(|p| p.ends_with(char::is_whitespace)) {
            return Ok(TimeRef::Ago(Period::parse(p.trim_end())?));
        }
        parse_timestamp(s).map(TimeRef::At)
    }
}

impl fmt::Display for TimeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeRef::At(t) => write!(f, "{t}"),
            TimeRef::Ago(p) => write!(f, "{p} ago"),
        }
    }
}

/// Truncates to whole microseconds (toward zero, as `as_microsecond` does).
pub(crate) fn to_micros(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// Reads an RFC 3339 timestamp or a date (midnight UTC), truncated to microseconds.
pub(crate) fn parse_timestamp(s: &str) -> Result<Timestamp, LiteralError> {
    let bad = |why: &str| LiteralError {
        message: format!("`{s}` is not a timestamp{why}"),
        expected: Some("an RFC 3339 timestamp like 2024-05-01T00:00:00Z, or a date like 2024-05-01".into()),
    };
    if s.len() == 10 && !s.contains('T') {
        let date = jiff::civil::Date::from_str(s).map_err(|_| bad(""))?;
        return Offset::UTC.to_timestamp(date.to_datetime(jiff::civil::Time::midnight())).map_err(|_| bad(""));
    }
    match Timestamp::from_str(s) {
        Ok(t) => Ok(to_micros(t)),
        Err(_) if jiff::civil::DateTime::from_str(s).is_ok() => {
            Err(bad(": it has no offset; add `Z` for UTC or an offset like +02:00"))
        }
        Err(_) => Err(bad("")),
    }
}

/// A length of time written `<count><unit>`: `30d`, `12h`, `3M`, `1Y`.
///
/// **Invariant:** at most 1,000 years long, so `now` minus it is always a valid time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    count: u32,
    unit: PeriodUnit,
}

/// The unit of a [`Period`]. Units are one letter; case does not matter except
/// that `m` is minutes and `M` is months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeriodUnit {
    /// `s`
    Second,
    /// `m`
    Minute,
    /// `h`
    Hour,
    /// `d`: 24 hours.
    Day,
    /// `w`: 7 days.
    Week,
    /// `M`: calendar months in UTC (a month before 31 March is 28 or 29 February).
    Month,
    /// `y`: calendar years in UTC.
    Year,
}

impl PeriodUnit {
    pub const ALL: [PeriodUnit; 7] = [
        PeriodUnit::Second,
        PeriodUnit::Minute,
        PeriodUnit::Hour,
        PeriodUnit::Day,
        PeriodUnit::Week,
        PeriodUnit::Month,
        PeriodUnit::Year,
    ];

    pub fn letter(self) -> char {
        match self {
            PeriodUnit::Second => 's',
            PeriodUnit::Minute => 'm',
            PeriodUnit::Hour => 'h',
            PeriodUnit::Day => 'd',
            PeriodUnit::Week => 'w',
            PeriodUnit::Month => 'M',
            PeriodUnit::Year => 'y',
        }
    }

    pub fn from_letter(c: char) -> Option<PeriodUnit> {
        match c {
            's' | 'S' => Some(PeriodUnit::Second),
            'm' => Some(PeriodUnit::Minute),
            'h' | 'H' => Some(PeriodUnit::Hour),
            'd' | 'D' => Some(PeriodUnit::Day),
            'w' | 'W' => Some(PeriodUnit::Week),
            'M' => Some(PeriodUnit::Month),
            'y' | 'Y' => Some(PeriodUnit::Year),
            _ => None,
        }
    }

    /// Seconds in a fixed unit; `None` for calendar units.
    fn fixed_seconds(self) -> Option<i64> {
        match self {
            PeriodUnit::Second => Some(1),
            PeriodUnit::Minute => Some(60),
            PeriodUnit::Hour => Some(3600),
            PeriodUnit::Day => Some(86_400),
            PeriodUnit::Week => Some(7 * 86_400),
            PeriodUnit::Month | PeriodUnit::Year => None,
        }
    }

    /// The longest count allowed: 1,000 years' worth.
    fn max_count(self) -> u32 {
        const YEARS: i64 = 1000;
        match self.fixed_seconds() {
            Some(s) => u32::try_from(YEARS * 366 * 86_400 / s).unwrap_or(u32::MAX),
            None if self == PeriodUnit::Month => (YEARS * 12) as u32,
            None => YEARS as u32,
        }
    }
}

const UNITS_EXPECTED: &str = "a unit: s, m (minutes), h, d, w, M (months) or y";

impl Period {
    /// A period of `count` units; an error if longer than 1,000 years.
    pub fn new(count: u32, unit: PeriodUnit) -> Result<Period, LiteralError> {
        if count > unit.max_count() {
            return Err(LiteralError {
                message: format!("`{count}{}` is too long: durations are at most 1000 years", unit.letter()),
                expected: None,
            });
        }
        Ok(Period { count, unit })
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn unit(&self) -> PeriodUnit {
        self.unit
    }

    /// Reads `30d`, `2D`, `12h`, `3M`, `1Y`: digits, then one unit letter.
    pub fn parse(s: &str) -> Result<Period, LiteralError> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (count, unit_text) = s.split_at(digits);
        if digits == 0 {
            return Err(LiteralError {
                message: format!("`{s}` is not a duration"),
                expected: Some("a count and a unit, like 30d, 12h, 3M or 1y".into()),
            });
        }
        let mut letters = unit_text.chars();
        let unit = match (letters.next(), letters.next()) {
            (None, _) => {
                return Err(LiteralError {
                    message: format!("the duration `{s}` has no unit"),
                    expected: Some(UNITS_EXPECTED.into()),
                });
            }
            (Some(c), None) => PeriodUnit::from_letter(c),
            _ => None,
        };
        let Some(unit) = unit else {
            return Err(LiteralError {
                message: format!("unknown duration unit `{unit_text}` in `{s}`"),
                expected: Some(UNITS_EXPECTED.into()),
            });
        };
        let count = count.parse::<u32>().map_err(|_| LiteralError {
            message: format!("`{s}` is too long: durations are at most 1000 years"),
            expected: None,
        })?;
        Period::new(count, unit)
    }

    /// `now` minus this period, truncated to whole microseconds. Days and weeks are
    /// exact multiples of 24 hours; months and years are calendar arithmetic in UTC.
    /// Never fails: a result before the earliest representable time is clamped to it
    /// (which the 1,000-year bound keeps from happening for any real `now`).
    pub fn before(&self, now: Timestamp) -> Timestamp {
        let t = match self.unit.fixed_seconds() {
            Some(s) => now.checked_sub(SignedDuration::from_secs(i64::from(self.count) * s)).ok(),
            None => {
                let span = match self.unit {
                    PeriodUnit::Month => Span::new().try_months(i64::from(self.count)),
                    _ => Span::new().try_years(i64::from(self.count)),
                };
                span.ok()
                    .and_then(|span| Offset::UTC.to_datetime(now).checked_sub(span).ok())
                    .and_then(|dt| Offset::UTC.to_timestamp(dt).ok())
            }
        };
        to_micros(t.unwrap_or(Timestamp::MIN))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.letter())
    }
}

/// Why a literal (a duration, a timestamp) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralError {
    pub message: String,
    pub expected: Option<String>,
}

/// How a condition tests its field. Which tests a field takes is
/// [`Field::operators`]; the values' types follow the field's type.
///
/// The semantics (see [`super::Filter::matches`] for the full statement): every
/// test but `Exists` is false when the field is missing on the device; `Ne` is
/// "present and not equal"; ordering on versions is defined only between
/// semantic versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    Eq(Literal),
    Ne(Literal),
    Lt(Literal),
    Le(Literal),
    Gt(Literal),
    Ge(Literal),
    /// Equal to one of the values (at least one, at most [`MAX_LIST`]).
    In(Vec<Literal>),
    /// The value is a string that contains this one (case-sensitive).
    Contains(String),
    /// The device has the field.
    Exists,
}

impl Test {
    pub fn op(&self) -> Op {
        match self {
            Test::Eq(_) => Op::Eq,
            Test::Ne(_) => Op::Ne,
            Test::Lt(_) => Op::Lt,
            Test::Le(_) => Op::Le,
            Test::Gt(_) => Op::Gt,
            Test::Ge(_) => Op::Ge,
            Test::In(_) => Op::In,
            Test::Contains(_) => Op::Contains,
            Test::Exists => Op::Exists,
        }
    }

    /// The single value of a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`).
    pub fn value(&self) -> Option<&Literal> {
        match self {
            Test::Eq(v) | Test::Ne(v) | Test::Lt(v) | Test::Le(v) | Test::Gt(v) | Test::Ge(v) => Some(v),
            _ => None,
        }
    }

    fn values_mut(&mut self) -> &mut [Literal] {
        match self {
            Test::Eq(v) | Test::Ne(v) | Test::Lt(v) | Test::Le(v) | Test::Gt(v) | Test::Ge(v) => {
                std::slice::from_mut(v)
            }
            Test::In(vs) => vs,
            Test::Contains(_) | Test::Exists => &mut [],
        }
    }
}

/// Which part of a condition a [`ConditionError`] is about, so that each form can
/// point at it (a text position, a JSON path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Field,
    Op,
    /// The value at this index (0 for a single value).
    Value(usize),
}

/// Why a condition is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub kind: ErrorKind,
    pub part: Part,
    pub message: String,
    pub expected: Option<String>,
}

impl ConditionError {
    fn new(kind: ErrorKind, part: Part, message: impl Into<String>) -> Self {
        Self { kind, part, message: message.into(), expected: None }
    }

    fn expected(mut self, e: impl Into<String>) -> Self {
        self.expected = Some(e.into());
        self
    }
}

/// One field tested one way.
///
/// **Invariant:** the operator is one of the field's [`Field::operators`]; every
/// value has the field's type (strings for text, versions and groups; a status;
/// a time; a boolean, finite number or string for properties); ordering on a
/// version field compares with a semantic version; ordering on a property is
/// not with a boolean; `contains` takes a string; `in` has 1 to [`MAX_LIST`]
/// values; names are 1 to [`MAX_NAME`] characters without control characters;
/// strings are at most [`MAX_STRING`] characters; times are whole microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    field: Field,
    test: Test,
}

impl Condition {
    /// Checks a condition built in code. Times are truncated to microseconds.
    pub fn new(field: Field, mut test: Test) -> Result<Condition, ConditionError> {
        check_name(&field)?;
        check_op(&field, test.op())?;
        let ty = field.field_type();
        for (i, v) in test.values_mut().iter_mut().enumerate() {
            let owned = std::mem::replace(v, Literal::Bool(false));
            *v = coerce(ty, owned, i)?;
        }
        check_test(&field, &test)?;
        Ok(Condition { field, test })
    }

    /// Builds a condition from a field, an operator and the values as written
    /// (by the text or the JSON form). Values are converted to the field's type
    /// where the form could not know it: a string is read as a time for time
    /// fields and as a connection status for `status`.
    pub fn build(field: Field, op: Op, values: Vec<Literal>) -> Result<Condition, ConditionError> {
        check_name(&field)?;
        check_op(&field, op)?;
        let count = values.len();
        let one = |mut values: Vec<Literal>| match (values.pop(), values.is_empty()) {
            (Some(v), true) => Ok(v),
            _ => Err(ConditionError::new(
                ErrorKind::InvalidValue,
                Part::Op,
                format!("`{op}` takes exactly one value, not {count}"),
            )),
        };
        let test = match op {
            Op::Eq => Test::Eq(one(values)?),
            Op::Ne => Test::Ne(one(values)?),
            Op::Lt => Test::Lt(one(values)?),
            Op::Le => Test::Le(one(values)?),
            Op::Gt => Test::Gt(one(values)?),
            Op::Ge => Test::Ge(one(values)?),
            Op::In => Test::In(values),
            Op::Contains => match one(values)? {
                Literal::String(s) => Test::Contains(s),
                other => {
                    return Err(ConditionError::new(
                        ErrorKind::InvalidValue,
                        Part::Value(0),
                        format!("`contains` takes text, not {}", other.kind()),
                    )
                    .expected("a string in double quotes"));
                }
            },
            Op::Exists if values.is_empty() => Test::Exists,
            Op::Exists => {
                return Err(ConditionError::new(ErrorKind::InvalidValue, Part::Value(0), "`exists` takes no value"));
            }
        };
        Condition::new(field, test)
    }

    pub fn field(&self) -> &Field {
        &self.field
    }

    pub fn test(&self) -> &Test {
        &self.test
    }

    /// Where this condition goes in the JSON form, which is also its place in the
    /// canonical order of an `and`.
    pub(crate) fn slot(&self) -> Slot {
        let relative_le = matches!(self.test, Test::Le(Literal::Time(TimeRef::Ago(_))));
        match (&self.field, &self.test) {
            (Field::Product, _) => Slot::Product,
            (Field::Id, _) => Slot::Id,
            (Field::Group, _) => Slot::Group,
            (Field::Status, _) => Slot::ConnectionStatus,
            (Field::Activated, _) if relative_le => Slot::TimeSinceActivation,
            (Field::Activated, Test::Gt(_)) => Slot::ActivatedAfter,
            (Field::Activated, Test::Lt(_)) => Slot::ActivatedBefore,
            (Field::Activated, _) => Slot::Activated,
            (Field::Connected, Test::Gt(_)) => Slot::ConnectedAfter,
            (Field::Connected, Test::Lt(_)) => Slot::ConnectedBefore,
            (Field::Connected, _) => Slot::Connected,
            (Field::Firmware(_), _) => Slot::Firmware,
            (Field::Hardware, _) => Slot::Hardware,
            (Field::ModuleModel, _) => Slot::ModuleModel,
            (Field::ModuleVersion, _) => Slot::ModuleVersion,
            (Field::Template, _) => Slot::Template,
            (Field::Property(_), _) => Slot::Properties,
            (Field::Metadata(_), _) => Slot::Metadata,
        }
    }
}

/// The JSON form's places for conditions, in document order. Every condition has
/// exactly one; the canonical order of an `and` sorts its conditions by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Slot {
    Product,
    Id,
    Group,
    ConnectionStatus,
    TimeSinceActivation,
    ActivatedAfter,
    ActivatedBefore,
    Activated,
    ConnectedAfter,
    ConnectedBefore,
    Connected,
    Firmware,
    Hardware,
    ModuleModel,
    ModuleVersion,
    Template,
    Properties,
    Metadata,
}

fn check_name(field: &Field) -> Result<(), ConditionError> {
    let Some(name) = field.name() else { return Ok(()) };
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ConditionError::new(
            ErrorKind::InvalidValue,
            Part::Field,
            format!("`{}` names must be 1 to {MAX_NAME} characters without control characters", field.keyword()),
        ));
    }
    Ok(())
}

fn check_op(field: &Field, op: Op) -> Result<(), ConditionError> {
    let ops = field.operators();
    if ops.contains(&op) {
        return Ok(());
    }
    let list = ops.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", ");
    let what = field.field_type().describe();
    let why = match (op, field.is_optional()) {
        (Op::Exists, false) => format!("`{field}` is always present, so `exists` does not apply"),
        _ => format!("`{op}` does not apply to `{field}`, which is {what}"),
    };
    Err(ConditionError::new(ErrorKind::WrongOperator, Part::Op, why).expected(format!("one of {list}")))
}

/// Converts a value as written to the field's type, or says why it does not fit.
fn coerce(ty: FieldType, v: Literal, index: usize) -> Result<Literal, ConditionError> {
    let part = Part::Value(index);
    let err = |kind, msg: String| ConditionError::new(kind, part, msg);
    let check_len = |s: &str| {
        if s.chars().count() > MAX_STRING {
            Err(err(ErrorKind::Limit, format!("values are at most {MAX_STRING} characters")))
        } else {
            Ok(())
        }
    };
    match (ty, v) {
        (FieldType::Text | FieldType::Group | FieldType::Version | FieldType::Property, Literal::String(s)) => {
            check_len(&s)?;
            Ok(Literal::String(s))
        }
        (FieldType::Property, Literal::Number(n)) if n.is_finite() => Ok(Literal::Number(n)),
        (FieldType::Property, Literal::Number(_)) => Err(err(ErrorKind::InvalidValue, "numbers must be finite".into())),
        (FieldType::Property, Literal::Bool(b)) => Ok(Literal::Bool(b)),
        (FieldType::Status, Literal::Status(s)) => Ok(Literal::Status(s)),
        (FieldType::Status, Literal::String(s)) => match ConnectionStatus::parse(&s.to_ascii_lowercase()) {
            Some(st) => Ok(Literal::Status(st)),
            None => Err(err(ErrorKind::InvalidValue, format!("`{s}` is not a connection status"))
                .expected("online, offline or initializing")),
        },
        (FieldType::Time, Literal::Time(TimeRef::At(t))) => Ok(Literal::Time(TimeRef::At(to_micros(t)))),
        (FieldType::Time, Literal::Time(t)) => Ok(Literal::Time(t)),
        (FieldType::Time, Literal::String(s)) => match TimeRef::parse(&s) {
            Ok(t) => Ok(Literal::Time(t)),
            Err(e) => {
                Err(ConditionError { kind: ErrorKind::InvalidValue, part, message: e.message, expected: e.expected })
            }
        },
        (FieldType::Time, other) => {
            Err(err(ErrorKind::InvalidValue, format!("a time is expected, not {}", other.kind()))
                .expected("a timestamp like 2024-05-01T00:00:00Z or a duration and `ago`, like 30d ago"))
        }
        (FieldType::Version, Literal::Number(_)) => {
            Err(err(ErrorKind::InvalidValue, "versions are written in double quotes".into())
                .expected("a string like \"2.0.0\""))
        }
        (FieldType::Status, other) => {
            Err(err(ErrorKind::InvalidValue, format!("a connection status is expected, not {}", other.kind()))
                .expected("online, offline or initializing"))
        }
        (FieldType::Property, Literal::Status(s)) => {
            Err(err(ErrorKind::InvalidValue, format!("text values are written in double quotes: \"{}\"", s.as_str()))
                .expected("a string in double quotes, a number, true or false"))
        }
        (FieldType::Property, Literal::Time(_)) => {
            Err(err(ErrorKind::InvalidValue, "properties hold strings, numbers or booleans, not times".into())
                .expected("a string in double quotes, a number, true or false"))
        }
        (_, other) => Err(err(ErrorKind::InvalidValue, format!("text is expected, not {}", other.kind()))
            .expected("a string in double quotes")),
    }
}

/// The rules that involve the operator and the values together.
fn check_test(field: &Field, test: &Test) -> Result<(), ConditionError> {
    let op = test.op();
    if let Test::In(values) = test {
        if values.is_empty() {
            return Err(ConditionError::new(ErrorKind::InvalidValue, Part::Op, "`in` needs at least one value"));
        }
        if values.len() > MAX_LIST {
            return Err(ConditionError::new(
                ErrorKind::Limit,
                Part::Value(MAX_LIST),
                format!("an `in` list holds at most {MAX_LIST} values, this one has {}", values.len()),
            ));
        }
    }
    if let Test::Contains(s) = test
        && s.chars().count() > MAX_STRING
    {
        return Err(ConditionError::new(
            ErrorKind::Limit,
            Part::Value(0),
            format!("values are at most {MAX_STRING} characters"),
        ));
    }
    if !op.is_ordering() {
        return Ok(());
    }
    match (field.field_type(), test.value()) {
        (FieldType::Version, Some(Literal::String(s))) if !Version::new(s).is_semver() => Err(ConditionError::new(
            ErrorKind::WrongOperator,
            Part::Op,
            format!("`{op}` compares semantic versions, and `{s}` is not one; other versions take only ==, != or in"),
        )
        .expected("a semantic version like \"2.0.0\"")),
        (FieldType::Property, Some(Literal::Bool(_))) => Err(ConditionError::new(
            ErrorKind::WrongOperator,
            Part::Op,
            format!("`{op}` does not apply to true or false"),
        )
        .expected("==, != or in")),
        _ => Ok(()),
    }
}

/// A tree of conditions.
///
/// In a [`super::Filter`] the tree is canonical: `And` and `Or` have at least two
/// children, none of which is of the same kind (nested ands and ors are
/// flattened); `Not` never holds a `Not`; the children of an `And` are ordered
/// conditions first, in the JSON form's slot order (stable, so conditions in the
/// same slot keep the order they were written in), then `Or`s, then `Not`s.
/// `Or` keeps its children in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cond(Condition),
}

impl Expr {
    /// Every condition in the tree, depth first, in order.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut out = Vec::new();
        self.walk(&mut |c| out.push(c));
        out
    }

    pub(crate) fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Condition)) {
        match self {
            Expr::And(cs) | Expr::Or(cs) => cs.iter().for_each(|c| c.walk(f)),
            Expr::Not(e) => e.walk(f),
            Expr::Cond(c) => f(c),
        }
    }

    /// Levels of `and`, `or` and `not` above the deepest condition (0 for a condition).
    pub fn depth(&self) -> usize {
        match self {
            Expr::And(cs) | Expr::Or(cs) => 1 + cs.iter().map(Expr::depth).max().unwrap_or(0),
            Expr::Not(e) => 1 + e.depth(),
            Expr::Cond(_) => 0,
        }
    }

    /// The canonical form of this tree (see [`Expr`]). Empty `And`s and `Or`s must
    /// have been rejected before.
    pub(crate) fn normalize(self) -> Expr {
        match self {
            Expr::And(children) => {
                let mut flat = Vec::with_capacity(children.len());
                for c in children {
                    match c.normalize() {
                        Expr::And(grand) => flat.extend(grand),
                        other => flat.push(other),
                    }
                }
                flat.sort_by_key(Expr::rank_in_and);
                single_or(flat, Expr::And)
            }
            Expr::Or(children) => {
                let mut flat = Vec::with_capacity(children.len());
                for c in children {
                    match c.normalize() {
                        Expr::Or(grand) => flat.extend(grand),
                        other => flat.push(other),
                    }
                }
                single_or(flat, Expr::Or)
            }
            Expr::Not(inner) => match inner.normalize() {
                Expr::Not(x) => *x,
                other => Expr::Not(Box::new(other)),
            },
            c @ Expr::Cond(_) => c,
        }
    }

    fn rank_in_and(&self) -> (u8, Option<Slot>) {
        match self {
            Expr::Cond(c) => (0, Some(c.slot())),
            Expr::Or(_) => (1, None),
            Expr::Not(_) => (2, None),
            Expr::And(_) => (3, None),
        }
    }

    /// Whether some `And` or `Or` in the tree has no children.
    pub(crate) fn has_empty_group(&self) -> bool {
        match self {
            Expr::And(cs) | Expr::Or(cs) => cs.is_empty() || cs.iter().any(Expr::has_empty_group),
            Expr::Not(e) => e.has_empty_group(),
            Expr::Cond(_) => false,
        }
    }
}

fn single_or(mut children: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if children.len() == 1 { children.pop().expect("one child") } else { make(children) }
}

impl From<Condition> for Expr {
    fn from(c: Condition) -> Self {
        Expr::Cond(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn periods_read_units_with_their_case_rules() {
        assert_eq!(Period::parse("2D").unwrap(), Period::new(2, PeriodUnit::Day).unwrap());
        assert_eq!(Period::parse("2d").unwrap(), Period::new(2, PeriodUnit::Day).unwrap());
        assert_eq!(Period::parse("3M").unwrap().unit(), PeriodUnit::Month);
        assert_eq!(Period::parse("3m").unwrap().unit(), PeriodUnit::Minute);
        assert_eq!(Period::parse("1Y").unwrap().unit(), PeriodUnit::Year);
        assert_eq!(Period::parse("12h").unwrap().unit(), PeriodUnit::Hour);
        assert!(Period::parse("5Q").unwrap_err().message.contains("unknown duration unit `Q`"));
        assert!(Period::parse("5").unwrap_err().message.contains("no unit"));
        assert!(Period::parse("d").is_err());
        assert!(Period::parse("5dd").is_err());
        assert!(Period::parse("1001y").unwrap_err().message.contains("1000 years"));
        assert!(Period::parse("99999999999d").is_err());
        assert!(Period::parse("1000y").is_ok());
    }

    #[test]
    fn periods_subtract_calendar_months_in_utc() {
        let now = ts("2024-03-31T12:00:00.123456789Z");
        assert_eq!(Period::parse("1M").unwrap().before(now), ts("2024-02-29T12:00:00.123456Z"));
        assert_eq!(Period::parse("1y").unwrap().before(now), ts("2023-03-31T12:00:00.123456Z"));
        assert_eq!(Period::parse("2d").unwrap().before(now), ts("2024-03-29T12:00:00.123456Z"));
        assert_eq!(Period::parse("90m").unwrap().before(now), ts("2024-03-31T10:30:00.123456Z"));
        // Before 1970, truncation toward zero (as `as_microsecond` does) rounds up.
        assert_eq!(Period::parse("1000y").unwrap().before(now), ts("1024-03-31T12:00:00.123457Z"));
    }

    #[test]
    fn times_read_timestamps_dates_and_relative_times() {
        assert_eq!(TimeRef::parse("2024-05-01").unwrap(), TimeRef::At(ts("2024-05-01T00:00:00Z")));
        assert_eq!(TimeRef::parse("2024-05-01T02:00:00+02:00").unwrap(), TimeRef::At(ts("2024-05-01T00:00:00Z")));
        assert_eq!(TimeRef::parse("30d ago").unwrap(), TimeRef::Ago(Period::parse("30d").unwrap()));
        assert!(TimeRef::parse("2024-05-01T00:00:00").unwrap_err().message.contains("no offset"));
        assert!(TimeRef::parse("yesterday").is_err());
        assert!(TimeRef::parse("30dago").is_err());
    }

    #[test]
    fn conditions_check_operators_and_values() {
        let s = |v: &str| Literal::String(v.into());
        assert!(Condition::build(Field::Product, Op::Eq, vec![s("x")]).is_ok());
        let e = Condition::build(Field::Product, Op::Lt, vec![s("x")]).unwrap_err();
        assert_eq!((e.kind, e.part), (ErrorKind::WrongOperator, Part::Op));
        let e = Condition::build(Field::Firmware("host".into()), Op::Lt, vec![s("build-7")]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::WrongOperator);
        assert!(Condition::build(Field::Firmware("host".into()), Op::Eq, vec![s("build-7")]).is_ok());
        let e = Condition::build(Field::Property("x".into()), Op::Lt, vec![Literal::Bool(true)]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::WrongOperator);
        let e = Condition::build(Field::Status, Op::Eq, vec![s("asleep")]).unwrap_err();
        assert_eq!((e.kind, e.part), (ErrorKind::InvalidValue, Part::Value(0)));
        let c = Condition::build(Field::Status, Op::Eq, vec![s("Online")]).unwrap();
        assert_eq!(c.test(), &Test::Eq(Literal::Status(ConnectionStatus::Online)));
        let e = Condition::build(Field::Id, Op::Exists, vec![]).unwrap_err();
        assert!(e.message.contains("always present"));
        assert!(Condition::build(Field::Property(String::new()), Op::Exists, vec![]).is_err());
        assert!(Condition::build(Field::Property("x".into()), Op::In, vec![]).is_err());
        let e = Condition::build(Field::Property("x".into()), Op::Eq, vec![Literal::Number(f64::NAN)]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidValue);
        let c = Condition::build(Field::Activated, Op::Gt, vec![s("2024-01-01T00:00:00.1234567Z")]).unwrap();
        assert_eq!(c.test(), &Test::Gt(Literal::Time(TimeRef::At(ts("2024-01-01T00:00:00.123456Z")))));
    }
}
