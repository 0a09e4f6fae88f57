//! A value together with the version and time of the write that produced it.
use crate::{Timestamp, Value, Version};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// What every read returns: the value plus the version and time of the write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The data.
    pub value: T,
    /// Which write produced it.
    pub version: Version,
    /// When that write was committed (microseconds since the Unix epoch).
    pub timestamp: Timestamp,
}

impl<T> Versioned<T> {
    /// Wraps a value.
    pub fn new(value: T, version: Version, timestamp: Timestamp) -> Self {
        Versioned {
            value,
            version,
            timestamp,
        }
    }
    /// A reference to the value.
    pub fn value(&self) -> &T {
        &self.value
    }
    /// Consumes the wrapper and returns the value.
    pub fn into_value(self) -> T {
        self.value
    }
    /// The version of the write.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The commit time of the write.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    /// How long ago the write happened, or `None` if its timestamp lies in the future
    /// (the clock went backwards).
    pub fn age(&self) -> Option<Duration> {
        self.timestamp.duration_until(Timestamp::now())
    }
    /// `true` if the write is older than `dur`. A write from the future is never older.
    pub fn is_older_than(&self, dur: Duration) -> bool {
        self.age().is_some_and(|age| age > dur)
    }
    /// Transforms the value, keeping version and timestamp.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Versioned<U> {
        Versioned {
            value: f(self.value),
            version: self.version,
            timestamp: self.timestamp,
        }
    }
}

/// Convenience accessors that delegate to the inner [`Value`].
impl Versioned<Value> {
    /// See [`Value::as_str`].
    pub fn as_str(&self) -> Option<&str> {
        self.value.as_str()
    }
    /// See [`Value::as_int`].
    pub fn as_int(&self) -> Option<i64> {
        self.value.as_int()
    }
    /// See [`Value::as_float`].
    pub fn as_float(&self) -> Option<f64> {
        self.value.as_float()
    }
    /// See [`Value::as_bool`].
    pub fn as_bool(&self) -> Option<bool> {
        self.value.as_bool()
    }
    /// See [`Value::as_bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.value.as_bytes()
    }
    /// See [`Value::as_array`].
    pub fn as_array(&self) -> Option<&[Value]> {
        self.value.as_array()
    }
    /// See [`Value::as_object`].
    pub fn as_object(&self) -> Option<&HashMap<String, Value>> {
        self.value.as_object()
    }
    /// See [`Value::is_null`].
    pub fn is_null(&self) -> bool {
        self.value.is_null()
    }
    /// See [`Value::is_string`].
    pub fn is_string(&self) -> bool {
        self.value.is_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_and_age() {
        let v = Versioned::new(Value::from("a"), Version::Txn(3), Timestamp::now());
        assert_eq!(v.as_str(), Some("a"));
        assert!(v.is_string() && !v.is_null());
        assert_eq!(v.as_int(), None);
        assert_eq!(v.version(), Version::Txn(3));
        assert!(v.age().is_some());
        assert!(!v.is_older_than(Duration::from_secs(3600)));
        let old = Versioned::new(Value::Null, Version::Txn(1), Timestamp(1));
        assert!(old.is_older_than(Duration::from_secs(1)));
        assert!(old.is_null());
        let future = Versioned::new(1, Version::Txn(1), Timestamp(u64::MAX));
        assert_eq!(future.age(), None);
        assert!(!future.is_older_than(Duration::ZERO));
        assert_eq!(*future.value(), 1);
        assert_eq!(future.map(|x| x + 1).into_value(), 2);
    }
}
