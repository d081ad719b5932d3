//! The fleet overview: devices by connection status, by firmware version per
//! product, and the jobs running.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use updraft_app::sortable;
use updraft_core::PageRequest;
use updraft_core::job::{Job, JobState};

use super::session::{Ctx, Signed};
use super::view::{FlashQuery, count, when};
use super::{UiResult, charts, render};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct OverviewPage {
    ctx: Ctx,
    total: String,
    statuses: Vec<(String, String)>,
    status_chart: String,
    products: Vec<(String, String)>,
    running: Vec<Job>,
    counted_at: String,
}

pub async fn page(
    State(state): State<AppState>,
    signed: Signed,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let o = state.app.fleet_overview(&signed.actor).await?;
    let statuses: Vec<(String, u64)> = ["online", "offline", "initializing"]
        .iter()
        .map(|s| (s.to_string(), o.by_status.get(*s).copied().unwrap_or(0)))
        .collect();
    let products = o
        .by_version
        .iter()
        .enumerate()
        .map(|(i, (product, rows))| {
            let rows: Vec<(String, u64)> = rows.iter().take(12).cloned().collect();
            (
                product.clone(),
                charts::bars(&format!("versions-{i}"), &format!("Devices of {product} by firmware version"), &rows),
            )
        })
        .collect();
    let mut req = PageRequest::parse(Some(10), None, Some("-started_at"), None, sortable::JOBS)
        .map_err(updraft_app::Error::from)?;
    req.count_total = false;
    let running = state.app.list_jobs(&signed.actor, Some(JobState::Running), &req).await?.items;
    let page = OverviewPage {
        ctx: signed.ctx("overview").flash(&flash),
        total: count(o.total),
        status_chart: charts::bars("status", "Devices by connection status", &statuses),
        statuses: statuses.into_iter().map(|(s, n)| (s, count(n))).collect(),
        products,
        running,
        counted_at: when(&o.counted_at),
    };
    Ok(render(&page))
}
