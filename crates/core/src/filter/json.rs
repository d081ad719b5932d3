//! The JSON form of a filter, in the dashboard's categories: lifecycle/status,
//! versions, properties and metadata, plus `any`/`all`/`not` blocks for
//! combinations the categories alone cannot say, and the include and exclude
//! lists.
//!
//! A block's conditions must all hold. Each condition has exactly one place
//! (slot) in a block, so that every filter has exactly one JSON form:
//!
//! ```json
//! {
//!   "product": "thermo-x",
//!   "status": {"connection_status": "online", "time_since_activation": "2D"},
//!   "versions": {"firmware": [{"component": "host", "op": "<", "value": "2.0.0"}]},
//!   "properties": [{"name": "region", "op": "==", "value": "eu"}],
//!   "metadata": [{"key": "campaign", "value": "spring"}],
//!   "any": [{"group": "beta"}, {"id": {"op": "in", "value": ["dsn-1", "dsn-2"]}}],
//!   "include": ["dsn-9"],
//!   "exclude": ["dsn-7"]
//! }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ErrorKind, FilterError, Location};
use super::model::{Condition, ConditionError, Expr, Field, Literal, Op, Part, Period, Slot, Test, TimeRef};
use super::{Filter, Tally, check_ids};

/// A filter (or, nested in `any`, `all` and `not`, a block of one).
///
/// A block matches when all its conditions hold, at least one block of `any`
/// matches (when given), the `not` block does not match (when given), and every
/// block of `all` matches. An empty top-level block matches every device; a nested
/// one is an error. `include` and `exclude` are only allowed at the top.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterJson {
    /// The product key (OEM model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Conditions>,
    /// The device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Conditions>,
    /// Membership of groups, by group id: `"beta"` is "member of beta",
    /// `["a", "b"]` is "member of a or b".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Conditions>,
    /// Lifecycle and connection status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusJson>,
    /// Firmware, hardware, module and template versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<VersionsJson>,
    /// Property conditions (at most 10 in the whole filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<PropertyJson>,
    /// Metadata conditions (at most 10 in the whole filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<MetadataJson>,
    /// At least one of these blocks must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<FilterJson>,
    /// This block must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<FilterJson>>,
    /// Every one of these blocks must match (for a second `any` or `not`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<FilterJson>,
    /// Device ids matched whatever the criteria say (top level only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Device ids never matched (top level only); wins over `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// The lifecycle/status category.
///
/// Times are RFC 3339 timestamps (`2024-05-01T00:00:00Z`), dates (`2024-05-01`,
/// midnight UTC) or relative times (`30d ago`); durations are `2D`, `3M`, `1Y`,
/// `12h` (see `docs/filters.md` for units).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusJson {
    /// `online`, `offline` or `initializing`; an array for any of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_status: Option<Conditions>,
    /// At least this long since activation: text form `activated <= 2d ago`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_since_activation: Option<OneOrMany>,
    /// Activated after this time: `activated > …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_after: Option<OneOrMany>,
    /// Activated before this time: `activated < …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_before: Option<OneOrMany>,
    /// Other conditions on the activation time (`>=`, `<=`, `exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<Conditions>,
    /// Last connected after this time: `connected > …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_after: Option<OneOrMany>,
    /// Last connected before this time: `connected < …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_before: Option<OneOrMany>,
    /// Other conditions on the last connection time (`>=`, `<=`, `exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<Conditions>,
}

/// The device versions category.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsJson {
    /// Installed firmware versions, per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware: Vec<FirmwareJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_version: Option<Conditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_model: Option<Conditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_version: Option<Conditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<Conditions>,
}

fn eq() -> Op {
    Op::Eq
}

fn is_eq(op: &Op) -> bool {
    *op == Op::Eq
}

/// A condition on the installed version of one firmware component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareJson {
    pub component: String,
    #[serde(default = "eq")]
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A condition on a property: `{"name": "region", "op": "==", "value": "eu"}`.
/// Values are typed: strings, numbers, booleans; an array for `in`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyJson {
    pub name: String,
    #[serde(default = "eq")]
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A condition on a metadata entry: `{"key": "campaign", "value": "spring"}`
/// (`op` is `==` unless given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataJson {
    pub key: String,
    #[serde(default = "eq", skip_serializing_if = "is_eq")]
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// One condition on a field with a fixed place: `{"op": "!=", "value": "x"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionJson {
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// The conditions on one field, all of which must hold. Written as a string
/// (`"x"`: equal to x), an array of strings (`["a", "b"]`: one of them), one
/// condition object, or an array of condition objects.
///
/// **Invariant** of values read from JSON: not empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conditions(pub Vec<ConditionJson>);

