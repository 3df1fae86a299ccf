//! In-guest tests, compiled only into the test kernel (`--features ktest`).
//!
//! The host runner boots the test kernel with `test=NAME` on the command
//! line. `suite` runs every test that leaves the kernel intact and prints one
//! line each; the fault tests end the kernel on purpose and are checked by
//! the fault hook; `cache_model` runs a colored access pattern for the
//! cache-model plugin. Each boot ends with `N passed, N failed` and leaves
//! QEMU through `isa-debug-exit` with [`EXIT_PASS`] or [`EXIT_FAIL`];
//! `fuzz` alone lets the boot go on into its system image. What
//! user level sees is tested from user level, by the test images
//! (`kernel/tests/images`) on the production kernel.

use crate::arch::cpu;
use crate::arch::paging::{self, AddressSpace, Rights};
use crate::crash::{self, Report};
use crate::init;
use crate::kprintln;
use crate::state::{self, MEMMAP, POOL, POOL_RANGE};
use crate::trap;
use crate::types::{PhysAddr, VirtAddr};
use abi::kip::MemKind;
use core::sync::atomic::{AtomicU64, Ordering};

/// A virtual address the tests chose (user or kernel, as the test needs).
fn va(a: u64) -> VirtAddr {
    VirtAddr::from_kernel(a)
}

/// QEMU exits with status `(code << 1) | 1`: 33 for pass, 35 for fail.
pub const EXIT_PASS: u32 = abi::debug_exit::PASS as u32;
pub const EXIT_FAIL: u32 = abi::debug_exit::FAIL as u32;

type TestFn = fn() -> Result<(), &'static str>;

const SUITE: &[(&str, TestFn)] = &[
    ("memory_map_sane", memory_map_sane),
    ("kernel_pool_outside_usable_ram", kernel_pool_outside_usable_ram),
    ("kernel_mappings_wx_and_supervisor", kernel_mappings_wx_and_supervisor),
    ("boot_identity_map_removed", boot_identity_map_removed),
    ("translate_walk_matches_generic_walk", translate_walk_matches_generic_walk),
    ("kip_describes_memory_and_modules", kip_describes_memory_and_modules),
    ("copy_from_user_rejects_bad_addresses", copy_from_user_rejects_bad_addresses),
    ("pool_exhaustion_is_an_error", pool_exhaustion_is_an_error),
    ("smep_kernel_cannot_execute_a_user_page", smep_kernel_cannot_execute_a_user_page),
    ("smap_kernel_cannot_read_a_user_page", smap_kernel_cannot_read_a_user_page),
];

fn check(cond: bool, why: &'static str) -> Result<(), &'static str> {
    if cond {
        Ok(())
    } else {
        Err(why)
    }
}

fn finish(passed: u32, failed: u32) -> ! {
    kprintln!("{passed} passed, {failed} failed");
    cpu::qemu_exit(if failed == 0 && passed > 0 { EXIT_PASS } else { EXIT_FAIL })
}

fn report(name: &str, r: Result<(), &str>) -> bool {
    match r {
        Ok(()) => kprintln!("test {name} ... ok"),
        Err(why) => kprintln!("test {name} ... FAILED: {why}"),
    }
    r.is_ok()
}

/// Runs the test selected on the command line; every test ends the boot
/// through `isa-debug-exit`, so the kernel never gets past this, except
/// `system`, which boots on into the system image.
pub fn run(which: &str) {
    match which {
        "suite" => {
            let mut ok = 0;
            for (name, t) in SUITE {
                ok += report(name, t()) as u32;
            }
            finish(ok, SUITE.len() as u32 - ok)
        }
        "page_fault" => page_fault(),
        "cache_model" => cache_model(),
        "cache_model_speed" => cache_model_speed(),
        "general_protection" => general_protection(),
        "nmi" => nmi_in_user_mode(),
        // Boot on into sigma0, the root task and the image's tasks: a test
        // image that needs the test kernel's debug calls (the pagers' colour
        // checks, the fuzzer's `KTEST` checker). The root task ends the run
        // through the debug-exit port.
        "system" => {}
        other => {
            kprintln!("test {other} ... FAILED: no such in-guest test");
            finish(0, 1)
        }
    }
}

fn memory_map_sane() -> Result<(), &'static str> {
    let map = MEMMAP.get().ok_or("no memory map")?;
    map.check()?;
    check(map.total(MemKind::Usable) >= 32 << 20, "less than 32 MiB usable RAM found")?;
    let (start, end) = init::image_range();
    for a in (start..end).step_by(4096) {
        check(map.kind_of(a) == Some(MemKind::Kernel), "kernel image page not marked Kernel")?;
    }
    for m in &state::BOOTINFO.get().ok_or("no boot info")?.mods {
        for a in (m.start & !0xfff..m.end).step_by(4096) {
            check(map.kind_of(a) == Some(MemKind::Module), "module page not marked Module")?;
        }
    }
    check(map.kind_of(0) == Some(MemKind::Reserved), "page 0 not reserved")
}

