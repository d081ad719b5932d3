//! What a job says beyond its image: which devices (targeting), when they are
//! added (recurrence), how they get it (delivery), how fast (pace, abort),
//! when (schedule), and what happens on failure (retry, timeout). Plain data
//! with validation, and the pure rules the scheduler applies each tick.
//!
//! Invariants the rules keep (checked by the property test in `tests`):
//! - a tick never releases more executions than `max_concurrency` leaves room
//!   for, nor more than the rate allows over any 60-second window;
//! - a device in `exclude` or of another product is never selected;
//! - the gray share is a stable function of job id and device id.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FieldError;
use crate::job::ExecutionState;
use crate::schedule::Schedule;

/// Default of `max_concurrency`.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 300;
/// Bounds of `timeout_seconds` (absent: no limit, as seed 003's `TimeoutInMinutes`, which
/// allows 1 to 1,440 minutes; seed 001's `upgradeTimeout` allows up to 172,800 s).
pub const MIN_TIMEOUT_SECONDS: u32 = 60;
pub const MAX_TIMEOUT_SECONDS: u32 = 172_800;
/// The most retries.
pub const MAX_RETRIES: u32 = 10;
/// The most devices a verify job may name.
pub const MAX_VERIFY_DEVICES: usize = 50;

/// Which devices a job is for. The scope is the union of `all`, `devices`,
/// `groups` and `filter`; `gray_percent` and `source_versions` narrow it;
/// `include` adds devices regardless, `exclude` removes them always. Only
/// devices of the job's product are ever selected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Targeting {
    pub all: bool,
    pub devices: Vec<String>,
    pub groups: Vec<String>,
    /// A filter in the text form (an inline filter, or the saved filter's text when created).
    pub filter: Option<String>,
    /// The saved filter the job follows: a continuous job sees its edits.
    pub filter_id: Option<String>,
    pub gray_percent: Option<u8>,
    pub source_versions: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Also install on devices whose installed version is newer than the
    /// image's (otherwise they are skipped: no downgrade by accident).
    pub allow_downgrade: bool,
}

impl Targeting {
    pub fn has_scope(&self) -> bool {
        self.all
            || !self.devices.is_empty()
            || !self.groups.is_empty()
            || self.filter.is_some()
            || self.filter_id.is_some()
    }
}

/// Whether the scope is resolved once or followed while the job runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    #[default]
    Snapshot,
    Continuous,
}

/// Which failures an abort rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    Failed,
    Rejected,
    TimedOut,
    Any,
}

impl FailureType {
    pub fn counts(self, s: ExecutionState) -> bool {
        use ExecutionState::*;
        match self {
            FailureType::Failed => s == Failed,
            FailureType::Rejected => s == Rejected,
            FailureType::TimedOut => s == TimedOut,
            FailureType::Any => matches!(s, Failed | Rejected | TimedOut),
        }
    }
}

/// Abort the job when, among at least `min_executed` finished executions, the
/// share of `failure` reaches `threshold_percent`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbortRule {
    pub failure: FailureType,
    pub min_executed: u64,
    pub threshold_percent: f64,
}

/// What raises the rate of an exponential ramp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RampCriterion {
    #[default]
    Notified,
    Succeeded,
}

/// AWS-style exponential rollout: start at `base_per_minute`, multiply by
/// `increment_factor` each time another `every` executions were notified (or
/// succeeded); never above `max_per_minute` when that is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ramp {
    pub base_per_minute: u32,
    pub increment_factor: f64,
    #[serde(default)]
    pub criterion: RampCriterion,
    pub every: u64,
}

/// How fast a job goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pace {
    pub max_concurrency: u32,
    pub max_per_minute: Option<u32>,
    pub ramp: Option<Ramp>,
    pub abort: Vec<AbortRule>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { max_concurrency: DEFAULT_MAX_CONCURRENCY, max_per_minute: None, ramp: None, abort: vec![] }
    }
}

/// Retries of failed and timed-out executions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Retry {
    pub count: u32,
    pub interval_minutes: u32,
}

/// How a device is asked to deploy, in hawkBit's terms: `forced` (download
/// and install now), `soft` (the device may ask its user first: `attempt`),
/// `download_only` (download now, never install: `downloaded` ends it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    #[default]
    Forced,
    Soft,
    DownloadOnly,
}

