//! The IPC state machine: send phase, receive phase, message transfer,
//! timeouts and cancellation; plus the messages the kernel sends for a
//! thread (page faults, exceptions, budget notifications, interrupts).
//!
//! A thread that cannot complete a phase blocks; the partner that later
//! completes it writes the results straight into the blocked thread's saved
//! registers, so no kernel continuation is ever kept. Every step is
//! bounded: at most one message of at most 63 words plus typed items
//! (strings capped at `MAX_STRING`, map items by the flexpage size).
#![deny(clippy::arithmetic_side_effects)]

use crate::thread::{Kernel, KernelIpc, State, MAX_THREADS, USER_FLAGS_MASK};
use crate::timer;
use crate::types::{Link, Slot};
use crate::umem::{self, Side, Xfer};
use abi::ipc::{item, label, Fpage, Tag, Timeout, MAX_MRS, REG_MRS};
use abi::{Error, ThreadId};

/// The `IPC` system call of the current thread `cur`.
pub fn sys_ipc(kk: &mut Kernel, cur: Slot) {
    let f = &kk.tcbs[cur].frame;
    let (mut to, from) = (ThreadId(f.rdi), ThreadId(f.rsi));
    let (st, rt) = Timeout::unpack(f.r10);
    kk.tcbs[cur].kipc = KernelIpc::None;
    if core::mem::take(&mut kk.tcbs[cur].restart_recv_only) {
        to = ThreadId::NIL;
    }
    ipc(kk, cur, to, from, st, rt);
}

fn set_result(kk: &mut Kernel, t: Slot, r: Result<(), Error>) {
    if kk.tcbs[t].kipc != KernelIpc::None {
        // A kernel-sent message failed: the thread cannot continue as is.
        if let Err(e) = r {
            kernel_ipc_failed(kk, t, e);
        }
        return;
    }
    kk.tcbs[t].frame.rax = match r {
        Ok(()) => 0,
        Err(e) => e.encode(),
    };
}

fn deadline(t: Timeout) -> u64 {
    match t.as_ticks() {
        None => 0,
        Some(d) => timer::now().saturating_add(d).max(1),
    }
}

/// Does receiver `r` (blocked in receive) accept a message from `s`?
pub fn accepts(kk: &Kernel, r: Slot, s: ThreadId) -> bool {
    let from = kk.tcbs[r].recv_from;
    kk.tcbs[r].state == State::RecvBlocked && (from == ThreadId::ANY || from == s)
}

/// Send to `to` (unless NIL), then receive from `from` (unless NIL).
pub fn ipc(kk: &mut Kernel, cur: Slot, to: ThreadId, from: ThreadId, st: Timeout, rt: Timeout) {
    if !to.is_nil() {
        if let Some(line) = to.as_irq() {
            // Replying to an interrupt pseudo-thread acknowledges it.
            if let Err(e) = crate::irq::ack(kk, cur, line) {
                return set_result(kk, cur, Err(e));
            }
        } else {
            let d = match kk.lookup(to) {
                Ok(d) if d != cur => d,
                Ok(_) => return set_result(kk, cur, Err(Error::InvalidArgument)),
                Err(e) => return set_result(kk, cur, Err(e)),
            };
            // The allow list binds what a thread sends, not what the kernel
            // sends for it (page faults, exceptions).
            if kk.tcbs[cur].kipc == KernelIpc::None && !crate::access::permits_send(kk, cur, d) {
                crate::access::refused_send(kk, cur);
                return set_result(kk, cur, Err(Error::NoPermission));
            }
            let me = kk.id_of(cur);
            if accepts(kk, d, me) {
                match transfer(kk, cur, d) {
                    Err(Xfer::Fault(f)) => {
                        let receiver = f.side == Side::Receiver;
                        restart_after_fault(kk, if receiver { d } else { cur }, f);
                        if receiver {
                            // The receiver left its receive to take the
                            // fault; wait for it like for any busy receiver.
                            block_sender(kk, cur, d, to, from, st, rt);
                        }
                        return;
                    }
                    r => {
                        let r = r.map_err(xfer_error);
                        finish_receive(kk, d, me, r);
                        kk.direct = Some(d);
                        if let Err(e) = r {
                            return set_result(kk, cur, Err(e));
                        }
                    }
                }
            } else if st == Timeout::ZERO {
                return set_result(kk, cur, Err(Error::Timeout));
            } else {
                block_sender(kk, cur, d, to, from, st, rt);
                return;
            }
        }
    }
    if from.is_nil() {
        set_result(kk, cur, Ok(()));
    } else {
        receive(kk, cur, from, rt);
    }
}

