//! Page tables: the kernel's own mappings and user address spaces.
//!
//! Layout of every address space:
//! - `[0, USER_END)`: user mappings, built by [`AddressSpace::map`].
//! - `PHYS_MAP + p`: all RAM, supervisor-only, writable, never executable
//!   (2 MiB pages); how the kernel reaches any frame.
//! - `KERNEL_VMA + p`: the kernel image with W^X per section (4 KiB pages):
//!   text read-only and executable, rodata read-only and NX, data and bss
//!   writable and NX. All kernel mappings are global and supervisor-only.
//!
//! The public functions take and return the kernel's address types
//! (`crate::types::PhysAddr`, `VirtAddr`, here `Phys` and `Virt`); the
//! `x86_64` crate's types of the same names are what its page-table
//! mapper wants, inside this file only.
//!
//! Invariant: the kernel-half PML4 entries are created at boot, before the
//! first user space, and every space shares them; later kernel mappings go
//! below those entries and so appear in every space at once.

use crate::pool::{FramePool, PoolError};
use crate::types::{PhysAddr as Phys, VirtAddr as Virt};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

pub const KERNEL_VMA: u64 = 0xFFFF_FFFF_8000_0000;
pub const PHYS_MAP: u64 = 0xFFFF_8000_0000_0000;
/// The boot page tables map only the first GiB at `KERNEL_VMA`.
const BOOT_WINDOW: u64 = 1 << 30;

/// Where physical memory is visible right now: the boot window until the
/// kernel page tables are live, then the direct map.
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(KERNEL_VMA);
static PHYS_LIMIT: AtomicU64 = AtomicU64::new(BOOT_WINDOW);
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __bss_end: u8;
}

/// Kernel virtual address of physical `p`, if it is mapped.
pub fn phys_to_virt(p: Phys) -> Option<Virt> {
    let p = p.as_u64();
    (p < PHYS_LIMIT.load(Ordering::Relaxed)).then(|| Virt::from_kernel(p + PHYS_OFFSET.load(Ordering::Relaxed)))
}

/// Kernel virtual address of a frame of the kernel pool. Needs no check:
/// boot places the pool inside the direct map (`init` stops otherwise),
/// and the pool hands out only its own frames.
pub fn pool_frame_virt(p: Phys) -> Virt {
    Virt::from_kernel(p.as_u64().wrapping_add(PHYS_OFFSET.load(Ordering::Relaxed)))
}

/// Physical address of a kernel-image symbol.
pub fn image_phys(v: Virt) -> Phys {
    Phys::from_kernel(v.as_u64() - KERNEL_VMA)
}

/// Section boundaries of the kernel image (virtual).
pub struct Sections {
    pub text: (u64, u64),
    pub rodata: (u64, u64),
    pub data: (u64, u64),
}

pub fn sections() -> Sections {
    Sections {
        text: (&raw const __text_start as u64, &raw const __text_end as u64),
        rodata: (&raw const __rodata_start as u64, &raw const __rodata_end as u64),
        data: (&raw const __data_start as u64, &raw const __bss_end as u64),
    }
}

/// Hands out zeroed page-table frames from the kernel pool.
pub struct PoolAlloc<'a>(pub &'a mut FramePool);

// SAFETY: the pool returns each frame at most once until it is freed.
unsafe impl FrameAllocator<Size4KiB> for PoolAlloc<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let f = self.0.alloc().ok()?;
        Some(PhysFrame::containing_address(PhysAddr::new(f.as_u64())))
    }
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    OutOfMemory,
    AlreadyMapped,
    BadAddress,
}

impl<S: x86_64::structures::paging::PageSize> From<MapToError<S>> for MapError {
    fn from(e: MapToError<S>) -> Self {
        match e {
            MapToError::FrameAllocationFailed => MapError::OutOfMemory,
            MapToError::PageAlreadyMapped(_) | MapToError::ParentEntryHugePage => MapError::AlreadyMapped,
        }
    }
}

impl From<PoolError> for MapError {
    fn from(_: PoolError) -> Self {
        MapError::OutOfMemory
    }
}

/// # Safety
/// `pml4` must be a page-table frame visible through the current physical
/// offset, and no other live reference to it may exist.
unsafe fn table(pml4: Phys) -> OffsetPageTable<'static> {
    let pml4 = pml4.as_u64();
    let offset = PHYS_OFFSET.load(Ordering::Relaxed);
    // SAFETY: per the caller's contract.
    unsafe { OffsetPageTable::new(&mut *((pml4 + offset) as *mut PageTable), VirtAddr::new(offset)) }
}