impl Serialize for Conditions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [ConditionJson { op: Op::Eq, value: Some(v @ Value::String(_)) }] => v.serialize(s),
            [ConditionJson { op: Op::In, value: Some(Value::Array(vs)) }] if vs.iter().all(Value::is_string) => {
                vs.serialize(s)
            }
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Conditions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const EXPECTED: &str = "a string, an array of strings, a condition like {\"op\": \"!=\", \"value\": \"x\"}, \
             or an array of conditions";
        let object = |v: Value| serde_json::from_value::<ConditionJson>(v).map_err(D::Error::custom);
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Conditions(vec![ConditionJson { op: Op::Eq, value: Some(Value::String(s)) }])),
            Value::Object(o) => Ok(Conditions(vec![object(Value::Object(o))?])),
            Value::Array(items) if items.is_empty() => Err(D::Error::custom("an empty array: give at least one value")),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                Ok(Conditions(vec![ConditionJson { op: Op::In, value: Some(Value::Array(items)) }]))
            }
            Value::Array(items) if items.iter().all(Value::is_object) => {
                items.into_iter().map(object).collect::<Result<_, _>>().map(Conditions)
            }
            _ => Err(D::Error::custom(format!("expected {EXPECTED}"))),
        }
    }
}

/// One string or an array of them (all conditions must hold).
///
/// **Invariant** of values read from JSON: not empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OneOrMany(pub Vec<String>);

impl Serialize for OneOrMany {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        match Raw::deserialize(d).map_err(|_| D::Error::custom("expected a string or an array of strings"))? {
            Raw::One(s) => Ok(OneOrMany(vec![s])),
            Raw::Many(v) if v.is_empty() => Err(D::Error::custom("an empty array: give at least one value")),
            Raw::Many(v) => Ok(OneOrMany(v)),
        }
    }
}

/// Deepest nesting of blocks read (a guard for the stack; the canonical tree's
/// depth limit is checked after).
const MAX_NESTING: usize = 64;

fn join(base: &str, key: &str) -> String {
    match (base.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}.{key}"),
    }
}

struct Reader {
    errors: Vec<FilterError>,
    tally: Tally,
}

impl Reader {
    fn error(&mut self, kind: ErrorKind, path: String, message: impl Into<String>) {
        self.errors.push(FilterError::new(kind, Location::json(path), message));
    }

    /// Adds a condition built from JSON, or records why it cannot be built. `path`
    /// names the condition; `field_key` is the member that names its field
    /// (`name`, `key`, `component`), if any.
    fn add(&mut self, out: &mut Vec<Expr>, path: &str, built: Result<Condition, ConditionError>, field_key: &str) {
        match built {
            Ok(c) => match self.tally.add(c.field()) {
                Ok(()) => out.push(Expr::Cond(c)),
                Err((kind, message)) => self.error(kind, path.to_owned(), message),
            },
            Err(e) => {
                let at = match e.part {
                    Part::Field => join(path, field_key),
                    Part::Op => join(path, "op"),
                    Part::Value(i) => match e.kind {
                        ErrorKind::Limit if i > 0 => format!("{}[{i}]", join(path, "value")),
                        _ => join(path, "value"),
                    },
                };
                let mut err = FilterError::new(e.kind, Location::json(at), e.message);
                err.expected = e.expected;
                self.errors.push(err);
            }
        }
    }