/// What the device is told to do with a step of a deployment (hawkBit's
/// `skip`, `attempt`, `forced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    Skip,
    Attempt,
    Forced,
}

/// What a deployment tells the device at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub download: Directive,
    pub update: Directive,
    /// Whether the maintenance window is open, when the job has one.
    pub window_open: Option<bool>,
}

impl Retry {
    /// A retry policy as a client gives it. An interval without a count (or with a
    /// count of 0) is refused rather than read as "no retry": the client meant retries.
    /// Without an interval, a retry is due at once.
    pub fn given(count: Option<u32>, interval_minutes: Option<u32>, errors: &mut Vec<FieldError>) -> Retry {
        if interval_minutes.is_some() && count.unwrap_or(0) == 0 {
            errors.push(FieldError::new(
                "retry.count",
                format!("an interval needs a count of retries: 1 to {MAX_RETRIES}"),
            ));
        }
        Retry { count: count.unwrap_or(0), interval_minutes: interval_minutes.unwrap_or(0) }
    }
}

/// Everything a job says besides its image and its identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSpec {
    pub target: Targeting,
    pub recurrence: Recurrence,
    /// Offer the job to devices on their next contact.
    pub push: bool,
    /// A device may ask for the job itself.
    pub allow_device_request: bool,
    pub pace: Pace,
    pub schedule: Option<Schedule>,
    pub retry: Retry,
    /// How long an execution may be in progress (from its release); `None`: no limit.
    pub timeout_seconds: Option<u32>,
    pub translations: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub additional_params: BTreeMap<String, serde_json::Value>,
    pub handling: Handling,
    /// When devices may install: days of the week and a daily window in a
    /// time zone (the `schedule` shape without `start`/`end`); they download
    /// at any time. `None`: whenever they get it.
    pub maintenance_window: Option<Schedule>,
    /// Phases, in order (see [`crate::phase`]); none: every device at once.
    pub phases: Vec<crate::phase::Phase>,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            target: Targeting::default(),
            recurrence: Recurrence::Snapshot,
            push: true,
            allow_device_request: false,
            pace: Pace::default(),
            schedule: None,
            retry: Retry::default(),
            timeout_seconds: None,
            translations: BTreeMap::new(),
            metadata: BTreeMap::new(),
            additional_params: BTreeMap::new(),
            handling: Handling::Forced,
            maintenance_window: None,
            phases: Vec::new(),
        }
    }
}

