//! How use cases read the texts they are given.

/// Trims an optional text and treats an empty one as absent.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}
