//! Rules for identifiers and inputs, shared by every front door.
//! Each function returns every broken rule it finds, not just the first.

use std::sync::LazyLock;

use regex::Regex;

use crate::{DeviceAttributes, FieldError, PropertyValue};

pub const MAX_FIRMWARE_FILES: usize = 50;
pub const MAX_PROPERTIES: usize = 200;
pub const MAX_METADATA: usize = 100;
pub const MAX_DESCRIPTION: usize = 2028;
const MAX_VALUE: usize = 1024;

fn matches(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// Device ids (DSN, device key, thing name): `[A-Za-z0-9_.:-]{1,128}`.
pub fn device_id(field: &str, s: &str, errors: &mut Vec<FieldError>) {
    if !matches(s, 128, &['_', '.', ':', '-']) {
        errors.push(FieldError::new(field, "must be 1 to 128 characters of A-Z, a-z, 0-9, `_`, `.`, `:` or `-`"));
    }
}

/// Keys of products, groups, firmware and jobs: `[A-Za-z0-9_-]{1,128}`.
pub fn key(field: &str, s: &str, errors: &mut Vec<FieldError>) {
    if !matches(s, 128, &['_', '-']) {
        errors.push(FieldError::new(field, "must be 1 to 128 characters of A-Z, a-z, 0-9, `_` or `-`"));
    }
}

/// Tenant names: `[A-Za-z0-9_-]{1,64}`, matched case-insensitively.
pub fn tenant_name(field: &str, s: &str, errors: &mut Vec<FieldError>) {
    if !matches(s, 64, &['_', '-']) {
        errors.push(FieldError::new(field, "must be 1 to 64 characters of A-Z, a-z, 0-9, `_` or `-`"));
    }
}

/// Names of components, properties and metadata keys: `[A-Za-z0-9_.-]{1,64}`.
pub fn attribute_name(field: &str, s: &str, errors: &mut Vec<FieldError>) {
    if !matches(s, 64, &['_', '.', '-']) {
        errors.push(FieldError::new(field, "names must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`"));
    }
}

/// Unicode's "other" characters (`\p{C}`): controls, format characters (the
/// bidirectional overrides and isolates, zero-width spaces and joiners, the byte
/// order mark), private use and unassigned code points. A text shown to people
/// never needs them, and the invisible ones can make a name read as another.
static OTHER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\p{C}").expect("a valid pattern"));

const NO_OTHER: &str =
    "must not contain control, format (bidirectional or zero-width), private-use or unassigned characters";

/// Whether `s` holds a character of `\p{C}` other than those `allowed`.
fn has_other(s: &str, allowed: &[char]) -> bool {
    OTHER.find_iter(s).any(|m| !m.as_str().chars().all(|c| allowed.contains(&c)))
}

/// A short human text (names, versions of hardware and modules): seed 002's
/// `[^\p{C}]+`, at most `max` characters.
pub fn text(field: &str, s: &str, max: usize, errors: &mut Vec<FieldError>) {
    if s.is_empty() || s.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be 1 to {max} characters")));
    } else if has_other(s, &[]) {
        errors.push(FieldError::new(field, NO_OTHER));
    }
}

/// A description: one paragraph, seed 002's `[^\p{C}]+` (no line breaks either), at most `max` characters.
pub fn description(field: &str, s: &str, max: usize, errors: &mut Vec<FieldError>) {
    text(field, s, max, errors);
}

/// A longer free text (release notes, metadata and property values) that may hold
/// line breaks and tabs, but no other character of `\p{C}`.
pub fn long_text(field: &str, s: &str, max: usize, errors: &mut Vec<FieldError>) {
    if s.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if has_other(s, &['\n', '\r', '\t']) {
        errors.push(FieldError::new(field, NO_OTHER));
    }
}