impl JobSpec {
    /// Checks every bound; field names are those of the API.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        let t = &self.target;
        if !t.has_scope() && t.include.is_empty() {
            errors.push(FieldError::new("target", "say which devices: all, devices, groups, filter or include"));
        }
        if t.filter.is_some() && t.filter_id.is_some() {
            errors.push(FieldError::new("target.filter", "give a filter or a filter_id, not both"));
        }
        if let Some(p) = t.gray_percent
            && !(1..=100).contains(&p)
        {
            errors.push(FieldError::new("target.gray_percent", "must be from 1 to 100"));
        }
        if !self.push && !self.allow_device_request {
            errors.push(FieldError::new("push", "a job must be pushed or allow device requests (or both)"));
        }
        let p = &self.pace;
        if p.max_concurrency == 0 {
            errors.push(FieldError::new("max_concurrency", "must be at least 1"));
        }
        if p.max_per_minute == Some(0) {
            errors.push(FieldError::new("max_per_minute", "must be at least 1"));
        }
        if let Some(r) = &p.ramp {
            if r.base_per_minute == 0 {
                errors.push(FieldError::new("ramp.base_per_minute", "must be at least 1"));
            }
            if !(r.increment_factor > 1.0 && r.increment_factor <= 5.0) {
                errors.push(FieldError::new("ramp.increment_factor", "must be above 1 and at most 5"));
            }
            if r.every == 0 {
                errors.push(FieldError::new("ramp.every", "must be at least 1"));
            }
            if let Some(m) = p.max_per_minute
                && r.base_per_minute > m
            {
                errors.push(FieldError::new("ramp.base_per_minute", "must not exceed max_per_minute"));
            }
        }
        for (i, a) in p.abort.iter().enumerate() {
            if !(a.threshold_percent > 0.0 && a.threshold_percent <= 100.0) {
                errors.push(FieldError::new(format!("abort.{i}.threshold_percent"), "must be above 0 and at most 100"));
            }
        }
        if p.abort.len() > 10 {
            errors.push(FieldError::new("abort", "at most 10 rules"));
        }
        if self.retry.count > MAX_RETRIES {
            errors.push(FieldError::new("retry.count", format!("at most {MAX_RETRIES}")));
        }
        if self.retry.count > 0 && self.retry.interval_minutes > 10_080 {
            errors.push(FieldError::new("retry.interval_minutes", "at most 10080 (a week)"));
        }
        if let Some(t) = self.timeout_seconds
            && !(MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&t)
        {
            errors.push(FieldError::new(
                "timeout_seconds",
                format!("must be from {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}"),
            ));
        }
        if let Some(s) = &self.schedule {
            s.validate(errors);
        }
        if let Some(w) = &self.maintenance_window {
            let mut window_errors = Vec::new();
            w.validate(&mut window_errors);
            errors.extend(window_errors.into_iter().map(|mut e| {
                e.field = e.field.replacen("schedule", "maintenance_window", 1);
                e
            }));
            if w.start.is_some() || w.end.is_some() {
                errors.push(FieldError::new(
                    "maintenance_window",
                    "a maintenance window has days, a daily window and a time zone; the job's schedule has start and end",
                ));
            }
            if w.window.is_none_or(|d| d.from == d.to) {
                errors.push(FieldError::new("maintenance_window.window", "give the daily window: {\"from\", \"to\"}"));
            }
            if self.handling == Handling::DownloadOnly {
                errors.push(FieldError::new("maintenance_window", "a download-only job installs nothing"));
            }
        }
        for (k, v) in &self.translations {
            if k.is_empty() || k.len() > 35 {
                errors.push(FieldError::new(format!("translations.{k}"), "a language tag (at most 35 characters)"));
            }
            crate::validate::text(&format!("translations.{k}"), v, 256, errors);
        }
        crate::phase::validate(&self.phases, errors);
        if self.metadata.len() > 100 || self.additional_params.len() > 100 {
            errors.push(FieldError::new("metadata", "at most 100 entries in metadata and in additional_params"));
        }
    }
}

impl JobSpec {
    /// What a deployment of this job tells its device at `now`, as hawkBit
    /// computes it: download `forced` unless soft (`attempt`); install as the
    /// download, but `skip` for download-only and while the maintenance window is closed.
    pub fn delivery(&self, now: Timestamp) -> Delivery {
        let download = match self.handling {
            Handling::Soft => Directive::Attempt,
            Handling::Forced | Handling::DownloadOnly => Directive::Forced,
        };
        let window_open = self.maintenance_window.as_ref().map(|w| w.phase(now) == crate::schedule::Phase::Open);
        let update = match (self.handling, window_open) {
            (Handling::DownloadOnly, _) | (_, Some(false)) => Directive::Skip,
            _ => download,
        };
        Delivery { download, update, window_open }
    }

    /// How long a device with a deployment of this job sleeps between polls
    /// (`default` otherwise), as hawkBit has it: while its maintenance window
    /// is closed, a third of the time until it may open (so the device polls
    /// about three times before), never under 30 s, never over `default`.
    pub fn poll_secs(&self, now: Timestamp, default: u64) -> u64 {
        const MIN_POLL_SECS: u64 = 30;
        const POLLS_BEFORE_WINDOW: i64 = 3;
        let Some(w) = &self.maintenance_window else { return default };
        if w.phase(now) == crate::schedule::Phase::Open {
            return default;
        }
        let Some(next) = w.next_change(now) else { return default };
        let third = u64::try_from(now.duration_until(next).as_secs() / POLLS_BEFORE_WINDOW).unwrap_or(0);
        third.max(MIN_POLL_SECS).min(default)
    }
}

/// Whether `device` falls in the gray share of a job: a stable hash of job id
/// and device id, so the same devices stay chosen however the scope grows.
pub fn in_gray_share(job: &str, device: &str, percent: Option<u8>) -> bool {
    let Some(p) = percent else { return true };
    share_hash(job, device) % 100 < u64::from(p)
}