fn zeroed_frame(pool: &mut FramePool) -> Result<Phys, MapError> {
    let f = pool.alloc()?;
    let v = phys_to_virt(f).ok_or(MapError::OutOfMemory)?;
    // SAFETY: the frame was just taken from the pool and is mapped at `v`.
    unsafe { core::ptr::write_bytes(v.as_u64() as *mut u8, 0, 4096) };
    Ok(f)
}

/// Builds the kernel page tables (image with W^X, direct map of
/// `[0, ram_end)`) and switches to them. The identity map of the boot
/// tables is gone afterwards.
pub fn init_kernel_space(pool: &mut FramePool, ram_end: u64) -> Result<(), MapError> {
    let pml4 = zeroed_frame(pool)?;
    // SAFETY: fresh frame, reachable through the boot window (pool < 1 GiB).
    let mut pt = unsafe { table(pml4) };
    let mut alloc = PoolAlloc(pool);
    let s = sections();
    let parents = F::PRESENT | F::WRITABLE;
    for (range, flags) in [
        (s.text, F::PRESENT | F::GLOBAL),
        (s.rodata, F::PRESENT | F::GLOBAL | F::NO_EXECUTE),
        (s.data, F::PRESENT | F::WRITABLE | F::GLOBAL | F::NO_EXECUTE),
    ] {
        for v in (range.0..range.1).step_by(4096) {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
            let frame = PhysFrame::containing_address(PhysAddr::new(image_phys(Virt::from_kernel(v)).as_u64()));
            // SAFETY: maps the kernel image onto its own frames.
            unsafe { pt.map_to_with_table_flags(page, frame, flags, parents, &mut alloc)?.ignore() };
        }
    }
    let end = ram_end.next_multiple_of(1 << 21);
    for p in (0..end).step_by(1 << 21) {
        let page = Page::<Size2MiB>::containing_address(VirtAddr::new(PHYS_MAP + p));
        let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(p));
        let flags = F::PRESENT | F::WRITABLE | F::GLOBAL | F::NO_EXECUTE;
        // SAFETY: the direct map aliases RAM for the kernel only; it is never
        // executable, so W^X holds.
        unsafe { pt.map_to_with_table_flags(page, frame, flags, parents, &mut alloc)?.ignore() };
    }
    // SAFETY: the new tables map the running code, stack and data at the
    // same virtual addresses as the boot tables.
    unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(pml4.as_u64())), Cr3Flags::empty()) };
    KERNEL_PML4.store(pml4.as_u64(), Ordering::Relaxed);
    PHYS_OFFSET.store(PHYS_MAP, Ordering::Relaxed);
    PHYS_LIMIT.store(end, Ordering::Relaxed);
    Ok(())
}

/// Maps one page of device registers (uncached) at `PHYS_MAP + phys` in
/// the kernel half, shared by every space; returns its virtual address.
pub fn map_mmio(phys: Phys, pool: &mut FramePool) -> Result<Virt, MapError> {
    let phys = phys.as_u64() & !0xfff;
    let v = PHYS_MAP + phys;
    if kernel_translate(Virt::from_kernel(v)).is_some() {
        return Ok(Virt::from_kernel(v));
    }
    // SAFETY: the kernel PML4 is live; this adds one supervisor-only,
    // non-executable, uncached leaf for a device page that is not RAM.
    let mut pt = unsafe { table(kernel_pml4()) };
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
    let flags = F::PRESENT | F::WRITABLE | F::GLOBAL | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH;
    // SAFETY: see above.
    unsafe {
        pt.map_to_with_table_flags(
            page,
            PhysFrame::containing_address(PhysAddr::new(phys)),
            flags,
            F::PRESENT | F::WRITABLE,
            &mut PoolAlloc(pool),
        )?
        .flush()
    };
    Ok(Virt::from_kernel(v))
}

fn kernel_pml4() -> Phys {
    Phys::from_kernel(KERNEL_PML4.load(Ordering::Relaxed))
}

/// A user page's leaf entry in its space's tables ([`AddressSpace::leaf_entry`]).
#[derive(Clone, Copy, Debug)]
pub struct Leaf(*mut u64);

