//! Kernel entry and exit: exception stubs, the `syscall` entry, and the one
//! register frame both build on the kernel stack.
//!
//! Every entry saves the full user register state in a [`TrapFrame`] at the
//! top of the current thread's kernel stack; that frame is the thread's user
//! context (what exception IPC will send and a reply may change). Exits go
//! through `sysretq` for syscalls and `iretq` for everything else, never to
//! a non-canonical RIP (see `exit_to_user`). `swapgs` runs exactly when the
//! CPL changes.

use core::arch::global_asm;

/// Vector number recorded in the frame for `syscall` entries.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// The saved user (or interrupted kernel) state, lowest address first.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    pub const fn zero() -> TrapFrame {
        TrapFrame {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0,
            rdi: 0,
            rsi: 0,
            rdx: 0,
            rcx: 0,
            rbx: 0,
            rax: 0,
            vector: 0,
            error: 0,
            rip: 0,
            cs: 0,
            rflags: 0,
            rsp: 0,
            ss: 0,
        }
    }

    /// Message register `i` (1..=6) as passed in the IPC registers.
    pub fn mr(&self, i: usize) -> u64 {
        match i {
            1 => self.r8,
            2 => self.r9,
            3 => self.r12,
            4 => self.r13,
            5 => self.r14,
            _ => self.r15,
        }
    }

    pub fn set_mr(&mut self, i: usize, v: u64) {
        match i {
            1 => self.r8 = v,
            2 => self.r9 = v,
            3 => self.r12 = v,
            4 => self.r13 = v,
            5 => self.r14 = v,
            _ => self.r15 = v,
        }
    }

    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

// The layout the assembly below relies on, checked at compile time: the
// general registers in `SAVE_GPRS` push order (the last pushed, r15, at the
// lowest address), then what the stubs push (vector, error code), then the
// frame the CPU pushes (rip, cs, rflags, rsp, ss), in that order.
const _: () = {
    use core::mem::{offset_of, size_of};
    let gprs = [
        offset_of!(TrapFrame, r15),
        offset_of!(TrapFrame, r14),
        offset_of!(TrapFrame, r13),
        offset_of!(TrapFrame, r12),
        offset_of!(TrapFrame, r11),
        offset_of!(TrapFrame, r10),
        offset_of!(TrapFrame, r9),
        offset_of!(TrapFrame, r8),
        offset_of!(TrapFrame, rbp),
        offset_of!(TrapFrame, rdi),
        offset_of!(TrapFrame, rsi),
        offset_of!(TrapFrame, rdx),
        offset_of!(TrapFrame, rcx),
        offset_of!(TrapFrame, rbx),
        offset_of!(TrapFrame, rax),
        offset_of!(TrapFrame, vector),
        offset_of!(TrapFrame, error),
        offset_of!(TrapFrame, rip),
        offset_of!(TrapFrame, cs),
        offset_of!(TrapFrame, rflags),
        offset_of!(TrapFrame, rsp),
        offset_of!(TrapFrame, ss),
    ];
    let mut i = 0;
    while i < gprs.len() {
        assert!(gprs[i] == i * 8, "TrapFrame fields out of the order the stubs push them");
        i += 1;
    }
    assert!(size_of::<TrapFrame>() == gprs.len() * 8);
};

/// Offsets (bytes) into a [`TrapFrame`] and into the per-CPU block, as the
/// assembly names them.
mod off {
    use super::super::cpu::PerCpu;
    use super::TrapFrame;
    use core::mem::offset_of;
    pub const VECTOR: usize = offset_of!(TrapFrame, vector);
    pub const RIP: usize = offset_of!(TrapFrame, rip);
    /// From the vector slot (where RSP is once the general registers are
    /// saved or restored) to the CPU-pushed fields.
    pub const HW_RIP: usize = offset_of!(TrapFrame, rip) - VECTOR;
    pub const HW_CS: usize = offset_of!(TrapFrame, cs) - VECTOR;
    pub const HW_RFLAGS: usize = offset_of!(TrapFrame, rflags) - VECTOR;
    pub const HW_RSP: usize = offset_of!(TrapFrame, rsp) - VECTOR;
    pub const PC_FRAME_END: usize = offset_of!(PerCpu, frame_end);
    pub const PC_USER_RSP: usize = offset_of!(PerCpu, user_rsp);
    pub const PC_KSTACK: usize = offset_of!(PerCpu, kstack_top);
    pub const PC_FRAME: usize = offset_of!(PerCpu, frame);
    pub const PC_SMAP: usize = offset_of!(PerCpu, smap);
}

/// The user selectors (`gdt` order; `cpu::init_syscall` checks them).
pub const USER_SS: u64 = 0x1b;
pub const USER_CS: u64 = 0x23;

