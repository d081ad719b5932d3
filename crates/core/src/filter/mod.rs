//! Device filters: which devices a job targets.
//!
//! A [`Filter`] is an expression tree of conditions on a device's record
//! (connection status, activation and connection times, product, firmware
//! versions per component, hardware and module versions, template, group
//! membership, typed properties, metadata), combined with and, or and not, plus
//! explicit lists of device ids to include and exclude.
//!
//! It has two interchangeable forms, and every filter can be shown in both:
//!
//! - the **text form**, for people, URLs and the command line
//!   ([`Filter::parse`], `Display`):
//!   `product == "thermo-x" and fw.host < "2.0.0" and status == online and activated > 30d ago`;
//! - the **JSON form**, in the categories of the dashboard (lifecycle/status,
//!   versions, properties, metadata) ([`FilterJson`], [`Filter::from_json`],
//!   [`Filter::to_json`]).
//!
//! Both read into the same canonical model, so `parse(f.to_string()) == f` and
//! `from_json(f.to_json()) == f` for every filter `f`.
//!
//! Evaluation has one definition, [`Filter::matches`], written for clarity. The
//! fast path, [`CompiledFilter::matches`] over a prepared [`Subject`], checks one
//! device against many filters without allocating; a property test holds the two
//! to the same answers, and the store's SQL is held to [`Filter::matches`] too.
//!
//! The grammar, the fields and the semantics are documented for users in
//! `docs/filters.md`.

mod error;
mod eval;
mod json;
mod lexer;
mod model;
mod parser;
mod render;
mod sort_key;

#[cfg(any(test, feature = "proptest"))]
pub mod arbitrary;

#[cfg(test)]
mod tests;

use jiff::Timestamp;

pub use error::{ErrorKind, FilterError, Location};
pub use eval::{CompiledFilter, FieldValue, Subject};
pub use json::{
    ConditionJson, Conditions, FilterJson, FirmwareJson, MetadataJson, OneOrMany, PropertyJson, StatusJson,
    VersionsJson,
};
pub use model::{
    Condition, ConditionError, Expr, Field, FieldType, Literal, LiteralError, Op, Part, Period, PeriodUnit, Test,
    TimeRef,
};
pub use sort_key::version_sort_key;

use crate::Device;

/// At most this many property conditions (`prop.…`) in one filter.
pub const MAX_PROPERTY_CONDITIONS: usize = 10;
/// At most this many metadata conditions (`meta.…`) in one filter.
pub const MAX_METADATA_CONDITIONS: usize = 10;
/// At most this many conditions in one filter, of any kind.
pub const MAX_CONDITIONS: usize = 100;
/// At most this many levels of and/or/not in the canonical tree.
pub const MAX_DEPTH: usize = 16;
/// At most this many values in one `in` list.
pub const MAX_LIST: usize = 1000;
/// At most this many device ids in `include`, and as many in `exclude`.
pub const MAX_IDS: usize = 10_000;
/// Names of components, properties and metadata keys: at most this many characters.
pub const MAX_NAME: usize = 128;
/// String values: at most this many characters.
pub const MAX_STRING: usize = 1024;
/// The text form: at most this many bytes.
pub const MAX_TEXT: usize = 1 << 20;

