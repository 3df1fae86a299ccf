//! Per-CPU setup: control registers, the IDT, `syscall` MSRs, the legacy
//! PIC, the per-CPU block reached through GS, and leaving QEMU.

use super::gdt;
use super::trap;
use x86_64::instructions::port::Port;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, GsBase, KernelGsBase, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

/// What `swapgs` makes reachable through `%gs` on kernel entry. The entry
/// code in `trap.rs` names the fields by `offset_of!`.
#[repr(C)]
pub struct PerCpu {
    /// End of the current thread's saved frame (`syscall` pushes there).
    pub frame_end: u64,
    /// Scratch slot for the user RSP during `syscall` entry.
    pub user_rsp: u64,
    /// Top of the kernel stack (one per CPU: the kernel never blocks
    /// inside a call, so threads need no kernel stacks of their own).
    pub kstack_top: u64,
    /// Start of the current thread's saved frame (`exit_to_user` resumes it).
    pub frame: u64,
    /// 1 when SMAP is on: an entry from ring 3 by interrupt or exception
    /// then clears RFLAGS.AC (the CPU keeps the user's AC there, and AC set
    /// in ring 0 would switch SMAP off; `clac` itself exists only where
    /// SMAP does).
    pub smap: u64,
}

static mut PERCPU: PerCpu = PerCpu { frame_end: 0, user_rsp: 0, kstack_top: 0, frame: 0, smap: 0 };

/// The protections `init` switched on (the boot log names them).
#[derive(Clone, Copy, Debug, Default)]
pub struct Protection {
    /// CR4.SMEP: ring 0 cannot execute user pages.
    pub smep: bool,
    /// CR4.SMAP: ring 0 cannot read or write user pages. The kernel never
    /// does: every user access goes through `umem` (page-table walk, then
    /// the direct map), so no code runs with RFLAGS.AC set.
    pub smap: bool,
}

static PROTECTION: spin::Once<Protection> = spin::Once::new();

/// What `init` switched on.
pub fn protection() -> Protection {
    PROTECTION.get().copied().unwrap_or_default()
}
static mut IDT: InterruptDescriptorTable = InterruptDescriptorTable::new();

pub fn init() {
    gdt::init();
    mask_legacy_pic();
    // SAFETY: CR0/CR4/EFER bits set here are the ones the kernel relies on:
    // write protection in ring 0, global pages, SSE state (FXSR) and
    // `syscall`; all are architectural on every x86_64 CPU.
    unsafe {
        Cr0::update(|f| *f |= Cr0Flags::WRITE_PROTECT);
        Cr4::update(|f| *f |= Cr4Flags::PAGE_GLOBAL | Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        Efer::update(|f| *f |= EferFlags::SYSTEM_CALL_EXTENSIONS | EferFlags::NO_EXECUTE_ENABLE);
    }
    enable_protection();
    init_idt();
    init_syscall();
    set_kernel_stack_top(&raw const super::boot::BOOT_STACK as u64 + super::boot::BOOT_STACK_SIZE as u64);
    // GS base points at the per-CPU block while in the kernel; the user's
    // (zero) value waits in KERNEL_GS_BASE until the first swapgs.
    GsBase::write(VirtAddr::from_ptr(&raw const PERCPU));
    KernelGsBase::write(VirtAddr::zero());
}

/// SMEP and SMAP where CPUID offers them (leaf 7, EBX bits 7 and 20).
fn enable_protection() {
    let ext = raw_cpuid::CpuId::new().get_extended_feature_info();
    let p = Protection {
        smep: ext.as_ref().is_some_and(|e| e.has_smep()),
        smap: ext.as_ref().is_some_and(|e| e.has_smap()),
    };
    let mut bits = Cr4Flags::empty();
    bits.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, p.smep);
    bits.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, p.smap);
    // SAFETY: the kernel runs only from supervisor pages (boot tables and
    // kernel tables map nothing of its own with the user bit) and never
    // touches a user page through a user address, so neither bit changes
    // what the kernel does; they only turn a stray access into a fault.
    unsafe { Cr4::update(|f| *f |= bits) };
    let percpu = &raw mut PERCPU;
    // SAFETY: single CPU at boot, before the first entry from ring 3.
    unsafe { (*percpu).smap = p.smap as u64 };
    PROTECTION.call_once(|| p);
}

