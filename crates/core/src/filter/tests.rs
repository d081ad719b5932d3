//! Filters on a small fleet with known answers, in both forms; errors; round
//! trips and agreement of the two evaluators as properties; the hot path's
//! allocations.

use std::collections::BTreeMap;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::{ConnectionStatus, Device, PropertyValue};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    ts("2025-06-15T12:00:00Z")
}

struct Fixture {
    device: Device,
    groups: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn device(
    id: &str,
    product: &str,
    firmware: &[(&str, &str)],
    properties: &[(&str, PropertyValue)],
    activated: Option<&str>,
    seen: Option<&str>,
    status: ConnectionStatus,
    groups: &[&str],
) -> Fixture {
    Fixture {
        device: Device {
            id: id.into(),
            product: product.into(),
            firmware: firmware.iter().map(|(c, v)| (c.to_string(), v.to_string())).collect(),
            hardware_version: None,
            module_model: None,
            module_version: None,
            template_id: None,
            properties: properties.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            metadata: BTreeMap::new(),
            activated_at: activated.map(ts),
            last_seen_at: seen.map(ts),
            connection_status: status,
            created_at: ts("2024-01-01T00:00:00Z"),
            updated_at: ts("2024-01-01T00:00:00Z"),
        },
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// Five devices, at `now` = 2025-06-15T12:00:00Z:
///
/// | id | product  | fw.host | status       | activated         | connected        | groups        |
/// |----|----------|---------|--------------|-------------------|------------------|---------------|
/// | d1 | thermo-x | 1.2.0   | online       | 36 h ago          | 1 h ago          | beta          |
/// | d2 | thermo-x | 2.0.0   | offline      | 2025-01-01        | 2025-06-01       |               |
/// | d3 | thermo-x | 1.10.0  | initializing | 2024-01-10        | never            | beta, eu-west |
/// | d4 | thermo-y | build-7 | online       | never             | 5 min ago        | eu-west       |
/// | d5 | lamp     | —       | online       | 6 h ago           | now              |               |
fn fleet() -> Vec<Fixture> {
    use ConnectionStatus::*;
    use PropertyValue::{Bool, Number, String as Str};
    let s = |v: &str| Str(v.into());
    let mut d1 = device(
        "d1",
        "thermo-x",
        &[("host", "1.2.0"), ("module", "3.1.0")],
        &[("region", s("eu")), ("temp", Number(21.5)), ("beta", Bool(true))],
        Some("2025-06-14T00:00:00Z"),
        Some("2025-06-15T11:00:00Z"),
        Online,
        &["beta"],
    );
    d1.device.hardware_version = Some("rev-b".into());
    d1.device.module_model = Some("esp32".into());
    d1.device.module_version = Some("4.2.1".into());
    d1.device.template_id = Some("t-100".into());
    d1.device.metadata.insert("campaign".into(), "spring".into());
    let mut d2 = device(
        "d2",
        "thermo-x",
        &[("host", "2.0.0"), ("module", "3.0.0")],
        &[("region", s("us")), ("temp", Number(18.0))],
        Some("2025-01-01T00:00:00Z"),
        Some("2025-06-01T00:00:00Z"),
        Offline,
        &[],
    );
    d2.device.hardware_version = Some("2.1.0".into());
    let mut d3 = device(
        "d3",
        "thermo-x",
        &[("host", "1.10.0")],
        &[("region", s("eu")), ("temp", s("hot"))],
        Some("2024-01-10T00:00:00Z"),
        None,
        Initializing,
        &["beta", "eu-west"],
    );
    d3.device.metadata.insert("campaign".into(), "summer".into());
    let mut d4 = device(
        "d4",
        "thermo-y",
        &[("host", "build-7")],
        &[("region", s("eu-west")), ("note", s("firmware pending"))],
        None,
        Some("2025-06-15T11:55:00Z"),
        Online,
        &["eu-west"],
    );
    d4.device.hardware_version = Some("rev-a".into());
    d4.device.module_model = Some("nrf91".into());
    d4.device.module_version = Some("v1.0.0".into());
    d4.device.template_id = Some("t-200".into());
    let d5 = device("d5", "lamp", &[], &[], Some("2025-06-15T06:00:00Z"), Some("2025-06-15T12:00:00Z"), Online, &[]);
    vec![d1, d2, d3, d4, d5]
}

/// The ids of the fleet's devices that `f` matches, after checking that the
/// reference and the compiled evaluation agree on every device.
fn matching(f: &Filter) -> Vec<String> {
    let compiled = f.compile();
    fleet()
        .iter()
        .filter(|x| {
            let reference = f.matches(&x.device, &x.groups, now());
            let fast = compiled.matches(&Subject::new(&x.device, &x.groups, now()));
            assert_eq!(reference, fast, "evaluators disagree on {} for `{f}`", x.device.id);
            reference
        })
        .map(|x| x.device.id.clone())
        .collect()
}

fn text(t: &str) -> Filter {
    Filter::parse(t).unwrap_or_else(|e| panic!("`{t}`: {e}\n{}", e.caret(t)))
}

fn json(j: &str) -> Filter {
    Filter::parse_json(j).unwrap_or_else(|e| panic!("{j}: {e:?}"))
}

/// Checks that the text and JSON forms read to the same filter, that it shows as
/// each of them, and that it matches `expected` on the fleet.
#[track_caller]
fn check(t: &str, j: &str, expected: &[&str]) {
    let (ft, fj) = (text(t), json(j));
    assert_eq!(ft, fj, "`{t}` and {j} differ");
    assert_eq!(Filter::parse(&ft.to_string()).unwrap(), ft, "text round trip of `{t}`");
    assert_eq!(Filter::from_json(&ft.to_json()).unwrap(), ft, "JSON round trip of `{t}`");
    let shown = serde_json::to_string(&fj.to_json()).unwrap();
    assert_eq!(json(&shown), fj, "JSON text round trip of {j}");
    assert_eq!(matching(&ft), expected, "`{t}`");
}

// -- Lifecycle / status ------------------------------------------------------

#[test]
fn connection_status() {
    check("status == online", r#"{"status": {"connection_status": "online"}}"#, &["d1", "d4", "d5"]);
    check(
        "status in [offline, initializing]",
        r#"{"status": {"connection_status": ["offline", "initializing"]}}"#,
        &["d2", "d3"],
    );
    check("status != online", r#"{"status": {"connection_status": {"op": "!=", "value": "online"}}}"#, &["d2", "d3"]);
    check("STATUS == \"Online\"", r#"{"status": {"connection_status": "online"}}"#, &["d1", "d4", "d5"]);
}

#[test]
fn time_since_activation() {
    // At least two days since activation: activated 2025-06-13T12:00Z or before.
    check("activated <= 2d ago", r#"{"status": {"time_since_activation": "2D"}}"#, &["d2", "d3"]);
    check("activated <= 12h ago", r#"{"status": {"time_since_activation": "12h"}}"#, &["d1", "d2", "d3"]);
    check("activated <= 3M ago", r#"{"status": {"time_since_activation": "3M"}}"#, &["d2", "d3"]);
    check("activated <= 1Y ago", r#"{"status": {"time_since_activation": "1Y"}}"#, &["d3"]);
}

#[test]
fn activated_after_and_before() {
    // d2 was activated exactly at 2025-01-01: neither after nor before it.
    check("activated > 2025-01-01", r#"{"status": {"activated_after": "2025-01-01"}}"#, &["d1", "d5"]);
    check("activated < 2025-01-01T00:00:00Z", r#"{"status": {"activated_before": "2025-01-01T00:00:00Z"}}"#, &["d3"]);
    check(
        "activated >= 2025-01-01",
        r#"{"status": {"activated": {"op": ">=", "value": "2025-01-01"}}}"#,
        &["d1", "d2", "d5"],
    );
    check("activated > 30d ago", r#"{"status": {"activated_after": "30d ago"}}"#, &["d1", "d5"]);
    check("not activated exists", r#"{"not": {"status": {"activated": {"op": "exists"}}}}"#, &["d4"]);
}

#[test]
fn connected_after_and_before() {
    check("connected > 2025-06-10", r#"{"status": {"connected_after": "2025-06-10"}}"#, &["d1", "d4", "d5"]);
    check("connected < 2025-06-10", r#"{"status": {"connected_before": "2025-06-10"}}"#, &["d2"]);
    // d1 connected exactly one hour ago.
    check("connected > 1h ago", r#"{"status": {"connected_after": "1h ago"}}"#, &["d4", "d5"]);
    check(
        "connected >= 60m ago",
        r#"{"status": {"connected": {"op": ">=", "value": "60m ago"}}}"#,
        &["d1", "d4", "d5"],
    );
    check(
        "connected > 2025-06-10 and connected < 2025-06-15T11:30:00+00:00",
        r#"{"status": {"connected_after": "2025-06-10", "connected_before": "2025-06-15T11:30:00Z"}}"#,
        &["d1"],
    );
}

// -- Product and versions ----------------------------------------------------

#[test]
fn product() {
    check(r#"product == "thermo-x""#, r#"{"product": "thermo-x"}"#, &["d1", "d2", "d3"]);
    check(r#"product in ["thermo-y", "lamp"]"#, r#"{"product": ["thermo-y", "lamp"]}"#, &["d4", "d5"]);
    check(r#"product != "thermo-x""#, r#"{"product": {"op": "!=", "value": "thermo-x"}}"#, &["d4", "d5"]);
}

#[test]
fn firmware_versions_compare_as_semver() {
    let fw = |op: &str, v: &str| {
        format!(r#"{{"versions": {{"firmware": [{{"component": "host", "op": "{op}", "value": "{v}"}}]}}}}"#)
    };
    // build-7 is not semver: no order; d5 has no host component.
    check(r#"fw.host < "2.0.0""#, &fw("<", "2.0.0"), &["d1", "d3"]);
    check(r#"fw.host <= "1.2.0""#, &fw("<=", "1.2.0"), &["d1"]);
    check(r#"fw.host > "1.9.0""#, &fw(">", "1.9.0"), &["d2", "d3"]);
    check(r#"fw.host >= "1.10.0""#, &fw(">=", "1.10.0"), &["d2", "d3"]);
    check(r#"fw.host == "v1.2.0""#, &fw("==", "v1.2.0"), &["d1"]);
    check(r#"fw.host == "build-7""#, &fw("==", "build-7"), &["d4"]);
    check(r#"fw.host != "2.0.0""#, &fw("!=", "2.0.0"), &["d1", "d3", "d4"]);
    check(
        r#"fw.host in ["1.2.0", "build-7"]"#,
        r#"{"versions": {"firmware": [{"component": "host", "op": "in", "value": ["1.2.0", "build-7"]}]}}"#,
        &["d1", "d4"],
    );
    check(
        "fw.host exists",
        r#"{"versions": {"firmware": [{"component": "host", "op": "exists"}]}}"#,
        &["d1", "d2", "d3", "d4"],
    );
    check(r#"firmware.module < "3.1.0""#, &fw("<", "3.1.0").replace("host", "module"), &["d2"]);
}

#[test]
fn hardware_module_and_template() {
    check(r#"hw == "rev-b""#, r#"{"versions": {"hardware_version": "rev-b"}}"#, &["d1"]);
    check(r#"hw >= "2.0.0""#, r#"{"versions": {"hardware_version": {"op": ">=", "value": "2.0.0"}}}"#, &["d2"]);
    check("hw exists", r#"{"versions": {"hardware_version": {"op": "exists"}}}"#, &["d1", "d2", "d4"]);
    check(r#"module.model == "esp32""#, r#"{"versions": {"module_model": "esp32"}}"#, &["d1"]);
    check(r#"module.version < "2.0.0""#, r#"{"versions": {"module_version": {"op": "<", "value": "2.0.0"}}}"#, &["d4"]);
    check(r#"template == "t-200""#, r#"{"versions": {"template_id": "t-200"}}"#, &["d4"]);
    check(r#"template in ["t-100", "t-200"]"#, r#"{"versions": {"template_id": ["t-100", "t-200"]}}"#, &["d1", "d4"]);
}

#[test]
fn group_membership() {
    check(r#"group == "beta""#, r#"{"group": "beta"}"#, &["d1", "d3"]);
    check(r#"group != "beta""#, r#"{"group": {"op": "!=", "value": "beta"}}"#, &["d2", "d4", "d5"]);
    check(r#"group in ["eu-west"]"#, r#"{"group": ["eu-west"]}"#, &["d3", "d4"]);
}

// -- Properties and metadata -------------------------------------------------

#[test]
fn property_conditions_are_typed() {
    let p = |op: &str, v: &str| format!(r#"{{"properties": [{{"name": "{}", "op": "{op}", "value": {v}}}]}}"#, "temp");
    check(
        r#"prop.region == "eu""#,
        r#"{"properties": [{"name": "region", "op": "==", "value": "eu"}]}"#,
        &["d1", "d3"],
    );
    // d5 has no region: `!=` is false for it.
    check(
        r#"prop.region != "eu""#,
        r#"{"properties": [{"name": "region", "op": "!=", "value": "eu"}]}"#,
        &["d2", "d4"],
    );
    // d3's temp is the string "hot": never ordered against a number.
    check("prop.temp > 20", &p(">", "20"), &["d1"]);
    check("prop.temp >= 21.5", &p(">=", "21.5"), &["d1"]);
    check("prop.temp <= 18", &p("<=", "18"), &["d2"]);
    check("prop.temp < 100", &p("<", "100"), &["d1", "d2"]);
    check(r#"prop.temp == "hot""#, &p("==", "\"hot\""), &["d3"]);
    check(r#"prop.temp >= "a""#, &p(">=", "\"a\""), &["d3"]);
    // `!=` across types is true: 18 is not "hot".
    check(r#"prop.temp != "hot""#, &p("!=", "\"hot\""), &["d1", "d2"]);
    check(
        r#"prop.region contains "eu""#,
        r#"{"properties": [{"name": "region", "op": "contains", "value": "eu"}]}"#,
        &["d1", "d3", "d4"],
    );
    check(
        r#"prop.region contains "EU""#,
        r#"{"properties": [{"name": "region", "op": "contains", "value": "EU"}]}"#,
        &[],
    );
    check("prop.beta == true", r#"{"properties": [{"name": "beta", "value": true}]}"#, &["d1"]);
    check("prop.note exists", r#"{"properties": [{"name": "note", "op": "exists"}]}"#, &["d4"]);
    check(
        r#"prop.region in ["us", "eu-west"]"#,
        r#"{"properties": [{"name": "region", "op": "in", "value": ["us", "eu-west"]}]}"#,
        &["d2", "d4"],
    );
    check(
        r#"not prop.region == "eu""#,
        r#"{"not": {"properties": [{"name": "region", "op": "==", "value": "eu"}]}}"#,
        &["d2", "d4", "d5"],
    );
}

#[test]
fn metadata_equality() {
    check(r#"meta.campaign == "spring""#, r#"{"metadata": [{"key": "campaign", "value": "spring"}]}"#, &["d1"]);
    check(
        r#"meta.campaign != "spring""#,
        r#"{"metadata": [{"key": "campaign", "op": "!=", "value": "spring"}]}"#,
        &["d3"],
    );
    check(r#"metadata."campaign" exists"#, r#"{"metadata": [{"key": "campaign", "op": "exists"}]}"#, &["d1", "d3"]);
}

// -- Include, exclude, combinations -----------------------------------------

#[test]
fn include_and_exclude() {
    check(
        r#"product == "lamp" include ["d2"] exclude ["d5"]"#,
        r#"{"product": "lamp", "include": ["d2"], "exclude": ["d5"]}"#,
        &["d2"],
    );
    // Exclude wins over include; no criteria matches every device.
    check(
        r#"all include ["d1"] exclude ["d1"]"#,
        r#"{"include": ["d1"], "exclude": ["d1"]}"#,
        &["d2", "d3", "d4", "d5"],
    );
    check(r#"exclude ["d1", "d2"]"#, r#"{"exclude": ["d1", "d2"]}"#, &["d3", "d4", "d5"]);
    check("all", "{}", &["d1", "d2", "d3", "d4", "d5"]);
}

#[test]
fn or_not_and_parentheses() {
    check(
        r#"(status == offline or group == "eu-west") and not product == "thermo-y""#,
        r#"{"any": [{"status": {"connection_status": "offline"}}, {"group": "eu-west"}],
            "not": {"product": "thermo-y"}}"#,
        &["d2", "d3"],
    );
    // `and` binds tighter than `or`.
    check(
        r#"status == offline or group == "eu-west" and product == "thermo-y""#,
        r#"{"any": [{"status": {"connection_status": "offline"}}, {"product": "thermo-y", "group": "eu-west"}]}"#,
        &["d2", "d4"],
    );
    check(
        r#"not (product == "thermo-x" or product == "lamp") OR NOT status != online"#,
        r#"{"any": [{"not": {"any": [{"product": "thermo-x"}, {"product": "lamp"}]}},
                    {"not": {"status": {"connection_status": {"op": "!=", "value": "online"}}}}]}"#,
        &["d1", "d4", "d5"],
    );
    // Two `or`s in one `and`: the second goes to `all`.
    check(
        r#"(status == offline or status == initializing) and (group == "beta" or prop.temp < 20)"#,
        r#"{"any": [{"status": {"connection_status": "offline"}}, {"status": {"connection_status": "initializing"}}],
            "all": [{"any": [{"group": "beta"}, {"properties": [{"name": "temp", "op": "<", "value": 20}]}]}]}"#,
        &["d2", "d3"],
    );
}

#[test]
fn the_example_from_the_issue_works_as_written() {
    let t = r#"product == "thermo-x" and fw.host < "2.0.0" and status == online and activated > 30d ago and prop.region == "eu""#;
    let j = r#"{
        "product": "thermo-x",
        "status": {"connection_status": "online", "activated_after": "30d ago"},
        "versions": {"firmware": [{"component": "host", "op": "<", "value": "2.0.0"}]},
        "properties": [{"name": "region", "op": "==", "value": "eu"}]
    }"#;
    check(t, j, &["d1"]);
    let f = text(t);
    // The canonical text orders conditions by category, as the JSON form does.
    assert_eq!(
        f.to_string(),
        r#"product == "thermo-x" and status == online and activated > 30d ago and fw.host < "2.0.0" and prop.region == "eu""#
    );
    assert_eq!(serde_json::to_value(f.to_json()).unwrap(), serde_json::from_str::<serde_json::Value>(j).unwrap());
    assert!(f.is_time_relative());
    assert!(!f.uses_groups());
}

#[test]
fn canonical_forms() {
    // Nesting, double negation and order within an `and` do not make a different filter.
    let a = text(r#"prop.x == 1 and (status == online and product == "p")"#);
    let b = text(r#"product == "p" and not not status == online and prop.x == 1"#);
    assert_eq!(a, b);
    assert_eq!(a.to_string(), r#"product == "p" and status == online and prop.x == 1"#);
    // Conditions in the same slot keep their order.
    assert_eq!(text("prop.b == 1 and prop.a == 2").to_string(), "prop.b == 1 and prop.a == 2");
    // Parentheses only where precedence needs them.
    assert_eq!(text("((id == \"d1\"))").to_string(), "id == \"d1\"");
    let f = text(r#"not (status == online and product == "p") or (group == "g" or id == "d1")"#);
    assert_eq!(f.to_string(), r#"not (product == "p" and status == online) or group == "g" or id == "d1""#);
    // Names and strings that need quoting are quoted.
    let f = text(r#"prop."my key" == "a\"b\\c\n" and fw."x y" exists"#);
    assert_eq!(f.to_string(), r#"fw."x y" exists and prop."my key" == "a\"b\\c\n""#);
    assert_eq!(Filter::all().to_string(), "all");
    assert_eq!(text("ALL"), Filter::all());
    // Aliases read to the canonical names.
    assert_eq!(
        text(r#"hardware_version == "a" and module_model == "b" and template_id == "c" and last_seen exists"#)
            .to_string(),
        r#"connected exists and hw == "a" and module.model == "b" and template == "c""#
    );
    assert_eq!(text("activated > 2024-05-01").to_string(), "activated > 2024-05-01T00:00:00Z");
    assert_eq!(text("prop.x = -2.50").to_string(), "prop.x == -2.5");
}

// -- Errors ------------------------------------------------------------------

#[track_caller]
fn text_error(t: &str) -> FilterError {
    let e = Filter::parse(t).expect_err(t);
    // Every error points into the input.
    assert!(e.offset().is_some_and(|o| o <= t.len()), "{e:?}");
    e
}

#[track_caller]
fn at(e: &FilterError) -> (ErrorKind, usize) {
    match e.location {
        Location::Text { column, .. } => (e.kind, column),
        _ => panic!("not a text location: {e:?}"),
    }
}

#[test]
fn unknown_field() {
    let e = text_error(r#"product == "x" and colour == "red""#);
    assert_eq!(at(&e), (ErrorKind::UnknownField, 20));
    assert_eq!(e.message, "unknown field `colour`");
    assert_eq!(e.found.as_deref(), Some("`colour`"));
    let expected = e.expected.as_deref().unwrap();
    for field in ["product", "status", "fw.<component>", "prop.<name>", "meta.<key>", "module.version", "group"] {
        assert!(expected.contains(field), "{expected}");
    }
    assert_eq!(e.to_string(), format!("at column 20: unknown field `colour` (expected {expected}; found `colour`)"));
}

#[test]
fn wrong_operator_for_the_type() {
    let e = text_error(r#"product < "x""#);
    assert_eq!(at(&e), (ErrorKind::WrongOperator, 9));
    assert_eq!(e.message, "`<` does not apply to `product`, which is text");
    assert_eq!(e.expected.as_deref(), Some("one of ==, !=, in"));
    assert_eq!(at(&text_error("prop.beta > true")), (ErrorKind::WrongOperator, 11));
    let e = text_error(r#"fw.host < "build-7""#);
    assert_eq!(at(&e), (ErrorKind::WrongOperator, 9));
    assert!(e.message.contains("not one"), "{e}");
    assert_eq!(at(&text_error("status contains online")).0, ErrorKind::WrongOperator);
    assert_eq!(at(&text_error("activated == 2024-01-01")).0, ErrorKind::WrongOperator);
    assert!(text_error("id exists").message.contains("always present"));
    // A value of the wrong type points at the value.
    assert_eq!(at(&text_error("fw.host == 2")), (ErrorKind::InvalidValue, 12));
    assert_eq!(at(&text_error("prop.x == online")), (ErrorKind::InvalidValue, 11));
    assert_eq!(at(&text_error(r#"status in [online, "asleep"]"#)), (ErrorKind::InvalidValue, 20));
    assert_eq!(at(&text_error("activated > 30")), (ErrorKind::InvalidValue, 13));
    assert_eq!(at(&text_error("prop.x contains 5")), (ErrorKind::InvalidValue, 17));
}

#[test]
fn eleven_property_conditions() {
    let conds: Vec<String> = (0..11).map(|i| format!("prop.p{i} == {i}")).collect();
    let t = conds.join(" and ");
    let e = text_error(&t);
    let column = t.find("prop.p10").unwrap() + 1;
    assert_eq!(at(&e), (ErrorKind::Limit, column));
    assert!(e.message.contains("at most 10"), "{e}");
    // Ten are fine, and the limit counts conditions anywhere in the tree.
    assert!(Filter::parse(&conds[..10].join(" and ")).is_ok());
    assert_eq!(at(&text_error(&format!("({}) or prop.z exists", conds[..10].join(" or ")))).0, ErrorKind::Limit);
    let metas: Vec<String> = (0..11).map(|i| format!(r#"meta.k{i} == "v""#)).collect();
    assert!(text_error(&metas.join(" and ")).message.contains("metadata"));

    let props: Vec<String> = (0..11).map(|i| format!(r#"{{"name": "p{i}", "op": "==", "value": {i}}}"#)).collect();
    let errors = Filter::parse_json(&format!(r#"{{"properties": [{}]}}"#, props.join(","))).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].kind, &errors[0].location), (ErrorKind::Limit, &Location::json("properties[10]")));

    let too_many =
        (0..11).map(|i| Expr::Cond(Condition::build(Field::Property(format!("p{i}")), Op::Exists, vec![]).unwrap()));
    let errors = Filter::new(Some(Expr::And(too_many.collect())), vec![], vec![]).unwrap_err();
    assert_eq!(errors[0].kind, ErrorKind::Limit);
}

#[test]
fn unterminated_string() {
    let e = text_error(r#"prop.region == "eu"#);
    assert_eq!(at(&e), (ErrorKind::UnterminatedString, 16));
    assert_eq!(e.expected.as_deref(), Some("a closing `\"`"));
    assert_eq!(e.found.as_deref(), Some("end of input"));
    assert_eq!(
        e.to_string(),
        "at column 16: this string is never closed (expected a closing `\"`; found end of input)"
    );
    assert_eq!(e.caret(r#"prop.region == "eu"#), "prop.region == \"eu\n               ^");
}

#[test]
fn duration_with_an_unknown_unit() {
    let e = text_error("activated <= 5Q ago");
    assert_eq!(at(&e), (ErrorKind::InvalidLiteral, 14));
    assert_eq!(e.message, "unknown duration unit `Q` in `5Q`");
    assert_eq!(e.expected.as_deref(), Some("a unit: s, m (minutes), h, d, w, M (months) or y"));
    let errors = Filter::parse_json(r#"{"status": {"time_since_activation": "5Q"}}"#).unwrap_err();
    assert_eq!(
        (errors[0].kind, &errors[0].location, errors[0].message.as_str()),
        (
            ErrorKind::InvalidLiteral,
            &Location::json("status.time_since_activation"),
            "unknown duration unit `Q` in `5Q`"
        )
    );
    let errors = Filter::parse_json(r#"{"status": {"activated_after": "5Q ago"}}"#).unwrap_err();
    assert_eq!(errors[0].location, Location::json("status.activated_after"));
}

#[test]
fn syntax_errors_say_what_was_expected() {
    let e = text_error(r#"product == "x" status == online"#);
    assert_eq!(at(&e), (ErrorKind::Syntax, 16));
    assert_eq!(e.expected.as_deref(), Some("`and`, `or`, `include`, `exclude` or the end of the filter"));
    let e = text_error(r#"(product == "x" or status == online"#);
    assert_eq!(at(&e), (ErrorKind::Syntax, 36));
    assert!(e.message.contains("`(` at column 1"), "{e}");
    assert_eq!(e.found.as_deref(), Some("end of input"));
    assert_eq!(at(&text_error(r#"product == "#)), (ErrorKind::Syntax, 12));
    assert_eq!(at(&text_error(r#"product "x""#)), (ErrorKind::Syntax, 9));
    assert!(text_error(r#"fw.host not in ["1"]"#).message.contains("not fw.host"));
    assert_eq!(at(&text_error("status == online && id == \"x\"")), (ErrorKind::Syntax, 18));
    assert_eq!(at(&text_error("prop. == 1")), (ErrorKind::Syntax, 7));
    assert!(text_error("activated > 30d").message.contains("`ago`"));
    assert_eq!(at(&text_error("fw.host == 2.0.0")), (ErrorKind::InvalidLiteral, 12));
    assert_eq!(at(&text_error(r#"status == online and"#)).1, 21);
    assert_eq!(at(&text_error(r#"and status == online"#)), (ErrorKind::Syntax, 1));
    assert!(text_error(r#"include ["a"] include ["b"]"#).message.contains("twice"));
    assert_eq!(at(&text_error(r#"include ["ok", "not ok"]"#)), (ErrorKind::InvalidValue, 16));
    assert_eq!(at(&text_error(r#"prop.x in []"#)).0, ErrorKind::InvalidValue);
    let e = text_error("product == \"x\"\n  and foo == 1");
    assert_eq!(e.location, Location::Text { offset: 21, line: 2, column: 7 });
}

#[test]
fn nesting_is_limited() {
    let deep = format!("{}status == online{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(at(&text_error(&deep)).0, ErrorKind::Limit);
    // Parentheses around one condition do not deepen the canonical tree.
    let shallow = format!("{}status == online{}", "(".repeat(60), ")".repeat(60));
    assert_eq!(text(&shallow), text("status == online"));
    let mut t = "status == online".to_string();
    for i in 0..=MAX_DEPTH {
        t = if i % 2 == 0 { format!("id == \"d{i}\" or ({t})") } else { format!("id == \"d{i}\" and ({t})") };
    }
    assert_eq!(at(&text_error(&t)).0, ErrorKind::Limit);
}

/// Each problem of the JSON form as its kind and path.
fn json_problems(errors: &[FilterError]) -> Vec<(ErrorKind, &str)> {
    errors
        .iter()
        .map(|e| match &e.location {
            Location::Json { path } => (e.kind, path.as_str()),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn json_errors_have_paths_and_are_all_reported() {
    let errors = Filter::parse_json(
        r#"{"product": {"op": "<", "value": "x"},
            "versions": {"firmware": [{"component": "host", "op": "<", "value": "build-7"}]},
            "any": [{}, {"include": ["d1"], "group": "g"}],
            "status": {"connection_status": "asleep"},
            "properties": [{"name": "x", "op": "exists", "value": 1}],
            "include": ["bad id"]}"#,
    )
    .unwrap_err();
    let got = json_problems(&errors);
    assert_eq!(
        got,
        [
            (ErrorKind::WrongOperator, "product.op"),
            (ErrorKind::InvalidValue, "status.connection_status.value"),
            (ErrorKind::WrongOperator, "versions.firmware[0].op"),
            (ErrorKind::InvalidValue, "properties[0].value"),
            (ErrorKind::Structure, "any[0]"),
            (ErrorKind::Structure, "any[1]"),
            (ErrorKind::InvalidValue, "include[0]"),
        ]
    );
    let e = &Filter::parse_json("{\n  \"colour\": \"red\"\n}").unwrap_err()[0];
    assert_eq!((e.kind, &e.location), (ErrorKind::Structure, &Location::json("colour")));
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    let e = &Filter::parse_json("{\n  \"colour\": \"red\",\n}").unwrap_err()[0];
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(matches!(e.location, Location::Text { line: 3, .. }), "{e:?}");
    let e = &Filter::parse_json(r#"{"product": []}"#).unwrap_err()[0];
    assert!(e.message.contains("empty array"), "{e}");
    let e = &Filter::parse_json(r#"{"properties": [{"name": "x", "op": "=>", "value": 1}]}"#).unwrap_err()[0];
    assert!(e.message.contains("unknown operator `=>`"), "{e}");
    let fe = e.to_field_error("filter");
    assert_eq!(fe.field, "filter.properties[0]");
    let errors = Filter::parse_json(r#"{"properties": [{"name": "x", "op": "<", "value": true}]}"#).unwrap_err();
    assert_eq!(errors[0].to_field_error("filter").field, "filter.properties[0].op");
}

#[test]
fn json_form_reports_every_problem_structural_and_semantic_at_once() {
    let errors = Filter::parse_json(
        r#"{"product": {"op": "<", "value": "x"},
            "versions": {"hardware_version": 5, "colour": 1},
            "status": "online",
            "properties": [{"name": "a", "value": 1}, {"nme": "b"}, {"name": "c", "op": "~~"}],
            "any": [7, {"group": "g", "shape": "round"}, {"group": []}],
            "not": {"id": {"op": "<", "value": "d"}},
            "colour": "red"}"#,
    )
    .unwrap_err();
    let mut got = json_problems(&errors);
    got.sort_by_key(|(k, p)| (k.code(), *p));
    let mut want = vec![
        (ErrorKind::Structure, "versions.hardware_version"),
        (ErrorKind::Structure, "versions.colour"),
        (ErrorKind::Structure, "status"),
        (ErrorKind::Structure, "properties[1]"),
        (ErrorKind::Structure, "properties[2]"),
        (ErrorKind::Structure, "any[0]"),
        (ErrorKind::Structure, "any[1].shape"),
        (ErrorKind::Structure, "any[2].group"),
        (ErrorKind::Structure, "colour"),
        (ErrorKind::WrongOperator, "product.op"),
        (ErrorKind::WrongOperator, "not.id.op"),
    ];
    want.sort_by_key(|(k, p)| (k.code(), *p));
    assert_eq!(got, want, "{errors:#?}");
    assert!(errors.iter().all(|e| !e.message.contains("struct ")), "messages name fields, not types: {errors:#?}");
}

// -- Properties --------------------------------------------------------------

/// 512 cases, or more with `PROPTEST_CASES`.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig { cases: default.cases.max(512), ..default }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn text_round_trips(f in arbitrary::filter()) {
        let t = f.to_string();
        let back = Filter::parse(&t).map_err(|e| TestCaseError::fail(format!("`{t}`: {e}")))?;
        prop_assert_eq!(&back, &f, "{}", t);
        prop_assert_eq!(back.to_string(), t);
    }

    #[test]
    fn json_round_trips(f in arbitrary::filter()) {
        let j = f.to_json();
        prop_assert_eq!(&Filter::from_json(&j).map_err(|e| TestCaseError::fail(format!("{e:?}")))?, &f);
        let s = serde_json::to_string(&j).unwrap();
        let back = Filter::parse_json(&s).map_err(|e| TestCaseError::fail(format!("{s}: {e:?}")))?;
        prop_assert_eq!(&back, &f, "{}", s);
        prop_assert_eq!(back.to_json(), j);
    }

    #[test]
    fn text_and_json_show_the_same_filter(f in arbitrary::filter()) {
        let via_json = Filter::from_json(&Filter::parse(&f.to_string()).unwrap().to_json()).unwrap();
        prop_assert_eq!(via_json.to_string(), f.to_string());
    }

    #[test]
    fn canonical_form_is_stable(e in arbitrary::expr()) {
        if let Ok(f) = Filter::new(Some(e), vec![], vec![]) {
            let again = Filter::new(f.criteria().cloned(), vec![], vec![]).unwrap();
            prop_assert_eq!(again, f);
        }
    }

    #[test]
    fn compiled_evaluation_agrees_with_the_reference(
        f in arbitrary::filter(),
        devices in prop::collection::vec((arbitrary::device(), arbitrary::groups()), 1..8),
    ) {
        let compiled = f.compile();
        for (d, groups) in &devices {
            let subject = Subject::new(d, groups, arbitrary::now());
            prop_assert_eq!(compiled.matches(&subject), f.matches(d, groups, arbitrary::now()), "{} on {:?}", f, d);
        }
    }

    #[test]
    fn parsing_never_panics_and_points_into_the_input(s in "\\PC{0,40}") {
        if let Err(e) = Filter::parse(&s) {
            prop_assert!(e.offset().is_some_and(|o| o <= s.len()));
        }
    }

    #[test]
    fn truncated_filters_fail_cleanly(f in arbitrary::filter(), cut in 0usize..400) {
        let t = f.to_string();
        let mut cut = cut.min(t.len());
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Err(e) = Filter::parse(&t[..cut]) {
            prop_assert!(e.offset().is_some_and(|o| o <= cut));
        }
    }
}

#[test]
fn random_filters_match_some_devices() {
    // Guards the agreement property against being vacuous: with the shared pools,
    // random filters match random devices a fair share of the time.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut yes, mut total) = (0, 0);
    for _ in 0..300 {
        let f = arbitrary::filter().new_tree(&mut runner).unwrap().current();
        let d = arbitrary::device().new_tree(&mut runner).unwrap().current();
        let g = arbitrary::groups().new_tree(&mut runner).unwrap().current();
        total += 1;
        yes += usize::from(f.matches(&d, &g, arbitrary::now()));
    }
    assert!(yes * 10 > total && yes * 10 < total * 9, "{yes} of {total} matched");
}

// -- The hot path ------------------------------------------------------------

mod hot_path {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::*;

    /// Counts allocations per thread, so that tests running in parallel do not
    /// disturb each other's counts.
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    fn count() {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }

    // SAFETY: every call is forwarded unchanged to the system allocator; counting
    // touches only a thread-local `Cell` with a const initializer, which does not allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            unsafe { System.realloc(ptr, layout, new_size) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    fn allocations() -> usize {
        ALLOCATIONS.with(Cell::get)
    }

    /// A thousand varied filters, like the active continuous jobs of a busy tenant.
    fn thousand_filters() -> Vec<Filter> {
        let products = ["thermo-x", "thermo-y", "lamp"];
        let versions = ["1.0.0", "1.2.0", "2.0.0", "1.10.0", "2.0.0-rc.1"];
        let ages = ["30d", "2D", "3M", "1y", "12h"];
        (0..1000)
            .map(|i| {
                let t = match i % 5 {
                    0 => format!(
                        r#"product == "{}" and fw.host < "{}" and status == online and activated > {} ago and prop.region == "eu""#,
                        products[i % 3], versions[i % 5], ages[i % 5]
                    ),
                    1 => format!(
                        r#"product == "{}" and fw.host in ["{}", "1.2.0"] and activated <= {} ago exclude ["d{}"]"#,
                        products[i % 3], versions[i % 5], ages[i % 5], i
                    ),
                    2 => format!(
                        r#"(group == "beta" or group in ["eu-west", "g{i}"]) and not prop.temp > {} and meta.campaign != "c{i}""#,
                        i % 40
                    ),
                    3 => format!(
                        r#"status in [online, initializing] and hw exists and module.version >= "1.0.0" or prop.note contains "pend" include ["x{i}"]"#
                    ),
                    _ => format!(
                        r#"product == "thermo-x" and connected > {}h ago and template in ["t-100", "t-{i}"] and fw.module >= "3.0.0""#,
                        i % 24 + 1
                    ),
                };
                text(&t)
            })
            .collect()
    }

    #[test]
    fn one_device_against_a_thousand_filters_allocates_nothing() {
        let filters = thousand_filters();
        let compiled: Vec<CompiledFilter> = filters.iter().map(Filter::compile).collect();
        let fleet = fleet();
        for x in &fleet {
            let expected = filters.iter().filter(|f| f.matches(&x.device, &x.groups, now())).count();
            let subject = Subject::new(&x.device, &x.groups, now());
            let before = allocations();
            let matched = compiled.iter().filter(|c| c.matches(&subject)).count();
            assert_eq!(allocations(), before, "evaluation allocated");
            assert_eq!(matched, expected);
        }

        // Not an assertion (timings vary by machine and build); printed for the record:
        // `cargo test -p updraft-core --release one_device_against -- --nocapture`.
        let x = &fleet[0];
        let rounds = 200;
        let start = std::time::Instant::now();
        let mut matched = 0;
        for _ in 0..rounds {
            let subject = Subject::new(&x.device, &x.groups, now());
            matched += compiled.iter().filter(|c| c.matches(&subject)).count();
        }
        let per_check = start.elapsed() / rounds;
        eprintln!("1000 compiled filters x 1 device: {per_check:?} per device ({} matches)", matched / rounds as usize);
    }
}

#[test]
fn an_empty_null_or_array_filter_is_refused() {
    for text in ["", "   ", "\n\t"] {
        let e = Filter::parse(text).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Syntax, "{text:?}");
        assert!(e.message.contains("empty"), "{e}");
    }
    assert!(Filter::parse("all").unwrap().criteria().is_none(), "every device, in so many words");
    for json in ["{}", "null", "[]", "[[], []]", "\"\"", "7", r#"{"exclude": []}"#, r#"{"properties": []}"#] {
        let e = Filter::from_json_value(serde_json::from_str(json).unwrap()).unwrap_err();
        assert_eq!(e[0].kind, ErrorKind::Structure, "{json}: {e:?}");
    }
    assert!(Filter::from_json_value(serde_json::json!({"product": "thermo"})).is_ok());
}