fn kernel_pool_outside_usable_ram() -> Result<(), &'static str> {
    let map = MEMMAP.get().ok_or("no memory map")?;
    let pool = POOL_RANGE.get().ok_or("no pool")?;
    for a in (pool.base..pool.end).step_by(4096) {
        check(map.kind_of(a) == Some(MemKind::Kernel), "pool page not marked Kernel")?;
    }
    let f = POOL.lock().alloc().map_err(|_| "pool empty")?;
    let inside = pool.base <= f.as_u64() && f.as_u64() < pool.end;
    POOL.lock().free(f).map_err(|_| "free failed")?;
    check(inside, "pool frame outside the pool range")
}

fn kernel_mappings_wx_and_supervisor() -> Result<(), &'static str> {
    let s = paging::sections();
    let t = |v: u64| paging::kernel_translate(va(v)).ok_or("kernel page not mapped");
    for v in (s.text.0..s.text.1).step_by(4096) {
        let m = t(v)?;
        check(m.executable && !m.writable, "text page writable or not executable")?;
        check(!m.user && m.global, "text page user-accessible or not global")?;
        check(m.phys == paging::image_phys(va(v)), "text page maps the wrong frame")?;
    }
    for v in (s.rodata.0..s.rodata.1).step_by(4096) {
        let m = t(v)?;
        check(!m.executable && !m.writable && !m.user, "rodata page writable, executable or user")?;
    }
    for v in (s.data.0..s.data.1).step_by(4096) {
        let m = t(v)?;
        check(!m.executable && m.writable && !m.user, "data page executable, read-only or user")?;
    }
    let d = t(paging::PHYS_MAP + 0x20_0000)?;
    check(!d.executable && !d.user, "direct map executable or user")
}

fn boot_identity_map_removed() -> Result<(), &'static str> {
    check(paging::kernel_translate(va(0x10_0000)).is_none(), "identity map of the boot code still present")?;
    check(paging::kernel_translate(va(0)).is_none(), "page 0 mapped")
}

/// The hand-written walk behind every `translate` (the fault and map
/// paths) gives what the `x86_64` crate's generic one gives: on 4 KiB
/// pages (the image), 2 MiB pages (the direct map, at offsets inside
/// them), unmapped and non-canonical addresses.
fn translate_walk_matches_generic_walk() -> Result<(), &'static str> {
    let s = paging::sections();
    let mut probes = [0u64; 24];
    let mut n = 0;
    let mut add = |v: u64| {
        probes[n] = v;
        n += 1;
    };
    for v in [s.text.0, s.text.1 - 1, s.rodata.0 + 0x123, s.data.0, s.data.1 - 8] {
        add(v);
    }
    for off in [0, 0x1000, 0x1f_fff8, 0x20_0000, 0x23_4567, 0x3ff_0000] {
        add(paging::PHYS_MAP + off);
    }
    for v in [0, 0x10_0000, 0x7fff_ffff_f000, 0x8000_0000_0000, 0xffff_7fff_ffff_ffff, abi::USER_END - 1] {
        add(v);
    }
    add(paging::PHYS_MAP - 0x1000);
    add(paging::KERNEL_VMA - 0x1000);
    let mut mapped = 0;
    for &v in &probes[..n] {
        let hand = paging::kernel_translate(crate::types::VirtAddr::from_kernel(v));
        let generic = paging::kernel_translate_generic(v);
        check(hand.is_some() == generic.is_some(), "the walks disagree on whether an address is mapped")?;
        let (Some(h), Some((phys, flags))) = (hand, generic) else { continue };
        mapped += 1;
        use x86_64::structures::paging::PageTableFlags as F;
        check(h.phys.as_u64() == phys, "the walks give different physical addresses")?;
        check(
            h.writable == flags.contains(F::WRITABLE)
                && h.user == flags.contains(F::USER_ACCESSIBLE)
                && h.executable != flags.contains(F::NO_EXECUTE)
                && h.global == flags.contains(F::GLOBAL),
            "the walks give different flags",
        )?;
    }
    check(mapped >= 8, "too few probes mapped to compare")
}