/// The stable hash of job id and device id that picks the gray share and
/// orders devices into a job's phases.
pub fn share_hash(job: &str, device: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(job.as_bytes());
    h.update([0]);
    h.update(device.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// What [`select`] reads of a device: its id and its components' versions.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub firmware: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> From<&'a crate::Device> for Candidate<'a> {
    fn from(d: &'a crate::Device) -> Self {
        Candidate { id: &d.id, firmware: &d.firmware }
    }
}

/// What a job does with one device of its product that is in its scope (or
/// in `include`): `None` when it is left out.
///
/// - `exclude` wins over everything;
/// - `include` skips the gray share and the source versions;
/// - a device already on every target version is `skipped`, and so is one
///   with a component newer than the job installs, unless the job allows a downgrade;
/// - otherwise `awaiting_consent` or `queued`.
pub fn select(
    spec: &JobSpec,
    job_id: &str,
    consent_required: bool,
    device: Candidate<'_>,
    in_scope: bool,
    targets: &[(String, String)],
) -> Option<ExecutionState> {
    let t = &spec.target;
    if t.exclude.iter().any(|x| x == device.id) {
        return None;
    }
    let included = t.include.iter().any(|x| x == device.id);
    if !included {
        if !in_scope || !in_gray_share(job_id, device.id, t.gray_percent) {
            return None;
        }
        if !t.source_versions.is_empty() {
            let from_listed = targets.iter().any(|(component, _)| {
                device.firmware.get(component).is_some_and(|v| t.source_versions.iter().any(|s| versions_equal(s, v)))
            });
            if !from_listed {
                return None;
            }
        }
    }
    let up_to_date = targets
        .iter()
        .all(|(component, version)| device.firmware.get(component).is_some_and(|v| versions_equal(v, version)));
    let downgrade = !t.allow_downgrade
        && targets.iter().any(|(component, version)| {
            device.firmware.get(component).is_some_and(|v| {
                crate::Version::new(v).compare(&crate::Version::new(version)) == Some(std::cmp::Ordering::Greater)
            })
        });
    Some(if up_to_date || downgrade {
        ExecutionState::Skipped
    } else if consent_required {
        ExecutionState::AwaitingConsent
    } else {
        ExecutionState::Queued
    })
}

fn versions_equal(a: &str, b: &str) -> bool {
    crate::Version::new(a) == crate::Version::new(b)
}

/// What the scheduler knows of a job's executions at a tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaceStats {
    /// Executions notified through installing.
    pub in_progress: u64,
    /// Releases (every attempt) in the last 60 seconds: the sum of `released_by_second`.
    pub released_last_minute: u64,
    /// Releases of the last 60 seconds by age in whole seconds: `[0]` counts those less
    /// than a second old (this instant's included), `[59]` those 59 to 60 seconds old.
    /// Missing entries are zero.
    pub released_by_second: Vec<u64>,
    /// Executions released before this instant, for the ramp. This instant's releases are
    /// left out so that a tick repeated at the same instant sees the rate the first one saw.
    pub released_total: u64,
    /// Executions that succeeded before this instant, for the ramp.
    pub succeeded_total: u64,
}

/// The rate in executions per minute at this point of the job; `None` is unlimited.
///
/// With a ramp: `⌊base × factor^k⌋` where `k = min(⌊count / every⌋, 64)` and `count`
/// is the executions released (or succeeded) before this instant; at most
/// `max_per_minute` when that is set.
pub fn current_rate(pace: &Pace, s: &PaceStats) -> Option<u64> {
    match (&pace.ramp, pace.max_per_minute) {
        (Some(r), max) => {
            let done = match r.criterion {
                RampCriterion::Notified => s.released_total,
                RampCriterion::Succeeded => s.succeeded_total,
            };
            let steps = (done / r.every).min(MAX_RAMP_STEPS) as i32;
            let rate = f64::from(r.base_per_minute) * r.increment_factor.powi(steps);
            let rate = if rate.is_finite() { rate.floor() as u64 } else { u64::MAX };
            Some(max.map_or(rate, |m| rate.min(u64::from(m))))
        }
        (None, Some(m)) => Some(u64::from(m)),
        (None, None) => None,
    }
}

/// The ramp's exponent stops growing here (5^64 is far beyond any fleet).
pub const MAX_RAMP_STEPS: u64 = 64;

