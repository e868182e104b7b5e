//! The packings against plain loops, on plaintext polynomials modulo a prime.

use mp2ml_ir::layout::{Bias, ConvGeom, ConvTerm, StructuredMatrix};
use mp2ml_ir::weights::IntMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::conv::ConvPacking;
use super::*;

/// A 50-bit prime (any prime works for the packing math; this one is not NTT-friendly on
/// purpose: the test is independent of the CKKS engine).
const Q: i64 = 1_125_899_906_842_597;

/// Direct-loop convolution (the reference).
fn conv_ref(g: &ConvGeom, kernel: &[i64], bias: &[i128], x: &[i64]) -> Vec<i64> {
    let plane = g.output[1] * g.output[2];
    let mut y: Vec<i128> = (0..g.out_len()).map(|r| bias[r / plane]).collect();
    crate::test_conv::conv_taps(g, |row, col, k| {
        y[row] += i128::from(kernel[k]) * i128::from(x[col]);
    });
    y.into_iter().map(|v| v as i64).collect()
}

fn random_geom(rng: &mut StdRng, max_hw: usize) -> ConvGeom {
    let groups = [1, 1, 2, 0][rng.random_range(0..4)];
    let (c, o, groups) = if groups == 0 {
        let c = rng.random_range(1..5);
        (c, c, c) // depthwise
    } else {
        (
            groups * rng.random_range(1..4),
            groups * rng.random_range(1..4),
            groups,
        )
    };
    let k = [rng.random_range(1..4), rng.random_range(1..4)];
    let s = [rng.random_range(1..4), rng.random_range(1..4)];
    let d = [rng.random_range(1..3), rng.random_range(1..3)];
    let p = [rng.random_range(0..3), rng.random_range(0..3)];
    let ext = |kk: usize, dd: usize| dd * (kk - 1) + 1;
    let h = rng.random_range(ext(k[0], d[0])..=max_hw.max(ext(k[0], d[0])));
    let w = rng.random_range(ext(k[1], d[1])..=max_hw.max(ext(k[1], d[1])));
    // Bottom/right padding between 0 and the top/left one.
    let (pb, pr) = (rng.random_range(0..=p[0]), rng.random_range(0..=p[1]));
    let oh = (h + p[0] + pb - ext(k[0], d[0])) / s[0] + 1;
    let ow = (w + p[1] + pr - ext(k[1], d[1])) / s[1] + 1;
    ConvGeom {
        col_offset: 0,
        input: [c, h, w],
        output: [o, oh, ow],
        kernel: k,
        strides: s,
        pads: p,
        dilations: d,
        groups,
    }
}

fn structured(g: &ConvGeom, kernel: Vec<i64>, bias: Vec<i128>) -> (IntMatrix, StructuredMatrix) {
    let st = StructuredMatrix {
        rows: g.out_len(),
        cols: g.in_len(),
        convs: vec![ConvTerm {
            geom: g.clone(),
            kernel,
        }],
        extra: Vec::new(),
        bias: Bias::PerChannel(bias),
    };
    (st.to_csr().expect("valid"), st)
}

#[test]
fn homconv_matches_plain_convolution() {
    let mut rng = StdRng::seed_from_u64(12);
    for n in [256usize, 1024] {
        for _ in 0..60 {
            let g = random_geom(&mut rng, 14);
            let kernel: Vec<i64> = (0..g.kernel_len())
                .map(|_| rng.random_range(-1 << 20..1 << 20))
                .collect();
            let bias: Vec<i128> = (0..g.output[0])
                .map(|_| rng.random_range(-1000..1000))
                .collect();
            let x: Vec<i64> = (0..g.in_len())
                .map(|_| rng.random_range(-1 << 16..1 << 16))
                .collect();
            let (m, st) = structured(&g, kernel.clone(), bias.clone());
            let map = match PolyMap::build(&m, Some(&st), &[g.input.to_vec()], n) {
                Ok(map) => map,
                // Only a padded row longer than N may be refused.
                Err(e) => {
                    assert!(g.input[2] + 2 * g.pads[1] > n / 4, "{g:?}: {e}");
                    continue;
                }
            };
            assert_eq!(map.kind, MapKind::Conv, "{g:?}");
            for l in &map.inputs {
                l.check(n).expect("input layout fits N");
            }
            map.output.check(n).expect("output layout fits N");
            assert_eq!(
                map.eval_mod(std::slice::from_ref(&x), Q),
                Ok(conv_ref(&g, &kernel, &bias, &x)),
                "{g:?} at N = {n}"
            );
        }
    }
}