fn init_idt() {
    // SAFETY: single CPU at boot; the IDT is filled before it is loaded and
    // never changed while loaded except through this module.
    let idt_ptr = &raw mut IDT;
    // SAFETY: see above.
    let idt = unsafe { &mut *idt_ptr };
    let a = |v: usize| VirtAddr::new(trap::stub(v));
    // SAFETY: (all entries) each stub is the entry point for its own
    // vector and ends in iretq on the stack it was given.
    unsafe {
        idt.divide_error.set_handler_addr(a(0));
        idt.debug.set_handler_addr(a(1));
        // NMI, #DF and #MC may arrive anywhere, also between `syscall` and
        // the stack switch (on the user's stack in ring 0): each has a
        // stack of its own (see gdt.rs and their stubs in trap.rs).
        idt.non_maskable_interrupt.set_handler_addr(a(2)).set_stack_index(gdt::NMI_IST);
        // `int3` from user level becomes an exception IPC, so ring 3 may
        // raise it.
        idt.breakpoint.set_handler_addr(a(3)).set_privilege_level(x86_64::PrivilegeLevel::Ring3);
        idt.overflow.set_handler_addr(a(4)).set_privilege_level(x86_64::PrivilegeLevel::Ring3);
        idt.bound_range_exceeded.set_handler_addr(a(5));
        idt.invalid_opcode.set_handler_addr(a(6));
        idt.device_not_available.set_handler_addr(a(7));
        idt.double_fault.set_handler_addr(a(8)).set_stack_index(gdt::DOUBLE_FAULT_IST);
        idt.invalid_tss.set_handler_addr(a(10));
        idt.segment_not_present.set_handler_addr(a(11));
        idt.stack_segment_fault.set_handler_addr(a(12));
        idt.general_protection_fault.set_handler_addr(a(13));
        idt.page_fault.set_handler_addr(a(14));
        idt.x87_floating_point.set_handler_addr(a(16));
        idt.alignment_check.set_handler_addr(a(17));
        idt.machine_check.set_handler_addr(a(18)).set_stack_index(gdt::MACHINE_CHECK_IST);
        idt.simd_floating_point.set_handler_addr(a(19));
        idt.virtualization.set_handler_addr(a(20));
        idt.cp_protection_exception.set_handler_addr(a(21));
        idt.vmm_communication_exception.set_handler_addr(a(29));
        idt.security_exception.set_handler_addr(a(30));
        for v in 32..trap::STUBS {
            idt[v as u8].set_handler_addr(a(v));
        }
    }
    idt.load();
}

fn init_syscall() {
    let sel = gdt::selectors();
    // The user selectors here must match the constants in trap.rs.
    assert_eq!(sel.user_data.0 as u64, trap::USER_SS);
    assert_eq!(sel.user_code.0 as u64, trap::USER_CS);
    Star::write(sel.user_code, sel.user_data, sel.kernel_code, sel.kernel_data).expect("GDT order fits sysret");
    LStar::write(VirtAddr::new(trap::syscall_entry_addr()));
    // Interrupts off, direction flag clear, no single-step in the kernel,
    // and no nested-task flag: ring 3 may set NT, and `iretq` with NT set
    // raises #GP in long mode, so the kernel must never run with the
    // caller's NT. (Interrupt and exception entries clear NT by themselves.)
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK,
    );
}

/// Makes `frame` the current thread's saved state: the next entry from ring
/// 3 saves there, and `exit_to_user` resumes from there. The frame's end
/// must be 16-byte aligned (the CPU aligns RSP0 before pushing).
#[inline]
pub fn set_current_frame(frame: *mut trap::TrapFrame) {
    let end = frame as u64 + core::mem::size_of::<trap::TrapFrame>() as u64;
    debug_assert!(end.is_multiple_of(16));
    gdt::set_kernel_stack(end);
    let percpu = &raw mut PERCPU;
    // SAFETY: single CPU, the kernel is not preemptible: no concurrent access.
    unsafe {
        (*percpu).frame = frame as u64;
        (*percpu).frame_end = end;
    }
}

/// The kernel stack every entry from ring 3 switches to.
fn set_kernel_stack_top(top: u64) {
    let percpu = &raw mut PERCPU;
    // SAFETY: as above.
    unsafe { (*percpu).kstack_top = top };
}

/// Sets the user FS base (the UTCB pointer of the running thread).
pub fn set_fs_base(v: u64) {
    x86_64::registers::model_specific::FsBase::write(VirtAddr::new_truncate(v));
}

static mut FPU_TRAP: bool = false;

/// Sets CR0.TS so that the next FPU/SSE instruction traps (#NM), which is
/// when the FPU state is switched (lazily: IPC and threads that never use
/// the FPU pay nothing).
#[inline]
pub fn set_fpu_trap(on: bool) {
    let p = &raw mut FPU_TRAP;
    // SAFETY: single CPU, kernel context only.
    unsafe {
        if *p != on {
            *p = on;
            Cr0::update(|f| f.set(Cr0Flags::TASK_SWITCHED, on));
        }
    }
}

/// Saves the FPU/SSE state into `area` (512 bytes, 16-byte aligned).
pub fn fxsave(area: &mut [u8; 512]) {
    // SAFETY: fxsave writes exactly 512 bytes to a 16-aligned buffer (the
    // caller's `FxArea` is `align(16)`); TS is clear when this runs.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area.as_mut_ptr(), options(nostack)) };
}

