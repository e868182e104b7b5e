//! GMW with both parties as threads, over in-memory and TCP channels, checked against
//! `Circuit::eval`; peers that disconnect or stall in the middle of a round.

mod common;

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    all_gates, decode_words, mem, plaintext, quick, random_bits, random_circuit, relu_batch,
    relu_circuit, rng, tcp_pair,
};
use mp2ml_ir::circuit::activations::{clip, leaky_relu, maxpool, relu, square, CircuitParams};
use mp2ml_ir::circuit::{to_bits, Circuit, Gate, ShareCircuit, Style};
use mp2ml_mpc::{
    Channel, ChannelConfig, ChannelStats, GmwClient, GmwConfig, GmwServer, MemChannel, MpcError,
    TcpChannel,
};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

/// Offline + online with the server in a thread; returns the client's outputs and both
/// channels' statistics (server, client).
fn run<C: Channel + Send + 'static>(
    mut sch: C,
    mut cch: C,
    c: &Circuit,
    n: usize,
    g: &[bool],
    e: &[bool],
    config: GmwConfig,
) -> (Vec<bool>, ChannelStats, ChannelStats) {
    let (c2, g2) = (c.clone(), g.to_vec());
    let server = thread::spawn(move || -> Result<ChannelStats, MpcError> {
        let mut s = GmwServer::with_config(rng(1), config);
        let h = s.offline(&mut sch, &c2, n, &g2)?;
        s.online(&mut sch, h)?;
        Ok(sch.stats())
    });
    let mut client = GmwClient::with_config(rng(2), config);
    let h = client.offline(&mut cch, c, n).expect("client offline");
    let out = client.online(&mut cch, h, e).expect("client online");
    let sstats = server.join().expect("server thread").expect("server");
    (out, sstats, cch.stats())
}

#[test]
fn every_gate_type_on_every_input_combination() {
    let (c, n, g, e) = all_gates();
    let want = plaintext(&c, n, &g, &e);
    let (a, b) = mem();
    assert_eq!(run(a, b, &c, n, &g, &e, GmwConfig::default()).0, want);
}

#[test]
fn random_circuits_match_plaintext() {
    let mut r = rng(42);
    for round in 0..8 {
        let (gi, ei) = (r.random_range(0..12), r.random_range(1..12));
        let (gates, outs) = (r.random_range(1..400), r.random_range(1..20));
        let c = random_circuit(&mut r, gi, ei, gates, outs);
        let n = r.random_range(1..300);
        let g = random_bits(&mut r, n * gi as usize);
        let e = random_bits(&mut r, n * ei as usize);
        let want = plaintext(&c, n, &g, &e);
        // A tiny budget forces chunks of 64 instances and many small OT batches.
        let small = GmwConfig {
            chunk_bytes: 1 + r.random_range(0..40_000),
            ot_batch: 1 + r.random_range(0..500),
        };
        for config in [GmwConfig::default(), small] {
            let (a, b) = mem();
            assert_eq!(
                run(a, b, &c, n, &g, &e, config).0,
                want,
                "round {round}, {config:?}"
            );
        }
    }
}

/// Online bytes one side sends for `n` instances: the batch number, then per AND layer
/// 2 bits per AND per instance, exactly packed.
fn online_bytes(c: &Circuit, n: usize) -> usize {
    let base = c.num_inputs() as usize;
    let mut depth = vec![0usize; base + c.gates.len()];
    let mut per_layer = std::collections::BTreeMap::<usize, usize>::new();
    for (i, g) in c.gates.iter().enumerate() {
        let (a, b) = g.inputs();
        let d = depth[a as usize].max(b.map_or(0, |b| depth[b as usize]));
        depth[base + i] = match g {
            Gate::And(..) => {
                *per_layer.entry(d + 1).or_default() += 1;
                d + 1
            }
            _ => d,
        };
    }
    8 + per_layer
        .values()
        .map(|&ands| (2 * ands * n).div_ceil(8))
        .sum::<usize>()
}

#[test]
fn relu_over_tcp_matches_the_reference_and_moves_two_bits_per_and_online() {
    let c = relu_circuit();
    let mut r = rng(7);
    let n = 1000;
    let (g, e, want) = relu_batch(&mut r, n);
    let (a, b) = tcp_pair(ChannelConfig::default());
    let (out, ss, cs) = run(a, b, &c, n, &g, &e, GmwConfig::default());
    assert_eq!(decode_words(&out), want);
    for phase in ["offline", "online"] {
        assert_eq!(ss.phase(phase).sent, cs.phase(phase).received, "{phase}");
        assert_eq!(ss.phase(phase).received, cs.phase(phase).sent, "{phase}");
    }
    let ands = c.stats().and as usize;
    let rounds = online_bytes(&c, n);
    assert_eq!(cs.phase("online").sent as usize, rounds);
    // The server also sends its output shares.
    assert_eq!(
        ss.phase("online").sent as usize,
        rounds + (c.outputs.len() * n).div_ceil(8)
    );
    // Offline: two IKNP random OTs per AND, 16 bytes of columns each, plus base OTs.
    let ot = 2 * 16 * ands * n;
    let off = (ss.phase("offline").sent + cs.phase("offline").sent) as usize;
    assert!(off >= ot && off < ot + 64 * 1024, "{off} vs {ot}");
}

