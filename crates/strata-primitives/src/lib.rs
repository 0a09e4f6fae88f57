//! StrataDB primitives (being built).