/// `cur` waits to send to `d` (its receive phase, if any, comes after).
fn block_sender(kk: &mut Kernel, cur: Slot, d: Slot, to: ThreadId, from: ThreadId, st: Timeout, rt: Timeout) {
    let t = &mut kk.tcbs[cur];
    t.send_to = to;
    t.recv_from = from;
    t.recv_timeout = rt;
    kk.block(cur, State::SendBlocked, deadline(st));
    enqueue_sender(kk, d, cur);
}

fn xfer_error(x: Xfer) -> Error {
    match x {
        Xfer::Failed(e) => e,
        Xfer::Fault(f) => f.into(),
    }
}

/// Thread `t` (blocked in or executing an IPC system call), one side of a
/// string copy, takes page fault `fault`: its `syscall` is rewound so that
/// the IPC runs again once its pager has mapped the page. A receiver is
/// past its send phase, so only its receive phase is run again.
fn restart_after_fault(kk: &mut Kernel, t: Slot, fault: umem::Fault) {
    kk.tcbs[t].restart_recv_only = fault.side == Side::Receiver;
    if matches!(kk.tcbs[t].state, State::SendBlocked | State::RecvBlocked) {
        cancel(kk, t);
    }
    let f = &mut kk.tcbs[t].frame;
    // `syscall` is two bytes (0f 05); rax still holds sys::IPC and every
    // argument register is as the thread left it.
    f.rip = f.rip.saturating_sub(2);
    f.error = fault.error_code();
    kk.tcbs[t].state = State::Ready;
    page_fault(kk, t, fault.addr, fault.error_code());
}

/// The receive phase of `cur`. A loop, not recursion: a sender whose
/// source page faults is sent to its pager and the receive starts over,
/// so the kernel stack does not grow with the number of such senders.
fn receive(kk: &mut Kernel, cur: Slot, from: ThreadId, rt: Timeout) {
    while let Step::Again = receive_once(kk, cur, from, rt) {}
}

/// Whether a receive is done or must start over.
enum Step {
    Done,
    Again,
}

/// One attempt of `cur`'s receive phase.
fn receive_once(kk: &mut Kernel, cur: Slot, from: ThreadId, rt: Timeout) -> Step {
    if from != ThreadId::ANY && from.as_irq().is_none() && kk.lookup(from).is_err() {
        set_result(kk, cur, Err(Error::InvalidThread));
        return Step::Done;
    }
    if crate::irq::deliver_pending(kk, cur, from) || deliver_pending_budget(kk, cur, from) {
        return Step::Done;
    }
    // A sender already waiting?
    let mut prev = Link::NONE;
    let mut s = kk.tcbs[cur].senders_head;
    while let Some(si) = s.get() {
        let sid = kk.id_of(si);
        if from == ThreadId::ANY || from == sid {
            unlink_sender(kk, cur, prev, si);
            match transfer(kk, si, cur) {
                Err(Xfer::Fault(f)) => {
                    if f.side == Side::Receiver {
                        // Our own buffer: put the sender back at the head
                        // and rewind our receive.
                        let head = kk.tcbs[cur].senders_head;
                        kk.tcbs[si].next_sender = head;
                        kk.tcbs[cur].senders_head = Link::to(si);
                        if head.is_none() {
                            kk.tcbs[cur].senders_tail = Link::to(si);
                        }
                        restart_after_fault(kk, cur, f);
                    } else {
                        // The sender's source: it retries after its fault;
                        // we go on receiving.
                        restart_after_fault(kk, si, f);
                        return Step::Again;
                    }
                }
                r => {
                    let r = r.map_err(xfer_error);
                    finish_receive(kk, cur, sid, r);
                    after_send(kk, si, r);
                }
            }
            return Step::Done;
        }
        prev = s;
        s = kk.tcbs[si].next_sender;
    }
    if rt == Timeout::ZERO {
        set_result(kk, cur, Err(Error::Timeout));
        return Step::Done;
    }
    kk.tcbs[cur].recv_from = from;
    kk.block(cur, State::RecvBlocked, deadline(rt));
    Step::Done
}