#[test]
fn largest_blocks_do_not_wrap_and_one_more_channel_would() {
    // 4 channels of 16×16, 3×3 kernel, no padding: the chosen block is exactly N = 1024.
    let g = ConvGeom::plain([4, 16, 16], [3, 14, 14], [3, 3]);
    let n = 1024;
    let p = ConvPacking::choose(&g, n).expect("packs");
    assert_eq!((p.c_b, p.h_b, p.w_b), (4, 16, 16));
    assert_eq!(p.c_b * p.h_b * p.w_b, n);
    let mut rng = StdRng::seed_from_u64(5);
    let kernel: Vec<i64> = (0..g.kernel_len())
        .map(|_| rng.random_range(-99..99))
        .collect();
    let x: Vec<i64> = (0..g.in_len())
        .map(|_| rng.random_range(1..1 << 12))
        .collect();
    let bias = vec![0i128; 3];
    let expect = conv_ref(&g, &kernel, &bias, &x);
    let run = |p: &ConvPacking| {
        let mut kernels = Vec::new();
        let outputs = conv_products(p, &kernel, 0, &mut kernels);
        PolyMap {
            n,
            kind: MapKind::Conv,
            inputs: vec![p.input_layout()],
            kernels,
            outputs,
            output: p.output_layout(),
            bias: vec![0; g.out_len()],
        }
        .eval_mod(std::slice::from_ref(&x), Q)
    };
    assert_eq!(run(&p), Ok(expect));
    // Positive control: terms did go past X^N and wrapped (with a sign flip) below the first
    // wanted coefficient O, so the rule is what keeps the outputs right.
    let mut kernels = Vec::new();
    let outputs = conv_products(&p, &kernel, 0, &mut kernels);
    let map = PolyMap {
        n,
        kind: MapKind::Conv,
        inputs: vec![p.input_layout()],
        kernels,
        outputs,
        output: p.output_layout(),
        bias: vec![0; g.out_len()],
    };
    // The linear (not negacyclic) product of the input block with the kernel polynomial:
    // some terms reach past X^N, but none of them at N + a wanted coefficient.
    let mut xin = vec![0i128; n];
    for (pp, c, e) in map.inputs[0].slots() {
        assert_eq!(pp, 0);
        xin[c as usize] = i128::from(x[e as usize]);
    }
    let Product::Kernel { kernel: k0, .. } = map.outputs[0][0] else {
        panic!("a kernel term");
    };
    let mut lin = vec![0i128; 2 * n];
    for &(e, w) in &map.kernels[k0 as usize] {
        for (i, &xi) in xin.iter().enumerate() {
            lin[i + e as usize] += xi * i128::from(w);
        }
    }
    assert!(lin[n..].iter().any(|&v| v != 0), "no term went past X^N");
    for (pp, c, _) in map.output.slots() {
        if pp == 0 {
            assert_eq!(
                lin[n + c as usize],
                0,
                "a wanted coefficient received a wrapped term"
            );
        }
    }
    // A block one channel larger than N allows is refused by the layout check.
    let big = ConvPacking {
        c_b: 5,
        ..p.clone()
    };
    let g5 = ConvGeom {
        input: [5, 16, 16],
        ..g.clone()
    };
    let big = ConvPacking { geom: g5, ..big };
    assert!(big.input_layout().check(n).is_err());
}