impl Leaf {
    /// Does the entry map a kernel-owned page (a UTCB, the KIP)?
    pub fn kernel_owned(self) -> bool {
        let both = F::PRESENT.bits() | KERNEL_OWNED.bits();
        // SAFETY: a `Leaf` points at a leaf entry of a live table (its
        // space's tables are freed only with the space).
        unsafe { *self.0 & both == both }
    }
}

/// Result of a translation: physical address and the leaf's flags.
#[derive(Clone, Copy, Debug)]
pub struct Translation {
    pub phys: Phys,
    pub writable: bool,
    pub user: bool,
    pub executable: bool,
    pub global: bool,
    /// A page the kernel put into a user space and keeps (a UTCB, the
    /// KIP): never replaced or passed on by map, grant or flush.
    pub kernel_owned: bool,
}

/// The software-available leaf bit that marks a kernel-owned user page, so
/// that "is this a UTCB or the KIP?" is part of the page-table walk a map
/// makes anyway: O(1), whatever the number of threads.
const KERNEL_OWNED: F = F::BIT_9;

/// Translates `v` through the tables rooted at `pml4` in one hand-written
/// 4-level walk (2 MiB and 1 GiB leaves included, as the kernel's direct
/// map has them): a handful of loads where the `x86_64` crate's generic
/// `Translate` spends about a hundred instructions on the fault and map
/// paths. The result is the leaf entry's, as there.
fn translate_in(pml4: Phys, v: Virt) -> Option<Translation> {
    let (pml4, v) = (pml4.as_u64(), v.as_u64());
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    if VirtAddr::try_new(v).is_err() {
        return None;
    }
    let mut table = pml4;
    for shift in [39u32, 30, 21, 12] {
        let t = phys_to_virt(Phys::from_kernel(table))?.as_u64() as *const u64;
        // SAFETY: `table` is a page-table frame of a live hierarchy, seen
        // through the direct map; the index is below 512; a walk only reads.
        let e = unsafe { *t.add(((v >> shift) & 511) as usize) };
        if e & F::PRESENT.bits() == 0 {
            return None;
        }
        let huge = e & F::HUGE_PAGE.bits() != 0;
        if huge && shift == 39 {
            // A reserved bit in a PML4 entry: no translation.
            return None;
        }
        if shift == 12 || huge {
            let offset = (1u64 << shift) - 1;
            // A huge leaf's frame must be aligned to its size (bit 12 is
            // its PAT bit): otherwise no valid frame, as for the crate.
            if e & ADDR & offset != 0 {
                return None;
            }
            let flags = F::from_bits_truncate(e);
            return Some(Translation {
                phys: Phys::from_kernel((e & ADDR) + (v & offset)),
                writable: flags.contains(F::WRITABLE),
                user: flags.contains(F::USER_ACCESSIBLE),
                executable: !flags.contains(F::NO_EXECUTE),
                global: flags.contains(F::GLOBAL),
                kernel_owned: flags.contains(KERNEL_OWNED),
            });
        }
        table = e & ADDR;
    }
    None
}

/// Translates a kernel virtual address through the kernel page tables.
pub fn kernel_translate(v: Virt) -> Option<Translation> {
    translate_in(kernel_pml4(), v)
}

/// The `x86_64` crate's generic walk of the kernel tables, as
/// [`kernel_translate`] answers (physical address and leaf flags): the test
/// kernel checks the hand-written walk against it.
#[cfg(feature = "ktest")]
pub fn kernel_translate_generic(v: u64) -> Option<(u64, F)> {
    use x86_64::structures::paging::mapper::{Translate, TranslateResult};
    let v = VirtAddr::try_new(v).ok()?;
    // SAFETY: the kernel tables are live; translation only reads them.
    let pt = unsafe { table(kernel_pml4()) };
    match pt.translate(v) {
        TranslateResult::Mapped { frame, offset, flags } => Some((frame.start_address().as_u64() + offset, flags)),
        _ => None,
    }
}

/// Loads the kernel's own page tables (no user half), e.g. before the
/// loaded space is torn down.
pub fn activate_kernel() {
    let pml4 = KERNEL_PML4.load(Ordering::Relaxed);
    // SAFETY: the kernel tables map all kernel code and data.
    unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(pml4)), Cr3Flags::empty()) };
}

/// The physical frame of the live PML4.
pub fn current_root() -> Phys {
    Phys::from_kernel(Cr3::read().0.start_address().as_u64())
}

/// Access rights of a user mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    pub write: bool,
    pub exec: bool,
}

