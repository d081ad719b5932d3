//! Background work as named workers. Each worker is one `tick(now)` that
//! does a bounded amount of work; the runner calls it on an interval, and
//! tests call it directly, one tick at a time, with the time they choose.
//! On shutdown every worker gets a last tick.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::App;

/// The workers the server runs, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    /// Writes device sightings and marks silent devices offline.
    Presence,
    /// Moves jobs: schedules, timeouts, aborts, retries, continuous jobs, releases.
    Scheduler,
    /// Prunes the event stream and the audit log past their retention, and expired sessions.
    Events,
    /// Re-signs TUF metadata before it expires (the timestamp daily).
    Trust,
}

impl Worker {
    pub const ALL: &[Worker] = &[Worker::Presence, Worker::Scheduler, Worker::Events, Worker::Trust];

    pub fn name(self) -> &'static str {
        match self {
            Worker::Presence => "presence",
            Worker::Scheduler => "scheduler",
            Worker::Events => "events",
            Worker::Trust => "trust",
        }
    }

    fn interval(self, state: &App) -> Duration {
        match self {
            Worker::Presence => Duration::from_millis(state.config.presence_flush_ms.max(10)),
            Worker::Scheduler => Duration::from_millis(state.config.scheduler_tick_ms.max(10)),
            Worker::Events => Duration::from_secs(600),
            Worker::Trust => Duration::from_secs(60),
        }
    }

    /// Does one round of the worker's work as of `now`.
    pub async fn tick(self, state: &App, now: Timestamp) -> crate::store::StoreResult<()> {
        crate::store::acting(Some(format!("system:{}", self.name())), self.round(state, now)).await
    }

    async fn round(self, state: &App, now: Timestamp) -> crate::store::StoreResult<()> {
        match self {
            Worker::Presence => {
                let offline_after = SignedDuration::from_secs(state.config.offline_after_secs as i64);
                state.presence.flush(state.store.as_ref(), now, offline_after).await?;
            }
            Worker::Scheduler => {
                let r = crate::scheduler::tick(state, now).await?;
                metrics::counter!(crate::metrics::EXECUTIONS_RELEASED).increment(r.released);
                metrics::counter!(crate::metrics::EXECUTIONS_TIMED_OUT).increment(r.timed_out);
                metrics::counter!(crate::metrics::EXECUTIONS_RETRIED).increment(r.retried);
            }
            Worker::Events => {
                let keep = SignedDuration::from_hours(state.config.event_retention_hours.max(1) as i64);
                let sessions = state.store.prune_sessions(now).await?;
                if sessions > 0 {
                    tracing::info!(sessions, "expired sessions forgotten");
                }
                let pruned = state.store.prune_events(now - keep).await?;
                if pruned > 0 {
                    tracing::info!(pruned, "events pruned");
                }
                let audit_keep = SignedDuration::from_hours(24 * state.config.audit_retention_days.max(1) as i64);
                let pruned = state.store.prune_audit(now - audit_keep).await?;
                if pruned > 0 {
                    tracing::info!(pruned, "audit entries pruned");
                }
            }
            Worker::Trust => crate::trust::refresh(state, now).await?,
        }
        Ok(())
    }
}

/// Starts every worker; send `true` on the returned channel to stop them.
pub fn spawn(state: App) -> (watch::Sender<bool>, Vec<JoinHandle<()>>) {
    let (tx, rx) = watch::channel(false);
    let handles = Worker::ALL
        .iter()
        .map(|&w| {
            let state = state.clone();
            let mut stop = rx.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(w.interval(&state));
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let stopping = tokio::select! {
                        _ = interval.tick() => false,
                        _ = stop.changed() => true,
                    };
                    let started = std::time::Instant::now();
                    let ticked = w.tick(&state, state.now()).await;
                    metrics::gauge!(crate::metrics::WORKER_LAST_TICK, "worker" => w.name())
                        .set(started.elapsed().as_secs_f64());
                    let outcome = match ticked {
                        Ok(()) => "ok",
                        Err(e) => {
                            tracing::warn!(worker = w.name(), error = %e, "worker tick failed");
                            "error"
                        }
                    };
                    metrics::counter!(crate::metrics::WORKER_TICKS, "worker" => w.name(), "outcome" => outcome)
                        .increment(1);
                    if stopping {
                        break;
                    }
                }
            })
        })
        .collect();
    (tx, handles)
}
