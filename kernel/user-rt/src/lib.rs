//! Minimal ring-3 runtime for boot modules: the `_start` entry point, a
//! panic handler, `print!`/`println!` through the kernel debug console, a
//! task's view of its own entry in the system description, and starting
//! threads of its own ([`thread::NewThread`]).
//!
//! A module names its main function with [`entry!`]; `_start` aligns the
//! stack, calls it and, when it returns, tells the root task that the task
//! ended (status 0) and ends the thread. A panic ends it with status -1.
//! Tasks the root task started read their description with [`info`].
#![no_std]

pub use abi;
use core::fmt::{self, Write};

pub mod test;
#[cfg(target_os = "none")]
pub mod thread;
#[cfg(target_os = "none")]
pub mod ts;

/// Declares the module's main function.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        extern "C" fn __user_main() {
            let f: fn() = $main;
            f()
        }
    };
}

#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".global _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    start = sym start,
);

#[cfg(target_os = "none")]
extern "C" {
    fn __user_main();
    static __ehdr_start: u8;
}

/// Runs the task: its memory first (see [`prefault`]), then its main
/// function, then the end of the task.
#[cfg(target_os = "none")]
extern "C" fn start() -> ! {
    if info().is_some_and(|i| i.role != abi::ipc::root::Role::Ts) {
        prefault();
    }
    // SAFETY: `entry!` defines `__user_main` as a plain Rust function.
    unsafe { __user_main() };
    exit(0)
}

/// Touches every page of the task's image, stack and heap once, so that
/// its pager maps all of it now: a task that is not time-sharing takes no
/// page fault after this (its pager backs everything before it starts; an
/// RT task's jobs never fault). Time-sharing tasks are demand paged.
#[cfg(target_os = "none")]
pub fn prefault() {
    for r in memory() {
        for p in ((r.start & !0xfff)..r.end).step_by(4096) {
            // SAFETY: a read of a page of the task's own memory (a loaded
            // segment of its image, or the stack and heap its description
            // declares); the pager maps it with the rights it backs it with.
            unsafe { core::ptr::read_volatile(p as *const u8) };
        }
    }
}

/// The task's memory as its description and image lay it out: each
/// loadable segment of its image (from its own program headers; the
/// first loadable segment holds the ELF header, as the linker lays it
/// out), then its stack and its heap (empty without a description).
#[cfg(target_os = "none")]
pub fn memory() -> impl Iterator<Item = core::ops::Range<u64>> {
    let ehdr = (&raw const __ehdr_start) as u64;
    // SAFETY: reads of the ELF header and program headers, which the
    // linker placed in the first loaded segment (`__ehdr_start`).
    let (phoff, phentsize, phnum) = unsafe {
        (
            core::ptr::read_volatile((ehdr + 32) as *const u64),
            core::ptr::read_volatile((ehdr + 54) as *const u16) as u64,
            core::ptr::read_volatile((ehdr + 56) as *const u16) as u64,
        )
    };
    let segments = (0..phnum).filter_map(move |n| {
        let ph = ehdr + phoff + n * phentsize;
        // SAFETY: as above, inside the program header table.
        let (ty, vaddr, memsz) = unsafe {
            (
                core::ptr::read_volatile(ph as *const u32),
                core::ptr::read_volatile((ph + 16) as *const u64),
                core::ptr::read_volatile((ph + 40) as *const u64),
            )
        };
        (ty == 1).then_some(vaddr..vaddr + memsz)
    });
    let declared = info()
        .map_or([0..0, 0..0], |i| [i.stack_top - i.stack_size..i.stack_top, i.heap_base..i.heap_base + i.heap_size]);
    segments.chain(declared)
}

/// Ends the task: tells the root task (when it started this one) and ends
/// the calling thread with `status`.
#[cfg(target_os = "none")]
pub extern "C" fn exit(status: u64) -> ! {
    use abi::ipc::{root, Tag};
    use abi::syscall::{call, myself, Msg};
    if started_by_root() {
        let _ = call(parent(), &Msg::new(Tag::new(root::EXIT, 1, 0), &[status]));
    }
    let _ = myself();
    abi::syscall::thread_exit(status)
}

/// The root task's thread.
#[cfg(target_os = "none")]
pub fn root_task() -> abi::ThreadId {
    abi::ThreadId(kip().root_id)
}

