//! The client's side of a busy service: a "busy" refusal is retried with exponential back-off
//! and jitter; the time until the session is admitted is reported as queue time, apart from
//! the session's offline and online time.

use std::time::{Duration, Instant};

use mp2ml_mpc::{ChannelConfig, TcpChannel};
use rand::Rng;

use crate::client::{run_client, Batch, ClientOutput};
use crate::error::{Result, RuntimeError};
use crate::plan::ClientSetup;
use crate::report::SessionReport;
use crate::session::SessionOptions;

/// First back-off after a busy refusal; it doubles per refusal up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Time spent before the session started.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Queue {
    /// Seconds from the first connection attempt until the server admitted the session
    /// (refused attempts, back-off, and the admitted attempt's handshake).
    pub seconds: f64,
    /// Busy refusals before the admitted attempt.
    pub refusals: u32,
}

/// The back-off before retry number `attempt` (0-based): `FIRST_BACKOFF · 2^attempt`, capped,
/// times a random factor in [0.5, 1.5) so that refused clients do not return in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// Runs a session with the server at `addr`, retrying up to `retries` times while the server
/// answers "busy" (see [`crate::service::BUSY`]); `on_busy(reason, attempt, wait)` is called
/// before each retry. Any other failure, and the last busy refusal, is returned as is.
pub fn run_client_retrying(
    setup: &ClientSetup,
    addr: &str,
    cfg: ChannelConfig,
    batch: &Batch,
    opts: &SessionOptions,
    retries: u32,
    mut on_busy: impl FnMut(&str, u32, Duration),
) -> Result<(ClientOutput, SessionReport, Queue)> {
    let start = Instant::now();
    let mut refusals = 0u32;
    loop {
        let attempt = Instant::now();
        let ch = TcpChannel::connect(addr, cfg)
            .map_err(|e| RuntimeError::Net(format!("cannot reach the server at {addr}: {e}")))?;
        match run_client(setup, ch, batch, opts) {
            Ok((out, rep)) => {
                let handshake: f64 = rep
                    .steps
                    .iter()
                    .filter(|s| s.name == "handshake")
                    .map(|s| s.seconds)
                    .sum();
                let before = (attempt - start).as_secs_f64();
                let queue = Queue {
                    seconds: before + handshake,
                    refusals,
                };
                return Ok((out, rep, queue));
            }
            Err(RuntimeError::Refused(reason)) if super::is_busy(&reason) && refusals < retries => {
                let wait = backoff(refusals);
                refusals += 1;
                on_busy(&reason, refusals, wait);
                std::thread::sleep(wait);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for a in 0..12 {
            let nominal = FIRST_BACKOFF.saturating_mul(1 << a).min(MAX_BACKOFF);
            let b = backoff(a);
            assert!(
                b >= nominal.mul_f64(0.5) && b < nominal.mul_f64(1.5),
                "{a}: {b:?}"
            );
        }
        assert!(backoff(40) < MAX_BACKOFF.mul_f64(1.5));
    }
}
