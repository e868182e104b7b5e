//! Image packing through real CKKS: HomConv and HomFC maps applied to encrypted polynomials
//! (products with kernel polynomials in the NTT domain, on the c0 and c1 halves separately, as
//! the offline/online split does), decrypted and compared with the plain loops.

use mp2ml_ckks::{
    ntt_primes, os_rng, poly_dot, NttPoly, Params, RnsPoly, SecretKey, SecurityLevel,
};
use mp2ml_compiler::packing::detect::detect;
use mp2ml_compiler::packing::{MapKind, PolyMap, Product};
use mp2ml_ir::layout::{Bias, ConvGeom, ConvTerm, StructuredMatrix};
use mp2ml_ir::weights::IntMatrix;
use rand::{Rng, SeedableRng};

/// Encrypts every input polynomial of `map`, applies it homomorphically on both halves,
/// decrypts at the output positions (bias added in the clear afterwards: it goes into c0 only).
fn run_encrypted(map: &PolyMap, xs: &[Vec<i64>]) -> Vec<i128> {
    let n = map.n;
    let primes = ntt_primes(27, n, 2, &[]).expect("primes");
    let params = Params::new_secure(n, &primes, SecurityLevel::Bits128).expect("params");
    let level = 1;
    let mut rng = os_rng();
    let sk = SecretKey::generate(&params, &mut rng);
    // Inputs: one ciphertext per layout polynomial, split into (c0, c1) and transformed.
    let mut c0s: Vec<Vec<NttPoly>> = Vec::new();
    let mut c1s: Vec<Vec<NttPoly>> = Vec::new();
    for (l, x) in map.inputs.iter().zip(xs) {
        let mut polys = vec![vec![0i64; n]; l.polys()];
        for (p, c, e) in l.slots() {
            polys[p as usize][c as usize] = x[e as usize];
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for p in &polys {
            let ct = sk.encrypt(p, level, &mut rng).expect("encrypt");
            let (c0, c1) = ct.into_halves(n).expect("halves");
            a.push(NttPoly::from_half(c0.poly()).expect("ntt"));
            b.push(NttPoly::from_half(c1.poly()).expect("ntt"));
        }
        c0s.push(a);
        c1s.push(b);
    }
    let kernels: Vec<NttPoly> = map
        .kernels
        .iter()
        .map(|k| {
            let mut dense = vec![0i64; n];
            for &(e, v) in k {
                dense[e as usize] = v;
            }
            NttPoly::from_plain(&params, level, &dense).expect("kernel")
        })
        .collect();
    // Flatten the (input, poly) pairs for poly_dot.
    let mut index = Vec::new();
    let (mut flat0, mut flat1) = (Vec::new(), Vec::new());
    for (k, (a, b)) in c0s.iter().zip(&c1s).enumerate() {
        for (p, (x0, x1)) in a.iter().zip(b).enumerate() {
            index.push((k as u32, p as u32));
            flat0.push(x0.clone());
            flat1.push(x1.clone());
        }
    }
    let pos = |input: u32, poly: u32| {
        index
            .iter()
            .position(|&q| q == (input, poly))
            .expect("poly") as u32
    };
    let mut outs: Vec<(RnsPoly, RnsPoly)> = Vec::new();
    for terms in &map.outputs {
        let t: Vec<(u32, u32)> = terms
            .iter()
            .map(|p| match *p {
                Product::Kernel {
                    input,
                    poly,
                    kernel,
                } => (pos(input, poly), kernel),
                Product::Scalar { .. } => panic!("no copies here"),
            })
            .collect();
        let y0 = poly_dot(&flat0, &kernels, &t).expect("c0 products");
        let y1 = poly_dot(&flat1, &kernels, &t).expect("c1 products");
        outs.push((y0, y1));
    }
    let dec: Vec<Vec<i128>> = outs
        .iter()
        .map(|(c0, c1)| {
            let c1 = mp2ml_ckks::C1Half::new(c1.clone()).expect("a whole c1");
            let c1s = sk.c1_times_s(&c1, n).expect("c1·s");
            sk.decrypt_halves(&mp2ml_ckks::C0Window::new(c0.clone()), &c1s)
                .expect("decrypt")
        })
        .collect();
    let mut y = vec![0i128; map.output.len()];
    for (p, c, e) in map.output.slots() {
        y[e as usize] = dec[p as usize][c as usize] + map.bias[e as usize];
    }
    y
}

fn csr_times(m: &IntMatrix, x: &[i64]) -> Vec<i128> {
    (0..m.rows)
        .map(|r| {
            m.row(r)
                .map(|(c, v)| i128::from(v) * i128::from(x[c as usize]))
                .sum::<i128>()
                + m.bias[r]
        })
        .collect()
}

#[test]
fn homconv_and_homfc_through_ckks() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    // A strided, padded, grouped convolution split into row blocks at N = 2048.
    let g = ConvGeom {
        strides: [2, 2],
        pads: [1, 1],
        groups: 2,
        ..ConvGeom::plain([4, 20, 20], [6, 10, 10], [3, 3])
    };
    let kernel: Vec<i64> = (0..g.kernel_len())
        .map(|_| rng.random_range(-64..64))
        .collect();
    let st = StructuredMatrix {
        rows: g.out_len(),
        cols: g.in_len(),
        convs: vec![ConvTerm {
            geom: g.clone(),
            kernel,
        }],
        extra: vec![],
        bias: Bias::PerChannel((0..6).map(|i| i * 100 - 250).collect()),
    };
    let m = st.to_csr().expect("valid");
    let x: Vec<i64> = (0..g.in_len()).map(|_| rng.random_range(-64..64)).collect();
    let found = detect(&m, &[g.input.to_vec()], &g.output).expect("a convolution");
    let map = PolyMap::build(&m, Some(&found), &[g.input.to_vec()], 2048).expect("packs");
    assert_eq!(map.kind, MapKind::Conv);
    let want = csr_times(&m, &x);
    let got = run_encrypted(&map, std::slice::from_ref(&x));
    // Noise: fresh encryption noise times the kernel's L1 norm per output, far below 2^12.
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1 << 12, "{a} vs {b}");
    }
    assert!(
        got.iter().zip(&want).any(|(a, b)| a != b),
        "noise must be present"
    );
    // A dense layer (100 × 845, CryptoNets' fused one) by HomFC.
    let (rows, cols) = (100usize, 845usize);
    let mut d = IntMatrix {
        rows,
        cols,
        row_ptr: vec![0],
        ..Default::default()
    };
    for _ in 0..rows {
        for c in 0..cols {
            d.col.push(c as u32);
            d.val.push(rng.random_range(-16..16));
        }
        d.row_ptr.push(d.col.len() as u64);
        d.bias.push(rng.random_range(-999..999));
    }
    let v: Vec<i64> = (0..cols).map(|_| rng.random_range(-64..64)).collect();
    let map = PolyMap::build(&d, None, &[vec![cols]], 2048).expect("dense");
    assert_eq!(map.kind, MapKind::Dense);
    assert_eq!(map.products(), rows.div_ceil(2048 / cols));
    let want = csr_times(&d, &v);
    let got = run_encrypted(&map, &[v]);
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1 << 14, "{a} vs {b}");
    }
}

