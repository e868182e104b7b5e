//! `mp2ml-run --role server` as a service, tried as an attacker and an operator would, with the
//! real binary on loopback: concurrent sessions under `--max-sessions`, silent and trickling
//! peers dropped by the handshake deadline, a client that vanishes mid-session freeing its slot,
//! busy refusals retried by the client, memory back to its level after a burst, SIGTERM
//! draining, and the metrics page.
//!
//! Plans: the bundled `tiny` model (784 inputs, one ReLU step) where results are checked
//! against its PyTorch logits, and `tests/bad_inputs/ok_small.onnx` (8 inputs, ~30 ms per
//! session) where many or long sessions are needed. Every wait is bounded.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mp2ml_mpc::{Channel, ChannelStats, MpcError, TcpChannel};
use mp2ml_runtime::client::{run_client, Batch};
use mp2ml_runtime::local::channel_config;
use mp2ml_runtime::npy;
use mp2ml_runtime::plan::load_client;
use mp2ml_runtime::session::SessionOptions;
use mp2ml_tests::bins::bin;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiled plans, shared by the tests of this binary.
struct Plans {
    dir: PathBuf,
    /// The MNIST test digits and the PyTorch logits of `tiny` on them.
    digits: Vec<f32>,
    logits: Vec<f32>,
}