static PCID_ENABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turns on process-context ids where the CPU has them, so that switching
/// address spaces keeps the other spaces' TLB entries (the modern form of
/// L4's small address spaces). Call with PCID 0 loaded (boot).
pub fn enable_pcid() -> bool {
    let has = raw_cpuid::CpuId::new().get_feature_info().is_some_and(|f| f.has_pcid());
    if has {
        // SAFETY: CR3 holds PCID 0 (boot tables), as enabling requires.
        unsafe { x86_64::registers::control::Cr4::update(|f| *f |= x86_64::registers::control::Cr4Flags::PCID) };
        PCID_ENABLED.store(true, Ordering::Relaxed);
    }
    has
}

/// Leaf flags of a user mapping with `rights` (read is implied).
fn user_flags(rights: Rights) -> F {
    let mut flags = F::PRESENT | F::USER_ACCESSIBLE;
    if rights.write {
        flags |= F::WRITABLE;
    }
    if !rights.exec {
        flags |= F::NO_EXECUTE;
    }
    flags
}

/// A user address space: a PML4 whose upper half is the kernel's.
pub struct AddressSpace {
    pml4: Phys,
    /// Process-context id (0: none / PCID off).
    pcid: u16,
    /// Entries of this space may be stale in the TLB under its PCID (a
    /// mapping was removed or reduced while it was not loaded): the next
    /// switch to it flushes them.
    tlb_stale: bool,
}

impl AddressSpace {
    /// A new space; `pcid` is used when PCIDs are on (1..4096).
    pub fn new(pool: &mut FramePool) -> Result<AddressSpace, MapError> {
        Self::with_pcid(pool, 0)
    }

    pub fn with_pcid(pool: &mut FramePool, pcid: u16) -> Result<AddressSpace, MapError> {
        let pml4 = zeroed_frame(pool)?;
        let kernel = kernel_pml4();
        let (src, dst) = (phys_to_virt(kernel).unwrap().as_u64(), phys_to_virt(pml4).unwrap().as_u64());
        // SAFETY: both are page-table frames in the direct map; we copy the
        // 256 kernel-half entries (2 KiB) into the fresh table.
        unsafe { core::ptr::copy_nonoverlapping((src + 2048) as *const u8, (dst + 2048) as *mut u8, 2048) };
        let pcid = if PCID_ENABLED.load(Ordering::Relaxed) { pcid & 0xfff } else { 0 };
        Ok(AddressSpace { pml4, pcid, tlb_stale: true })
    }

    /// Frees the user-half page-table frames (not the frames they map,
    /// which belong to whoever mapped them). The space must not be loaded.
    pub fn destroy(self, pool: &mut FramePool) {
        fn free_level(pool: &mut FramePool, table: Phys, level: u8, entries: core::ops::Range<usize>) {
            let t = phys_to_virt(table).expect("table in direct map").as_u64() as *const u64;
            for i in entries {
                // SAFETY: `t` is a page-table frame of this space.
                let e = unsafe { *t.add(i) };
                if e & 1 == 0 || (level < 4 && e & 0x80 != 0) {
                    continue;
                }
                let next = Phys::from_kernel(e & 0x000f_ffff_ffff_f000);
                if level > 1 {
                    free_level(pool, next, level - 1, 0..512);
                }
            }
            let _ = pool.free(table);
        }
        // Levels 4 (PML4, user half only) down to 2 hold tables; level-1
        // entries are the mapped frames themselves.
        let pml4 = self.pml4;
        let t = phys_to_virt(pml4).expect("pml4 in direct map").as_u64() as *const u64;
        for i in 0..256 {
            // SAFETY: as above.
            let e = unsafe { *t.add(i) };
            if e & 1 != 0 {
                free_level(pool, Phys::from_kernel(e & 0x000f_ffff_ffff_f000), 3, 0..512);
            }
        }
        let _ = pool.free(pml4);
    }

    /// Changes the rights of the user mapping at `v`.
    pub fn protect(&mut self, v: Virt, rights: Rights) -> bool {
        let v = v.as_u64();
        if v >= abi::USER_END {
            return false;
        }
        let flags = user_flags(rights);
        // SAFETY: our own PML4; only a user-half leaf entry changes.
        let mut pt = unsafe { table(self.pml4) };
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
        // SAFETY: same frame, fewer or equal rights.
        match unsafe { pt.update_flags(page, flags) } {
            Ok(flush) => {
                self.after_change(flush);
                true
            }
            Err(_) => false,
        }
    }

