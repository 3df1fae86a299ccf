//! I/O ports as flexpages: each space may have an I/O permission bitmap
//! (8 KiB from the kernel pool, bit set = port denied) that the kernel
//! loads into the TSS when a thread of that space runs. sigma0 starts with
//! every port; an I/O flexpage in a map or grant item passes ports on.
//!
//! Ports are tracked per space, not in the mapping database: a flush of an
//! I/O flexpage takes the ports from the caller's own space only.
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::gdt::{self, IOMAP_BYTES};
use crate::arch::paging;
use crate::state::POOL;
use crate::thread::Kernel;
use crate::types::{SpaceIdx, SpaceLink};
use abi::Error;

/// Space `sp`'s bitmap (two contiguous pool frames of its own, in the
/// direct map), if it has one: borrowed from the kernel state like every
/// other reference to it, so none is ever held beside a `&mut`.
fn bitmap(kk: &Kernel, sp: SpaceIdx) -> Option<&[u8; IOMAP_BYTES]> {
    let v = paging::pool_frame_virt(kk.spaces[sp].io_bitmap?);
    // SAFETY: the space's live bitmap; the shared borrow of `kk` excludes
    // every `&mut` to it (those come from `bitmap_mut`, borrowing `kk`
    // mutably).
    Some(unsafe { &*v.as_mut_ptr::<[u8; IOMAP_BYTES]>() })
}

/// [`bitmap`], to change.
fn bitmap_mut(kk: &mut Kernel, sp: SpaceIdx) -> Option<&mut [u8; IOMAP_BYTES]> {
    let v = paging::pool_frame_virt(kk.spaces[sp].io_bitmap?);
    // SAFETY: as for `bitmap`; the `&mut kk` borrow makes this the only
    // reference to it while it lives.
    Some(unsafe { &mut *v.as_mut_ptr::<[u8; IOMAP_BYTES]>() })
}

/// Makes space `sp`'s ports the ones in effect: a space without ports just
/// switches the TSS bitmap off (no copy); a space with ports copies its
/// bitmap only if the TSS holds another space's.
#[inline(always)]
pub fn load(kk: &mut Kernel, sp: SpaceIdx) {
    if let Some(map) = bitmap(kk, sp) {
        if !kk.io_copied.is(sp) {
            gdt::load_io_bitmap(map);
            kk.io_copied = SpaceLink::to(sp);
        }
        gdt::set_io_bitmap_enabled(true);
    } else {
        gdt::set_io_bitmap_enabled(false);
    }
    kk.loaded_io = SpaceLink::to(sp);
}

/// A bitmap changed or went away: reload at the next switch.
pub fn invalidate(kk: &mut Kernel) {
    kk.io_copied = SpaceLink::NONE;
    // No space's: the next switch reloads.
    kk.loaded_io = SpaceLink::NONE;
}

/// Space `sp`'s bitmap, made (every bit `fill`) if it has none.
fn ensure_bitmap(kk: &mut Kernel, sp: SpaceIdx, fill: u8) -> Result<&mut [u8; IOMAP_BYTES], Error> {
    if kk.spaces[sp].io_bitmap.is_none() {
        let f = POOL.lock().alloc_contiguous(2).map_err(|_| Error::OutOfMemory)?;
        kk.spaces[sp].io_bitmap = Some(f);
        bitmap_mut(kk, sp).ok_or(Error::OutOfMemory)?.fill(fill);
    }
    bitmap_mut(kk, sp).ok_or(Error::OutOfMemory)
}

/// Gives space `sp` every port (sigma0 at boot).
pub fn grant_all(kk: &mut Kernel, sp: SpaceIdx) -> Result<(), Error> {
    ensure_bitmap(kk, sp, 0)?.fill(0);
    Ok(())
}

fn allowed(map: &[u8; IOMAP_BYTES], port: u32) -> bool {
    map[port as usize / 8] & (1 << (port % 8)) == 0
}

fn set(map: &mut [u8; IOMAP_BYTES], port: u32, allow: bool) {
    let b = &mut map[port as usize / 8];
    if allow {
        *b &= !(1 << (port % 8));
    } else {
        *b |= 1 << (port % 8);
    }
}

/// The ports of a well-formed I/O flexpage's range (`Fpage::io_range`:
/// `first + n <= 2^16`, so the end never saturates).
fn ports((first, n): (u32, u32)) -> core::ops::Range<u32> {
    first..first.saturating_add(n)
}

/// Passes the `n` ports from `first` (a well-formed I/O flexpage's range)
/// from space `s` to space `r` (the sender must hold every one of them).
pub fn map_ports(kk: &mut Kernel, s: SpaceIdx, r: SpaceIdx, range: (u32, u32), grant: bool) -> Result<(), Error> {
    if !bitmap(kk, s).is_some_and(|b| ports(range).all(|p| allowed(b, p))) {
        return Err(Error::NoPermission);
    }
    let rmap = ensure_bitmap(kk, r, 0xff)?;
    for p in ports(range) {
        set(rmap, p, true);
    }
    if grant {
        // After the receiver's: a grant to one's own space takes the ports
        // away, as it always has.
        let smap = bitmap_mut(kk, s).ok_or(Error::NoPermission)?;
        for p in ports(range) {
            set(smap, p, false);
        }
    }
    // Reload at the next switch if either bitmap is the one in the TSS.
    invalidate(kk);
    Ok(())
}

/// Takes the `n` ports from `first` away from space `sp` itself.
pub fn unmap_own(kk: &mut Kernel, sp: SpaceIdx, range: (u32, u32)) -> Result<u64, Error> {
    let Some(map) = bitmap_mut(kk, sp) else { return Ok(0) };
    let mut changed = 0u64;
    for p in ports(range) {
        if allowed(map, p) {
            set(map, p, false);
            changed = changed.saturating_add(1);
        }
    }
    invalidate(kk);
    Ok(changed)
}
