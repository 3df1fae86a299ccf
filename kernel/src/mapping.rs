//! Typed IPC items that touch memory: map/grant items (flexpages, recorded
//! in the mapping database), flush, and string items (copied once, sender
//! space to receiver space).
//!
//! Both walk the page tables of the two spaces and copy through the
//! kernel's direct map, so an unmapped or kernel address in a user-supplied
//! item is an error code, never a kernel fault. Work is bounded: a map item
//! covers at most [`MAX_MAP_LOG2`] bytes, a string at most `MAX_STRING`.
//!
//! The mapping database's invariants (`MapDb::check`, O(nodes)) are checked
//! by its host property tests and, in the guest, by the fuzzer's checker
//! (`invariants`) after every batch of calls; not after every call, which
//! would make the overflow-checked kernel too slow for the suite's RT
//! deadlines.
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::paging::Rights;
use crate::mapdb::{MapDb, MapDbError, Rights as DbRights, SpaceId};
use crate::state::POOL;
use crate::thread::{map_err, Kernel, Space};
use crate::types::{PerSpace, PhysAddr, Slot, SpaceIdx, VirtAddr};
use crate::umem::{self, USlice, Xfer};
use abi::ipc::{item, Fpage};
use abi::Error;

/// Largest flexpage a single map item may name (16 MiB = 4096 pages).
pub const MAX_MAP_LOG2: u32 = 24;
const USER_LOG2: u32 = 47;

/// Applies one mapping-database change to the page tables.
fn apply(spaces: &mut PerSpace<Space>, sp: SpaceId, vpage: u64, r: Option<DbRights>) {
    let Some(space) = SpaceIdx::new(sp as usize).and_then(|sp| spaces[sp].space.as_mut()) else { return };
    match r {
        None => {
            space.unmap(page_of(vpage));
        }
        Some(r) => {
            space.protect(page_of(vpage), to_pt(r));
        }
    }
}

/// The address of a page number the mapping database reported (it holds
/// only the user pages the kernel recorded).
fn page_of(vpage: u64) -> VirtAddr {
    VirtAddr::from_kernel(vpage << 12)
}

fn to_pt(r: DbRights) -> Rights {
    Rights { write: r.contains(DbRights::WRITE), exec: r.contains(DbRights::EXEC) }
}

/// The rights sigma0 has on physical page `v`: everything on usable RAM,
/// read-only on boot modules (it loads them), none elsewhere.
fn sigma0_rights(v: u64) -> Option<DbRights> {
    match crate::state::MEMMAP.get()?.kind_of(v)? {
        abi::kip::MemKind::Usable => Some(DbRights::ALL),
        abi::kip::MemKind::Module => Some(DbRights::READ),
        _ => None,
    }
}

/// sigma0's space is idempotent over usable RAM: the root mapping of
/// physical page `v` at virtual `v` is made the first time sigma0 uses or
/// passes on that page. Returns whether the page is now mapped.
pub fn sigma0_touch(kk: &mut Kernel, v: u64) -> bool {
    let v = v & !0xfff;
    let Some(sp) = kk.sigma0_space else { return false };
    let Some(rights) = sigma0_rights(v).filter(|_| v < abi::USER_END) else { return false };
    let (Some(db), Some(space)) = (kk.mapdb.as_mut(), kk.spaces[sp].space.as_mut()) else { return false };
    let sp = sp.number();
    if db.lookup(sp, v >> 12).is_some() {
        return true;
    }
    if db.insert_root(sp, v >> 12, v, rights).is_err() {
        return false;
    }
    // Below USER_END (checked above): a user address, and the frame of the
    // same number a physical address of usable RAM or a module.
    let (va, pa) = (VirtAddr::from_kernel(v), PhysAddr::from_kernel(v));
    if space.translate(va).is_some() || space.map(va, pa, to_pt(rights), &mut POOL.lock()).is_err() {
        // The page is taken in sigma0's space (its own image) or no page
        // table could be had: sigma0 does not own it after all.
        let _ = db.unmap(sp, v >> 12, DbRights::ALL, true, &mut |_, _, _| {});
        return false;
    }
    true
}

/// A page fault of thread `t` that sigma0's idempotent space resolves by
/// itself (a first touch of RAM or a module); true if it did.
pub fn sigma0_fault(kk: &mut Kernel, t: Slot, addr: u64, error: u64) -> bool {
    Some(kk.tcbs[t].space) == kk.sigma0_space && error & 1 == 0 && sigma0_touch(kk, addr)
}

