//! Durations on the command line: `90s`, `10m`, `2h`, `1d`, combined (`1h30m`) or with
//! fractions (`1.5h`); a bare number keeps the unit the option always had, so scripts
//! written before units were accepted keep working.

use std::time::Duration;

/// A duration whose bare numbers are seconds (`--timeout 7200`, `--poll-interval 0.5`).
pub fn secs(s: &str) -> Result<Duration, String> {
    parse(s, 1.0)
}

/// A duration whose bare numbers are minutes (`--retry-interval 10`).
pub fn minutes(s: &str) -> Result<Duration, String> {
    parse(s, 60.0)
}

/// A duration in seconds that must be more than zero (intervals of things that repeat).
pub fn positive_secs(s: &str) -> Result<Duration, String> {
    match secs(s)? {
        d if d.is_zero() => Err(format!("expected a duration above zero, got {s:?}")),
        d => Ok(d),
    }
}

/// Whole minutes, for the API fields counted in minutes.
pub fn whole_minutes(d: Duration) -> anyhow::Result<u32> {
    anyhow::ensure!(
        d.as_secs().is_multiple_of(60) && d.subsec_nanos() == 0,
        "{} is not a whole number of minutes",
        describe(d)
    );
    u32::try_from(d.as_secs() / 60).map_err(|_| anyhow::anyhow!("{} is too long", describe(d)))
}

/// A duration as people write it: `1h30m`, `45s`, `0s`.
pub fn describe(d: Duration) -> String {
    let mut left = d.as_secs();
    let mut out = String::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= secs {
            out.push_str(&format!("{}{unit}", left / secs));
            left %= secs;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

fn parse(s: &str, bare_unit: f64) -> Result<Duration, String> {
    let bad = || format!("expected a duration like 90s, 10m, 2h or 1d, got {s:?}");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let number = |t: &str| t.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0);
    let total = if let Some(n) = number(text) {
        n * bare_unit
    } else {
        let mut total = 0.0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
            let value = number(&rest[..digits]).ok_or_else(bad)?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => 0.001,
                "s" | "sec" | "secs" => 1.0,
                "m" | "min" | "mins" => 60.0,
                "h" | "hr" | "hrs" => 3_600.0,
                "d" | "day" | "days" => 86_400.0,
                _ => return Err(bad()),
            };
            total += value * unit;
            rest = &rest[unit_len..];
        }
        total
    };
    if total >= 1e12 {
        return Err(format!("{s:?} is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_numbers() {
        assert_eq!(secs("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(secs("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(secs("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(secs("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(secs("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(secs("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(secs("7200"), Ok(Duration::from_secs(7200)));
        assert_eq!(secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(minutes("10"), Ok(Duration::from_secs(600)));
        assert_eq!(minutes("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "h", "10x", "-5", "1h-2m", "1..2s", "inf", "NaN"] {
            assert!(secs(bad).is_err(), "{bad:?}");
        }
        assert!(positive_secs("0").is_err());
    }

    #[test]
    fn minutes_must_be_whole() {
        assert_eq!(whole_minutes(Duration::from_secs(600)).unwrap(), 10);
        let err = whole_minutes(Duration::from_secs(90)).unwrap_err().to_string();
        assert_eq!(err, "1m30s is not a whole number of minutes");
        assert_eq!(describe(Duration::from_secs(90_061)), "1d1h1m1s");
    }
}
