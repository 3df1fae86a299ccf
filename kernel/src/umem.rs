//! User memory: the one way the kernel reads or writes memory a user
//! names (after Hubris' `USlice`).
//!
//! A [`USlice`] is a range of user addresses; its only constructor checks
//! that the range does not wrap and lies below `abi::USER_END`, so nothing
//! else turns a user address into something the kernel copies from or to.
//! A copy walks the owning space's page tables page by page and moves the
//! bytes through the kernel's direct map: the kernel never dereferences a
//! user address, so SMAP stays on for every instruction (no code runs
//! with RFLAGS.AC set) and an unmapped or kernel-only page is an error
//! that names the side of the transfer it was on and why ([`Fault`]),
//! never a kernel page fault.
//!
//! The range rules and the page split are hardware-free and tested on the
//! host; the copies exist only in the bare-metal build.
#![deny(clippy::arithmetic_side_effects)]

use abi::Error;

const PAGE: u64 = 4096;

/// A checked range of user addresses `[base, base + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct USlice {
    base: u64,
    len: u64,
}

impl USlice {
    /// The range of `len` bytes at `base`, if it does not wrap and ends at
    /// or below `abi::USER_END`; else `BadAddress`.
    pub fn new(base: u64, len: u64) -> Result<USlice, Error> {
        match base.checked_add(len) {
            Some(end) if end <= abi::USER_END => Ok(USlice { base, len }),
            _ => Err(Error::BadAddress),
        }
    }

    pub const fn base(&self) -> u64 {
        self.base
    }

    pub const fn len(&self) -> u64 {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part from byte `offset` on (empty past the end).
    fn from(&self, offset: u64) -> USlice {
        let offset = offset.min(self.len);
        // Neither saturates: offset <= len, and base + len does not wrap.
        USlice { base: self.base.saturating_add(offset), len: self.len.saturating_sub(offset) }
    }

    /// How many bytes from the start stay within the start's page (at
    /// most the whole range).
    fn in_first_page(&self) -> u64 {
        PAGE.saturating_sub(self.base % PAGE).min(self.len)
    }
}

/// The side of a transfer: where the bytes come from (the sender of a
/// message; the user in a copy into the kernel) or where they go (the
/// receiver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Sender,
    Receiver,
}

/// Why a side's page could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Not mapped for user access.
    NotMapped,
    /// Mapped, but read-only where the transfer writes.
    NotWritable,
}

/// A transfer fault (after Hubris' `InteractFault`): the one error of
/// every copy from or to user memory, saying which side faulted, at which
/// address, and why. The side's pager can map the page and the transfer
/// be retried. (A range that wraps or reaches past `abi::USER_END` is
/// refused before any side is touched, when its [`USlice`] is built.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub side: Side,
    pub addr: u64,
    pub why: Why,
}

impl Fault {
    /// The x86 page-fault error code of the faulting side's access: a user
    /// access (U), a write on the receiving side (W), to a present page
    /// where it was not writable (P).
    pub const fn error_code(&self) -> u64 {
        let write = matches!(self.side, Side::Receiver);
        let present = matches!(self.why, Why::NotWritable);
        4 | (write as u64) << 1 | present as u64
    }
}

/// What the caller of a copy nobody pages in sees.
impl From<Fault> for Error {
    fn from(_: Fault) -> Error {
        Error::BadAddress
    }
}

/// Why a message transfer did not complete: an error for the partners, or
/// a fault of one side, which takes it to its pager before the IPC is
/// retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Xfer {
    Failed(Error),
    Fault(Fault),
}

impl From<Error> for Xfer {
    fn from(e: Error) -> Xfer {
        Xfer::Failed(e)
    }
}

impl From<Fault> for Xfer {
    fn from(f: Fault) -> Xfer {
        Xfer::Fault(f)
    }
}

/// The steps of a copy from `src` to `dst` (`n` bytes each, at most the
/// shorter range): `(src address, dst address, n)`, each staying within
/// one page on both sides.
pub fn steps(src: USlice, dst: USlice) -> impl Iterator<Item = (u64, u64, u64)> {
    let total = src.len.min(dst.len);
    let mut done = 0u64;
    core::iter::from_fn(move || {
        if done >= total {
            return None;
        }
        let (s, d) = (src.from(done), dst.from(done));
        let n = s.in_first_page().min(d.in_first_page());
        let step = (s.base, d.base, n);
        // At most `total`: no overflow.
        done = done.saturating_add(n);
        Some(step)
    })
}

#[cfg(target_os = "none")]
pub use glue::*;

#[cfg(target_os = "none")]
mod glue {
    use super::{steps, Fault, Side, USlice, Why};
    use crate::arch::paging::{self, AddressSpace};

