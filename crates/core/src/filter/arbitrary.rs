//! proptest strategies for filters and devices: this crate's property tests use
//! them, and so can the store's (feature `proptest`), to hold its queries to
//! [`Filter::matches`].
//!
//! Names and values are drawn mostly from small shared pools so that random
//! filters match random devices often, with some awkward strings mixed in
//! (quotes, backslashes, control characters, non-ASCII) to exercise quoting.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::sample::select;

use super::{Condition, Expr, Field, Filter, Literal, Period, PeriodUnit, Test, TimeRef};
use crate::{ConnectionStatus, Device, PropertyValue};

pub const IDS: [&str; 5] = ["d1", "d2", "dsn-3", "DSN:4.x", "d_5"];
pub const PRODUCTS: [&str; 3] = ["thermo-x", "thermo-y", "lamp"];
pub const GROUPS: [&str; 3] = ["beta", "eu-west", "g3"];
pub const COMPONENTS: [&str; 3] = ["host", "module", "wifi"];
pub const PROPERTIES: [&str; 4] = ["region", "temp", "beta", "note"];
pub const METADATA: [&str; 2] = ["campaign", "site"];
pub const TEXTS: [&str; 5] = ["eu", "us", "spring", "EU", ""];
pub const VERSIONS: [&str; 8] = ["1.0.0", "1.2.0", "v1.2.0", "1.10.0", "2.0.0", "2.0.0-rc.1", "1.2.0+b7", "build-7"];
pub const SEMVERS: [&str; 6] = ["1.0.0", "1.2.0", "1.10.0", "2.0.0", "2.0.0-rc.1", "v1.2.0"];

/// The instant random devices and filters are built around; evaluate at it.
pub fn now() -> Timestamp {
    "2025-06-15T12:00:00Z".parse().expect("a timestamp")
}

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    select(pool).prop_map(str::to_owned)
}

/// Mostly the pool; sometimes a name that needs quoting in the text form.
fn name(pool: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        8 => pick(pool),
        1 => select(&["my key", "a\"b", "ré.gion", "x.y-z", "a\\b"][..]).prop_map(str::to_owned),
    ]
}

/// Mostly the pool; sometimes arbitrary text, control characters included.
fn text(pool: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop_oneof![8 => pick(pool), 1 => "\\PC{0,6}", 1 => "[\"\\\\\n\t\u{1}é]{1,4}"]
}

fn number() -> impl Strategy<Value = f64> + Clone {
    // Hundredths: short decimals read back exactly from JSON text, too.
    prop_oneof![(-3i32..40).prop_map(f64::from), (-100_000i32..100_000).prop_map(|n| f64::from(n) / 100.0)]
}

fn period() -> impl Strategy<Value = Period> + Clone {
    (0u32..60, select(&PeriodUnit::ALL[..])).prop_map(|(n, u)| Period::new(n, u).expect("short"))
}

/// Whole hours around [`now`], sometimes with microseconds.
fn instant() -> impl Strategy<Value = Timestamp> + Clone {
    (-24 * 800i64..24 * 10, prop_oneof![3 => Just(0i64), 1 => 0i64..1_000_000])
        .prop_map(|(h, us)| now() + SignedDuration::from_hours(h) + SignedDuration::from_micros(us))
}

fn time() -> impl Strategy<Value = Literal> + Clone {
    prop_oneof![instant().prop_map(TimeRef::At), period().prop_map(TimeRef::Ago)].prop_map(Literal::Time)
}

fn strings(values: impl Strategy<Value = String> + Clone) -> impl Strategy<Value = Vec<Literal>> + Clone {
    prop::collection::vec(values.prop_map(Literal::String), 1..4)
}