/// Whether the root task started this task (it is not sigma0 or the root
/// task itself, which the kernel starts).
#[cfg(target_os = "none")]
pub fn started_by_root() -> bool {
    let k = kip();
    let me = abi::syscall::myself().0 .0;
    k.root_id != 0 && me != k.root_id && me != k.sigma0_id
}

#[cfg(target_os = "none")]
static INFO: spin::Once<Option<abi::ipc::root::TaskInfo>> = spin::Once::new();
#[cfg(target_os = "none")]
static PARENT: spin::Once<abi::ThreadId> = spin::Once::new();

/// Who answers this task's `GET_INFO`, `LOOKUP` and `EXIT`: its
/// user-level pager when the pager answers (for the tasks it spawned
/// itself, and for those that may not send to the root task: TS tasks, see
/// `abi::sys::allow`), the root task otherwise.
#[cfg(target_os = "none")]
pub fn parent() -> abi::ThreadId {
    *PARENT.call_once(|| {
        let _ = info();
        root_task()
    })
}

/// This task's entry of the system description, asked once: of its pager
/// first when that is a user-level pager (which answers for the tasks it
/// speaks for, and refuses the others), then of the root task. `None` for
/// sigma0 and the root task, or if neither knows the caller.
#[cfg(target_os = "none")]
pub fn info() -> Option<&'static abi::ipc::root::TaskInfo> {
    use abi::ipc::root::{self, TaskInfo, INFO_WORDS};
    use abi::ipc::Tag;
    use abi::syscall::{call, utcb, Msg};
    INFO.call_once(|| {
        if !started_by_root() {
            return None;
        }
        let ask = |t: abi::ThreadId| {
            call(t, &Msg::new(Tag::new(root::GET_INFO, 0, 0), &[]))
                .ok()
                .filter(|m| m.tag().label() == 0 && m.tag().untyped() == INFO_WORDS)
                .map(|m| (t, m))
        };
        let me = abi::syscall::myself().0;
        let pager = abi::syscall::thread_info(me, abi::sys::attr::PAGER).map(|(p, _)| abi::ThreadId(p));
        let pager = pager.ok().filter(|&p| p != root_task() && !p.is_nil());
        let (from, m) = pager.and_then(ask).or_else(|| ask(root_task()))?;
        PARENT.call_once(|| from);
        let u = utcb();
        let mut w = [0u64; INFO_WORDS];
        w[..abi::ipc::REG_MRS].copy_from_slice(&m.mr);
        w[abi::ipc::REG_MRS..].copy_from_slice(&u.mr[abi::ipc::REG_MRS + 1..=INFO_WORDS]);
        TaskInfo::from_words(&w)
    })
    .as_ref()
}

/// The system as the root task runs it: its name, the scenario and the
/// number of tasks of the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    name: [u8; 32],
    scenario: [u8; 32],
    pub tasks: u64,
}

impl SystemInfo {
    fn text(b: &[u8; 32]) -> &str {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        core::str::from_utf8(&b[..end]).unwrap_or("?")
    }

    /// The system's name.
    pub fn name(&self) -> &str {
        Self::text(&self.name)
    }

    /// The scenario (`base`, `alone`, `shared`, `partitioned`).
    pub fn scenario(&self) -> &str {
        Self::text(&self.scenario)
    }
}

/// Reads `n` reply words (registers, then the UTCB).
#[cfg(target_os = "none")]
fn reply_words<const N: usize>(m: &abi::syscall::Msg) -> [u64; N] {
    let u = abi::syscall::utcb();
    core::array::from_fn(|i| if i < abi::ipc::REG_MRS { m.mr[i] } else { u.mr[i + 1] })
}

/// The system as a whole, asked of the root task (`None` if it refuses,
/// e.g. for a task it did not start).
#[cfg(target_os = "none")]
pub fn system() -> Option<SystemInfo> {
    use abi::ipc::{root, Tag};
    use abi::syscall::{call, Msg};
    let m = call(root_task(), &Msg::new(Tag::new(root::SYSTEM, 0, 0), &[])).ok()?;
    if m.tag().label() != 0 || m.tag().untyped() != 9 {
        return None;
    }
    let w: [u64; 9] = reply_words(&m);
    Some(SystemInfo { name: root::words_name(&w[..4]), scenario: root::words_name(&w[4..8]), tasks: w[8] })
}

