//! Boot: from the 32-bit entry's jump to Rust until the root task runs.

use crate::arch::paging;
use crate::arch::{cpu, serial};
use crate::boot::multiboot::{self, BootInfo, PhysRead};
use crate::memmap::{MemMap, Region};
use crate::state::{BOOTINFO, KIP, MEMMAP, POOL, POOL_RANGE, ROOT_THREAD};
use crate::types::PhysAddr;
use crate::{dispatch, kprintln, task, thread};
use abi::kip::{Kip, MemKind};

/// Default size of the kernel memory pool (page tables, mapping-database
/// nodes, I/O bitmaps, UTCBs); `kmem=MiB` on the command line sets it.
pub const KERNEL_POOL_SIZE: u64 = 16 << 20;

extern "C" {
    static __image_start_phys: u8;
    static __bss_end_phys: u8;
}

/// Physical memory as the kernel can currently see it.
struct KernelPhys;

impl PhysRead for KernelPhys {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        let phys = |a: u64| paging::phys_to_virt(PhysAddr::new(a)?);
        let (Some(v), Some(_)) = (phys(addr), phys(end.saturating_sub(1))) else {
            return false;
        };
        // SAFETY: both ends are inside the mapped physical window.
        unsafe { core::ptr::copy_nonoverlapping(v.as_mut_ptr::<u8>(), buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// The kernel image's physical extent (boot part through bss).
pub fn image_range() -> (u64, u64) {
    (&raw const __image_start_phys as u64, &raw const __bss_end_phys as u64)
}

fn banner(bi: &BootInfo) {
    let cpuid = raw_cpuid::CpuId::new();
    let vendor = cpuid.get_vendor_info();
    let brand = cpuid.get_processor_brand_string();
    let hv = cpuid.get_hypervisor_info().map(|h| h.identify());
    kprintln!("Prism microkernel v{} (x86_64)", env!("CARGO_PKG_VERSION"));
    kprintln!(
        "cpu: {} / {}{}",
        vendor.as_ref().map(|v| v.as_str()).unwrap_or("unknown vendor"),
        brand.as_ref().map(|b| b.as_str().trim()).unwrap_or("unknown model"),
        match hv {
            Some(h) => alloc_free_fmt(h),
            None => "",
        }
    );
    kprintln!(
        "boot: Multiboot v1 by \"{}\", cmdline \"{}\", {} module(s)",
        if bi.loader_name.is_empty() { "unknown loader" } else { bi.loader_name.as_str() },
        bi.cmdline,
        bi.mods.len()
    );
}

fn alloc_free_fmt(h: raw_cpuid::Hypervisor) -> &'static str {
    use raw_cpuid::Hypervisor::*;
    match h {
        KVM => " (hypervisor: KVM)",
        QEMU => " (hypervisor: QEMU TCG)",
        VMware => " (hypervisor: VMware)",
        HyperV => " (hypervisor: Hyper-V)",
        Xen => " (hypervisor: Xen)",
        _ => " (hypervisor: other)",
    }
}

fn module_cmdline(m: &multiboot::ModEntry) -> heapless::String<256> {
    let mut s = heapless::String::new();
    let mut b = [0u8; 1];
    for i in 0..255 {
        if m.cmdline == 0 || !KernelPhys.read(m.cmdline + i, &mut b) || b[0] == 0 {
            break;
        }
        let _ = s.push(if b[0].is_ascii_graphic() || b[0] == b' ' { b[0] as char } else { '?' });
    }
    s
}

fn pool_size(bi: &BootInfo) -> u64 {
    match multiboot::cmdline_value(&bi.cmdline, "kmem").map(str::parse::<u64>) {
        Some(Ok(mib)) if (1..=1024).contains(&mib) => mib << 20,
        Some(_) => {
            kprintln!("kmem= must be 1..1024 (MiB); using {} MiB", KERNEL_POOL_SIZE >> 20);
            KERNEL_POOL_SIZE
        }
        None => KERNEL_POOL_SIZE,
    }
}

fn stop(why: core::fmt::Arguments) -> ! {
    kprintln!("*** boot failed: {why}");
    kprintln!("*** kernel stopped.");
    cpu::halt_forever()
}

/// Publishes the cache geometry (CPUID through `cache-color`) in the KIP.
fn fill_caches(kip: &mut Kip) {
    use cache_color::geometry::{CacheGeometry, CacheKind};
    match CacheGeometry::detect() {
        Ok(g) => {
            for (slot, l) in kip.caches.iter_mut().zip(g.levels()) {
                *slot = abi::kip::CacheLevel {
                    level: l.level,
                    kind: match l.kind {
                        CacheKind::Data => 1,
                        CacheKind::Instruction => 2,
                        CacheKind::Unified => 3,
                    },
                    ways: l.ways.min(u16::MAX as u32) as u16,
                    line_size: l.line_size,
                    size: l.size,
                };
                kip.cache_count += 1;
            }
            if let Some(l) = g.last_level() {
                kprintln!(
                    "caches: {} level(s); last level {} KiB, {}-way, {} colors",
                    kip.cache_count,
                    l.size >> 10,
                    l.ways,
                    l.colors()
                );
            }
        }
        Err(e) => kprintln!("caches: not detected ({e}); configs must give the geometry"),
    }
}

/// Carves the mapping database's node and index storage out of the kernel
/// pool (one node per KiB of pool; index twice the nodes, a power of two).
fn init_mapdb() {
    use crate::mapdb::{MapDb, Node};
    let mut pool = POOL.lock();
    let nodes = (pool.total_frames() * 4).next_power_of_two() / 2;
    let node_bytes = nodes * core::mem::size_of::<Node>();
    let index_len = (2 * nodes).next_power_of_two();
    let index_bytes = index_len * 4;
    let frames = (node_bytes + index_bytes).div_ceil(4096);
    let Ok(base) = pool.alloc_contiguous(frames) else {
        stop(format_args!("kernel pool too small for the mapping database ({frames} frames)"))
    };
    drop(pool);
    let v = paging::phys_to_virt(base).expect("pool in the direct map");
    // SAFETY: `frames` contiguous pool frames now owned by the mapping
    // database for the kernel's lifetime; nodes first, then the index (u32,
    // 4-byte aligned because node_bytes is a multiple of the node size,
    // itself a multiple of 4).
    let (nodes_s, index_s) = unsafe {
        let n = core::slice::from_raw_parts_mut(v.as_mut_ptr::<Node>(), nodes);
        n.fill(Node::EMPTY);
        let i = core::slice::from_raw_parts_mut(v.as_mut_ptr::<u8>().add(node_bytes).cast::<u32>(), index_len);
        (n, i)
    };
    thread::with_kernel(|kk| kk.mapdb = Some(MapDb::new(nodes_s, index_s)));
    kprintln!("mapping database: {nodes} nodes in {frames} pool frames");
}

/// Rust entry, called by the 32-bit boot code on the boot stack.
#[no_mangle]
extern "C" fn kstart(magic: u32, info: u32) -> ! {
    serial::init();
    crate::log::init();
    cpu::init();
    let bi = match multiboot::parse(magic, info as u64, &KernelPhys) {
        Ok(bi) => BOOTINFO.call_once(|| bi),
        Err(e) => stop(format_args!("no usable Multiboot information: {e:?}")),
    };
    banner(bi);
    let p = cpu::protection();
    let on = |b: bool| if b { "on" } else { "off (not offered)" };
    kprintln!("protection: SMEP {}, SMAP {}, IST stacks for NMI, #DF and #MC", on(p.smep), on(p.smap));

    let (img_start, img_end) = image_range();
    let mut taken: heapless::Vec<Region, 17> = heapless::Vec::new();
    let _ = taken.push(Region { base: img_start, end: img_end, kind: MemKind::Kernel });
    for m in &bi.mods {
        let _ = taken.push(Region { base: m.start, end: m.end, kind: MemKind::Module });
    }
    let fw = bi.mmap.iter().map(|e| (e.base, e.len, e.kind));
    let mut map = MemMap::build(fw, &taken).unwrap_or_else(|e| stop(format_args!("memory map: {e:?}")));
    let pool =
        map.carve(pool_size(bi), 1 << 30).unwrap_or_else(|e| stop(format_args!("no room for the kernel pool: {e:?}")));
    POOL.lock().init(PhysAddr::from_kernel(pool.base), pool.size());
    POOL_RANGE.call_once(|| pool);
    let ram_end = map.regions().iter().filter(|r| r.kind != MemKind::Reserved).map(|r| r.end).max().unwrap_or(0);
    if let Err(e) = paging::init_kernel_space(&mut POOL.lock(), ram_end) {
        stop(format_args!("kernel page tables: {e:?}"));
    }
    if paging::phys_to_virt(PhysAddr::from_kernel(pool.end.saturating_sub(1))).is_none() {
        stop(format_args!("the kernel pool at {:#x} lies outside the direct map", pool.base));
    }
    let pcid = paging::enable_pcid();
    kprintln!("paging: 4-level, NX, global kernel pages, PCIDs {}", if pcid { "on" } else { "off (not offered)" });
    let cmdlines: heapless::Vec<heapless::String<256>, 16> = bi.mods.iter().map(module_cmdline).collect();
    // SAFETY: single CPU at boot; nobody else references the KIP yet.
    let kip_ptr = &raw mut KIP;
    // SAFETY: as above.
    let kip = unsafe { &mut (*kip_ptr).0 };
    crate::kip::fill(
        kip,
        &map,
        bi.mods.iter().zip(cmdlines.iter()).map(|(m, c)| (m.start, m.end - m.start, c.as_str())),
    );
    kprintln!(
        "memory: {} MiB usable, kernel image {:#x}-{:#x}, kernel pool {} MiB at {:#x}, {} region(s)",
        map.total(MemKind::Usable) >> 20,
        img_start,
        img_end,
        pool.size() >> 20,
        pool.base,
        map.regions().len()
    );
    for r in map.regions() {
        defmt::info!("memory region {=u64:#x}..{=u64:#x} {}", r.base, r.end, r.kind as u32);
    }
    defmt::info!("kernel pool: {=usize} frames free", POOL.lock().free_frames());
    MEMMAP.call_once(|| map);

    #[cfg(feature = "ktest")]
    crate::ktest::run(multiboot::cmdline_value(&bi.cmdline, "test").unwrap_or("suite"));

    init_mapdb();
    let hz = crate::timer::init();
    kip.tsc_hz = hz;
    fill_caches(kip);
    kprintln!("timer: TSC {} MHz, local APIC ({})", hz / 1_000_000, crate::arch::apic::mode());
    crate::pmc::hw::init();

    let Some((_, s0)) = kip.module("sigma0").or(kip.modules().first().map(|m| (0, m))) else {
        kprintln!(
            "no boot modules: nothing to run. Pass sigma0 and the root task with -initrd (QEMU) or `module` (GRUB)."
        );
        cpu::halt_forever()
    };
    let s0 = *s0;
    let sigma0 = start_module(&s0, None);
    kip.sigma0_id = sigma0.0;
    match kip.module("roottask").map(|(_, m)| *m) {
        Some(root) => {
            let r = start_module(&root, Some(sigma0));
            kip.root_id = r.0;
            ROOT_THREAD.call_once(|| r);
        }
        None => {
            kprintln!("no `roottask` module: only sigma0 runs");
            ROOT_THREAD.call_once(|| sigma0);
        }
    }
    defmt::info!("modules started, {=usize} kernel pool frames left", POOL.lock().free_frames());
    dispatch::schedule_and_resume()
}

/// Loads boot module `m` into a new space and starts its first thread:
/// sigma0 (`pager` None: idempotent over RAM, every I/O port, no rights)
/// or the root task (paged by sigma0, every right, MCP 63). Every page the
/// loader maps becomes a root of the mapping database, so the module can
/// map its own pages onwards.
fn start_module(m: &abi::kip::Module, pager: Option<abi::ThreadId>) -> abi::ThreadId {
    thread::with_kernel(|kk| start_module_in(kk, m, pager))
}

fn start_module_in(kk: &mut thread::Kernel, m: &abi::kip::Module, pager: Option<abi::ThreadId>) -> abi::ThreadId {
    let Some(bytes) = PhysAddr::new(m.phys_base).and_then(paging::phys_to_virt) else {
        stop(format_args!("module \"{}\" at {:#x} is outside RAM", m.name(), m.phys_base))
    };
    // SAFETY: the module's frames are reserved in the map and mapped in the
    // direct map; nothing writes them.
    let image = unsafe { core::slice::from_raw_parts(bytes.as_mut_ptr::<u8>(), m.size as usize) };
    let t = kk
        .create_thread(None, abi::ROOT_UTCB, pager.unwrap_or(abi::ThreadId::NIL))
        .unwrap_or_else(|e| stop(format_args!("cannot create a thread for \"{}\": {e:?}", m.name())));
    let sp = kk.tcbs[t].space;
    let mut space = kk.spaces[sp].space.take().expect("fresh space");
    let mut db_full = false;
    let entry = task::load(&mut space, image, &mut POOL.lock(), &mut |v, f, r| {
        db_full |= crate::mapping::insert_root_in(kk.mapdb.as_mut(), sp, v, f, r).is_err();
    })
    .unwrap_or_else(|e| stop(format_args!("cannot load \"{}\": {e:?}", m.name())));
    kk.spaces[sp].space = Some(space);
    if db_full {
        stop(format_args!("mapping database too small for \"{}\"", m.name()));
    }
    let tc = &mut kk.tcbs[t];
    tc.prio = abi::ROOT_PRIORITY as u8;
    if pager.is_none() {
        kk.sigma0_space = Some(sp);
        if let Err(e) = crate::io::grant_all(kk, sp) {
            stop(format_args!("no I/O bitmap for sigma0: {e:?}"));
        }
    } else {
        tc.mcp = abi::sys::MAX_PRIORITY as u8;
        tc.rights = abi::sys::rights::ALL as u8;
    }
    match crate::control::Entry::new(entry, abi::ROOT_STACK_TOP) {
        Ok(at) => kk.start_thread(t, at),
        Err(e) => stop(format_args!("cannot start \"{}\": {e:?}", m.name())),
    }
    let id = kk.id_of(t);
    kprintln!("starting \"{}\" at {:#x} in ring 3 (thread {:#x})", m.name(), entry, id.0);
    id
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    serial::break_lock();
    kprintln!("*** kernel panic: {info}");
    #[cfg(feature = "ktest")]
    kprintln!("0 passed, 1 failed");
    #[cfg(feature = "ktest")]
    cpu::qemu_exit(crate::ktest::EXIT_FAIL);
    #[allow(unreachable_code)]
    cpu::halt_forever()
}
