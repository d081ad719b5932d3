//! A device filter ([`updraft_core::filter::Filter`]) as one SQL condition on
//! the `devices` table, with every value bound as a parameter.
//!
//! The condition gives the same answer as [`Filter::matches`] (the conformance
//! suite's property test holds both backends to it). How each rule of the
//! semantics is kept:
//!
//! - **Two-valued logic.** Every leaf is an expression that is never NULL:
//!   `COALESCE(…, FALSE)` around anything that reads an optional value, or an
//!   `EXISTS`, so `NOT` is plain negation and a missing value makes every test
//!   but `exists` false.
//! - **Text** compares by bytes: SQLite's default `BINARY` collation, and
//!   `COLLATE "C"` on PostgreSQL wherever the order matters.
//! - **Versions** are compared through `version_sort_key`, stored next to the
//!   version when a device is written (`hardware_version_key`,
//!   `module_version_key`, and the `firmware_keys` map): a semantic literal is
//!   equal to a device's version exactly when their keys are equal, and ordered
//!   as their keys are; a literal that is not a semantic version equals only the
//!   identical string. A device version that is not semantic has no key, so an
//!   ordering is false for it, as in the core.
//! - **Properties** keep their JSON types apart (`json_each`'s `type` on
//!   SQLite, `jsonb_typeof` on PostgreSQL); numbers compare as doubles, which
//!   is what the JSON holds (written from `f64` by serde, read back exactly).
//! - **Times** are resolved against the caller's `now` with
//!   `TimeRef::resolve` and compared as microseconds.
//! - **Maps** (firmware, properties, metadata) are read by key with the key
//!   bound as a value: on SQLite a JSON path `$."key"` for `json_extract` and
//!   `json_type` (read by path, much cheaper per row than a `json_each` table),
//!   or `json_each` for keys a path cannot quote; `->`/`->>` on PostgreSQL.

use jiff::Timestamp;
use updraft_core::filter::{Condition, Expr, Field, Filter, Literal, Test, version_sort_key};

/// The SQL dialect a condition is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
}

/// A piece of a compiled condition: SQL text, or a value to bind in its place.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Sql(String),
    Arg(Arg),
}

/// A compiled condition, to push onto a query builder piece by piece.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlCondition {
    pub pieces: Vec<Piece>,
}

impl SqlCondition {
    fn sql(&mut self, s: &str) {
        match self.pieces.last_mut() {
            Some(Piece::Sql(last)) => last.push_str(s),
            _ => self.pieces.push(Piece::Sql(s.to_owned())),
        }
    }

    fn arg(&mut self, a: Arg) {
        self.pieces.push(Piece::Arg(a));
    }

    /// `template` with each `?` replaced by the next of `args`.
    fn tpl(&mut self, template: &str, args: impl IntoIterator<Item = Arg>) {
        let mut args = args.into_iter();
        let mut parts = template.split('?');
        if let Some(first) = parts.next() {
            self.sql(first);
        }
        for part in parts {
            self.arg(args.next().expect("one argument per placeholder"));
            self.sql(part);
        }
        debug_assert!(args.next().is_none(), "one placeholder per argument");
    }

    fn extend(&mut self, other: &SqlCondition) {
        for p in &other.pieces {
            match p {
                Piece::Sql(s) => self.sql(s),
                Piece::Arg(a) => self.arg(a.clone()),
            }
        }
    }

    /// The SQL with `?` for each argument, for tests and logs.
    pub fn text(&self) -> String {
        self.pieces.iter().map(|p| if let Piece::Sql(s) = p { s.as_str() } else { "?" }).collect()
    }

    /// The bound values, in order.
    pub fn args(&self) -> Vec<&Arg> {
        self.pieces.iter().filter_map(|p| if let Piece::Arg(a) = p { Some(a) } else { None }).collect()
    }
}

/// Lists up to this long are written as `IN (?, ?, …)`; longer ones are bound
/// as one JSON array, so no filter can run into a placeholder limit.
const INLINE_LIST: usize = 16;

/// The condition on `devices` that holds exactly for the devices `filter`
/// matches at `now`. Never NULL.
pub fn compile(dialect: Dialect, filter: &Filter, now: Timestamp) -> SqlCondition {
    let c = Compiler { d: dialect, now };
    let mut out = SqlCondition::default();
    out.sql("(");
    if !filter.exclude().is_empty() {
        out.sql("NOT ");
        c.in_list(&mut out, &col("id"), filter.exclude().iter().cloned().map(Arg::Text).collect());
        out.sql(" AND ");
    }
    out.sql("(");
    if !filter.include().is_empty() {
        c.in_list(&mut out, &col("id"), filter.include().iter().cloned().map(Arg::Text).collect());
        out.sql(" OR ");
    }
    match filter.criteria() {
        Some(e) => c.expr(&mut out, e),
        None => out.sql("TRUE"),
    }
    out.sql("))");
    out
}