    /// The values of a condition object, as literals for [`Condition::build`].
    fn values(&mut self, op: Op, value: Option<&Value>, path: &str) -> Option<Vec<Literal>> {
        let at = join(path, "value");
        match (op, value) {
            (Op::Exists, None | Some(Value::Null)) => Some(vec![]),
            (Op::Exists, Some(_)) => {
                self.error(ErrorKind::InvalidValue, at, "`exists` takes no value");
                None
            }
            (_, None | Some(Value::Null)) => {
                self.error(ErrorKind::InvalidValue, at, format!("`{op}` needs a value"));
                None
            }
            (Op::In, Some(Value::Array(items))) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    out.push(self.literal(v, format!("{at}[{i}]"))?);
                }
                Some(out)
            }
            (Op::In, Some(_)) => {
                self.error(ErrorKind::InvalidValue, at, "`in` takes an array of values");
                None
            }
            (_, Some(v)) => Some(vec![self.literal(v, at)?]),
        }
    }

    fn literal(&mut self, v: &Value, at: String) -> Option<Literal> {
        match v {
            Value::String(s) => Some(Literal::String(s.clone())),
            Value::Bool(b) => Some(Literal::Bool(*b)),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Some(Literal::Number(f)),
                _ => {
                    self.error(ErrorKind::InvalidValue, at, "the number is out of range");
                    None
                }
            },
            _ => {
                self.error(ErrorKind::InvalidValue, at, "a value is a string, a number or a boolean");
                None
            }
        }
    }

    fn conditions(&mut self, out: &mut Vec<Expr>, field: Field, conds: &Option<Conditions>, path: &str) {
        let Some(Conditions(conds)) = conds else { return };
        for (i, c) in conds.iter().enumerate() {
            let at = if conds.len() == 1 { path.to_owned() } else { format!("{path}[{i}]") };
            if let Some(values) = self.values(c.op, c.value.as_ref(), &at) {
                self.add(out, &at, Condition::build(field.clone(), c.op, values), "");
            }
        }
    }

    /// `activated_after` and its kind: each time string compared with `op`.
    fn times(&mut self, out: &mut Vec<Expr>, field: Field, op: Op, times: &Option<OneOrMany>, path: &str) {
        let Some(OneOrMany(times)) = times else { return };
        for (i, t) in times.iter().enumerate() {
            let at = if times.len() == 1 { path.to_owned() } else { format!("{path}[{i}]") };
            let built = Condition::build(field.clone(), op, vec![Literal::String(t.clone())]).map_err(|mut e| {
                // The value is the whole entry here, not a `value` member.
                e.part = Part::Field;
                e
            });
            self.add(out, &at, built, "");
        }
    }

    fn block(&mut self, b: &FilterJson, path: &str, depth: usize) -> Option<Expr> {
        if depth > MAX_NESTING {
            self.error(ErrorKind::Limit, path.to_owned(), format!("blocks nest more than {MAX_NESTING} levels deep"));
            return None;
        }
        if depth > 0 && (!b.include.is_empty() || !b.exclude.is_empty()) {
            self.error(
                ErrorKind::Structure,
                path.to_owned(),
                "`include` and `exclude` are only allowed at the top level",
            );
        }
        let mut out = Vec::new();
        self.conditions(&mut out, Field::Product, &b.product, &join(path, "product"));
        self.conditions(&mut out, Field::Id, &b.id, &join(path, "id"));
        self.conditions(&mut out, Field::Group, &b.group, &join(path, "group"));
        if let Some(s) = &b.status {
            let p = join(path, "status");
            self.conditions(&mut out, Field::Status, &s.connection_status, &join(&p, "connection_status"));
            if let Some(OneOrMany(periods)) = &s.time_since_activation {
                let base = join(&p, "time_since_activation");
                for (i, text) in periods.iter().enumerate() {
                    let at = if periods.len() == 1 { base.clone() } else { format!("{base}[{i}]") };
                    match Period::parse(text.trim()) {
                        Ok(period) => {
                            let test = Test::Le(Literal::Time(TimeRef::Ago(period)));
                            self.add(&mut out, &at, Condition::new(Field::Activated, test), "");
                        }
                        Err(e) => {
                            let mut err = FilterError::new(ErrorKind::InvalidLiteral, Location::json(at), e.message);
                            err.expected = e.expected;
                            self.errors.push(err);
                        }
                    }
                }
            }
            self.times(&mut out, Field::Activated, Op::Gt, &s.activated_after, &join(&p, "activated_after"));
            self.times(&mut out, Field::Activated, Op::Lt, &s.activated_before, &join(&p, "activated_before"));
            self.conditions(&mut out, Field::Activated, &s.activated, &join(&p, "activated"));
            self.times(&mut out, Field::Connected, Op::Gt, &s.connected_after, &join(&p, "connected_after"));
            self.times(&mut out, Field::Connected, Op::Lt, &s.connected_before, &join(&p, "connected_before"));
            self.conditions(&mut out, Field::Connected, &s.connected, &join(&p, "connected"));
        }
        if let Some(v) = &b.versions {
            let p = join(path, "versions");
            for (i, f) in v.firmware.iter().enumerate() {
                let at = format!("{}[{i}]", join(&p, "firmware"));
                if let Some(values) = self.values(f.op, f.value.as_ref(), &at) {
                    let built = Condition::build(Field::Firmware(f.component.clone()), f.op, values);
                    self.add(&mut out, &at, built, "component");
                }
            }
            self.conditions(&mut out, Field::Hardware, &v.hardware_version, &join(&p, "hardware_version"));
            self.conditions(&mut out, Field::ModuleModel, &v.module_model, &join(&p, "module_model"));
            self.conditions(&mut out, Field::ModuleVersion, &v.module_version, &join(&p, "module_version"));
            self.conditions(&mut out, Field::Template, &v.template_id, &join(&p, "template_id"));
        }
        for (i, c) in b.properties.iter().enumerate() {
            let at = format!("{}[{i}]", join(path, "properties"));
            if let Some(values) = self.values(c.op, c.value.as_ref(), &at) {
                self.add(&mut out, &at, Condition::build(Field::Property(c.name.clone()), c.op, values), "name");
            }
        }
        for (i, c) in b.metadata.iter().enumerate() {
            let at = format!("{}[{i}]", join(path, "metadata"));
            if let Some(values) = self.values(c.op, c.value.as_ref(), &at) {
                self.add(&mut out, &at, Condition::build(Field::Metadata(c.key.clone()), c.op, values), "key");
            }
        }
        if !b.any.is_empty() {
            let base = join(path, "any");
            let alternatives: Vec<Expr> = b
                .any
                .iter()
                .enumerate()
                .filter_map(|(i, sub)| self.nested(sub, &format!("{base}[{i}]"), depth))
                .collect();
            out.push(Expr::Or(alternatives));
        }
        if let Some(sub) = &b.not
            && let Some(e) = self.nested(sub, &join(path, "not"), depth)
        {
            out.push(Expr::Not(Box::new(e)));
        }
        let base = join(path, "all");
        for (i, sub) in b.all.iter().enumerate() {
            if let Some(e) = self.nested(sub, &format!("{base}[{i}]"), depth) {
                out.push(e);
            }
        }
        match out.len() {
            0 => None,
            1 => out.pop(),
            _ => Some(Expr::And(out)),
        }
    }

    /// A nested block, which must not be empty.
    fn nested(&mut self, b: &FilterJson, path: &str, depth: usize) -> Option<Expr> {
        let errors = self.errors.len();
        let e = self.block(b, path, depth + 1);
        if e.is_none() && errors == self.errors.len() {
            self.error(
                ErrorKind::Structure,
                path.to_owned(),
                "an empty block would match every device; give it a condition or remove it",
            );
        }
        e
    }
}

