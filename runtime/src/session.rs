//! What both parties must agree on without talking: batching into ciphertext groups and the
//! choice between garbling everything ahead (offline first) and streaming per step.

use std::time::Duration;

use mp2ml_ir::plan::ClientPlan;

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
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            timeout: Duration::from_secs(60),
            min_security: 128,
            progress: false,
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

/// AND gates of all circuits of a group of `images` images.
pub fn and_gates(plan: &ClientPlan, images: usize) -> u64 {
    plan.mpc_steps
        .iter()
        .map(|s| {
            let ands = plan
                .circuits
                .get(s.circuit)
                .map_or(0, |c| c.circuit.stats().and);
            ands * (s.instances * images) as u64
        })
        .sum()
}

/// Bytes of garbled tables for a group of `images` images: 32 bytes per AND gate.
pub fn table_bytes(plan: &ClientPlan, images: usize) -> u64 {
    32 * and_gates(plan, images)
}

/// Whether a group of `images` images garbles all steps before the input is uploaded.
pub fn offline_first(plan: &ClientPlan, images: usize, _opts: &SessionOptions) -> bool {
    table_bytes(plan, images) <= TABLE_BUDGET
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