fn kip_describes_memory_and_modules() -> Result<(), &'static str> {
    let kip = state::kip();
    check(kip.magic == abi::kip::KIP_MAGIC, "bad KIP magic")?;
    let map = MEMMAP.get().ok_or("no memory map")?;
    check(kip.mem_regions().len() == map.regions().len(), "KIP memory map length differs")?;
    let usable: u64 = kip.mem_regions().iter().filter(|r| r.kind == MemKind::Usable as u32).map(|r| r.size).sum();
    check(usable == map.total(MemKind::Usable), "KIP usable total differs")?;
    let mods = &state::BOOTINFO.get().ok_or("no boot info")?.mods;
    check(kip.modules().len() == mods.len(), "KIP module count differs")
}

/// `umem::copy_in` of `buf.len()` bytes at `uaddr`: the one user-copy path.
fn copy_from_user(space: &AddressSpace, uaddr: u64, buf: &mut [u8]) -> Result<(), abi::Error> {
    let src = crate::umem::USlice::new(uaddr, buf.len() as u64)?;
    Ok(crate::umem::copy_in(space, src, buf)?)
}

fn copy_from_user_rejects_bad_addresses() -> Result<(), &'static str> {
    let mut pool = POOL.lock();
    let mut space = AddressSpace::new(&mut pool).map_err(|_| "no space")?;
    let f = space.map_fresh(va(0x40_0000), Rights { write: true, exec: false }, &mut pool).map_err(|_| "map")?;
    drop(pool);
    // SAFETY: `f` is a fresh frame owned by this test, in the direct map.
    unsafe { *paging::phys_to_virt(f).unwrap().as_mut_ptr::<u64>() = 0x1122_3344_5566_7788 };
    let mut b = [0u8; 8];
    copy_from_user(&space, 0x40_0000, &mut b).map_err(|_| "mapped page rejected")?;
    check(u64::from_le_bytes(b) == 0x1122_3344_5566_7788, "copy returned wrong bytes")?;
    let bad = abi::Error::BadAddress;
    check(copy_from_user(&space, 0x40_0ffc, &mut b) == Err(bad), "copy across into unmapped page accepted")?;
    check(copy_from_user(&space, 0x50_0000, &mut b) == Err(bad), "unmapped page accepted")?;
    check(copy_from_user(&space, paging::KERNEL_VMA, &mut b) == Err(bad), "kernel address accepted")?;
    check(copy_from_user(&space, u64::MAX - 3, &mut b) == Err(bad), "wrapping range accepted")?;
    space.unmap(va(0x40_0000));
    space.destroy(&mut POOL.lock());
    POOL.lock().free(f).map_err(|_| "frame not returned")
}

fn pool_exhaustion_is_an_error() -> Result<(), &'static str> {
    let mut pool = POOL.lock();
    let before = pool.free_frames();
    // Take every frame, chaining them through their first word (they are
    // ours while taken), until the pool says it is exhausted.
    let mut head = None;
    let mut n = 0usize;
    let err = loop {
        match pool.alloc() {
            Ok(f) => {
                // SAFETY: `f` was just allocated to us and is in the direct map.
                unsafe { *paging::phys_to_virt(f).unwrap().as_mut_ptr::<Option<PhysAddr>>() = head };
                head = Some(f);
                n += 1;
            }
            Err(e) => break e,
        }
    };
    while let Some(h) = head {
        // SAFETY: every frame in the chain is still allocated to us.
        let next = unsafe { *paging::phys_to_virt(h).unwrap().as_mut_ptr::<Option<PhysAddr>>() };
        pool.free(h).map_err(|_| "free of an allocated frame failed")?;
        head = next;
    }
    check(err == crate::pool::PoolError::Exhausted, "wrong error on exhaustion")?;
    check(n == before, "pool ran out before handing out every free frame")?;
    check(pool.free_frames() == before, "frames lost after freeing")
}

/// Where a ring-0 test expects its kernel fault to resume (0: none
/// expected), and the report of the fault that came.
static RESUME_AT: AtomicU64 = AtomicU64::new(0);
static CAUGHT: spin::Mutex<Option<Report>> = spin::Mutex::new(None);

/// The kernel-fault path asks: is this a fault a test expects? If so it is
/// recorded and the fault resumes where the test said.
pub fn expected_fault(f: &crate::arch::trap::TrapFrame, cr2: u64) -> Option<u64> {
    let resume = RESUME_AT.swap(0, Ordering::Relaxed);
    if resume == 0 {
        return None;
    }
    *CAUGHT.lock() = Some(Report { vector: f.vector, error: f.error, rip: f.rip, cr2, user: false });
    Some(resume)
}

