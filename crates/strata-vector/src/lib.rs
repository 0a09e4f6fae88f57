//! StrataDB vectors (being built).
