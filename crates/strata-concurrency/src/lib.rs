//! StrataDB transactions (being built).