/// ==, != or in over `values`, and `exists` when `optional`.
fn equality(values: impl Strategy<Value = String> + Clone + 'static, optional: bool) -> BoxedStrategy<Test> {
    let one = values.clone().prop_map(Literal::String);
    let mut options = vec![
        one.clone().prop_map(Test::Eq).boxed(),
        one.prop_map(Test::Ne).boxed(),
        strings(values).prop_map(Test::In).boxed(),
    ];
    if optional {
        options.push(Just(Test::Exists).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

fn ordering(value: impl Strategy<Value = Literal> + Clone + 'static) -> BoxedStrategy<Test> {
    prop_oneof![
        value.clone().prop_map(Test::Lt),
        value.clone().prop_map(Test::Le),
        value.clone().prop_map(Test::Gt),
        value.prop_map(Test::Ge),
    ]
    .boxed()
}

fn version_test() -> BoxedStrategy<Test> {
    prop_oneof![
        2 => equality(pick(&VERSIONS), true),
        2 => ordering(pick(&SEMVERS).prop_map(Literal::String)),
    ]
    .boxed()
}

fn property_literal() -> impl Strategy<Value = Literal> + Clone {
    prop_oneof![
        text(&TEXTS).prop_map(Literal::String),
        number().prop_map(Literal::Number),
        any::<bool>().prop_map(Literal::Bool),
    ]
}

fn property_test() -> BoxedStrategy<Test> {
    prop_oneof![
        property_literal().prop_map(Test::Eq),
        property_literal().prop_map(Test::Ne),
        ordering(prop_oneof![number().prop_map(Literal::Number), text(&TEXTS).prop_map(Literal::String)]),
        prop::collection::vec(property_literal(), 1..4).prop_map(Test::In),
        text(&TEXTS).prop_map(Test::Contains),
        Just(Test::Exists),
    ]
    .boxed()
}

fn status_test() -> BoxedStrategy<Test> {
    let status = select(&[ConnectionStatus::Online, ConnectionStatus::Offline, ConnectionStatus::Initializing][..])
        .prop_map(Literal::Status);
    prop_oneof![
        status.clone().prop_map(Test::Eq),
        status.clone().prop_map(Test::Ne),
        prop::collection::vec(status, 1..3).prop_map(Test::In),
    ]
    .boxed()
}

fn time_test() -> BoxedStrategy<Test> {
    prop_oneof![4 => ordering(time()), 1 => Just(Test::Exists)].boxed()
}

/// A valid condition on any field.
pub fn condition() -> impl Strategy<Value = Condition> {
    let field_and_test = prop_oneof![
        equality(pick(&IDS), false).prop_map(|t| (Field::Id, t)),
        equality(pick(&PRODUCTS), false).prop_map(|t| (Field::Product, t)),
        status_test().prop_map(|t| (Field::Status, t)),
        time_test().prop_map(|t| (Field::Activated, t)),
        time_test().prop_map(|t| (Field::Connected, t)),
        equality(pick(&GROUPS), false).prop_map(|t| (Field::Group, t)),
        (name(&COMPONENTS), version_test()).prop_map(|(c, t)| (Field::Firmware(c), t)),
        version_test().prop_map(|t| (Field::Hardware, t)),
        equality(pick(&["m1", "m2"]), true).prop_map(|t| (Field::ModuleModel, t)),
        version_test().prop_map(|t| (Field::ModuleVersion, t)),
        equality(pick(&["t1", "t2"]), true).prop_map(|t| (Field::Template, t)),
        (name(&PROPERTIES), property_test()).prop_map(|(n, t)| (Field::Property(n), t)),
        (name(&METADATA), equality(text(&TEXTS), true)).prop_map(|(k, t)| (Field::Metadata(k), t)),
    ];
    field_and_test.prop_map(|(f, t)| Condition::new(f, t).expect("strategies build valid conditions"))
}

/// An expression tree, not yet canonical.
pub fn expr() -> impl Strategy<Value = Expr> {
    condition().prop_map(Expr::Cond).prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// A valid filter (random trees over the limits are discarded).
pub fn filter() -> impl Strategy<Value = Filter> {
    let ids = || prop::collection::vec(pick(&IDS), 0..3);
    (prop::option::weighted(0.9, expr()), ids(), ids())
        .prop_filter_map("within limits", |(e, inc, exc)| Filter::new(e, inc, exc).ok())
}

fn property_value() -> impl Strategy<Value = PropertyValue> {
    prop_oneof![
        text(&TEXTS).prop_map(PropertyValue::String),
        number().prop_map(PropertyValue::Number),
        any::<bool>().prop_map(PropertyValue::Bool),
    ]
}

/// A device whose attributes come from the same pools as [`filter`]'s.
pub fn device() -> impl Strategy<Value = Device> {
    let opt = |s: BoxedStrategy<String>| prop::option::of(s);
    (
        (pick(&IDS), pick(&PRODUCTS), prop::collection::btree_map(name(&COMPONENTS), pick(&VERSIONS), 0..3)),
        (
            opt(pick(&VERSIONS).boxed()),
            opt(pick(&["m1", "m2"]).boxed()),
            opt(pick(&VERSIONS).boxed()),
            opt(pick(&["t1", "t2"]).boxed()),
        ),
        (
            prop::collection::btree_map(name(&PROPERTIES), property_value(), 0..4),
            prop::collection::btree_map(name(&METADATA), text(&TEXTS), 0..2),
        ),
        (
            prop::option::of(instant()),
            prop::option::of(instant()),
            select(&[ConnectionStatus::Online, ConnectionStatus::Offline, ConnectionStatus::Initializing][..]),
        ),
    )
        .prop_map(
            |((id, product, firmware), (hw, mm, mv, tpl), (properties, metadata), (activated, seen, status))| Device {
                id,
                product,
                firmware,
                hardware_version: hw,
                module_model: mm,
                module_version: mv,
                template_id: tpl,
                properties,
                metadata,
                activated_at: activated,
                last_seen_at: seen,
                connection_status: status,
                created_at: now(),
                updated_at: now(),
            },
        )
}

/// The ids of the groups a device belongs to.
pub fn groups() -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(&GROUPS[..], 0..=GROUPS.len()).prop_map(|gs| gs.into_iter().map(str::to_owned).collect())
}
