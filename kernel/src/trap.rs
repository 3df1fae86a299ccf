//! The trap dispatcher: exceptions, interrupts, NMIs and the fatal
//! #DF/#MC, as the entry stubs (`arch::trap`) hand them over. A user page
//! fault goes to the pager, any other user exception to the exception
//! handler, both as IPC; one that no user-level handler will see is
//! reported on the console (`crash`) and stops the thread. A kernel fault
//! is reported the same way and stops the kernel cleanly: never a silent
//! triple fault.

use crate::arch::trap::TrapFrame;
use crate::arch::{apic, cpu, serial};
use crate::crash::{print, Report, GENERAL_PROTECTION, INVALID_OPCODE, PAGE_FAULT};
use crate::dispatch::schedule_and_resume;
use crate::thread::{with_kernel, Kernel, State};
use crate::types::Slot;
use crate::{ipc, irq, kprintln, timer};
use core::sync::atomic::{AtomicU64, Ordering};

/// Entered from the exception and interrupt stubs. From ring 3 the frame
/// is the current thread's (in its TCB) and this never returns; from ring 0
/// (the idle loop) it handles interrupts and returns.
#[no_mangle]
extern "C" fn trap_dispatch(f: &mut TrapFrame) {
    let v = f.vector;
    if v >= 32 {
        interrupt(v);
        if !f.from_user() {
            return;
        }
    } else if !f.from_user() {
        // A probe (an MSR or counter the CPU may lack: #GP, or #UD where
        // QEMU TCG does not implement rdpmc) resumes after it.
        match cpu::probe_fixup(f.rip).filter(|_| v == GENERAL_PROTECTION || v == INVALID_OPCODE) {
            Some(resume) => {
                f.rip = resume;
                return;
            }
            None => {
                // The test kernel's ring-0 tests fault on purpose.
                #[cfg(feature = "ktest")]
                if let Some(resume) = crate::ktest::expected_fault(f, cpu::cr2()) {
                    f.rip = resume;
                    return;
                }
                kernel_fault(f)
            }
        }
    }
    with_kernel(|kk| {
        let Some(cur) = kk.current else { return };
        if v < 32 {
            user_exception(kk, cur, f.vector, f.error);
        }
        if kk.tcbs[cur].state != State::Free {
            timer::account(kk, cur);
        }
    });
    schedule_and_resume()
}

fn interrupt(v: u64) {
    with_kernel(|kk| match v as u8 {
        apic::TIMER_VECTOR => {
            apic::eoi();
            timer::fired();
            timer::tick(kk);
        }
        apic::SPURIOUS_VECTOR => {}
        apic::ERROR_VECTOR => apic::eoi(),
        x if (apic::IRQ_BASE..apic::IRQ_BASE + 16).contains(&x) => irq::interrupt(kk, (x - apic::IRQ_BASE) as u32),
        _ => apic::eoi(),
    })
}

fn user_exception(kk: &mut Kernel, cur: Slot, vector: u64, error: u64) {
    let cr2 = cpu::cr2();
    if vector == 7 {
        return fpu_switch(kk, cur);
    }
    // A page fault from ring 3 whose error code says supervisor access
    // (U/S clear) is one the CPU made on the thread's behalf: QEMU TCG with
    // SMAP on pops an `iretq` frame that way (hardware pops it as a user
    // access). No pager can resolve it, since the page is mapped for the
    // user, so it goes to the exception handler instead of looping
    // through the pager.
    if vector == PAGE_FAULT && error & 4 != 0 {
        ipc::page_fault(kk, cur, cr2, error);
    } else if vector == PAGE_FAULT {
        ipc::exception(kk, cur, vector, error, cr2);
    } else {
        ipc::exception(kk, cur, vector, error, 0);
    }
}

/// #NM: the thread touched the FPU while another thread's state is loaded.
fn fpu_switch(kk: &mut Kernel, cur: Slot) {
    cpu::set_fpu_trap(false);
    if let Some(owner) = kk.fpu_owner {
        cpu::fxsave(&mut kk.tcbs[owner].fpu.0);
    }
    if kk.tcbs[cur].fpu_used {
        cpu::fxrstor(&kk.tcbs[cur].fpu.0);
    } else {
        cpu::fpu_init();
        kk.tcbs[cur].fpu_used = true;
    }
    kk.fpu_owner = Some(cur);
}

/// `exit_to_user` met a non-canonical user RIP, which no frame may hold
/// (see `exit_to_user` in trap.rs): stop before returning through it.
#[no_mangle]
extern "C" fn noncanonical_return(f: &TrapFrame) -> ! {
    serial::break_lock();
    kprintln!("*** kernel bug: refusing to resume a thread at non-canonical rip {:#x}", f.rip);
    kprintln!("*** kernel stopped.");
    cpu::halt_forever()
}

/// What the NMI handler saw: how many NMIs, and where the last one hit.
/// (The test kernel maps this page into a test thread, read-only, so the
/// page holds nothing else there.)
#[cfg_attr(feature = "ktest", repr(C, align(4096)))]
#[cfg_attr(not(feature = "ktest"), repr(C))]
pub struct NmiLog {
    pub count: AtomicU64,
    pub rip: AtomicU64,
    pub cs: AtomicU64,
    /// Where the handler's register frame was saved (on the NMI IST stack).
    pub frame: AtomicU64,
}

pub static NMI_LOG: NmiLog =
    NmiLog { count: AtomicU64::new(0), rip: AtomicU64::new(0), cs: AtomicU64::new(0), frame: AtomicU64::new(0) };

/// Entered from the NMI stub on its IST stack, in whatever mode the NMI
/// hit (also inside the kernel, with any lock held, or between `syscall`
/// and its stack switch): it takes no lock, touches no kernel state but
/// its log, and returns to where the NMI hit. No NMI source is armed by
/// the kernel; an NMI (a watchdog, a hardware error line) is counted.
#[no_mangle]
extern "C" fn nmi_dispatch(f: &TrapFrame) {
    NMI_LOG.rip.store(f.rip, Ordering::Relaxed);
    NMI_LOG.cs.store(f.cs, Ordering::Relaxed);
    NMI_LOG.frame.store(f as *const TrapFrame as u64, Ordering::Relaxed);
    NMI_LOG.count.fetch_add(1, Ordering::Release);
}

/// Entered from the #DF and #MC stubs on their IST stacks: report, stop.
#[no_mangle]
extern "C" fn fatal_dispatch(f: &TrapFrame) -> ! {
    kernel_fault(f)
}

fn kernel_fault(f: &TrapFrame) -> ! {
    let r = Report { vector: f.vector, error: f.error, rip: f.rip, cr2: cpu::cr2(), user: f.from_user() };
    // The fault may have hit while the console lock was held.
    serial::break_lock();
    print(f, &r);
    #[cfg(feature = "ktest")]
    if let Some(hook) = crate::crash::HOOK.get() {
        hook(&r);
    }
    kprintln!("*** kernel stopped.");
    cpu::halt_forever()
}
