//! Time and traffic of a session, per step, for the summary and `--json`.

use std::time::Instant;

use mp2ml_mpc::{Channel, Evaluator, Garbler};
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

/// Whether a step runs before the client's input exists or after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Before the input exists (keys, precomputation, garbling ahead).
    Offline,
    /// From the input upload to the output.
    Online,
}

impl Stage {
    /// The name in [`StepReport::phase`] and the JSON report.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Offline => "offline",
            Stage::Online => "online",
        }
    }
}

/// What a step is called and the circuit work it does besides time and bytes.
#[derive(Clone, Debug)]
pub struct Step {
    name: String,
    stage: Stage,
    and_gates: u64,
    ots: u64,
}

impl Step {
    /// An offline step called `name`.
    pub fn offline(name: impl Into<String>) -> Step {
        Step {
            name: name.into(),
            stage: Stage::Offline,
            and_gates: 0,
            ots: 0,
        }
    }

    /// An online step called `name`.
    pub fn online(name: impl Into<String>) -> Step {
        Step {
            stage: Stage::Online,
            ..Step::offline(name)
        }
    }

    /// The step garbles or evaluates `and_gates` AND gates with `ots` oblivious transfers.
    pub fn gates(self, and_gates: u64, ots: u64) -> Step {
        Step {
            and_gates,
            ots,
            ..self
        }
    }
}

/// A party whose traffic can be metered: bytes sent and received so far on its channel.
pub trait Traffic {
    /// (sent, received) bytes so far.
    fn traffic(&self) -> (u64, u64);
}

impl<C: Channel> Traffic for Garbler<C> {
    fn traffic(&self) -> (u64, u64) {
        let s = self.channel().stats();
        (s.sent(), s.received())
    }
}

impl<C: Channel> Traffic for Evaluator<C> {
    fn traffic(&self) -> (u64, u64) {
        let s = self.channel().stats();
        (s.sent(), s.received())
    }
}

impl SessionReport {
    /// Runs `work` on `party` as one step and records its time and traffic if it succeeds.
    pub fn metered<P: Traffic, T, E>(
        &mut self,
        party: &mut P,
        step: Step,
        work: impl FnOnce(&mut P) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let start = Instant::now();
        let (sent, received) = party.traffic();
        let out = work(party)?;
        let (sent_after, received_after) = party.traffic();
        self.steps.push(StepReport {
            name: step.name,
            phase: step.stage.name(),
            seconds: start.elapsed().as_secs_f64(),
            sent: sent_after.saturating_sub(sent),
            received: received_after.saturating_sub(received),
            and_gates: step.and_gates,
            ots: step.ots,
        });
        Ok(out)
    }
}
