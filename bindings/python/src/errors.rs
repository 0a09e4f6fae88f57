//! The Python exception hierarchy, one class per variant of `stratadb::Error`.
//!
//! ```text
//! StrataError
//! ├── NotFoundError
//! ├── WrongTypeError
//! ├── InvalidKeyError
//! ├── InvalidPathError
//! ├── ConflictError          (retryable = True)
//! ├── ConstraintViolationError
//! ├── RunError
//! ├── IoError, StorageError
//! ├── SerializationError
//! ├── InternalError
//! └── ClosedError           (the database was closed)
//! ```
//!
//! The classes are created here (so the extension can raise them) with `StrataError` as
//! the only base; `stratadb/__init__.py` re-exports them. Every class has a
//! `retryable` attribute (`True` only for `ConflictError`).
use pyo3::create_exception;
use pyo3::prelude::*;
use stratadb::Error;

create_exception!(
    _stratadb,
    StrataError,
    pyo3::exceptions::PyException,
    "Base class of every StrataDB error."
);
create_exception!(
    _stratadb,
    NotFoundError,
    StrataError,
    "An entity (key, document, version, collection, run) does not exist."
);
create_exception!(
    _stratadb,
    WrongTypeError,
    StrataError,
    "A value had another type than the operation needs."
);
create_exception!(
    _stratadb,
    InvalidKeyError,
    StrataError,
    "A key is empty, too long or contains a NUL character."
);
create_exception!(
    _stratadb,
    InvalidPathError,
    StrataError,
    "A JSONPath expression could not be parsed or applied."
);
create_exception!(
    _stratadb,
    ConflictError,
    StrataError,
    "A concurrent transaction changed data this one read; retrying may succeed."
);
create_exception!(
    _stratadb,
    ConstraintViolationError,
    StrataError,
    "Invalid input or a limit was exceeded."
);
create_exception!(
    _stratadb,
    RunError,
    StrataError,
    "The run does not exist or does not accept the operation in its state."
);
create_exception!(
    _stratadb,
    IoError,
    StrataError,
    "An operating-system I/O error."
);
create_exception!(
    _stratadb,
    SerializationError,
    StrataError,
    "A value could not be encoded or decoded."
);
create_exception!(
    _stratadb,
    StorageError,
    StrataError,
    "The storage engine failed (corruption, failed fsync, lock held by another process)."
);
create_exception!(_stratadb, InternalError, StrataError, "A bug in StrataDB.");
create_exception!(
    _stratadb,
    ClosedError,
    StrataError,
    "The database was closed."
);

/// Converts an engine error into the matching Python exception.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotFound(_) => NotFoundError::new_err(msg),
        Error::WrongType { .. } => WrongTypeError::new_err(msg),
        Error::InvalidKey(_) => InvalidKeyError::new_err(msg),
        Error::InvalidPath(_) => InvalidPathError::new_err(msg),
        Error::Conflict(_) => ConflictError::new_err(msg),
        Error::ConstraintViolation(_) => ConstraintViolationError::new_err(msg),
        Error::RunError(_) => RunError::new_err(msg),
        Error::Io(_) => IoError::new_err(msg),
        Error::Serialization(_) => SerializationError::new_err(msg),
        Error::Storage(_) => StorageError::new_err(msg),
        _ => InternalError::new_err(msg),
    }
}

/// `?`-friendly conversion of a `stratadb::Result`.
pub trait IntoPy<T> {
    /// Maps the error to its Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for stratadb::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("StrataError", py.get_type::<StrataError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("WrongTypeError", py.get_type::<WrongTypeError>())?;
    m.add("InvalidKeyError", py.get_type::<InvalidKeyError>())?;
    m.add("InvalidPathError", py.get_type::<InvalidPathError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add(
        "ConstraintViolationError",
        py.get_type::<ConstraintViolationError>(),
    )?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("SerializationError", py.get_type::<SerializationError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    // `retryable` on every class: False, except on ConflictError.
    py.get_type::<StrataError>().setattr("retryable", false)?;
    py.get_type::<ConflictError>().setattr("retryable", true)?;
    Ok(())
}
