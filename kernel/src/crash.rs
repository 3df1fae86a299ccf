//! Crash reports: what the console says about an exception that no
//! user-level handler will see, or a kernel fault (vector, name, error
//! code, RIP, CR2, mode, registers), and the test kernel's hook that
//! checks them.

use crate::arch::trap::TrapFrame;
use crate::kprintln;

pub const PAGE_FAULT: u64 = 14;
pub const GENERAL_PROTECTION: u64 = 13;
pub const INVALID_OPCODE: u64 = 6;

/// Mnemonic and name of exception `v`.
pub fn name(v: u64) -> (&'static str, &'static str) {
    match v {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point"),
        20 => ("#VE", "virtualization"),
        21 => ("#CP", "control protection"),
        _ => ("#??", "reserved"),
    }
}

/// What the report says, kept for whoever checks it (the in-guest tests).
#[derive(Clone, Copy, Debug)]
pub struct Report {
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cr2: u64,
    pub user: bool,
}

/// Called with every fault report before the fault is handled; the test
/// kernel installs a checker here (it exists only in the test kernel).
#[cfg(feature = "ktest")]
pub static HOOK: spin::Once<fn(&Report)> = spin::Once::new();

/// Prints the report of `r` with the registers of `f`.
pub fn print(f: &TrapFrame, r: &Report) {
    let (mn, name) = name(r.vector);
    let mode = if r.user { "user" } else { "kernel" };
    kprintln!("*** exception {mn} ({name}, vector {}) in {mode} mode", r.vector);
    kprintln!("    error code {:#x}  rip {:#018x}  cr2 {:#018x}", r.error, r.rip, r.cr2);
    if r.vector == PAGE_FAULT {
        let e = r.error;
        kprintln!(
            "    page fault: {} access, {}, from {} mode{}",
            if e & 16 != 0 {
                "instruction fetch"
            } else if e & 2 != 0 {
                "write"
            } else {
                "read"
            },
            if e & 1 != 0 { "protection violation" } else { "page not present" },
            if e & 4 != 0 { "user" } else { "supervisor" },
            if e & 8 != 0 { ", reserved bit set" } else { "" }
        );
    }
    kprintln!("    rsp {:#018x}  rflags {:#x}  cs {:#x}  ss {:#x}", f.rsp, f.rflags, f.cs, f.ss);
    kprintln!("    rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}", f.rax, f.rbx, f.rcx, f.rdx);
    kprintln!("    rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}", f.rsi, f.rdi, f.rbp, f.r8);
    kprintln!("    r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}", f.r9, f.r10, f.r11, f.r12);
    kprintln!("    r13 {:#018x} r14 {:#018x} r15 {:#018x}", f.r13, f.r14, f.r15);
}

/// Reports a user exception that no user-level handler will see (the IPC
/// layer calls this when it finds no pager or exception handler to take it).
pub fn report_user(f: &TrapFrame, vector: u64, error: u64, cr2: u64) {
    let r = Report { vector, error, rip: f.rip, cr2, user: true };
    print(f, &r);
    #[cfg(feature = "ktest")]
    if let Some(hook) = HOOK.get() {
        hook(&r);
    }
}
