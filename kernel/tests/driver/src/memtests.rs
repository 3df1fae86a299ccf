//! In-guest tests of recursive address spaces (kernel core II), run by the
//! test driver after the IPC tests. Test "actors" run in address spaces of
//! their own and carry out commands from the test thread (ask sigma0 for a
//! frame, read, write, map or grant a page to another actor, flush); a test
//! pager resolves their faults and logs those in the data area, so a test
//! can tell whether a mapping was still there.

use abi::ipc::{label, map_item, rights, sigma0, Fpage, Tag, Timeout};
use abi::sys::attr;
use abi::syscall::{self as sc, call, receive, send, Msg};
use abi::{Error, ThreadId};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use suite::rt::{self, same_page, spawn};
use user_rt::println;

use crate::tests::{check, me, report, Test, TestResult};

/// Where actors keep the pages they get; faults here are logged.
const DATA: u64 = 0x0000_6000_0000_0000;
const fn win(i: u64) -> u64 {
    DATA + i * 0x1000_0000
}

static ROOT: AtomicU64 = AtomicU64::new(0);
static SERVER: AtomicU64 = AtomicU64::new(0);
static TEST_PAGER: AtomicU64 = AtomicU64::new(0);

/// Fault log of the data area: (page, faults, last was a write).
static FAULT_PAGE: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static FAULT_COUNT: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static FAULT_WRITE: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

#[repr(C, align(4096))]
struct Page([u8; 4096]);
/// What a faulting data access gets instead of the page it lost (its
/// content is whatever earlier faulting writes left; tests compare with
/// their own values and look at the fault log).
static mut SCRATCH: Page = Page([0; 4096]);

fn faults_at(addr: u64) -> (u64, bool) {
    let page = addr & !0xfff;
    for i in 0..16 {
        if FAULT_PAGE[i].load(SeqCst) == page {
            return (FAULT_COUNT[i].load(SeqCst), FAULT_WRITE[i].load(SeqCst) == 1);
        }
    }
    (0, false)
}

fn log_fault(addr: u64, write: bool) {
    let page = addr & !0xfff;
    for i in 0..16 {
        let p = FAULT_PAGE[i].load(SeqCst);
        if p == page || p == 0 {
            FAULT_PAGE[i].store(page, SeqCst);
            FAULT_COUNT[i].fetch_add(1, SeqCst);
            FAULT_WRITE[i].store(write as u64, SeqCst);
            return;
        }
    }
}

/// The actors' pager: code and stacks from the driver's own space; a
/// data-area fault is logged and answered with the scratch page.
extern "C" fn test_pager() -> ! {
    rt::serve_loop(|_, m| {
        (m.tag().label() == label::PAGE_FAULT).then(|| {
            let addr = m.mr[0];
            if (DATA..DATA + (1 << 40)).contains(&addr) {
                log_fault(addr, m.mr[2] & 2 != 0);
                let s = (&raw const SCRATCH) as u64;
                Msg::new(Tag::new(0, 0, 2), &map_item(addr & !0xfff, Fpage::new(s, 12, rights::ALL), false))
            } else {
                same_page(addr)
            }
        })
    })
}

// Actor commands (labels); replies carry the result in MR1.
const OP_REQ: u64 = 1; // MR1 window: ask sigma0 for a frame there -> frame
const OP_READ: u64 = 2; // MR1 addr -> value
const OP_WRITE: u64 = 3; // MR1 addr, MR2 value
const OP_RECV_MAP: u64 = 4; // MR1 window, MR2 from: receive a map there, report to root
const OP_MAP_TO: u64 = 5; // MR1 target, MR2 addr, MR3 rights, MR4 grant
const OP_UNMAP: u64 = 6; // MR1 addr, MR2 revoke, MR3 include self -> count
const OP_IO: u64 = 7; // MR1 port: `in` from it (exception if not allowed)
const OP_RECV_IO: u64 = 8; // receive an I/O map from the root
const OP_SERIAL: u64 = 9; // print a line through COM1 ports (user-level driver)
const OP_REQ_FRAME: u64 = 10; // MR1 frame, MR2 window: ask sigma0 for that frame -> reply label
const OP_UTCB: u64 = 11; // -> the actor's UTCB address

