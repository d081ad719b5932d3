//! Devices: search with the filter language (its error shown under the box,
//! with a caret at the position), paging and sorting; a device's page with its
//! attributes, executions and their history.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use updraft_app::filters::FilterSpec;
use updraft_app::{DeviceScope, sortable};
use updraft_core::filter::Filter;
use updraft_core::{Device, PageRequest};

use super::session::{Ctx, Signed};
use super::view::{ListQuery, Pager, when, when_opt};
use super::{UiResult, render};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct DeviceQuery {
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    page: Option<u64>,
}

pub struct DeviceRow {
    pub d: Device,
    pub firmware: String,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "ui/devices.html")]
struct DevicesPage {
    ctx: Ctx,
    rows: Vec<DeviceRow>,
    pager: Pager,
    filter: String,
    q: String,
    sort: String,
    error: String,
    caret: String,
    sorts: Vec<(&'static str, &'static str)>,
}

pub async fn list(State(state): State<AppState>, signed: Signed, Query(dq): Query<DeviceQuery>) -> UiResult<Response> {
    let q = ListQuery { q: dq.q.clone(), state: None, sort: dq.sort.clone(), page: dq.page };
    let req = q.request(sortable::DEVICES, "id")?;
    let filter_text = dq.filter.clone().unwrap_or_default();
    let (mut items, error, caret) = if filter_text.trim().is_empty() {
        (
            state.app.list_devices(&signed.actor, &DeviceScope::default(), None, &req).await?.items,
            String::new(),
            String::new(),
        )
    } else {
        match Filter::parse(&filter_text) {
            Ok(f) => (
                state
                    .app
                    .list_devices(&signed.actor, &DeviceScope::default(), Some(FilterSpec::Given(f)), &req)
                    .await?
                    .items,
                String::new(),
                String::new(),
            ),
            Err(e) => (Vec::new(), e.to_string(), e.caret(&filter_text)),
        }
    };
    let pager = Pager::cut(
        &mut items,
        &q,
        "/ui/devices",
        &[("filter", filter_text.clone()), ("q", q.search()), ("sort", dq.sort.clone().unwrap_or_default())],
    );
    let rows = items
        .into_iter()
        .map(|d| DeviceRow {
            firmware: d.firmware.iter().map(|(c, v)| format!("{c} {v}")).collect::<Vec<_>>().join(", "),
            last_seen: when_opt(&d.last_seen_at),
            d,
        })
        .collect();
    let page = DevicesPage {
        ctx: signed.ctx("devices"),
        rows,
        pager,
        filter: filter_text,
        q: q.search(),
        sort: dq.sort.unwrap_or_else(|| "id".into()),
        error,
        caret,
        sorts: vec![
            ("id", "id"),
            ("-last_seen_at", "last seen, newest first"),
            ("-created_at", "registered, newest first"),
            ("product", "product"),
        ],
    };
    Ok(render(&page))
}

pub struct ExecView {
    pub job: String,
    pub state: &'static str,
    pub attempt: u32,
    pub updated: String,
    pub waiting: String,
    pub history: Vec<(String, &'static str, String)>,
}

#[derive(Template)]
#[template(path = "ui/device.html")]
struct DevicePage {
    ctx: Ctx,
    d: Device,
    attributes: Vec<(&'static str, String)>,
    properties: Vec<(String, String)>,
    executions: Vec<ExecView>,
}

pub async fn page(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> UiResult<Response> {
    let d = state.app.get_device(&signed.actor, &id).await?;
    let mut req = PageRequest::parse(Some(20), None, Some("-updated_at"), None, sortable::EXECUTIONS)
        .map_err(updraft_app::Error::from)?;
    req.count_total = false;
    let executions = state
        .app
        .device_executions(&signed.actor, &id, None, &req)
        .await?
        .items
        .into_iter()
        .map(|(e, history, waiting)| ExecView {
            job: e.job,
            state: e.state.as_str(),
            attempt: e.attempt,
            updated: when(&e.updated_at),
            waiting: waiting.map(|w| w.describe()).unwrap_or_default(),
            history: history
                .into_iter()
                .map(|h| (h.at.strftime("%Y-%m-%d %H:%M:%S").to_string(), h.state.as_str(), h.report))
                .collect(),
        })
        .collect();
    let attributes = vec![
        ("Product", d.product.clone()),
        ("Connection status", d.connection_status.as_str().to_owned()),
        ("Firmware", d.firmware.iter().map(|(c, v)| format!("{c} {v}")).collect::<Vec<_>>().join(", ")),
        ("Hardware version", d.hardware_version.clone().unwrap_or_default()),
        ("Module model", d.module_model.clone().unwrap_or_default()),
        ("Module version", d.module_version.clone().unwrap_or_default()),
        ("Template ID", d.template_id.clone().unwrap_or_default()),
        ("Activated", when_opt(&d.activated_at)),
        ("Last seen", when_opt(&d.last_seen_at)),
        ("Registered", when(&d.created_at)),
    ];
    let properties = d
        .properties
        .iter()
        .map(|(k, v)| (format!("prop.{k}"), serde_json::to_string(v).unwrap_or_default()))
        .chain(d.metadata.iter().map(|(k, v)| (format!("meta.{k}"), v.clone())))
        .collect();
    Ok(render(&DevicePage { ctx: signed.ctx("devices"), d, attributes, properties, executions }))
}