fn col(name: &str) -> SqlCondition {
    let mut s = SqlCondition::default();
    s.sql("devices.");
    s.sql(name);
    s
}

fn text_arg(l: &Literal) -> Arg {
    Arg::Text(l.as_str().unwrap_or_default().to_owned())
}

fn status_arg(l: &Literal) -> Arg {
    match l {
        Literal::Status(s) => Arg::Text(s.as_str().to_owned()),
        other => text_arg(other),
    }
}

fn cmp_op(t: &Test) -> Option<&'static str> {
    match t {
        Test::Lt(_) => Some("<"),
        Test::Le(_) => Some("<="),
        Test::Gt(_) => Some(">"),
        Test::Ge(_) => Some(">="),
        _ => None,
    }
}

struct Compiler {
    d: Dialect,
    now: Timestamp,
}

impl Compiler {
    fn expr(&self, out: &mut SqlCondition, e: &Expr) {
        match e {
            Expr::And(cs) | Expr::Or(cs) => {
                let sep = if matches!(e, Expr::And(_)) { " AND " } else { " OR " };
                out.sql("(");
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        out.sql(sep);
                    }
                    self.expr(out, c);
                }
                out.sql(")");
            }
            Expr::Not(c) => {
                out.sql("NOT ");
                self.expr(out, c);
            }
            Expr::Cond(c) => {
                out.sql("(");
                self.condition(out, c);
                out.sql(")");
            }
        }
    }

    /// `value IN (…)`; NULL only when `value` is (the listed values never are).
    fn in_list(&self, out: &mut SqlCondition, value: &SqlCondition, values: Vec<Arg>) {
        out.sql("(");
        out.extend(value);
        if values.len() <= INLINE_LIST {
            out.sql(" IN (");
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    out.sql(", ");
                }
                out.arg(v);
            }
            out.sql("))");
            return;
        }
        let json: Vec<String> = values
            .into_iter()
            .map(|v| match v {
                Arg::Text(s) => s,
                other => unreachable!("only text lists are bound as JSON, not {other:?}"),
            })
            .collect();
        let json = serde_json::to_string(&json).expect("strings serialize");
        match self.d {
            Dialect::Sqlite => out.tpl(" IN (SELECT value FROM json_each(?)))", [Arg::Text(json)]),
            Dialect::Postgres => {
                out.tpl(" IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb))))", [Arg::Text(json)])
            }
        }
    }

    /// The text stored under `key` in the JSON map column `map`, NULL when absent.
    fn map_text(&self, map: &str, key: &str) -> SqlCondition {
        let mut s = SqlCondition::default();
        match self.d {
            Dialect::Sqlite => match json_path(key) {
                Some(path) => s.tpl(&format!("json_extract(devices.{map}, ?)"), [Arg::Text(path)]),
                None => s.tpl(
                    &format!("(SELECT j.value FROM json_each(devices.{map}) j WHERE j.key = ?)"),
                    [Arg::Text(key.to_owned())],
                ),
            },
            Dialect::Postgres => s.tpl(&format!("(devices.{map} ->> ?)"), [Arg::Text(key.to_owned())]),
        }
        s
    }

    /// A string comparison `value op ?` in byte order.
    fn ordered(&self, value: &SqlCondition, op: &str) -> SqlCondition {
        let mut s = SqlCondition::default();
        s.extend(value);
        if self.d == Dialect::Postgres {
            s.sql(" COLLATE \"C\"");
        }
        s.sql(&format!(" {op} "));
        s
    }

    /// `COALESCE(inner, FALSE)`.
    fn never_null(&self, out: &mut SqlCondition, inner: impl FnOnce(&mut SqlCondition)) {
        out.sql("COALESCE(");
        inner(out);
        out.sql(", FALSE)");
    }

    /// Text on a value that may be NULL (meaning missing).
    fn text(&self, out: &mut SqlCondition, value: &SqlCondition, t: &Test, arg: fn(&Literal) -> Arg) {
        self.text_test(out, value, t, arg, true);
    }

    /// Text on a `NOT NULL` column: compared as it is, so that the database
    /// can use the column's indexes (a comparison of two non-NULL values is never NULL).
    fn required_text(&self, out: &mut SqlCondition, value: &SqlCondition, t: &Test, arg: fn(&Literal) -> Arg) {
        self.text_test(out, value, t, arg, false);
    }

    fn text_test(
        &self,
        out: &mut SqlCondition,
        value: &SqlCondition,
        t: &Test,
        arg: fn(&Literal) -> Arg,
        nullable: bool,
    ) {
        let guarded = |out: &mut SqlCondition, inner: &dyn Fn(&mut SqlCondition)| {
            if nullable { self.never_null(out, inner) } else { inner(out) }
        };
        match t {
            Test::Exists => {
                out.extend(value);
                out.sql(" IS NOT NULL");
            }
            Test::Eq(l) | Test::Ne(l) => {
                let op = if matches!(t, Test::Eq(_)) { " = " } else { " <> " };
                guarded(out, &|out| {
                    out.extend(value);
                    out.sql(op);
                    out.arg(arg(l));
                });
            }
            Test::In(ls) => guarded(out, &|out| self.in_list(out, value, ls.iter().map(arg).collect())),
            // Text fields take no other operator (a `Condition` checks it).
            _ => out.sql("FALSE"),
        }
    }

    fn time(&self, out: &mut SqlCondition, column: &str, t: &Test) {
        let value = col(column);
        if let Test::Exists = t {
            out.extend(&value);
            out.sql(" IS NOT NULL");
            return;
        }
        let op = match t {
            Test::Eq(_) => "=",
            Test::Ne(_) => "<>",
            t => cmp_op(t).unwrap_or("="),
        };
        let Some(Literal::Time(r)) = t.value() else {
            out.sql("FALSE");
            return;
        };
        let at = r.resolve(self.now);
        self.never_null(out, |out| {
            out.extend(&value);
            out.tpl(&format!(" {op} ?"), [Arg::Int(at.as_microsecond())]);
        });
    }

    fn group(&self, out: &mut SqlCondition, t: &Test) {
        let member = "EXISTS (SELECT 1 FROM group_members m WHERE m.tenant = devices.tenant \
                      AND m.device_id = devices.id AND ";
        match t {
            Test::Eq(l) | Test::Ne(l) => {
                if matches!(t, Test::Ne(_)) {
                    out.sql("NOT ");
                }
                out.sql(member);
                out.tpl("m.group_id = ?)", [text_arg(l)]);
            }
            Test::In(ls) => {
                out.sql(member);
                let mut g = SqlCondition::default();
                g.sql("m.group_id");
                self.in_list(out, &g, ls.iter().map(text_arg).collect());
                out.sql(")");
            }
            _ => out.sql("FALSE"),
        }
    }

    /// A version test, given the raw version and its sort key (both NULL when
    /// the device has no such version; the key also NULL when it is not semver).
    fn version(&self, out: &mut SqlCondition, raw: &SqlCondition, key: &SqlCondition, t: &Test) {
        // Equality with one literal: by key when the literal is semver, else by string.
        let eq = |out: &mut SqlCondition, l: &Literal| {
            let s = l.as_str().unwrap_or_default();
            self.never_null(out, |out| match version_sort_key(s) {
                Some(k) => {
                    out.extend(key);
                    out.tpl(" = ?", [Arg::Text(k)]);
                }
                None => {
                    out.extend(raw);
                    out.tpl(" = ?", [Arg::Text(s.to_owned())]);
                }
            });
        };
        match t {
            Test::Exists => {
                out.extend(raw);
                out.sql(" IS NOT NULL");
            }
            Test::Eq(l) => eq(out, l),
            Test::Ne(l) => {
                out.sql("(");
                out.extend(raw);
                out.sql(" IS NOT NULL AND NOT ");
                eq(out, l);
                out.sql(")");
            }
            Test::In(ls) => {
                let (mut keys, mut raws) = (Vec::new(), Vec::new());
                for l in ls {
                    let s = l.as_str().unwrap_or_default();
                    match version_sort_key(s) {
                        Some(k) => keys.push(Arg::Text(k)),
                        None => raws.push(Arg::Text(s.to_owned())),
                    }
                }
                out.sql("(");
                let has_keys = !keys.is_empty();
                if has_keys {
                    self.never_null(out, |out| self.in_list(out, key, keys));
                }
                if !raws.is_empty() {
                    if has_keys {
                        out.sql(" OR ");
                    }
                    self.never_null(out, |out| self.in_list(out, raw, raws));
                }
                out.sql(")");
            }
            t => {
                let op = cmp_op(t).unwrap_or("=");
                // The literal of an ordering is always semver (a `Condition` checks
                // it); one without a key cannot be ordered against.
                match t.value().and_then(Literal::as_str).and_then(version_sort_key) {
                    Some(k) => self.never_null(out, |out| {
                        out.extend(&self.ordered(key, op));
                        out.arg(Arg::Text(k));
                    }),
                    None => out.sql("FALSE"),
                }
            }
        }
    }

    fn property(&self, out: &mut SqlCondition, name: &str, t: &Test) {
        match self.d {
            Dialect::Sqlite => {
                // One row per key at most: "present, and the test holds on its value".
                match json_path(name) {
                    // Read by path (no `json_each` table per row); SQLite flattens the subquery.
                    Some(path) => out.tpl(
                        "EXISTS (SELECT 1 FROM (SELECT json_type(devices.properties, ?) AS type, \
                         json_extract(devices.properties, ?) AS value) j WHERE j.type IS NOT NULL",
                        [Arg::Text(path.clone()), Arg::Text(path)],
                    ),
                    None => out.tpl(
                        "EXISTS (SELECT 1 FROM json_each(devices.properties) j WHERE j.key = ?",
                        [Arg::Text(name.to_owned())],
                    ),
                }
                if !matches!(t, Test::Exists) {
                    out.sql(" AND ");
                    self.sqlite_property_test(out, t);
                }
                out.sql(")");
            }
            Dialect::Postgres => self.pg_property_test(out, name, t),
        }
    }

    /// On `j.type` and `j.value` of SQLite's `json_each`; never NULL.
    fn sqlite_property_test(&self, out: &mut SqlCondition, t: &Test) {
        let eq = |out: &mut SqlCondition, l: &Literal| match l {
            Literal::Bool(b) => out.tpl("j.type = ?", [Arg::Text(if *b { "true" } else { "false" }.into())]),
            Literal::Number(n) => out.tpl("(j.type IN ('integer', 'real') AND j.value = ?)", [Arg::Real(*n)]),
            other => out.tpl("(j.type = 'text' AND j.value = ?)", [text_arg(other)]),
        };
        match t {
            Test::Eq(l) => eq(out, l),
            Test::Ne(l) => {
                out.sql("NOT ");
                eq(out, l);
            }
            Test::In(ls) => {
                out.sql("(");
                for (i, l) in ls.iter().enumerate() {
                    if i > 0 {
                        out.sql(" OR ");
                    }
                    eq(out, l);
                }
                out.sql(")");
            }
            Test::Contains(s) => out.tpl("(j.type = 'text' AND instr(j.value, ?) > 0)", [Arg::Text(s.clone())]),
            t => {
                let op = cmp_op(t).unwrap_or("=");
                match t.value() {
                    Some(Literal::Number(n)) => {
                        out.tpl(&format!("(j.type IN ('integer', 'real') AND j.value {op} ?)"), [Arg::Real(*n)])
                    }
                    Some(Literal::String(s)) => {
                        out.tpl(&format!("(j.type = 'text' AND j.value {op} ?)"), [Arg::Text(s.clone())])
                    }
                    _ => out.sql("FALSE"),
                }
            }
        }
    }

    /// On `devices.properties -> name`; never NULL.
    fn pg_property_test(&self, out: &mut SqlCondition, name: &str, t: &Test) {
        let n = || Arg::Text(name.to_owned());
        let typed = |out: &mut SqlCondition, ty: &str| {
            out.tpl(&format!("jsonb_typeof(devices.properties -> ?) = '{ty}'"), [n()]);
        };
        // Equality with one literal; never NULL.
        let eq = |out: &mut SqlCondition, l: &Literal| {
            out.sql("COALESCE(");
            match l {
                Literal::Bool(b) => {
                    typed(out, "boolean");
                    out.tpl(" AND (devices.properties ->> ?) = ?", [n(), Arg::Text(b.to_string())]);
                }
                Literal::Number(x) => {
                    // CASE, not AND: PostgreSQL does not promise to skip the cast.
                    out.sql("CASE WHEN ");
                    typed(out, "number");
                    out.tpl(
                        " THEN CAST(devices.properties ->> ? AS DOUBLE PRECISION) = ? ELSE FALSE END",
                        [n(), Arg::Real(*x)],
                    );
                }
                other => {
                    typed(out, "string");
                    out.tpl(" AND (devices.properties ->> ?) = ?", [n(), text_arg(other)]);
                }
            }
            out.sql(", FALSE)");
        };
        match t {
            Test::Exists => out.tpl("(devices.properties -> ?) IS NOT NULL", [n()]),
            Test::Eq(l) => eq(out, l),
            Test::Ne(l) => {
                out.tpl("((devices.properties -> ?) IS NOT NULL AND NOT ", [n()]);
                eq(out, l);
                out.sql(")");
            }
            Test::In(ls) => {
                out.sql("(");
                for (i, l) in ls.iter().enumerate() {
                    if i > 0 {
                        out.sql(" OR ");
                    }
                    eq(out, l);
                }
                out.sql(")");
            }
            Test::Contains(s) => {
                out.sql("COALESCE(");
                typed(out, "string");
                out.tpl(" AND strpos(devices.properties ->> ?, ?) > 0, FALSE)", [n(), Arg::Text(s.clone())]);
            }
            t => {
                let op = cmp_op(t).unwrap_or("=");
                match t.value() {
                    Some(Literal::Number(x)) => {
                        out.sql("COALESCE(CASE WHEN ");
                        typed(out, "number");
                        out.tpl(
                            &format!(
                                " THEN CAST(devices.properties ->> ? AS DOUBLE PRECISION) {op} ? ELSE FALSE END, FALSE)"
                            ),
                            [n(), Arg::Real(*x)],
                        );
                    }
                    Some(Literal::String(s)) => {
                        out.sql("COALESCE(");
                        typed(out, "string");
                        out.tpl(
                            &format!(" AND (devices.properties ->> ?) COLLATE \"C\" {op} ?, FALSE)"),
                            [n(), Arg::Text(s.clone())],
                        );
                    }
                    _ => out.sql("FALSE"),
                }
            }
        }
    }

    fn condition(&self, out: &mut SqlCondition, c: &Condition) {
        let t = c.test();
        match c.field() {
            Field::Id => self.required_text(out, &col("id"), t, text_arg),
            Field::Product => self.required_text(out, &col("product"), t, text_arg),
            Field::ModuleModel => self.text(out, &col("module_model"), t, text_arg),
            Field::Template => self.text(out, &col("template_id"), t, text_arg),
            Field::Metadata(k) => self.text(out, &self.map_text("metadata", k), t, text_arg),
            Field::Status => self.required_text(out, &col("connection_status"), t, status_arg),
            Field::Activated => self.time(out, "activated_at", t),
            Field::Connected => self.time(out, "last_seen_at", t),
            Field::Group => self.group(out, t),
            Field::Firmware(name) => {
                self.version(out, &self.map_text("firmware", name), &self.map_text("firmware_keys", name), t)
            }
            Field::Hardware => self.version(out, &col("hardware_version"), &col("hardware_version_key"), t),
            Field::ModuleVersion => self.version(out, &col("module_version"), &col("module_version_key"), t),
            Field::Property(name) => self.property(out, name, t),
        }
    }
}

