//! What a device reports about itself through the device API (hawkBit's
//! `configData`), and how it lands in the device record.
//!
//! Keys map onto the record: `fw.<component>` (or `firmware.<component>`) is
//! the installed version of that component; `hardware_version` (also
//! `hw_version`, `hwRevision`), `module_model`, `module_version` and
//! `template_id` set those fields; any other key becomes a string property.

use std::collections::BTreeMap;

use crate::{Device, FieldError, PropertyValue};

/// How reported attributes combine with what the record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Set the given keys, keep the others.
    Merge,
    /// The given keys are all the device has: properties not given are removed.
    Replace,
    /// Remove the given keys.
    Remove,
}

pub const MAX_ATTRIBUTES: usize = 100;
const MAX_LEN: usize = 128;

/// Checks reported attributes as hawkBit does: at most 100, keys and values
/// of at most 128 characters, no control characters except white space.
pub fn validate(data: &BTreeMap<String, String>) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if data.is_empty() {
        errors.push(FieldError::new("data", "must not be empty"));
    }
    if data.len() > MAX_ATTRIBUTES {
        errors.push(FieldError::new("data", format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    for (k, v) in data {
        let bad = |s: &str| s.chars().count() > MAX_LEN || s.chars().any(|c| c.is_control() && !c.is_whitespace());
        if k.is_empty() || bad(k) || bad(v) {
            errors.push(FieldError::new(
                format!("data.{k}"),
                format!("keys (not empty) and values must be at most {MAX_LEN} characters without control characters"),
            ));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

enum Target<'a> {
    Firmware(&'a str),
    Field(fn(&mut Device) -> &mut Option<String>),
    Property(&'a str),
}

fn target(key: &str) -> Target<'_> {
    if let Some(c) = key.strip_prefix("fw.").or_else(|| key.strip_prefix("firmware.")) {
        return Target::Firmware(c);
    }
    match key {
        "hardware_version" | "hw_version" | "hwRevision" => Target::Field(|d| &mut d.hardware_version),
        "module_model" => Target::Field(|d| &mut d.module_model),
        "module_version" => Target::Field(|d| &mut d.module_version),
        "template_id" => Target::Field(|d| &mut d.template_id),
        other => Target::Property(other),
    }
}

/// Applies reported attributes to a device record.
pub fn apply(device: &mut Device, mode: Mode, data: &BTreeMap<String, String>) {
    if mode == Mode::Replace {
        device.properties.retain(|_, v| !matches!(v, PropertyValue::String(_)));
    }
    for (k, v) in data {
        match (target(k), mode) {
            (Target::Firmware(c), Mode::Remove) => {
                device.firmware.remove(c);
            }
            (Target::Firmware(c), _) => {
                device.firmware.insert(c.to_owned(), v.clone());
            }
            (Target::Field(f), Mode::Remove) => *f(device) = None,
            (Target::Field(f), _) => *f(device) = Some(v.clone()),
            (Target::Property(p), Mode::Remove) => {
                device.properties.remove(p);
            }
            (Target::Property(p), _) => {
                device.properties.insert(p.to_owned(), PropertyValue::String(v.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectionStatus, Device};

    fn device() -> Device {
        let t = jiff::Timestamp::UNIX_EPOCH;
        Device {
            id: "d".into(),
            product: "p".into(),
            firmware: BTreeMap::from([("host".into(), "1.0.0".into())]),
            hardware_version: None,
            module_model: None,
            module_version: None,
            template_id: None,
            properties: BTreeMap::from([
                ("temp".into(), PropertyValue::Number(1.0)),
                ("old".into(), PropertyValue::String("x".into())),
            ]),
            metadata: BTreeMap::new(),
            activated_at: None,
            last_seen_at: None,
            connection_status: ConnectionStatus::Online,
            created_at: t,
            updated_at: t,
        }
    }

    fn data(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn keys_map_onto_the_record() {
        let mut d = device();
        apply(
            &mut d,
            Mode::Merge,
            &data(&[("fw.host", "2.0.0"), ("fw.wifi", "7"), ("hwRevision", "B"), ("region", "eu")]),
        );
        assert_eq!(d.firmware, data(&[("host", "2.0.0"), ("wifi", "7")]));
        assert_eq!(d.hardware_version.as_deref(), Some("B"));
        assert_eq!(d.properties["region"], PropertyValue::String("eu".into()));
        assert_eq!(d.properties["old"], PropertyValue::String("x".into()));
        apply(&mut d, Mode::Replace, &data(&[("region", "us")]));
        assert!(!d.properties.contains_key("old"), "replace drops reported properties not given");
        assert_eq!(d.properties["temp"], PropertyValue::Number(1.0), "typed properties set by the operator stay");
        apply(&mut d, Mode::Remove, &data(&[("region", ""), ("fw.wifi", ""), ("hw_version", "")]));
        assert!(
            !d.properties.contains_key("region") && !d.firmware.contains_key("wifi") && d.hardware_version.is_none()
        );
    }

    #[test]
    fn validation() {
        assert!(validate(&data(&[("a", "b")])).is_ok());
        assert!(validate(&BTreeMap::new()).is_err());
        assert!(validate(&data(&[("a", &"x".repeat(129))])).is_err());
        assert!(validate(&data(&[("a\u{1}", "b")])).is_err());
        let many: BTreeMap<String, String> = (0..101).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(validate(&many).is_err());
    }
}
