//! The two-party protocol end to end on a hand-built plan (no compiler involved):
//! `y = W2 · relu(W1 · x + b1) + b2`, checked against the same computation in f64, over real
//! TCP on loopback; plus the handshake's refusals.

use std::net::TcpListener;

use mp2ml_ir::plan::MpcBackend;
use mp2ml_mpc::TcpChannel;
use mp2ml_runtime::client::{run_client, Batch};
use mp2ml_runtime::error::{ProtocolError, Refusal, RuntimeError};
use mp2ml_runtime::local::{channel_config, client_setup_of, run_local};
use mp2ml_runtime::plan::load_server;
use mp2ml_runtime::server::serve;
use mp2ml_runtime::session::SessionOptions;
use mp2ml_tests::toy::{model, write_plan, write_plan_with};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mp2ml-synth-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

/// Runs the toy plan on `images` random inputs and checks the outputs against f64.
fn run_toy(tag: &str, images: usize, mod_drop: bool) {
    run_toy_with(tag, images, mod_drop, &SessionOptions::default())
}

fn run_toy_with(tag: &str, images: usize, mod_drop: bool, opts: &SessionOptions) {
    let mut rng = StdRng::seed_from_u64(7 + images as u64);
    let model = model(&mut rng);
    let dir = tmpdir(tag);
    let path = write_plan_with(&dir, &model, mod_drop);
    let setup = load_server(&path, 128).expect("plan loads");
    let data: Vec<f32> = (0..images * 4)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let batch = Batch {
        images,
        data: data.clone(),
    };
    let (out, crep, srep) = run_local(&setup, &batch, opts).expect("protocol runs");
    let mut max_err = 0f64;
    for j in 0..images {
        let want = model.eval(&data[j * 4..(j + 1) * 4]);
        for (k, w) in want.iter().enumerate() {
            max_err = max_err.max((f64::from(out.logits[j * 2 + k]) - w).abs());
        }
    }
    println!(
        "{tag}: max |secure − plaintext| = {max_err:.2e}; client {} bytes, server steps {}",
        crep.bytes(None),
        srep.steps.len()
    );
    // Error budget: the re-randomization noise of HE→MPC (a public-key encryption of zero,
    // |e·u + e1·s + e0| ≲ 2^12 here) over Δ = 2^20, through |W2| ≤ 3, plus flooding
    // 2^52 over the output scale 2^60: about 1e-2 in the worst case, ~1e-3 typically.
    assert!(max_err < 1e-2, "{tag}: secure outputs deviate by {max_err}");
    assert!(crep.and_gates() > 0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_party_run_matches_plaintext() {
    // 37 images: the windows are computed with NTTs.
    run_toy("ok", 37, false);
}

#[test]
fn single_image_uses_direct_windows_and_matches_plaintext() {
    // One image: window products by direct convolution (width ≤ 8).
    run_toy("one", 1, false);
}

#[test]
fn mod_drop_path_matches_plaintext() {
    // Input one level above the first layer, an explicit ModDrop on both halves.
    run_toy("moddrop", 5, true);
}

#[test]
fn tampered_weights_and_plans_are_refused() {
    let mut rng = StdRng::seed_from_u64(8);
    let model = model(&mut rng);
    let dir = tmpdir("bad");
    let path = write_plan(&dir, &model);
    // Weights altered → hash mismatch.
    let wpath = dir.join("toy.weights.bin");
    let mut w = std::fs::read(&wpath).expect("read");
    let last = w.len() - 1;
    w[last] ^= 1;
    std::fs::write(&wpath, &w).expect("write");
    let err = load_server(&path, 128).err().expect("must fail");
    assert!(
        matches!(&err, RuntimeError::Plan { message, .. } if message.contains("weights file does not match")),
        "{err:?}"
    );
    // An edited parameter changes the public hash → refused.
    let text = std::fs::read_to_string(&path).expect("read");
    let edited = text.replacen("log_n: 13", "log_n: 12", 1);
    std::fs::write(&path, edited).expect("write");
    let err = load_server(&path, 128).err().expect("must fail");
    assert!(
        matches!(&err, RuntimeError::Plan { message, .. } if message.contains("hash")),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gmw_override_matches_plaintext() {
    let opts = SessionOptions {
        mpc: Some(MpcBackend::Gmw),
        ..SessionOptions::default()
    };
    run_toy_with("gmw", 3, false, &opts);
}

#[test]
fn parties_with_different_mpc_overrides_are_refused_at_the_handshake() {
    let mut rng = StdRng::seed_from_u64(9);
    let model = model(&mut rng);
    let dir = tmpdir("mpc-mismatch");
    let setup = load_server(&write_plan(&dir, &model), 128).expect("plan loads");
    let client = client_setup_of(&setup);
    let batch = Batch {
        images: 1,
        data: vec![0.5; 4],
    };
    for (s, c) in [
        (Some(MpcBackend::Gmw), None),
        (None, Some(MpcBackend::Yao)),
        (Some(MpcBackend::Yao), Some(MpcBackend::Gmw)),
    ] {
        let so = SessionOptions {
            mpc: s,
            ..SessionOptions::default()
        };
        let co = SessionOptions {
            mpc: c,
            ..SessionOptions::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cfg = channel_config(&setup.params, &so);
        let (srv, cli) = std::thread::scope(|sc| {
            let t = sc.spawn(|| {
                let ch = TcpChannel::accept(&listener, cfg).expect("accept");
                serve(&setup, ch, &so)
            });
            let ch = TcpChannel::connect(addr, cfg).expect("connect");
            let cli = run_client(&client, ch, &batch, &co);
            (t.join().expect("server thread"), cli)
        });
        // The client hears the server's reason; the server names the mismatch.
        assert!(
            matches!(&cli, Err(RuntimeError::Refused(m)) if m.contains("--mpc")),
            "{s:?}/{c:?}: {cli:?}"
        );
        assert!(
            matches!(
                &srv,
                Err(RuntimeError::Protocol(ProtocolError::RefusedClient(
                    Refusal::Backend { .. }
                )))
            ),
            "{s:?}/{c:?}: {srv:?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