// Exception stubs for vectors 0..32, generated by assembler macros; their
// addresses land in `trap_stub_table` for the IDT setup.
global_asm!(
    r#"
    .macro SAVE_GPRS
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    .endm

    .macro RESTORE_GPRS
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    .endm

    .macro STUB n, err, common=trap_common
    .p2align 4
trap_stub_\n:
    .if \err == 0
    push $0
    .endif
    push $\n
    jmp \common
    .endm

    .text
    .irp n, 0,1,3,4,5,6,7,9,15,16,19,20,22,23,24,25,26,27,28,31
    STUB \n, 0
    .endr
    .irp n, 10,11,12,13,14,17,21,29,30
    STUB \n, 1
    .endr
    /* Interrupt vectors 32..64 (legacy IRQs, APIC timer, error, spurious). */
    .irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
    STUB \n, 0
    .endr
    /* NMI, #DF and #MC arrive on IST stacks of their own (gdt.rs), from
       any instruction: GS may be the user's or the kernel's, and no
       thread's frame is at hand. */
    STUB 2, 0, trap_nmi
    STUB 8, 1, trap_fatal
    STUB 18, 0, trap_fatal

    /* Common path. From ring 3 the CPU has switched to RSP0, which points
       at the end of the current thread's frame in its TCB, so the frame is
       saved right there; then we move to the kernel stack. */
trap_common:
    testb $3, {hw_cs}(%rsp)
    jz trap_from_kernel
    swapgs
    /* The CPU keeps the user's RFLAGS.AC on an interrupt or exception,
       and AC set in ring 0 switches SMAP off: clear it (syscall's FMASK
       does the same for syscall). */
    testb $1, %gs:{pc_smap}
    jz 1f
    clac
1:  SAVE_GPRS
    mov %rsp, %rdi
    mov %gs:{pc_kstack}, %rsp
    cld
    call trap_dispatch
    jmp exit_to_user

    /* From ring 0: only the idle loop (interrupts) and kernel bugs. */
trap_from_kernel:
    SAVE_GPRS
    mov %rsp, %rdi
    cld
    call trap_dispatch
    RESTORE_GPRS
    add ${hw_rip}, %rsp
    iretq

    /* NMI: saved and handled on its IST stack whichever mode it hit,
       without GS (no swapgs: the handler touches no per-CPU data) and
       without locks; back where it hit through iretq. AC cleared by
       popf, which (unlike clac) every CPU has. */
trap_nmi:
    SAVE_GPRS
    pushfq
    andq $~(1 << 18), (%rsp)
    popfq
    mov %rsp, %rdi
    cld
    call nmi_dispatch
    RESTORE_GPRS
    add ${hw_rip}, %rsp
    iretq

    /* #DF, #MC: reported from their IST stack; the kernel stops. */
trap_fatal:
    SAVE_GPRS
    mov %rsp, %rdi
    cld
    call fatal_dispatch
    ud2

    /* syscall: rcx = user rip, r11 = user rflags, rsp still the user's. */
    .global syscall_entry
    .p2align 4
syscall_entry:
    swapgs
    mov %rsp, %gs:{pc_user_rsp}
    mov %gs:{pc_frame_end}, %rsp
    push ${user_ss}
    push %gs:{pc_user_rsp}
    push %r11
    push ${user_cs}
    push %rcx
    push $0
    push ${syscall_vector}
    SAVE_GPRS
    mov %rsp, %rdi
    mov %gs:{pc_kstack}, %rsp
    /* No cld: SFMASK clears DF on syscall (cpu::init_syscall). */
    call syscall_dispatch

    /* Resume the current thread from its saved frame: sysret if it entered
       by syscall, iretq otherwise. Either faults in ring 0 on a
       non-canonical rip (sysretq on Intel CPUs with the user's GS and
       stack already in place, iretq after swapgs). No frame holds one:
       the only way to make one, a `syscall` in the last two bytes of the
       user half, is turned into an exception on entry (syscall.rs). So a
       non-canonical rip here is a kernel bug, and it stops the kernel
       before anything is restored. */
    .global exit_to_user
exit_to_user:
    mov %gs:{pc_frame}, %rsp
    mov {tf_rip}(%rsp), %rcx
    mov %rcx, %r11
    shl $16, %r11
    sar $16, %r11
    cmp %rcx, %r11
    jne 2f
    cmpq ${syscall_vector}, {tf_vector}(%rsp)
    jne 1f
    RESTORE_GPRS
    mov {hw_rip}(%rsp), %rcx
    mov {hw_rflags}(%rsp), %r11
    mov {hw_rsp}(%rsp), %rsp
    swapgs
    sysretq
1:  RESTORE_GPRS
    add ${hw_rip}, %rsp
    swapgs
    iretq
2:  mov %rsp, %rdi
    mov %gs:{pc_kstack}, %rsp
    call noncanonical_return

    .section .rodata
    .p2align 3
    .global trap_stub_table
trap_stub_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
    .quad trap_stub_\n
    .endr
    .text
"#,
    pc_frame_end = const off::PC_FRAME_END,
    pc_user_rsp = const off::PC_USER_RSP,
    pc_kstack = const off::PC_KSTACK,
    pc_frame = const off::PC_FRAME,
    pc_smap = const off::PC_SMAP,
    tf_rip = const off::RIP,
    tf_vector = const off::VECTOR,
    hw_rip = const off::HW_RIP,
    hw_cs = const off::HW_CS,
    hw_rflags = const off::HW_RFLAGS,
    hw_rsp = const off::HW_RSP,
    user_ss = const USER_SS,
    user_cs = const USER_CS,
    syscall_vector = const SYSCALL_VECTOR,
    options(att_syntax)
);

/// Number of IDT vectors with stubs (32 exceptions, 32 interrupt vectors).
pub const STUBS: usize = 64;

extern "C" {
    static trap_stub_table: [u64; STUBS];
    fn syscall_entry();
    fn exit_to_user() -> !;
}

/// Entry stub address for exception `vector`.
pub fn stub(vector: usize) -> u64 {
    // SAFETY: the table holds STUBS addresses laid down by the assembly above.
    unsafe { trap_stub_table[vector] }
}

pub fn syscall_entry_addr() -> u64 {
    syscall_entry as *const () as u64
}

/// Resumes the current thread (see [`super::cpu::set_current_frame`]) from
/// its saved frame.
///
/// # Safety
/// The current frame must hold user selectors, a user RIP and sanitized
/// RFLAGS, and its address space must be loaded.
pub unsafe fn resume_user() -> ! {
    // SAFETY: per the caller's contract.
    unsafe { exit_to_user() }
}
