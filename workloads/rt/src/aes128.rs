//! AES-128 (the `aes` crate; AES-NI where the CPU has it, else its
//! constant-time software backend): CBC-MAC over a buffer of generator
//! blocks, so every block depends on the one before.
//!
//! Arguments: `blocks=` (one of [`crate::reference::AES_BLOCKS`], default
//! 1024: 16 KiB). Setup first checks the FIPS-197 appendix C.1 vector; each
//! job's final block is checked against the host's (build.rs).

use crate::reference::{fill_bytes, SEED_A};
use crate::{expected, param};
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use harness::{Args, Error, Heap, Workload};

/// FIPS-197 appendix C.1: key 00..0f, plaintext 00112233..ff.
const FIPS_PLAIN: [u8; 16] =
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
const FIPS_CIPHER: [u8; 16] =
    [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a];

pub struct Aes {
    cipher: Aes128,
    buf: &'static [u8],
    state: [u8; 16],
    expected: u64,
}

impl Workload for Aes {
    const NAME: &'static str = "aes";

    fn setup(args: &Args<'_>, heap: &mut Heap) -> Result<Self, Error> {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let cipher = Aes128::new(&Array::from(key));
        let mut b = Array::from(FIPS_PLAIN);
        cipher.encrypt_block(&mut b);
        if b[..] != FIPS_CIPHER {
            return Err(Error::Other("AES-128 fails the FIPS-197 test vector"));
        }
        let (blocks, expected) = param(args, "blocks", 1024, expected::AES)?;
        let buf = heap.take(blocks * 16, 0u8, 64)?;
        fill_bytes(SEED_A, buf);
        Ok(Aes { cipher, buf, state: [0; 16], expected })
    }

    fn job(&mut self) {
        let mut s = Array::from([0u8; 16]);
        for blk in self.buf.chunks_exact(16) {
            for (x, b) in s.iter_mut().zip(blk) {
                *x ^= b;
            }
            self.cipher.encrypt_block(&mut s);
        }
        self.state.copy_from_slice(&s);
    }

    fn result(&self) -> u64 {
        u64::from_le_bytes(self.state[..8].try_into().unwrap_or([0; 8]))
    }

    fn expected(&self) -> u64 {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_count_checks() {
        for n in crate::reference::AES_BLOCKS {
            crate::testing::checks::<Aes>(&format!("blocks={n}"), n * 16 + 64);
        }
        assert!(crate::testing::run::<Aes>("blocks=3", 1 << 20).is_err());
    }
}
