//! The error type of the public API.

/// Result alias used throughout StrataDB.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure the public API can report.
///
/// The variants are exactly those of the API reference. Messages name what was wrong
/// (the key, the path, the file and offset) so that an error can be acted upon without
/// a debugger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entity (key, document, version, collection, run…) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A value had another type than the operation needs.
    #[error("wrong type: expected {expected}, found {actual}")]
    WrongType {
        /// The type the operation needed.
        expected: String,
        /// The type that was found.
        actual: String,
    },
    /// A key is empty, too long or otherwise malformed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A JSONPath expression could not be parsed or cannot be applied.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A concurrent transaction changed data this one read. Retrying may succeed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Invalid input or a limit was exceeded.
    #[error("constraint violation: {0}")]
    ConstraintViolation(String),
    /// The run does not exist or does not accept the operation in its current state.
    #[error("run error: {0}")]
    RunError(String),
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A value could not be encoded or decoded.
    #[error("serialization error: {0}")]
    Serialization(String),
    /// The storage engine failed: corruption, a failed fsync (the database is then
    /// poisoned), a lock held by another process.
    #[error("storage error: {0}")]
    Storage(String),
    /// A bug in StrataDB. Please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// `true` when retrying the same operation may succeed (conflicts).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    /// `true` for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// `true` for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    /// `true` for errors the caller cannot fix by changing its input: I/O, storage
    /// (corruption, poisoning) and internal errors. The database should usually be
    /// closed and inspected.
    pub fn is_serious(&self) -> bool {
        matches!(self, Error::Io(_) | Error::Storage(_) | Error::Internal(_))
    }

    /// Shorthand for a [`Error::WrongType`].
    pub fn wrong_type(expected: impl Into<String>, actual: impl Into<String>) -> Self {
        Error::WrongType {
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = Error::Conflict("k".into());
        assert!(c.is_retryable() && c.is_conflict() && !c.is_serious() && !c.is_not_found());
        let n = Error::NotFound("k".into());
        assert!(n.is_not_found() && !n.is_retryable());
        assert!(Error::Storage("x".into()).is_serious());
        assert!(Error::Internal("x".into()).is_serious());
        assert!(Error::Io(std::io::Error::other("x")).is_serious());
        assert!(!Error::InvalidKey("x".into()).is_serious());
        let w = Error::wrong_type("Int", "String");
        assert_eq!(w.to_string(), "wrong type: expected Int, found String");
    }
}
