//! Optional phase timings: with `MP2MLC_PHASES` set in the environment, every compiler phase
//! prints its wall time and the process's peak resident memory so far to stderr (used to
//! profile the ImageNet-size models, `scripts/bench_zoo.sh`).

use std::sync::OnceLock;
use std::time::Instant;

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MP2MLC_PHASES").is_some())
}

/// Peak resident set size of this process in MiB (`VmHWM` of `/proc/self/status`; `None` where
/// that file does not exist).
pub fn peak_rss_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// A phase clock: [`Phases::mark`] ends the current phase and starts the next.
pub struct Phases {
    start: Instant,
    last: Instant,
}

impl Default for Phases {
    fn default() -> Self {
        Phases::new()
    }
}

impl Phases {
    /// Starts the clock (the total counts from the first clock of the process).
    pub fn new() -> Phases {
        static FIRST: OnceLock<Instant> = OnceLock::new();
        let now = Instant::now();
        Phases {
            start: *FIRST.get_or_init(|| now),
            last: now,
        }
    }

    /// Ends phase `name` (prints it when `MP2MLC_PHASES` is set).
    pub fn mark(&mut self, name: &str) {
        if !enabled() {
            return;
        }
        let now = Instant::now();
        eprintln!(
            "phase {name}: {:.2} s (total {:.2} s), peak RSS {} MiB",
            (now - self.last).as_secs_f64(),
            (now - self.start).as_secs_f64(),
            peak_rss_mib().map_or("?".into(), |m| m.to_string())
        );
        self.last = now;
    }
}