    /// The direct-map address of user address `a` of `space` on `side` of
    /// a transfer: its page must be mapped for user access, and writable
    /// on the receiving side.
    fn reach(space: &AddressSpace, a: u64, side: Side) -> Result<*mut u8, Fault> {
        let fault = |why| Fault { side, addr: a, why };
        let t = crate::types::VirtAddr::user(a)
            .and_then(|v| space.translate(v))
            .filter(|t| t.user)
            .ok_or(fault(Why::NotMapped))?;
        if side == Side::Receiver && !t.writable {
            return Err(fault(Why::NotWritable));
        }
        paging::phys_to_virt(t.phys).map(|v| v.as_mut_ptr()).ok_or(fault(Why::NotMapped))
    }

    /// Copies `min(src.len(), dst.len())` bytes from `src` in `src_space`
    /// to `dst` in `dst_space`; returns the count. Stops at the first page
    /// either side cannot reach (what was copied before stays copied).
    pub fn copy(src_space: &AddressSpace, src: USlice, dst_space: &AddressSpace, dst: USlice) -> Result<u64, Fault> {
        let mut done = 0u64;
        for (s, d, n) in steps(src, dst) {
            let from = reach(src_space, s, Side::Sender)?;
            let to = reach(dst_space, d, Side::Receiver)?;
            // SAFETY: both ranges lie inside one mapped user frame each
            // (a step stops at both page ends), reached through the direct
            // map; `copy` allows them to overlap (one space, one frame).
            unsafe { core::ptr::copy(from, to, n as usize) };
            done = done.saturating_add(n);
        }
        Ok(done)
    }

    /// Copies `src` of `space` into `buf` (`buf.len()` bytes, at most the
    /// range's length); the user is the sending side.
    pub fn copy_in(space: &AddressSpace, src: USlice, buf: &mut [u8]) -> Result<(), Fault> {
        let mut at = 0usize;
        for (s, _, n) in steps(src, src) {
            let n = (n as usize).min(buf.len().saturating_sub(at));
            let from = reach(space, s, Side::Sender)?;
            // SAFETY: `from..from+n` lies inside one mapped user frame,
            // reached through the direct map; `buf[at..at+n]` is ours.
            unsafe { core::ptr::copy_nonoverlapping(from, buf[at..].as_mut_ptr(), n) };
            at = at.saturating_add(n);
            if at == buf.len() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_stay_below_the_user_end_and_not_wrap() {
        assert!(USlice::new(0, 0).is_ok());
        assert!(USlice::new(abi::USER_END - 8, 8).is_ok());
        assert!(USlice::new(abi::USER_END, 0).is_ok());
        assert_eq!(USlice::new(abi::USER_END - 8, 9), Err(Error::BadAddress));
        assert_eq!(USlice::new(abi::USER_END, 1), Err(Error::BadAddress));
        assert_eq!(USlice::new(u64::MAX - 3, 8), Err(Error::BadAddress));
        assert_eq!(USlice::new(u64::MAX, u64::MAX), Err(Error::BadAddress));
        assert_eq!(USlice::new(1, u64::MAX), Err(Error::BadAddress));
    }

    #[test]
    fn steps_stop_at_both_page_ends() {
        let s = USlice::new(0x1ff0, 0x30).unwrap();
        let d = USlice::new(0x5008, 0x100).unwrap();
        let v: Vec<_> = steps(s, d).collect();
        assert_eq!(v, vec![(0x1ff0, 0x5008, 0x10), (0x2000, 0x5018, 0x20)]);
        let d = USlice::new(0x5ff8, 0x100).unwrap();
        let v: Vec<_> = steps(s, d).collect();
        assert_eq!(v, vec![(0x1ff0, 0x5ff8, 0x8), (0x1ff8, 0x6000, 0x8), (0x2000, 0x6008, 0x20)]);
        assert_eq!(steps(s, USlice::new(0, 0).unwrap()).count(), 0);
    }

    #[test]
    fn a_fault_gives_the_access_its_side_made() {
        let f = |side, why| Fault { side, addr: 0x1000, why }.error_code();
        assert_eq!(f(Side::Sender, Why::NotMapped), 0b100);
        assert_eq!(f(Side::Receiver, Why::NotMapped), 0b110);
        assert_eq!(f(Side::Receiver, Why::NotWritable), 0b111);
        assert_eq!(Error::from(Fault { side: Side::Sender, addr: 0, why: Why::NotMapped }), Error::BadAddress);
    }

    proptest::proptest! {
        #[test]
        fn steps_cover_the_shorter_range_exactly(
            sb in 0u64..1 << 20, db in 0u64..1 << 20, sl in 0u64..20_000, dl in 0u64..20_000,
        ) {
            let (s, d) = (USlice::new(sb, sl).unwrap(), USlice::new(db, dl).unwrap());
            let mut at = 0;
            for (a, b, n) in steps(s, d) {
                proptest::prop_assert!(n > 0 && n <= PAGE);
                proptest::prop_assert_eq!((a, b), (sb + at, db + at));
                proptest::prop_assert_eq!(a / PAGE, (a + n - 1) / PAGE);
                proptest::prop_assert_eq!(b / PAGE, (b + n - 1) / PAGE);
                at += n;
            }
            proptest::prop_assert_eq!(at, sl.min(dl));
        }
    }
}
