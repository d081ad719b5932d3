//! Evaluating a filter against one device in memory.
//!
//! [`reference_matches`] is the definition of the semantics, written to be read
//! (its statement is on [`Filter::matches`]). [`CompiledFilter`] is the same
//! semantics prepared for speed: literals are parsed once, lists sorted, and
//! [`CompiledFilter::matches`] does not allocate, so one changed device can be
//! checked against every active continuous filter cheaply. A property test holds
//! the two to the same answer for every filter and device.

use std::cmp::Ordering;

use jiff::Timestamp;

use super::Filter;
use super::model::{Condition, Expr, Field, Literal, Test, TimeRef};
use crate::{ConnectionStatus, Device, PropertyValue, Version};

// ---------------------------------------------------------------------------
// The reference semantics.
// ---------------------------------------------------------------------------

pub(super) fn reference_matches<S: AsRef<str>>(f: &Filter, d: &Device, groups: &[S], now: Timestamp) -> bool {
    if f.exclude().contains(&d.id) {
        return false;
    }
    if f.include().contains(&d.id) {
        return true;
    }
    f.criteria().is_none_or(|e| eval(e, d, groups, now))
}

fn eval<S: AsRef<str>>(e: &Expr, d: &Device, groups: &[S], now: Timestamp) -> bool {
    match e {
        Expr::And(cs) => cs.iter().all(|c| eval(c, d, groups, now)),
        Expr::Or(cs) => cs.iter().any(|c| eval(c, d, groups, now)),
        Expr::Not(c) => !eval(c, d, groups, now),
        Expr::Cond(c) => condition(c, d, groups, now),
    }
}

/// A test on a value the device may lack. `eq` and `cmp` compare the device's
/// value with a literal; `cmp` is `None` where no order is defined.
fn test<V>(
    value: Option<V>,
    t: &Test,
    eq: impl Fn(&V, &Literal) -> bool,
    cmp: impl Fn(&V, &Literal) -> Option<Ordering>,
    contains: impl Fn(&V, &str) -> bool,
) -> bool {
    let Some(v) = value else { return false };
    match t {
        Test::Exists => true,
        Test::Eq(l) => eq(&v, l),
        Test::Ne(l) => !eq(&v, l),
        Test::Lt(l) => cmp(&v, l) == Some(Ordering::Less),
        Test::Le(l) => matches!(cmp(&v, l), Some(Ordering::Less | Ordering::Equal)),
        Test::Gt(l) => cmp(&v, l) == Some(Ordering::Greater),
        Test::Ge(l) => matches!(cmp(&v, l), Some(Ordering::Greater | Ordering::Equal)),
        Test::In(ls) => ls.iter().any(|l| eq(&v, l)),
        Test::Contains(s) => contains(&v, s),
    }
}

fn no_order<V>(_: &V, _: &Literal) -> Option<Ordering> {
    None
}

fn no_contains<V>(_: &V, _: &str) -> bool {
    false
}

fn text_test(v: Option<&str>, t: &Test) -> bool {
    test(v, t, |v, l| l.as_str() == Some(*v), no_order, no_contains)
}

fn version(v: Option<&str>, t: &Test) -> bool {
    let compare = |v: &&str, l: &Literal| l.as_str().and_then(|l| Version::new(v).compare(&Version::new(l)));
    test(v, t, |v, l| compare(v, l) == Some(Ordering::Equal), compare, no_contains)
}

fn status(v: ConnectionStatus, t: &Test) -> bool {
    test(Some(v), t, |v, l| *l == Literal::Status(*v), no_order, no_contains)
}

fn time(v: Option<Timestamp>, t: &Test, now: Timestamp) -> bool {
    let cmp = |v: &Timestamp, l: &Literal| match l {
        Literal::Time(r) => Some(v.cmp(&r.resolve(now))),
        _ => None,
    };
    test(v, t, |v, l| cmp(v, l) == Some(Ordering::Equal), cmp, no_contains)
}

