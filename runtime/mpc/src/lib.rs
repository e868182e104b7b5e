//! Secure two-party computation for mp2ml's non-linear layers (see `docs/ARCHITECTURE.md`).
