//! The fleet index: each tenant's devices with the values filters read, kept
//! in memory so that a filter's estimate counts a large fleet without reading
//! the devices table (ADR 0013).
//!
//! Each field keeps its distinct values once; a device is a short list of
//! (field, value) numbers. Counting decides every condition once per distinct
//! value of its field ([`Condition::accepts`], the reference semantics), then
//! walks the devices comparing numbers.
//!
//! It follows the event stream: a device created, changed or deleted is marked
//! and read again before the next count, so a count sees every change committed
//! before it was asked for. Connection status and last contact change without
//! events (presence is written in bulk), and groups are not a device's values:
//! filters on them are counted by the store. Only a store that this process
//! alone writes (SQLite) is followed completely by this process's events, so the
//! index serves only there; elsewhere every estimate is the store's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jiff::Timestamp;
use updraft_core::filter::{Condition, Expr, Field, FieldValue, Filter};
use updraft_core::{Device, PropertyValue};

use crate::App;
use crate::store::{Change, Event, StoreResult};

/// Devices read at once while building or refreshing.
const PAGE: u32 = 5000;
/// More marked devices than this are read again in the background, the
/// store answering meanwhile.
const REFRESH_INLINE: usize = 20_000;

/// Every tenant's index, built on the first estimate that needs it.
#[derive(Default)]
pub struct FleetIndex {
    enabled: bool,
    tenants: Mutex<HashMap<String, Arc<TenantIndex>>>,
}

#[derive(Default)]
struct TenantIndex {
    tenant: String,
    /// Devices changed since the table last read them.
    dirty: Mutex<HashSet<Box<str>>>,
    /// One refresh at a time, so reads are applied in the order they were made.
    refresh: tokio::sync::Mutex<()>,
    /// `None` while the first build runs.
    table: RwLock<Option<Table>>,
    /// A rebuild runs in the background.
    rebuilding: AtomicBool,
}

impl FleetIndex {
    pub(crate) fn new(enabled: bool) -> Self {
        FleetIndex { enabled, tenants: Default::default() }
    }

    /// Marks the devices `events` say changed (the events listener).
    pub(crate) fn mark(&self, events: &[Event]) {
        if !self.enabled {
            return;
        }
        let tenants = self.tenants.lock().expect("not poisoned");
        for e in events {
            let ids: &[String] = match &e.change {
                Change::DevicesCreated { devices } => devices,
                Change::DeviceUpdated { device } | Change::DeviceDeleted { device } => std::slice::from_ref(device),
                _ => continue,
            };
            if let Some(t) = tenants.get(&e.tenant) {
                t.dirty.lock().expect("not poisoned").extend(ids.iter().map(|s| Box::from(s.as_str())));
            }
        }
    }

    fn tenant(&self, app: &App, tenant: &str) -> Arc<TenantIndex> {
        let mut tenants = self.tenants.lock().expect("not poisoned");
        if let Some(t) = tenants.get(tenant) {
            return t.clone();
        }
        let t = Arc::new(TenantIndex { tenant: tenant.to_owned(), ..Default::default() });
        tenants.insert(tenant.to_owned(), t.clone());
        let (app, index) = (app.clone(), t.clone());
        tokio::spawn(async move {
            if let Err(e) = rebuild(&app, &index).await {
                tracing::warn!(tenant = %index.tenant, error = %e, "fleet index not built; estimates read the store");
                app.fleet_index.tenants.lock().expect("not poisoned").remove(&index.tenant);
            }
        });
        t
    }

    /// How many of the tenant's devices `filter` matches at `now`, when the
    /// index can say: `None` when the store must count (the index is off, still
    /// being built, far behind, or the filter reads what it does not hold).
    pub(crate) async fn count(&self, app: &App, tenant: &str, filter: &Filter, now: Timestamp) -> Option<u64> {
        if !self.enabled || !indexable(filter) {
            return None;
        }
        let index = self.tenant(app, tenant);
        if index.table.read().expect("not poisoned").is_none() {
            return None;
        }
        let pending = index.dirty.lock().expect("not poisoned").len();
        if pending > REFRESH_INLINE {
            // Far behind (an import): read every device again, in id order, in the background.
            if !index.rebuilding.swap(true, Ordering::SeqCst) {
                let (app, index) = (app.clone(), index.clone());
                tokio::spawn(async move {
                    if let Err(e) = rebuild(&app, &index).await {
                        tracing::warn!(tenant = %index.tenant, error = %e, "fleet index not rebuilt");
                    }
                    index.rebuilding.store(false, Ordering::SeqCst);
                });
            }
            return None;
        }
        if let Err(e) = refresh(app, &index).await {
            tracing::warn!(tenant, error = %e, "fleet index not refreshed; the store counts");
            return None;
        }
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || {
            let table = index.table.read().expect("not poisoned");
            table.as_ref().map(|t| t.count(&filter, now))
        })
        .await
        .ok()
        .flatten()
    }
}

