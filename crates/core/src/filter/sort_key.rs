//! An order-preserving text encoding of semantic versions, so that a database can
//! compare versions by semver precedence with plain string comparison (and an
//! index) instead of loading every device.

/// The sort key of `version` when it is a semantic version (a leading `v`
/// allowed, as [`crate::Version`] reads it), else `None`.
///
/// **Invariant:** for semantic versions `a` and `b`, comparing
/// `version_sort_key(a)` and `version_sort_key(b)` byte by byte (SQLite's
/// default `BINARY` collation, PostgreSQL's `COLLATE "C"`) gives the same order
/// as semver precedence, and the keys are equal exactly when the versions have
/// equal precedence (build metadata is ignored, as in [`crate::Version::compare`]).
///
/// The key is ASCII: major, minor and patch as 20 zero-padded digits each,
/// then `~` for a release or `-` and the pre-release identifiers for a
/// pre-release (`-` sorts before `~`, so pre-releases come first). Identifiers
/// are joined by `!`, which sorts before every identifier character, so a
/// shorter list of identifiers that is a prefix of a longer one sorts first;
/// numeric identifiers are `0`, their length in three digits, and their digits
/// (so they compare numerically, and before alphanumeric ones); alphanumeric
/// identifiers are `1` and the identifier (compared in ASCII order).
pub fn version_sort_key(version: &str) -> Option<String> {
    let v = semver::Version::parse(version.strip_prefix('v').unwrap_or(version)).ok()?;
    let mut key = format!("{:020}.{:020}.{:020}", v.major, v.minor, v.patch);
    if v.pre.is_empty() {
        key.push('~');
        return Some(key);
    }
    key.push('-');
    for (i, ident) in v.pre.as_str().split('.').enumerate() {
        if i > 0 {
            key.push('!');
        }
        if ident.bytes().all(|b| b.is_ascii_digit()) {
            if ident.len() > 999 {
                return None;
            }
            key.push_str(&format!("0{:03}{ident}", ident.len()));
        } else {
            key.push('1');
            key.push_str(ident);
        }
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use proptest::prelude::*;

    use super::*;
    use crate::Version;

    #[test]
    fn keys_order_as_semver() {
        let ordered = [
            "0.9.0",
            "1.0.0-0",
            "1.0.0-2",
            "1.0.0-10",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.9.0",
            "1.10.0",
            "v2.0.0",
        ];
        let keys: Vec<_> = ordered.iter().map(|v| version_sort_key(v).unwrap()).collect();
        for w in keys.windows(2) {
            assert!(w[0] < w[1], "{} < {}", w[0], w[1]);
        }
        assert_eq!(version_sort_key("1.0.0+build.5"), version_sort_key("v1.0.0"));
        assert_eq!(version_sort_key("build-7"), None);
        assert_eq!(version_sort_key("1.2"), None);
    }

    fn arb_semver() -> impl Strategy<Value = String> {
        let ident = prop_oneof![
            (0u64..30).prop_map(|n| n.to_string()),
            "[0-9]{5,25}".prop_filter("no leading zeros", |s| !s.starts_with('0')),
            "[a-z-]{1,3}",
            "[A-Za-z0-9-]{1,4}".prop_filter("not numeric", |s| !s.bytes().all(|b| b.is_ascii_digit())),
        ];
        (0u64..3, 0u64..12, prop_oneof![0u64..3, Just(u64::MAX)], prop::collection::vec(ident, 0..4), any::<bool>())
            .prop_map(|(a, b, c, pre, v)| {
                let mut s = format!("{}{a}.{b}.{c}", if v { "v" } else { "" });
                if !pre.is_empty() {
                    s.push('-');
                    s.push_str(&pre.join("."));
                }
                s
            })
    }

    proptest! {
        #[test]
        fn key_order_is_semver_precedence(a in arb_semver(), b in arb_semver()) {
            let (ka, kb) = (version_sort_key(&a).unwrap(), version_sort_key(&b).unwrap());
            let expected = Version::new(&a).compare(&Version::new(&b)).unwrap();
            prop_assert_eq!(ka.cmp(&kb), expected, "{} vs {}: {} vs {}", a, b, ka, kb);
            prop_assert_eq!(ka == kb, expected == Ordering::Equal);
        }
    }
}
