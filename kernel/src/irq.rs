//! Interrupts as IPC: a thread attaches to a legacy interrupt line; when
//! the line fires the kernel masks it and sends an IPC from the line's
//! pseudo-thread id; the handler's reply to that id unmasks the line.
//! Pending interrupts wait in the handler's TCB until it receives.
#![deny(clippy::arithmetic_side_effects)]

use crate::arch::apic;
use crate::ipc;
use crate::thread::Kernel;
use crate::types::Slot;
use abi::ipc::label;
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const LINES: usize = 16;
/// The master-slave cascade, never a device.
const CASCADE: u32 = 2;

/// Each line's handler (a `ThreadId`; NIL: none). Atomics rather than a
/// `static mut` behind a `&'static mut` accessor: on one CPU a relaxed load
/// or store is a plain `mov`, with no `unsafe` and no `&mut` to hand out.
static HANDLERS: [AtomicU64; LINES] = [const { AtomicU64::new(ThreadId::NIL.0) }; LINES];

/// The handler of `line` (below `LINES`).
fn handler(line: usize) -> ThreadId {
    ThreadId(HANDLERS[line].load(Relaxed))
}

/// Line `line` as one a thread may attach to (`InvalidArgument` past the
/// last line, and for the cascade).
pub fn line(line: u64) -> Result<u32, Error> {
    if line >= LINES as u64 || line as u32 == CASCADE {
        return Err(Error::InvalidArgument);
    }
    Ok(line as u32)
}

/// Routes checked `line` ([`line`]) to `handler` (NIL detaches and masks
/// it; otherwise a live thread, checked by the caller).
pub fn attach(line: u32, handler: ThreadId) {
    HANDLERS[line as usize].store(handler.0, Relaxed);
    apic::pic_set_masked(line as u8, handler.is_nil());
}

/// Line `line` fired.
pub fn interrupt(kk: &mut Kernel, line: u32) {
    apic::pic_set_masked(line as u8, true);
    apic::pic_eoi(line as u8);
    let Ok(h) = kk.lookup(handler(line as usize)) else { return };
    let src = ThreadId::irq(line);
    if ipc::accepts(kk, h, src) {
        ipc::deliver_kernel_message(kk, h, src, label::IRQ, &[line as u64]);
    } else {
        kk.tcbs[h].pending_irq |= 1 << line;
    }
}

/// The handler `cur` replied to the pseudo-thread of `line`: unmask it.
pub fn ack(kk: &mut Kernel, cur: Slot, line: u32) -> Result<(), Error> {
    if line as usize >= LINES || kk.lookup(handler(line as usize)) != Ok(cur) {
        return Err(Error::NoPermission);
    }
    apic::pic_set_masked(line as u8, false);
    Ok(())
}

/// Delivers a pending interrupt matching `from` to receiver `r`.
pub fn deliver_pending(kk: &mut Kernel, r: Slot, from: ThreadId) -> bool {
    let pending = kk.tcbs[r].pending_irq;
    let bits = match from {
        ThreadId::ANY => pending,
        f => match f.as_irq() {
            Some(l) if (l as usize) < LINES => pending & (1 << l),
            _ => 0,
        },
    };
    if bits == 0 {
        return false;
    }
    let line = bits.trailing_zeros();
    kk.tcbs[r].pending_irq &= !(1 << line);
    ipc::deliver_kernel_message(kk, r, ThreadId::irq(line), label::IRQ, &[line as u64]);
    true
}
