//! One linear op applied to its operands' maps: the expanded path ([`local_map`] and
//! [`compose`]) while the result stays below [`SPARSE_LIMIT`] entries (exactly what every
//! bundled model compiles with), the structured path ([`SMap`]) above it, and an
//! [`LinMap::Opaque`] placeholder (its size only) when neither applies.

use std::borrow::Cow;

use mp2ml_ir::op::Op;
use mp2ml_ir::tensor::Tensor;

use super::affine::{compose, Affine};
use super::local::{local_map, Operand};
use super::lowered::LinMap;
use super::smap::{chw, ConvSpec, SMap};

/// Largest expanded map (stored entries) the lowering builds as rows: about 100 MB.
pub const SPARSE_LIMIT: u64 = 1 << 22;

/// An operand: a constant, or a non-constant tensor's map with its graph shape and, for
/// expanded rows, the same map kept by structure when it is weight-shared (its *shadow*: it
/// lets a larger map built on top of small expanded ones, like a convolution reading a
/// `Concat` of activations, take the structured path).
pub(super) enum Arg<'a> {
    Const(&'a Tensor),
    Var(&'a LinMap, &'a [usize], Option<&'a SMap>),
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.data.iter().map(|&v| f64::from(v)).collect()
}

/// Average stored entries per row of a map.
fn row_len(m: &LinMap) -> u64 {
    let n = m.len().max(1) as u64;
    m.nnz().div_ceil(n).max(1)
}

/// The convolution geometry of `op` on an input of per-image shape `[C, H, W]`.
fn conv_spec<'a>(
    op: &Op,
    w: &'a [f64],
    bias: Option<&'a [f64]>,
    out_shape: &[usize],
) -> Option<ConvSpec<'a>> {
    let Op::Conv {
        kernel,
        strides,
        pads,
        dilations,
        group,
    } = op
    else {
        return None;
    };
    let [_, o, oh, ow] = out_shape else {
        return None;
    };
    Some(ConvSpec {
        out: *o,
        kernel: *kernel,
        strides: *strides,
        pads: [pads[0], pads[1]],
        dilations: *dilations,
        groups: (*group).max(1),
        w,
        bias,
        out_hw: [*oh, *ow],
    })
}

/// Multiply-accumulates of a convolution alone (nonzero weights at in-bounds taps), computed
/// from its kernel.
pub(super) fn conv_macs(
    op: &Op,
    w: &Tensor,
    in_shape: &[usize],
    out_shape: &[usize],
) -> Option<u64> {
    let wv = f64s(w);
    let spec = conv_spec(op, &wv, None, out_shape)?;
    let x = chw(in_shape.get(1..)?)?;
    Some(SMap::identity(0, x).conv(&spec)?.nnz())
}

/// Per-channel scale and bias of a constant broadcast over `[N, C, …]` of `c` channels, if it
/// is one (a scalar, or `C` values on the channel axis).
fn per_channel(t: &Tensor, out_rank: usize, c: usize) -> Option<Vec<f64>> {
    let n: usize = t.shape.iter().product();
    if n == 1 {
        return Some(vec![f64::from(*t.data.first()?); c]);
    }
    if t.shape.len() > out_rank || n != c {
        return None;
    }
    // Right-aligned to the output rank, only the channel axis (1) may be larger than 1.
    let pad = out_rank - t.shape.len();
    let ok = t
        .shape
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || i + pad == 1);
    ok.then(|| f64s(t))
}

/// The structured form of a map (the identity of a frontier tensor, an [`SMap`], or the
/// shadow of expanded rows).
fn structured<'a>(
    m: &'a LinMap,
    shape: &[usize],
    shadow: Option<&'a SMap>,
) -> Option<Cow<'a, SMap>> {
    match m {
        LinMap::Conv(s) => Some(Cow::Borrowed(s)),
        LinMap::Rows(_) => shadow.map(Cow::Borrowed),
        LinMap::Ident { col, len } => {
            let s = chw(shape.get(1..)?)?;
            (s.iter().product::<usize>() == *len).then(|| Cow::Owned(SMap::identity(*col, s)))
        }
        _ => None,
    }
}

