//! A TCP relay that simulates a network between the two parties (issue 14): this machine's
//! kernel has no `netem` qdisc, so the delay is added here. Every chunk read from one side is
//! forwarded to the other after its due time (arrival + RTT/2) and through a token bucket of
//! the link's rate, each direction on its own, so both directions behave like one link of
//! round-trip time `RTT` and bandwidth `rate` each way. Used by `mp2ml-bench relay`, the GMW
//! benchmark and `tests/relay.rs`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A simulated link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Round-trip time (each direction delays by half).
    pub rtt: Duration,
    /// Bandwidth each way, bytes per second (`f64::INFINITY`: unlimited).
    pub bytes_per_s: f64,
}

impl Link {
    /// A link of `rtt_ms` milliseconds and `mbit` Mbit/s.
    pub fn new(rtt_ms: f64, mbit: f64) -> Link {
        Link {
            rtt: Duration::from_secs_f64(rtt_ms.max(0.0) / 1e3),
            bytes_per_s: mbit * 1e6 / 8.0,
        }
    }

    /// The token bucket's depth: 1 ms of traffic, at least 16 KiB (one read chunk).
    fn burst(&self) -> f64 {
        (self.bytes_per_s * 1e-3).max(16384.0)
    }
}

/// Bytes read per chunk.
const CHUNK: usize = 16384;

/// Chunks in flight with their due times, and whether the sender has closed.
type InFlight = (VecDeque<(Instant, Vec<u8>)>, bool);

/// Chunks waiting for their due time, shared by a direction's reader and writer threads.
#[derive(Default)]
struct Queue {
    items: Mutex<InFlight>,
    ready: Condvar,
}

/// Copies `from` to `to` with the link's delay and rate: the reader stamps each chunk with its
/// due time; the writer waits for it, then for the bucket's tokens.
fn pump(mut from: TcpStream, mut to: TcpStream, link: Link) {
    let q = Arc::new(Queue::default());
    let qr = Arc::clone(&q);
    let half = link.rtt / 2;
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let mut g = qr.items.lock().unwrap_or_else(|e| e.into_inner());
            if n == 0 {
                g.1 = true;
                qr.ready.notify_all();
                return;
            }
            g.0.push_back((Instant::now() + half, buf[..n].to_vec()));
            qr.ready.notify_all();
        }
    });
    let burst = link.burst();
    let mut tokens = burst;
    let mut last = Instant::now();
    loop {
        let item = {
            let mut g = q.items.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(it) = g.0.pop_front() {
                    break Some(it);
                }
                if g.1 {
                    break None;
                }
                g = q.ready.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some((due, data)) = item else { break };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut off = 0;
        while off < data.len() {
            let piece = (data.len() - off).min(burst as usize);
            if link.bytes_per_s.is_finite() {
                let now = Instant::now();
                tokens =
                    (tokens + now.duration_since(last).as_secs_f64() * link.bytes_per_s).min(burst);
                last = now;
                if tokens < piece as f64 {
                    let wait = (piece as f64 - tokens) / link.bytes_per_s;
                    std::thread::sleep(Duration::from_secs_f64(wait));
                    let now = Instant::now();
                    tokens = (tokens + now.duration_since(last).as_secs_f64() * link.bytes_per_s)
                        .min(burst);
                    last = now;
                }
                tokens -= piece as f64;
            }
            if to.write_all(&data[off..off + piece]).is_err() {
                let _ = to.shutdown(Shutdown::Both);
                let _ = reader.join();
                return;
            }
            off += piece;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = reader.join();
}

/// A running relay: accepts on its address and connects each accepted connection to the
/// target, forwarding both directions through the simulated link.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on `listen` (port 0: any free port) and relays to `target`.
    pub fn start(listen: &str, target: SocketAddr, link: Link) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((a, _)) => {
                        if let Err(e) = connect_pair(a, target, link) {
                            eprintln!("relay: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => {
                        eprintln!("relay: accept: {e}");
                        return;
                    }
                }
            }
        });
        Ok(Relay {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until the process ends (for `mp2ml-bench relay`).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn connect_pair(a: TcpStream, target: SocketAddr, link: Link) -> std::io::Result<()> {
    a.set_nonblocking(false)?;
    let b = TcpStream::connect(target)?;
    for s in [&a, &b] {
        s.set_nodelay(true)?;
    }
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    std::thread::spawn(move || pump(a, b, link));
    std::thread::spawn(move || pump(b2, a2, link));
    Ok(())
}
