//! GDT and TSS.
//!
//! Segment order is fixed by `syscall`/`sysret`: kernel code, kernel data,
//! then user data before user code (sysret loads SS = base + 8 and
//! CS = base + 16). The TSS holds RSP0 (the end of the current thread's
//! saved frame, where an interrupt or exception from ring 3 is saved) and
//! one IST stack each for the events that may arrive at any instruction:
//! NMI and machine check (also between `syscall` and its stack switch,
//! when RSP is still the user's), and double fault (a kernel stack
//! overflow is still reported).

use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

pub const DOUBLE_FAULT_IST: u16 = 0;
pub const NMI_IST: u16 = 1;
pub const MACHINE_CHECK_IST: u16 = 2;
const IST_STACKS: usize = 3;
pub const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);
static mut IST: [IstStack; IST_STACKS] = [const { IstStack([0; IST_STACK_SIZE]) }; IST_STACKS];

/// The address range of IST stack `index` (for checks: the in-guest NMI
/// test asks whether its frame was saved there).
pub fn ist_stack(index: u16) -> core::ops::Range<u64> {
    let base = (&raw const IST) as u64 + index as u64 * IST_STACK_SIZE as u64;
    base..base + IST_STACK_SIZE as u64
}

/// The TSS followed by its I/O permission bitmap (one bit per port, set =
/// denied, plus the terminating 0xff byte). The bitmap holds the running
/// space's ports (see [`load_io_bitmap`]).
#[repr(C)]
struct TssWithIomap {
    tss: TaskStateSegment,
    iomap: [u8; IOMAP_BYTES + 1],
}

pub const IOMAP_BYTES: usize = 8192;

static mut TSS_IO: TssWithIomap = TssWithIomap { tss: TaskStateSegment::new(), iomap: [0xff; IOMAP_BYTES + 1] };
static GDT: Once<(GlobalDescriptorTable<8>, Selectors)> = Once::new();

#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    pub tss: SegmentSelector,
}

pub fn selectors() -> Selectors {
    GDT.get().expect("gdt not initialised").1
}

pub fn init() {
    // SAFETY: runs once on the boot CPU before anything else uses the TSS;
    // each IST stack is used by nothing but its own handler.
    let tss: &'static TaskStateSegment = unsafe {
        let p = &raw mut TSS_IO;
        for i in [DOUBLE_FAULT_IST, NMI_IST, MACHINE_CHECK_IST] {
            (*p).tss.interrupt_stack_table[i as usize] = VirtAddr::new(ist_stack(i).end);
        }
        &(*p).tss
    };
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let p = &raw const TSS_IO;
        // SAFETY: the bitmap lives in the same static, right after the TSS.
        let iomap: &'static [u8] = unsafe { &(*p).iomap };
        let tss = gdt.append(Descriptor::tss_segment_with_iomap(tss, iomap).expect("iomap follows the TSS"));
        (gdt, Selectors { kernel_code, kernel_data, user_data, user_code, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        ES::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        load_tss(sel.tss);
    }
}

/// Sets the stack the CPU switches to when an interrupt or exception
/// arrives from ring 3.
/// `top` is the end of a TCB's frame, a kernel address (canonical: no
/// check on every switch).
pub fn set_kernel_stack(top: u64) {
    // SAFETY: single CPU, interrupts off in the kernel: nobody else touches
    // the TSS while we write one field.
    let p = &raw mut TSS_IO;
    // SAFETY: as above.
    unsafe { (*p).tss.privilege_stack_table[0] = VirtAddr::new_truncate(top) };
}

/// Copies a space's I/O bitmap into the TSS.
pub fn load_io_bitmap(bits: &[u8; IOMAP_BYTES]) {
    let p = &raw mut TSS_IO;
    // SAFETY: single CPU, kernel context: the CPU reads the bitmap only
    // while in ring 3, never concurrently with this copy.
    let map = unsafe { &mut (*p).iomap };
    map[..IOMAP_BYTES].copy_from_slice(bits);
}

/// Turns the TSS bitmap on (the loaded bitmap applies) or off (an I/O map
/// base beyond the TSS limit: every port denied, nothing to copy).
pub fn set_io_bitmap_enabled(on: bool) {
    let p = &raw mut TSS_IO;
    let base = if on { core::mem::size_of::<TaskStateSegment>() as u16 } else { 0xffff };
    // SAFETY: as above; a 16-bit field of the packed TSS, written by value.
    unsafe { (*p).tss.iomap_base = base };
}
