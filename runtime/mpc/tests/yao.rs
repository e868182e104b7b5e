//! Both parties as threads, over in-memory and TCP channels, checked against `Circuit::eval`.

mod common;

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    all_gates, decode_words, mem, plaintext, quick, random_bits, random_circuit, relu_batch,
    relu_circuit, rng, tcp_pair,
};
use mp2ml_ir::circuit::builder::Builder;
use mp2ml_ir::circuit::{from_bits, Circuit, Gate};
use mp2ml_mpc::{Channel, ChannelConfig, Evaluator, Garbler, GcConfig, MpcError, TcpChannel};
use rand::Rng;

/// Runs offline + online with the garbler in a thread; returns the evaluator's outputs.
fn run_split<C: Channel + Send + 'static>(
    gch: C,
    ech: C,
    c: &Circuit,
    n: usize,
    g: &[bool],
    e: &[bool],
    config: GcConfig,
) -> Vec<bool> {
    let (c2, g2) = (c.clone(), g.to_vec());
    let server = thread::spawn(move || -> Result<(), MpcError> {
        let mut garbler = Garbler::with_config(gch, rng(1), config);
        let h = garbler.offline(&c2, n, &g2)?;
        garbler.online(h)
    });
    let mut evaluator = Evaluator::with_config(ech, rng(2), config);
    let h = evaluator.offline(c, n).expect("evaluator offline");
    let out = evaluator.online(h, e).expect("evaluator online");
    server.join().expect("server thread").expect("server");
    out
}

fn run_stream<C: Channel + Send + 'static>(
    gch: C,
    ech: C,
    c: &Circuit,
    n: usize,
    g: &[bool],
    e: &[bool],
    config: GcConfig,
) -> Vec<bool> {
    let (c2, g2) = (c.clone(), g.to_vec());
    let server =
        thread::spawn(move || Garbler::with_config(gch, rng(3), config).run_streaming(&c2, n, &g2));
    let out = Evaluator::with_config(ech, rng(4), config)
        .run_streaming(c, n, e)
        .expect("evaluator stream");
    server.join().expect("server thread").expect("server");
    out
}

#[test]
fn every_gate_type_on_every_input_combination() {
    let (c, n, g, e) = all_gates();
    let want = plaintext(&c, n, &g, &e);
    let (a, b) = mem();
    assert_eq!(run_split(a, b, &c, n, &g, &e, GcConfig::default()), want);
    let (a, b) = mem();
    assert_eq!(run_stream(a, b, &c, n, &g, &e, GcConfig::default()), want);
}

#[test]
fn random_circuits_match_plaintext() {
    let mut r = rng(42);
    for round in 0..6 {
        let (gi, ei) = (r.random_range(0..12), r.random_range(1..12));
        let (gates, outs) = (r.random_range(1..400), r.random_range(1..20));
        let c = random_circuit(&mut r, gi, ei, gates, outs);
        let n = r.random_range(1..300);
        let g = random_bits(&mut r, n * gi as usize);
        let e = random_bits(&mut r, n * ei as usize);
        let want = plaintext(&c, n, &g, &e);
        // A tiny chunk budget forces many chunks.
        let small = GcConfig {
            chunk_bytes: 1 + r.random_range(0..40_000),
        };
        for config in [GcConfig::default(), small] {
            let (a, b) = mem();
            assert_eq!(
                run_split(a, b, &c, n, &g, &e, config),
                want,
                "split, round {round}, {config:?}"
            );
            let (a, b) = mem();
            assert_eq!(
                run_stream(a, b, &c, n, &g, &e, config),
                want,
                "stream, round {round}, {config:?}"
            );
        }
    }
}