pub(super) fn from_json(json: &FilterJson) -> Result<Filter, Vec<FilterError>> {
    let mut r = Reader { errors: Vec::new(), tally: Tally::default() };
    let criteria = r.block(json, "", 0);
    for (list, ids) in [("include", &json.include), ("exclude", &json.exclude)] {
        check_ids(list, ids, &mut |i, (kind, message)| {
            let path = if i < ids.len() { format!("{list}[{i}]") } else { list.to_owned() };
            r.errors.push(FilterError::new(kind, Location::json(path), message));
        });
    }
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    Filter::assemble(criteria, json.include.clone(), json.exclude.clone(), Location::json("")).map_err(|e| vec![e])
}

fn literal_json(l: &Literal) -> Value {
    match l {
        Literal::String(s) => Value::String(s.clone()),
        // Whole numbers as JSON integers (`20`, not `20.0`); they read back as the same f64.
        Literal::Number(n)
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 && !(*n == 0.0 && n.is_sign_negative()) =>
        {
            Value::Number((*n as i64).into())
        }
        Literal::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Status(s) => Value::String(s.as_str().to_owned()),
        Literal::Time(t) => Value::String(t.to_string()),
    }
}

fn test_json(t: &Test) -> Option<Value> {
    match t {
        Test::Exists => None,
        Test::In(vs) => Some(Value::Array(vs.iter().map(literal_json).collect())),
        Test::Contains(s) => Some(Value::String(s.clone())),
        t => t.value().map(literal_json),
    }
}

