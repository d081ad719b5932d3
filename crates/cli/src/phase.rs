//! `--phase` on the command line: one phase of a job as `SHARE[,OPTION…]`.
//!
//! SHARE is `5%` (of the job's devices, cumulative), `20` (devices) or `rest`
//! (the last phase). Options: `manual` (an operator approves with `job
//! next-phase`), `success=95` (percent of the finished that must succeed),
//! `min=20` (finished executions before the success rate counts), `wait=1h`
//! (soak time after the phase completed), `errors=10` (pause the job when
//! failures reach 10 %), `errors-min=5`, `name=canary`.

use updraft_core::phase::{ErrorThreshold, Phase};

use crate::duration;

/// Reads one `--phase` value.
pub fn parse(s: &str) -> Result<Phase, String> {
    let mut parts = s.split(',').map(str::trim);
    let share = parts.next().unwrap_or_default();
    let mut phase = Phase::default();
    match share {
        "rest" | "" => {}
        p if p.ends_with('%') => {
            let n: f64 = p.trim_end_matches('%').parse().map_err(|_| format!("{p:?} is not a percentage"))?;
            phase.percent = Some(n);
        }
        n => phase.devices = Some(n.parse().map_err(|_| format!("{n:?} is not a share: 5%, 20 (devices) or rest"))?),
    }
    let mut errors: Option<ErrorThreshold> = None;
    for option in parts {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let number = |what: &str| value.parse::<f64>().map_err(|_| format!("{what}={value:?} is not a number"));
        match key {
            "manual" => phase.gate.manual = true,
            "success" => phase.gate.success_percent = Some(number("success")?),
            "min" => {
                phase.gate.min_finished = Some(value.parse().map_err(|_| format!("min={value:?} is not a count"))?)
            }
            "wait" => phase.gate.wait_seconds = Some(duration::secs(value)?.as_secs()),
            "errors" => {
                errors.get_or_insert(ErrorThreshold { percent: 0.0, min_finished: 1 }).percent = number("errors")?
            }
            "errors-min" => {
                errors.get_or_insert(ErrorThreshold { percent: 0.0, min_finished: 1 }).min_finished =
                    value.parse().map_err(|_| format!("errors-min={value:?} is not a count"))?
            }
            "name" => phase.name = Some(value.to_owned()),
            other => {
                return Err(format!(
                    "unknown phase option {other:?}: manual, success=PERCENT, min=COUNT, wait=DURATION, \
                     errors=PERCENT, errors-min=COUNT, name=NAME"
                ));
            }
        }
    }
    if let Some(e) = errors {
        if e.percent == 0.0 {
            return Err("errors-min needs errors=PERCENT".into());
        }
        phase.error_threshold = Some(e);
    }
    Ok(phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_gates_and_thresholds() {
        let p = parse("20,manual,name=canary").unwrap();
        assert_eq!((p.devices, p.gate.manual, p.name.as_deref()), (Some(20), true, Some("canary")));
        let p = parse("10%,success=95,min=50,wait=1h,errors=5,errors-min=20").unwrap();
        assert_eq!(p.percent, Some(10.0));
        assert_eq!(
            (p.gate.success_percent, p.gate.min_finished, p.gate.wait_seconds),
            (Some(95.0), Some(50), Some(3600))
        );
        assert_eq!(p.error_threshold, Some(ErrorThreshold { percent: 5.0, min_finished: 20 }));
        assert_eq!(parse("rest").unwrap(), Phase::default());
        assert!(parse("ten").unwrap_err().contains("not a share"));
        assert!(parse("5%,soon").unwrap_err().contains("unknown phase option"));
    }
}