#[test]
fn homfc_matches_matrix_vector_over_chunks_and_inputs() {
    let mut rng = StdRng::seed_from_u64(9);
    for (rows, lens, n) in [
        (10usize, vec![100usize], 1024usize),
        (100, vec![845], 1024),
        (7, vec![300, 1500], 1024),
        (33, vec![64, 64, 5], 256),
    ] {
        let cols: usize = lens.iter().sum();
        let dense: Vec<i64> = (0..rows * cols)
            .map(|_| {
                if rng.random_bool(0.8) {
                    rng.random_range(-1 << 20..1 << 20)
                } else {
                    0
                }
            })
            .collect();
        let mut m = IntMatrix {
            rows,
            cols,
            row_ptr: vec![0],
            ..Default::default()
        };
        for r in 0..rows {
            for c in 0..cols {
                if dense[r * cols + c] != 0 {
                    m.col.push(c as u32);
                    m.val.push(dense[r * cols + c]);
                }
            }
            m.row_ptr.push(m.col.len() as u64);
            m.bias.push(rng.random_range(-5000..5000));
        }
        let xs: Vec<Vec<i64>> = lens
            .iter()
            .map(|&l| {
                (0..l)
                    .map(|_| rng.random_range(-1 << 16..1 << 16))
                    .collect()
            })
            .collect();
        let flat: Vec<i64> = xs.concat();
        let expect: Vec<i64> = (0..rows)
            .map(|r| {
                (0..cols)
                    .map(|c| i128::from(dense[r * cols + c]) * i128::from(flat[c]))
                    .sum::<i128>() as i64
                    + m.bias[r] as i64
            })
            .collect();
        let shapes: Vec<Vec<usize>> = lens.iter().map(|&l| vec![l]).collect();
        let map = PolyMap::build(&m, None, &shapes, n).expect("dense");
        assert_eq!(map.kind, MapKind::Dense);
        map.output.check(n).expect("fits");
        assert_eq!(
            map.eval_mod(&xs, Q),
            Ok(expect),
            "{rows}×{lens:?} at N = {n}"
        );
        // ⌈rows·chunk/N⌉ products per chunk of every input.
        let chunk = lens.iter().max().map_or(1, |&l| l.div_ceil(l.div_ceil(n)));
        let per = n / chunk;
        let want: usize =
            lens.iter().map(|l| l.div_ceil(chunk)).sum::<usize>() * rows.div_ceil(per);
        assert!(map.products() <= want);
    }
}

#[test]
fn residual_add_packs_the_skip_input_into_the_conv_output_layout() {
    let g = ConvGeom {
        pads: [1, 1],
        ..ConvGeom::plain([3, 9, 9], [3, 9, 9], [3, 3])
    };
    let skip = ConvGeom {
        col_offset: g.in_len(),
        kernel: [1, 1],
        pads: [0, 0],
        groups: 3,
        ..g.clone()
    };
    let mut rng = StdRng::seed_from_u64(1);
    let kernel: Vec<i64> = (0..g.kernel_len())
        .map(|_| rng.random_range(-500..500))
        .collect();
    let st = StructuredMatrix {
        rows: g.out_len(),
        cols: 2 * g.in_len(),
        convs: vec![
            ConvTerm {
                geom: g.clone(),
                kernel: kernel.clone(),
            },
            ConvTerm {
                geom: skip,
                kernel: vec![77; 3],
            },
        ],
        extra: vec![],
        bias: Bias::PerChannel(vec![1, 2, 3]),
    };
    let m = st.to_csr().expect("valid");
    let shape = g.input.to_vec();
    let map = PolyMap::build(&m, Some(&st), &[shape.clone(), shape], 1024).expect("packs");
    assert_eq!(map.kind, MapKind::Conv);
    assert_eq!(map.inputs[1], map.output);
    let a: Vec<i64> = (0..g.in_len())
        .map(|_| rng.random_range(-999..999))
        .collect();
    let b: Vec<i64> = (0..g.in_len())
        .map(|_| rng.random_range(-999..999))
        .collect();
    let mut expect = conv_ref(&g, &kernel, &[1, 2, 3], &a);
    for (e, &v) in expect.iter_mut().zip(&b) {
        *e += 77 * v;
    }
    assert_eq!(map.eval_mod(&[a, b], Q), Ok(expect));
}

