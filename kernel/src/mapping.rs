//! Typed IPC items that touch memory: map/grant items (flexpages) and
//! string items (copied once, sender space to receiver space).
//!
//! Both walk the page tables of the two spaces and copy through the
//! kernel's direct map, so an unmapped or kernel address in a user-supplied
//! item is an error code, never a kernel fault. Work is bounded: a map item
//! covers at most [`MAX_MAP_LOG2`] bytes, a string at most `MAX_STRING`.

use crate::arch::paging::{self, Rights};
use crate::init::POOL;
use crate::thread::{map_err, Kernel, State, MAX_THREADS};
use abi::ipc::{item, rights, Fpage};
use abi::Error;

/// Largest flexpage a single map item may name (16 MiB = 4096 pages).
pub const MAX_MAP_LOG2: u32 = 24;
const USER_LOG2: u32 = 47;

/// Is `v` the UTCB page of a thread in space `sp`? (UTCBs are the kernel's
/// and are never replaced or granted away.)
fn is_utcb(kk: &Kernel, sp: u16, v: u64) -> bool {
    (1..MAX_THREADS).any(|i| {
        let t = &kk.tcbs[i];
        t.state != State::Free && t.space == sp && t.utcb_vaddr == v
    })
}

/// Maps (or grants) sender `s`'s flexpage into receiver `r`'s `window`.
pub fn map_item(kk: &mut Kernel, s: usize, r: usize, w0: u64, fpage: Fpage, window: Fpage) -> Result<(), Error> {
    if !fpage.is_valid() || fpage.size_log2() > MAX_MAP_LOG2 {
        return Err(Error::InvalidArgument);
    }
    if !window.is_valid() {
        // The receiver does not accept mappings.
        return Err(Error::MessageOverflow);
    }
    let grant = w0 & item::KIND_MASK == item::GRANT;
    let send_base = w0 & !0xfff;
    let (wbase, wlog2) = if window.size_log2() == 63 { (0, USER_LOG2) } else { (window.base(), window.size_log2()) };
    let flog2 = fpage.size_log2();
    // The part of the fpage that lands in the window, and where.
    let (src, dst, log2) = if flog2 <= wlog2 {
        let off = send_base & ((1u64 << wlog2) - 1) & !((1u64 << flog2) - 1);
        (fpage.base(), wbase + off, flog2)
    } else {
        let off = send_base & ((1u64 << flog2) - 1) & !((1u64 << wlog2) - 1);
        (fpage.base() + off, wbase, wlog2.min(MAX_MAP_LOG2))
    };
    let (ssp, rsp) = (kk.tcbs[s].space, kk.tcbs[r].space);
    let mut pool = POOL.lock();
    for p in (0..1u64 << log2).step_by(4096) {
        let (sv, rv) = (src + p, dst + p);
        let Some(m) = kk.space_of(s).translate(sv).filter(|m| m.user) else { continue };
        if ssp == rsp && sv == rv {
            continue;
        }
        if is_utcb(kk, rsp, rv) || (grant && is_utcb(kk, ssp, sv)) || rv == abi::KIP_VADDR {
            continue;
        }
        let rights = Rights {
            write: m.writable && fpage.rights() & rights::WRITE != 0,
            exec: m.executable && fpage.rights() & rights::EXEC != 0,
        };
        let frame = m.phys & !0xfff;
        let rspace = kk.space_of_mut(r);
        if rspace.translate(rv).is_some() {
            rspace.unmap(rv);
        }
        rspace.map(rv, frame, rights, &mut pool).map_err(map_err)?;
        if grant {
            kk.space_of_mut(s).unmap(sv);
        }
    }
    Ok(())
}

/// Copies sender `s`'s string `[addr, addr+len)` into receiver `r`'s
/// string buffer (`br[1]` address, `br[2]` size); returns where and how
/// much landed.
pub fn string_item(kk: &mut Kernel, s: usize, r: usize, addr: u64, len: u64) -> Result<(u64, u64), Error> {
    let (rbuf, rlen) = (kk.utcb(r).br[1], kk.utcb(r).br[2]);
    if len > item::MAX_STRING || len > rlen {
        return Err(Error::MessageOverflow);
    }
    let mut done = 0u64;
    while done < len {
        let (sa, ra) =
            (addr.checked_add(done).ok_or(Error::BadAddress)?, rbuf.checked_add(done).ok_or(Error::BadAddress)?);
        if sa >= abi::USER_END || ra >= abi::USER_END {
            return Err(Error::BadAddress);
        }
        let n = (4096 - (sa & 0xfff)).min(4096 - (ra & 0xfff)).min(len - done);
        let sm = kk.space_of(s).translate(sa).filter(|m| m.user).ok_or(Error::BadAddress)?;
        let rm = kk.space_of(r).translate(ra).filter(|m| m.user && m.writable).ok_or(Error::BadAddress)?;
        let (sp, rp) = (paging::phys_to_virt(sm.phys), paging::phys_to_virt(rm.phys));
        let (Some(sp), Some(rp)) = (sp, rp) else { return Err(Error::BadAddress) };
        // SAFETY: both ranges lie inside one mapped user frame each (n stops
        // at both page ends), reached through the direct map.
        unsafe { core::ptr::copy(sp as *const u8, rp as *mut u8, n as usize) };
        done += n;
    }
    Ok((rbuf, len))
}
