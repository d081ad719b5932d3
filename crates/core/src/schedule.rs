//! When a job may run: a start and end instant, and within them the days of
//! the week and a daily window of wall-clock time in an IANA time zone.
//!
//! Windows are wall-clock: `22:00–06:00` opens at 22:00 local time and closes
//! at 06:00 the next morning, so it is 7 hours long the night clocks go
//! forward and 9 hours the night they go back. A window that crosses midnight
//! belongs to the day it opens on (`days: [fri]` with `22:00–06:00` includes
//! Saturday 03:00). A window wholly inside the hour skipped when clocks go
//! forward does not open that night; one in the hour repeated when they go
//! back is open both times.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::FieldError;

/// A daily window of wall-clock time, `from` included, `to` excluded;
/// `to` before `from` crosses midnight; `from == to` is the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyWindow {
    #[serde(with = "hhmm")]
    pub from: Time,
    #[serde(with = "hhmm")]
    pub to: Time,
}

impl DailyWindow {
    /// Seed 001's form: seconds since local midnight (`startSchedule`, `endSchedule`).
    pub fn from_seconds(start: u32, end: u32) -> Option<DailyWindow> {
        let t = |s: u32| (s < 86_400).then(|| Time::midnight().checked_add((s as i64).seconds()).ok()).flatten();
        Some(DailyWindow { from: t(start)?, to: t(end)? })
    }
}

/// When a job may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// IANA name; `UTC` when absent.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Days the window opens on; every day when empty.
    #[serde(default, with = "weekdays")]
    pub days: Vec<Weekday>,
    /// All day when absent.
    pub window: Option<DailyWindow>,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// Where an instant falls in a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the start.
    Before,
    /// In a window: run.
    Open,
    /// Between windows: paused until the next one.
    Closed,
    /// After the end: complete.
    Ended,
}

impl Schedule {
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        if TimeZone::get(&self.timezone).is_err() {
            errors.push(FieldError::new("schedule.timezone", format!("`{}` is not an IANA time zone", self.timezone)));
        }
        if let (Some(s), Some(e)) = (self.start, self.end)
            && e <= s
        {
            errors.push(FieldError::new("schedule.end", "must be after the start"));
        }
    }

    fn tz(&self) -> TimeZone {
        TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC)
    }

    /// Where `now` falls.
    pub fn phase(&self, now: Timestamp) -> Phase {
        if self.start.is_some_and(|s| now < s) {
            return Phase::Before;
        }
        if self.end.is_some_and(|e| now >= e) {
            return Phase::Ended;
        }
        if self.in_window(now) { Phase::Open } else { Phase::Closed }
    }

    fn day_allowed(&self, d: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&d)
    }

    fn in_window(&self, now: Timestamp) -> bool {
        let local = now.to_zoned(self.tz());
        let (day, t) = (local.weekday(), local.time());
        let Some(w) = self.window else { return self.day_allowed(day) };
        if w.from == w.to {
            return self.day_allowed(day);
        }
        if w.from < w.to {
            return self.day_allowed(day) && w.from <= t && t < w.to;
        }
        // Crosses midnight: the evening part belongs to today, the morning part to yesterday.
        (t >= w.from && self.day_allowed(day)) || (t < w.to && self.day_allowed(day.wrapping_sub(1)))
    }

    /// The next instant after `now` at which the phase may change (a bound
    /// for the scheduler's sleep): the next window edge, start or end.
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        // A window edge is within 8 days; step by minutes through local time would be
        // costly, so probe each day's two edges.
        let tz = self.tz();
        let local = now.to_zoned(tz.clone());
        let mut best: Option<Timestamp> = [self.start, self.end].into_iter().flatten().filter(|t| *t > now).min();
        if let Some(w) = self.window {
            for offset in 0..9 {
                let Ok(date) = local.date().checked_add(offset.days()) else { continue };
                for t in [w.from, w.to] {
                    if let Ok(z) = date.to_datetime(t).to_zoned(tz.clone()) {
                        let ts = z.timestamp();
                        if ts > now && best.is_none_or(|b| ts < b) {
                            best = Some(ts);
                        }
                    }
                }
            }
        }
        best
    }
}