/// Key/value metadata.
pub fn metadata<'a>(
    field: &str,
    entries: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
    errors: &mut Vec<FieldError>,
) {
    if entries.len() > MAX_METADATA {
        errors.push(FieldError::new(field, format!("at most {MAX_METADATA} entries")));
    }
    for (k, v) in entries {
        attribute_name(&format!("{field}.{k}"), k, errors);
        long_text(&format!("{field}.{k}"), v, MAX_VALUE, errors);
    }
}

/// The attributes of a device, as registered or updated.
pub fn device_attributes(a: &DeviceAttributes, errors: &mut Vec<FieldError>) {
    for (component, version) in &a.firmware {
        attribute_name(&format!("firmware.{component}"), component, errors);
        text(&format!("firmware.{component}"), version, 128, errors);
    }
    for (field, value) in [
        ("hardware_version", &a.hardware_version),
        ("module_model", &a.module_model),
        ("module_version", &a.module_version),
        ("template_id", &a.template_id),
    ] {
        if let Some(v) = value {
            text(field, v, 128, errors);
        }
    }
    if a.properties.len() > MAX_PROPERTIES {
        errors.push(FieldError::new("properties", format!("at most {MAX_PROPERTIES} properties")));
    }
    for (name, value) in &a.properties {
        let field = format!("properties.{name}");
        attribute_name(&field, name, errors);
        match value {
            PropertyValue::String(s) => long_text(&field, s, MAX_VALUE, errors),
            PropertyValue::Number(n) if !n.is_finite() => {
                errors.push(FieldError::new(field, "must be a finite number"))
            }
            _ => {}
        }
    }
    metadata("metadata", a.metadata.iter(), errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let mut e = vec![];
        device_id("id", "DSN-0001:a.b_c", &mut e);
        key("id", "job_1-a", &mut e);
        assert!(e.is_empty());
        device_id("id", "", &mut e);
        device_id("id", "has space", &mut e);
        device_id("id", &"x".repeat(129), &mut e);
        key("id", "a.b", &mut e);
        assert_eq!(e.len(), 4);
    }

    #[test]
    fn names_and_descriptions_refuse_invisible_and_control_characters() {
        let refused = |f: fn(&str, &str, usize, &mut Vec<FieldError>), s: &str| {
            let mut e = vec![];
            f("x", s, 100, &mut e);
            !e.is_empty()
        };
        for ok in ["Spring release", "Frühling 🌱", "日本語の説明", "a-b_c.d"] {
            assert!(!refused(text, ok) && !refused(description, ok) && !refused(long_text, ok), "{ok}");
        }
        for bad in [
            "evil\u{202E}txt.exe", // right-to-left override
            "a\u{2066}b",          // left-to-right isolate
            "pay\u{200B}pal",      // zero-width space
            "a\u{200D}b",          // zero-width joiner
            "\u{FEFF}bom",         // byte order mark
            "soft\u{00AD}hyphen",  // soft hyphen (format)
            "bell\u{7}",
            "nul\u{0}",
            "private\u{E000}",
            "unassigned\u{0378}",
        ] {
            assert!(refused(text, bad) && refused(description, bad) && refused(long_text, bad), "{bad:?}");
        }
        assert!(refused(description, "two\nlines"), "a description is [^\\p{{C}}]+");
        assert!(refused(text, "tab\there"));
        assert!(!refused(long_text, "notes\r\n- line\twith tab"), "release notes keep their lines");
        assert!(refused(description, ""), "at least one character");
    }

    #[test]
    fn attributes_report_every_problem() {
        let mut a = DeviceAttributes::default();
        a.firmware.insert("bad name".into(), "1.0".into());
        a.properties.insert("ok".into(), PropertyValue::Number(f64::NAN));
        a.metadata.insert("k".into(), "v".into());
        a.hardware_version = Some(String::new());
        let mut e = vec![];
        device_attributes(&a, &mut e);
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["firmware.bad name", "hardware_version", "properties.ok"]);
    }
}
