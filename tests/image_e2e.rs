//! Image packing end to end: every bundled model (ResNet-20 is a benchmark: too slow for CI)
//! compiled with `--packing image`, run by the two parties over loopback TCP at batch 1 and
//! batch 3, checked against the plan's fixed-point simulation (the packed integer arithmetic
//! without CKKS noise) and the f32 reference; the client plan carries layouts, no weights.

use mp2ml_compiler::driver::{Options, Packing};
use mp2ml_compiler::packing::traffic::image_traffic;
use mp2ml_compiler::plan_writer::to_ron;
use mp2ml_ir::plan::{ClientPlanFile, HeOp, Segment};
use mp2ml_runtime::client::Batch;
use mp2ml_runtime::error::RuntimeError;
use mp2ml_runtime::local::run_local;
use mp2ml_runtime::plan::{load_client, load_server};
use mp2ml_runtime::session::SessionOptions;
use mp2ml_tests::e2e::{compile, digits, write_plan, Compare};

fn image_options() -> Options {
    Options {
        packing: Packing::Image,
        ..Options::default()
    }
}

/// Compiles `name` in image packing, runs the first `count` test digits at batch 1 (each
/// image alone) and at batch `count`, and checks every logit against the simulation.
fn check(name: &str, count: usize) {
    let (graph, out) = compile(name, &image_options());
    let server = &out.compiled.server;
    assert!(server.image.is_some() && server.public.image.is_some());
    assert!(server.segments.iter().all(|s| match s {
        Segment::He(h) => h.ops.iter().all(|op| !matches!(op, HeOp::Linear { .. })),
        Segment::Mpc(_) => true,
    }));
    let (dir, plan_path) = write_plan(&out, name, &format!("image-{name}"));
    let setup = load_server(&plan_path, 128).expect("runtime loads the image plan");
    // The client's file: the public part (layouts included), no weights or linear ops.
    let client_path = dir.join(format!("{name}.client.ron"));
    let client = load_client(&client_path, 128).expect("client plan loads");
    assert_eq!(&client.plan, &server.public);
    let text = std::fs::read_to_string(&client_path).expect("client plan");
    for word in ["PolyLinear", "kernels", "terms", "weights", "segments"] {
        assert!(
            !text.contains(word),
            "{name}: client plan mentions `{word}`"
        );
    }
    let _: ClientPlanFile = ron::from_str(&text).expect("client plan parses");

    let (data, per) = digits(count);
    let opts = SessionOptions::default();
    // Batch `count`, then each image at batch 1.
    let mut runs = vec![(0, count)];
    runs.extend((0..count).map(|j| (j, 1)));
    let mut cmp = Compare::new(&graph, &out);
    for (start, b) in runs {
        let images = &data[start * per..(start + b) * per];
        let batch = Batch {
            images: b,
            data: images.to_vec(),
        };
        let (secure, crep, _srep) = run_local(&setup, &batch, &opts).expect("two-party run");
        // The report's traffic model against the bytes the session moved (both directions
        // pass through the client), as tests/e2e_models.rs checks batch packing.
        let est = image_traffic(&server.public, b).total();
        let measured = crep.bytes(None) as f64;
        assert!(
            (est - measured).abs() <= measured * 1e-3,
            "{name} (batch {b}): estimated {est} bytes, the session moved {measured}"
        );
        cmp.add(
            images,
            &secure.logits,
            start,
            &format!("{name} (batch {b})"),
        );
    }
    eprintln!(
        "{name}: max |secure − simulated| = {:.2e}, max |secure − f32| = {:.2e}",
        cmp.sim, cmp.reference
    );
    cmp.assert_within(name);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tiny_image_packed() {
    check("tiny", 3);
}

#[test]
fn cryptonets_relu_image_packed() {
    check("cryptonets_relu", 3);
}

#[test]
fn maxpool_cnn_image_packed() {
    check("maxpool_cnn", 3);
}

#[test]
fn residual_image_packed() {
    check("residual", 3);
}

/// A plan whose packed op names a kernel that does not exist is refused at load (untrusted
/// file), with a message naming the op, not a panic.
#[test]
fn bad_layouts_are_refused() {
    let (_, out) = compile("tiny", &image_options());
    let (dir, path) = write_plan(&out, "tiny", "image-bad");
    let good = std::fs::read_to_string(&path).expect("plan");
    let mut plan = out.compiled.server.clone();
    // A term reading a polynomial the input does not have.
    for seg in &mut plan.segments {
        if let Segment::He(h) = seg {
            for op in &mut h.ops {
                if let HeOp::PolyLinear { terms, .. } = op {
                    if let Some(t) = terms.first_mut().and_then(|t| t.first_mut()) {
                        t.1 = 1 << 20;
                    }
                }
            }
        }
    }
    std::fs::write(&path, to_ron(&plan).expect("ron")).expect("write");
    let e = load_server(&path, 128).err().expect("refused");
    assert!(
        matches!(&e, RuntimeError::Plan { message, .. } if message.contains("packed linear")),
        "{e:?}"
    );
    // A public position outside N (the hash is recomputed: the layouts are checked, not only
    // the hash).
    let mut plan = out.compiled.server.clone();
    if let Some(im) = plan.public.image.as_mut() {
        if let Some(p) = im.output.at.first_mut() {
            p.1 = 1 << 30;
        }
    }
    plan.public_hash = plan.public.hash().expect("hash");
    std::fs::write(&path, to_ron(&plan).expect("ron")).expect("write");
    let e = load_server(&path, 128).err().expect("refused");
    assert!(
        matches!(&e, RuntimeError::Plan { message, .. } if message.contains("outside")),
        "{e:?}"
    );
    std::fs::write(&path, good).expect("write");
    assert!(load_server(&path, 128).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}