/// The description entry of task number `i` (description order), asked of
/// the root task.
#[cfg(target_os = "none")]
pub fn task_info(i: u64) -> Option<abi::ipc::root::TaskInfo> {
    use abi::ipc::root::{self, TaskInfo, INFO_WORDS};
    use abi::ipc::Tag;
    use abi::syscall::{call, Msg};
    let m = call(root_task(), &Msg::new(Tag::new(root::TASK_INFO, 1, 0), &[i])).ok()?;
    if m.tag().label() != 0 || m.tag().untyped() != INFO_WORDS {
        return None;
    }
    TaskInfo::from_words(&reply_words(&m))
}

/// Asks the root task for the `2^log2` I/O ports from `base` (which the
/// description must grant this task); true once they are this task's.
#[cfg(target_os = "none")]
pub fn request_ports(base: u16, log2: u32) -> bool {
    use abi::ipc::{root, Tag};
    use abi::syscall::{call, utcb, Msg};
    // Any non-empty receive window accepts I/O items.
    utcb().br[0] = abi::Fpage::COMPLETE.0;
    let fp = abi::Fpage::io(base, log2);
    call(root_task(), &Msg::new(Tag::new(root::GET_PORTS, 1, 0), &[fp.0]))
        .is_ok_and(|m| m.tag().label() == 0 && m.tag().typed() == 2)
}

/// The thread id of the task named `name` (or `root`, `sigma0`), asked of
/// the root task (through [`parent`]).
#[cfg(target_os = "none")]
pub fn lookup(name: &str) -> Option<abi::ThreadId> {
    use abi::ipc::{root, Tag};
    use abi::syscall::{call, Msg};
    let m = call(parent(), &Msg::new(Tag::new(root::LOOKUP, 4, 0), &root::name_words(name))).ok()?;
    (m.tag().label() == 0).then_some(abi::ThreadId(m.mr[0]))
}

/// Tells this task's pager that its run starts: from now on every page
/// fault of the task is an error (an RT pager reports and refuses it).
/// Returns the faults the pager resolved for the task before (the
/// prefault of its memory).
#[cfg(target_os = "none")]
pub fn run_start() -> Result<u64, abi::Error> {
    use abi::ipc::{pager, Tag};
    use abi::syscall::{call, Msg};
    let to = info().map_or(abi::ThreadId::NIL, |i| i.pager);
    let m = call(to, &Msg::new(Tag::new(pager::RUN_START, 0, 0), &[]))?;
    match m.tag().label() {
        0 => Ok(m.mr[0]),
        _ => Err(abi::Error::NoPermission),
    }
}

/// The counters (`abi::ipc::pager::STATS`) of user-level pager `pager`
/// for its client `of` (`NIL`: all its clients).
#[cfg(target_os = "none")]
pub fn pager_stats(pager: abi::ThreadId, of: abi::ThreadId) -> Result<abi::ipc::pager::Stats, abi::Error> {
    use abi::ipc::{pager as proto, Tag};
    use abi::syscall::{call, Msg};
    let m = call(pager, &Msg::new(Tag::new(proto::STATS, 1, 0), &[of.0]))?;
    match m.tag().label() {
        0 => Ok(proto::Stats::from_words(&m.mr)),
        _ => Err(abi::Error::NoPermission),
    }
}

/// Buffers formatted text and hands it to the kernel in whole chunks.
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    pub const fn new() -> Self {
        Console { buf: [0; 256], len: 0 }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            #[cfg(target_os = "none")]
            let _ = abi::syscall::debug_print(core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?"));
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for ch in s.chars() {
            let mut b = [0; 4];
            let enc = ch.encode_utf8(&mut b).as_bytes();
            if self.len + enc.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + enc.len()].copy_from_slice(enc);
            self.len += enc.len();
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut c = Console::new();
    let _ = c.write_fmt(args);
    c.flush();
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}

/// The KIP, mapped read-only by the kernel at [`abi::KIP_VADDR`].
#[cfg(target_os = "none")]
pub fn kip() -> &'static abi::kip::Kip {
    // SAFETY: the kernel maps the KIP at this address in every address
    // space before the first instruction runs, and never unmaps it.
    unsafe { &*(abi::KIP_VADDR as *const abi::kip::Kip) }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    _print(format_args!("user panic: {info}\n"));
    exit(u64::MAX)
}
