//! Test-only observation points (cargo feature `test-hooks`, enabled only by the tests
//! package as a dev-dependency feature; no CLI flag and no plan field reaches them).
//!
//! A [`Probe`] attached to a [`crate::plan::ClientSetup`] records what the client knows anyway —
//! its decrypted shares — so that the leakage tests can check them on real sessions.

use std::sync::Mutex;

/// What one client session exposes to a test.
#[derive(Debug, Default)]
pub struct Probe {
    /// Per MPC step (in execution order, groups appended), the decrypted shares `a[value][image]`.
    pub shares: Mutex<Vec<Vec<Vec<u64>>>>,
}

impl Probe {
    pub(crate) fn record_shares(&self, shares: &[Vec<u64>]) {
        if let Ok(mut s) = self.shares.lock() {
            s.push(shares.to_vec());
        }
    }
}