fn plans() -> &'static Plans {
    static P: OnceLock<Plans> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mp2ml-service-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmpdir");
        // `small` is run on 2048 images in one session, so it is compiled in batch packing
        // (at the default batch of 1 the cost model picks image packing, one image per round).
        for (model, out, packing) in [
            (root().join("models/tiny.onnx"), "tiny.ron", "auto"),
            (
                root().join("tests/bad_inputs/ok_small.onnx"),
                "small.ron",
                "batch",
            ),
        ] {
            let o = Command::new(bin("mp2mlc"))
                .arg(&model)
                .args(["--packing", packing])
                .arg("-o")
                .arg(dir.join(out))
                .output()
                .expect("mp2mlc");
            assert!(
                o.status.success(),
                "mp2mlc: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let (_, digits) = npy::read_f32(&root().join("models/mnist_test_x.npy")).expect("digits");
        let (_, logits) =
            npy::read_f32(&root().join("models/tiny.expected_logits.npy")).expect("logits");
        // Inputs: one digit per file for `tiny`, and batches for `small`.
        for i in 0..8 {
            npy::write_f32(
                &dir.join(format!("digit{i}.npy")),
                &[1, 1, 28, 28],
                &digits[i * 784..(i + 1) * 784],
            )
            .expect("write digit");
        }
        for b in [1usize, 2048] {
            let x: Vec<f32> = (0..8 * b).map(|i| (i % 11) as f32 / 11.0).collect();
            npy::write_f32(&dir.join(format!("small{b}.npy")), &[b, 8], &x).expect("write");
        }
        Plans {
            dir,
            digits,
            logits,
        }
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running `mp2ml-run --role server`.
struct Server {
    child: Child,
    port: u16,
    metrics: u16,
    log: PathBuf,
    err: PathBuf,
}

impl Server {
    /// Starts a server for `plan` (`tiny` or `small`) with `args`; waits until it listens.
    fn start(tag: &str, plan: &str, args: &[&str]) -> Server {
        let p = plans();
        let (port, metrics) = (free_port(), free_port());
        let log = p.dir.join(format!("{tag}.jsonl"));
        let err = p.dir.join(format!("{tag}.err"));
        let _ = std::fs::remove_file(&log);
        let child = Command::new(bin("mp2ml-run"))
            .args(["--role", "server"])
            .arg(p.dir.join(format!("{plan}.ron")))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics", &format!("127.0.0.1:{metrics}")])
            .arg("--json-log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn server");
        let s = Server {
            child,
            port,
            metrics,
            log,
            err,
        };
        let start = Instant::now();
        while !s.stderr().contains("serving") {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not start: {}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The JSON log's records.
    fn records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Complete lines only (a record may be being written).
        let done = text.rfind('\n').map_or("", |i| &text[..i]);
        done.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON log line"))
            .collect()
    }

    /// The metrics page, parsed: every sample line is `name{labels} value`.
    fn metrics(&self) -> Vec<(String, f64)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics)).expect("metrics port");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut page = String::new();
        s.read_to_string(&mut page).expect("response");
        let (head, body) = page.split_once("\r\n\r\n").expect("HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.trim_end().ends_with("# EOF"), "{body}");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').expect("sample line");
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("value in {l}"));
                (name.to_owned(), v)
            })
            .collect()
    }

    fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, v)| *v)
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .expect("server VmRSS")
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits for the server to exit (at most `limit`).
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("server did not exit within {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client process against `server` with `args` after the plan.
fn client(server: &Server, plan: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin("mp2ml-run"));
    c.args(["--role", "client"])
        .arg(plans().dir.join(format!("{plan}.client.ron")))
        .args(["--connect", &server.addr()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("client did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits until `cond` holds (at most `limit`).
fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long the peer at `s` stays connected (reads until EOF or error), at most `limit`.
fn held_for(mut s: TcpStream, since: Instant, limit: Duration) -> Duration {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut b = [0u8; 64];
    while let Ok(n) = s.read(&mut b) {
        if n == 0 {
            break;
        }
    }
    since.elapsed()
}

/// `--max-sessions 4`, 8 clients of `tiny` at once, each with its own digit, while a silent
/// peer holds a connection: every client gets its digit's logits (against PyTorch), at most 4
/// sessions overlap and more than one does, the silent peer is dropped at the handshake
/// deadline, and the metrics page counts all of it.
#[test]
fn eight_clients_four_slots_and_a_silent_peer() {
    let p = plans();
    let srv = Server::start(
        "eight",
        "tiny",
        &[
            "--max-sessions",
            "4",
            "--handshake-timeout",
            "3",
            "--timeout",
            "30",
        ],
    );
    let silent_at = Instant::now();
    let silent = TcpStream::connect(srv.addr()).expect("silent peer connects");
    let silent = std::thread::spawn(move || held_for(silent, silent_at, Duration::from_secs(20)));
    let children: Vec<(usize, PathBuf, Child)> = (0..8)
        .map(|i| {
            let out = p.dir.join(format!("eight-y{i}.npy"));
            let input = p.dir.join(format!("digit{i}.npy"));
            let c = client(
                &srv,
                "tiny",
                &[
                    "--input",
                    input.to_str().expect("path"),
                    "--output",
                    out.to_str().expect("path"),
                    "--retries",
                    "30",
                ],
            )
            .spawn()
            .expect("client");
            (i, out, c)
        })
        .collect();
    for (i, out, c) in children {
        let o = wait_output(c, Duration::from_secs(120));
        assert!(o.status.success(), "client {i}: {}", text(&o));
        let (shape, y) = npy::read_f32(&out).expect("client output");
        assert_eq!(shape, vec![1, 10]);
        let want = &p.logits[i * 10..(i + 1) * 10];
        let err = y
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // Fixed-point weights and activations against PyTorch's f32.
        assert!(err < 0.05, "client {i}: {y:?} vs {want:?} (max err {err})");
    }
    let held = silent.join().expect("silent peer");
    assert!(
        held >= Duration::from_millis(2900) && held < Duration::from_secs(6),
        "the silent peer was held for {held:?} (handshake deadline 3 s)"
    );
    // The log: 8 sessions ok, at most 4 at once and more than 1; the silent peer dropped.
    until(Duration::from_secs(5), "the log", || {
        srv.records()
            .iter()
            .filter(|r| r["outcome"] == "ok")
            .count()
            == 8
            && srv.records().iter().any(|r| r["outcome"] == "dropped")
    });
    let recs = srv.records();
    let ok: Vec<(f64, f64)> = recs
        .iter()
        .filter(|r| r["outcome"] == "ok")
        .map(|r| {
            // From the admission (the place taken) to the end: a session accepted while four
            // run waits for its hello and admission outside the limit.
            let s = r["start"].as_f64().expect("start");
            let a = r["admitted"].as_f64().expect("an ok session was admitted");
            (a, s + r["seconds"].as_f64().expect("seconds"))
        })
        .collect();
    let overlap = ok
        .iter()
        .map(|&(s, _)| ok.iter().filter(|&&(a, b)| a <= s && s < b).count())
        .max()
        .unwrap_or(0);
    assert!((2..=4).contains(&overlap), "{overlap} sessions overlapped");
    let dropped = recs
        .iter()
        .find(|r| r["outcome"] == "dropped")
        .expect("dropped record");
    assert!(
        dropped["detail"]
            .as_str()
            .unwrap_or("")
            .contains("deadline"),
        "{dropped}"
    );
    // The metrics agree with the log.
    let refused_busy = recs.iter().filter(|r| r["outcome"] == "refused").count();
    assert_eq!(srv.metric("mp2ml_sessions_started_total"), 8.0);
    assert_eq!(srv.metric("mp2ml_sessions_finished_total"), 8.0);
    assert_eq!(srv.metric("mp2ml_sessions_failed_total"), 0.0);
    assert_eq!(srv.metric("mp2ml_sessions_running"), 0.0);
    assert_eq!(srv.metric("mp2ml_images_total"), 8.0);
    assert_eq!(srv.metric("mp2ml_session_seconds_count"), 8.0);
    assert_eq!(
        srv.metric("mp2ml_connections_refused_total{reason=\"handshake\"}"),
        1.0
    );
    assert_eq!(
        srv.metric("mp2ml_connections_refused_total{reason=\"busy\"}"),
        refused_busy as f64
    );
    let bytes: f64 = recs
        .iter()
        .filter(|r| r["outcome"] == "ok")
        .map(|r| r["bytes"].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(srv.metric("mp2ml_bytes_total"), bytes);
    let _ = &p.digits;
}

/// A peer that sends a hello one byte every 400 ms never trips the 10 s read timeout, but the
/// 2 s handshake deadline drops it; so does one that sends nothing.
#[test]
fn trickling_peer_is_dropped_at_the_deadline() {
    let srv = Server::start(
        "trickle",
        "small",
        &["--handshake-timeout", "2", "--timeout", "10"],
    );
    let at = Instant::now();
    let mut s = TcpStream::connect(srv.addr()).expect("connect");
    let mut hello = (84u32).to_le_bytes().to_vec();
    hello.extend_from_slice(b"MP2MLRUN");
    let mut sent = 0;
    for b in hello.iter().cycle().take(40) {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(400));
        let mut probe = [0u8; 1];
        s.set_nonblocking(true).expect("nonblocking");
        let closed = matches!(s.read(&mut probe), Ok(0));
        s.set_nonblocking(false).expect("blocking");
        if closed {
            break;
        }
    }
    let held = at.elapsed();
    assert!(
        held >= Duration::from_millis(1900) && held < Duration::from_secs(4),
        "the trickling peer was held {held:?} ({sent} bytes)"
    );
    until(Duration::from_secs(5), "the log line", || {
        srv.records().iter().any(|r| r["outcome"] == "dropped")
    });
    let r = &srv.records()[0];
    assert!(
        r["detail"].as_str().unwrap_or("").contains("deadline"),
        "{r}"
    );
}

/// A channel that, on entering phase `at`, stalls for `stall` and then vanishes (drops the
/// connection), as a client killed mid-session would.
struct Vanish {
    inner: Option<TcpChannel>,
    at: &'static str,
    stall: Duration,
}

impl Vanish {
    fn ch(&mut self) -> Result<&mut TcpChannel, MpcError> {
        self.inner.as_mut().ok_or(MpcError::Closed {
            phase: "vanished".into(),
        })
    }
}

impl Channel for Vanish {
    fn send(&mut self, b: &[u8]) -> Result<(), MpcError> {
        self.ch()?.send(b)
    }
    fn recv(&mut self, b: &mut [u8]) -> Result<(), MpcError> {
        self.ch()?.recv(b)
    }
    fn flush(&mut self) -> Result<(), MpcError> {
        self.ch()?.flush()
    }
    fn set_phase(&mut self, phase: &str) {
        if phase == self.at {
            std::thread::sleep(self.stall);
            self.inner = None;
        } else if let Some(c) = self.inner.as_mut() {
            c.set_phase(phase);
        }
    }
    fn stats(&self) -> ChannelStats {
        self.inner.as_ref().map(|c| c.stats()).unwrap_or_default()
    }
    fn max_frame(&self) -> usize {
        self.inner.as_ref().map_or(1 << 20, |c| c.max_frame())
    }
}

/// With one slot: a client that holds it and then vanishes mid-session frees it; meanwhile a
/// client without retries is refused with the server's reason, one with retries queues and
/// then succeeds (reporting its queue time), and one whose output cannot be written fails
/// before it connects.
#[test]
fn vanished_client_frees_its_slot_and_busy_clients_retry() {
    let p = plans();
    let srv = Server::start(
        "vanish",
        "small",
        &["--max-sessions", "1", "--timeout", "10"],
    );
    let setup = load_client(&p.dir.join("small.client.ron"), 128).expect("client plan");
    let opts = SessionOptions::default();
    let addr = srv.addr();
    let holder = std::thread::spawn(move || {
        let ch = TcpChannel::connect(addr.as_str(), channel_config(&setup.params, &opts))
            .expect("connect");
        let v = Vanish {
            inner: Some(ch),
            at: "input",
            stall: Duration::from_millis(1500),
        };
        let batch = Batch {
            images: 1,
            data: vec![0.5; 8],
        };
        run_client(&setup, v, &batch, &opts).map(|_| ())
    });
    until(Duration::from_secs(10), "the holder's session", || {
        srv.metric("mp2ml_sessions_running") == 1.0
    });
    let input = p.dir.join("small1.npy");
    let input = input.to_str().expect("path");
    let o = client(&srv, "small", &["--input", input, "--retries", "0"])
        .output()
        .expect("client");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("refused the session: busy: 1 of 1 sessions running"),
        "{}",
        text(&o)
    );
    let retrying = client(
        &srv,
        "small",
        &["--input", input, "--retries", "20", "--json"],
    )
    .spawn()
    .expect("client");
    let bad = client(
        &srv,
        "small",
        &["--input", input, "--output", "/nonexistent-dir/y.npy"],
    )
    .output()
    .expect("client");
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("/nonexistent-dir/y.npy"),
        "{}",
        text(&bad)
    );
    assert!(
        holder.join().expect("holder").is_err(),
        "the holder vanished"
    );
    let o = wait_output(retrying, Duration::from_secs(60));
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("client JSON");
    let q = &j["queue"];
    assert!(q["refusals"].as_u64().unwrap_or(0) >= 1, "{q}");
    assert!(q["seconds"].as_f64().unwrap_or(0.0) > 0.2, "{q}");
    assert!(
        j["offline"]["seconds"].as_f64().unwrap_or(9.0) < q["seconds"].as_f64().unwrap_or(0.0),
        "queue time is not offline time: {j}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("the server is busy"));
    until(Duration::from_secs(5), "the metrics", || {
        srv.metric("mp2ml_sessions_finished_total") == 1.0
    });
    assert_eq!(srv.metric("mp2ml_sessions_failed_total"), 1.0);
    assert_eq!(srv.metric("mp2ml_sessions_running"), 0.0);
    // Only admitted sessions were started: the refused ones were not.
    assert_eq!(srv.metric("mp2ml_sessions_started_total"), 2.0);
}

/// Memory after a burst: the server's RSS after 50 sessions (4 clients at a time) stays within
/// a small factor of its RSS after the first.
#[test]
fn memory_returns_after_a_burst_of_50_sessions() {
    let p = plans();
    let srv = Server::start("rss", "small", &["--max-sessions", "4"]);
    let setup = load_client(&p.dir.join("small.client.ron"), 128).expect("client plan");
    let opts = SessionOptions::default();
    let cfg = channel_config(&setup.params, &opts);
    let batch = Batch {
        images: 1,
        data: vec![0.25; 8],
    };
    let one = |s: &Server| {
        let ch = TcpChannel::connect(s.addr().as_str(), cfg).expect("connect");
        run_client(&setup, ch, &batch, &opts).expect("session");
    };
    one(&srv);
    until(Duration::from_secs(5), "the first session", || {
        srv.metric("mp2ml_sessions_finished_total") == 1.0
    });
    let after_one = srv.rss_kib();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..12 {
                    one(&srv);
                }
            });
        }
    });
    one(&srv);
    until(Duration::from_secs(5), "50 sessions", || {
        srv.metric("mp2ml_sessions_finished_total") == 50.0
    });
    let after_50 = srv.rss_kib();
    println!("server VmRSS: {after_one} KiB after 1 session, {after_50} KiB after 50");
    assert!(
        after_50 <= after_one * 2 + 8 * 1024,
        "RSS grew from {after_one} KiB to {after_50} KiB"
    );
}

