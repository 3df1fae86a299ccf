//! SHA-256 (the `sha2` crate) of a buffer of generator bytes.
//!
//! Arguments: `len=` bytes (one of [`crate::reference::SHA_LEN`], default
//! 4096). Setup first checks the FIPS 180-2 test vector ("abc"); each job's
//! digest is checked against the host's (build.rs, the same crate built for
//! the host).

use crate::reference::{fill_bytes, SEED_A};
use crate::{expected, param};
use harness::{Args, Error, Heap, Workload};
use sha2::{Digest, Sha256};

/// SHA-256("abc"), FIPS 180-2 appendix B.1.
pub const ABC: [u8; 32] = [
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61,
    0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
];

pub struct Sha {
    buf: &'static [u8],
    digest: [u8; 32],
    expected: u64,
}

impl Workload for Sha {
    const NAME: &'static str = "sha256";

    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error> {
        if Sha256::digest(b"abc")[..] != ABC {
            return Err(Error::Other("SHA-256 fails the FIPS 180-2 test vector"));
        }
        let (len, expected) = param(args, "len", 4096, expected::SHA256)?;
        let buf = heap.take(len, 0u8, 64)?;
        fill_bytes(SEED_A, buf);
        Ok(Sha { buf, digest: [0; 32], expected })
    }

    fn job(&mut self) {
        self.digest.copy_from_slice(&Sha256::digest(self.buf));
    }

    fn result(&self) -> u64 {
        u64::from_le_bytes(self.digest[..8].try_into().unwrap_or([0; 8]))
    }

    fn expected(&self) -> u64 {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_checks() {
        for len in crate::reference::SHA_LEN {
            crate::testing::checks::<Sha>(&format!("len={len}"), len + 64);
        }
        assert!(crate::testing::run::<Sha>("len=100", 1 << 20).is_err());
    }
}