/// Records a kernel-made user mapping (the root task's image and stack) as
/// a root of the mapping database, so it can be mapped onwards.
pub fn insert_root_in(
    db: Option<&mut MapDb<'static>>,
    sp: SpaceIdx,
    v: VirtAddr,
    frame: PhysAddr,
    r: Rights,
) -> Result<(), Error> {
    let mut rights = DbRights::READ;
    if r.write {
        rights = DbRights(rights.0 | DbRights::WRITE.0);
    }
    if r.exec {
        rights = DbRights(rights.0 | DbRights::EXEC.0);
    }
    let db = db.ok_or(Error::OutOfMemory)?;
    db.insert_root(sp.number(), v.as_u64() >> 12, frame.as_u64(), rights).map_err(|_| Error::OutOfMemory)
}

/// The low `log2` bits set (`log2` < 64: a flexpage size field has 6 bits).
fn low_mask(log2: u32) -> u64 {
    1u64.checked_shl(log2).map_or(u64::MAX, |b| b.wrapping_sub(1))
}

/// Maps (or grants) sender `s`'s flexpage into receiver `r`'s `window`.
/// Returns the last page it installed (receiver address, rights), if any.
pub fn map_item(
    kk: &mut Kernel,
    s: Slot,
    r: Slot,
    w0: u64,
    fpage: Fpage,
    window: Fpage,
) -> Result<Option<(u64, DbRights)>, Error> {
    let grant = w0 & item::KIND_MASK == item::GRANT;
    let (ssp, rsp) = (kk.tcbs[s].space, kk.tcbs[r].space);
    if fpage.is_io() {
        let ports = fpage.io_range().ok_or(Error::InvalidArgument)?;
        if window.0 == 0 {
            return Err(Error::MessageOverflow);
        }
        return crate::io::map_ports(kk, ssp, rsp, ports, grant).map(|_| None);
    }
    if !fpage.is_valid() || fpage.size_log2() > MAX_MAP_LOG2 {
        return Err(Error::InvalidArgument);
    }
    if !window.is_valid() {
        // The receiver does not accept mappings.
        return Err(Error::MessageOverflow);
    }
    let send_base = w0 & !0xfff;
    let (wbase, wlog2) = if window.size_log2() == 63 { (0, USER_LOG2) } else { (window.base(), window.size_log2()) };
    let flog2 = fpage.size_log2();
    // The part of the fpage that lands in the window, and where. Valid
    // flexpages lie below 2^47 (`Fpage::is_valid`): no sum below can
    // overflow, and one that did would be a bad item, not a kernel fault.
    let at = |base: u64, off: u64| base.checked_add(off).ok_or(Error::InvalidArgument);
    let (src, dst, log2) = if flog2 <= wlog2 {
        let off = send_base & low_mask(wlog2) & !low_mask(flog2);
        (fpage.base(), at(wbase, off)?, flog2)
    } else {
        let off = send_base & low_mask(flog2) & !low_mask(wlog2);
        (at(fpage.base(), off)?, wbase, wlog2.min(MAX_MAP_LOG2))
    };
    let rights = DbRights(fpage.rights() as u8);
    let mut last = None;
    for p in (0..1u64 << log2).step_by(4096) {
        let (sv, rv) = (at(src, p)?, at(dst, p)?);
        if rv >= abi::USER_END {
            continue;
        }
        // UTCBs and the KIP are the kernel's: never replaced (one walk of
        // the receiver's tables, whatever the number of threads, whose leaf
        // entry the new mapping is written to below).
        let Some(rspace) = kk.spaces[rsp].space.as_mut() else { return Err(Error::InvalidThread) };
        // Below USER_END (checked above).
        let rva = VirtAddr::from_kernel(rv);
        let leaf = rspace.leaf_entry(rva);
        if leaf.is_some_and(|l| l.kernel_owned()) {
            continue;
        }
        if Some(ssp) == kk.sigma0_space {
            sigma0_touch(kk, sv);
        }
        let Kernel { mapdb, spaces, .. } = kk;
        let db = mapdb.as_mut().ok_or(Error::OutOfMemory)?;
        let mut on_update = |sp: SpaceId, vp: u64, r: Option<DbRights>| apply(spaces, sp, vp, r);
        let from = (ssp.number(), sv >> 12);
        let to = (rsp.number(), rv >> 12);
        let res =
            if grant { db.grant(from, to, rights, &mut on_update) } else { db.map(from, to, rights, &mut on_update) };
        let (frame, eff) = match res {
            Ok(x) => x,
            // Partly unmapped regions map what is there.
            Err(MapDbError::NotMapped) | Err(MapDbError::NoRights) => continue,
            Err(MapDbError::Cycle) | Err(MapDbError::Exists) => return Err(Error::InvalidArgument),
            Err(MapDbError::Full) => return Err(Error::OutOfMemory),
        };
        let Some(rspace) = spaces[rsp].space.as_mut() else { return Err(Error::InvalidThread) };
        // Whatever was mapped at `rv` (the database removed its own entry
        // for it already) is replaced.
        // SAFETY: `leaf` is this space's walk of `rv` from above; since
        // then page tables were only made or had entries cleared (sigma0's
        // touch, the database's updates), never freed.
        if let Err(e) = unsafe { rspace.set_in(leaf, rva, PhysAddr::from_kernel(frame), to_pt(eff), &mut POOL.lock()) }
        {
            // No page table: undo the database entry so both agree.
            db.unmap(rsp.number(), rv >> 12, DbRights::ALL, true, &mut |sp, vp, r| apply(spaces, sp, vp, r));
            return Err(map_err(e));
        }
        last = Some((rv, eff));
    }
    Ok(last)
}

