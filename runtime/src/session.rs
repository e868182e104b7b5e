//! What both parties must agree on without talking: batching into ciphertext groups and the
//! choice between garbling everything ahead (offline first) and streaming per step.

use std::time::Duration;

use mp2ml_ir::plan::{ClientPlan, MpcBackend, MpcStep};

/// Largest number of images one session accepts.
pub const MAX_IMAGES: usize = 1 << 20;

/// Garbled tables the evaluator may hold at once when garbling ahead of the input. Both
/// parties use this same constant, so they take the same decision.
pub const TABLE_BUDGET: u64 = 1 << 30;

/// Settings of a session.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    /// How long to wait for the peer at any step before giving up.
    pub timeout: Duration,
    /// Minimum accepted security level in bits.
    pub min_security: u32,
    /// Show a progress bar on stderr (the CLI sets it when stderr is a terminal).
    pub progress: bool,
    /// Run every MPC step with this back end instead of the plan's choice (`--mpc`); the
    /// client announces it in its hello and the server refuses a session whose override
    /// differs from its own.
    pub mpc: Option<MpcBackend>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            timeout: Duration::from_secs(60),
            min_security: 128,
            progress: false,
            mpc: None,
        }
    }
}

/// Images per ciphertext group: ⌈images / N⌉ groups of at most N.
pub fn groups(images: usize, n: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut left = images;
    while left > 0 {
        let b = left.min(n);
        v.push(b);
        left -= b;
    }
    v
}

/// The back end a step runs with: the plan's choice unless overridden.
pub fn backend(step: &MpcStep, opts: &SessionOptions) -> MpcBackend {
    opts.mpc.unwrap_or(step.backend)
}

/// AND gates of all circuits of a group of `images` images, with each step's back end
/// (`only`: count the steps of this back end only).
pub fn and_gates_of(
    plan: &ClientPlan,
    images: usize,
    opts: &SessionOptions,
    only: Option<MpcBackend>,
) -> u64 {
    plan.mpc_steps
        .iter()
        .filter(|s| only.is_none_or(|b| backend(s, opts) == b))
        .map(|s| {
            let ands = crate::backend::step_circuit(plan, s, opts)
                .map_or(0, |(_, c)| c.circuit.stats().and);
            ands * (s.instances * images) as u64
        })
        .sum()
}

/// AND gates of all circuits of a group of `images` images.
pub fn and_gates(plan: &ClientPlan, images: usize, opts: &SessionOptions) -> u64 {
    and_gates_of(plan, images, opts, None)
}

/// Bytes held between offline and online for a group of `images` images: 32 bytes per AND
/// gate of the Yao steps (garbled tables), 3 bits per AND gate of the GMW steps (triples).
pub fn table_bytes(plan: &ClientPlan, images: usize, opts: &SessionOptions) -> u64 {
    32 * and_gates_of(plan, images, opts, Some(MpcBackend::Yao))
        + and_gates_of(plan, images, opts, Some(MpcBackend::Gmw)).div_ceil(8) * 3
}

/// Whether a group of `images` images garbles all steps before the input is uploaded.
pub fn offline_first(plan: &ClientPlan, images: usize, opts: &SessionOptions) -> bool {
    table_bytes(plan, images, opts) <= TABLE_BUDGET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_the_batch() {
        assert_eq!(groups(1, 4096), vec![1]);
        assert_eq!(groups(4096, 4096), vec![4096]);
        assert_eq!(groups(5000, 4096), vec![4096, 904]);
        assert!(groups(0, 4096).is_empty());
    }
}
