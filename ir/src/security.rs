//! The HomomorphicEncryption.org security table for ternary secrets (as used by SEAL): the one
//! copy that the compiler's parameter choice and the runtime's `Params::new_secure` both read.

use std::fmt;

/// A security level of the HomomorphicEncryption.org standard (ternary secrets, classical).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SecurityLevel {
    /// 128-bit security.
    #[cfg_attr(feature = "clap", value(name = "128"))]
    Bits128,
    /// 192-bit security.
    #[cfg_attr(feature = "clap", value(name = "192"))]
    Bits192,
    /// 256-bit security.
    #[cfg_attr(feature = "clap", value(name = "256"))]
    Bits256,
}

impl SecurityLevel {
    /// From a bit count (128, 192 or 256).
    pub fn from_bits(b: u32) -> Option<SecurityLevel> {
        match b {
            128 => Some(SecurityLevel::Bits128),
            192 => Some(SecurityLevel::Bits192),
            256 => Some(SecurityLevel::Bits256),
            _ => None,
        }
    }

    /// The bit count.
    pub fn bits(self) -> u32 {
        match self {
            SecurityLevel::Bits128 => 128,
            SecurityLevel::Bits192 => 192,
            SecurityLevel::Bits256 => 256,
        }
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-bit", self.bits())
    }
}

/// Maximum log2 Q for ring dimension `n` at `security` with a ternary secret
/// (HomomorphicEncryption.org security standard, Table 1, as used by SEAL).
/// `None` when `n` is not in the table (1024..=32768, powers of two).
pub fn max_log_q(n: usize, security: SecurityLevel) -> Option<u32> {
    let row: [u32; 3] = match n {
        1024 => [27, 19, 14],
        2048 => [54, 37, 29],
        4096 => [109, 75, 58],
        8192 => [218, 152, 118],
        16384 => [438, 305, 237],
        32768 => [881, 611, 476],
        _ => return None,
    };
    Some(match security {
        SecurityLevel::Bits128 => row[0],
        SecurityLevel::Bits192 => row[1],
        SecurityLevel::Bits256 => row[2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_and_table_shrinks_with_security() {
        for s in [
            SecurityLevel::Bits128,
            SecurityLevel::Bits192,
            SecurityLevel::Bits256,
        ] {
            assert_eq!(SecurityLevel::from_bits(s.bits()), Some(s));
        }
        assert_eq!(SecurityLevel::from_bits(100), None);
        for ln in 10..=15 {
            let m = |s| max_log_q(1 << ln, s).expect("table");
            assert!(m(SecurityLevel::Bits128) > m(SecurityLevel::Bits192));
            assert!(m(SecurityLevel::Bits192) > m(SecurityLevel::Bits256));
        }
        assert_eq!(max_log_q(3000, SecurityLevel::Bits128), None);
    }
}