/// A device filter in canonical form.
///
/// A device matches when its id is not in `exclude`, and either its id is in
/// `include` or it meets the criteria (no criteria: every device meets them).
/// `exclude` wins over `include`.
///
/// **Invariants:** every condition is valid (see [`Condition`]); the criteria
/// tree is canonical (see [`Expr`]) and at most [`MAX_DEPTH`] deep; it holds at
/// most [`MAX_PROPERTY_CONDITIONS`] property conditions, [`MAX_METADATA_CONDITIONS`]
/// metadata conditions and [`MAX_CONDITIONS`] in all; `include` and `exclude` hold
/// at most [`MAX_IDS`] valid device ids each, in the order given. Two filters that
/// differ only in the order of an `and`'s conditions in different slots, in
/// nesting of ands and ors, or in double negation are equal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    criteria: Option<Expr>,
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Filter {
    /// The filter that matches every device.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// A filter built in code: checks the limits, rejects empty `And`/`Or`,
    /// and puts the tree in canonical form. Reports every problem found.
    pub fn new(criteria: Option<Expr>, include: Vec<String>, exclude: Vec<String>) -> Result<Filter, Vec<FilterError>> {
        let mut errors = Vec::new();
        let at = || Location::Unknown;
        if let Some(e) = &criteria {
            if e.has_empty_group() {
                errors.push(FilterError::new(ErrorKind::Structure, at(), "an `and` or `or` has no conditions"));
            }
            let mut tally = Tally::default();
            let mut over = None;
            e.walk(&mut |c| {
                if let Err(e) = tally.add(c.field()) {
                    over.get_or_insert(e);
                }
            });
            if let Some((kind, message)) = over {
                errors.push(FilterError::new(kind, at(), message));
            }
        }
        check_ids("include", &include, &mut |_, e| errors.push(FilterError::new(e.0, at(), e.1)));
        check_ids("exclude", &exclude, &mut |_, e| errors.push(FilterError::new(e.0, at(), e.1)));
        if !errors.is_empty() {
            return Err(errors);
        }
        Filter::assemble(criteria, include, exclude, at()).map_err(|e| vec![e])
    }

    /// Normalizes checked parts into a filter; the only check left is the depth of
    /// the canonical tree, reported at `at`.
    pub(crate) fn assemble(
        criteria: Option<Expr>,
        include: Vec<String>,
        exclude: Vec<String>,
        at: Location,
    ) -> Result<Filter, FilterError> {
        let criteria = criteria.map(Expr::normalize);
        if let Some(depth) = criteria.as_ref().map(Expr::depth).filter(|d| *d > MAX_DEPTH) {
            return Err(FilterError::new(
                ErrorKind::Limit,
                at,
                format!("the filter nests and/or/not {depth} levels deep; at most {MAX_DEPTH} are allowed"),
            ));
        }
        Ok(Filter { criteria, include, exclude })
    }

    /// Reads the text form. See `docs/filters.md` for the grammar.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        parser::parse(text)
    }

    /// Reads the JSON form, reporting every problem found with its path.
    pub fn from_json(json: &FilterJson) -> Result<Filter, Vec<FilterError>> {
        json::from_json(json)
    }

    /// Reads the JSON form from an untyped value (a request body's member),
    /// reporting every problem, structural or not, each with its path.
    pub fn read_json(value: &serde_json::Value) -> Result<Filter, Vec<FilterError>> {
        json::read(value)
    }

    /// Reads the JSON form from its source text. Malformed JSON is reported with
    /// its line and column; every other problem with its path.
    pub fn parse_json(text: &str) -> Result<Filter, Vec<FilterError>> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            let location = text_location(text, e.line(), e.column());
            vec![FilterError::new(ErrorKind::Syntax, location, e.to_string())]
        })?;
        Filter::read_json(&value)
    }

    /// Reads the JSON form as a client gives it. It must be an object with at least
    /// one condition, `include` or `exclude`: `null`, an array (which would read as an
    /// empty object) or `{}` never stand for every device (the text form's `all` does).
    pub fn from_json_value(value: serde_json::Value) -> Result<Filter, Vec<FilterError>> {
        let at = Location::Json { path: String::new() };
        let empty = |what: &str| {
            vec![
                FilterError::new(ErrorKind::Structure, at.clone(), format!("the filter is {what}"))
                    .expected("an object with a condition, `include` or `exclude`"),
            ]
        };
        match &value {
            serde_json::Value::Object(m) if m.is_empty() => return Err(empty("empty")),
            serde_json::Value::Object(_) => {}
            serde_json::Value::Null => return Err(empty("null")),
            serde_json::Value::Array(_) => return Err(empty("an array")),
            _ => return Err(empty("not an object")),
        }
        let filter = Filter::read_json(&value)?;
        if filter.criteria.is_none() && filter.include.is_empty() && filter.exclude.is_empty() {
            return Err(empty("empty"));
        }
        Ok(filter)
    }

    /// The JSON form of this filter.
    pub fn to_json(&self) -> FilterJson {
        json::to_json(self)
    }

    /// The text form of this filter (also its `Display`).
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// The criteria; `None` means every device meets them.
    pub fn criteria(&self) -> Option<&Expr> {
        self.criteria.as_ref()
    }

    /// Devices matched whatever the criteria say (unless excluded).
    pub fn include(&self) -> &[String] {
        &self.include
    }

    /// Devices never matched.
    pub fn exclude(&self) -> &[String] {
        &self.exclude
    }

    /// Every condition, depth first, in canonical order.
    pub fn conditions(&self) -> Vec<&Condition> {
        self.criteria.as_ref().map(Expr::conditions).unwrap_or_default()
    }

    /// Whether the filter's answer for a device can change with time alone (it has
    /// a relative time such as `30d ago`), so that a continuous job must
    /// re-evaluate it periodically, not only when a device changes.
    pub fn is_time_relative(&self) -> bool {
        self.conditions().iter().any(|c| match c.test() {
            Test::In(vs) => vs.iter().any(|v| matches!(v, Literal::Time(TimeRef::Ago(_)))),
            t => matches!(t.value(), Some(Literal::Time(TimeRef::Ago(_)))),
        })
    }

    /// Whether evaluation needs the device's groups (so a caller may skip loading them).
    pub fn uses_groups(&self) -> bool {
        self.conditions().iter().any(|c| *c.field() == Field::Group)
    }

    /// Whether `device` matches at `now`, given the ids of the groups it belongs to.
    ///
    /// This is the one definition of the semantics; the compiled path and the
    /// store's queries are tested against it. In full:
    ///
    /// - **include/exclude:** an id in `exclude` never matches; otherwise an id in
    ///   `include` always matches; otherwise the criteria decide (none: match).
    /// - **and, or, not** are two-valued: every condition is true or false, never
    ///   unknown, and `not` is plain negation.
    /// - **Missing fields:** a condition on a field the device lacks (no `host`
    ///   component, no `region` property, never activated) is false for every
    ///   operator but `exists`, which is true exactly when the field is present.
    ///   So `x != v` means "x is present and not equal to v", and
    ///   `not x == v` also matches devices without `x`.
    /// - **Text** (id, product, module model, template, metadata): exact,
    ///   case-sensitive string equality; `in` is equality with any listed value.
    /// - **Versions** (`fw.<component>`, hardware, module version): when both sides
    ///   are semantic versions (a leading `v` allowed), compared by semver
    ///   precedence (`1.10.0 > 1.9.0`, `2.0.0-rc.1 < 2.0.0`, build metadata
    ///   ignored); otherwise equal only when the strings are identical, and
    ///   `<`, `<=`, `>`, `>=` are false (the literal of an ordering is always
    ///   semver; it is the device's version that may not be).
    /// - **Status:** the device's connection status equals, differs from, or is
    ///   one of the given ones.
    /// - **Times** (activated, connected): `<` is before, `>` after, `<=`/`>=`
    ///   include the instant itself; a relative time is `now` minus the period
    ///   ([`Period::before`]).
    /// - **Groups:** `group == g` is "member of g", `group != g` is "not a member
    ///   of g" (true for devices in no group), `group in [..]` is "member of at
    ///   least one".
    /// - **Properties** are typed and never converted: a number equals only a
    ///   number, a string only a string, a boolean only a boolean (so `!=` across
    ///   types is true). Numbers order numerically, strings by their bytes (UTF-8
    ///   code point order); ordering across types is false. `contains` is true when
    ///   the property is a string containing the given one, case-sensitively.
    pub fn matches<S: AsRef<str>>(&self, device: &Device, groups: &[S], now: Timestamp) -> bool {
        eval::reference_matches(self, device, groups, now)
    }

    /// The filter prepared for fast evaluation (versions parsed once, id lists
    /// sorted). Compile once, evaluate many times.
    pub fn compile(&self) -> CompiledFilter {
        CompiledFilter::new(self)
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

impl TryFrom<&FilterJson> for Filter {
    type Error = Vec<FilterError>;

    fn try_from(json: &FilterJson) -> Result<Self, Self::Error> {
        Filter::from_json(json)
    }
}

/// Counts conditions against the limits as a form reads them, so that the one
/// over the limit can be pointed at.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    properties: usize,
    metadata: usize,
    total: usize,
}