fn root() -> ThreadId {
    ThreadId(ROOT.load(SeqCst))
}

fn read(addr: u64) -> u64 {
    // SAFETY: a data-area address; a missing page is resolved by the pager.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn serial_line(s: &str) {
    for &b in s.as_bytes().iter().chain(b"\r\n") {
        // SAFETY: COM1 ports were mapped to this space by the test; the
        // line status register tells when the transmitter is free.
        unsafe {
            loop {
                let lsr: u8;
                core::arch::asm!("in al, dx", out("al") lsr, in("dx") 0x3fdu16, options(nostack, nomem));
                if lsr & 0x20 != 0 {
                    break;
                }
            }
            core::arch::asm!("out dx, al", in("dx") 0x3f8u16, in("al") b, options(nostack, nomem));
        }
    }
}

extern "C" fn actor() -> ! {
    loop {
        let Ok((_, m)) = receive(root(), Timeout::NEVER) else { continue };
        let a = m.mr;
        let r = match m.tag().label() {
            OP_REQ => {
                sc::utcb().br[0] = Fpage::new(a[0], 12, rights::ALL).0;
                match call(ThreadId(SERVER.load(SeqCst)), &Msg::new(Tag::new(sigma0::GET_ANY, 1, 0), &[0])) {
                    Ok(r) if r.tag().label() == 0 => r.mr[0],
                    _ => 0,
                }
            }
            OP_READ => read(a[0]),
            OP_WRITE => {
                // SAFETY: as for `read`.
                unsafe { core::ptr::write_volatile(a[0] as *mut u64, a[1]) };
                0
            }
            OP_RECV_MAP => {
                // Window 0 stands for the whole address space.
                sc::utcb().br[0] = if a[0] == 0 { Fpage::COMPLETE.0 } else { Fpage::new(a[0], 12, rights::ALL).0 };
                let ok = receive(ThreadId(a[1]), Timeout::NEVER).is_ok();
                let _ = send(root(), &Msg::new(Tag::new(0, 1, 0), &[ok as u64]), Timeout::NEVER);
                continue;
            }
            OP_MAP_TO => {
                let it = map_item(a[1], Fpage::new(a[1], 12, a[2]), a[3] != 0);
                send(ThreadId(a[0]), &Msg::new(Tag::new(0, 0, 2), &it), Timeout::NEVER).is_ok() as u64
            }
            OP_UNMAP => sc::unmap(Fpage::new(a[0], 12, a[1]), a[2] != 0).unwrap_or(u64::MAX),
            OP_REQ_FRAME => {
                sc::utcb().br[0] = Fpage::new(a[1], 12, rights::ALL).0;
                let r = call(ThreadId(SERVER.load(SeqCst)), &Msg::new(Tag::new(sigma0::GET_FRAME, 1, 0), &[a[0]]));
                r.map(|r| r.tag().label()).unwrap_or(u64::MAX)
            }
            OP_IO => {
                let v: u8;
                // SAFETY: reading an I/O port; without the permission this
                // raises #GP, which the test's exception handler skips (1 byte).
                unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") a[0] as u16, options(nostack, nomem)) };
                v as u64
            }
            OP_RECV_IO => {
                sc::utcb().br[0] = Fpage::COMPLETE.0;
                receive(root(), Timeout::NEVER).is_ok() as u64
            }
            OP_UTCB => sc::utcb() as *const abi::ipc::Utcb as u64,
            OP_SERIAL => {
                serial_line("user-level serial driver: hello through I/O ports the root task granted");
                1
            }
            _ => u64::MAX,
        };
        let _ = send(root(), &Msg::new(Tag::new(0, 1, 0), &[r]), Timeout::NEVER);
    }
}

fn new_actor() -> Result<ThreadId, &'static str> {
    let t = spawn(ThreadId::NIL, actor, 45, ThreadId(TEST_PAGER.load(SeqCst))).map_err(|_| "spawn actor")?;
    sc::thread_config(t, attr::EXCEPTION_HANDLER, me().0, 0).map_err(|_| "handler")?;
    Ok(t)
}

fn cmd(t: ThreadId, op: u64, args: &[u64]) -> Result<u64, &'static str> {
    let r = call(t, &Msg::new(Tag::new(op, args.len(), 0), args)).map_err(|_| "actor call failed")?;
    check(r.tag().label() == 0, "actor faulted")?;
    Ok(r.mr[0])
}