/// Every bundled model: each linear op of its (batch-packed) plan re-packs for image packing,
/// the packed map reproduces the stored integer matrix on random inputs (plaintext
/// polynomials mod q0), and at batch 1 image packing moves less than batch packing.
#[test]
fn bundled_models_repack_exactly() {
    use mp2ml_compiler::driver::{compile_graph, Options};
    use mp2ml_compiler::onnx::{import_file, ImportOptions};
    use mp2ml_compiler::packing::estimate::estimate;
    use mp2ml_ir::plan::{HeOp, Segment};
    use mp2ml_ir::weights::{Section, WeightsFile};

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for name in ["tiny", "cryptonets_relu", "maxpool_cnn", "residual"] {
        let path = root.join("models").join(format!("{name}.onnx"));
        let g = import_file(&path, &ImportOptions::default())
            .expect("import")
            .graph;
        let out = compile_graph(&g, name, "w.bin", &Options::default()).expect("compile");
        let plan = &out.compiled.server;
        let wf = WeightsFile::from_bytes(out.compiled.weights.clone()).expect("weights");
        let q0 = plan.public.params.moduli[0] as i64;
        let n = plan.public.params.n();
        let mut convs = 0;
        for seg in &plan.segments {
            let Segment::He(h) = seg else { continue };
            for op in &h.ops {
                let HeOp::Linear {
                    inputs,
                    matrix,
                    name: op_name,
                    ..
                } = op
                else {
                    continue;
                };
                let (m, st) = match wf.section(matrix).expect("section") {
                    Section::Csr(m) => (m, None),
                    Section::Structured(s) => (s.to_csr().expect("expands"), Some(s)),
                };
                let shapes: Vec<Vec<usize>> = inputs
                    .iter()
                    .map(|&i| plan.tensors[i.index()].shape.clone())
                    .collect();
                let map = PolyMap::build(&m, st.as_ref(), &shapes, n).expect("packs");
                convs += usize::from(map.kind == MapKind::Conv);
                let xs: Vec<Vec<i64>> = shapes
                    .iter()
                    .map(|s| {
                        (0..s.iter().product::<usize>())
                            .map(|_| rng.random_range(-512..512))
                            .collect()
                    })
                    .collect();
                let flat = xs.concat();
                let half = i128::from(q0 / 2);
                let want: Vec<i64> = (0..m.rows)
                    .map(|r| {
                        let v = m
                            .row(r)
                            .map(|(c, w)| i128::from(w) * i128::from(flat[c as usize]))
                            .sum::<i128>()
                            + m.bias[r];
                        let v = v.rem_euclid(i128::from(q0));
                        (if v > half { v - i128::from(q0) } else { v }) as i64
                    })
                    .collect();
                assert_eq!(map.eval_mod(&xs, q0), Ok(want), "{name}: {op_name}");
            }
        }
        assert!(convs >= 1, "{name}: no convolution recognized");
        let e = estimate(plan, &wf).expect("estimate");
        assert!(e.image_bytes < e.batch_bytes, "{name}: {e:?}");
    }
}
