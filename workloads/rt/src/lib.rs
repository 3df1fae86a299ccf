//! RT workloads: each module is one [`harness::Workload`], and each binary
//! in `src/bin/` runs one of them under the harness (`harness::main!`).
//! C workloads live in `c/<name>/` with a one-line binary
//! (`harness::c_workload!`); see the README, "Adding a workload".
//!
//! Every job's result is checked against a value computed on the host by
//! `build.rs` (from [`reference`], or with the same crates built for the
//! host) for each parameter value the workload accepts; the crypto and
//! checksum workloads also check a published test vector at setup.
#![cfg_attr(not(test), no_std)]

pub mod aes128;
pub mod chase;
pub mod fft;
pub mod fir;
pub mod matmul;
pub mod reference;
pub mod sha256;
pub mod sort;

/// Expected digests per parameter value, computed on the host by build.rs.
pub mod expected {
    include!(concat!(env!("OUT_DIR"), "/expected.rs"));
}

use harness::Error;

/// The size parameter `key` (or `default`) and its host-computed expected
/// digest from `table`; a value without one is refused.
pub fn param(
    args: &harness::Args<'_>,
    key: &'static str,
    default: u64,
    table: &[(usize, u64)],
) -> Result<(usize, u64), Error> {
    let value = usize_arg(args, key, default)?;
    let expected = table
        .iter()
        .find(|(p, _)| *p == value)
        .map(|&(_, d)| d)
        .ok_or(Error::NoExpected { key, value: value as u64 })?;
    Ok((value, expected))
}

/// A parameter as `usize` (the target is 64-bit).
pub fn usize_arg(args: &harness::Args<'_>, key: &'static str, default: u64) -> Result<usize, Error> {
    let v = args.size(key, default)?;
    usize::try_from(v).map_err(|_| Error::BadArg { key, why: "too large" })
}

#[cfg(test)]
pub(crate) mod testing {
    use harness::{Args, Heap, Workload};

    /// Runs `W` on the host as the guest would: setup from `args` with a
    /// heap of `heap` bytes, one job; returns the workload.
    pub fn run<W: Workload>(args: &str, heap: usize) -> Result<W, harness::Error> {
        let region: &'static mut [u8] = Box::leak(vec![0u8; heap + 64].into_boxed_slice());
        // SAFETY: a leaked buffer that nothing else uses.
        let mut h = unsafe { Heap::new(region.as_mut_ptr() as usize, heap + 64) };
        let mut w = W::setup(&Args::new(args), &mut h)?;
        w.job();
        Ok(w)
    }

    /// Setup, a job whose result matches, a second job with the same
    /// result, and a wrong expected value is a mismatch.
    pub fn checks<W: Workload>(args: &str, heap: usize) {
        let mut w = run::<W>(args, heap).unwrap_or_else(|e| panic!("{} {args}: {e}", W::NAME));
        let r = w.result();
        assert_eq!(harness::check(Some(0), r, w.expected()), Ok(()), "{} {args}", W::NAME);
        w.job();
        assert_eq!(w.result(), r, "{} {args}: a second job differs", W::NAME);
        assert!(harness::check(Some(1), r, w.expected() ^ 1).is_err());
    }
}

#[cfg(test)]
mod tests {
    /// The expected values in the C example were computed on the host; the
    /// crc32fast crate, another implementation, must agree with each.
    #[test]
    fn c_example_expected_values_match_crc32fast() {
        let src = include_str!("../c/crc32/crc32.c");
        let rows: Vec<(usize, u32)> = src
            .lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix('{')?.strip_suffix("},")?;
                let (len, crc) = l.split_once(',')?;
                let crc = crc.trim().strip_prefix("0x")?.strip_suffix('u')?;
                Some((len.trim().parse().ok()?, u32::from_str_radix(crc, 16).ok()?))
            })
            .collect();
        assert_eq!(rows.len(), 4, "the table of expected values in crc32.c");
        for (len, crc) in rows {
            let mut buf = vec![0u8; len];
            crate::reference::fill_bytes(crate::reference::SEED_A, &mut buf);
            assert_eq!(crc32fast::hash(&buf), crc, "len={len}");
        }
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }
}
