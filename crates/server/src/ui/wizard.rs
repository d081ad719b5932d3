//! The job wizard, in seed 000's steps: job details → image and upgrade-from →
//! filter → schedule → save, with every other job field in an "advanced"
//! section. The form is read into the REST API's `JobIn` and created by the
//! same use case, so its rules and error names are the API's; each error is
//! shown next to the field it names.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use updraft_app::filters::FilterSpec;
use updraft_app::{SavedFilter, sortable};
use updraft_core::filter::Filter;
use updraft_core::schedule::Schedule;
use updraft_core::{Firmware, PageRequest, Product};

use super::form::Fields;
use super::session::{Ctx, Signed};
use super::view::{count, enc, esc, when};
use super::{UiResult, render};
use crate::state::AppState;

/// The most rows of job metadata, property conditions or metadata conditions.
pub const MAX_ROWS: usize = 10;
/// Operators a property condition takes.
const PROPERTY_OPS: &[&str] = &["==", "!=", "<", "<=", ">", ">=", "contains", "exists"];
const DAYS: &[(&str, &str)] = &[
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

/// Errors by the field they name (the API's names: `retry.count`,
/// `filter.properties[0].value`, `schedule.start`), and those of no field.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    by_field: BTreeMap<String, Vec<String>>,
    pub general: Vec<String>,
}

