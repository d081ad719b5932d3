//! A job's page, live: a stream of server-sent events, each the live part of
//! the page rendered again. The stream wakes on the event stream's news of
//! this job (from any replica), at most once a second, and every few seconds
//! regardless (the ETA and the rate move with time).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::UiResult;
use super::jobs::{LiveQuery, live_html};
use super::session::Signed;
use crate::state::AppState;

/// The least time between two renderings of one page.
const MIN_GAP: Duration = Duration::from_secs(1);
/// A page is rendered again at least this often while its job is live.
const REFRESH: Duration = Duration::from_secs(5);

struct Follow {
    state: AppState,
    signed: Signed,
    id: String,
    q: LiveQuery,
    changes: tokio::sync::broadcast::Receiver<std::sync::Arc<updraft_app::JobTouched>>,
    first: bool,
    ended: bool,
}

pub async fn stream(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<LiveQuery>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // The job must exist and be the caller's to see before the stream starts.
    state.app.job_report(&signed.actor, &id).await?;
    let changes = state.app.watch_jobs();
    let follow = Follow { state, signed, id, q, changes, first: true, ended: false };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        if f.ended {
            return None;
        }
        if !f.first {
            tokio::time::sleep(MIN_GAP).await;
            let tenant = f.signed.user.tenant.clone();
            let wait = async {
                loop {
                    match f.changes.recv().await {
                        Ok(t) if t.tenant == tenant && t.job == f.id => return,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => return,
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            let _ = tokio::time::timeout(REFRESH, wait).await;
            // Whatever else arrived meanwhile is covered by this rendering.
            while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = f.changes.try_recv() {}
        }
        f.first = false;
        let report = match f.state.app.job_report(&f.signed.actor, &f.id).await {
            Ok(r) => r,
            Err(e) => {
                f.ended = true;
                return Some((Ok(Event::default().event("end").data(e.message)), f));
            }
        };
        let event = match live_html(&f.state, &f.signed, &report, &f.q).await {
            Ok(html) => Event::default().event("live").data(html),
            Err(e) => {
                f.ended = true;
                Event::default().event("end").data(e.0.message)
            }
        };
        Some((Ok(event), f))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