/// SIGTERM while a session runs: the server stops accepting, lets it finish, exits 0; the
/// client's output is complete. A second signal while a handshake is pending exits at once.
#[test]
fn sigterm_drains_and_a_second_signal_exits() {
    let p = plans();
    let mut srv = Server::start("term", "small", &["--grace", "60"]);
    let out = p.dir.join("term-y.npy");
    let input = p.dir.join("small2048.npy");
    let c = client(
        &srv,
        "small",
        &[
            "--input",
            input.to_str().expect("path"),
            "--output",
            out.to_str().expect("path"),
        ],
    )
    .spawn()
    .expect("client");
    until(Duration::from_secs(20), "the session", || {
        srv.metric("mp2ml_sessions_running") == 1.0
    });
    srv.signal("TERM");
    // No new sessions once draining.
    until(Duration::from_secs(5), "the listener to close", || {
        TcpStream::connect(srv.addr()).is_err()
    });
    let o = wait_output(c, Duration::from_secs(60));
    assert!(o.status.success(), "{}", text(&o));
    let st = srv.wait(Duration::from_secs(30));
    assert_eq!(st.code(), Some(0), "{}", srv.stderr());
    let (shape, y) = npy::read_f32(&out).expect("complete output");
    assert_eq!(shape[0], 2048);
    assert_eq!(y.len(), shape.iter().product::<usize>());
    let r = srv.records();
    assert!(
        r.iter()
            .any(|r| r["outcome"] == "ok" && r["images"] == 2048),
        "{r:?}"
    );

    // Second signal: a client that stalls keeps a session running.
    let mut srv = Server::start("term2", "small", &["--timeout", "60"]);
    let setup = load_client(&p.dir.join("small.client.ron"), 128).expect("client plan");
    let opts = SessionOptions::default();
    let ch = TcpChannel::connect(srv.addr().as_str(), channel_config(&setup.params, &opts))
        .expect("connect");
    let staller = std::thread::spawn(move || {
        let v = Vanish {
            inner: Some(ch),
            at: "input",
            stall: Duration::from_secs(20),
        };
        let batch = Batch {
            images: 1,
            data: vec![0.5; 8],
        };
        let _ = run_client(&setup, v, &batch, &opts);
    });
    until(Duration::from_secs(10), "the stalled session", || {
        srv.metric("mp2ml_sessions_running") == 1.0
    });
    srv.signal("TERM");
    until(Duration::from_secs(5), "draining", || {
        srv.stderr().contains("stopping")
    });
    let at = Instant::now();
    srv.signal("TERM");
    let st = srv.wait(Duration::from_secs(5));
    assert!(at.elapsed() < Duration::from_secs(2));
    assert_eq!(st.code(), Some(1));
    drop(staller);
}

/// Bare TCP connects do not use up `--sessions`: after three, a real client is still served and
/// the server then exits 0.
#[test]
fn bare_connects_do_not_count_as_sessions() {
    let p = plans();
    let mut srv = Server::start("bare", "small", &["--sessions", "1"]);
    for _ in 0..3 {
        drop(TcpStream::connect(srv.addr()).expect("connect"));
    }
    let input = p.dir.join("small1.npy");
    let o = client(&srv, "small", &["--input", input.to_str().expect("path")])
        .output()
        .expect("client");
    assert!(o.status.success(), "{}", text(&o));
    let st = srv.wait(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", srv.stderr());
    let lines: Vec<String> =
        std::io::BufReader::new(std::fs::File::open(&srv.err).expect("stderr"))
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(": ok,"))
            .collect();
    assert_eq!(lines.len(), 1, "{}", srv.stderr());
}