/// `from` maps (or grants) its page `addr` to `to` at `window`.
fn map(from: ThreadId, to: ThreadId, addr: u64, window: u64, rights: u64, grant: bool) -> TestResult {
    send(to, &Msg::new(Tag::new(OP_RECV_MAP, 2, 0), &[window, from.0]), Timeout::NEVER).map_err(|_| "recv cmd")?;
    check(cmd(from, OP_MAP_TO, &[to.0, addr, rights, grant as u64])? == 1, "map send failed")?;
    let (_, r) = receive(to, Timeout::NEVER).map_err(|_| "receiver report")?;
    check(r.mr[0] == 1, "receiver got no mapping")
}

fn delete(ts: &[ThreadId]) -> TestResult {
    for &t in ts {
        sc::thread_delete(t).map_err(|_| "delete")?;
    }
    Ok(())
}

fn map_grant_and_rights() -> TestResult {
    let (a, b, c, d) = (new_actor()?, new_actor()?, new_actor()?, new_actor()?);
    let f = cmd(a, OP_REQ, &[win(0)])?;
    check(f != 0, "sigma0 gave no frame")?;
    cmd(a, OP_WRITE, &[win(0), 0x1111])?;
    // Map: both see the same frame.
    map(a, b, win(0), win(1), rights::ALL, false)?;
    check(cmd(b, OP_READ, &[win(1)])? == 0x1111, "mapped page shows other data")?;
    check(faults_at(win(1)).0 == 0, "mapped page faulted")?;
    // Rights restriction: read-only map, a write faults to the pager.
    map(a, c, win(0), win(2), rights::READ, false)?;
    check(cmd(c, OP_READ, &[win(2)])? == 0x1111, "read-only map unreadable")?;
    cmd(c, OP_WRITE, &[win(2), 5])?;
    check(faults_at(win(2)) == (1, true), "write to a read-only mapping did not fault as a write")?;
    // Grant: the granter loses the page.
    map(a, d, win(0), win(3), rights::ALL, true)?;
    check(cmd(d, OP_READ, &[win(3)])? == 0x1111, "granted page shows other data")?;
    check(cmd(a, OP_READ, &[win(0)])? != 0x1111, "granter still reads the page")?;
    check(faults_at(win(0)).0 == 1, "granter's access did not fault")?;
    // Asking for that frame again is refused: each frame goes to one taker.
    let r = call(ThreadId(SERVER.load(SeqCst)), &Msg::new(Tag::new(sigma0::GET_FRAME, 1, 0), &[f]));
    check(r.is_ok_and(|r| r.tag().label() != 0), "sigma0 handed out a frame twice")?;
    delete(&[a, b, c, d])
}

fn recursive_flush_three_levels() -> TestResult {
    let (a, b, t) = (new_actor()?, new_actor()?, new_actor()?);
    let f = cmd(a, OP_REQ, &[win(4)])?;
    check(f != 0, "sigma0 gave no frame")?;
    cmd(a, OP_WRITE, &[win(4), 0x2222])?;
    map(a, b, win(4), win(5), rights::ALL, false)?;
    map(b, t, win(5), win(6), rights::ALL, false)?;
    check(cmd(t, OP_READ, &[win(6)])? == 0x2222, "third level sees other data")?;
    // A flushes what it gave away (not its own mapping).
    let n = cmd(a, OP_UNMAP, &[win(4), rights::ALL, 0])?;
    check(n == 2, "flush did not change exactly the two derived mappings")?;
    check(
        cmd(t, OP_READ, &[win(6)])? != 0x2222 && faults_at(win(6)).0 == 1,
        "mapping survived its grandparent's flush",
    )?;
    check(cmd(b, OP_READ, &[win(5)])? != 0x2222 && faults_at(win(5)).0 == 1, "mapping survived its parent's flush")?;
    check(cmd(a, OP_READ, &[win(4)])? == 0x2222 && faults_at(win(4)).0 == 0, "the flusher lost its own page")?;
    delete(&[a, b, t])
}

