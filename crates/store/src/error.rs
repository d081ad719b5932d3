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
}
