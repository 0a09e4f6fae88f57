//! Run identifiers.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The id of a run: a UUID. Runs are the isolation namespaces of all data.
///
/// The default run has the fixed id [`RunId::DEFAULT`] (the nil UUID,
/// `00000000-0000-0000-0000-000000000000`), so it is the same in every database.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunId(Uuid);

impl RunId {
    /// The id of the default run, which always exists.
    pub const DEFAULT: RunId = RunId(Uuid::nil());

    /// A fresh random (v4) id.
    pub fn new() -> Self {
        RunId(Uuid::new_v4())
    }
    /// The id of the default run.
    pub fn default_run() -> Self {
        Self::DEFAULT
    }
    /// `true` for the default run's id.
    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }
    /// The 16 bytes of the UUID (big-endian, so byte order is the UUID's order).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
    /// From the 16 bytes of a UUID.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        RunId(Uuid::from_bytes(bytes))
    }
    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for RunId {
    /// A fresh random id (not the default run: use [`RunId::DEFAULT`] for that).
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for RunId {
    fn from(u: Uuid) -> Self {
        RunId(u)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({})", self.0.hyphenated())
    }
}

impl FromStr for RunId {
    type Err = crate::Error;
    /// Parses a UUID in any of its usual textual forms.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(RunId)
            .map_err(|e| crate::Error::InvalidKey(format!("invalid run id {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        let r = RunId::new();
        assert_eq!(r.to_string().parse::<RunId>().unwrap(), r);
        assert_ne!(RunId::new(), r);
        assert!(RunId::DEFAULT.is_default());
        assert_eq!(
            RunId::DEFAULT.to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert!("nope".parse::<RunId>().is_err());
        assert_eq!(RunId::from_bytes(*r.as_bytes()), r);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), r);
    }
}
