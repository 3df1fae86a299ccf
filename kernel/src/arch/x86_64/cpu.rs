//! Per-CPU setup: control registers, the IDT, `syscall` MSRs, the legacy
//! PIC, the per-CPU block reached through GS, and leaving QEMU.

use super::gdt;
use super::trap;
use x86_64::instructions::port::Port;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{
    Efer, EferFlags, GsBase, KernelGsBase, LStar, SFMask, Star,
};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

/// What `swapgs` makes reachable at `%gs:0` on kernel entry.
#[repr(C)]
pub struct PerCpu {
    /// Top of the current thread's kernel stack (loaded by `syscall_entry`).
    pub kernel_rsp: u64,
    /// Scratch slot for the user RSP during `syscall` entry.
    pub user_rsp: u64,
}

static mut PERCPU: PerCpu = PerCpu {
    kernel_rsp: 0,
    user_rsp: 0,
};
static mut IDT: InterruptDescriptorTable = InterruptDescriptorTable::new();

pub fn init() {
    gdt::init();
    mask_legacy_pic();
    // SAFETY: CR0/CR4/EFER bits set here are the ones the kernel relies on:
    // write protection in ring 0, global pages, SSE state (FXSR) and
    // `syscall`; all are architectural on every x86_64 CPU.
    unsafe {
        Cr0::update(|f| *f |= Cr0Flags::WRITE_PROTECT);
        Cr4::update(|f| {
            *f |= Cr4Flags::PAGE_GLOBAL | Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE
        });
        Efer::update(|f| *f |= EferFlags::SYSTEM_CALL_EXTENSIONS | EferFlags::NO_EXECUTE_ENABLE);
    }
    init_idt();
    init_syscall();
    // GS base points at the per-CPU block while in the kernel; the user's
    // (zero) value waits in KERNEL_GS_BASE until the first swapgs.
    GsBase::write(VirtAddr::from_ptr(&raw const PERCPU));
    KernelGsBase::write(VirtAddr::zero());
}

fn init_idt() {
    // SAFETY: single CPU at boot; the IDT is filled before it is loaded and
    // never changed while loaded except through this module.
    let idt_ptr = &raw mut IDT;
    // SAFETY: see above.
    let idt = unsafe { &mut *idt_ptr };
    let a = |v: usize| VirtAddr::new(trap::stub(v));
    // SAFETY (all entries): each stub is the entry point for its own vector
    // and ends in iretq on the stack it was given.
    unsafe {
        idt.divide_error.set_handler_addr(a(0));
        idt.debug.set_handler_addr(a(1));
        idt.non_maskable_interrupt.set_handler_addr(a(2));
        // `int3` from user level becomes an exception IPC, so ring 3 may
        // raise it.
        idt.breakpoint
            .set_handler_addr(a(3))
            .set_privilege_level(x86_64::PrivilegeLevel::Ring3);
        idt.overflow
            .set_handler_addr(a(4))
            .set_privilege_level(x86_64::PrivilegeLevel::Ring3);
        idt.bound_range_exceeded.set_handler_addr(a(5));
        idt.invalid_opcode.set_handler_addr(a(6));
        idt.device_not_available.set_handler_addr(a(7));
        // The IST slot is set up by gdt::init.
        idt.double_fault
            .set_handler_addr(a(8))
            .set_stack_index(gdt::DOUBLE_FAULT_IST);
        idt.invalid_tss.set_handler_addr(a(10));
        idt.segment_not_present.set_handler_addr(a(11));
        idt.stack_segment_fault.set_handler_addr(a(12));
        idt.general_protection_fault.set_handler_addr(a(13));
        idt.page_fault.set_handler_addr(a(14));
        idt.x87_floating_point.set_handler_addr(a(16));
        idt.alignment_check.set_handler_addr(a(17));
        idt.machine_check.set_handler_addr(a(18));
        idt.simd_floating_point.set_handler_addr(a(19));
        idt.virtualization.set_handler_addr(a(20));
        idt.cp_protection_exception.set_handler_addr(a(21));
        idt.vmm_communication_exception.set_handler_addr(a(29));
        idt.security_exception.set_handler_addr(a(30));
    }
    idt.load();
}

fn init_syscall() {
    let sel = gdt::selectors();
    // The user selectors here must match the constants in trap.rs.
    assert_eq!(sel.user_data.0, 0x1b);
    assert_eq!(sel.user_code.0, 0x23);
    Star::write(
        sel.user_code,
        sel.user_data,
        sel.kernel_code,
        sel.kernel_data,
    )
    .expect("GDT order fits sysret");
    LStar::write(VirtAddr::new(trap::syscall_entry_addr()));
    // Interrupts off, direction flag clear, no single-step in the kernel.
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK,
    );
}

/// Sets where the next entry from ring 3 (syscall, exception, interrupt)
/// puts its frame.
pub fn set_kernel_stack(top: u64) {
    gdt::set_kernel_stack(top);
    // SAFETY: single CPU, the kernel is not preemptible: no concurrent access.
    let percpu = &raw mut PERCPU;
    // SAFETY: as above.
    unsafe { (*percpu).kernel_rsp = top };
}

/// Masks every line of both 8259 PICs. The BIOS leaves them mapped onto the
/// exception vectors; the kernel uses the APIC (and re-enables lines on
/// request once interrupts-as-IPC lands).
fn mask_legacy_pic() {
    // SAFETY: writing the PIC mask registers only masks interrupts.
    unsafe {
        Port::<u8>::new(0x21).write(0xff);
        Port::<u8>::new(0xA1).write(0xff);
    }
}

pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Leaves QEMU through the `isa-debug-exit` device (iobase 0xf4) with exit
/// status `(code << 1) | 1`; on hardware or without the device this does
/// nothing and we halt.
pub fn qemu_exit(code: u32) -> ! {
    // SAFETY: port 0xf4 is unused on PCs; QEMU's debug-exit device ends the
    // VM on a write.
    unsafe { Port::<u32>::new(0xf4).write(code) };
    halt_forever()
}