/// The `UNMAP` call: flush `fpage` of the caller's space.
pub fn unmap(kk: &mut Kernel, cur: Slot, fpage: Fpage, include_self: bool) -> Result<u64, Error> {
    let sp = kk.tcbs[cur].space;
    if fpage.is_io() {
        let ports = fpage.io_range().ok_or(Error::InvalidArgument)?;
        return if include_self { crate::io::unmap_own(kk, sp, ports) } else { Ok(0) };
    }
    if !fpage.is_valid() || fpage.size_log2() > MAX_MAP_LOG2 {
        return Err(Error::InvalidArgument);
    }
    let revoke = DbRights(fpage.rights() as u8);
    if revoke.is_empty() {
        return Ok(0);
    }
    let Kernel { mapdb, spaces, .. } = kk;
    let db = mapdb.as_mut().ok_or(Error::OutOfMemory)?;
    let mut n = 0u64;
    // A valid flexpage ends at or below 2^47: the end cannot overflow.
    let end = fpage.base().checked_add(1u64 << fpage.size_log2()).ok_or(Error::InvalidArgument)?;
    // UTCB and KIP pages are the kernel's and never in the database, so a
    // flush cannot touch them.
    for v in (fpage.base()..end).step_by(4096) {
        let removed = db.unmap(sp.number(), v >> 12, revoke, include_self, &mut |s, vp, r| apply(spaces, s, vp, r));
        n = n.saturating_add(removed as u64);
    }
    Ok(n)
}

/// Flushes every mapping of space `sp` and everything derived from them.
pub fn remove_space(kk: &mut Kernel, sp: SpaceIdx) {
    let Kernel { mapdb, spaces, .. } = kk;
    if let Some(db) = mapdb.as_mut() {
        db.remove_space(sp.number(), &mut |s, vp, r| apply(spaces, s, vp, r));
    }
}

/// Copies sender `s`'s string `[addr, addr+len)` into receiver `r`'s
/// string buffer (`br[1]` address, `br[2]` size); returns where and how
/// much landed.
pub fn string_item(kk: &mut Kernel, s: Slot, r: Slot, addr: u64, len: u64) -> Result<(u64, u64), Xfer> {
    let (rbuf, rlen) = (kk.utcb(r).br[1], kk.utcb(r).br[2]);
    if len > item::MAX_STRING || len > rlen {
        return Err(Error::MessageOverflow.into());
    }
    if len == 0 {
        // Nothing to copy: no address is looked at.
        return Ok((rbuf, 0));
    }
    let src = USlice::new(addr, len)?;
    let dst = USlice::new(rbuf, len)?;
    let (Some(sspace), Some(rspace)) = (kk.space_of(s), kk.space_of(r)) else {
        return Err(Error::InvalidThread.into());
    };
    umem::copy(sspace, src, rspace, dst)?;
    Ok((rbuf, len))
}