/// SQLite's JSON path to the member `key` of an object (`$."key"`), for keys
/// a quoted label can hold as they are: SQLite reads a quoted label up to the
/// next `"` with no escapes, so keys with `"`, `\\` or control characters
/// (which the stored JSON escapes) are read through `json_each` instead.
fn json_path(key: &str) -> Option<String> {
    let plain = !key.chars().any(|c| c == '"' || c == '\\' || c.is_control());
    plain.then(|| format!("$.\"{key}\""))
}

/// The sort key of an optional version (see `version_sort_key`).
pub fn version_key(version: Option<&str>) -> Option<String> {
    version.and_then(version_sort_key)
}

/// The sort keys of a device's installed firmware, by component; components
/// whose version is not semver are left out.
pub fn firmware_keys(
    firmware: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    firmware.iter().filter_map(|(c, v)| version_sort_key(v).map(|k| (c.clone(), k))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_written_into_the_sql() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let text = r#"prop."x'); DROP TABLE devices; --" == "a'b" or meta.k in ["o'k", "p"] or fw.host < "2.0.0"
            or id == "evil'" or activated > 2d ago include ["q1"]"#;
        let filter = Filter::parse(text).unwrap();
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let c = compile(dialect, &filter, now);
            let sql = c.text();
            assert!(!sql.contains("DROP") && !sql.contains("a'b") && !sql.contains("evil"), "{sql}");
            assert_eq!(sql.matches('?').count(), c.args().len());
            assert!(c.args().contains(&&Arg::Text(version_sort_key("2.0.0").unwrap())));
            assert!(c.args().contains(&&Arg::Int(now.as_microsecond() - 2 * 86_400_000_000)));
        }
    }

    #[test]
    fn long_lists_are_one_value() {
        let ids: Vec<String> = (0..5000).map(|i| format!("\"d{i}\"")).collect();
        let filter = Filter::parse(&format!("all exclude [{}]", ids.join(", "))).unwrap();
        let c = compile(Dialect::Postgres, &filter, Timestamp::UNIX_EPOCH);
        assert_eq!(c.args().len(), 1);
    }
}