#[test]
fn two_batches_in_order_and_mismatches_are_detected() {
    let c = relu_circuit();
    let mut r = rng(8);
    let (g1, e1, w1) = relu_batch(&mut r, 70);
    let (g2, e2, w2) = relu_batch(&mut r, 3);
    let (mut sch, mut cch) = mem();
    let (c2, g1c, g2c) = (c.clone(), g1.clone(), g2.clone());
    let server = thread::spawn(move || -> Result<(), MpcError> {
        let mut s = GmwServer::new(rng(3));
        let h1 = s.offline(&mut sch, &c2, 70, &g1c)?;
        let h2 = s.offline(&mut sch, &c2, 3, &g2c)?;
        s.online(&mut sch, h1)?;
        s.online(&mut sch, h2)?;
        // Third batch: a different instance count than the client expects.
        s.offline(&mut sch, &c2, 4, &g1c[..4 * c2.garbler_inputs as usize])
            .map(|_| ())
    });
    let mut client = GmwClient::new(rng(4));
    let h1 = client.offline(&mut cch, &c, 70).expect("offline 1");
    let h2 = client.offline(&mut cch, &c, 3).expect("offline 2");
    assert_eq!(h1.depth(), c.stats().and_depth as usize);
    assert_eq!(
        decode_words(&client.online(&mut cch, h1, &e1).expect("online 1")),
        w1
    );
    assert_eq!(
        decode_words(&client.online(&mut cch, h2, &e2).expect("online 2")),
        w2
    );
    let err = client
        .offline(&mut cch, &c, 5)
        .expect_err("instance counts differ");
    assert!(matches!(err, MpcError::Mismatch(_)), "{err}");
    drop(cch);
    let _ = server.join().expect("server thread");
}

#[test]
fn bad_input_lengths_are_rejected_before_any_traffic() {
    let c = relu_circuit();
    let (mut a, _b) = MemChannel::pair(ChannelConfig::default());
    let mut s = GmwServer::new(rng(5));
    let err = s
        .offline(&mut a, &c, 10, &[true; 3])
        .expect_err("short input");
    assert!(matches!(err, MpcError::InputLength { .. }), "{err}");
    assert_eq!(a.stats().sent(), 0);
    let mut bad = c.clone();
    bad.gates.push(Gate::And(0, 1_000_000));
    let err = s.offline(&mut a, &bad, 1, &[]).expect_err("bad circuit");
    assert!(matches!(err, MpcError::Circuit(_)), "{err}");
    assert_eq!(a.stats().sent(), 0);
}

const TIMEOUT: Duration = Duration::from_millis(400);
const MARGIN: Duration = Duration::from_millis(1500);

/// A channel that, at its `cut`-th round, hangs up (drops the connection) or stalls (keeps it
/// open, sends nothing) instead of exchanging.
struct Cut {
    inner: Option<TcpChannel>,
    rounds: usize,
    cut: usize,
    stall: bool,
}

impl Cut {
    fn ch(&mut self) -> mp2ml_mpc::Result<&mut TcpChannel> {
        self.inner.as_mut().ok_or(MpcError::Closed {
            phase: "cut".into(),
        })
    }
}

impl Channel for Cut {
    fn send(&mut self, bytes: &[u8]) -> mp2ml_mpc::Result<()> {
        self.ch()?.send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.ch()?.recv(buf)
    }
    fn flush(&mut self) -> mp2ml_mpc::Result<()> {
        self.ch()?.flush()
    }
    fn exchange(&mut self, out: &[u8], inp: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.rounds += 1;
        if self.rounds == self.cut {
            if self.stall {
                thread::sleep(TIMEOUT * 4);
            }
            self.inner = None;
            return Err(MpcError::Closed {
                phase: "cut".into(),
            });
        }
        self.ch()?.exchange(out, inp)
    }
    fn set_phase(&mut self, phase: &str) {
        if let Some(c) = self.inner.as_mut() {
            c.set_phase(phase);
        }
    }
    fn stats(&self) -> ChannelStats {
        self.inner.as_ref().map(|c| c.stats()).unwrap_or_default()
    }
    fn max_frame(&self) -> usize {
        1 << 20
    }
}

