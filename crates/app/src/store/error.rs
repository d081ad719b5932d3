use updraft_core::FieldError;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} `{id}` already exists")]
    Conflict { what: &'static str, id: String },
    #[error("{what} `{id}` is in use by {by}")]
    InUse { what: &'static str, id: String, by: String },
    #[error(transparent)]
    Invalid(#[from] updraft_core::Error),
    /// The write names rows that do not exist (a product, a device, ...): each
    /// reference, as a field error. Only when nothing else is wrong with the
    /// write; see [`StoreError::refuse`].
    #[error("{} reference(s) not found", .0.len())]
    Missing(Vec<FieldError>),
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound { what, id: id.into() }
    }

    pub fn conflict(what: &'static str, id: impl Into<String>) -> Self {
        StoreError::Conflict { what, id: id.into() }
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        StoreError::Invalid(updraft_core::Error::Invalid(errors))
    }

    /// Refuses a write for its problems: `Invalid` listing every one (the
    /// `missing` references last) when any field is `invalid`; `Missing` when
    /// every problem is a reference to a row that does not exist; `Ok` when
    /// there is none.
    pub fn refuse(mut invalid: Vec<FieldError>, missing: Vec<FieldError>) -> StoreResult<()> {
        if !invalid.is_empty() {
            invalid.extend(missing);
            Err(StoreError::invalid(invalid))
        } else if !missing.is_empty() {
            Err(StoreError::Missing(missing))
        } else {
            Ok(())
        }
    }
}