/// Runs `probe`, which jumps to or touches `target` (with `RESUME_AT` set
/// to where it resumes); returns the kernel fault it raised, if any.
fn expect_kernel_fault(probe: impl FnOnce()) -> Option<Report> {
    *CAUGHT.lock() = None;
    probe();
    RESUME_AT.store(0, Ordering::Relaxed);
    CAUGHT.lock().take()
}

/// A user address space with one page at `USER_CODE`, filled by `fill`,
/// loaded while `f` runs (the kernel's own tables again after).
fn with_user_page<T>(
    rights: Rights,
    fill: impl FnOnce(&mut [u8; 4096]),
    f: impl FnOnce(&AddressSpace) -> T,
) -> Result<T, &'static str> {
    let mut pool = POOL.lock();
    let mut space = AddressSpace::new(&mut pool).map_err(|_| "no space")?;
    let frame = space.map_fresh(va(USER_CODE), rights, &mut pool).map_err(|_| "map")?;
    drop(pool);
    let v = paging::phys_to_virt(frame).ok_or("frame outside the direct map")?;
    // SAFETY: `frame` is a fresh frame of this test, reached through the
    // direct map; nothing else references it.
    fill(unsafe { &mut *v.as_mut_ptr::<[u8; 4096]>() });
    space.activate();
    let r = f(&space);
    paging::activate_kernel();
    space.unmap(va(USER_CODE));
    space.destroy(&mut POOL.lock());
    POOL.lock().free(frame).map_err(|_| "frame not returned")?;
    Ok(r)
}

fn smep_kernel_cannot_execute_a_user_page() -> Result<(), &'static str> {
    check(cpu::protection().smep, "SMEP is off (the test QEMU's -cpu max offers it)")?;
    let exec = Rights { write: false, exec: true };
    // The page holds `ud2`: should it ever run, that is a #UD, not a fault
    // on the fetch, and the test fails instead of running on.
    let caught = with_user_page(
        exec,
        |p| p[..2].copy_from_slice(&[0x0f, 0x0b]),
        |_| {
            expect_kernel_fault(|| {
                // SAFETY: jumps to the user page; SMEP turns the fetch into
                // a #PF, which `expected_fault` resumes at label 2.
                unsafe {
                    core::arch::asm!(
                        "lea {t}, [rip + 2f]",
                        "mov [{slot}], {t}",
                        "jmp {target}",
                        "2:",
                        t = out(reg) _,
                        slot = in(reg) RESUME_AT.as_ptr(),
                        target = in(reg) USER_CODE,
                    )
                }
            })
        },
    )?;
    let r = caught.ok_or("the kernel ran a user page without a fault")?;
    check(r.vector == crash::PAGE_FAULT, "not a page fault (did the user page's ud2 run?)")?;
    // Present, instruction fetch, supervisor mode.
    check(r.error == 0x11 && r.cr2 == USER_CODE && r.rip == USER_CODE, "wrong error code, address or rip")
}

fn smap_kernel_cannot_read_a_user_page() -> Result<(), &'static str> {
    check(cpu::protection().smap, "SMAP is off (the test QEMU's -cpu max offers it)")?;
    const VALUE: u64 = 0x5a5a_1234_8765_a5a5;
    let data = Rights { write: true, exec: false };
    let (caught, with_ac, copied) = with_user_page(
        data,
        |p| p[..8].copy_from_slice(&VALUE.to_le_bytes()),
        |space| {
            let caught = expect_kernel_fault(|| {
                // SAFETY: reads the user page through its user address;
                // SMAP turns that into a #PF, resumed at label 2.
                unsafe {
                    core::arch::asm!(
                        "lea {t}, [rip + 2f]",
                        "mov [{slot}], {t}",
                        "mov {v}, qword ptr [{a}]",
                        "2:",
                        t = out(reg) _,
                        v = out(reg) _,
                        slot = in(reg) RESUME_AT.as_ptr(),
                        a = in(reg) USER_CODE,
                    )
                }
            });
            // The same read with RFLAGS.AC set (what `stac` is for) passes:
            // the fault above was SMAP's.
            let with_ac: u64;
            // SAFETY: the page is mapped and readable; AC is cleared again.
            unsafe {
                core::arch::asm!("stac", "mov {v}, qword ptr [{a}]", "clac", v = out(reg) with_ac, a = in(reg) USER_CODE)
            };
            // The sanctioned path reaches user memory with SMAP on.
            let mut b = [0u8; 8];
            let copied = copy_from_user(space, USER_CODE, &mut b).ok().map(|_| u64::from_le_bytes(b));
            (caught, with_ac, copied)
        },
    )?;
    let r = caught.ok_or("the kernel read a user page without a fault")?;
    // Present, read, supervisor mode.
    check(
        r.vector == crash::PAGE_FAULT && r.error == 0x1 && r.cr2 == USER_CODE,
        "wrong vector, error code or address",
    )?;
    check(with_ac == VALUE, "the read with AC set did not see the page")?;
    check(copied == Some(VALUE), "copy_from_user failed with SMAP on")
}