/// How many queued executions may be released now: room under the
/// concurrency, and under the rate spread evenly over the minute.
///
/// A rate of R a minute allows, for every span of the last `w` seconds
/// (`w` = 1 … 60), at most `⌈R × w / 60⌉` releases in it, this instant's
/// included. So a job at 60 a minute releases one a second from its first
/// tick on (and again after a pause), never 60 at once, and never more than
/// R in any 60 seconds. A repeated tick at the same instant finds its own
/// releases in every span and releases nothing more.
pub fn release_budget(pace: &Pace, s: &PaceStats) -> u64 {
    let by_concurrency = u64::from(pace.max_concurrency).saturating_sub(s.in_progress);
    let by_rate = current_rate(pace, s).map_or(u64::MAX, |r| spread_allowance(r, &s.released_by_second));
    by_concurrency.min(by_rate)
}

/// See [`release_budget`]: the least room over the spans of the last 1 … 60 seconds.
fn spread_allowance(rate: u64, by_second: &[u64]) -> u64 {
    let mut seen = 0u64;
    let mut allowed = u64::MAX;
    for w in 1..=60u64 {
        seen = seen.saturating_add(by_second.get(w as usize - 1).copied().unwrap_or(0));
        allowed = allowed.min(rate.saturating_mul(w).div_ceil(60).saturating_sub(seen));
    }
    allowed
}

/// The first abort rule the counts meet, if any.
pub fn abort_reason(rules: &[AbortRule], counts: &BTreeMap<ExecutionState, u64>) -> Option<AbortRule> {
    let finished: u64 = counts
        .iter()
        .filter(|(s, _)| s.is_terminal() && !matches!(s, ExecutionState::Skipped | ExecutionState::Canceled))
        .map(|(_, n)| n)
        .sum();
    rules.iter().copied().find(|r| {
        let failures: u64 = counts.iter().filter(|(s, _)| r.failure.counts(**s)).map(|(_, n)| n).sum();
        finished >= r.min_executed.max(1) && (failures as f64) * 100.0 >= r.threshold_percent * finished as f64
    })
}