fn push(slot: &mut Option<Conditions>, c: &Condition) {
    slot.get_or_insert_with(Conditions::default)
        .0
        .push(ConditionJson { op: c.test().op(), value: test_json(c.test()) });
}

fn push_time(slot: &mut Option<OneOrMany>, c: &Condition) {
    let text = match c.test() {
        Test::Le(Literal::Time(TimeRef::Ago(p))) if c.slot() == Slot::TimeSinceActivation => p.to_string(),
        t => t.value().map(ToString::to_string).unwrap_or_default(),
    };
    slot.get_or_insert_with(OneOrMany::default).0.push(text);
}

fn put(b: &mut FilterJson, c: &Condition) {
    let status = || StatusJson::default();
    let versions = || VersionsJson::default();
    match c.slot() {
        Slot::Product => push(&mut b.product, c),
        Slot::Id => push(&mut b.id, c),
        Slot::Group => push(&mut b.group, c),
        Slot::ConnectionStatus => push(&mut b.status.get_or_insert_with(status).connection_status, c),
        Slot::TimeSinceActivation => push_time(&mut b.status.get_or_insert_with(status).time_since_activation, c),
        Slot::ActivatedAfter => push_time(&mut b.status.get_or_insert_with(status).activated_after, c),
        Slot::ActivatedBefore => push_time(&mut b.status.get_or_insert_with(status).activated_before, c),
        Slot::Activated => push(&mut b.status.get_or_insert_with(status).activated, c),
        Slot::ConnectedAfter => push_time(&mut b.status.get_or_insert_with(status).connected_after, c),
        Slot::ConnectedBefore => push_time(&mut b.status.get_or_insert_with(status).connected_before, c),
        Slot::Connected => push(&mut b.status.get_or_insert_with(status).connected, c),
        Slot::Firmware => b.versions.get_or_insert_with(versions).firmware.push(FirmwareJson {
            component: c.field().name().unwrap_or_default().to_owned(),
            op: c.test().op(),
            value: test_json(c.test()),
        }),
        Slot::Hardware => push(&mut b.versions.get_or_insert_with(versions).hardware_version, c),
        Slot::ModuleModel => push(&mut b.versions.get_or_insert_with(versions).module_model, c),
        Slot::ModuleVersion => push(&mut b.versions.get_or_insert_with(versions).module_version, c),
        Slot::Template => push(&mut b.versions.get_or_insert_with(versions).template_id, c),
        Slot::Properties => b.properties.push(PropertyJson {
            name: c.field().name().unwrap_or_default().to_owned(),
            op: c.test().op(),
            value: test_json(c.test()),
        }),
        Slot::Metadata => b.metadata.push(MetadataJson {
            key: c.field().name().unwrap_or_default().to_owned(),
            op: c.test().op(),
            value: test_json(c.test()),
        }),
    }
}

/// The block for a canonical expression. An `and`'s conditions go to their
/// slots; its first `or` to `any`, its first `not` to `not`, and any further
/// ones to `all`, so that reading the block back gives the same canonical tree.
fn block_of(e: &Expr) -> FilterJson {
    let mut b = FilterJson::default();
    match e {
        Expr::Cond(c) => put(&mut b, c),
        Expr::Or(cs) => b.any = cs.iter().map(block_of).collect(),
        Expr::Not(inner) => b.not = Some(Box::new(block_of(inner))),
        Expr::And(cs) => {
            for child in cs {
                match child {
                    Expr::Cond(c) => put(&mut b, c),
                    Expr::Or(alternatives) if b.any.is_empty() => b.any = alternatives.iter().map(block_of).collect(),
                    Expr::Not(inner) if b.not.is_none() => b.not = Some(Box::new(block_of(inner))),
                    other => b.all.push(block_of(other)),
                }
            }
        }
    }
    b
}

pub(super) fn to_json(f: &Filter) -> FilterJson {
    let mut b = f.criteria().map(block_of).unwrap_or_default();
    b.include = f.include().to_vec();
    b.exclude = f.exclude().to_vec();
    b
}