fn property(v: Option<&PropertyValue>, t: &Test) -> bool {
    let eq = |v: &&PropertyValue, l: &Literal| match (v, l) {
        (PropertyValue::Bool(a), Literal::Bool(b)) => a == b,
        (PropertyValue::Number(a), Literal::Number(b)) => a == b,
        (PropertyValue::String(a), Literal::String(b)) => a == b,
        _ => false,
    };
    let cmp = |v: &&PropertyValue, l: &Literal| match (v, l) {
        (PropertyValue::Number(a), Literal::Number(b)) => a.partial_cmp(b),
        (PropertyValue::String(a), Literal::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    };
    let contains = |v: &&PropertyValue, s: &str| matches!(v, PropertyValue::String(a) if a.contains(s));
    test(v, t, eq, cmp, contains)
}

fn group<S: AsRef<str>>(groups: &[S], t: &Test) -> bool {
    let member = |l: &Literal| groups.iter().any(|g| Some(g.as_ref()) == l.as_str());
    match t {
        Test::Eq(l) => member(l),
        Test::Ne(l) => !member(l),
        Test::In(ls) => ls.iter().any(member),
        _ => false,
    }
}

fn condition<S: AsRef<str>>(c: &Condition, d: &Device, groups: &[S], now: Timestamp) -> bool {
    match c.field() {
        Field::Group => group(groups, c.test()),
        f => c.accepts(value_of(f, d), now),
    }
}

fn text(v: Option<&String>) -> Option<FieldValue<'_>> {
    v.map(|s| FieldValue::Text(s))
}

/// The device's value of `field` (`None` for groups, which the record does not hold).
fn value_of<'a>(field: &Field, d: &'a Device) -> Option<FieldValue<'a>> {
    match field {
        Field::Id => Some(FieldValue::Text(&d.id)),
        Field::Product => Some(FieldValue::Text(&d.product)),
        Field::ModuleModel => text(d.module_model.as_ref()),
        Field::Template => text(d.template_id.as_ref()),
        Field::Metadata(k) => text(d.metadata.get(k)),
        Field::Status => Some(FieldValue::Status(d.connection_status)),
        Field::Activated => d.activated_at.map(FieldValue::Time),
        Field::Connected => d.last_seen_at.map(FieldValue::Time),
        Field::Group => None,
        Field::Firmware(name) => text(d.firmware.get(name)),
        Field::Hardware => text(d.hardware_version.as_ref()),
        Field::ModuleVersion => text(d.module_version.as_ref()),
        Field::Property(name) => d.properties.get(name).map(FieldValue::Property),
    }
}

/// One value of a device as a condition reads it: text (also versions, read
/// as the field's type says), a connection status, a time, a typed property.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Text(&'a str),
    Status(ConnectionStatus),
    Time(Timestamp),
    Property(&'a PropertyValue),
}