mod hhmm {
    use jiff::civil::Time;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `HH:MM`, or `HH:MM:SS` when the seconds are not zero (seed 001's windows are
    /// given in seconds of the day: 86,399 is 23:59:59).
    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        let text = match t.second() {
            0 => format!("{:02}:{:02}", t.hour(), t.minute()),
            sec => format!("{:02}:{:02}:{sec:02}", t.hour(), t.minute()),
        };
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a time of day HH:MM or HH:MM:SS")))
    }

    pub fn parse(s: &str) -> Option<Time> {
        let mut parts = s.split(':');
        let mut part = || parts.next().filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
        let (h, m) = (part()?, part()?);
        let sec = match parts.next() {
            None => "00",
            Some(p) if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) => p,
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Time::new(h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?, 0).ok()
    }
}

mod weekdays {
    use jiff::civil::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    const NAMES: [(&str, Weekday); 7] = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];

    pub fn serialize<S: Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> =
            days.iter().map(|d| NAMES.iter().find(|(_, w)| w == d).map(|(n, _)| *n).unwrap_or("mon")).collect();
        serde::Serialize::serialize(&names, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                let lower = n.to_ascii_lowercase();
                NAMES.iter().find(|(k, _)| lower.starts_with(k) && lower.len() >= 3).map(|(_, w)| *w).ok_or_else(|| {
                    serde::de::Error::custom(format!("`{n}` is not a day of the week (mon, tue, … sun)"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sched(json: &str) -> Schedule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn start_end_and_plain_window() {
        let s = sched(
            r#"{"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z", "timezone": "Europe/Berlin",
                "window": {"from": "09:00", "to": "17:00"}}"#,
        );
        assert_eq!(s.phase(at("2026-02-28T12:00:00Z")), Phase::Before);
        assert_eq!(s.phase(at("2026-03-02T08:00:00Z")), Phase::Open, "09:00 in Berlin (UTC+1)");
        assert_eq!(s.phase(at("2026-03-02T07:59:59Z")), Phase::Closed);
        assert_eq!(s.phase(at("2026-03-02T16:00:00Z")), Phase::Closed, "17:00 local is excluded");
        assert_eq!(s.phase(at("2026-04-01T00:00:00Z")), Phase::Ended);
    }

    #[test]
    fn window_across_midnight_belongs_to_its_opening_day() {
        let s = sched(r#"{"timezone": "UTC", "days": ["fri"], "window": {"from": "22:00", "to": "06:00"}}"#);
        // 2026-11-27 is a Friday.
        assert_eq!(s.phase(at("2026-11-27T21:59:00Z")), Phase::Closed);
        assert_eq!(s.phase(at("2026-11-27T22:00:00Z")), Phase::Open);
        assert_eq!(s.phase(at("2026-11-28T03:00:00Z")), Phase::Open, "Saturday morning is Friday's night");
        assert_eq!(s.phase(at("2026-11-28T06:00:00Z")), Phase::Closed);
        assert_eq!(s.phase(at("2026-11-28T23:00:00Z")), Phase::Closed, "Saturday night is not in");
        assert_eq!(s.phase(at("2026-11-27T03:00:00Z")), Phase::Closed, "Thursday's night is not in");
    }

    /// Counts the open minutes of the night starting on `date` 12:00 UTC, for 24 hours.
    fn open_minutes(s: &Schedule, from: &str) -> i64 {
        let start = at(from);
        (0..24 * 60).filter(|m| s.phase(start.checked_add((*m as i64).minutes()).unwrap()) == Phase::Open).count()
            as i64
    }

    #[test]
    fn daylight_saving_spring_forward_shortens_a_night_window() {
        // Europe/Berlin: 2026-03-29 02:00 → 03:00.
        let s = sched(r#"{"timezone": "Europe/Berlin", "window": {"from": "22:00", "to": "06:00"}}"#);
        assert_eq!(open_minutes(&s, "2026-03-28T12:00:00Z"), 7 * 60);
        assert_eq!(open_minutes(&s, "2026-03-21T12:00:00Z"), 8 * 60);
        // A window inside the gap never opens that night.
        let gap = sched(r#"{"timezone": "Europe/Berlin", "window": {"from": "02:15", "to": "02:45"}}"#);
        assert_eq!(open_minutes(&gap, "2026-03-28T12:00:00Z"), 0);
        assert_eq!(gap.phase(at("2026-03-27T01:20:00Z")), Phase::Open, "02:20 CET two days before");
    }

    #[test]
    fn daylight_saving_fall_back_lengthens_a_night_window() {
        // Europe/Berlin: 2026-10-25 03:00 → 02:00.
        let s = sched(r#"{"timezone": "Europe/Berlin", "window": {"from": "22:00", "to": "06:00"}}"#);
        assert_eq!(open_minutes(&s, "2026-10-24T12:00:00Z"), 9 * 60);
        // A window in the repeated hour is open both times.
        let twice = sched(r#"{"timezone": "Europe/Berlin", "window": {"from": "02:00", "to": "03:00"}}"#);
        assert_eq!(open_minutes(&twice, "2026-10-24T12:00:00Z"), 2 * 60);
        assert_eq!(twice.phase(at("2026-10-25T00:30:00Z")), Phase::Open, "02:30 CEST");
        assert_eq!(twice.phase(at("2026-10-25T01:30:00Z")), Phase::Open, "02:30 CET");
    }

    #[test]
    fn seed_seconds_of_day_map_onto_a_window() {
        let w = DailyWindow::from_seconds(3600, 7200).unwrap();
        assert_eq!((w.from.hour(), w.to.hour()), (1, 2));
        assert!(DailyWindow::from_seconds(86_400, 0).is_none());
    }

    #[test]
    fn seed_windows_keep_their_seconds() {
        let w = DailyWindow::from_seconds(3_661, 86_399).unwrap();
        let json = serde_json::to_value(w).unwrap();
        assert_eq!(json, serde_json::json!({"from": "01:01:01", "to": "23:59:59"}));
        assert_eq!(serde_json::from_value::<DailyWindow>(json).unwrap(), w, "a round trip keeps the seconds");
        let s = Schedule { start: None, end: None, timezone: utc(), days: vec![], window: Some(w) };
        assert_eq!(s.phase(at("2026-11-27T01:01:00Z")), Phase::Closed, "precise to the second");
        assert_eq!(s.phase(at("2026-11-27T01:01:01Z")), Phase::Open);
        assert_eq!(s.phase(at("2026-11-27T23:59:58Z")), Phase::Open);
        assert_eq!(s.phase(at("2026-11-27T23:59:59Z")), Phase::Closed, "86,399 is 23:59:59, not 23:59");
        assert_eq!(s.next_change(at("2026-11-27T12:00:00Z")), Some(at("2026-11-27T23:59:59Z")));
        let minutes: DailyWindow = serde_json::from_str(r#"{"from": "22:00", "to": "06:00"}"#).unwrap();
        assert_eq!(serde_json::to_string(&minutes).unwrap(), r#"{"from":"22:00","to":"06:00"}"#);
        for bad in ["22:00:", "22:00:60", "2:00", "22:00:00:00", "22:0a"] {
            assert!(hhmm::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn next_change_is_the_next_edge() {
        let s = sched(r#"{"timezone": "UTC", "window": {"from": "22:00", "to": "06:00"}}"#);
        assert_eq!(s.next_change(at("2026-11-27T12:00:00Z")), Some(at("2026-11-27T22:00:00Z")));
        assert_eq!(s.next_change(at("2026-11-27T23:00:00Z")), Some(at("2026-11-28T06:00:00Z")));
    }

    #[test]
    fn bad_zone_and_bad_times_are_refused() {
        let mut errors = vec![];
        sched(r#"{"timezone": "Mars/Olympus"}"#).validate(&mut errors);
        assert_eq!(errors.len(), 1);
        assert!(serde_json::from_str::<Schedule>(r#"{"window": {"from": "25:00", "to": "01:00"}}"#).is_err());
        assert!(serde_json::from_str::<Schedule>(r#"{"days": ["someday"]}"#).is_err());
    }
}