/// Sender `s` delivered its message (result `r`); it moves on to its
/// receive phase, if it has one.
fn after_send(kk: &mut Kernel, s: Slot, r: Result<(), Error>) {
    if let Err(e) = r {
        set_result(kk, s, Err(e));
        kk.make_ready(s);
        return;
    }
    let (from, rt) = (kk.tcbs[s].recv_from, kk.tcbs[s].recv_timeout);
    kk.tcbs[s].state = State::Ready;
    if from.is_nil() {
        set_result(kk, s, Ok(()));
        kk.make_ready(s);
    } else {
        receive(kk, s, from, rt);
        if kk.tcbs[s].state == State::Ready {
            kk.make_ready(s);
        }
    }
}

/// Receiver `r` got a message from `sender` (or an error).
fn finish_receive(kk: &mut Kernel, r: Slot, sender: ThreadId, res: Result<(), Error>) {
    if kk.tcbs[r].kipc != KernelIpc::None {
        match res {
            Ok(()) => finish_kernel_ipc(kk, r),
            Err(e) => kernel_ipc_failed(kk, r, e),
        }
        return;
    }
    let t = &mut kk.tcbs[r];
    t.frame.rsi = sender.0;
    t.frame.rax = match res {
        Ok(()) => 0,
        Err(e) => e.encode(),
    };
    if t.state != State::Ready {
        kk.make_ready(r);
    }
}

fn enqueue_sender(kk: &mut Kernel, d: Slot, s: Slot) {
    // Cheap half of the invariant: a thread joining a queue is not already
    // at its head or tail (a full check: `check_sender_queues`).
    debug_assert!(!kk.tcbs[d].senders_head.is(s) && !kk.tcbs[d].senders_tail.is(s));
    kk.tcbs[s].next_sender = Link::NONE;
    match kk.tcbs[d].senders_tail.get() {
        None => kk.tcbs[d].senders_head = Link::to(s),
        Some(tail) => kk.tcbs[tail].next_sender = Link::to(s),
    }
    kk.tcbs[d].senders_tail = Link::to(s);
}

fn unlink_sender(kk: &mut Kernel, d: Slot, prev: Link, s: Slot) {
    let next = kk.tcbs[s].next_sender;
    match prev.get() {
        None => kk.tcbs[d].senders_head = next,
        Some(p) => kk.tcbs[p].next_sender = next,
    }
    if kk.tcbs[d].senders_tail.is(s) {
        kk.tcbs[d].senders_tail = prev;
    }
    kk.tcbs[s].next_sender = Link::NONE;
}

/// Takes blocked thread `t` out of its IPC (timeout, deletion, restart).
pub fn cancel(kk: &mut Kernel, t: Slot) {
    if kk.tcbs[t].state == State::SendBlocked {
        if let Ok(d) = kk.lookup(kk.tcbs[t].send_to) {
            let mut prev = Link::NONE;
            let mut s = kk.tcbs[d].senders_head;
            while let Some(si) = s.get() {
                if si == t {
                    unlink_sender(kk, d, prev, t);
                    break;
                }
                prev = s;
                s = kk.tcbs[si].next_sender;
            }
        }
    }
    kk.tcbs[t].wake_at = 0;
}

/// Blocked thread `t` (already out of any sender queue) leaves its IPC
/// with error `e`. A user IPC returns `e`; a kernel-sent message fails over
/// (a page fault to the exception handler, an exception to a stop), which
/// may block `t` again in a new IPC: it is made ready only if it is not.
fn fail_blocked(kk: &mut Kernel, t: Slot, e: Error) {
    kk.tcbs[t].state = State::Ready;
    kk.tcbs[t].wake_at = 0;
    set_result(kk, t, Err(e));
    if kk.tcbs[t].state == State::Ready {
        kk.make_ready(t);
    }
}

/// Thread `dead` goes away: senders queued on it and receivers waiting for
/// it fail with `Aborted`. A failed kernel message may be re-sent to
/// `dead` (as the exception handler), so the sender queue is drained again
/// after each receiver; `dead` accepts no message meanwhile.
pub fn abort_waiters(kk: &mut Kernel, dead: Slot) {
    kk.tcbs[dead].state = State::Inactive;
    abort_senders(kk, dead);
    let id = kk.id_of(dead);
    for r in Slot::threads() {
        if kk.tcbs[r].state == State::RecvBlocked && kk.tcbs[r].recv_from == id {
            fail_blocked(kk, r, Error::Aborted);
            abort_senders(kk, dead);
        }
    }
    #[cfg(debug_assertions)]
    check_sender_queues(kk).expect("sender queues");
}