    fn after_change(&mut self, flush: x86_64::structures::paging::mapper::MapperFlush<Size4KiB>) {
        if current_root() == self.pml4 {
            flush.flush();
        } else {
            flush.ignore();
            self.tlb_stale = true;
        }
    }

    /// Maps the user page at `v` onto `frame`.
    pub fn map(&mut self, v: Virt, frame: Phys, rights: Rights, pool: &mut FramePool) -> Result<(), MapError> {
        self.map_flags(v, frame, user_flags(rights), pool)
    }

    /// Maps a kernel-owned page (a UTCB, the KIP) at `v` onto `frame`:
    /// marked so that map, grant and flush leave it alone.
    pub fn map_kernel_owned(
        &mut self,
        v: Virt,
        frame: Phys,
        rights: Rights,
        pool: &mut FramePool,
    ) -> Result<(), MapError> {
        self.map_flags(v, frame, user_flags(rights) | KERNEL_OWNED, pool)
    }

    fn map_flags(&mut self, v: Virt, frame: Phys, flags: F, pool: &mut FramePool) -> Result<(), MapError> {
        let (v, frame) = (v.as_u64(), frame.as_u64());
        if v >= abi::USER_END || !v.is_multiple_of(4096) || !frame.is_multiple_of(4096) {
            return Err(MapError::BadAddress);
        }
        // SAFETY: our own PML4; the mapper only edits the user half here.
        let mut pt = unsafe { table(self.pml4) };
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
        let parents = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE;
        // SAFETY: the frame is given to this space by the caller, which owns
        // it; a user mapping cannot alias kernel memory because the kernel
        // never passes pool or image frames here.
        unsafe {
            pt.map_to_with_table_flags(
                page,
                PhysFrame::containing_address(PhysAddr::new(frame)),
                flags,
                parents,
                &mut PoolAlloc(pool),
            )?
            .flush()
        };
        Ok(())
    }

    /// The leaf entry of user page `v`, in one walk of this space's tables:
    /// missing tables are made from `pool` if given, else `None` (as for a
    /// huge page on the way, which user spaces never have).
    ///
    /// Its user-half tables are all frames of the kernel pool (made by
    /// `zeroed_frame` or the mapper's `PoolAlloc`), so each level is one
    /// add to the direct map, no range check (see `pool_frame_virt`).
    #[inline]
    fn leaf(&mut self, v: u64, mut pool: Option<&mut FramePool>) -> Result<Option<*mut u64>, MapError> {
        const ADDR: u64 = 0x000f_ffff_ffff_f000;
        let parents = (F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE).bits();
        let entry = |table: Phys, shift: u32| {
            let t = pool_frame_virt(table).as_u64() as *mut u64;
            // SAFETY: `table` is a page-table frame of this space (a pool
            // frame, in the direct map); the index is below 512.
            unsafe { t.add(((v >> shift) & 511) as usize) }
        };
        let mut table = self.pml4;
        for shift in [39, 30, 21] {
            let e = entry(table, shift);
            // SAFETY: `e` points into a live table of this space (above).
            let mut val = unsafe { *e };
            if val & F::PRESENT.bits() == 0 {
                let Some(pool) = pool.as_deref_mut() else { return Ok(None) };
                val = zeroed_frame(pool)?.as_u64() | parents;
                // SAFETY: as above; a fresh, zeroed table is linked in.
                unsafe { *e = val };
            } else if val & F::HUGE_PAGE.bits() != 0 {
                return Ok(None);
            }
            table = Phys::from_kernel(val & ADDR);
        }
        Ok(Some(entry(table, 12)))
    }

    /// A present entry of `v` was changed: flush it from the TLB if this
    /// space is loaded, else mark the space for a flush at its next switch.
    fn changed(&mut self, v: u64) {
        if current_root() == self.pml4 {
            x86_64::instructions::tlb::flush(VirtAddr::new(v));
        } else {
            self.tlb_stale = true;
        }
    }

    /// Maps the user page at `v` onto `frame` in one walk, replacing any
    /// mapping it had (whose TLB entry is then flushed, or the space marked
    /// for a flush at its next switch); missing tables are made on the way.
    /// (The map item's path walks once for both its "kernel-owned?" check
    /// and the write: [`Self::leaf_entry`], then [`Self::set_in`].)
    pub fn set(&mut self, v: Virt, frame: Phys, rights: Rights, pool: &mut FramePool) -> Result<(), MapError> {
        // SAFETY: no leaf given.
        unsafe { self.set_in(None, v, frame, rights, pool) }
    }