#[test]
fn adder_and_comparator() {
    let w = 16;
    let mut b = Builder::new("add_lt16", w, w);
    let x = b.garbler_word(0, w);
    let y = b.evaluator_word(0, w);
    let mut outs = b.add(&x, &y);
    let lt = b.gt(&y, &x);
    outs.push(lt);
    let c = b.finish(&outs);
    let mut r = rng(5);
    let n = 500;
    let xs: Vec<u128> = (0..n).map(|_| r.random_range(0..1u128 << w)).collect();
    let ys: Vec<u128> = (0..n)
        .map(|i| {
            if i % 10 == 0 {
                xs[i]
            } else {
                r.random_range(0..1u128 << w)
            }
        })
        .collect();
    let bits = |v: u128| (0..w).map(move |i| (v >> i) & 1 == 1);
    let g: Vec<bool> = xs.iter().flat_map(|&v| bits(v)).collect();
    let e: Vec<bool> = ys.iter().flat_map(|&v| bits(v)).collect();
    let (ca, cb) = mem();
    let out = run_split(ca, cb, &c, n, &g, &e, GcConfig::default());
    let no = w as usize + 2;
    for t in 0..n {
        let o = &out[t * no..(t + 1) * no];
        assert_eq!(
            from_bits(&o[..=w as usize]),
            xs[t] + ys[t],
            "sum of instance {t}"
        );
        assert_eq!(o[no - 1], xs[t] < ys[t], "comparison of instance {t}");
    }
}

#[test]
fn relu_on_shares_in_memory() {
    let c = relu_circuit();
    c.validate().expect("valid");
    let mut r = rng(6);
    let n = 300;
    let (g, e, want) = relu_batch(&mut r, n);
    assert_eq!(
        decode_words(&plaintext(&c, n, &g, &e)),
        want,
        "production circuit vs integer reference"
    );
    let (a, b) = mem();
    assert_eq!(
        decode_words(&run_split(a, b, &c, n, &g, &e, GcConfig::default())),
        want
    );
}

#[test]
fn relu_over_tcp_two_batches_and_streaming() {
    let c = relu_circuit();
    let mut r = rng(7);
    let (n1, n2) = (1000, 37);
    let (g1, e1, w1) = relu_batch(&mut r, n1);
    let (g2, e2, w2) = relu_batch(&mut r, n2);
    let (gch, ech) = tcp_pair(ChannelConfig::default());
    let (c2, g1c, g2c) = (c.clone(), g1.clone(), g2.clone());
    let server = thread::spawn(move || -> Result<_, MpcError> {
        let mut garbler = Garbler::new(gch, rng(8));
        // Two batches prepared offline, then run online in order; then a streamed batch.
        let h1 = garbler.offline(&c2, n1, &g1c)?;
        let h2 = garbler.offline(&c2, n2, &g2c)?;
        garbler.online(h1)?;
        garbler.online(h2)?;
        garbler.run_streaming(&c2, n1, &g1c)?;
        Ok(garbler.channel().stats())
    });
    let mut ev = Evaluator::new(ech, rng(9));
    let h1 = ev.offline(&c, n1).expect("offline 1");
    let tables = h1.table_bytes();
    let h2 = ev.offline(&c, n2).expect("offline 2");
    assert_eq!(decode_words(&ev.online(h1, &e1).expect("online 1")), w1);
    assert_eq!(decode_words(&ev.online(h2, &e2).expect("online 2")), w2);
    assert_eq!(
        decode_words(&ev.run_streaming(&c, n1, &e1).expect("stream")),
        w1
    );
    let gstats = server.join().expect("thread").expect("server");
    let estats = ev.channel().stats();
    // 32 bytes per AND gate; both sides count the same traffic per phase.
    let ands = c.stats().and as usize;
    assert_eq!(tables, 32 * ands * n1);
    for phase in ["offline", "online", "stream"] {
        assert_eq!(
            gstats.phase(phase).sent,
            estats.phase(phase).received,
            "{phase}"
        );
        assert_eq!(
            gstats.phase(phase).received,
            estats.phase(phase).sent,
            "{phase}"
        );
    }
    assert!(gstats.phase("offline").sent as usize > 32 * ands * (n1 + n2));
    // Online: 8-byte batch id + one correction bit per input bit up, two labels per bit down.
    let bits = 32 * (n1 + n2);
    assert_eq!(
        estats.phase("online").sent as usize,
        16 + (32 * n1).div_ceil(8) + (32 * n2).div_ceil(8)
    );
    assert_eq!(gstats.phase("online").sent as usize, 32 * bits);
    assert_eq!(ev.reports().len(), 5);
}

