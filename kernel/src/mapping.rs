//! Typed IPC items that touch memory: map/grant items (flexpages, recorded
//! in the mapping database), flush, and string items (copied once, sender
//! space to receiver space).
//!
//! Both walk the page tables of the two spaces and copy through the
//! kernel's direct map, so an unmapped or kernel address in a user-supplied
//! item is an error code, never a kernel fault. Work is bounded: a map item
//! covers at most [`MAX_MAP_LOG2`] bytes, a string at most `MAX_STRING`.

use crate::arch::paging::{self, Rights};
use crate::init::POOL;
use crate::mapdb::{MapDb, MapDbError, Rights as DbRights, SpaceId};
use crate::thread::{map_err, Kernel, Space, State, MAX_THREADS};
use abi::ipc::{item, Fpage};
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

/// Applies one mapping-database change to the page tables.
fn apply(spaces: &mut [Space], sp: SpaceId, vpage: u64, r: Option<DbRights>) {
    let Some(space) = spaces[sp as usize].space.as_mut() else { return };
    match r {
        None => {
            space.unmap(vpage << 12);
        }
        Some(r) => {
            space.protect(vpage << 12, to_pt(r));
        }
    }
}

fn to_pt(r: DbRights) -> Rights {
    Rights { write: r.contains(DbRights::WRITE), exec: r.contains(DbRights::EXEC) }
}

/// The rights sigma0 has on physical page `v`: everything on usable RAM,
/// read-only on boot modules (it loads them), none elsewhere.
fn sigma0_rights(v: u64) -> Option<DbRights> {
    match crate::init::MEMMAP.get()?.kind_of(v)? {
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
    let Some(db) = kk.mapdb.as_mut() else { return false };
    if db.lookup(sp, v >> 12).is_some() {
        return true;
    }
    if db.insert_root(sp, v >> 12, v, rights).is_err() {
        return false;
    }
    let space = kk.spaces[sp as usize].space.as_mut().expect("sigma0 space");
    if space.translate(v).is_some() || space.map(v, v, to_pt(rights), &mut POOL.lock()).is_err() {
        // The page is taken in sigma0's space (its own image) or no page
        // table could be had: sigma0 does not own it after all.
        let _ = db.unmap(sp, v >> 12, DbRights::ALL, true, &mut |_, _, _| {});
        return false;
    }
    true
}

/// A page fault of thread `t` that sigma0's idempotent space resolves by
/// itself (a first touch of RAM or a module); true if it did.
pub fn sigma0_fault(kk: &mut Kernel, t: usize, addr: u64, error: u64) -> bool {
    Some(kk.tcbs[t].space) == kk.sigma0_space && error & 1 == 0 && sigma0_touch(kk, addr)
}

/// Records a kernel-made user mapping (the root task's image and stack) as
/// a root of the mapping database, so it can be mapped onwards.
pub fn insert_root_in(db: Option<&mut MapDb<'static>>, sp: u16, v: u64, frame: u64, r: Rights) -> Result<(), Error> {
    let mut rights = DbRights::READ;
    if r.write {
        rights = DbRights(rights.0 | DbRights::WRITE.0);
    }
    if r.exec {
        rights = DbRights(rights.0 | DbRights::EXEC.0);
    }
    let db = db.ok_or(Error::OutOfMemory)?;
    db.insert_root(sp, v >> 12, frame, rights).map_err(|_| Error::OutOfMemory)
}

/// Maps (or grants) sender `s`'s flexpage into receiver `r`'s `window`.
/// Returns the last page it installed (receiver address, rights), if any.
pub fn map_item(
    kk: &mut Kernel,
    s: usize,
    r: usize,
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
    // The part of the fpage that lands in the window, and where.
    let (src, dst, log2) = if flog2 <= wlog2 {
        let off = send_base & ((1u64 << wlog2) - 1) & !((1u64 << flog2) - 1);
        (fpage.base(), wbase + off, flog2)
    } else {
        let off = send_base & ((1u64 << flog2) - 1) & !((1u64 << wlog2) - 1);
        (fpage.base() + off, wbase, wlog2.min(MAX_MAP_LOG2))
    };
    let rights = DbRights(fpage.rights() as u8);
    let mut last = None;
    for p in (0..1u64 << log2).step_by(4096) {
        let (sv, rv) = (src + p, dst + p);
        if rv >= abi::USER_END || is_utcb(kk, rsp, rv) || rv == abi::KIP_VADDR {
            continue;
        }
        if Some(ssp) == kk.sigma0_space {
            sigma0_touch(kk, sv);
        }
        let Kernel { mapdb, spaces, .. } = kk;
        let db = mapdb.as_mut().ok_or(Error::OutOfMemory)?;
        let mut on_update = |sp: SpaceId, vp: u64, r: Option<DbRights>| apply(spaces, sp, vp, r);
        let from = (ssp, sv >> 12);
        let to = (rsp, rv >> 12);
        let res =
            if grant { db.grant(from, to, rights, &mut on_update) } else { db.map(from, to, rights, &mut on_update) };
        let (frame, eff) = match res {
            Ok(x) => x,
            // Partly unmapped regions map what is there.
            Err(MapDbError::NotMapped) | Err(MapDbError::NoRights) => continue,
            Err(MapDbError::Cycle) | Err(MapDbError::Exists) => return Err(Error::InvalidArgument),
            Err(MapDbError::Full) => return Err(Error::OutOfMemory),
        };
        let rspace = spaces[rsp as usize].space.as_mut().expect("receiver space");
        if let Err(e) = rspace.set(rv, frame, to_pt(eff), &mut POOL.lock()) {
            // No page table: undo the database entry so both agree.
            db.unmap(rsp, rv >> 12, DbRights::ALL, true, &mut |sp, vp, r| apply(spaces, sp, vp, r));
            return Err(map_err(e));
        }
        last = Some((rv, eff));
    }
    #[cfg(debug_assertions)]
    if let Some(db) = kk.mapdb.as_ref() {
        db.check().expect("mapping database invariants");
    }
    Ok(last)
}

/// The `UNMAP` call: flush `fpage` of the caller's space.
pub fn unmap(kk: &mut Kernel, cur: usize, fpage: Fpage, include_self: bool) -> Result<u64, Error> {
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
    // UTCB and KIP pages are the kernel's and never in the database, so a
    // flush cannot touch them.
    for v in (fpage.base()..fpage.base() + (1u64 << fpage.size_log2())).step_by(4096) {
        n += db.unmap(sp, v >> 12, revoke, include_self, &mut |s, vp, r| apply(spaces, s, vp, r)) as u64;
    }
    #[cfg(debug_assertions)]
    db.check().expect("mapping database invariants");
    Ok(n)
}

/// Flushes every mapping of space `sp` and everything derived from them.
pub fn remove_space(kk: &mut Kernel, sp: u16) {
    let Kernel { mapdb, spaces, .. } = kk;
    if let Some(db) = mapdb.as_mut() {
        db.remove_space(sp, &mut |s, vp, r| apply(spaces, s, vp, r));
    }
}

/// Why a string copy stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyError {
    Failed(Error),
    /// The sender's page at this address is not readable: its pager must
    /// map it, then the IPC is retried.
    SenderFault(u64),
    /// The receiver's buffer page at this address is not writable.
    ReceiverFault(u64),
}

