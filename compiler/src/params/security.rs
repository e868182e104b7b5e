//! The HomomorphicEncryption.org security table for ternary secrets (as in SEAL).

/// A security level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// 128 bits.
    Bits128,
    /// 192 bits.
    Bits192,
    /// 256 bits.
    Bits256,
}

impl Security {
    /// From a bit count (128, 192 or 256).
    pub fn from_bits(b: u32) -> Option<Security> {
        match b {
            128 => Some(Security::Bits128),
            192 => Some(Security::Bits192),
            256 => Some(Security::Bits256),
            _ => None,
        }
    }

    /// The bit count.
    pub fn bits(self) -> u32 {
        match self {
            Security::Bits128 => 128,
            Security::Bits192 => 192,
            Security::Bits256 => 256,
        }
    }
}

/// Largest admissible log2 Q for ring dimension `n`, if the table has an entry.
pub fn max_log_q(n: usize, s: Security) -> Option<u32> {
    let row = match n {
        1024 => [27, 19, 14],
        2048 => [54, 37, 29],
        4096 => [109, 75, 58],
        8192 => [218, 152, 118],
        16384 => [438, 305, 237],
        32768 => [881, 611, 476],
        _ => return None,
    };
    Some(match s {
        Security::Bits128 => row[0],
        Security::Bits192 => row[1],
        Security::Bits256 => row[2],
    })
}