fn abort_senders(kk: &mut Kernel, dead: Slot) {
    while let Some(s) = kk.tcbs[dead].senders_head.get() {
        unlink_sender(kk, dead, Link::NONE, s);
        fail_blocked(kk, s, Error::Aborted);
    }
}

/// A blocked thread's timeout expired.
pub fn timeout(kk: &mut Kernel, t: Slot) {
    cancel(kk, t);
    fail_blocked(kk, t, Error::Timeout);
}

/// Checks that every thread blocked in a send is in exactly one sender
/// queue, that of the live thread it sends to, and that every queue is a
/// finite list of such threads ending at its tail. O(threads).
pub fn check_sender_queues(kk: &Kernel) -> Result<(), &'static str> {
    let mut seen = [false; MAX_THREADS];
    for d in Slot::threads() {
        let (mut s, mut last) = (kk.tcbs[d].senders_head, Link::NONE);
        if kk.tcbs[d].state == State::Free && s.is_some() {
            return Err("a free thread has senders");
        }
        while let Some(si) = s.get() {
            let t = &kk.tcbs[si];
            if core::mem::replace(&mut seen[si.index()], true) {
                return Err("a thread is queued twice");
            }
            if t.state != State::SendBlocked || t.send_to != kk.id_of(d) {
                return Err("a queued thread does not send to the queue's owner");
            }
            (last, s) = (s, t.next_sender);
        }
        if kk.tcbs[d].senders_tail != last {
            return Err("a sender queue's tail is not its last element");
        }
    }
    match Slot::threads().find(|&t| kk.tcbs[t].state == State::SendBlocked && !seen[t.index()]) {
        Some(_) => Err("a thread blocked in a send is in no sender queue"),
        None => Ok(()),
    }
}

/// Message register `i` of sender `s`.
fn mr_get(kk: &Kernel, s: Slot, i: usize) -> u64 {
    let t = &kk.tcbs[s];
    if t.kipc != KernelIpc::None {
        t.kmsg[i]
    } else if i == 0 {
        t.frame.rdx
    } else if i <= REG_MRS {
        t.frame.mr(i)
    } else {
        kk.utcb(s).mr[i]
    }
}

/// The message-register indices of the typed items of a checked tag
/// (`words() < MAX_MRS`, an even number of typed words): each item's two
/// words, after the untyped ones.
fn items(tag: Tag) -> impl Iterator<Item = (usize, usize)> {
    // Below MAX_MRS (checked before any transfer): no index saturates.
    let first = tag.untyped().saturating_add(1);
    (first..=tag.words()).step_by(2).map(|i| (i, i.saturating_add(1)))
}

/// Copies the message of `s` to `r`: tag, untyped words, typed items.
fn transfer(kk: &mut Kernel, s: Slot, r: Slot) -> Result<(), Xfer> {
    let tag = Tag(mr_get(kk, s, 0));
    let n = tag.words();
    if n >= MAX_MRS || !tag.typed().is_multiple_of(2) {
        return Err(Error::MessageOverflow.into());
    }
    if kk.tcbs[r].kipc != KernelIpc::None {
        // A reply to a kernel-sent message: the kernel consumes it.
        return Ok(consume_kernel_reply(kk, s, r, tag)?);
    }
    let kernel = kk.tcbs[s].kipc != KernelIpc::None;
    if tag.typed() == 0 && (!kernel || n < kk.tcbs[s].kmsg.len()) {
        copy_untyped(kk, s, r, tag, kernel);
        return Ok(());
    }
    if let Some(r) = one_map_item(kk, s, r, tag) {
        return r;
    }
    let mut words = [0u64; MAX_MRS];
    for (i, w) in words[..=n].iter_mut().enumerate() {
        *w = mr_get(kk, s, i);
    }
    for (it, it1) in items(tag) {
        let (w0, w1) = (words[it], words[it1]);
        match w0 & item::KIND_MASK {
            item::MAP | item::GRANT => {
                let window = Fpage(kk.utcb(r).br[0]);
                crate::mapping::map_item(kk, s, r, w0, Fpage(w1), window)?;
            }
            item::STRING => {
                let (addr, len) = crate::mapping::string_item(kk, s, r, w1, w0 >> 32)?;
                words[it] = (len << 32) | item::STRING;
                words[it1] = addr;
            }
            _ => return Err(Error::InvalidArgument.into()),
        }
    }
    let rt = &mut kk.tcbs[r].frame;
    rt.rdx = tag.0;
    for (i, &w) in (1..=n.min(REG_MRS)).zip(&words[1..]) {
        rt.set_mr(i, w);
    }
    if n > REG_MRS {
        let u = kk.utcb_mut(r);
        u.mr[REG_MRS + 1..=n].copy_from_slice(&words[REG_MRS + 1..=n]);
    }
    Ok(())
}