    /// The leaf entry of user page `v` if its tables exist (one walk, no
    /// table made): the map path asks it "a UTCB or the KIP?" and then
    /// writes the new mapping through it ([`Self::set_in`]), one walk in all.
    pub fn leaf_entry(&mut self, v: Virt) -> Option<Leaf> {
        let v = v.as_u64();
        if v >= abi::USER_END {
            return None;
        }
        self.leaf(v, None).ok().flatten().map(Leaf)
    }

    /// [`Self::set`] through `leaf` when there is one (no second walk),
    /// else by a walk that makes the missing tables.
    ///
    /// # Safety
    /// `leaf` is `None` or came from `self.leaf_entry(v)`, and no page table of
    /// this space was freed since (only dropping the space frees them).
    #[inline]
    pub unsafe fn set_in(
        &mut self,
        leaf: Option<Leaf>,
        v: Virt,
        frame: Phys,
        rights: Rights,
        pool: &mut FramePool,
    ) -> Result<(), MapError> {
        let (v, frame) = (v.as_u64(), frame.as_u64());
        if v >= abi::USER_END || !v.is_multiple_of(4096) || !frame.is_multiple_of(4096) {
            return Err(MapError::BadAddress);
        }
        let e = match leaf {
            Some(Leaf(e)) => e,
            None => self.leaf(v, Some(pool))?.ok_or(MapError::AlreadyMapped)?,
        };
        // SAFETY: the leaf entry of `v` in this space's live tables (per
        // the caller's contract for a leaf, else just walked).
        let old = unsafe { core::ptr::replace(e, frame | user_flags(rights).bits()) };
        if old & F::PRESENT.bits() != 0 {
            self.changed(v);
        }
        Ok(())
    }

    /// Allocates, zeroes and maps a fresh frame at `v`; returns the frame.
    pub fn map_fresh(&mut self, v: Virt, rights: Rights, pool: &mut FramePool) -> Result<Phys, MapError> {
        self.map_fresh_flags(v, user_flags(rights), pool)
    }

    /// [`Self::map_fresh`] of a kernel-owned page (a UTCB).
    pub fn map_fresh_kernel_owned(&mut self, v: Virt, rights: Rights, pool: &mut FramePool) -> Result<Phys, MapError> {
        self.map_fresh_flags(v, user_flags(rights) | KERNEL_OWNED, pool)
    }

    fn map_fresh_flags(&mut self, v: Virt, flags: F, pool: &mut FramePool) -> Result<Phys, MapError> {
        let f = zeroed_frame(pool)?;
        if let Err(e) = self.map_flags(v, f, flags, pool) {
            // No page table for it (the pool ran out): the frame goes back.
            let _ = pool.free(f);
            return Err(e);
        }
        Ok(f)
    }

    /// Removes the user mapping at `v`; returns the frame it mapped. The
    /// TLB entry is flushed (this CPU; the page-table frames stay).
    pub fn unmap(&mut self, v: Virt) -> Option<Phys> {
        let v = v.as_u64();
        if v >= abi::USER_END {
            return None;
        }
        let e = self.leaf(v & !0xfff, None).ok()??;
        // SAFETY: the leaf entry of `v` in this space's tables.
        let old = unsafe { core::ptr::replace(e, 0) };
        if old & F::PRESENT.bits() == 0 {
            return None;
        }
        self.changed(v & !0xfff);
        Some(Phys::from_kernel(old & 0x000f_ffff_ffff_f000))
    }

    pub fn translate(&self, v: Virt) -> Option<Translation> {
        if v.as_u64() >= abi::USER_END {
            return None;
        }
        translate_in(self.pml4, v)
    }

    /// Loads this space. With PCIDs its TLB entries survive switches, unless
    /// something was revoked while it was away.
    pub fn activate(&mut self) {
        let no_flush = self.pcid != 0 && !self.tlb_stale;
        self.tlb_stale = false;
        let v = self.pml4.as_u64() | self.pcid as u64 | if no_flush { 1 << 63 } else { 0 };
        // SAFETY: the kernel half is shared, so the running kernel stays
        // mapped across the switch; the PCID bits are used only when
        // CR4.PCIDE is on (pcid is 0 otherwise).
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) v, options(nostack, preserves_flags)) };
    }

    pub fn root(&self) -> Phys {
        self.pml4
    }
}
