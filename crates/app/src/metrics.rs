//! Every Prometheus metric this crate records, declared in one place.

/// Device sightings written by the presence worker.
pub const PRESENCE_FLUSHED: &str = "updraft_presence_flushed_total";
/// Online or initializing devices the presence worker marked offline after they went silent.
pub const PRESENCE_WENT_OFFLINE: &str = "updraft_presence_went_offline_total";
/// Worker ticks, by worker and outcome.
pub const WORKER_TICKS: &str = "updraft_worker_ticks_total";
/// How long the last tick took, in seconds, by worker.
pub const WORKER_LAST_TICK: &str = "updraft_worker_last_tick_seconds";
/// Reads of firmware bytes that failed (missing, cut short, store unreachable): answered 503.
pub const BLOB_FAILURES: &str = "updraft_blob_failures_total";
/// Executions the scheduler released to devices.
pub const EXECUTIONS_RELEASED: &str = "updraft_executions_released_total";
/// Executions the scheduler ended as timed out.
pub const EXECUTIONS_TIMED_OUT: &str = "updraft_executions_timed_out_total";
/// Executions queued again for another attempt.
pub const EXECUTIONS_RETRIED: &str = "updraft_executions_retried_total";
/// Devices registered (one by one or imported).
pub const DEVICES_REGISTERED: &str = "updraft_devices_registered_total";
/// Filter estimates answered, by who counted (`index`: the fleet index in memory; `store`: the database).
pub const FILTER_ESTIMATES: &str = "updraft_filter_estimates_total";
