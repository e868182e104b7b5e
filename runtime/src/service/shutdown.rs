//! SIGINT/SIGTERM: the first stops accepting and lets running sessions finish (up to the grace
//! period), a second exits at once. Signal handling by `signal-hook`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Result, RuntimeError};

/// Exit status when a second signal cuts the grace period short.
pub const FORCED_EXIT: i32 = 1;

/// A stop request: set by a signal (or by the caller, in tests).
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// A stop request no signal sets (for embedding and tests).
    pub fn manual() -> Shutdown {
        Shutdown::default()
    }

    /// Installs the SIGINT and SIGTERM handlers: the first signal sets the flag; a signal
    /// arriving while it is set exits the process at once with [`FORCED_EXIT`].
    pub fn install() -> Result<Shutdown> {
        let s = Shutdown::default();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Order matters: the conditional exit must see the flag before this signal sets it.
            signal_hook::flag::register_conditional_shutdown(sig, FORCED_EXIT, Arc::clone(&s.flag))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&s.flag)))
                .map_err(|e| RuntimeError::Net(format!("cannot install signal handlers: {e}")))?;
        }
        Ok(s)
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Requests a stop.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
}
