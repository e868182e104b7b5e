//! Levels (EVA-style backward assignment) and the output-scale marking.

use super::lowered::{Lowered, MKind};
use crate::error::{CompileError, ErrorKind};

/// Backward level assignment: MPC inputs ≥ 0, output = `out_level`, Linear inputs one
/// level above their output (the client encrypts masked MPC outputs exactly mod Q_ℓ, so they
/// need no minimum level).
pub fn assign_levels(low: &mut Lowered, out_level: usize) {
    let n = low.tensors.len();
    let mut level = vec![0usize; n];
    level[low.output] = out_level;
    low.out_level = out_level;
    for i in (0..n).rev() {
        if let MKind::Linear { inputs, .. } = &low.tensors[i].kind {
            for &f in inputs {
                level[f] = level[f].max(level[i] + 1);
            }
        }
    }
    for (t, l) in low.tensors.iter_mut().zip(level) {
        t.level = l;
    }
}

/// Marks the tensors that feed the output through Linears; refuses a tensor that feeds both
/// the output and an MPC step (it would need two scales).
pub(super) fn assign_scales(low: &mut Lowered) -> Result<(), CompileError> {
    let n = low.tensors.len();
    let cone = |start: &[usize]| -> Vec<bool> {
        let mut mark = vec![false; n];
        let mut stack = start.to_vec();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut mark[i], true) {
                continue;
            }
            if let MKind::Linear { inputs, .. } = &low.tensors[i].kind {
                stack.extend(inputs.iter().copied());
            }
        }
        mark
    };
    let out = cone(&[low.output]);
    let mpc_inputs: Vec<usize> = low.steps.iter().map(|s| s.input).collect();
    let mpc = cone(&mpc_inputs);
    if let Some(i) = (0..n).find(|&i| out[i] && mpc[i]) {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            format!("tensor `{}` feeds both an MPC step and the model output; the output needs a larger scale (flooding), so this sharing is not supported", low.tensors[i].name),
        ));
    }
    for (t, o) in low.tensors.iter_mut().zip(out) {
        t.output_scale = o;
    }
    Ok(())
}
