//! Test-only observation points (cargo feature `test-hooks`, enabled only by the tests
//! package as a dev-dependency feature; no CLI flag and no plan field reaches them).
//!
//! A [`Probe`] attached to a [`crate::plan::ClientSetup`] records what the client knows anyway —
//! its decrypted shares, and the noise of its own encryptions as far as it can compute it — so
//! that the leakage tests can check them on real sessions and regress the outputs on them.
//! [`crate::plan::ServerSetup::weaken_for_tests`] switches protections of the server off
//! ([`Weakened`]) and [`crate::plan::accept_untruncated_for_tests`] lets a plan without
//! truncation load, for the positive controls of those tests.

use std::sync::Mutex;

pub use crate::he2mpc::Weakened;

impl crate::plan::ServerSetup {
    /// Test-only (feature `test-hooks`): runs the following sessions with the protections in
    /// `w` switched off (`Weakened::default()` restores the shipped protocol).
    pub fn weaken_for_tests(&mut self, w: Weakened) {
        self.weakened = w;
    }
}

/// What one client session exposes to a test.
#[derive(Debug, Default)]
pub struct Probe {
    /// Per MPC step (in execution order, groups appended), the decrypted shares `a[value][image]`.
    pub shares: Mutex<Vec<Vec<Vec<u128>>>>,
    /// The noise e the client knows of its own encryptions ([`crate::mpc2he`]'s
    /// `own_noise`). Batch packing: per
    /// batch of client encryptions (per group: the input, then each MPC step's
    /// re-encryptions), `[value][image]`. Image packing: per image and upload in wire order,
    /// `[polynomial][coefficient]`.
    pub noise: Mutex<Vec<Vec<Vec<i64>>>>,
}

impl Probe {
    pub(crate) fn record_noise(&self, noise: Vec<Vec<i64>>) {
        if let Ok(mut n) = self.noise.lock() {
            n.push(noise);
        }
    }

    pub(crate) fn record_shares(&self, shares: &[Vec<u128>]) {
        if let Ok(mut s) = self.shares.lock() {
            s.push(shares.to_vec());
        }
    }
}
