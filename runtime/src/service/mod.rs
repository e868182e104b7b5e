//! The server as a service: every accepted connection runs in its own thread, sharing the
//! loaded plan and weights read-only; limits on running sessions, memory and batch size are
//! checked at the handshake (excess clients get a "busy" refusal that says why, and retry);
//! every phase has a deadline; SIGINT/SIGTERM drain; one log line per session; metrics.
//!
//! Lifecycle of a connection:
//! 1. accepted: it takes a *pending* place (at most `max_pending` handshakes at once, else the
//!    connection is closed at once) and its own thread;
//! 2. handshake, under the handshake deadline (a silent or trickling peer is dropped when it
//!    passes); after the plan checks, [`admission`](Service) decides: the batch against
//!    `--max-batch`, the plan's memory estimate ([`limits::estimate`]) against
//!    `--memory-budget`, the running sessions against `--max-sessions`;
//! 3. admitted: the session counts toward `--sessions`, its memory is reserved, and every later
//!    phase gets the deadline [`limits::Estimate::step_budget`];
//! 4. done: one log line (id, peer, outcome, images, seconds, bytes), the place is freed.
//!
//! The sessions' rayon work runs in the one global rayon pool (as many threads as cores), so
//! concurrent sessions share the cores instead of oversubscribing them; each session's report
//! (steps, bytes, seconds) is its own.

pub mod limits;
pub mod metrics;
pub mod retry;
pub mod shutdown;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mp2ml_mpc::{Channel, ChannelConfig, ChannelStats, TcpChannel};

use crate::error::{Result, RuntimeError};
use crate::plan::ServerSetup;
use crate::server::serve_with;
use crate::session::SessionOptions;
use crate::wire::Hello;

pub use metrics::Metrics;
pub use shutdown::Shutdown;

/// Refusal reasons that start with this are temporary: the client may retry (elsewhere).
pub const BUSY: &str = "busy: ";

/// Whether a refusal reason is temporary ([`BUSY`]).
pub fn is_busy(reason: &str) -> bool {
    reason.starts_with(BUSY)
}

/// The service's limits and behaviour.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Sessions running at once.
    pub max_sessions: usize,
    /// Handshakes in progress at once (connections beyond are closed at once).
    pub max_pending: usize,
    /// Bytes all running sessions may hold, by the plan's estimates.
    pub memory_budget: u64,
    /// Largest batch (images) a client may send.
    pub max_batch: usize,
    /// Deadline of the handshake, from the accept.
    pub handshake_timeout: Duration,
    /// After a stop signal, how long running sessions may take to finish.
    pub grace: Duration,
    /// Stop after this many admitted sessions (`None`: until stopped).
    pub sessions: Option<u64>,
    /// Print each completed session's report as JSON on stdout.
    pub json: bool,
}

/// How the service ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sessions admitted.
    pub admitted: u64,
    /// Admitted sessions that failed.
    pub failed: u64,
    /// Sessions still running when the grace period ended.
    pub cut_off: usize,
    /// Whether a stop signal (rather than `--sessions`) ended the service.
    pub stopped: bool,
}

#[derive(Debug, Default)]
struct Counts {
    pending: usize,
    running: usize,
    reserved: u64,
    admitted: u64,
    failed: u64,
}

/// One log record per connection.
#[derive(Debug, serde::Serialize)]
struct Record<'a> {
    session: u64,
    /// Unix time of the accept, seconds.
    start: f64,
    /// Unix time of the admission (when the session took its place), seconds; absent for a
    /// connection that was never admitted. Sessions overlap only between admission and end.
    #[serde(skip_serializing_if = "Option::is_none")]
    admitted: Option<f64>,
    peer: String,
    outcome: &'a str,
    images: usize,
    seconds: f64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

struct Inner {
    setup: Arc<ServerSetup>,
    cfg: ServiceConfig,
    opts: SessionOptions,
    channel: ChannelConfig,
    counts: Mutex<Counts>,
    changed: Condvar,
    metrics: Arc<Metrics>,
    json_log: Option<Mutex<Box<dyn Write + Send>>>,
    stop: Shutdown,
    contention: f64,
}

/// A session server: see the module documentation.
pub struct Service {
    inner: Arc<Inner>,
}

