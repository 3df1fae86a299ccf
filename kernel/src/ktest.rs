//! In-guest tests, compiled only into the test kernel (`--features ktest`).
//!
//! The host runner boots the test kernel with `test=NAME` on the command
//! line. `suite` runs every test that leaves the kernel intact and prints one
//! line each; the fault tests end the kernel on purpose and are checked by
//! the fault hook; `user` lets the boot continue into the root task and
//! checks what it does from ring 3. Each boot ends with `N passed, N failed`
//! and leaves QEMU through `isa-debug-exit` with [`EXIT_PASS`] or
//! [`EXIT_FAIL`].

use crate::arch::cpu;
use crate::arch::paging::{self, AddressSpace, Rights};
use crate::fault::{self, Report};
use crate::init::{self, MEMMAP, POOL, POOL_RANGE};
use crate::kprintln;
use crate::syscall::copy_from_user;
use abi::kip::MemKind;
use core::sync::atomic::{AtomicU64, Ordering};

/// QEMU exits with status `(code << 1) | 1`: 33 for pass, 35 for fail.
pub const EXIT_PASS: u32 = 0x10;
pub const EXIT_FAIL: u32 = 0x11;

type TestFn = fn() -> Result<(), &'static str>;

const SUITE: &[(&str, TestFn)] = &[
    ("memory_map_sane", memory_map_sane),
    ("kernel_pool_outside_usable_ram", kernel_pool_outside_usable_ram),
    ("kernel_mappings_wx_and_supervisor", kernel_mappings_wx_and_supervisor),
    ("boot_identity_map_removed", boot_identity_map_removed),
    ("kip_describes_memory_and_modules", kip_describes_memory_and_modules),
    ("copy_from_user_rejects_bad_addresses", copy_from_user_rejects_bad_addresses),
    ("pool_exhaustion_is_an_error", pool_exhaustion_is_an_error),
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

/// Runs the test selected on the command line. Returns only for `user`.
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
        "general_protection" => general_protection(),
        "user" => {
            fault::HOOK.call_once(|| user_fault_hook);
            crate::syscall::EXIT_HOOK.call_once(|| user_exit_hook);
            start_pit_1khz();
        }
        // As `user`, for the fuzzer: its threads' children may fault with
        // no handler (reported and stopped, as in production); only the
        // root task's own fault ends the run.
        "fuzz" => {
            fault::HOOK.call_once(|| {
                |r: &Report| {
                    if crate::thread::k().current.map(|i| crate::thread::k().id_of(i))
                        == init::ROOT_THREAD.get().copied()
                    {
                        user_fault_hook(r)
                    }
                }
            });
            crate::syscall::EXIT_HOOK.call_once(|| user_exit_hook);
            start_pit_1khz();
        }
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
    for m in &init::BOOTINFO.get().ok_or("no boot info")?.mods {
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
    let inside = pool.base <= f && f < pool.end;
    POOL.lock().free(f).map_err(|_| "free failed")?;
    check(inside, "pool frame outside the pool range")
}

fn kernel_mappings_wx_and_supervisor() -> Result<(), &'static str> {
    let s = paging::sections();
    let t = |v: u64| paging::kernel_translate(v).ok_or("kernel page not mapped");
    for v in (s.text.0..s.text.1).step_by(4096) {
        let m = t(v)?;
        check(m.executable && !m.writable, "text page writable or not executable")?;
        check(!m.user && m.global, "text page user-accessible or not global")?;
        check(m.phys == paging::image_phys(v), "text page maps the wrong frame")?;
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
    check(paging::kernel_translate(0x10_0000).is_none(), "identity map of the boot code still present")?;
    check(paging::kernel_translate(0).is_none(), "page 0 mapped")
}

fn kip_describes_memory_and_modules() -> Result<(), &'static str> {
    let kip = init::kip();
    check(kip.magic == abi::kip::KIP_MAGIC, "bad KIP magic")?;
    let map = MEMMAP.get().ok_or("no memory map")?;
    check(kip.mem_regions().len() == map.regions().len(), "KIP memory map length differs")?;
    let usable: u64 = kip.mem_regions().iter().filter(|r| r.kind == MemKind::Usable as u32).map(|r| r.size).sum();
    check(usable == map.total(MemKind::Usable), "KIP usable total differs")?;
    let mods = &init::BOOTINFO.get().ok_or("no boot info")?.mods;
    check(kip.modules().len() == mods.len(), "KIP module count differs")
}