/// Reads the JSON form from an untyped value, reporting every problem with its
/// path: each member of a block is checked on its own (so one malformed member
/// does not hide the others), and the well-formed rest is then checked as a
/// filter, so structural and semantic problems are reported together.
pub(super) fn read(value: &Value) -> Result<Filter, Vec<FilterError>> {
    let mut check = Check { errors: Vec::new(), dropped: Vec::new() };
    let cleaned = check.block(value, "", 0);
    let Check { mut errors, dropped } = check;
    let semantic = match cleaned.map(serde_json::from_value::<FilterJson>) {
        // Well-formed: the cleaned value is the whole filter, read the one way every filter is.
        Some(Ok(json)) if errors.is_empty() => return from_json(&json),
        Some(Ok(json)) => from_json(&json).err().unwrap_or_default(),
        Some(Err(e)) => vec![FilterError::new(ErrorKind::Structure, Location::json(""), e.to_string())],
        None => Vec::new(),
    };
    // A block emptied by dropping its malformed members is not a problem of its own.
    errors.extend(semantic.into_iter().filter(|e| {
        let Location::Json { path } = &e.location else { return true };
        !(e.kind == ErrorKind::Structure && dropped.iter().any(|d| d.starts_with(path.as_str())))
    }));
    Err(errors)
}

/// The structural pass of [`read`]: the problems found, and the paths of the
/// members left out of the cleaned value because they are malformed.
struct Check {
    errors: Vec<FilterError>,
    dropped: Vec<String>,
}

impl Check {
    fn structure(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FilterError::new(ErrorKind::Structure, Location::json(path), message));
        self.dropped.push(path.to_owned());
    }

    /// A block, with its malformed members left out; `None` when it is not an object.
    fn block(&mut self, v: &Value, path: &str, depth: usize) -> Option<Value> {
        if depth > MAX_NESTING {
            self.errors.push(FilterError::new(
                ErrorKind::Limit,
                Location::json(path),
                format!("blocks nest more than {MAX_NESTING} levels deep"),
            ));
            self.dropped.push(path.to_owned());
            return None;
        }
        let Value::Object(members) = v else {
            self.structure(path, "expected an object: a block of conditions");
            return None;
        };
        let mut kept = serde_json::Map::new();
        for (key, member) in members {
            let at = join(path, key);
            let member = match key.as_str() {
                "any" | "all" => match member {
                    // A malformed block stands as an empty one, so the others keep their paths.
                    Value::Array(blocks) => Some(Value::Array(
                        blocks
                            .iter()
                            .enumerate()
                            .map(|(i, b)| {
                                self.block(b, &format!("{at}[{i}]"), depth + 1)
                                    .unwrap_or_else(|| Value::Object(Default::default()))
                            })
                            .collect(),
                    )),
                    _ => {
                        self.structure(&at, "expected an array of blocks");
                        None
                    }
                },
                "not" => self.block(member, &at, depth + 1),
                "status" => self.members::<StatusJson>(member, &at),
                "versions" => self.members::<VersionsJson>(member, &at),
                _ => self.member::<FilterJson>(key, member, &at),
            };
            if let Some(m) = member {
                kept.insert(key.clone(), m);
            }
        }
        Some(Value::Object(kept))
    }

    /// An object whose members are checked one by one as members of `T`.
    fn members<T: serde::de::DeserializeOwned>(&mut self, v: &Value, path: &str) -> Option<Value> {
        let Value::Object(members) = v else {
            self.structure(path, "expected an object");
            return None;
        };
        let kept: serde_json::Map<String, Value> = members
            .iter()
            .filter_map(|(key, member)| Some((key.clone(), self.member::<T>(key, member, &join(path, key))?)))
            .collect();
        Some(Value::Object(kept))
    }

    /// One member of a `T`, checked alone; of an array of objects, each
    /// malformed item is reported on its own (and the member left out).
    fn member<T: serde::de::DeserializeOwned>(&mut self, key: &str, v: &Value, path: &str) -> Option<Value> {
        let alone = |v: &Value| serde_json::from_value::<T>(serde_json::json!({ key: v }));
        let Err(e) = alone(v) else { return Some(v.clone()) };
        match v {
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                let before = self.errors.len();
                for (i, item) in items.iter().enumerate() {
                    if let Err(e) = alone(&Value::Array(vec![item.clone()])) {
                        self.structure(&format!("{path}[{i}]"), e.to_string());
                    }
                }
                if self.errors.len() == before {
                    self.structure(path, e.to_string());
                }
            }
            _ => self.structure(path, e.to_string()),
        }
        None
    }
}
