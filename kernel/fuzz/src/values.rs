//! Boundary values: the numbers a hostile caller tries first. Every
//! generator here mixes them with plain random words.

use crate::rng::Rng;
use abi::ipc::{rights, Fpage, Tag, Timeout};
use abi::{ThreadId, USER_END};

/// Kernel-half addresses (canonical, supervisor-only).
pub const KERNEL: [u64; 4] =
    [0xffff_8000_0000_0000, 0xffff_ffff_8000_0000, 0xffff_ffff_8010_0000, 0xffff_ffff_ffff_f000];
/// Non-canonical addresses, starting at the first one.
pub const NON_CANONICAL: [u64; 4] = [USER_END, USER_END + 0x1000, 0x0000_ffff_ffff_f000, 0x8000_0000_0000_0000];

/// A word: 0, 1, -1, a power of two (or one less), a small number, or random.
pub fn word(r: &mut Rng) -> u64 {
    match r.below(10) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => 1 << 63,
        4 => u32::MAX as u64,
        5 => 1 << r.below(64),
        6 => (1u64 << r.below(64)).wrapping_sub(1),
        7 => r.below(256),
        _ => r.next_u64(),
    }
}

/// An address that no user access may reach: kernel half, non-canonical,
/// or a range that wraps (`u64::MAX - k`).
pub fn bad_address(r: &mut Rng) -> u64 {
    match r.below(4) {
        0 => r.pick(&KERNEL) + r.below(0x1000),
        1 => r.pick(&NON_CANONICAL) + r.below(0x1000),
        2 => u64::MAX - r.below(0x1000),
        _ => USER_END - r.range(1, 7),
    }
}

/// Thread ids that name no live thread: never used (version 0, or a version
/// no slot reaches), out of the table, or odd pseudo-ids.
pub fn forged_id(r: &mut Rng) -> ThreadId {
    let index = r.pick(&[0u32, 1, 2, 127, 128, 129, 0xffff, u32::MAX]) ^ (r.below(2) as u32 * r.below(128) as u32);
    let version = match r.below(4) {
        0 => 0,
        1 => r.range(0x4000_0000, 0x7fff_ffff) as u32,
        2 => r.range(0x8000_0000, abi::tid::IRQ_VERSION as u64 - 1) as u32,
        _ => abi::tid::IRQ_VERSION + 1 + r.below(14) as u32,
    };
    // Index 0 with version 0 would be NIL ("no thread"), not a forgery.
    ThreadId::new(index.max((version == 0) as u32), version)
}

/// A timeout: zero, never, short, long, or a hand-made encoding (up to
/// mantissa << exponent past 2^64).
pub fn timeout(r: &mut Rng) -> Timeout {
    match r.below(8) {
        0 => Timeout::ZERO,
        1 => Timeout::NEVER,
        2 => Timeout::ticks(r.range(1, 1000)),
        3 => Timeout::ticks(1 << r.below(63)),
        4 => Timeout((63 << 26) | r.range(1, (1 << 26) - 1) as u32),
        5 => Timeout(r.below(64) as u32 * (1 << 26)),
        _ => Timeout(r.next_u64() as u32),
    }
}

/// A timeout that ends within a few microseconds, in any of its encodings
/// (a zero mantissa with a non-zero exponent is zero ticks, not `ZERO`).
pub fn short_timeout(r: &mut Rng) -> Timeout {
    match r.below(4) {
        0 => Timeout::ZERO,
        1 => Timeout::ticks(r.range(1, 2000)),
        2 => Timeout(r.range(1, 63) as u32 * (1 << 26)),
        _ => Timeout((r.range(0, 4) as u32) << 26 | r.range(1, 64) as u32),
    }
}

/// A message tag: plausible, long, impossible (more than 63 words, an odd
/// number of typed words) or random, with any label (the kernel's own
/// labels included).
pub fn tag(r: &mut Rng) -> u64 {
    let label = match r.below(4) {
        0 => 0,
        1 => abi::ipc::label::EXCEPTION - r.below(4),
        2 => r.below(0x1_0000),
        _ => r.next_u64() >> 16,
    };
    match r.below(4) {
        0 => Tag::new(label, r.below(7) as usize, 0).0,
        1 => Tag::new(label, r.range(7, 63) as usize, 0).0,
        2 => Tag::new(label, r.range(33, 63) as usize, r.range(33, 63) as usize).0,
        _ => r.next_u64(),
    }
}

/// Rights bits, usually one of the meaningful combinations.
pub fn rights(r: &mut Rng) -> u64 {
    r.pick(&[rights::ALL, rights::READ, rights::READ | rights::WRITE, rights::READ | rights::EXEC, rights::WRITE, 0])
}

/// A flexpage near `near` (the caller's own memory): valid of any size up
/// to 2^24 and beyond, the whole space, misaligned, too small, past the
/// user half, an I/O flexpage (valid, or overflowing the port space), or
/// random bits.
pub fn fpage(r: &mut Rng, near: u64) -> Fpage {
    let s = r.range(12, 24) as u32;
    let base = near & !((1u64 << s) - 1);
    match r.below(10) {
        0..=3 => Fpage::new(base, s, rights(r)),
        4 => Fpage::new(base, r.range(25, 62) as u32, rights(r)),
        5 => Fpage::COMPLETE,
        6 => Fpage::new(base | 0x1000, r.range(13, 24) as u32, rights(r)),
        7 => Fpage::new(r.pick(&NON_CANONICAL), s, rights(r)),
        8 => io_fpage(r),
        _ => Fpage(r.next_u64()),
    }
}

/// An I/O flexpage: a well-formed port range, or one whose port field or
/// size leaves the 2^16 ports.
pub fn io_fpage(r: &mut Rng) -> Fpage {
    let s = r.below(18);
    let port = match r.below(4) {
        0 => r.below(0x1_0000) & !((1u64 << s.min(16)) - 1),
        1 => 0x1_0000 - (1 << s.min(16)),
        2 => 0xffff_0000,
        _ => r.next_u64() >> 12,
    };
    Fpage((port << 12) | (s << 4) | 8 | r.below(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_addresses_are_never_user_ranges() {
        let mut r = Rng::new(3);
        for _ in 0..10_000 {
            let a = bad_address(&mut r);
            assert!(a.checked_add(8).is_none_or(|end| end > USER_END), "{a:#x}");
        }
    }

    #[test]
    fn forged_ids_are_never_plausible_live_ids() {
        let mut r = Rng::new(4);
        for _ in 0..10_000 {
            let t = forged_id(&mut r);
            // Live versions start at 1 and grow by one per deletion of the
            // slot; no test deletes a slot 2^30 times.
            assert!(t.version() == 0 || t.version() >= 0x4000_0000 || t.index() >= 128, "{t:?}");
            assert_ne!(t, ThreadId::ANY);
            assert!(!t.is_nil());
        }
    }

    #[test]
    fn short_timeouts_are_short() {
        let mut r = Rng::new(5);
        for _ in 0..10_000 {
            let t = short_timeout(&mut r).as_ticks();
            assert!(t.is_some_and(|t| t <= 2000), "{t:?}");
        }
    }
}