impl Condition {
    /// Whether the condition holds for a device whose value of the condition's
    /// field is `value` (`None`: the device lacks it), at `now`. This is the
    /// reference semantics of every field but groups (for which it is false:
    /// membership is not one value), so an index that keeps each distinct value
    /// once can decide per value what [`Filter::matches`] decides per device.
    pub fn accepts(&self, value: Option<FieldValue<'_>>, now: Timestamp) -> bool {
        let t = self.test();
        let text_of = match value {
            Some(FieldValue::Text(s)) => Some(s),
            _ => None,
        };
        match self.field() {
            Field::Group => false,
            Field::Id | Field::Product | Field::ModuleModel | Field::Template | Field::Metadata(_) => {
                text_test(text_of, t)
            }
            Field::Firmware(_) | Field::Hardware | Field::ModuleVersion => version(text_of, t),
            Field::Status => match value {
                Some(FieldValue::Status(s)) => status(s, t),
                _ => false,
            },
            Field::Activated | Field::Connected => match value {
                Some(FieldValue::Time(at)) => time(Some(at), t, now),
                _ => time(None, t, now),
            },
            Field::Property(_) => match value {
                Some(FieldValue::Property(p)) => property(Some(p), t),
                _ => property(None, t),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// The compiled form.
// ---------------------------------------------------------------------------

/// A semantic version as [`Version::new`] reads it (a leading `v` allowed).
fn semver_of(s: &str) -> Option<semver::Version> {
    semver::Version::parse(s.strip_prefix('v').unwrap_or(s)).ok()
}

/// A device prepared for evaluation against many filters: its versions are
/// parsed once. Building it allocates; evaluating with it does not.
#[derive(Debug)]
pub struct Subject<'a> {
    device: &'a Device,
    groups: Vec<&'a str>,
    now: Timestamp,
    /// Installed firmware by component, sorted by component (the map's order).
    firmware: Vec<(&'a str, &'a str, Option<semver::Version>)>,
    hardware: Option<semver::Version>,
    module_version: Option<semver::Version>,
}

impl<'a> Subject<'a> {
    /// `device`, a member of `groups` (their ids), evaluated at `now`.
    pub fn new<S: AsRef<str>>(device: &'a Device, groups: &'a [S], now: Timestamp) -> Self {
        Subject {
            device,
            groups: groups.iter().map(AsRef::as_ref).collect(),
            now,
            firmware: device.firmware.iter().map(|(c, v)| (c.as_str(), v.as_str(), semver_of(v))).collect(),
            hardware: device.hardware_version.as_deref().and_then(semver_of),
            module_version: device.module_version.as_deref().and_then(semver_of),
        }
    }

    pub fn device(&self) -> &'a Device {
        self.device
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    fn firmware(&self, component: &str) -> Option<(&'a str, Option<&semver::Version>)> {
        let i = self.firmware.binary_search_by(|(c, _, _)| (*c).cmp(component)).ok()?;
        let (_, raw, parsed) = &self.firmware[i];
        Some((raw, parsed.as_ref()))
    }
}

/// A filter prepared for evaluation. Built by [`Filter::compile`]; immutable and
/// cheap to share between threads.
///
/// **Invariant:** [`CompiledFilter::matches`] gives the same answer as
/// [`Filter::matches`] on the filter it was compiled from, and allocates nothing.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    root: Option<Node>,
    /// Sorted, without duplicates.
    include: Box<[Box<str>]>,
    /// Sorted, without duplicates.
    exclude: Box<[Box<str>]>,
    uses_groups: bool,
    time_relative: bool,
}

#[derive(Debug, Clone)]
enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Leaf(Leaf),
}

#[derive(Debug, Clone)]
enum Leaf {
    Id(TextTest),
    Product(TextTest),
    ModuleModel(TextTest),
    Template(TextTest),
    Metadata(Box<str>, TextTest),
    /// The statuses that match, as a bit set (see [`status_bit`]).
    Status(u8),
    Activated(TimeTest),
    Connected(TimeTest),
    Group(GroupTest),
    Firmware(Box<str>, VersionTest),
    Hardware(VersionTest),
    ModuleVersion(VersionTest),
    Property(Box<str>, PropertyTest),
}

#[derive(Debug, Clone, Copy)]
enum OrdOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl OrdOp {
    fn of(t: &Test) -> Option<OrdOp> {
        match t {
            Test::Lt(_) => Some(OrdOp::Lt),
            Test::Le(_) => Some(OrdOp::Le),
            Test::Gt(_) => Some(OrdOp::Gt),
            Test::Ge(_) => Some(OrdOp::Ge),
            _ => None,
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            OrdOp::Lt => o == Ordering::Less,
            OrdOp::Le => o != Ordering::Greater,
            OrdOp::Gt => o == Ordering::Greater,
            OrdOp::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone)]
enum TextTest {
    Eq(Box<str>),
    Ne(Box<str>),
    /// Sorted.
    In(Box<[Box<str>]>),
    Exists,
}

#[derive(Debug, Clone)]
enum TimeTest {
    Cmp(OrdOp, TimeRef),
    Exists,
}

#[derive(Debug, Clone)]
enum GroupTest {
    Member(Box<str>),
    NotMember(Box<str>),
    /// Sorted.
    MemberOfAny(Box<[Box<str>]>),
}

#[derive(Debug, Clone)]
struct VersionLiteral {
    raw: Box<str>,
    semver: Option<semver::Version>,
}

#[derive(Debug, Clone)]
enum VersionTest {
    Eq(VersionLiteral),
    Ne(VersionLiteral),
    Cmp(OrdOp, VersionLiteral),
    In(Box<[VersionLiteral]>),
    Exists,
}

#[derive(Debug, Clone)]
enum PropertyLiteral {
    Bool(bool),
    Number(f64),
    String(Box<str>),
}

#[derive(Debug, Clone)]
enum PropertyTest {
    Eq(PropertyLiteral),
    Ne(PropertyLiteral),
    Cmp(OrdOp, PropertyLiteral),
    In(Box<[PropertyLiteral]>),
    Contains(Box<str>),
    Exists,
}

fn status_bit(s: ConnectionStatus) -> u8 {
    match s {
        ConnectionStatus::Online => 1,
        ConnectionStatus::Offline => 2,
        ConnectionStatus::Initializing => 4,
    }
}

fn sorted_strs(values: &[Literal]) -> Box<[Box<str>]> {
    let mut v: Vec<Box<str>> = values.iter().filter_map(Literal::as_str).map(Box::from).collect();
    v.sort_unstable();
    v.dedup();
    v.into_boxed_slice()
}

fn contains_sorted(list: &[Box<str>], s: &str) -> bool {
    list.binary_search_by(|x| (**x).cmp(s)).is_ok()
}

fn str_of(l: &Literal) -> Box<str> {
    l.as_str().unwrap_or_default().into()
}

fn compile_text(t: &Test) -> TextTest {
    match t {
        Test::Eq(l) => TextTest::Eq(str_of(l)),
        Test::Ne(l) => TextTest::Ne(str_of(l)),
        Test::In(ls) => TextTest::In(sorted_strs(ls)),
        // A `Condition` only holds the operators its field takes.
        _ => TextTest::Exists,
    }
}

fn compile_version(t: &Test) -> VersionTest {
    let lit = |l: &Literal| {
        let raw = str_of(l);
        VersionLiteral { semver: semver_of(&raw), raw }
    };
    match (t, OrdOp::of(t)) {
        (_, Some(op)) => VersionTest::Cmp(op, lit(t.value().expect("a comparison has a value"))),
        (Test::Eq(l), _) => VersionTest::Eq(lit(l)),
        (Test::Ne(l), _) => VersionTest::Ne(lit(l)),
        (Test::In(ls), _) => VersionTest::In(ls.iter().map(lit).collect()),
        _ => VersionTest::Exists,
    }
}

fn compile_property(t: &Test) -> PropertyTest {
    let lit = |l: &Literal| match l {
        Literal::Bool(b) => PropertyLiteral::Bool(*b),
        Literal::Number(n) => PropertyLiteral::Number(*n),
        other => PropertyLiteral::String(str_of(other)),
    };
    match (t, OrdOp::of(t)) {
        (_, Some(op)) => PropertyTest::Cmp(op, lit(t.value().expect("a comparison has a value"))),
        (Test::Eq(l), _) => PropertyTest::Eq(lit(l)),
        (Test::Ne(l), _) => PropertyTest::Ne(lit(l)),
        (Test::In(ls), _) => PropertyTest::In(ls.iter().map(lit).collect()),
        (Test::Contains(s), _) => PropertyTest::Contains(s.as_str().into()),
        _ => PropertyTest::Exists,
    }
}

fn compile_time(t: &Test) -> TimeTest {
    match (OrdOp::of(t), t.value()) {
        (Some(op), Some(Literal::Time(r))) => TimeTest::Cmp(op, *r),
        _ => TimeTest::Exists,
    }
}

fn compile_status(t: &Test) -> u8 {
    let bit = |l: &Literal| match l {
        Literal::Status(s) => status_bit(*s),
        _ => 0,
    };
    match t {
        Test::Eq(l) => bit(l),
        Test::Ne(l) => 0b111 & !bit(l),
        Test::In(ls) => ls.iter().fold(0, |acc, l| acc | bit(l)),
        _ => 0,
    }
}

fn compile_group(t: &Test) -> GroupTest {
    match t {
        Test::Ne(l) => GroupTest::NotMember(str_of(l)),
        Test::In(ls) => GroupTest::MemberOfAny(sorted_strs(ls)),
        Test::Eq(l) => GroupTest::Member(str_of(l)),
        _ => GroupTest::MemberOfAny(Box::new([])),
    }
}

fn compile_condition(c: &Condition) -> Leaf {
    let t = c.test();
    match c.field() {
        Field::Id => Leaf::Id(compile_text(t)),
        Field::Product => Leaf::Product(compile_text(t)),
        Field::ModuleModel => Leaf::ModuleModel(compile_text(t)),
        Field::Template => Leaf::Template(compile_text(t)),
        Field::Metadata(k) => Leaf::Metadata(k.as_str().into(), compile_text(t)),
        Field::Status => Leaf::Status(compile_status(t)),
        Field::Activated => Leaf::Activated(compile_time(t)),
        Field::Connected => Leaf::Connected(compile_time(t)),
        Field::Group => Leaf::Group(compile_group(t)),
        Field::Firmware(name) => Leaf::Firmware(name.as_str().into(), compile_version(t)),
        Field::Hardware => Leaf::Hardware(compile_version(t)),
        Field::ModuleVersion => Leaf::ModuleVersion(compile_version(t)),
        Field::Property(name) => Leaf::Property(name.as_str().into(), compile_property(t)),
    }
}

fn compile_expr(e: &Expr) -> Node {
    match e {
        Expr::And(cs) => Node::And(cs.iter().map(compile_expr).collect()),
        Expr::Or(cs) => Node::Or(cs.iter().map(compile_expr).collect()),
        Expr::Not(c) => Node::Not(Box::new(compile_expr(c))),
        Expr::Cond(c) => Node::Leaf(compile_condition(c)),
    }
}

fn id_set(ids: &[String]) -> Box<[Box<str>]> {
    let mut v: Vec<Box<str>> = ids.iter().map(|s| Box::from(s.as_str())).collect();
    v.sort_unstable();
    v.dedup();
    v.into_boxed_slice()
}

impl TextTest {
    fn eval(&self, v: Option<&str>) -> bool {
        let Some(v) = v else { return false };
        match self {
            TextTest::Eq(l) => **l == *v,
            TextTest::Ne(l) => **l != *v,
            TextTest::In(ls) => contains_sorted(ls, v),
            TextTest::Exists => true,
        }
    }
}

impl TimeTest {
    fn eval(&self, v: Option<Timestamp>, now: Timestamp) -> bool {
        let Some(v) = v else { return false };
        match self {
            TimeTest::Cmp(op, r) => op.holds(v.cmp(&r.resolve(now))),
            TimeTest::Exists => true,
        }
    }
}

impl GroupTest {
    fn eval(&self, groups: &[&str]) -> bool {
        match self {
            GroupTest::Member(g) => groups.contains(&&**g),
            GroupTest::NotMember(g) => !groups.contains(&&**g),
            GroupTest::MemberOfAny(gs) => groups.iter().any(|g| contains_sorted(gs, g)),
        }
    }
}

impl VersionLiteral {
    /// As [`Version::compare`]: semver precedence when both are semver, else
    /// equal only when identical.
    fn equals(&self, raw: &str, parsed: Option<&semver::Version>) -> bool {
        match (parsed, &self.semver) {
            (Some(a), Some(b)) => a.cmp_precedence(b) == Ordering::Equal,
            _ => *self.raw == *raw,
        }
    }
}

impl VersionTest {
    fn eval(&self, v: Option<(&str, Option<&semver::Version>)>) -> bool {
        let Some((raw, parsed)) = v else { return false };
        match self {
            VersionTest::Eq(l) => l.equals(raw, parsed),
            VersionTest::Ne(l) => !l.equals(raw, parsed),
            VersionTest::Cmp(op, l) => match (parsed, &l.semver) {
                (Some(a), Some(b)) => op.holds(a.cmp_precedence(b)),
                _ => false,
            },
            VersionTest::In(ls) => ls.iter().any(|l| l.equals(raw, parsed)),
            VersionTest::Exists => true,
        }
    }
}

impl PropertyLiteral {
    fn equals(&self, v: &PropertyValue) -> bool {
        match (v, self) {
            (PropertyValue::Bool(a), PropertyLiteral::Bool(b)) => a == b,
            (PropertyValue::Number(a), PropertyLiteral::Number(b)) => a == b,
            (PropertyValue::String(a), PropertyLiteral::String(b)) => **a == **b,
            _ => false,
        }
    }