#[test]
fn a_peer_that_hangs_up_or_stalls_mid_round_fails_the_other_cleanly() {
    let c = relu_circuit();
    let depth = c.stats().and_depth as usize;
    assert!(depth > 4);
    let mut r = rng(11);
    let n = 130;
    let (g, e, _) = relu_batch(&mut r, n);
    for server_fails in [true, false] {
        for stall in [false, true] {
            let (sch, cch) = tcp_pair(quick(TIMEOUT));
            let (fail_ch, ok_ch) = if server_fails { (sch, cch) } else { (cch, sch) };
            let mut ch = Cut {
                inner: Some(fail_ch),
                rounds: 0,
                cut: depth / 2,
                stall,
            };
            let (c2, g2, e2) = (c.clone(), g.clone(), e.clone());
            // The failing side cuts its connection in the middle of the online rounds.
            let failing = thread::spawn(move || {
                if server_fails {
                    let mut s = GmwServer::new(rng(12));
                    let h = s.offline(&mut ch, &c2, n, &g2).expect("offline");
                    s.online(&mut ch, h).map(|_| ())
                } else {
                    let mut cl = GmwClient::new(rng(13));
                    let h = cl.offline(&mut ch, &c2, n).expect("offline");
                    cl.online(&mut ch, h, &e2).map(|_| ())
                }
            });
            let mut ch = ok_ch;
            let (err, start) = if server_fails {
                let mut cl = GmwClient::new(rng(14));
                let h = cl.offline(&mut ch, &c, n).expect("offline");
                let start = Instant::now();
                (cl.online(&mut ch, h, &e).expect_err("peer is gone"), start)
            } else {
                let mut s = GmwServer::new(rng(15));
                let h = s.offline(&mut ch, &c, n, &g).expect("offline");
                let start = Instant::now();
                (s.online(&mut ch, h).expect_err("peer is gone"), start)
            };
            let took = start.elapsed();
            let limit = if stall { TIMEOUT + MARGIN } else { MARGIN };
            assert!(
                took < limit,
                "server_fails {server_fails} stall {stall}: {took:?}"
            );
            if stall {
                assert!(matches!(err, MpcError::Timeout { .. }), "{err}");
            } else {
                assert!(matches!(err, MpcError::Closed { .. }), "{err}");
            }
            assert!(failing.join().expect("thread").is_err());
        }
    }
}

#[test]
fn garbage_from_a_raw_peer_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let raw = thread::spawn(move || {
        use std::io::Write;
        let mut s = TcpStream::connect(addr).expect("connect");
        let _ = s.write_all(&[0xab; 4096]);
        thread::sleep(Duration::from_millis(200));
    });
    let mut ch = TcpChannel::accept(&listener, quick(TIMEOUT)).expect("accept");
    let err = GmwClient::new(rng(16))
        .offline(&mut ch, &relu_circuit(), 10)
        .expect_err("garbage");
    assert!(matches!(err, MpcError::Mismatch(_)), "{err}");
    raw.join().expect("raw peer");
}

/// Every production activation circuit at parameters `p` (a 2×2 MaxPool window set over 4
/// inputs, with and without the fused ReLU).
fn production(p: &CircuitParams, frac: u32) -> Vec<ShareCircuit> {
    let windows = vec![vec![0, 1, 2, 3], vec![1, 3]];
    let h = (p.q0 / 4) as i64;
    vec![
        relu(p),
        maxpool(p, 4, &windows, false),
        maxpool(p, 4, &windows, true),
        clip(p, -h, h / 2),
        leaky_relu(p, 13, 7),
        square(p, frac),
    ]
}

/// Server bits (shares then masks) and client bits for instances whose share pairs come from
/// `pairs` (one `(a, b)` per input value).
fn share_bits(
    sc: &ShareCircuit,
    pairs: &[Vec<(u64, u64)>],
    r: &mut ChaCha20Rng,
) -> (Vec<bool>, Vec<bool>) {
    let (mut g, mut e) = (Vec::new(), Vec::new());
    for inst in pairs {
        for &(_, b) in inst {
            g.extend(to_bits(u128::from(b), sc.share_bits));
        }
        for _ in 0..sc.values_out {
            g.extend(to_bits(
                r.random_range(0..1u128 << sc.mask_bits),
                sc.mask_bits,
            ));
        }
        for &(a, _) in inst {
            e.extend(to_bits(u128::from(a), sc.share_bits));
        }
    }
    (g, e)
}

