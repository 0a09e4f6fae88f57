//! StrataDB storage (being built).