impl Service {
    /// A service for `setup`; `channel` carries the per-read timeouts and frame bound,
    /// `json_log` receives one JSON line per connection.
    pub fn new(
        setup: Arc<ServerSetup>,
        cfg: ServiceConfig,
        opts: SessionOptions,
        channel: ChannelConfig,
        metrics: Arc<Metrics>,
        json_log: Option<Box<dyn Write + Send>>,
        stop: Shutdown,
    ) -> Service {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Service {
            inner: Arc::new(Inner {
                setup,
                contention: (cfg.max_sessions as f64 / cores as f64).max(1.0),
                cfg,
                opts,
                channel,
                counts: Mutex::new(Counts::default()),
                changed: Condvar::new(),
                metrics,
                json_log: json_log.map(Mutex::new),
                stop,
            }),
        }
    }

    /// The deadline of each step after the handshake for a session of `images` images.
    pub fn step_budget(&self, images: usize) -> Duration {
        limits::estimate(&self.inner.setup, images)
            .step_budget(self.inner.opts.timeout, self.inner.contention)
    }

    /// Accepts and serves connections until a stop is requested or `--sessions` sessions
    /// were admitted, then waits for the running ones (up to the grace period after a stop).
    pub fn run(&self, listener: TcpListener) -> Result<Summary> {
        let inner = &self.inner;
        listener
            .set_nonblocking(true)
            .map_err(|e| RuntimeError::Net(format!("listener: {e}")))?;
        let mut next_id = 0u64;
        loop {
            if inner.stop.requested() || inner.limit_reached() {
                break;
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    next_id += 1;
                    self.spawn(next_id, stream, peer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(3));
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the running sessions.
                    eprintln!("mp2ml-run: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // Stop accepting: new connections are refused by the OS (a load balancer moves on).
        drop(listener);
        inner.metrics.set_draining();
        let stopped = inner.stop.requested();
        let deadline = Instant::now() + inner.cfg.grace;
        let mut counts = inner.lock();
        // Pending handshakes are not waited for: they will be refused as busy.
        if stopped && counts.running > 0 {
            eprintln!(
                "mp2ml-run: stopping: no new sessions; waiting up to {:.0} s for {} running session(s) (a second signal exits at once)",
                inner.cfg.grace.as_secs_f64(),
                counts.running
            );
        }
        while counts.running > 0 {
            let now = Instant::now();
            if stopped && now >= deadline {
                break;
            }
            let wait = if stopped {
                deadline - now
            } else {
                Duration::from_secs(3600)
            };
            counts = inner
                .changed
                .wait_timeout(counts, wait)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
        let cut_off = counts.running;
        if cut_off > 0 {
            eprintln!(
                "mp2ml-run: grace period over: {cut_off} session(s) still running are cut off"
            );
        }
        Ok(Summary {
            admitted: counts.admitted,
            failed: counts.failed,
            cut_off,
            stopped,
        })
    }

    fn spawn(&self, id: u64, stream: TcpStream, peer: SocketAddr) {
        let inner = &self.inner;
        let Some(ticket) = Ticket::pending(inner) else {
            inner.metrics.refuse("overload");
            inner.record(&Record {
                session: id,
                start: unix_now(),
                admitted: None,
                peer: peer.to_string(),
                outcome: "dropped",
                images: 0,
                seconds: 0.0,
                bytes: 0,
                detail: Some(format!(
                    "{} handshakes already in progress (--max-pending)",
                    inner.cfg.max_pending
                )),
            });
            return;
        };
        let inner2 = Arc::clone(inner);
        let spawned = std::thread::Builder::new()
            .name(format!("session-{id}"))
            .spawn(move || inner2.connection(id, stream, peer, ticket));
        if let Err(e) = spawned {
            eprintln!("mp2ml-run: cannot start a session thread: {e}");
        }
    }
}

/// A connection's claim on the service: pending until admitted, then running with its memory
/// reserved; released when dropped.
struct Ticket {
    inner: Arc<Inner>,
    reserved: Option<u64>,
    /// Unix time of the admission.
    admitted_at: Option<f64>,
}

impl Ticket {
    fn pending(inner: &Arc<Inner>) -> Option<Ticket> {
        let mut c = inner.lock();
        if c.pending >= inner.cfg.max_pending {
            return None;
        }
        c.pending += 1;
        inner.metrics.pending.set(c.pending as i64);
        Some(Ticket {
            inner: Arc::clone(inner),
            reserved: None,
            admitted_at: None,
        })
    }

    /// Admission of a hello: `Ok` (the session starts, its memory is reserved) or the refusal
    /// kind (`busy`, `limit`) and the reason for the client.
    fn admit(
        &mut self,
        hello: &Hello,
    ) -> std::result::Result<limits::Estimate, (&'static str, String)> {
        let inner = Arc::clone(&self.inner);
        let cfg = &inner.cfg;
        let images = usize::try_from(hello.images).unwrap_or(usize::MAX);
        if images > cfg.max_batch {
            return Err((
                "limit",
                format!(
                    "a batch of {images} images exceeds this server's limit of {} (--max-batch); send at most {} images per session",
                    cfg.max_batch, cfg.max_batch
                ),
            ));
        }
        let est = limits::estimate(&inner.setup, images);
        if est.memory > cfg.memory_budget {
            return Err((
                "limit",
                format!(
                    "a batch of {images} images needs about {:.0} MB on the server, above its memory budget of {:.0} MB; send fewer images",
                    est.memory as f64 / 1e6,
                    cfg.memory_budget as f64 / 1e6
                ),
            ));
        }
        let mut c = inner.lock();
        if inner.stop.requested() {
            return Err(("busy", format!("{BUSY}the server is shutting down")));
        }
        if cfg.sessions.is_some_and(|n| c.admitted >= n) {
            return Err((
                "busy",
                format!("{BUSY}the server is finishing its last sessions"),
            ));
        }
        if c.running >= cfg.max_sessions {
            return Err((
                "busy",
                format!(
                    "{BUSY}{} of {} sessions running (--max-sessions); retry later",
                    c.running, cfg.max_sessions
                ),
            ));
        }
        if c.reserved.saturating_add(est.memory) > cfg.memory_budget {
            return Err((
                "busy",
                format!(
                    "{BUSY}{:.0} of {:.0} MB of the memory budget reserved by running sessions, this one needs {:.0} MB; retry later",
                    c.reserved as f64 / 1e6,
                    cfg.memory_budget as f64 / 1e6,
                    est.memory as f64 / 1e6
                ),
            ));
        }
        c.pending = c.pending.saturating_sub(1);
        c.running += 1;
        c.reserved = c.reserved.saturating_add(est.memory);
        c.admitted += 1;
        self.reserved = Some(est.memory);
        self.admitted_at = Some(unix_now());
        inner.metrics.started.inc();
        inner.metrics.pending.set(c.pending as i64);
        inner.metrics.running.set(c.running as i64);
        inner.metrics.reserved_bytes.set(c.reserved as i64);
        Ok(est)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let inner = &self.inner;
        let mut c = inner.lock();
        match self.reserved {
            Some(m) => {
                c.running = c.running.saturating_sub(1);
                c.reserved = c.reserved.saturating_sub(m);
            }
            None => c.pending = c.pending.saturating_sub(1),
        }
        inner.metrics.pending.set(c.pending as i64);
        inner.metrics.running.set(c.running as i64);
        inner.metrics.reserved_bytes.set(c.reserved as i64);
        drop(c);
        inner.changed.notify_all();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn limit_reached(&self) -> bool {
        self.cfg.sessions.is_some_and(|n| self.lock().admitted >= n)
    }

    fn record(&self, r: &Record<'_>) {
        let mut line = format!(
            "mp2ml-run: session {} from {}: {}, {} images, {:.3} s, {:.2} MB",
            r.session,
            r.peer,
            r.outcome,
            r.images,
            r.seconds,
            r.bytes as f64 / 1e6
        );
        if let Some(d) = &r.detail {
            line.push_str(": ");
            line.push_str(d);
        }
        eprintln!("{line}");
        if let Some(log) = &self.json_log {
            let mut w = log.lock().unwrap_or_else(|e| e.into_inner());
            // One write per line, so that a reader never sees half a record.
            let mut text = serde_json::to_string(r).unwrap_or_default();
            text.push('\n');
            if w.write_all(text.as_bytes())
                .and_then(|()| w.flush())
                .is_err()
            {
                eprintln!("mp2ml-run: cannot write the JSON log");
            }
        }
    }

    /// One connection, from the accept to the log line.
    fn connection(self: Arc<Self>, id: u64, stream: TcpStream, peer: SocketAddr, ticket: Ticket) {
        let start = Instant::now();
        let started_at = unix_now();
        let mut ticket = ticket;
        let bytes = Arc::new(AtomicU64::new(0));
        let step_ms = Arc::new(AtomicU64::new(0));
        let mut refused: Option<&'static str> = None;
        let mut images = 0usize;
        let result = stream
            .set_nonblocking(false)
            .map_err(|e| RuntimeError::Net(format!("accepted socket: {e}")))
            .and_then(|()| Ok(TcpChannel::new(stream, self.channel)?))
            .and_then(|ch| {
                let ch = Deadlines::new(
                    ch,
                    start + self.cfg.handshake_timeout,
                    Arc::clone(&step_ms),
                    Arc::clone(&bytes),
                );
                let mut admit = |h: &Hello| match ticket.admit(h) {
                    Ok(est) => {
                        images = est.images;
                        let budget = est.step_budget(self.opts.timeout, self.contention);
                        step_ms.store(budget.as_millis().max(1) as u64, Ordering::SeqCst);
                        Ok(())
                    }
                    Err((kind, reason)) => {
                        refused = Some(kind);
                        Err(reason)
                    }
                };
                serve_with(&self.setup, ch, &self.opts, &mut admit)
            });
        let admitted = ticket.reserved.is_some();
        let seconds = start.elapsed().as_secs_f64();
        let moved = bytes.load(Ordering::SeqCst);
        let m = &self.metrics;
        let (outcome, detail) = match (&result, admitted, refused) {
            (Ok(rep), _, _) => {
                m.finished.inc();
                m.images.inc_by(rep.images as u64);
                if self.cfg.json {
                    // The process's peak (all sessions so far), not this session's own.
                    let v = serde_json::json!({
                        "session": id,
                        "peer": peer.to_string(),
                        "server": rep,
                        "peak_rss_bytes": peak_rss(),
                    });
                    println!("{}", serde_json::to_string(&v).unwrap_or_default());
                }
                ("ok", None)
            }
            (Err(e), true, _) => {
                m.failed.inc();
                self.lock().failed += 1;
                ("failed", Some(e.to_string()))
            }
            (Err(_), false, Some(kind)) => {
                m.refuse(kind);
                ("refused", None)
            }
            (Err(RuntimeError::Protocol(crate::ProtocolError::RefusedClient(_))), false, None) => {
                m.refuse("protocol");
                ("refused", None)
            }
            (Err(e), false, None) => {
                m.refuse("handshake");
                ("dropped", Some(e.to_string()))
            }
        };
        let detail = match (outcome, &result) {
            ("refused", Err(e)) => Some(e.to_string()),
            _ => detail,
        };
        if admitted {
            m.bytes.inc_by(moved);
            m.seconds.observe(seconds);
            m.session_images.observe(images as f64);
        }
        self.record(&Record {
            session: id,
            start: started_at,
            admitted: ticket.admitted_at,
            peer: peer.to_string(),
            outcome,
            images,
            seconds,
            bytes: moved,
            detail,
        });
        drop(ticket);
    }
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A channel whose every phase has a deadline: the handshake's (from the accept), then, once
/// the session is admitted, `step_ms` from the start of each phase. Also counts the bytes moved
/// for the log line (the channel itself is consumed by the session).
struct Deadlines<C: Channel> {
    inner: C,
    handshake_until: Instant,
    step_ms: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl<C: Channel> Deadlines<C> {
    fn new(
        mut inner: C,
        handshake_until: Instant,
        step_ms: Arc<AtomicU64>,
        bytes: Arc<AtomicU64>,
    ) -> Self {
        inner.set_deadline(Some(handshake_until));
        Deadlines {
            inner,
            handshake_until,
            step_ms,
            bytes,
        }
    }
}

impl<C: Channel> Channel for Deadlines<C> {
    fn send(&mut self, b: &[u8]) -> mp2ml_mpc::Result<()> {
        self.inner.send(b)?;
        self.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn recv(&mut self, b: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.inner.recv(b)?;
        self.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self) -> mp2ml_mpc::Result<()> {
        self.inner.flush()
    }

    fn exchange(&mut self, out: &[u8], inp: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.inner.exchange(out, inp)?;
        let n = (out.len() + inp.len()) as u64;
        self.bytes.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn set_phase(&mut self, phase: &str) {
        self.inner.set_phase(phase);
        let ms = self.step_ms.load(Ordering::SeqCst);
        let deadline = if phase == "handshake" || ms == 0 {
            self.handshake_until
        } else {
            Instant::now() + Duration::from_millis(ms)
        };
        self.inner.set_deadline(Some(deadline));
    }

    fn stats(&self) -> ChannelStats {
        self.inner.stats()
    }

    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.inner.set_deadline(deadline);
    }
}
