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

pub const LINES: usize = 16;
/// The master-slave cascade, never a device.
const CASCADE: u32 = 2;

static mut HANDLERS: [ThreadId; LINES] = [ThreadId::NIL; LINES];

fn handlers() -> &'static mut [ThreadId; LINES] {
    let p = &raw mut HANDLERS;
    // SAFETY: kernel context only, single CPU.
    unsafe { &mut *p }
}

/// Routes `line` to `handler` (NIL detaches and masks it).
pub fn attach(kk: &mut Kernel, line: u64, handler: ThreadId) -> Result<(), Error> {
    if line >= LINES as u64 || line as u32 == CASCADE {
        return Err(Error::InvalidArgument);
    }
    if !handler.is_nil() {
        kk.lookup(handler)?;
    }
    handlers()[line as usize] = handler;
    apic::pic_set_masked(line as u8, handler.is_nil());
    Ok(())
}

/// Line `line` fired.
pub fn interrupt(kk: &mut Kernel, line: u32) {
    apic::pic_set_masked(line as u8, true);
    apic::pic_eoi(line as u8);
    let Ok(h) = kk.lookup(handlers()[line as usize]) else { return };
    let src = ThreadId::irq(line);
    if ipc::accepts(kk, h, src) {
        ipc::deliver_kernel_message(kk, h, src, label::IRQ, &[line as u64]);
    } else {
        kk.tcbs[h].pending_irq |= 1 << line;
    }
}

/// The handler `cur` replied to the pseudo-thread of `line`: unmask it.
pub fn ack(kk: &mut Kernel, cur: Slot, line: u32) -> Result<(), Error> {
    if line as usize >= LINES || kk.lookup(handlers()[line as usize]) != Ok(cur) {
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
