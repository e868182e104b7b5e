//! RNS-CKKS for mp2ml (see `docs/ARCHITECTURE.md`).
