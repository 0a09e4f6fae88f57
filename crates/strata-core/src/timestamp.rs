//! Wall-clock timestamps.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time. A clock set before 1970 reads as the epoch.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }
    /// From microseconds since the epoch.
    pub fn from_micros(micros: u64) -> Self {
        Timestamp(micros)
    }
    /// Microseconds since the epoch.
    pub fn as_micros(&self) -> u64 {
        self.0
    }
    /// Milliseconds since the epoch (truncated).
    pub fn as_millis(&self) -> u64 {
        self.0 / 1_000
    }
    /// Time elapsed from `self` to `later`, or `None` if `later` is earlier.
    pub fn duration_until(&self, later: Timestamp) -> Option<Duration> {
        later.0.checked_sub(self.0).map(Duration::from_micros)
    }
    /// This timestamp moved back by `d`, saturating at the epoch.
    pub fn saturating_sub(&self, d: Duration) -> Timestamp {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(micros))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let micros = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        Timestamp(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        UNIX_EPOCH + Duration::from_micros(t.0)
    }
}

impl fmt::Display for Timestamp {
    /// Renders as microseconds since the epoch.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros() {
        let t = Timestamp::now();
        assert!(t.as_micros() > 1_600_000_000_000_000);
        let back: SystemTime = t.into();
        assert_eq!(Timestamp::from(back), t);
        assert_eq!(
            Timestamp(5).duration_until(Timestamp(7)),
            Some(Duration::from_micros(2))
        );
        assert_eq!(Timestamp(7).duration_until(Timestamp(5)), None);
        assert_eq!(
            Timestamp(5).saturating_sub(Duration::from_secs(1)),
            Timestamp(0)
        );
    }
}