impl Errors {
    pub fn from_error(e: &updraft_app::Error) -> Errors {
        let mut out = Errors::default();
        let fields: Vec<(String, String)> = e
            .details
            .as_ref()
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        Some((i.get("field")?.as_str()?.to_owned(), i.get("message")?.as_str()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if fields.is_empty() {
            out.general.push(e.message.clone());
        }
        for (field, message) in fields {
            out.by_field.entry(field).or_default().push(message);
        }
        out
    }

    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.by_field.entry(field.to_owned()).or_default().push(message.into());
    }

    /// The messages of `field` and of the fields under it, joined.
    pub fn of(&self, field: &str) -> String {
        self.by_field
            .iter()
            .filter(|(k, _)| {
                *k == field || k.strip_prefix(field).is_some_and(|r| r.starts_with('.') || r.starts_with('['))
            })
            .flat_map(|(_, v)| v.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn has(&self, field: &str) -> bool {
        !self.of(field).is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_empty()
    }

    /// Every message, with the field it names, for the summary at the top.
    pub fn all(&self) -> Vec<String> {
        self.general
            .iter()
            .cloned()
            .chain(self.by_field.iter().flat_map(|(k, v)| v.iter().map(move |m| format!("{k}: {m}"))))
            .collect()
    }
}

/// A row of key and value (job metadata, metadata conditions).
#[derive(Debug, Default, Clone)]
pub struct Pair {
    pub key: String,
    pub value: String,
    pub error: String,
}

/// A property condition.
#[derive(Debug, Default, Clone)]
pub struct PropRow {
    pub name: String,
    pub op: String,
    pub value: String,
    pub error: String,
}

/// The schedule's part of a form (the wizard's last step, and the schedule dialog).
#[derive(Debug, Clone)]
pub struct ScheduleForm {
    /// `none` or `recurring`.
    pub kind: String,
    pub timezone: String,
    pub start_date: String,
    pub end_date: String,
    pub days: Vec<String>,
    /// `all_day` or `range`.
    pub time_mode: String,
    pub from: String,
    pub to: String,
}

impl ScheduleForm {
    /// A form showing `s`, or an empty one.
    pub fn of(s: Option<&Schedule>) -> ScheduleForm {
        let Some(s) = s else {
            return ScheduleForm {
                kind: "none".into(),
                timezone: "UTC".into(),
                start_date: String::new(),
                end_date: String::new(),
                days: vec![],
                time_mode: "all_day".into(),
                from: String::new(),
                to: String::new(),
            };
        };
        let tz = jiff::tz::TimeZone::get(&s.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        let date = |t: &jiff::Timestamp| t.to_zoned(tz.clone()).date().to_string();
        let days = serde_json::to_value(s).ok().and_then(|v| v.get("days").cloned());
        ScheduleForm {
            kind: "recurring".into(),
            timezone: s.timezone.clone(),
            start_date: s.start.as_ref().map(date).unwrap_or_default(),
            end_date: s.end.as_ref().map(|t| date(&(*t - jiff::SignedDuration::from_secs(1)))).unwrap_or_default(),
            days: days.and_then(|d| serde_json::from_value(d).ok()).unwrap_or_default(),
            time_mode: if s.window.is_some() { "range".into() } else { "all_day".into() },
            from: s.window.as_ref().map(|w| w.from.strftime("%H:%M").to_string()).unwrap_or_default(),
            to: s.window.as_ref().map(|w| w.to.strftime("%H:%M").to_string()).unwrap_or_default(),
        }
    }

    pub fn read(f: &Fields) -> ScheduleForm {
        ScheduleForm {
            kind: f.text("schedule_type").unwrap_or_else(|| "none".into()),
            timezone: f.text("timezone").unwrap_or_else(|| "UTC".into()),
            start_date: f.text("start_date").unwrap_or_default(),
            end_date: f.text("end_date").unwrap_or_default(),
            days: f.all("days").into_iter().map(str::to_owned).collect(),
            time_mode: f.text("time_mode").unwrap_or_else(|| "all_day".into()),
            from: f.text("time_from").unwrap_or_default(),
            to: f.text("time_to").unwrap_or_default(),
        }
    }

    pub fn day_checked(&self, day: &str) -> bool {
        self.days.iter().any(|d| d == day)
    }

    /// The API's schedule (`None` without one). Dates are whole days in the
    /// schedule's time zone: from the start date's midnight to the end of the end date.
    pub fn to_wire(&self) -> Option<updraft_api::jobs::ScheduleIn> {
        if self.kind != "recurring" {
            return None;
        }
        let tz = jiff::tz::TimeZone::get(&self.timezone).ok();
        let at = |d: &str, next: bool| -> Option<jiff::Timestamp> {
            let date: jiff::civil::Date = d.parse().ok()?;
            let date = if next { date.tomorrow().ok()? } else { date };
            date.to_zoned(tz.clone()?).ok().map(|z| z.timestamp())
        };
        let window = (self.time_mode == "range").then(|| json!({"from": self.from, "to": self.to}));
        Some(updraft_api::jobs::ScheduleIn {
            start: at(&self.start_date, false),
            end: at(&self.end_date, true),
            timezone: Some(self.timezone.clone()),
            days: (!self.days.is_empty()).then(|| json!(self.days)),
            window,
            start_schedule: None,
            end_schedule: None,
        })
    }

    /// What the dates and times of the form say wrong before the API reads it.
    fn check(&self, errors: &mut Errors) {
        if self.kind != "recurring" {
            return;
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            errors.add("schedule.timezone", format!("`{}` is not a time zone", self.timezone));
        }
        for (field, v) in [("schedule.start", &self.start_date), ("schedule.end", &self.end_date)] {
            if !v.is_empty() && v.parse::<jiff::civil::Date>().is_err() {
                errors.add(field, "a date: YYYY-MM-DD");
            }
        }
        if self.start_date.is_empty() {
            errors.add("schedule.start", "a recurring schedule needs a start date");
        }
        if self.time_mode == "range" && (self.from.is_empty() || self.to.is_empty()) {
            errors.add("schedule.window", "give the time the job starts and stops each day");
        }
    }
}

/// The wizard's form as the operator filled it (shown again with its errors).
#[derive(Debug, Clone)]
pub struct WizardForm {
    pub product: String,
    pub name: String,
    pub recurrence: String,
    pub retries: String,
    pub delivery: String,
    pub job_metadata: Vec<Pair>,
    pub firmware: String,
    pub from: String,
    pub from_version: String,
    pub filter_mode: String,
    pub filter_name: String,
    pub filter_id: String,
    pub status: String,
    pub since_activation: String,
    pub connected_after: String,
    pub connected_before: String,
    pub activated_after: String,
    pub activated_before: String,
    pub module_model: String,
    pub module_version: String,
    pub template: String,
    pub props: Vec<PropRow>,
    pub metas: Vec<Pair>,
    pub include: String,
    pub exclude: String,
    pub schedule: ScheduleForm,
    // Advanced.
    pub gray_percent: String,
    pub max_concurrency: String,
    pub max_per_minute: String,
    pub ramp_base: String,
    pub ramp_factor: String,
    pub ramp_every: String,
    pub abort_failure: String,
    pub abort_threshold: String,
    pub abort_min: String,
    pub timeout_minutes: String,
    pub kind: String,
    pub handling: String,
    pub mw_from: String,
    pub mw_to: String,
    pub phases: String,
    pub start: bool,
}

impl WizardForm {
    fn empty() -> WizardForm {
        WizardForm::read(&Fields::default())
    }

    fn read(f: &Fields) -> WizardForm {
        let t = |n: &str| f.text(n).unwrap_or_default();
        let pairs = |k: &str, v: &str| -> Vec<Pair> {
            f.all(k)
                .into_iter()
                .zip(f.all(v))
                .filter(|(k, v)| !k.trim().is_empty() || !v.trim().is_empty())
                .map(|(k, v)| Pair { key: k.trim().to_owned(), value: v.trim().to_owned(), error: String::new() })
                .collect()
        };
        let props = f
            .all("prop_name")
            .into_iter()
            .zip(f.all("prop_op"))
            .zip(f.all("prop_value"))
            .filter(|((n, _), v)| !n.trim().is_empty() || !v.trim().is_empty())
            .map(|((n, o), v)| PropRow {
                name: n.trim().into(),
                op: o.into(),
                value: v.trim().into(),
                error: String::new(),
            })
            .collect();
        WizardForm {
            product: t("product"),
            name: t("name"),
            recurrence: f.text("recurrence").unwrap_or_else(|| "snapshot".into()),
            retries: f.text("retries").unwrap_or_else(|| "0".into()),
            delivery: f.text("delivery").unwrap_or_else(|| "push".into()),
            job_metadata: pairs("meta_key", "meta_value"),
            firmware: t("firmware"),
            from: f.text("from").unwrap_or_else(|| "all".into()),
            from_version: t("from_version"),
            filter_mode: f.text("filter_mode").unwrap_or_else(|| "new".into()),
            filter_name: t("filter_name"),
            filter_id: t("filter_id"),
            status: t("status"),
            since_activation: t("since_activation"),
            connected_after: t("connected_after"),
            connected_before: t("connected_before"),
            activated_after: t("activated_after"),
            activated_before: t("activated_before"),
            module_model: t("module_model"),
            module_version: t("module_version"),
            template: t("template"),
            props,
            metas: pairs("fmeta_key", "fmeta_value"),
            include: t("include"),
            exclude: t("exclude"),
            schedule: ScheduleForm::read(f),
            gray_percent: t("gray_percent"),
            max_concurrency: t("max_concurrency"),
            max_per_minute: t("max_per_minute"),
            ramp_base: t("ramp_base"),
            ramp_factor: t("ramp_factor"),
            ramp_every: t("ramp_every"),
            abort_failure: f.text("abort_failure").unwrap_or_else(|| "any".into()),
            abort_threshold: t("abort_threshold"),
            abort_min: t("abort_min"),
            timeout_minutes: t("timeout_minutes"),
            kind: f.text("kind").unwrap_or_else(|| "upgrade".into()),
            handling: f.text("handling").unwrap_or_else(|| "forced".into()),
            mw_from: t("mw_from"),
            mw_to: t("mw_to"),
            phases: t("phases"),
            start: f.get("start_now").is_none_or(|v| v != "no"),
        }
    }

    /// The filter's JSON form (seed 000's categories), when a new filter is given.
    fn filter_json(&self) -> Value {
        let mut f = serde_json::Map::new();
        if !self.product.is_empty() {
            f.insert("product".into(), json!(self.product));
        }
        let mut status = serde_json::Map::new();
        let put = |m: &mut serde_json::Map<String, Value>, k: &str, v: &str| {
            if !v.is_empty() {
                m.insert(k.into(), json!(v));
            }
        };
        put(&mut status, "connection_status", &self.status);
        put(&mut status, "time_since_activation", &self.since_activation);
        put(&mut status, "connected_after", &self.connected_after);
        put(&mut status, "connected_before", &self.connected_before);
        put(&mut status, "activated_after", &self.activated_after);
        put(&mut status, "activated_before", &self.activated_before);
        if !status.is_empty() {
            f.insert("status".into(), Value::Object(status));
        }
        let mut versions = serde_json::Map::new();
        put(&mut versions, "module_model", &self.module_model);
        put(&mut versions, "module_version", &self.module_version);
        put(&mut versions, "template_id", &self.template);
        if !versions.is_empty() {
            f.insert("versions".into(), Value::Object(versions));
        }
        if !self.props.is_empty() {
            let props: Vec<Value> = self
                .props
                .iter()
                .map(|p| {
                    let op = if p.op.is_empty() { "==" } else { p.op.as_str() };
                    if op == "exists" {
                        json!({"name": p.name, "op": op})
                    } else {
                        json!({"name": p.name, "op": op, "value": typed(&p.value, op == "contains")})
                    }
                })
                .collect();
            f.insert("properties".into(), Value::Array(props));
        }
        if !self.metas.is_empty() {
            let metas: Vec<Value> = self.metas.iter().map(|m| json!({"key": m.key, "value": m.value})).collect();
            f.insert("metadata".into(), Value::Array(metas));
        }
        let ids = |s: &str| -> Vec<String> {
            s.split([',', '\n', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        if !ids(&self.include).is_empty() {
            f.insert("include".into(), json!(ids(&self.include)));
        }
        if !ids(&self.exclude).is_empty() {
            f.insert("exclude".into(), json!(ids(&self.exclude)));
        }
        Value::Object(f)
    }

    /// The filter the form names: a new one, or a saved one's id.
    fn filter_spec(&self) -> Result<FilterSpec, updraft_app::Error> {
        if self.filter_mode == "existing" {
            if self.filter_id.is_empty() {
                return Err(updraft_app::Error::field("filter_id", "select a saved filter"));
            }
            return Ok(FilterSpec::Saved(self.filter_id.clone()));
        }
        let json = self.filter_json();
        Filter::from_json_value(json)
            .map(FilterSpec::Given)
            .map_err(|errors| updraft_app::Error::invalid(errors.iter().map(|e| e.to_field_error("filter")).collect()))
    }

    /// The REST API's job, as JSON, and what the form itself found wrong.
    fn job_json(&self, errors: &mut Errors) -> Value {
        let num = |errors: &mut Errors, field: &str, v: &str| -> Option<Value> {
            if v.is_empty() {
                return None;
            }
            match v.parse::<f64>() {
                Ok(n) if n.fract() == 0.0 && n >= 0.0 => Some(json!(n as u64)),
                Ok(n) => Some(json!(n)),
                Err(_) => {
                    errors.add(field, "a number");
                    None
                }
            }
        };
        let mut j = serde_json::Map::new();
        j.insert("firmware".into(), json!(self.firmware));
        if self.firmware.is_empty() {
            errors.add("firmware", "select the image to deliver");
        }
        if !self.name.is_empty() {
            j.insert("name".into(), json!(self.name));
        }
        j.insert("recurrence".into(), json!(if self.recurrence == "continuous" { "continuous" } else { "snapshot" }));
        j.insert("consent_required".into(), json!(self.delivery == "consent"));
        j.insert("kind".into(), json!(self.kind));
        j.insert("handling".into(), json!(self.handling));
        j.insert("start".into(), json!(self.start));
        if let Some(n) = num(errors, "retry.count", &self.retries)
            && n != json!(0)
        {
            j.insert("retry".into(), json!({"count": n}));
        }
        let mut meta = serde_json::Map::new();
        for (i, p) in self.job_metadata.iter().enumerate() {
            if p.key.is_empty() {
                errors.add(&format!("metadata[{i}]"), "a key");
            } else if meta.insert(p.key.clone(), json!(p.value)).is_some() {
                errors.add(&format!("metadata[{i}]"), "this key is given twice");
            }
        }
        if !meta.is_empty() {
            j.insert("metadata".into(), Value::Object(meta));
        }
        if self.from == "version" {
            if self.from_version.is_empty() {
                errors.add("source_versions", "enter the current software version, or select all versions");
            } else {
                j.insert("source_versions".into(), json!([self.from_version]));
            }
        }
        if self.filter_mode == "existing" {
            if self.filter_id.is_empty() {
                errors.add("filter_id", "select a saved filter");
            }
            j.insert("filter_id".into(), json!(self.filter_id));
        } else {
            j.insert("filter".into(), self.filter_json());
        }
        self.schedule.check(errors);
        if let Some(s) = self.schedule.to_wire() {
            j.insert("schedule".into(), serde_json::to_value(s).unwrap_or(Value::Null));
        }
        for (field, v) in [
            ("gray_percent", &self.gray_percent),
            ("max_concurrency", &self.max_concurrency),
            ("max_per_minute", &self.max_per_minute),
        ] {
            if let Some(n) = num(errors, field, v) {
                j.insert(field.into(), n);
            }
        }
        if let Some(m) = num(errors, "timeout_seconds", &self.timeout_minutes) {
            j.insert("timeout_seconds".into(), json!(m.as_f64().unwrap_or(0.0) as u64 * 60));
        }
        if !self.ramp_base.is_empty() || !self.ramp_factor.is_empty() || !self.ramp_every.is_empty() {
            j.insert(
                "ramp".into(),
                json!({
                    "base_per_minute": num(errors, "ramp.base_per_minute", &self.ramp_base).unwrap_or(json!(1)),
                    "increment_factor": num(errors, "ramp.increment_factor", &self.ramp_factor).unwrap_or(json!(2)),
                    "every": num(errors, "ramp.every", &self.ramp_every).unwrap_or(json!(100)),
                }),
            );
        }
        if !self.abort_threshold.is_empty() {
            j.insert(
                "abort".into(),
                json!([{
                    "failure": self.abort_failure,
                    "threshold_percent": num(errors, "abort[0].threshold_percent", &self.abort_threshold),
                    "min_executed": num(errors, "abort[0].min_executed", &self.abort_min).unwrap_or(json!(1)),
                }]),
            );
        }
        if !self.mw_from.is_empty() || !self.mw_to.is_empty() {
            j.insert(
                "maintenance_window".into(),
                json!({"timezone": self.schedule.timezone, "window": {"from": self.mw_from, "to": self.mw_to}}),
            );
        }
        if !self.phases.is_empty() {
            match serde_json::from_str::<Value>(&self.phases) {
                Ok(p) => {
                    j.insert("phases".into(), p);
                }
                Err(e) => errors.add("phases", format!("a JSON array of phases: {e}")),
            }
        }
        Value::Object(j)
    }
}

/// A property value typed as the filter takes it: a number, `true`/`false`,
/// or else text (a value in double quotes is always text).
fn typed(v: &str, text: bool) -> Value {
    if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return json!(inner);
    }
    if text {
        return json!(v);
    }
    match v {
        "true" => json!(true),
        "false" => json!(false),
        _ => {
            v.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or_else(|| json!(v))
        }
    }
}

pub struct FirmwareOption {
    pub fw: Firmware,
    pub size: String,
    pub created: String,
}

pub struct FilterOption {
    pub f: SavedFilter,
    pub text: String,
    pub created: String,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "ui/job_new.html")]
struct WizardPage {
    ctx: Ctx,
    f: WizardForm,
    errors: Errors,
    products: Vec<Product>,
    firmware: Vec<FirmwareOption>,
    filters: Vec<FilterOption>,
    timezones: Vec<String>,
    days: &'static [(&'static str, &'static str)],
    ops: &'static [&'static str],
    max_rows: usize,
}

async fn wizard_page(state: &AppState, signed: &Signed, f: WizardForm, errors: Errors) -> UiResult<WizardPage> {
    let app = &state.app;
    let all = |sortable: &[&str], sort: &str| -> Result<PageRequest, updraft_app::Error> {
        let mut p = PageRequest::parse(Some(200), None, Some(sort), None, sortable)?;
        p.count_total = false;
        Ok(p)
    };
    let products = app.list_products(&signed.actor, &all(sortable::PRODUCTS, "key")?).await?.items;
    let firmware = app
        .list_firmware(&signed.actor, None, &all(sortable::FIRMWARE, "-created_at")?)
        .await?
        .items
        .into_iter()
        .map(|fw| FirmwareOption { size: count(fw.total_size()), created: when(&fw.created_at), fw })
        .collect();
    let filters = app
        .list_saved_filters(&signed.actor, &all(sortable::SAVED_FILTERS, "name")?)
        .await?
        .items
        .into_iter()
        .map(|f| FilterOption {
            text: f.filter.to_text(),
            created: when(&f.created_at),
            updated: when(&f.updated_at),
            f,
        })
        .collect();
    let mut timezones: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
    timezones.sort();
    if timezones.is_empty() {
        timezones.push("UTC".into());
    }
    Ok(WizardPage {
        ctx: signed.ctx("jobs"),
        f,
        errors,
        products,
        firmware,
        filters,
        timezones,
        days: DAYS,
        ops: PROPERTY_OPS,
        max_rows: MAX_ROWS,
    })
}

pub async fn page(State(state): State<AppState>, signed: Signed) -> UiResult<Response> {
    signed.actor.require(updraft_core::Access::WriteFleet)?;
    let mut f = WizardForm::empty();
    f.props.clear();
    Ok(render(&wizard_page(&state, &signed, f, Errors::default()).await?))
}

/// Saves the job (and the new filter under its name, when one is given).
pub async fn create(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let fields = signed.form(&headers, &body)?;
    signed.actor.require(updraft_core::Access::WriteFleet)?;
    let mut f = WizardForm::read(&fields);
    let mut errors = Errors::default();
    if f.job_metadata.len() > 50 {
        errors.add("metadata", "at most 50 rows");
    }
    if f.props.len() > MAX_ROWS {
        errors.add("filter.properties", format!("at most {MAX_ROWS} property conditions"));
    }
    if f.metas.len() > MAX_ROWS {
        errors.add("filter.metadata", format!("at most {MAX_ROWS} metadata conditions"));
    }
    let json = f.job_json(&mut errors);
    let result = if errors.is_empty() {
        match serde_json::from_value::<updraft_api::jobs::JobIn>(json) {
            Ok(input) => match crate::api::jobs::draft(input) {
                Ok(draft) => state.app.create_job(&signed.actor, draft).await.map_err(Some),
                Err(e) => Err(Some(e.0)),
            },
            Err(e) => Err(Some(updraft_app::Error::field("job", e.to_string()))),
        }
    } else {
        Err(None)
    };
    match result {
        Ok(report) => {
            if f.filter_mode == "new" && !f.filter_name.is_empty() {
                let saved = updraft_app::filters::NewSavedFilter {
                    id: None,
                    name: f.filter_name.clone(),
                    description: Some(format!("made with job {}", report.job.id)),
                    filter: Filter::from_json_value(f.filter_json()).unwrap_or_else(|_| Filter::all()),
                };
                if let Err(e) = state.app.create_saved_filter(&signed.actor, saved).await {
                    tracing::warn!(error = %e.message, "the wizard's filter was not saved");
                }
            }
            let flash = if report.job.spec.schedule.is_some() { "created_scheduled" } else { "created" };
            Ok(Redirect::to(&format!("/ui/jobs/{}?flash={flash}", enc(&report.job.id))).into_response())
        }
        Err(e) => {
            if let Some(e) = e {
                let more = Errors::from_error(&e);
                for (k, v) in more.by_field {
                    for m in v {
                        errors.add(&k, m);
                    }
                }
                errors.general.extend(more.general);
            }
            for (i, p) in f.props.iter_mut().enumerate() {
                p.error = errors.of(&format!("filter.properties[{i}]"));
            }
            for (i, m) in f.metas.iter_mut().enumerate() {
                m.error = errors.of(&format!("filter.metadata[{i}]"));
            }
            for (i, m) in f.job_metadata.iter_mut().enumerate() {
                m.error = errors.of(&format!("metadata[{i}]"));
            }
            let mut r = render(&wizard_page(&state, &signed, f, errors).await?);
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

/// "Estimated devices included": how many devices the filter step selects now.
pub async fn estimate(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let spec = WizardForm::read(&signed.form(&headers, &body)?).filter_spec();
    let html = match spec {
        Ok(spec) => match state.app.estimate_filter(&signed.actor, spec).await {
            Ok(n) => format!("<strong id=\"estimate-count\">{}</strong> devices included (estimated)", count(n)),
            Err(e) => problem(&e),
        },
        Err(e) => problem(&e),
    };
    Ok(Html(html).into_response())
}

/// "Preview filter query results": a sample of the devices the filter selects.
pub async fn preview(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let spec = WizardForm::read(&signed.form(&headers, &body)?).filter_spec();
    let devices = match spec {
        Ok(spec) => state.app.preview_filter(&signed.actor, spec, 20).await,
        Err(e) => Err(e),
    };
    let html = match devices {
        Ok(devices) if devices.is_empty() => "<p>No device matches this filter now.</p>".to_owned(),
        Ok(devices) => {
            let rows: String = devices
                .iter()
                .map(|d| {
                    let fw: Vec<String> = d.firmware.iter().map(|(c, v)| format!("{c} {v}")).collect();
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&d.id),
                        esc(&d.product),
                        esc(d.connection_status.as_str()),
                        esc(&fw.join(", "))
                    )
                })
                .collect();
            format!(
                "<table aria-label=\"Preview of the filter's results\"><thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Product</th>\
                 <th scope=\"col\">Status</th><th scope=\"col\">Firmware</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        }
        Err(e) => problem(&e),
    };
    Ok(Html(html).into_response())
}

fn problem(e: &updraft_app::Error) -> String {
    let errors = Errors::from_error(e);
    let items: String = errors.all().iter().map(|m| format!("<li>{}</li>", esc(m))).collect();
    format!("<div class=\"field-error\" role=\"alert\">The filter cannot be read:<ul>{items}</ul></div>")
}