impl From<Error> for CopyError {
    fn from(e: Error) -> Self {
        CopyError::Failed(e)
    }
}

/// Copies sender `s`'s string `[addr, addr+len)` into receiver `r`'s
/// string buffer (`br[1]` address, `br[2]` size); returns where and how
/// much landed.
pub fn string_item(kk: &mut Kernel, s: usize, r: usize, addr: u64, len: u64) -> Result<(u64, u64), CopyError> {
    let (rbuf, rlen) = (kk.utcb(r).br[1], kk.utcb(r).br[2]);
    if len > item::MAX_STRING || len > rlen {
        return Err(Error::MessageOverflow.into());
    }
    let mut done = 0u64;
    while done < len {
        let (sa, ra) =
            (addr.checked_add(done).ok_or(Error::BadAddress)?, rbuf.checked_add(done).ok_or(Error::BadAddress)?);
        if sa >= abi::USER_END || ra >= abi::USER_END {
            return Err(Error::BadAddress.into());
        }
        let n = (4096 - (sa & 0xfff)).min(4096 - (ra & 0xfff)).min(len - done);
        let sm = kk.space_of(s).translate(sa).filter(|m| m.user).ok_or(CopyError::SenderFault(sa))?;
        let rm = kk.space_of(r).translate(ra).filter(|m| m.user && m.writable).ok_or(CopyError::ReceiverFault(ra))?;
        let (sp, rp) = (paging::phys_to_virt(sm.phys), paging::phys_to_virt(rm.phys));
        let (Some(sp), Some(rp)) = (sp, rp) else { return Err(Error::BadAddress.into()) };
        // SAFETY: both ranges lie inside one mapped user frame each (n stops
        // at both page ends), reached through the direct map.
        unsafe { core::ptr::copy(sp as *const u8, rp as *mut u8, n as usize) };
        done += n;
    }
    Ok((rbuf, len))
}