static EXPECTED_RIP: AtomicU64 = AtomicU64::new(0);
const UNMAPPED_KERNEL_ADDR: u64 = 0xFFFF_FFFF_0000_0000;

fn page_fault() -> ! {
    crash::HOOK.call_once(|| {
        |r: &Report| {
            let want = EXPECTED_RIP.load(Ordering::Relaxed);
            let ok = r.vector == crash::PAGE_FAULT
                && r.cr2 == UNMAPPED_KERNEL_ADDR
                && r.error == 0x2
                && r.rip == want
                && !r.user;
            expect_fault("page_fault_reported", ok)
        }
    });
    // SAFETY: deliberately writes to an unmapped kernel address; the fault
    // hook ends the run.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov [{slot}], {t}",
            "2: mov qword ptr [{a}], 1",
            t = out(reg) _,
            slot = in(reg) EXPECTED_RIP.as_ptr(),
            a = in(reg) UNMAPPED_KERNEL_ADDR,
        )
    };
    kprintln!("test page_fault_reported ... FAILED: no fault");
    finish(0, 1)
}

fn general_protection() -> ! {
    crash::HOOK.call_once(|| {
        |r: &Report| {
            let want = EXPECTED_RIP.load(Ordering::Relaxed);
            let ok = r.vector == crash::GENERAL_PROTECTION && r.error == 0 && r.rip == want && !r.user;
            expect_fault("general_protection_reported", ok)
        }
    });
    // SAFETY: deliberately reads a non-canonical address (#GP); the fault
    // hook ends the run.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov [{slot}], {t}",
            "2: mov {t}, qword ptr [{a}]",
            t = out(reg) _,
            slot = in(reg) EXPECTED_RIP.as_ptr(),
            a = in(reg) 0x8000_0000_0000_0000u64,
        )
    };
    kprintln!("test general_protection_reported ... FAILED: no fault");
    finish(0, 1)
}

// The ring-3 part of the NMI test: loads known values into the
// callee-saved registers, spins until the NMI log's count (its page mapped
// read-only at USER_DATA) is non-zero, then checks the registers: `hlt`
// (a #GP in ring 3, the pass the hook sees) if all are intact, `ud2` if
// one changed or no NMI came within the spin limit.
core::arch::global_asm!(
    ".pushsection .text.nmi_user, \"ax\"",
    ".global nmi_user_start",
    ".global nmi_user_hlt",
    ".global nmi_user_end",
    "nmi_user_start:",
    "movabs rbx, 0x1111111111111111",
    "movabs rbp, 0x2222222222222222",
    "movabs r12, 0x3333333333333333",
    "movabs r13, 0x4444444444444444",
    "movabs r14, 0x5555555555555555",
    "movabs r15, 0x6666666666666666",
    "mov rcx, {limit}",
    "2:",
    "cmp qword ptr [{data}], 0",
    "jne 3f",
    "dec rcx",
    "jnz 2b",
    "ud2",
    "3:",
    "movabs rax, 0x1111111111111111",
    "cmp rbx, rax",
    "jne 4f",
    "movabs rax, 0x2222222222222222",
    "cmp rbp, rax",
    "jne 4f",
    "movabs rax, 0x3333333333333333",
    "cmp r12, rax",
    "jne 4f",
    "movabs rax, 0x4444444444444444",
    "cmp r13, rax",
    "jne 4f",
    "movabs rax, 0x5555555555555555",
    "cmp r14, rax",
    "jne 4f",
    "movabs rax, 0x6666666666666666",
    "cmp r15, rax",
    "jne 4f",
    "nmi_user_hlt:",
    "hlt",
    "4:",
    "ud2",
    "nmi_user_end:",
    ".popsection",
    data = const USER_DATA,
    limit = const 1u64 << 28,
);

extern "C" {
    static nmi_user_start: u8;
    static nmi_user_hlt: u8;
    static nmi_user_end: u8;
}