/// The common typed message, one map or grant item and no untyped word
/// (a pager's reply, a map by IPC), without the general loop's 64-word
/// array: the same calls and the same receiver registers (tag, then the
/// item's two words, which a map item leaves as they were). `None` for
/// every other message.
#[inline(always)]
fn one_map_item(kk: &mut Kernel, s: Slot, r: Slot, tag: Tag) -> Option<Result<(), Xfer>> {
    if tag.typed() != 2 || tag.untyped() != 0 {
        return None;
    }
    let (w0, w1) = (mr_get(kk, s, 1), mr_get(kk, s, 2));
    if !matches!(w0 & item::KIND_MASK, item::MAP | item::GRANT) {
        return None;
    }
    let window = Fpage(kk.utcb(r).br[0]);
    if let Err(e) = crate::mapping::map_item(kk, s, r, w0, Fpage(w1), window) {
        return Some(Err(e.into()));
    }
    let rt = &mut kk.tcbs[r].frame;
    rt.rdx = tag.0;
    (rt.r8, rt.r9) = (w0, w1);
    Some(Ok(()))
}

/// Copies the `tag.untyped()` words of an untyped message from `s` to
/// `r` (the general path and the fast path): the registers, then one copy
/// into the receiver's UTCB; a kernel message (page fault, exception) goes
/// from the sender's `kmsg` straight there. Exactly the words sent: the
/// receiver's other registers keep their values. `kernel`: `s` sends a
/// kernel message (`kipc` not `None`), whose words are in `kmsg`.
#[inline(always)]
pub fn copy_untyped(kk: &mut Kernel, s: Slot, r: Slot, tag: Tag, kernel: bool) {
    let n = tag.untyped();
    let st = &kk.tcbs[s];
    let (sf, km) = (&st.frame, &st.kmsg);
    let regs = if kernel {
        [km[1], km[2], km[3], km[4], km[5], km[6]]
    } else {
        [sf.r8, sf.r9, sf.r12, sf.r13, sf.r14, sf.r15]
    };
    let rf = &mut kk.tcbs[r].frame;
    rf.rdx = tag.0;
    let [w1, w2, w3, w4, w5, w6] = regs;
    // Straight-line code per count (a jump table, no test per word).
    match n {
        0 => {}
        1 => rf.r8 = w1,
        2 => (rf.r8, rf.r9) = (w1, w2),
        3 => (rf.r8, rf.r9, rf.r12) = (w1, w2, w3),
        4 => (rf.r8, rf.r9, rf.r12, rf.r13) = (w1, w2, w3, w4),
        5 => (rf.r8, rf.r9, rf.r12, rf.r13, rf.r14) = (w1, w2, w3, w4, w5),
        _ => (rf.r8, rf.r9, rf.r12, rf.r13, rf.r14, rf.r15) = (w1, w2, w3, w4, w5, w6),
    }
    if n > REG_MRS {
        // Words REG_MRS + 1..=n (n < MAX_MRS: no wrap), as a `Range`, whose
        // indexing inlines (a `RangeInclusive`'s is a call).
        let end = n.wrapping_add(1);
        if let Some((src, ru)) = kk.message_pair(s, r, kernel) {
            copy_words(&mut ru.mr[REG_MRS + 1..end], &src[REG_MRS + 1..end]);
        }
    }
}