#[test]
fn mismatched_batches_are_detected() {
    let c = relu_circuit();
    let (gch, ech) = mem();
    let c2 = c.clone();
    let server = thread::spawn(move || {
        let mut garbler = Garbler::new(gch, rng(10));
        garbler.offline(&c2, 5, &vec![false; 5 * c2.garbler_inputs as usize])
    });
    let mut ev = Evaluator::new(ech, rng(11));
    assert!(matches!(ev.offline(&c, 6), Err(MpcError::Mismatch(_))));
    drop(ev);
    assert!(server.join().expect("thread").is_err());
}

#[test]
fn bad_inputs_and_circuits_are_rejected_before_any_traffic() {
    let (gch, ech) = mem();
    let c = relu_circuit();
    let mut garbler = Garbler::new(gch, rng(12));
    assert!(matches!(
        garbler.offline(&c, 2, &[true; 3]),
        Err(MpcError::InputLength { .. })
    ));
    let mut bad = c.clone();
    bad.gates.push(Gate::And(0, 1_000_000));
    assert!(matches!(
        garbler.offline(&bad, 1, &[]),
        Err(MpcError::Circuit(_))
    ));
    let mut ev = Evaluator::new(ech, rng(13));
    assert!(matches!(
        ev.run_streaming(&bad, 1, &[]),
        Err(MpcError::Circuit(_))
    ));
    assert!(matches!(
        ev.run_streaming(&c, 1, &[true; 2]),
        Err(MpcError::InputLength { .. })
    ));
    assert_eq!(garbler.channel().stats().sent(), 0);
    assert_eq!(ev.channel().stats().sent(), 0);
}

const TIMEOUT: Duration = Duration::from_millis(500);
const MARGIN: Duration = Duration::from_millis(700);

#[test]
fn garbler_disconnecting_mid_protocol_fails_the_evaluator_cleanly() {
    let c = relu_circuit();
    for stall in [false, true] {
        let (gch, ech) = tcp_pair(quick(TIMEOUT));
        let c2 = c.clone();
        // The server runs the base OTs and the random OTs, then dies (or stalls) before the
        // garbled tables.
        let server = thread::spawn(move || {
            let mut garbler = Garbler::new(gch, rng(14));
            let g = vec![false; 100 * c2.garbler_inputs as usize];
            let h = garbler.offline(&c2, 100, &g);
            drop(h);
            let ch = garbler.into_channel();
            if stall {
                thread::sleep(TIMEOUT * 4);
            }
            drop(ch);
        });
        let mut ev = Evaluator::new(ech, rng(15));
        ev.offline(&c, 100).expect("offline completes");
        let start = Instant::now();
        let h = ev.offline(&c, 100);
        // Either the second offline fails right away, or (if it could not start) online does.
        let err = match h {
            Err(e) => e,
            Ok(h) => ev
                .online(h, &vec![false; 100 * 32])
                .expect_err("peer is gone"),
        };
        assert!(
            start.elapsed() < TIMEOUT + MARGIN,
            "took {:?}",
            start.elapsed()
        );
        if stall {
            assert!(matches!(err, MpcError::Timeout { .. }), "{err}");
        } else {
            assert!(matches!(err, MpcError::Closed { .. }), "{err}");
        }
        server.join().expect("server thread");
    }
}

#[test]
fn evaluator_disconnecting_mid_protocol_fails_the_garbler_cleanly() {
    let c = relu_circuit();
    let (gch, ech) = tcp_pair(quick(TIMEOUT));
    let c2 = c.clone();
    let client = thread::spawn(move || {
        let mut ev = Evaluator::new(ech, rng(16));
        let h = ev.offline(&c2, 50).expect("offline");
        drop(h);
        // Dies before sending its corrections.
    });
    let mut garbler = Garbler::new(gch, rng(17));
    let h = garbler
        .offline(&c, 50, &vec![true; 50 * c.garbler_inputs as usize])
        .expect("offline");
    client.join().expect("client thread");
    let start = Instant::now();
    let err = garbler.online(h).expect_err("client is gone");
    assert!(
        start.elapsed() < TIMEOUT + MARGIN,
        "took {:?}",
        start.elapsed()
    );
    assert!(matches!(err, MpcError::Closed { .. }), "{err}");
}