/// An NMI that hits while a user thread runs is handled on its IST stack
/// and the thread runs on with its registers intact: a ring-3 thread spins
/// on the NMI log while the APIC timer, turned into an NMI source, fires.
fn nmi_in_user_mode() -> ! {
    match nmi_setup() {
        Ok(never) => match never {},
        Err(why) => {
            kprintln!("test nmi_in_user_mode_on_its_ist_stack ... FAILED: {why}");
            finish(0, 1)
        }
    }
}

fn nmi_setup() -> Result<core::convert::Infallible, &'static str> {
    let log = (&raw const trap::NMI_LOG) as u64;
    check(log.is_multiple_of(4096), "the NMI log is not page aligned")?;
    crate::timer::init();
    NMI_BEFORE.store(trap::NMI_LOG.count.load(Ordering::Relaxed), Ordering::Relaxed);
    let code = [&raw const nmi_user_start, &raw const nmi_user_hlt, &raw const nmi_user_end].map(|p| p as u64);
    start_user_test(code, nmi_user_hook, |space, pool| {
        let r = Rights { write: false, exec: false };
        space.map(va(USER_DATA), paging::image_phys(va(log)), r, pool).map_err(|_| "map the NMI log")
    })?;
    // About 16 ms of APIC time (16 ns a tick in QEMU): long after the few
    // instructions to ring 3, long before the spin limit.
    crate::arch::apic::nmi_after(1_000_000);
    // SAFETY: the test thread's frame holds user selectors and a user RIP
    // (written by start_thread) and its space is loaded by switch_to.
    unsafe { crate::arch::trap::resume_user() }
}

static NMI_BEFORE: AtomicU64 = AtomicU64::new(0);

fn nmi_user_hook(r: &Report) {
    let log = &trap::NMI_LOG;
    let n = log.count.load(Ordering::Acquire) - NMI_BEFORE.load(Ordering::Relaxed);
    let (rip, cs, frame) =
        (log.rip.load(Ordering::Relaxed), log.cs.load(Ordering::Relaxed), log.frame.load(Ordering::Relaxed));
    let ist = crate::arch::gdt::ist_stack(crate::arch::gdt::NMI_IST);
    let res = if !(r.user && r.vector == crash::GENERAL_PROTECTION && r.rip == EXPECTED_RIP.load(Ordering::Relaxed)) {
        Err("the thread did not end at its hlt (no NMI, or a register changed)")
    } else if n != 1 {
        Err("not exactly one NMI counted")
    } else if cs & 3 != 3 || !(USER_CODE..USER_CODE + 4096).contains(&rip) {
        Err("the NMI did not hit in ring 3 in the thread's code")
    } else if !ist.contains(&frame) {
        Err("the NMI's frame was not on the NMI IST stack")
    } else {
        Ok(())
    };
    let ok = report("nmi_in_user_mode_on_its_ist_stack", res);
    finish(ok as u32, !ok as u32)
}

/// Nothing ran for seconds: a test deadlocked. Fail the run (the caller
/// printed the thread states).
pub fn idle_too_long() -> ! {
    kprintln!("test no_deadlock ... FAILED: the system went idle with threads blocked");
    finish(0, 1)
}

fn expect_fault(name: &str, ok: bool) -> ! {
    report(name, if ok { Ok(()) } else { Err("vector, error code, address or mode wrong") });
    finish(ok as u32, !ok as u32)
}

/// Page-color period of the cache model's `embedded` profile (1 MiB, 16-way
/// last level: 16 colors of 4 KiB) - the host runner derives its expected
/// counts from the same geometry.
const COLOR_STRIDE: u64 = 16 * 4096;
const LINE: u64 = 64;

/// Loads every cache line of `pages` pages that lie `COLOR_STRIDE` apart
/// (so all have the color of `start`), optionally as one measured job. The
/// markers sit inside the same `asm!` block: the job window holds exactly
/// these `pages * 64` loads and nothing the compiler adds.
fn touch(start: u64, pages: u64, job: bool) {
    macro_rules! touch_loop {
        ($($begin:expr, $end:expr)?) => {
            // SAFETY: reads only, inside the test region of the direct map.
            unsafe {
                core::arch::asm!(
                    $($begin,)?
                    "2:",
                    "mov {ln}, {lines}",
                    "mov {q}, {p}",
                    "3:",
                    "mov {t}, qword ptr [{q}]",
                    "add {q}, {line}",
                    "dec {ln}",
                    "jnz 3b",
                    "add {p}, {stride}",
                    "dec {pg}",
                    "jnz 2b",
                    $($end,)?
                    p = inout(reg) start => _,
                    pg = inout(reg) pages => _,
                    ln = out(reg) _,
                    q = out(reg) _,
                    t = out(reg) _,
                    lines = const 4096 / LINE,
                    line = const LINE,
                    stride = const COLOR_STRIDE,
                    options(nostack, readonly),
                )
            }
        };
    }
    if pages == 0 {
        return;
    }
    if job {
        touch_loop!(abi::job_begin_asm!(), abi::job_end_asm!());
    } else {
        touch_loop!();
    }
}