/// Whether every condition reads a value the index holds.
fn indexable(filter: &Filter) -> bool {
    filter.conditions().iter().all(|c| !matches!(c.field(), Field::Status | Field::Connected | Field::Group))
}

/// Reads every device of the tenant into a new table and puts it in place; the
/// devices marked until it starts are in it, those marked later are read by the
/// next refresh.
async fn rebuild(app: &App, index: &TenantIndex) -> StoreResult<()> {
    let _one = index.refresh.lock().await;
    let taken = std::mem::take(&mut *index.dirty.lock().expect("not poisoned"));
    let started = std::time::Instant::now();
    match build(app, &index.tenant).await {
        Ok(table) => {
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(tenant = %index.tenant, devices = table.live, secs, "fleet index built");
            *index.table.write().expect("not poisoned") = Some(table);
            Ok(())
        }
        Err(e) => {
            index.dirty.lock().expect("not poisoned").extend(taken);
            Err(e)
        }
    }
}

async fn build(app: &App, tenant: &str) -> StoreResult<Table> {
    let mut table = Table::default();
    let mut after: Option<String> = None;
    loop {
        let page = app.store.devices_after(tenant, after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        let full = page.len() == PAGE as usize;
        for d in &page {
            table.put(d);
        }
        if !full {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(table)
}

/// Reads the marked devices again and applies them.
async fn refresh(app: &App, index: &TenantIndex) -> StoreResult<()> {
    let _one = index.refresh.lock().await;
    let marked: Vec<String> =
        std::mem::take(&mut *index.dirty.lock().expect("not poisoned")).into_iter().map(String::from).collect();
    for chunk in marked.chunks(PAGE as usize) {
        let read = match app.store.get_devices(&index.tenant, chunk).await {
            Ok(read) => read,
            Err(e) => {
                // Not applied: mark them again so that the next count reads them.
                index.dirty.lock().expect("not poisoned").extend(marked.iter().map(|s| Box::from(s.as_str())));
                return Err(e);
            }
        };
        let mut table = index.table.write().expect("not poisoned");
        let Some(table) = table.as_mut() else { return Ok(()) };
        let found: HashSet<&str> = read.iter().map(|d| d.id.as_str()).collect();
        for id in chunk.iter().filter(|id| !found.contains(id.as_str())) {
            table.remove(id);
        }
        for d in &read {
            table.put(d);
        }
    }
    Ok(())
}

/// A field the index keeps, with its distinct values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Product,
    Activated,
    Hardware,
    ModuleModel,
    ModuleVersion,
    Template,
    Firmware(Box<str>),
    Property(Box<str>),
    Metadata(Box<str>),
}

impl Key {
    fn of(field: &Field) -> Option<Key> {
        Some(match field {
            Field::Product => Key::Product,
            Field::Activated => Key::Activated,
            Field::Hardware => Key::Hardware,
            Field::ModuleModel => Key::ModuleModel,
            Field::ModuleVersion => Key::ModuleVersion,
            Field::Template => Key::Template,
            Field::Firmware(c) => Key::Firmware(c.as_str().into()),
            Field::Property(p) => Key::Property(p.as_str().into()),
            Field::Metadata(m) => Key::Metadata(m.as_str().into()),
            Field::Id | Field::Status | Field::Connected | Field::Group => return None,
        })
    }
}

/// A value as the index keeps it (hashable: numbers by their bits). Properties
/// are `Bool`, `Number` or `String`; every other field `Text` or `Time`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Value {
    Text(Box<str>),
    Time(Timestamp),
    Bool(bool),
    Number(u64),
    String(Box<str>),
}

impl Value {
    fn property(p: &PropertyValue) -> Value {
        match p {
            PropertyValue::Bool(b) => Value::Bool(*b),
            PropertyValue::Number(n) => Value::Number(n.to_bits()),
            PropertyValue::String(s) => Value::String(s.as_str().into()),
        }
    }
}

#[derive(Debug, Default)]
struct Column {
    ids: HashMap<Value, u32>,
    values: Vec<Value>,
}

impl Column {
    fn intern(&mut self, v: Value) -> u32 {
        if let Some(&i) = self.ids.get(&v) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(v.clone());
        self.ids.insert(v, i);
        i
    }
}

#[derive(Debug, Default)]
struct Row {
    /// Empty when the row is free.
    id: Box<str>,
    /// (column, value), sorted by column.
    values: Box<[(u32, u32)]>,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<Row>,
    by_id: HashMap<Box<str>, u32>,
    free: Vec<u32>,
    keys: HashMap<Key, u32>,
    columns: Vec<Column>,
    live: u64,
}

impl Table {
    fn column(&mut self, key: Key) -> u32 {
        if let Some(&c) = self.keys.get(&key) {
            return c;
        }
        let c = self.columns.len() as u32;
        self.columns.push(Column::default());
        self.keys.insert(key, c);
        c
    }

    fn value(&mut self, key: Key, v: Value) -> (u32, u32) {
        let c = self.column(key);
        (c, self.columns[c as usize].intern(v))
    }

    fn put(&mut self, d: &Device) {
        let text = |s: &str| Value::Text(s.into());
        let mut values = Vec::with_capacity(6 + d.firmware.len() + d.properties.len() + d.metadata.len());
        values.push(self.value(Key::Product, text(&d.product)));
        if let Some(at) = d.activated_at {
            values.push(self.value(Key::Activated, Value::Time(at)));
        }
        for (key, v) in [
            (Key::Hardware, &d.hardware_version),
            (Key::ModuleModel, &d.module_model),
            (Key::ModuleVersion, &d.module_version),
            (Key::Template, &d.template_id),
        ] {
            if let Some(v) = v {
                values.push(self.value(key, text(v)));
            }
        }
        for (c, v) in &d.firmware {
            values.push(self.value(Key::Firmware(c.as_str().into()), text(v)));
        }
        for (p, v) in &d.properties {
            values.push(self.value(Key::Property(p.as_str().into()), Value::property(v)));
        }
        for (m, v) in &d.metadata {
            values.push(self.value(Key::Metadata(m.as_str().into()), text(v)));
        }
        values.sort_unstable();
        let row = Row { id: d.id.as_str().into(), values: values.into_boxed_slice() };
        match self.by_id.get(d.id.as_str()) {
            Some(&i) => self.rows[i as usize] = row,
            None => {
                let i = match self.free.pop() {
                    Some(i) => {
                        self.rows[i as usize] = row;
                        i
                    }
                    None => {
                        self.rows.push(row);
                        (self.rows.len() - 1) as u32
                    }
                };
                self.by_id.insert(d.id.as_str().into(), i);
                self.live += 1;
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(i) = self.by_id.remove(id) {
            self.rows[i as usize] = Row::default();
            self.free.push(i);
            self.live -= 1;
        }
    }

    fn count(&self, filter: &Filter, now: Timestamp) -> u64 {
        let root = filter.criteria().map(|e| self.plan(e, now));
        let include: HashSet<&str> = filter.include().iter().map(String::as_str).collect();
        let exclude: HashSet<&str> = filter.exclude().iter().map(String::as_str).collect();
        if root.is_none() && include.is_empty() && exclude.is_empty() {
            return self.live;
        }
        let mut n = 0;
        for row in self.rows.iter().filter(|r| !r.id.is_empty()) {
            let id = &*row.id;
            let hit = if exclude.contains(id) {
                false
            } else {
                include.contains(id) || root.as_ref().is_none_or(|p| p.holds(row, now))
            };
            n += u64::from(hit);
        }
        n
    }

    /// The expression with every condition decided per distinct value.
    fn plan<'f>(&self, e: &'f Expr, now: Timestamp) -> Plan<'f> {
        match e {
            Expr::And(cs) => Plan::And(cs.iter().map(|c| self.plan(c, now)).collect()),
            Expr::Or(cs) => Plan::Or(cs.iter().map(|c| self.plan(c, now)).collect()),
            Expr::Not(c) => Plan::Not(Box::new(self.plan(c, now))),
            Expr::Cond(c) if matches!(c.field(), Field::Id) => Plan::Id(c),
            Expr::Cond(c) => {
                let missing = c.accepts(None, now);
                let Some(&column) = Key::of(c.field()).as_ref().and_then(|k| self.keys.get(k)) else {
                    return Plan::Const(missing);
                };
                let accept = self.columns[column as usize]
                    .values
                    .iter()
                    .map(|v| {
                        let p;
                        let v = match v {
                            Value::Text(s) => FieldValue::Text(s),
                            Value::Time(t) => FieldValue::Time(*t),
                            Value::Bool(b) => {
                                p = PropertyValue::Bool(*b);
                                FieldValue::Property(&p)
                            }
                            Value::Number(bits) => {
                                p = PropertyValue::Number(f64::from_bits(*bits));
                                FieldValue::Property(&p)
                            }
                            Value::String(s) => {
                                p = PropertyValue::String(s.to_string());
                                FieldValue::Property(&p)
                            }
                        };
                        c.accepts(Some(v), now)
                    })
                    .collect();
                Plan::Column { column, accept, missing }
            }
        }
    }
}

enum Plan<'f> {
    And(Vec<Plan<'f>>),
    Or(Vec<Plan<'f>>),
    Not(Box<Plan<'f>>),
    Const(bool),
    Id(&'f Condition),
    /// A condition on one column: whether it holds, by value number, and when the device lacks the field.
    Column {
        column: u32,
        accept: Vec<bool>,
        missing: bool,
    },
}

impl Plan<'_> {
    fn holds(&self, row: &Row, now: Timestamp) -> bool {
        match self {
            Plan::And(ps) => ps.iter().all(|p| p.holds(row, now)),
            Plan::Or(ps) => ps.iter().any(|p| p.holds(row, now)),
            Plan::Not(p) => !p.holds(row, now),
            Plan::Const(b) => *b,
            Plan::Id(c) => c.accepts(Some(FieldValue::Text(&row.id)), now),
            Plan::Column { column, accept, missing } => match row.values.binary_search_by_key(column, |(c, _)| *c) {
                Ok(i) => accept[row.values[i].1 as usize],
                Err(_) => *missing,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::filter::Filter;

    fn device(id: &str, region: &str, temp: f64, customer: Option<&str>) -> Device {
        let mut d = Device {
            id: id.into(),
            product: "thermo".into(),
            firmware: Default::default(),
            hardware_version: None,
            module_model: None,
            module_version: None,
            template_id: None,
            properties: Default::default(),
            metadata: Default::default(),
            activated_at: None,
            last_seen_at: None,
            connection_status: updraft_core::ConnectionStatus::Online,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        };
        d.properties.insert("region".into(), PropertyValue::String(region.into()));
        d.properties.insert("temp".into(), PropertyValue::Number(temp));
        if let Some(c) = customer {
            d.metadata.insert("customer".into(), c.into());
        }
        d.firmware.insert("host".into(), "1.2.0".into());
        d
    }

    #[test]
    fn counts_as_the_reference_semantics_decide() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let devices = [
            device("a", "eu", 31.0, Some("acme")),
            device("b", "eu", 20.0, Some("acme")),
            device("c", "us", 35.0, None),
            device("d", "eu", 30.5, Some("globex")),
        ];
        let mut t = Table::default();
        devices.iter().for_each(|d| t.put(d));
        for q in [
            r#"prop.region == "eu" and prop.temp > 30 and meta.customer == "acme""#,
            r#"meta.customer != "acme""#,
            r#"not meta.customer == "acme""#,
            r#"meta.site exists or prop.temp >= 35"#,
            r#"fw.host < "1.10.0" and id in ["a", "c"]"#,
            r#"prop.region contains "u" and not prop.missing exists"#,
            r#"product == "thermo""#,
        ] {
            let f = Filter::parse(q).unwrap();
            let want = devices.iter().filter(|d| f.matches::<&str>(d, &[], now)).count() as u64;
            assert_eq!(t.count(&f, now), want, "{q}");
        }
        t.remove("a");
        t.put(&device("b", "us", 20.0, None));
        let f = Filter::parse(r#"prop.region == "eu""#).unwrap();
        assert_eq!(t.count(&f, now), 1, "removed and changed devices are counted as they are now");
        assert_eq!(t.live, 3);
        t.put(&device("e", "eu", 1.0, None));
        assert_eq!(t.count(&f, now), 2, "a freed row is taken again");
        assert_eq!(t.rows.len(), 4);
    }
}