impl Tally {
    /// Counts a condition on `field`; an error if it is one too many.
    pub(crate) fn add(&mut self, field: &Field) -> Result<(), (ErrorKind, String)> {
        self.total += 1;
        if self.total > MAX_CONDITIONS {
            return Err((ErrorKind::Limit, format!("too many conditions: at most {MAX_CONDITIONS} are allowed")));
        }
        match field {
            Field::Property(_) => {
                self.properties += 1;
                if self.properties > MAX_PROPERTY_CONDITIONS {
                    return Err((
                        ErrorKind::Limit,
                        format!(
                            "too many property conditions: at most {MAX_PROPERTY_CONDITIONS} are allowed, and this is number {}",
                            self.properties
                        ),
                    ));
                }
            }
            Field::Metadata(_) => {
                self.metadata += 1;
                if self.metadata > MAX_METADATA_CONDITIONS {
                    return Err((
                        ErrorKind::Limit,
                        format!(
                            "too many metadata conditions: at most {MAX_METADATA_CONDITIONS} are allowed, and this is number {}",
                            self.metadata
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks an include or exclude list, calling `report(index, problem)` for each
/// problem (index `MAX_IDS` for the list being too long).
pub(crate) fn check_ids(list: &str, ids: &[String], report: &mut impl FnMut(usize, (ErrorKind, String))) {
    if ids.len() > MAX_IDS {
        report(MAX_IDS, (ErrorKind::Limit, format!("`{list}` holds at most {MAX_IDS} device ids, not {}", ids.len())));
    }
    for (i, id) in ids.iter().enumerate() {
        let mut errors = Vec::new();
        crate::validate::device_id(list, id, &mut errors);
        if let Some(e) = errors.pop() {
            report(i, (ErrorKind::InvalidValue, format!("`{id}` is not a device id: {}", e.message)));
        }
    }
}

/// The location of a 1-based line and column as serde_json reports them.
fn text_location(text: &str, line: usize, column: usize) -> Location {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let offset = (line_start + column.saturating_sub(1)).min(text.len());
    Location::in_text(text, offset)
}