/// Deterministic access pattern for the cache-model plugin (host checks the
/// CSV). Kernel code (ring 0): job 0 touches 8 pages of color 0, job 1 8
/// pages of color 1, job 2 the color-0 pages again; then, outside any job,
/// 16 more color-0 pages evict them (kernel interference); job 3 touches
/// the color-0 pages again. Then [`cache_model_user`] runs job 4 and its
/// user interference in ring 3.
/// The physical base (1 MiB aligned) and direct-map address of `bytes` of
/// usable RAM, for the cache-model tests (nothing else uses it before them).
fn free_ram(bytes: u64) -> Option<(u64, u64)> {
    let map = MEMMAP.get()?;
    let base = map.regions().iter().filter(|r| r.kind == MemKind::Usable).find_map(|r| {
        let b = r.base.next_multiple_of(1 << 20);
        (b + bytes <= r.end).then_some(b)
    })?;
    Some((base, paging::phys_to_virt(PhysAddr::new(base)?)?.as_u64()))
}

fn cache_model() -> ! {
    let Some((base, v)) = free_ram(2 << 20) else {
        kprintln!("test cache_model_pattern ... FAILED: no 2 MiB of free RAM");
        finish(0, 1)
    };
    kprintln!("cache_model: pattern at physical {base:#x}");
    touch(v, 8, true);
    touch(v + 4096, 8, true);
    touch(v, 8, true);
    touch(v + 8 * COLOR_STRIDE, 16, false);
    touch(v, 8, true);
    kprintln!("test cache_model_pattern ... ok");
    match cache_model_user(base) {
        Ok(never) => match never {},
        Err(why) => {
            kprintln!("test cache_model_user_pattern ... FAILED: {why}");
            finish(1, 1)
        }
    }
}

/// Where the ring-3 part of the cache-model pattern lives in its space.
const USER_CODE: u64 = 0x40_0000;
const USER_UTCB: u64 = 0x30_0000;
/// 24 consecutive pages: the job's 8, then the 16 touched outside it.
const USER_DATA: u64 = 0x100_0000;
const USER_PAGES: u64 = 24;

// The ring-3 part of the pattern, copied into a user page: job 4 loads
// every line of 8 pages of color 2, then, outside any job, of 16 more
// color-2 pages (user interference: they evict all of job 4's lines), and
// ends with `hlt`, whose #GP in ring 3 reaches the test's fault hook. The
// job window and the eviction run in one stretch of user code with no
// kernel entry in between (no interrupt source is armed yet).
core::arch::global_asm!(
    ".pushsection .text.cache_model_user, \"ax\"",
    ".global cache_model_user_start",
    ".global cache_model_user_hlt",
    ".global cache_model_user_end",
    // Loads every line of `rsi` pages from `rdi` on; `rdi` ends past them.
    ".macro CACHE_MODEL_USER_PAGES",
    "2:",
    "mov rcx, {lines}",
    "mov rdx, rdi",
    "3:",
    "mov rax, qword ptr [rdx]",
    "add rdx, {line}",
    "dec rcx",
    "jnz 3b",
    "add rdi, 4096",
    "dec rsi",
    "jnz 2b",
    ".endm",
    "cache_model_user_start:",
    "mov rdi, {data}",
    "mov rsi, 8",
    abi::job_begin_asm!(),
    "CACHE_MODEL_USER_PAGES",
    abi::job_end_asm!(),
    "mov rsi, 16",
    "CACHE_MODEL_USER_PAGES",
    "cache_model_user_hlt:",
    "hlt",
    "cache_model_user_end:",
    ".popsection",
    data = const USER_DATA,
    lines = const 4096 / LINE,
    line = const LINE,
);

extern "C" {
    static cache_model_user_start: u8;
    static cache_model_user_hlt: u8;
    static cache_model_user_end: u8;
}