fn rights_reduction() -> TestResult {
    let (a, b) = (new_actor()?, new_actor()?);
    cmd(a, OP_REQ, &[win(7)])?;
    cmd(a, OP_WRITE, &[win(7), 0x3333])?;
    map(a, b, win(7), win(8), rights::ALL, false)?;
    cmd(b, OP_WRITE, &[win(8), 0x4444])?;
    check(faults_at(win(8)).0 == 0, "write before the reduction faulted")?;
    check(cmd(a, OP_UNMAP, &[win(7), rights::WRITE, 0])? == 1, "write not revoked from the derived mapping")?;
    check(cmd(b, OP_READ, &[win(8)])? == 0x4444 && faults_at(win(8)).0 == 0, "read lost after revoking write")?;
    cmd(b, OP_WRITE, &[win(8), 0x5555])?;
    check(faults_at(win(8)) == (1, true), "write after revoking write did not fault to the pager")?;
    check(cmd(a, OP_READ, &[win(7)])? == 0x4444, "the flusher's own page changed")?;
    delete(&[a, b])
}

/// UTCBs and the KIP are the kernel's pages in a user space: a map item
/// aimed at one lands nowhere (the receive succeeds, the page stays).
fn map_never_replaces_a_utcb_or_the_kip() -> TestResult {
    let (a, b) = (new_actor()?, new_actor()?);
    check(cmd(a, OP_REQ, &[win(10)])? != 0, "sigma0 gave no frame")?;
    cmd(a, OP_WRITE, &[win(10), 0x7777])?;
    let kip_word = cmd(b, OP_READ, &[abi::KIP_VADDR])?;
    let utcb = cmd(b, OP_UTCB, &[])?;
    // The UTCB's second word is the thread's own id.
    check(cmd(b, OP_READ, &[utcb + 8])? == b.0, "the actor's UTCB does not hold its id")?;
    map(a, b, win(10), abi::KIP_VADDR, rights::ALL, false)?;
    check(cmd(b, OP_READ, &[abi::KIP_VADDR])? == kip_word, "a map item replaced the KIP")?;
    map(a, b, win(10), utcb, rights::ALL, false)?;
    check(cmd(b, OP_READ, &[utcb + 8])? == b.0, "a map item replaced a UTCB")?;
    check(cmd(b, OP_UTCB, &[])? == utcb, "the actor lost its UTCB")?;
    delete(&[a, b])
}

extern "C" fn no_pager_toucher() -> ! {
    read(DATA + 0x7777_0000);
    sc::thread_exit(0)
}

fn fault_without_pager_to_exception_handler() -> TestResult {
    let t = sc::thread_create(me(), rt::utcb_addr(), ThreadId::NIL).map_err(|_| "create")?;
    sc::thread_config(t, attr::EXCEPTION_HANDLER, me().0, 0).map_err(|_| "handler")?;
    sc::thread_start(t, no_pager_toucher as *const () as u64, rt::stack()).map_err(|_| "start")?;
    let (from, m) = receive(t, Timeout::NEVER).map_err(|_| "no exception IPC")?;
    check(from == t && m.tag().label() == label::EXCEPTION, "not an exception message")?;
    check(m.mr[0] == 14 && m.mr[5] == DATA + 0x7777_0000, "wrong vector or fault address")?;
    sc::thread_delete(t).map_err(|_| "delete")
}