/// `dst.copy_from_slice(src)` as one `rep movsq`: a word per instruction,
/// where the general `memcpy` spends about 1.3 (the 60-word IPC copies 54).
#[inline(always)]
fn copy_words(dst: &mut [u64], src: &[u64]) {
    let len = dst.len().min(src.len());
    // SAFETY: both slices are valid for `len` words and do not overlap
    // (one is borrowed mutably); DF is clear in the kernel (SFMASK clears
    // it on `syscall`, the other entries do `cld`). Kernel memory only:
    // UTCBs and `kmsg` are reached through the direct map, so SMAP is not
    // involved.
    unsafe {
        core::arch::asm!(
            "rep movsq",
            inout("rcx") len => _,
            inout("rsi") src.as_ptr() => _,
            inout("rdi") dst.as_mut_ptr() => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Handles the reply a pager or exception handler sent to thread `r`.
fn consume_kernel_reply(kk: &mut Kernel, s: Slot, r: Slot, tag: Tag) -> Result<(), Error> {
    match kk.tcbs[r].kipc {
        KernelIpc::PageFault { addr, write, exec, .. } => {
            let mut last = None;
            for (it, it1) in items(tag) {
                let (w0, w1) = (mr_get(kk, s, it), mr_get(kk, s, it1));
                if matches!(w0 & item::KIND_MASK, item::MAP | item::GRANT) {
                    last = crate::mapping::map_item(kk, s, r, w0, Fpage(w1), Fpage::COMPLETE)?;
                }
            }
            // One item whose last page is the faulting one, with its access:
            // the page tables hold exactly that (`finish_kernel_ipc` need
            // not walk them again).
            let resolved = tag.typed() == 2
                && last.is_some_and(|(v, rights): (u64, crate::mapdb::Rights)| {
                    v == addr & !0xfff
                        && (!write || rights.contains(crate::mapdb::Rights::WRITE))
                        && (!exec || rights.contains(crate::mapdb::Rights::EXEC))
                });
            kk.tcbs[r].kipc = KernelIpc::PageFault { addr, write, exec, resolved };
            Ok(())
        }
        KernelIpc::Exception { .. } => {
            if tag.label() != 0 || tag.untyped() < 3 {
                // No fix-up: the thread stays stopped.
                return Ok(());
            }
            let (ip, sp, fl) = (mr_get(kk, s, 1), mr_get(kk, s, 2), mr_get(kk, s, 3));
            if ip >= abi::USER_END || sp >= abi::USER_END {
                return Err(Error::InvalidArgument);
            }
            let f = &mut kk.tcbs[r].frame;
            f.rip = ip;
            f.rsp = sp;
            f.rflags = (fl & USER_FLAGS_MASK) | crate::thread::USER_RFLAGS;
            // Resume through iretq: rcx/r11 are live user registers here.
            f.vector = 0;
            kk.tcbs[r].kipc = KernelIpc::Exception { resume: true };
            Ok(())
        }
        KernelIpc::None => Ok(()),
    }
}

/// The kernel-sent IPC of `t` completed: resume it (or leave it stopped).
fn finish_kernel_ipc(kk: &mut Kernel, t: Slot) {
    let kind = kk.tcbs[t].kipc;
    kk.tcbs[t].kipc = KernelIpc::None;
    match kind {
        KernelIpc::PageFault { addr, write, exec, resolved } => {
            // Resolved only if the page is now mapped with the access that
            // faulted; otherwise the exception handler gets it.
            let ok = resolved
                || kk
                    .space_of(t)
                    .zip(crate::types::VirtAddr::user(addr))
                    .and_then(|(s, v)| s.translate(v))
                    .is_some_and(|m| m.user && (!write || m.writable) && (!exec || m.executable));
            if ok {
                kk.make_ready(t);
            } else {
                exception(kk, t, 14, kk.tcbs[t].frame.error, addr);
            }
        }
        KernelIpc::Exception { resume } => {
            if resume {
                kk.make_ready(t);
            } else {
                stop(kk, t, "exception handler declined to resume it");
            }
        }
        KernelIpc::None => {}
    }
}

fn kernel_ipc_failed(kk: &mut Kernel, t: Slot, e: Error) {
    let kind = kk.tcbs[t].kipc;
    kk.tcbs[t].kipc = KernelIpc::None;
    match kind {
        KernelIpc::PageFault { addr, .. } => exception(kk, t, 14, kk.tcbs[t].frame.error, addr),
        _ => {
            crate::kprintln!("thread {:#x}: exception IPC failed ({e:?})", kk.id_of(t).0);
            stop(kk, t, "exception IPC failed");
        }
    }
}

fn stop(kk: &mut Kernel, t: Slot, why: &str) {
    crate::kprintln!("thread {:#x} stopped: {why}", kk.id_of(t).0);
    kk.block(t, State::Stopped, 0);
}

/// A user page fault in thread `t`: IPC to its pager, or the exception
/// handler when it has none.
pub fn page_fault(kk: &mut Kernel, t: Slot, addr: u64, error: u64) {
    // sigma0 owns usable RAM idempotently; its first touch maps the page.
    if crate::mapping::sigma0_fault(kk, t, addr, error) {
        return;
    }
    let pager = kk.tcbs[t].pager;
    if pager.is_nil() || addr >= abi::USER_END || kk.lookup(pager).is_err() {
        return exception(kk, t, 14, error, addr);
    }
    let write = error & 2 != 0;
    let exec = error & 16 != 0;
    let access = 4 | if write { 2 } else { 0 } | if exec { 1 } else { 0 };
    let tc = &mut kk.tcbs[t];
    tc.kipc = KernelIpc::PageFault { addr, write, exec, resolved: false };
    tc.kmsg[..4].copy_from_slice(&[Tag::new(label::PAGE_FAULT, 3, 0).0, addr, tc.frame.rip, access]);
    ipc(kk, t, pager, pager, Timeout::NEVER, Timeout::NEVER);
}

/// The general registers an exception message carries.
const EXCEPTION_REGS: usize = 15;

/// A CPU exception in user thread `t` (not a resolvable page fault): IPC to
/// its exception handler with the register state; stopped without one.
pub fn exception(kk: &mut Kernel, t: Slot, vector: u64, error: u64, cr2: u64) {
    let h = kk.tcbs[t].exc_handler;
    if h.is_nil() || kk.lookup(h).is_err() {
        crate::crash::report_user(&kk.tcbs[t].frame, vector, error, cr2);
        return stop(kk, t, "unhandled exception (no exception handler)");
    }
    let tc = &mut kk.tcbs[t];
    let f = tc.frame;
    let regs: [u64; EXCEPTION_REGS] =
        [f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15];
    tc.kipc = KernelIpc::Exception { resume: false };
    tc.kmsg[0] = Tag::new(label::EXCEPTION, 6 + EXCEPTION_REGS, 0).0;
    tc.kmsg[1..7].copy_from_slice(&[vector, error, f.rip, f.rsp, f.rflags, cr2]);
    tc.kmsg[7..7 + EXCEPTION_REGS].copy_from_slice(&regs);
    ipc(kk, t, h, h, Timeout::NEVER, Timeout::NEVER);
}

/// Delivers a kernel message (no reply expected) to `r` from `sender`:
/// registers only, `words` = MR1.. .
pub fn deliver_kernel_message(kk: &mut Kernel, r: Slot, sender: ThreadId, lbl: u64, words: &[u64]) {
    let f = &mut kk.tcbs[r].frame;
    f.rdx = Tag::new(lbl, words.len(), 0).0;
    for (i, &w) in (1..=REG_MRS).zip(words) {
        f.set_mr(i, w);
    }
    f.rsi = sender.0;
    f.rax = 0;
    if kk.tcbs[r].state != State::Ready {
        kk.make_ready(r);
    }
}

/// Thread `t` used up its budget: notify its exception handler (now if it
/// waits for it, else at its next receive).
pub fn notify_budget(kk: &mut Kernel, t: Slot) {
    let Ok(h) = kk.lookup(kk.tcbs[t].exc_handler) else { return };
    let tid = kk.id_of(t);
    if accepts(kk, h, tid) {
        let tc = &kk.tcbs[t];
        let words = [tc.budget, tc.period, tc.next_replenish];
        deliver_kernel_message(kk, h, tid, label::BUDGET, &words);
    } else {
        kk.tcbs[h].pending_budget |= t.bit();
    }
}

fn deliver_pending_budget(kk: &mut Kernel, r: Slot, from: ThreadId) -> bool {
    let pending = kk.tcbs[r].pending_budget;
    if pending == 0 {
        return false;
    }
    for t in Slot::all() {
        if pending & t.bit() == 0 {
            continue;
        }
        let tid = kk.id_of(t);
        if from != ThreadId::ANY && from != tid {
            continue;
        }
        kk.tcbs[r].pending_budget &= !t.bit();
        let tc = &kk.tcbs[t];
        let words = [tc.budget, tc.period, tc.next_replenish];
        deliver_kernel_message(kk, r, tid, label::BUDGET, &words);
        return true;
    }
    false
}