#[test]
fn gmw_equals_plaintext_on_every_production_circuit() {
    let mut r = rng(21);
    // q0 = 97: every share pair (a, b) of single-input circuits, random pairs for MaxPool.
    let small = CircuitParams {
        q0: 97,
        trunc: 0,
        sigma: 3,
        style: Default::default(),
    };
    for sc in production(&small, 2) {
        sc.check_layout().expect("layout");
        let q = u64::try_from(small.q0).expect("q0 fits u64");
        let pairs: Vec<Vec<(u64, u64)>> = if sc.values_in == 1 {
            (0..q)
                .flat_map(|a| (0..q).map(move |b| vec![(a, b)]))
                .collect()
        } else {
            (0..3000)
                .map(|_| {
                    (0..sc.values_in)
                        .map(|_| (r.random_range(0..q), r.random_range(0..q)))
                        .collect()
                })
                .collect()
        };
        let n = pairs.len();
        let (g, e) = share_bits(&sc, &pairs, &mut r);
        let want = plaintext(&sc.circuit, n, &g, &e);
        let (a, b) = mem();
        let got = run(a, b, &sc.circuit, n, &g, &e, GmwConfig::default()).0;
        assert!(
            got == want,
            "{}: GMW differs from plaintext",
            sc.circuit.name
        );
    }
    // A 31-bit q0: random share pairs.
    let full = CircuitParams {
        q0: 2_147_483_647,
        trunc: 0,
        sigma: 40,
        style: Default::default(),
    };
    // The depth-optimized variants (what GMW runs on fast links) too.
    let depth = CircuitParams {
        style: Style::Depth,
        ..full
    };
    for sc in production(&full, 12)
        .into_iter()
        .chain(production(&depth, 12))
    {
        let q = u64::try_from(full.q0).expect("q0 fits u64");
        let pairs: Vec<Vec<(u64, u64)>> = (0..150)
            .map(|_| {
                (0..sc.values_in)
                    .map(|_| (r.random_range(0..q), r.random_range(0..q)))
                    .collect()
            })
            .collect();
        let (g, e) = share_bits(&sc, &pairs, &mut r);
        let want = plaintext(&sc.circuit, pairs.len(), &g, &e);
        let (a, b) = mem();
        let got = run(a, b, &sc.circuit, pairs.len(), &g, &e, GmwConfig::default()).0;
        assert!(
            got == want,
            "{}: GMW differs from plaintext",
            sc.circuit.name
        );
    }
}

/// Records what a party opens online (its `d, e` bits per AND layer).
struct Record {
    inner: MemChannel,
    opened: Vec<u8>,
}

impl Channel for Record {
    fn send(&mut self, bytes: &[u8]) -> mp2ml_mpc::Result<()> {
        self.inner.send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.inner.recv(buf)
    }
    fn flush(&mut self) -> mp2ml_mpc::Result<()> {
        self.inner.flush()
    }
    fn exchange(&mut self, out: &[u8], inp: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.opened.extend_from_slice(out);
        self.inner.exchange(out, inp)
    }
    fn set_phase(&mut self, phase: &str) {
        self.inner.set_phase(phase)
    }
    fn stats(&self) -> ChannelStats {
        self.inner.stats()
    }
    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }
}

/// The client's opened bits of one session on fixed inputs, with parties from `make`.
fn opened_bits(make: impl Fn() -> (GmwServer, GmwClient)) -> Vec<u8> {
    let c = relu_circuit();
    let mut r = rng(5);
    let n = 70;
    let (g, e, _) = relu_batch(&mut r, n);
    let (sch, cch) = mem();
    let (mut server, mut client) = make();
    let c2 = c.clone();
    let t = thread::spawn(move || -> mp2ml_mpc::Result<()> {
        let mut ch = sch;
        let h = server.offline(&mut ch, &c2, n, &g)?;
        server.online(&mut ch, h)
    });
    let mut ch = Record {
        inner: cch,
        opened: Vec::new(),
    };
    let h = client.offline(&mut ch, &c, n).expect("offline");
    client.online(&mut ch, h, &e).expect("online");
    t.join().expect("server thread").expect("server");
    ch.opened
}

#[test]
fn triples_are_fresh_per_session() {
    // Positive control: the same randomness opens the same bits, so the recording sees what
    // the triples determine.
    let seeded = || (GmwServer::new(rng(40)), GmwClient::new(rng(41)));
    let a = opened_bits(seeded);
    assert!(!a.is_empty());
    assert_eq!(a, opened_bits(seeded));
    // Two sessions from the operating system's randomness on the same inputs: the opened
    // bits x ⊕ a differ (fresh triples and input sharings), about half of them.
    let os = || {
        (
            GmwServer::from_os_rng().expect("entropy"),
            GmwClient::from_os_rng().expect("entropy"),
        )
    };
    let (x, y) = (opened_bits(os), opened_bits(os));
    assert_eq!(x.len(), y.len());
    let diff: u32 = x.iter().zip(&y).map(|(p, q)| (p ^ q).count_ones()).sum();
    let bits = 8 * x.len() as u32;
    assert!(
        diff > bits / 3 && diff < 2 * bits / 3,
        "{diff} of {bits} opened bits differ between sessions"
    );
}