fn copy_from_user_rejects_bad_addresses() -> Result<(), &'static str> {
    let mut pool = POOL.lock();
    let mut space = AddressSpace::new(&mut pool).map_err(|_| "no space")?;
    let f = space.map_fresh(0x40_0000, Rights { write: true, exec: false }, &mut pool).map_err(|_| "map")?;
    drop(pool);
    // SAFETY: `f` is a fresh frame owned by this test, in the direct map.
    unsafe { *(paging::phys_to_virt(f).unwrap() as *mut u64) = 0x1122_3344_5566_7788 };
    let mut b = [0u8; 8];
    copy_from_user(&space, 0x40_0000, &mut b).map_err(|_| "mapped page rejected")?;
    check(u64::from_le_bytes(b) == 0x1122_3344_5566_7788, "copy returned wrong bytes")?;
    let bad = abi::Error::BadAddress;
    check(copy_from_user(&space, 0x40_0ffc, &mut b) == Err(bad), "copy across into unmapped page accepted")?;
    check(copy_from_user(&space, 0x50_0000, &mut b) == Err(bad), "unmapped page accepted")?;
    check(copy_from_user(&space, paging::KERNEL_VMA, &mut b) == Err(bad), "kernel address accepted")?;
    check(copy_from_user(&space, u64::MAX - 3, &mut b) == Err(bad), "wrapping range accepted")?;
    space.unmap(0x40_0000);
    space.destroy(&mut POOL.lock());
    POOL.lock().free(f).map_err(|_| "frame not returned")
}

fn pool_exhaustion_is_an_error() -> Result<(), &'static str> {
    let mut pool = POOL.lock();
    let before = pool.free_frames();
    // Take every frame, chaining them through their first word (they are
    // ours while taken), until the pool says it is exhausted.
    let mut head = 0u64;
    let mut n = 0usize;
    let err = loop {
        match pool.alloc() {
            Ok(f) => {
                // SAFETY: `f` was just allocated to us and is in the direct map.
                unsafe { *(paging::phys_to_virt(f).unwrap() as *mut u64) = head };
                head = f;
                n += 1;
            }
            Err(e) => break e,
        }
    };
    while head != 0 {
        // SAFETY: every frame in the chain is still allocated to us.
        let next = unsafe { *(paging::phys_to_virt(head).unwrap() as *const u64) };
        pool.free(head).map_err(|_| "free of an allocated frame failed")?;
        head = next;
    }
    check(err == crate::pool::PoolError::Exhausted, "wrong error on exhaustion")?;
    check(n == before, "pool ran out before handing out every free frame")?;
    check(pool.free_frames() == before, "frames lost after freeing")
}

static EXPECTED_RIP: AtomicU64 = AtomicU64::new(0);
const UNMAPPED_KERNEL_ADDR: u64 = 0xFFFF_FFFF_0000_0000;

fn page_fault() -> ! {
    fault::HOOK.call_once(|| {
        |r: &Report| {
            let want = EXPECTED_RIP.load(Ordering::Relaxed);
            let ok = r.vector == fault::PAGE_FAULT
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
    fault::HOOK.call_once(|| {
        |r: &Report| {
            let want = EXPECTED_RIP.load(Ordering::Relaxed);
            let ok = r.vector == fault::GENERAL_PROTECTION && r.error == 0 && r.rip == want && !r.user;
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

/// The root task (sigma0 in test mode) ends with `hlt`, which is privileged:
/// a #GP from ring 3 at a user address proves it ran in user mode.
fn user_fault_hook(r: &Report) {
    let ok = r.user && r.vector == fault::GENERAL_PROTECTION && r.rip < abi::USER_END;
    expect_fault("ring3_root_task", ok)
}

fn user_exit_hook(t: abi::ThreadId, status: u64) {
    if init::ROOT_THREAD.get() == Some(&t) {
        kprintln!("test ring3_root_task ... FAILED: root task exited with status {status}");
        finish(0, 1)
    }
}

/// Test fixture: the PIT as a periodic interrupt source on legacy line 0
/// (1 kHz, rate generator), for the interrupt-as-IPC test. The line stays
/// masked until a handler attaches.
fn start_pit_1khz() {
    use x86_64::instructions::port::Port;
    let divisor: u16 = 1193;
    // SAFETY: PIT channel 0 programming; nothing else uses the PIT.
    unsafe {
        Port::<u8>::new(0x43).write(0x34);
        Port::<u8>::new(0x40).write(divisor as u8);
        Port::<u8>::new(0x40).write((divisor >> 8) as u8);
    }
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
/// CSV): job 0 touches 8 pages of color 0, job 1 8 pages of color 1, job 2
/// the color-0 pages again; then, outside any job, 16 more color-0 pages
/// evict them from the last level; job 3 touches the color-0 pages again.
fn cache_model() -> ! {
    let map = MEMMAP.get().expect("memory map");
    let need = 2 << 20;
    let region = map.regions().iter().filter(|r| r.kind == MemKind::Usable).find_map(|r| {
        let b = r.base.next_multiple_of(1 << 20);
        (b + need <= r.end).then_some(b)
    });
    let Some(base) = region else {
        kprintln!("test cache_model_pattern ... FAILED: no 2 MiB of free RAM");
        finish(0, 1)
    };
    let v = paging::phys_to_virt(base).expect("direct map");
    kprintln!("cache_model: pattern at physical {base:#x}");
    touch(v, 8, true);
    touch(v + 4096, 8, true);
    touch(v, 8, true);
    touch(v + 8 * COLOR_STRIDE, 16, false);
    touch(v, 8, true);
    kprintln!("test cache_model_pattern ... ok");
    finish(1, 0)
}