/// Whether a failed or timed-out execution is retried, given its attempt (1 for the first).
pub fn retry_due(retry: &Retry, attempt: u32, finished_at: Timestamp, now: Timestamp) -> bool {
    attempt <= retry.count && finished_at.as_second() + i64::from(retry.interval_minutes) * 60 <= now.as_second()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gray_share_is_stable_and_about_right() {
        let chosen = (0..10_000).filter(|i| in_gray_share("job-1", &format!("dev-{i}"), Some(10))).count();
        assert!((900..1100).contains(&chosen), "{chosen}");
        let again = (0..10_000).filter(|i| in_gray_share("job-1", &format!("dev-{i}"), Some(10))).count();
        assert_eq!(chosen, again);
        assert!((0..100).all(|i| in_gray_share("j", &format!("d{i}"), Some(100))));
        // A larger share keeps every device of a smaller one.
        assert!((0..1000).all(|i| {
            let d = format!("d{i}");
            !in_gray_share("j", &d, Some(20)) || in_gray_share("j", &d, Some(50))
        }));
    }

    #[test]
    fn ramp_grows_exponentially_and_is_capped() {
        let pace = Pace {
            max_per_minute: Some(100),
            ramp: Some(Ramp {
                base_per_minute: 10,
                increment_factor: 2.0,
                criterion: RampCriterion::Notified,
                every: 50,
            }),
            ..Pace::default()
        };
        let at = |released_total| current_rate(&pace, &PaceStats { released_total, ..Default::default() });
        assert_eq!(at(0), Some(10));
        assert_eq!(at(49), Some(10));
        assert_eq!(at(50), Some(20));
        assert_eq!(at(150), Some(80));
        assert_eq!(at(1000), Some(100));
    }

    #[test]
    fn a_ramp_may_count_successes() {
        let pace = Pace {
            ramp: Some(Ramp {
                base_per_minute: 5,
                increment_factor: 3.0,
                criterion: RampCriterion::Succeeded,
                every: 10,
            }),
            ..Pace::default()
        };
        let at = |released_total, succeeded_total| {
            current_rate(&pace, &PaceStats { released_total, succeeded_total, ..Default::default() })
        };
        assert_eq!(at(100, 0), Some(5), "notified executions do not raise it");
        assert_eq!(at(100, 10), Some(15));
        assert_eq!(at(100, 25), Some(45));
    }

    /// Pace statistics as a store computes them, from release times in seconds.
    fn stats_at(releases: &[i64], now: i64, in_progress: u64) -> PaceStats {
        let mut by_second = vec![0u64; 60];
        for age in releases.iter().map(|t| (now - t).max(0)).filter(|age| *age < 60) {
            by_second[age as usize] += 1;
        }
        PaceStats {
            in_progress,
            released_last_minute: by_second.iter().sum(),
            released_by_second: by_second,
            released_total: releases.iter().filter(|t| **t < now).count() as u64,
            succeeded_total: 0,
        }
    }

    /// Ticks every second for `secs` seconds (each tick twice when `repeat`), executions
    /// finishing within the second; answers the releases of each second.
    fn run(pace: &Pace, queued: u64, secs: i64, repeat: bool) -> Vec<u64> {
        let mut releases: Vec<i64> = vec![];
        let mut per_second = vec![];
        for now in 0..secs {
            let mut this_second = 0;
            for round in 0..if repeat { 2 } else { 1 } {
                let busy = releases.iter().filter(|t| **t == now).count() as u64;
                let n = release_budget(pace, &stats_at(&releases, now, busy)).min(queued - releases.len() as u64);
                assert!(round == 0 || n == 0, "a repeated tick at {now} s released {n} more");
                releases.extend(std::iter::repeat_n(now, n as usize));
                this_second += n;
            }
            per_second.push(this_second);
        }
        per_second
    }

    #[test]
    fn a_rate_is_spread_over_the_minute() {
        let pace = Pace { max_per_minute: Some(600), ..Pace::default() };
        let fresh = release_budget(&pace, &PaceStats::default());
        assert_eq!(fresh, 10, "the first tick: 600 a minute is 10 a second, not 600 at once");
        assert_eq!(release_budget(&pace, &stats_at(&[0; 10], 0, 10)), 0, "this second's share is spent");
        assert_eq!(release_budget(&pace, &stats_at(&[0; 10], 1, 10)), 10, "the next second's");
        assert_eq!(release_budget(&pace, &stats_at(&[0; 10], 300, 10)), 10, "after a long pause: a second's worth");
        let full: Vec<i64> = (1..60).flat_map(|t| std::iter::repeat_n(t, 10)).chain([1; 5]).collect();
        assert_eq!(release_budget(&pace, &stats_at(&full, 60, 10)), 5, "never more than the rate over a minute");
    }

    #[test]
    fn sixty_a_minute_releases_one_a_second_from_the_start() {
        let pace = Pace { max_per_minute: Some(60), ..Pace::default() };
        let per_second = run(&pace, 200, 180, false);
        assert!(per_second.iter().all(|n| *n == 1), "{per_second:?}");
    }

    #[test]
    fn every_rate_is_spread_and_kept_per_minute() {
        for rate in [1u32, 7, 30, 59, 60, 61, 90, 600, 1000, 5000] {
            let pace = Pace { max_concurrency: u32::MAX, max_per_minute: Some(rate), ..Pace::default() };
            let per_second = run(&pace, u64::MAX / 2, 300, false);
            let per_second_cap = u64::from(rate).div_ceil(60);
            assert!(per_second.iter().all(|n| *n <= per_second_cap), "{rate}: {per_second:?}");
            for w in per_second.windows(60) {
                assert!(w.iter().sum::<u64>() <= u64::from(rate), "{rate}: more than the rate in 60 s");
            }
            let total: u64 = per_second.iter().sum();
            assert!(total + u64::from(rate) / 60 + 1 >= 5 * u64::from(rate), "{rate}: {total} in 5 minutes");
        }
    }

    #[test]
    fn a_repeated_tick_releases_nothing_more() {
        let ramp = Ramp { base_per_minute: 60, increment_factor: 2.0, criterion: RampCriterion::Notified, every: 3 };
        for pace in [
            Pace { max_per_minute: Some(600), ..Pace::default() },
            Pace { max_per_minute: Some(6000), ramp: Some(ramp), ..Pace::default() },
            Pace { max_per_minute: None, ramp: Some(ramp), ..Pace::default() },
        ] {
            run(&pace, 10_000, 120, true);
        }
    }

    #[test]
    fn a_retry_interval_without_a_count_is_an_error() {
        let mut errors = vec![];
        assert_eq!(Retry::given(Some(2), Some(10), &mut errors), Retry { count: 2, interval_minutes: 10 });
        assert_eq!(Retry::given(Some(1), None, &mut errors), Retry { count: 1, interval_minutes: 0 });
        assert_eq!(Retry::given(None, None, &mut errors), Retry::default());
        assert!(errors.is_empty(), "{errors:?}");
        Retry::given(None, Some(10), &mut errors);
        Retry::given(Some(0), Some(10), &mut errors);
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["retry.count", "retry.count"]);
    }

    #[test]
    fn a_timeout_may_be_absent_or_as_short_as_a_minute() {
        let errors = |t: Option<u32>| {
            let mut e = vec![];
            let spec = JobSpec {
                timeout_seconds: t,
                target: Targeting { all: true, ..Targeting::default() },
                ..JobSpec::default()
            };
            spec.validate(&mut e);
            e.into_iter().map(|e| e.field).collect::<Vec<_>>()
        };
        assert_eq!(JobSpec::default().timeout_seconds, None, "no limit unless one is given");
        for ok in [None, Some(60), Some(86_400), Some(172_800)] {
            assert!(errors(ok).is_empty(), "{ok:?}");
        }
        for bad in [Some(0), Some(59), Some(172_801)] {
            assert_eq!(errors(bad), ["timeout_seconds"], "{bad:?}");
        }
    }

    #[test]
    fn abort_needs_the_minimum_and_the_threshold() {
        let rule = AbortRule { failure: FailureType::Failed, min_executed: 10, threshold_percent: 20.0 };
        let counts = |ok, failed| BTreeMap::from([(ExecutionState::Succeeded, ok), (ExecutionState::Failed, failed)]);
        assert_eq!(abort_reason(&[rule], &counts(3, 3)), None, "below the minimum");
        assert_eq!(abort_reason(&[rule], &counts(9, 1)), None, "10 %");
        assert_eq!(abort_reason(&[rule], &counts(8, 2)), Some(rule), "20 %");
    }

    /// A simulated job: random device behaviour and clock steps; the tick
    /// releases its budget. Concurrency and the per-minute rate always hold.
    #[derive(Debug, Clone)]
    enum Step {
        Tick,
        Advance(u32),
        Finish(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Tick),
            2 => (1u32..90).prop_map(Step::Advance),
            2 => (0usize..1000).prop_map(Step::Finish),
        ]
    }

    proptest! {
        #[test]
        fn pacing_never_exceeds_concurrency_or_rate(
            concurrency in 1u32..20,
            rate in proptest::option::of(1u32..30),
            ramp in proptest::option::of((1u32..5, 2u32..4, 1u64..10)),
            queued in 0u64..200,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let ramp = ramp.map(|(b, f, every)| Ramp {
                base_per_minute: b, increment_factor: f64::from(f), criterion: RampCriterion::Notified, every,
            });
            let pace = Pace { max_concurrency: concurrency, max_per_minute: rate, ramp, abort: vec![] };
            let mut now = 0i64;
            let mut waiting = queued;
            let mut in_progress: Vec<i64> = vec![]; // release times
            let mut releases: Vec<i64> = vec![];
            for s in steps {
                match s {
                    Step::Tick => {
                        let stats = stats_at(&releases, now, in_progress.len() as u64);
                        let n = release_budget(&pace, &stats).min(waiting);
                        waiting -= n;
                        for _ in 0..n { in_progress.push(now); releases.push(now); }
                        let again = stats_at(&releases, now, in_progress.len() as u64);
                        prop_assert_eq!(release_budget(&pace, &again).min(waiting), 0, "a repeated tick releases more");
                    }
                    Step::Advance(secs) => now += i64::from(secs),
                    Step::Finish(i) => if !in_progress.is_empty() { in_progress.remove(i % in_progress.len()); },
                }
                prop_assert!(in_progress.len() as u64 <= u64::from(concurrency));
                if let Some(r) = rate {
                    // With a ramp too: never more than the cap in 60 s, nor a second's share at once.
                    for t in &releases {
                        let window = releases.iter().filter(|u| **u >= *t && **u < t + 60).count();
                        prop_assert!(window as u64 <= u64::from(r), "{window} releases within a minute of {t}");
                        let second = releases.iter().filter(|u| **u == *t).count();
                        prop_assert!(second as u64 <= u64::from(r).div_ceil(60), "{second} releases at {t}");
                    }
                }
            }
        }
    }
}
