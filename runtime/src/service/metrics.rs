//! `--metrics ADDR`: the service's counters in the Prometheus/OpenMetrics text format at
//! `/metrics`, and `/health` for load balancers (200 while accepting sessions, 503 once
//! draining). Encoding by `prometheus-client`, HTTP by `tiny_http`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::{Result, RuntimeError};

/// Every metric the service exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Sessions admitted (passed the handshake).
    pub started: Counter,
    /// Admitted sessions that completed.
    pub finished: Counter,
    /// Admitted sessions that failed.
    pub failed: Counter,
    /// Connections turned away before a session started, by reason (`busy`, `limit`,
    /// `protocol`, `overload`, `handshake`).
    pub refused: Family<Vec<(String, String)>, Counter>,
    /// Sessions running now.
    pub running: Gauge,
    /// Handshakes in progress now.
    pub pending: Gauge,
    /// Bytes of memory reserved by running sessions (the plan's estimates).
    pub reserved_bytes: Gauge,
    /// Images of completed sessions.
    pub images: Counter,
    /// Bytes sent plus received by admitted sessions.
    pub bytes: Counter,
    /// Wall-clock seconds of admitted sessions (completed or failed).
    pub seconds: Histogram,
    /// Images per admitted session.
    pub session_images: Histogram,
    draining: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, registered under the `mp2ml_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mp2ml");
        let m = Metrics {
            registry: Registry::default(),
            started: Counter::default(),
            finished: Counter::default(),
            failed: Counter::default(),
            refused: Family::default(),
            running: Gauge::default(),
            pending: Gauge::default(),
            reserved_bytes: Gauge::default(),
            images: Counter::default(),
            bytes: Counter::default(),
            seconds: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            session_images: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            draining: AtomicBool::new(false),
        };
        macro_rules! register {
            ($($name:literal, $help:literal, $metric:expr;)*) => {
                $(registry.register($name, $help, $metric.clone());)*
            };
        }
        register! {
            "sessions_started", "Sessions that passed the handshake", m.started;
            "sessions_finished", "Sessions that completed", m.finished;
            "sessions_failed", "Sessions that failed after the handshake", m.failed;
            "connections_refused", "Connections turned away before a session started, by reason", m.refused;
            "sessions_running", "Sessions running now", m.running;
            "handshakes_pending", "Handshakes in progress now", m.pending;
            "memory_reserved_bytes", "Memory reserved by running sessions (plan estimates)", m.reserved_bytes;
            "images", "Images of completed sessions", m.images;
            "bytes", "Bytes sent and received by sessions", m.bytes;
            "session_seconds", "Wall-clock seconds per session", m.seconds;
            "session_images", "Images per session", m.session_images;
        }
        Metrics { registry, ..m }
    }

    /// Counts a refusal.
    pub fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Marks the service as draining (`/health` answers 503).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The page: OpenMetrics text, which Prometheus scrapes as is.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }
}

/// Serves `/metrics` and `/health` on `addr` in a background thread until `stop` is set.
pub fn serve_http(
    addr: &str,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| RuntimeError::Net(format!("cannot serve metrics on {addr}: {e}")))?;
    let handle = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let req = match server.recv_timeout(Duration::from_millis(200)) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        eprintln!("mp2ml-run: metrics endpoint: {e}");
                        continue;
                    }
                };
                let path = req.url().split('?').next().unwrap_or("").to_owned();
                let (code, body, ctype) = match (req.method(), path.as_str()) {
                    (tiny_http::Method::Get, "/metrics") => (
                        200,
                        metrics.render(),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    (tiny_http::Method::Get, "/health") => {
                        if metrics.draining.load(Ordering::SeqCst) {
                            (503, "draining\n".to_owned(), "text/plain")
                        } else {
                            (200, "ok\n".to_owned(), "text/plain")
                        }
                    }
                    _ => (
                        404,
                        "not found: try /metrics or /health\n".to_owned(),
                        "text/plain",
                    ),
                };
                let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
                if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes())
                {
                    resp = resp.with_header(h);
                }
                // A client that hangs up early is its own problem.
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| RuntimeError::Net(format!("cannot start the metrics thread: {e}")))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_the_counters() {
        let m = Metrics::new();
        m.started.inc();
        m.started.inc();
        m.finished.inc();
        m.refuse("busy");
        m.seconds.observe(0.3);
        let page = m.render();
        assert!(page.contains("mp2ml_sessions_started_total 2"), "{page}");
        assert!(page.contains("mp2ml_sessions_finished_total 1"), "{page}");
        assert!(
            page.contains("mp2ml_connections_refused_total{reason=\"busy\"} 1"),
            "{page}"
        );
        assert!(page.contains("mp2ml_session_seconds_count 1"), "{page}");
        assert!(page.ends_with("# EOF\n"), "{page}");
    }
}