#[test]
fn detected_structure_packs_like_the_matrix() {
    // The detector's output of a conv matrix, packed, gives the matrix-vector product.
    let mut rng = StdRng::seed_from_u64(4);
    for _ in 0..20 {
        let mut g = random_geom(&mut rng, 10);
        g.dilations = [1, 1];
        let ext = |k: usize| k;
        g.output[1] =
            (g.input[1] + 2 * g.pads[0]).saturating_sub(ext(g.kernel[0])) / g.strides[0] + 1;
        g.output[2] =
            (g.input[2] + 2 * g.pads[1]).saturating_sub(ext(g.kernel[1])) / g.strides[1] + 1;
        let kernel: Vec<i64> = (0..g.kernel_len())
            .map(|_| rng.random_range(1..99))
            .collect();
        let (m, _) = structured(&g, kernel, vec![0; g.output[0]]);
        let x: Vec<i64> = (0..g.in_len()).map(|_| rng.random_range(-99..99)).collect();
        let expect: Vec<i64> = (0..m.rows)
            .map(|r| m.row(r).map(|(c, v)| v * x[c as usize]).sum())
            .collect();
        let st = detect::detect(&m, &[g.input.to_vec()], &g.output);
        let map = PolyMap::build(&m, st.as_ref(), &[g.input.to_vec()], 1024).expect("packs");
        assert_eq!(map.eval_mod(&[x], Q), Ok(expect), "{g:?}");
    }
}

#[test]
fn strided_shortcut_adds_into_the_conv_output_layout() {
    // A residual block with a projection: a convolution plus a 1×1 convolution of stride
    // 1–3 from another input onto the same output, against the two plain convolutions.
    let mut rng = StdRng::seed_from_u64(20);
    let mut packed = 0;
    for _ in 0..40 {
        let g = random_geom(&mut rng, 12);
        let s = [rng.random_range(1..4), rng.random_range(1..4)];
        let groups = [1, 1, 2][rng.random_range(0..3)];
        let (c, o) = (groups * rng.random_range(1..5), g.output[0]);
        if !o.is_multiple_of(groups) {
            continue;
        }
        let h = (g.output[1] - 1) * s[0] + 1 + rng.random_range(0..s[0]);
        let w = (g.output[2] - 1) * s[1] + 1 + rng.random_range(0..s[1]);
        let short = ConvGeom {
            col_offset: g.in_len(),
            input: [c, h, w],
            output: g.output,
            kernel: [1, 1],
            strides: s,
            pads: [0, 0],
            dilations: [1, 1],
            groups,
        };
        let k1: Vec<i64> = (0..g.kernel_len())
            .map(|_| rng.random_range(-1 << 20..1 << 20))
            .collect();
        let k2: Vec<i64> = (0..short.kernel_len())
            .map(|_| rng.random_range(-1 << 20..1 << 20))
            .collect();
        let bias: Vec<i128> = (0..o).map(|_| rng.random_range(-999..999)).collect();
        let st = StructuredMatrix {
            rows: g.out_len(),
            cols: g.in_len() + short.in_len(),
            convs: vec![
                ConvTerm {
                    geom: g.clone(),
                    kernel: k1.clone(),
                },
                ConvTerm {
                    geom: short.clone(),
                    kernel: k2.clone(),
                },
            ],
            extra: vec![],
            bias: Bias::PerChannel(bias.clone()),
        };
        let m = st.to_csr().expect("valid");
        let shapes = [g.input.to_vec(), short.input.to_vec()];
        let Ok(map) = PolyMap::build(&m, Some(&st), &shapes, 1024) else {
            continue;
        };
        if g.kernel != [1, 1] {
            assert_eq!(map.kind, MapKind::Conv, "{g:?} + {short:?}");
        }
        if map.kind != MapKind::Conv {
            continue;
        }
        packed += 1;
        let a: Vec<i64> = (0..g.in_len())
            .map(|_| rng.random_range(-1 << 16..1 << 16))
            .collect();
        let b: Vec<i64> = (0..short.in_len())
            .map(|_| rng.random_range(-1 << 16..1 << 16))
            .collect();
        let zero = vec![0; o];
        let expect: Vec<i64> = conv_ref(&g, &k1, &bias, &a)
            .iter()
            .zip(conv_ref(&short, &k2, &zero, &b))
            .map(|(x, y)| x + y)
            .collect();
        assert_eq!(map.eval_mod(&[a, b], Q), Ok(expect), "{g:?} + {short:?}");
        // Only the elements a kernel reads are packed.
        let placed = map.inputs[1].slots().len();
        assert_eq!(placed, c * short.output[1] * short.output[2]);
    }
    assert!(packed >= 20, "only {packed} of 40 packed");
}