fn io_ports_as_flexpages() -> TestResult {
    let t = new_actor()?;
    // Before: `in` faults (#GP to us, the exception handler): skip it.
    send(t, &Msg::new(Tag::new(OP_IO, 1, 0), &[0x80]), Timeout::NEVER).map_err(|_| "cmd")?;
    let (from, m) = receive(t, Timeout::NEVER).map_err(|_| "no exception")?;
    check(
        from == t && m.tag().label() == label::EXCEPTION && m.mr[0] == 13,
        "port access without permission did not #GP",
    )?;
    send(t, &Msg::new(Tag::new(0, 3, 0), &[m.mr[2] + 1, m.mr[3], m.mr[4]]), Timeout::ZERO).map_err(|_| "fixup")?;
    let (_, r) = receive(t, Timeout::NEVER).map_err(|_| "no result")?;
    check(r.tag().label() == 0, "actor did not continue")?;
    // The root task grants the driver the ports of POST (0x80) and COM1
    // (0x3f8..0x3ff), as its description says; the driver passes them on.
    for (base, log2) in [(0x80, 0), (0x3f8, 3)] {
        let fp = Fpage::io(base, log2);
        send(t, &Msg::new(Tag::new(OP_RECV_IO, 0, 0), &[]), Timeout::NEVER).map_err(|_| "cmd")?;
        check(user_rt::request_ports(base, log2), "the root task refused the ports")?;
        send(t, &Msg::new(Tag::new(0, 0, 2), &map_item(0, fp, false)), Timeout::NEVER).map_err(|_| "map ports")?;
        let (_, r) = receive(t, Timeout::NEVER).map_err(|_| "no report")?;
        check(r.mr[0] == 1, "ports not received")?;
    }
    // After: the same access works, and a user-level driver prints on COM1.
    cmd(t, OP_IO, &[0x80])?;
    check(cmd(t, OP_SERIAL, &[])? == 1, "serial driver failed")?;
    // sigma0 gives ports to the root task only; the root task only what
    // the description grants.
    sc::utcb().br[0] = Fpage::COMPLETE.0;
    let direct =
        call(ThreadId(SERVER.load(SeqCst)), &Msg::new(Tag::new(sigma0::GET_PORTS, 1, 0), &[Fpage::io(0x60, 0).0]));
    check(direct.is_ok_and(|r| r.tag().label() == sigma0::REFUSED_NOT_ALLOWED), "sigma0 gave a task ports")?;
    check(!user_rt::request_ports(0x60, 0), "the root task granted ports the description does not")?;
    delete(&[t])
}

/// Maps one page again and again into a fresh space, each time under a
/// different top-level page-table entry, until the kernel pool runs out:
/// the map must fail with OutOfMemory, and after the space is deleted the
/// kernel must work as before.
fn kernel_pool_exhaustion() -> TestResult {
    let x = new_actor()?;
    let page = (&raw const SCRATCH) as u64;
    let mut err = None;
    for i in 1..100_000u64 {
        send(x, &Msg::new(Tag::new(OP_RECV_MAP, 2, 0), &[0, me().0]), Timeout::NEVER).map_err(|_| "cmd")?;
        // A new top-level or second-level page-table slot each time, so
        // each mapping costs the kernel two or three page-table frames.
        let dst = (((i % 255) + 1) << 39) | (((i / 255) % 512) << 30);
        let it = map_item(dst, Fpage::new(page, 12, rights::READ), false);
        let r = send(x, &Msg::new(Tag::new(0, 0, 2), &it), Timeout::NEVER);
        let _ = receive(x, Timeout::NEVER);
        if let Err(e) = r {
            err = Some((e, i));
            break;
        }
    }
    let Some((e, n)) = err else { return Err("the kernel pool never ran out") };
    println!("test-driver: kernel pool ran out after {n} mappings: {e:?}");
    check(e == Error::OutOfMemory, "exhaustion gave the wrong error")?;
    delete(&[x])?;
    // Everything freed: threads, spaces and mappings work again.
    let y = new_actor()?;
    let f = cmd(y, OP_REQ, &[win(9)])?;
    cmd(y, OP_WRITE, &[win(9), 0x6666])?;
    check(f != 0 && cmd(y, OP_READ, &[win(9)])? == 0x6666, "kernel not usable after exhaustion")?;
    delete(&[y])
}

pub fn run() -> u32 {
    ROOT.store(me().0, SeqCst);
    SERVER.store(rt::sigma0().0, SeqCst);
    let tp = spawn(me(), test_pager, 50, ThreadId::NIL).expect("test pager");
    TEST_PAGER.store(tp.0, SeqCst);
    let tests: [Test; 7] = [
        ("map_grant_and_rights_restriction", map_grant_and_rights),
        ("map_never_replaces_a_utcb_or_the_kip", map_never_replaces_a_utcb_or_the_kip),
        ("recursive_flush_sigma0_a_b_task", recursive_flush_three_levels),
        ("rights_reduction_write_revoked", rights_reduction),
        ("fault_without_pager_to_exception_handler", fault_without_pager_to_exception_handler),
        ("io_ports_as_flexpages", io_ports_as_flexpages),
        ("kernel_pool_exhaustion_is_an_error", kernel_pool_exhaustion),
    ];
    report(&tests)
}