#[test]
fn evaluator_rejects_garbage_from_a_raw_peer() {
    // A raw TCP peer sends an oversized/garbage stream: the evaluator fails with an error.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let t = thread::spawn(move || {
        use std::io::Write;
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(&[0xAB; 64]).expect("write");
        thread::sleep(Duration::from_millis(100));
    });
    let ch = TcpChannel::accept(&listener, quick(TIMEOUT)).expect("accept");
    let mut ev = Evaluator::new(ch, rng(18));
    assert!(matches!(
        ev.offline(&relu_circuit(), 3),
        Err(MpcError::Mismatch(_))
    ));
    t.join().expect("peer");
}

const CHILD_ADDR: &str = "MP2ML_MPC_GARBLER_ADDR";

/// The server role of `relu_in_two_processes_over_tcp`, run in a child process.
#[test]
#[ignore = "helper: started as a child process by relu_in_two_processes_over_tcp"]
fn garbler_child_process() {
    let addr = std::env::var(CHILD_ADDR).expect("run by relu_in_two_processes_over_tcp");
    let c = relu_circuit();
    let (g, _, _) = relu_batch(&mut rng(21), 400);
    let ch = TcpChannel::connect(addr.as_str(), ChannelConfig::default()).expect("connect");
    let mut garbler = Garbler::from_os_rng(ch).expect("os rng");
    let h = garbler.offline(&c, 400, &g).expect("offline");
    garbler.online(h).expect("online");
}

#[test]
fn relu_in_two_processes_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "garbler_child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ADDR, addr.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the garbler process");
    let config = ChannelConfig {
        read_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let ch = TcpChannel::accept_within(&listener, config, Duration::from_secs(60))
        .expect("the garbler process connects");
    let c = relu_circuit();
    let (_, e, want) = relu_batch(&mut rng(21), 400);
    let mut ev = Evaluator::from_os_rng(ch).expect("os rng");
    let h = ev.offline(&c, 400).expect("offline");
    let out = ev.online(h, &e).expect("online");
    assert_eq!(decode_words(&out), want);
    assert!(
        child.wait().expect("child").success(),
        "garbler process failed"
    );
}

/// The production ReLU with truncation (K = 40 low bits dropped, Q0 the product of the primes
/// 2^61 − 1 and 2^31 − 1, 92-bit shares) garbled and evaluated, against the integer rule of
/// `mp2ml_ir::circuit::activations` ("Truncation"): `y = 0` if `⌊v/2^K⌋ > ⌊h/2^K⌋`, else
/// `v >> K`.
#[test]
fn truncating_relu_garbled_matches_its_integer_rule() {
    use mp2ml_ir::circuit::activations::{relu, CircuitParams};
    use mp2ml_ir::circuit::to_bits;
    let q0: u128 = ((1u128 << 61) - 1) * ((1u128 << 31) - 1);
    let k = 40;
    let sc = relu(&CircuitParams {
        q0,
        trunc: k,
        sigma: 40,
        style: Default::default(),
    });
    sc.check_layout().expect("layout");
    let (w, mb) = (sc.share_bits, sc.mask_bits);
    assert_eq!((w, sc.out_bits, sc.trunc), (92, 92 - 1 - k, k));
    let mut r = rng(17);
    let n = 200;
    let (mut g, mut e, mut want) = (Vec::new(), Vec::new(), Vec::new());
    let half_k = (q0 / 2) >> k;
    for i in 0..n {
        let a = r.random_range(0..q0);
        // A few values at the sign boundary, the rest uniform.
        let v = match i {
            0 => 0,
            1 => q0 - 1,
            2 => (half_k << k) + (1 << k) - 1,
            3 => (half_k + 1) << k,
            _ => r.random_range(0..q0),
        };
        let b = (v + q0 - a) % q0;
        let mask = r.random_range(0..1u128 << mb);
        g.extend(to_bits(b, w));
        g.extend(to_bits(mask, mb));
        e.extend(to_bits(a, w));
        let y = if (v >> k) > half_k { 0 } else { v >> k };
        want.push(y + mask);
    }
    let words =
        |out: &[bool]| -> Vec<u128> { out.chunks(sc.z_bits() as usize).map(from_bits).collect() };
    assert_eq!(words(&plaintext(&sc.circuit, n, &g, &e)), want, "plaintext");
    let (a, b) = mem();
    assert_eq!(
        words(&run_split(
            a,
            b,
            &sc.circuit,
            n,
            &g,
            &e,
            GcConfig::default()
        )),
        want,
        "garbled"
    );
}