/// Makes a ring-3 test thread ready to resume (the current thread, its
/// space loaded): the code `[start, end)` of `code = [start, hlt, end]`
/// copied to a page at `USER_CODE`, its data mapped by `data`, and `hook`
/// to check the report of the `hlt` it ends with (at `EXPECTED_RIP`).
fn start_user_test(
    [start, hlt, end]: [u64; 3],
    hook: fn(&Report),
    data: impl FnOnce(&mut AddressSpace, &mut crate::pool::FramePool) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let len = end - start;
    check(len <= 4096, "user code longer than a page")?;
    crate::thread::with_kernel(|kk| {
        let t = kk.create_thread(None, USER_UTCB, abi::ThreadId::NIL).map_err(|_| "cannot create the user thread")?;
        let sp = kk.tcbs[t].space;
        let space = kk.spaces[sp].space.as_mut().ok_or("no space")?;
        let mut pool = POOL.lock();
        let f =
            space.map_fresh(va(USER_CODE), Rights { write: false, exec: true }, &mut pool).map_err(|_| "map code")?;
        let dst = paging::phys_to_virt(f).ok_or("code frame outside the direct map")?;
        // SAFETY: `f` is a fresh frame of this test, `len` <= 4096 bytes of
        // kernel text are read, and the two ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(start as *const u8, dst.as_mut_ptr::<u8>(), len as usize) };
        data(space, &mut pool)?;
        drop(pool);
        EXPECTED_RIP.store(USER_CODE + (hlt - start), Ordering::Relaxed);
        crash::HOOK.call_once(|| hook);
        kk.start_thread(
            t,
            crate::control::Entry::new(USER_CODE, USER_DATA).map_err(|_| "cannot start the user thread")?,
        );
        kk.switch_to(t);
        Ok(())
    })
}

/// Starts a ring-3 thread running the code above, with its data pages on
/// the frames `base + 2 * 4096 + k * COLOR_STRIDE` (color 2, untouched by
/// the kernel part). Returns only on a setup error.
fn cache_model_user(base: u64) -> Result<core::convert::Infallible, &'static str> {
    let code = [&raw const cache_model_user_start, &raw const cache_model_user_hlt, &raw const cache_model_user_end];
    start_user_test(code.map(|p| p as u64), cache_model_user_hook, |space, pool| {
        for k in 0..USER_PAGES {
            let frame = base + 2 * 4096 + k * COLOR_STRIDE;
            let r = Rights { write: false, exec: false };
            space.map(va(USER_DATA + k * 4096), PhysAddr::from_kernel(frame), r, pool).map_err(|_| "map data")?;
        }
        Ok(())
    })?;
    // SAFETY: the test thread's frame holds user selectors and a user RIP
    // (written by start_thread) and its space is loaded by switch_to.
    unsafe { crate::arch::trap::resume_user() }
}

/// The ring-3 pattern ended with `hlt` at the expected address.
fn cache_model_user_hook(r: &Report) {
    let ok = r.user && r.vector == crash::GENERAL_PROTECTION && r.rip == EXPECTED_RIP.load(Ordering::Relaxed);
    report("cache_model_user_pattern", if ok { Ok(()) } else { Err("the ring-3 pattern did not end at its hlt") });
    finish(1 + ok as u32, !ok as u32)
}

/// Loads every cache line of `bytes` at `start`, `passes` times, as one
/// measured job.
fn sweep(start: u64, bytes: u64, passes: u64) {
    // SAFETY: reads only, inside the benchmark region of the direct map.
    unsafe {
        core::arch::asm!(
            abi::job_begin_asm!(),
            "2:",
            "mov {q}, {p}",
            "mov {ln}, {lines}",
            "3:",
            "mov {t}, qword ptr [{q}]",
            "add {q}, {line}",
            "dec {ln}",
            "jnz 3b",
            "dec {n}",
            "jnz 2b",
            abi::job_end_asm!(),
            p = in(reg) start,
            n = inout(reg) passes => _,
            lines = in(reg) bytes / LINE,
            ln = out(reg) _,
            q = out(reg) _,
            t = out(reg) _,
            line = const LINE,
            options(nostack, readonly),
        )
    }
}

/// Speed of the cache-model plugin (`prism bench`): an L1-resident loop
/// (16 KiB, 131072 passes) and a 16 MiB stream (64 passes), one load per
/// line, each a job, bracketed by console lines the host times.
fn cache_model_speed() -> ! {
    let Some((_, v)) = free_ram(16 << 20) else {
        kprintln!("test cache_model_speed ... FAILED: no 16 MiB of free RAM");
        finish(0, 1)
    };
    for (name, bytes, passes) in [("l1_loop_16k", 16 << 10, 131_072), ("stream_16m", 16 << 20, 64)] {
        kprintln!("speed {name} begin loads={}", bytes / LINE * passes);
        sweep(v, bytes, passes);
        kprintln!("speed {name} end");
    }
    kprintln!("test cache_model_speed ... ok");
    finish(1, 0)
}
