//! Time and traffic of a session, per step, for the summary and `--json`.

use std::time::Instant;

use mp2ml_mpc::Channel;
use serde::Serialize;

/// One measured step of a session.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// What ran: `handshake`, `offline`, `input`, `he:<name>`, `mpc:<name>`, `output`.
    pub name: String,
    /// `offline` or `online`.
    pub phase: &'static str,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Bytes this party sent.
    pub sent: u64,
    /// Bytes this party received.
    pub received: u64,
    /// AND gates garbled or evaluated (MPC steps).
    pub and_gates: u64,
    /// Oblivious transfers (client input bits of MPC steps).
    pub ots: u64,
}

/// Everything one party measured in a session.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionReport {
    /// `server` or `client`.
    pub role: String,
    /// Images processed.
    pub images: usize,
    /// Ciphertext groups (⌈images / N⌉).
    pub groups: usize,
    /// Steps in order (all groups).
    pub steps: Vec<StepReport>,
    /// Whether garbling ran before the input was needed (else streamed per step).
    pub offline_first: bool,
}

impl SessionReport {
    fn sum(&self, phase: Option<&str>, f: impl Fn(&StepReport) -> f64) -> f64 {
        self.steps
            .iter()
            .filter(|s| phase.is_none_or(|p| s.phase == p))
            .map(f)
            .sum()
    }

    /// Seconds spent in a phase (`None` = all).
    pub fn seconds(&self, phase: Option<&str>) -> f64 {
        self.sum(phase, |s| s.seconds)
    }

    /// Bytes sent plus received in a phase (`None` = all).
    pub fn bytes(&self, phase: Option<&str>) -> u64 {
        self.sum(phase, |s| (s.sent + s.received) as f64) as u64
    }

    /// Total AND gates of the circuits run (the `mpc:` steps; an `offline` step reports the
    /// same gates again, garbled ahead of time).
    pub fn and_gates(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.name.starts_with("mpc:"))
            .map(|s| s.and_gates)
            .sum()
    }
}

/// Measures one step: time and the channel's byte counters before and after.
pub struct Meter {
    start: Instant,
    sent: u64,
    received: u64,
}

impl Meter {
    /// Starts measuring.
    pub fn start(ch: &impl Channel) -> Meter {
        let s = ch.stats();
        Meter {
            start: Instant::now(),
            sent: s.sent(),
            received: s.received(),
        }
    }

    /// Ends the step and records it.
    pub fn finish(
        self,
        ch: &impl Channel,
        report: &mut SessionReport,
        name: String,
        phase: &'static str,
        and_gates: u64,
        ots: u64,
    ) {
        let s = ch.stats();
        report.steps.push(StepReport {
            name,
            phase,
            seconds: self.start.elapsed().as_secs_f64(),
            sent: s.sent() - self.sent,
            received: s.received() - self.received,
            and_gates,
            ots,
        });
    }
}