/// The op on structured operands, when the result is exactly weight-shared.
fn apply_structured(op: &Op, args: &[Arg], out_shape: &[usize]) -> Option<SMap> {
    let mut vars: Vec<Cow<SMap>> = Vec::new();
    for a in args {
        if let Arg::Var(m, s, shadow) = a {
            vars.push(structured(m, s, *shadow)?);
        }
    }
    let cst = |i: usize| match args.get(i) {
        Some(Arg::Const(t)) => Some(*t),
        _ => None,
    };
    let rank = out_shape.len();
    match op {
        Op::Conv { .. } => {
            let x = vars.first()?;
            let w = f64s(cst(1)?);
            let b = match args.get(2) {
                Some(_) => Some(f64s(cst(2)?)),
                None => None,
            };
            let spec = conv_spec(op, &w, b.as_deref(), out_shape)?;
            x.conv(&spec)
        }
        Op::BatchNorm { epsilon } => {
            let x = vars.first()?;
            let c = x.shape[0];
            let (sc, bi, mean, var) = (cst(1)?, cst(2)?, cst(3)?, cst(4)?);
            let mut s = Vec::with_capacity(c);
            let mut b = Vec::with_capacity(c);
            for ch in 0..c {
                let v = |t: &Tensor| t.data.get(ch).map(|&v| f64::from(v));
                // As `local_map` computes it.
                let si = v(sc)? / (v(var)? + f64::from(*epsilon)).sqrt();
                s.push(si);
                b.push(v(bi)? - v(mean)? * si);
            }
            Some(x.scale(&s, &b))
        }
        Op::Mul | Op::Div => {
            let x = vars.first()?;
            let c = x.shape[0];
            let k = args.iter().find_map(|a| match a {
                Arg::Const(t) => Some(*t),
                Arg::Var(..) => None,
            })?;
            if matches!(op, Op::Div) && !matches!(args.get(1), Some(Arg::Const(_))) {
                return None;
            }
            let mut s = per_channel(k, rank, c)?;
            if matches!(op, Op::Div) {
                if s.contains(&0.0) {
                    return None;
                }
                s = s.iter().map(|v| 1.0 / v).collect();
            }
            Some(x.scale(&s, &vec![0.0; c]))
        }
        Op::Add | Op::Sub | Op::Sum => {
            let sub = matches!(op, Op::Sub);
            let mut acc: Option<SMap> = None;
            let mut bias: Option<Vec<f64>> = None;
            let mut vi = 0;
            for (i, a) in args.iter().enumerate() {
                let sign = if sub && i == 1 { -1.0 } else { 1.0 };
                match a {
                    Arg::Var(..) => {
                        let m = vars.get(vi)?;
                        vi += 1;
                        acc = Some(match acc {
                            None if sign == 1.0 => m.as_ref().clone(),
                            None => {
                                let c = m.shape[0];
                                m.scale(&vec![-1.0; c], &vec![0.0; c])
                            }
                            Some(a) => a.add(m, sign)?,
                        });
                    }
                    Arg::Const(t) => {
                        let c = out_shape.get(1).copied()?;
                        let v = per_channel(t, rank, c)?;
                        let b = bias.get_or_insert_with(|| vec![0.0; c]);
                        for (x, y) in b.iter_mut().zip(v) {
                            *x += sign * y;
                        }
                    }
                }
            }
            let acc = acc?;
            Some(match bias {
                Some(b) => acc.scale(&vec![1.0; acc.shape[0]], &b),
                None => acc,
            })
        }
        Op::AvgPool {
            kernel,
            strides,
            pads,
            count_include_pad,
            ..
        } => {
            let x = vars.first()?;
            let [c, h, w] = x.shape;
            let [_, _, oh, ow] = out_shape else {
                return None;
            };
            // Every window full (no divisor clipped by the border or ceil mode).
            let full = (0..2).all(|a| {
                let (i, k, s) = ([h, w][a], kernel[a], strides[a]);
                let o = [*oh, *ow][a];
                (o - 1) * s + k <= i + pads[a] + pads[a + 2]
            });
            if !full || (!count_include_pad && pads.iter().any(|&p| p > 0)) {
                return None;
            }
            let wv = vec![1.0 / (kernel[0] * kernel[1]) as f64; c * kernel[0] * kernel[1]];
            x.conv(&ConvSpec {
                out: c,
                kernel: *kernel,
                strides: *strides,
                pads: [pads[0], pads[1]],
                dilations: [1, 1],
                groups: c,
                w: &wv,
                bias: None,
                out_hw: [*oh, *ow],
            })
        }
        Op::GlobalAvgPool => {
            let x = vars.first()?;
            let [c, h, w] = x.shape;
            let wv = vec![1.0 / (h * w).max(1) as f64; c * h * w];
            x.conv(&ConvSpec {
                out: c,
                kernel: [h, w],
                strides: [1, 1],
                pads: [0, 0],
                dilations: [1, 1],
                groups: c,
                w: &wv,
                bias: None,
                out_hw: [1, 1],
            })
        }
        Op::Pad { pads, value } => {
            let x = vars.first()?;
            // Only the plane of a [N, C, H, W] tensor, zero fill.
            let [a0, a1, t, l, b0, b1, b, r] = pads.as_slice() else {
                return None;
            };
            if *value != 0.0 || [*a0, *a1, *b0, *b1] != [0, 0, 0, 0] {
                return None;
            }
            let p = [*t, *l, *b, *r].map(|v| usize::try_from(v).ok());
            x.pad([p[0]?, p[1]?, p[2]?, p[3]?])
        }
        Op::Identity
        | Op::Dropout
        | Op::Flatten { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Slice { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. } => channel_movement(op, args, &vars, out_shape),
        _ => None,
    }
}

/// Data movement that only moves whole channels of planes (concatenation along channels,
/// channel shuffles, reshapes that keep the element order).
fn channel_movement(
    op: &Op,
    args: &[Arg],
    vars: &[Cow<SMap>],
    out_shape: &[usize],
) -> Option<SMap> {
    let hw = [vars.first()?.shape[1], vars.first()?.shape[2]];
    let plane = hw[0] * hw[1];
    let mut vi = 0u32;
    let mut operands = Vec::with_capacity(args.len());
    for a in args {
        operands.push(match a {
            Arg::Const(t) => Operand::Const(t),
            Arg::Var(_, s, _) => {
                vi += 1;
                Operand::Var(vi - 1, s)
            }
        });
    }
    let local = local_map(op, &operands, out_shape).ok()?;
    let n = local.rows.len();
    if plane == 0 || n % plane != 0 || local.bias.iter().any(|&b| b != 0.0) {
        return None;
    }
    let mut src = Vec::with_capacity(n / plane);
    for c in 0..n / plane {
        let &[(k, e, v)] = local.rows.get(c * plane)?.as_slice() else {
            return None;
        };
        if v != 1.0 || !(e as usize).is_multiple_of(plane) {
            return None;
        }
        for p in 0..plane {
            let want = [(k, e + p as u32, 1.0)];
            if local.rows.get(c * plane + p)?.as_slice() != want {
                return None;
            }
        }
        src.push((k as usize, e as usize / plane));
    }
    let maps: Vec<&SMap> = vars.iter().map(AsRef::as_ref).collect();
    SMap::gather_channels(&maps, &src, hw)
}

/// Largest shadow kept beside expanded rows (kernel entries), so that shadows stay far
/// smaller than the rows they describe.
const SHADOW_LIMIT: usize = 1 << 22;

/// Elements per image above which a Concat of frontier tensors is kept as identity terms
/// (the bundled models' concatenations are smaller and stay expanded rows).
const STRUCTURED_CONCAT: usize = 1 << 16;

/// Applies a linear op to its operands' maps; `ncols` is the frontier width and `limit` the
/// largest map built as rows ([`SPARSE_LIMIT`] by default). Expanded results
/// come with their shadow (see [`Arg`]) when the op is exactly weight-shared on structured
/// operands.
pub(super) fn apply(
    op: &Op,
    args: &[Arg],
    out_shape: &[usize],
    ncols: usize,
    limit: u64,
) -> Result<(LinMap, Option<SMap>), String> {
    let with_shadow = |rows: Affine| {
        let shadow = apply_structured(op, args, out_shape)
            .filter(|s| s.terms.iter().map(|t| t.w.len()).sum::<usize>() <= SHADOW_LIMIT);
        (LinMap::Rows(rows), shadow)
    };
    let n_out: usize = out_shape.iter().skip(1).product();
    let vars: Vec<&LinMap> = args
        .iter()
        .filter_map(|a| match a {
            Arg::Var(m, _, _) => Some(*m),
            Arg::Const(_) => None,
        })
        .collect();
    let lens: Vec<u64> = vars.iter().map(|m| row_len(m)).collect();
    let expandable = vars.iter().all(|m| match m {
        LinMap::Rows(_) | LinMap::Ident { .. } => true,
        LinMap::Conv(s) => s.nnz() <= limit,
        LinMap::Opaque { .. } => false,
    });
    let any_big = vars
        .iter()
        .any(|m| matches!(m, LinMap::Conv(_) | LinMap::Opaque { .. }));
    // Size of the expanded result, bounded before anything is built.
    let (local, estimate) = match op {
        Op::Conv { .. } => {
            let w = match args.get(1) {
                Some(Arg::Const(t)) => *t,
                _ => return Err("operand 1 must be a constant (weights)".into()),
            };
            let (input, in_shape) = match args.first() {
                Some(Arg::Var(m, s, _)) => (*m, *s),
                _ => return Err("operand 0 must be a non-constant tensor".into()),
            };
            let Some(macs) = conv_macs(op, w, in_shape, out_shape) else {
                // The expanded builder names what is wrong with the operands.
                local_map(op, &operands_of(args), out_shape)?;
                return Err("Conv expects 4-D tensors with matching channels".into());
            };
            // The weights and the bias are constants: the input is the only variable.
            (None, macs.saturating_mul(row_len(input)))
        }
        _ => {
            let operands = operands_of(args);
            let l = local_map(op, &operands, out_shape)?;
            // Operand indices of the local map count the variables only ([`operands_of`]).
            let mut est = 0u64;
            for &(a, _, _) in l.rows.iter().flatten() {
                let len = lens.get(a as usize).ok_or_else(|| {
                    format!(
                        "internal: the local map reads variable {a} of {}",
                        lens.len()
                    )
                })?;
                est = est.saturating_add(*len);
            }
            (Some(l), est)
        }
    };
    // A composed row never holds more than the frontier's columns.
    let estimate = estimate.min((n_out as u64).saturating_mul(ncols as u64));
    // A large Concat of frontier tensors (DenseNet's cut features: each later layer's
    // BatchNorm reads the concatenation of all earlier ones) stays identity terms: as rows it
    // would cost a row header per element, for every layer of the block.
    let idents_only = !vars.is_empty() && vars.iter().all(|m| matches!(m, LinMap::Ident { .. }));
    if matches!(op, Op::Concat { .. }) && idents_only && n_out > STRUCTURED_CONCAT {
        if let Some(s) = apply_structured(op, args, out_shape) {
            return Ok((LinMap::Conv(s), None));
        }
    }
    // The exact expanded path (every bundled model): unchanged arithmetic.
    if !any_big && estimate <= limit {
        return Ok(with_shadow(expanded(op, args, local, out_shape, ncols)?));
    }
    if let Some(s) = apply_structured(op, args, out_shape) {
        return Ok((LinMap::Conv(s), None));
    }
    if expandable && estimate <= limit {
        return Ok(with_shadow(expanded(op, args, local, out_shape, ncols)?));
    }
    Ok((
        LinMap::Opaque {
            len: n_out,
            macs: estimate,
        },
        None,
    ))
}

fn operands_of<'a>(args: &'a [Arg<'a>]) -> Vec<Operand<'a>> {
    let mut k = 0u32;
    args.iter()
        .map(|a| match a {
            Arg::Const(t) => Operand::Const(t),
            Arg::Var(_, s, _) => {
                k += 1;
                Operand::Var(k - 1, s)
            }
        })
        .collect()
}

/// `local_map` composed with the operands' expanded rows.
fn expanded(
    op: &Op,
    args: &[Arg],
    local: Option<super::affine::LocalMap>,
    out_shape: &[usize],
    ncols: usize,
) -> Result<Affine, String> {
    let local = match local {
        Some(l) => l,
        None => local_map(op, &operands_of(args), out_shape)?,
    };
    let maps: Vec<Cow<Affine>> = args
        .iter()
        .filter_map(|a| match a {
            Arg::Var(m, _, _) => Some(m),
            Arg::Const(_) => None,
        })
        .map(|m| match m {
            LinMap::Rows(a) => Ok(Cow::Borrowed(a)),
            LinMap::Ident { col, len } => Ok(Cow::Owned(Affine::identity(*col, *len))),
            LinMap::Conv(s) => Ok(Cow::Owned(s.to_affine())),
            LinMap::Opaque { .. } => {
                Err("internal: expanding a map of unknown entries".to_string())
            }
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Affine> = maps.iter().map(AsRef::as_ref).collect();
    Ok(compose(&local, &refs, ncols))
}
