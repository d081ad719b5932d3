//! Firmware versions: semantic versions compared as semver, or free-form
//! strings that a product opts into, compared for equality only.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// How a product's firmware versions are written and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VersionScheme {
    /// Semantic versions (`1.2.3`, `2.0.0-rc.1`); a leading `v` is accepted.
    #[default]
    Semver,
    /// Any non-empty string without control characters; only equality is defined.
    Free,
}

impl VersionScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionScheme::Semver => "semver",
            VersionScheme::Free => "free",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "semver" => Some(Self::Semver),
            "free" => Some(Self::Free),
            _ => None,
        }
    }
}

/// A version as written, with its semantic reading when it has one.
#[derive(Debug, Clone)]
pub struct Version {
    raw: String,
    semver: Option<semver::Version>,
}

impl Version {
    /// Reads `s` as a version; any non-empty string is a version, semver or not.
    pub fn new(s: &str) -> Self {
        let semver = semver::Version::parse(s.strip_prefix('v').unwrap_or(s)).ok();
        Self { raw: s.to_owned(), semver }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn is_semver(&self) -> bool {
        self.semver.is_some()
    }

    /// Compares two versions: semver order when both are semver, otherwise
    /// `None` unless they are the same string.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match (&self.semver, &other.semver) {
            (Some(a), Some(b)) => Some(a.cmp_precedence(b)),
            _ if self.raw == other.raw => Some(Ordering::Equal),
            _ => None,
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.compare(other) == Some(Ordering::Equal)
    }
}

/// Checks that `s` is a valid version under `scheme`.
pub fn validate(s: &str, scheme: VersionScheme) -> Result<(), String> {
    if s.is_empty() || s.len() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    match scheme {
        VersionScheme::Free => Ok(()),
        VersionScheme::Semver if Version::new(s).is_semver() => Ok(()),
        VersionScheme::Semver => Err(format!(
            "`{s}` is not a semantic version (like 1.4.2); products with version_scheme \"free\" accept any version"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_comparison_is_numeric() {
        assert_eq!(Version::new("1.10.0").compare(&Version::new("1.9.0")), Some(Ordering::Greater));
        assert_eq!(Version::new("v2.0.0").compare(&Version::new("2.0.0")), Some(Ordering::Equal));
        assert_eq!(Version::new("2.0.0-rc.1").compare(&Version::new("2.0.0")), Some(Ordering::Less));
        assert_eq!(Version::new("build-7").compare(&Version::new("build-8")), None);
        assert_eq!(Version::new("build-7"), Version::new("build-7"));
    }

    #[test]
    fn validation() {
        assert!(validate("1.2.3", VersionScheme::Semver).is_ok());
        assert!(validate("1.2", VersionScheme::Semver).is_err());
        assert!(validate("1.2", VersionScheme::Free).is_ok());
        assert!(validate("", VersionScheme::Free).is_err());
        assert!(validate("a\nb", VersionScheme::Free).is_err());
    }
}