/// Loads the FPU/SSE state from `area`.
pub fn fxrstor(area: &[u8; 512]) {
    // SAFETY: as for fxsave; the image was produced by fxsave or is the
    // default image (valid MXCSR).
    unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) area.as_ptr(), options(nostack)) };
}

/// The FXSAVE image of the power-on FPU/SSE state: x87 control word 0x37f
/// (all exceptions masked, 64-bit precision), MXCSR 0x1f80, every data,
/// x87 and XMM register zero, every x87 tag empty.
#[repr(C, align(16))]
struct CleanFpu([u8; 512]);

static CLEAN_FPU: CleanFpu = {
    let mut a = [0u8; 512];
    a[0] = 0x7f;
    a[1] = 0x03;
    a[24] = 0x80;
    a[25] = 0x1f;
    CleanFpu(a)
};

/// Loads the power-on FPU/SSE state: every register, not only the control
/// words, so that nothing of the previous owner's state shows through
/// (`fninit` leaves the x87 and XMM registers as they were).
pub fn fpu_init() {
    fxrstor(&CLEAN_FPU.0);
}

/// Idles until an interrupt arrives (interrupts on only while halted).
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
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

// MSR and counter probes: an instruction that may raise #GP (an MSR the
// CPU or hypervisor does not implement, a counter index it lacks) runs at a
// known address; `probe_fixup` tells the kernel-fault path to resume at
// `prism_probe_faulted`, which returns 1 instead of stopping the kernel
// (for #GP, and #UD: QEMU TCG raises it for every rdpmc).
// Each probe returns 0 when the instruction completed.
core::arch::global_asm!(
    // u64 prism_wrmsr_probe(u32 msr, u64 value)
    ".global prism_wrmsr_probe",
    "prism_wrmsr_probe:",
    "mov ecx, edi",
    "mov eax, esi",
    "mov rdx, rsi",
    "shr rdx, 32",
    "prism_wrmsr_insn:",
    "wrmsr",
    "xor eax, eax",
    "ret",
    // u64 prism_rdpmc_probe(u32 index, u64 *value)
    ".global prism_rdpmc_probe",
    "prism_rdpmc_probe:",
    "mov ecx, edi",
    "prism_rdpmc_insn:",
    "rdpmc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rsi], rax",
    "xor eax, eax",
    "ret",
    "prism_probe_faulted:",
    "mov eax, 1",
    "ret",
    ".pushsection .rodata",
    ".p2align 3",
    ".global prism_probe_table",
    "prism_probe_table:",
    ".quad prism_wrmsr_insn, prism_rdpmc_insn, prism_probe_faulted",
    ".popsection",
);

extern "C" {
    fn prism_wrmsr_probe(msr: u32, value: u64) -> u64;
    fn prism_rdpmc_probe(index: u32, value: *mut u64) -> u64;
    static prism_probe_table: [u64; 3];
}

/// Writes MSR `msr`; false if the CPU refused it (#GP).
pub fn wrmsr_probe(msr: u32, value: u64) -> bool {
    // SAFETY: the callers write only performance-monitoring MSRs, which
    // change what counters count and nothing the kernel relies on; a #GP
    // at the probe instruction resumes through `probe_fixup`.
    unsafe { prism_wrmsr_probe(msr, value) == 0 }
}

/// Reads counter `index` with `rdpmc` in ring 0; `None` if it faulted
/// (#GP for an index the CPU lacks; #UD under QEMU TCG, which has none).
pub fn rdpmc_probe(index: u32) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: rdpmc only reads a counter, stored into `v`; a fault resumes
    // as above without the store.
    (unsafe { prism_rdpmc_probe(index, &mut v) } == 0).then_some(v)
}

/// Where a kernel #GP or #UD at `rip` resumes, if `rip` is a probe
/// instruction.
pub fn probe_fixup(rip: u64) -> Option<u64> {
    // SAFETY: a read-only table the assembler filled with code addresses.
    let [wrmsr, rdpmc, faulted] = unsafe { prism_probe_table };
    (rip == wrmsr || rip == rdpmc).then_some(faulted)
}

/// Lets ring 3 execute `rdpmc` (CR4.PCE), only while counters are live.
pub fn set_user_pmc(on: bool) {
    // SAFETY: CR4.PCE only decides whether rdpmc faults in ring 3.
    unsafe { Cr4::update(|f| f.set(Cr4Flags::PERFORMANCE_MONITOR_COUNTER, on)) };
}

/// The time stamp counter (TSC ticks; the kernel's clock, `timer::now`).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no side effects (user mode may read it too).
    unsafe { core::arch::x86_64::_rdtsc() }
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