    fn order(&self, v: &PropertyValue) -> Option<Ordering> {
        match (v, self) {
            (PropertyValue::Number(a), PropertyLiteral::Number(b)) => a.partial_cmp(b),
            (PropertyValue::String(a), PropertyLiteral::String(b)) => Some(a.as_str().cmp(b)),
            _ => None,
        }
    }
}

impl PropertyTest {
    fn eval(&self, v: Option<&PropertyValue>) -> bool {
        let Some(v) = v else { return false };
        match self {
            PropertyTest::Eq(l) => l.equals(v),
            PropertyTest::Ne(l) => !l.equals(v),
            PropertyTest::Cmp(op, l) => l.order(v).is_some_and(|o| op.holds(o)),
            PropertyTest::In(ls) => ls.iter().any(|l| l.equals(v)),
            PropertyTest::Contains(s) => matches!(v, PropertyValue::String(a) if a.contains(&**s)),
            PropertyTest::Exists => true,
        }
    }
}

impl Leaf {
    fn eval(&self, s: &Subject<'_>) -> bool {
        let d = s.device;
        match self {
            Leaf::Id(t) => t.eval(Some(&d.id)),
            Leaf::Product(t) => t.eval(Some(&d.product)),
            Leaf::ModuleModel(t) => t.eval(d.module_model.as_deref()),
            Leaf::Template(t) => t.eval(d.template_id.as_deref()),
            Leaf::Metadata(k, t) => t.eval(d.metadata.get(&**k).map(String::as_str)),
            Leaf::Status(mask) => mask & status_bit(d.connection_status) != 0,
            Leaf::Activated(t) => t.eval(d.activated_at, s.now),
            Leaf::Connected(t) => t.eval(d.last_seen_at, s.now),
            Leaf::Group(t) => t.eval(&s.groups),
            Leaf::Firmware(c, t) => t.eval(s.firmware(c)),
            Leaf::Hardware(t) => t.eval(d.hardware_version.as_deref().map(|raw| (raw, s.hardware.as_ref()))),
            Leaf::ModuleVersion(t) => t.eval(d.module_version.as_deref().map(|raw| (raw, s.module_version.as_ref()))),
            Leaf::Property(n, t) => t.eval(d.properties.get(&**n)),
        }
    }
}

impl Node {
    fn eval(&self, s: &Subject<'_>) -> bool {
        match self {
            Node::And(cs) => cs.iter().all(|c| c.eval(s)),
            Node::Or(cs) => cs.iter().any(|c| c.eval(s)),
            Node::Not(c) => !c.eval(s),
            Node::Leaf(l) => l.eval(s),
        }
    }
}

impl CompiledFilter {
    pub(super) fn new(f: &Filter) -> Self {
        CompiledFilter {
            root: f.criteria().map(compile_expr),
            include: id_set(f.include()),
            exclude: id_set(f.exclude()),
            uses_groups: f.uses_groups(),
            time_relative: f.is_time_relative(),
        }
    }

    /// Whether the prepared device matches. Same answer as [`Filter::matches`];
    /// allocates nothing.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let id = s.device.id.as_str();
        if contains_sorted(&self.exclude, id) {
            return false;
        }
        if contains_sorted(&self.include, id) {
            return true;
        }
        self.root.as_ref().is_none_or(|n| n.eval(s))
    }

    /// [`CompiledFilter::matches`] for a single check (prepares the device first).
    pub fn matches_device<S: AsRef<str>>(&self, device: &Device, groups: &[S], now: Timestamp) -> bool {
        self.matches(&Subject::new(device, groups, now))
    }

    /// See [`Filter::uses_groups`].
    pub fn uses_groups(&self) -> bool {
        self.uses_groups
    }

    /// See [`Filter::is_time_relative`].
    pub fn is_time_relative(&self) -> bool {
        self.time_relative
    }
}
