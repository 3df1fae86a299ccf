//! System calls with boundary values, and what each may return.
//!
//! A [`Fuzzer`] is one fuzzing thread's generator: seeded, it yields the
//! same [`Case`]s in the same order on every run, and it keeps the little
//! it must know about the world to predict results (its own children, the
//! ids that went stale). The oracle mirrors the kernel's documented checks
//! (`abi::sys`, `abi::ipc`) in their order; where a result depends on
//! state the fuzzer does not track, the [`Expect`] admits each possibility.
//!
//! What the fuzzer leaves alone, so that the run measures the kernel and
//! not a harness it broke: it never exits, never deletes, restarts or
//! re-pages itself or any thread it did not create, never lowers its own
//! privilege, budget or priority, and never gives its children a pager
//! (children started at random addresses then fault in empty spaces and
//! stop; only the FPU probe, started at a known entry, is paged).

use crate::rng::Rng;
use crate::values;
use abi::ipc::{item, rights, Fpage, Tag, Timeout};
use abi::sys::{self, attr, ktest};
use abi::{Error, ThreadId, KIP_VADDR, USER_END};

/// One raw system call: number, argument registers, MR1..MR6 (`r8, r9,
/// r12..r15`), and RFLAGS bits the caller sets just for the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Call {
    pub nr: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub mr: [u64; 6],
    pub flags: u64,
}

/// RFLAGS bits ring 3 may set around a call: NT, DF, AC and status flags.
pub const CALL_FLAGS: [u64; 6] = [0x4000, 0x400, 0x4_0000, 0x1, 0x40, 0x800];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OkWhat {
    No,
    Any,
    Exactly(u64),
}

/// The results a call may have: a success (any value, or one exactly)
/// and/or some error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    ok: OkWhat,
    errors: u16,
}

impl Expect {
    pub const fn is(v: u64) -> Expect {
        Expect { ok: OkWhat::Exactly(v), errors: 0 }
    }

    pub const fn any_ok() -> Expect {
        Expect { ok: OkWhat::Any, errors: 0 }
    }

    /// Any result at all (a word that may read as an error code).
    pub const fn anything() -> Expect {
        Expect { ok: OkWhat::Any, errors: u16::MAX }
    }

    pub const fn err(e: Error) -> Expect {
        Expect { ok: OkWhat::No, errors: 1 << e as u16 }
    }

    /// Also admits error `e`.
    pub const fn or(self, e: Error) -> Expect {
        Expect { ok: self.ok, errors: self.errors | 1 << e as u16 }
    }

    /// Does `rax` (a raw result) match?
    pub fn admits(&self, rax: u64) -> bool {
        match Error::decode(rax) {
            Err(e) => self.errors & (1 << e as u16) != 0,
            Ok(v) => match self.ok {
                OkWhat::No => false,
                OkWhat::Any => true,
                OkWhat::Exactly(x) => v == x,
            },
        }
    }
}

impl core::fmt::Display for Expect {
    /// `Ok(5)`, `Ok`, `Err(Timeout|Aborted)`, or both joined by `|`.
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self.ok {
            OkWhat::No => {}
            OkWhat::Any => f.write_str("Ok")?,
            OkWhat::Exactly(v) => write!(f, "Ok({v:#x})")?,
        }
        if self.errors != 0 {
            if self.ok != OkWhat::No {
                f.write_str("|")?;
            }
            f.write_str("Err(")?;
            let mut first = true;
            for e in Error::ALL.iter().filter(|&&e| self.errors & (1 << e as u16) != 0) {
                write!(f, "{}{e:?}", if first { "" } else { "|" })?;
                first = false;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The name of system call number `nr`.
pub fn name(nr: u64) -> &'static str {
    match nr {
        sys::DEBUG_PRINT => "DEBUG_PRINT",
        sys::THREAD_EXIT => "THREAD_EXIT",
        sys::IPC => "IPC",
        sys::THREAD_CREATE => "THREAD_CREATE",
        sys::THREAD_DELETE => "THREAD_DELETE",
        sys::THREAD_START => "THREAD_START",
        sys::THREAD_CONFIG => "THREAD_CONFIG",
        sys::YIELD => "YIELD",
        sys::MYSELF => "MYSELF",
        sys::IRQ_ATTACH => "IRQ_ATTACH",
        sys::UNMAP => "UNMAP",
        sys::THREAD_INFO => "THREAD_INFO",
        sys::KTEST => "KTEST",
        _ => "an unknown number",
    }
}

/// What the fuzzer does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// A system call and the results it may have.
    Syscall { call: Call, expect: Expect },
    /// Raise ring-3 exception kind `k` (see [`crate::exceptions`]).
    Exception(usize),
    /// (Privileged.) Create, start and later delete a thread in a new space
    /// that checks the FPU/SSE state it gets on its first FPU instruction.
    FpuProbe,
    /// (Unprivileged.) A message to the partner thread, waiting in another
    /// space with the given buffers.
    Transfer(Transfer),
}

/// A message to the partner and what must become of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The partner's buffer registers: map window, string buffer, its length.
    pub br: [u64; 3],
    /// The partner flushes its string buffer first (the copy faults there).
    pub flush_receiver: bool,
    /// The sender flushes its own page `buf` first (the copy faults there).
    pub flush_sender: bool,
    pub tag: u64,
    pub mr: [u64; 6],
    pub timeout: Timeout,
    /// The result of both sides.
    pub expect: Expect,
    /// After a success, MR1..MR6 as the partner gets them (string items
    /// say where they landed).
    pub words: [u64; 6],
    /// The string items (source, length), in order: each lands at
    /// `br[1]`, so after a success the buffer holds, at each offset, the
    /// byte of the last string that reaches there.
    pub strings: [(u64, u64); 3],
    pub nstrings: usize,
}

/// Where things are in the fuzzing thread's own address space.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// A buffer of the caller's, mapped and readable.
    pub buf: u64,
    /// The caller's UTCB.
    pub utcb: u64,
    /// A region the caller's pager never maps (faults there are refused).
    pub refused: u64,
    /// Base of the region where children's UTCBs go (spread over it, so
    /// that each costs the kernel page tables).
    pub child_utcbs: u64,
    /// How far from `buf` the caller's memory stays readable (faults in
    /// it are resolved by its pager).
    pub readable: u64,
    /// The partner's string buffer and its length (writable, faults in it
    /// resolved by its pager), and the 16 MiB region its map windows lie in.
    pub peer_buf: u64,
    pub peer_buf_len: u64,
    pub peer_window: u64,
}

/// Children a privileged fuzzer keeps at once.
pub const MAX_CHILDREN: usize = 12;
const STALE: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Child {
    id: ThreadId,
    /// Which of the fuzzer's spaces it lives in (children share spaces).
    space: u32,
    utcb: u64,
}

/// The side effect of a case the fuzzer must learn from its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    None,
    Create { space: u32, utcb: u64 },
    Delete(ThreadId),
}

/// The calls that need a right (`CONTROL`, or `IRQ` for `IRQ_ATTACH`).
pub const CONTROL_CALLS: [u64; 6] =
    [sys::THREAD_CREATE, sys::THREAD_DELETE, sys::THREAD_START, sys::THREAD_CONFIG, sys::IRQ_ATTACH, sys::KTEST];

/// One fuzzing thread's generator and its view of the world.
pub struct Fuzzer {
    rng: Rng,
    me: ThreadId,
    /// Its rights (`abi::sys::rights`) and maximum controlled priority.
    held: u64,
    mcp: u64,
    layout: Layout,
    /// The exception handler children get (the checker).
    handler: ThreadId,
    children: [Option<Child>; MAX_CHILDREN],
    next_space: u32,
    stale: [ThreadId; STALE],
    stale_next: usize,
    pending: Effect,
    /// A call that must come next (a new child gets its exception handler).
    follow: Option<(Call, Expect)>,
}

impl Fuzzer {
    /// Stream `stream` of `seed` for thread `me`, which holds rights `held`
    /// (`abi::sys::rights`: with `CONTROL` it is the privileged fuzzer) and
    /// MCP `mcp`; `stale` is an id that named a thread once (the runner
    /// deletes one to have it).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seed: u64,
        stream: u64,
        me: ThreadId,
        held: u64,
        mcp: u64,
        layout: Layout,
        handler: ThreadId,
        stale: ThreadId,
    ) -> Fuzzer {
        Fuzzer {
            rng: Rng::stream(seed, stream),
            me,
            held,
            mcp,
            layout,
            handler,
            children: [None; MAX_CHILDREN],
            next_space: 0,
            stale: [stale; STALE],
            stale_next: 0,
            pending: Effect::None,
            follow: None,
        }
    }

    fn privileged(&self) -> bool {
        self.held & sys::rights::CONTROL != 0
    }

    /// The live children (the runner deletes them at the end).
    pub fn children(&self) -> impl Iterator<Item = ThreadId> + '_ {
        self.children.iter().flatten().map(|c| c.id)
    }

    /// The next case. After running a `Syscall`, pass its result to
    /// [`Fuzzer::record`] before asking for the next one.
    pub fn next_case(&mut self) -> Case {
        self.pending = Effect::None;
        if let Some((call, expect)) = self.follow.take() {
            return Case::Syscall { call, expect };
        }
        let weights: &[u32] = if self.privileged() {
            // ipc unmap print myself/yield badnr denied exc create start delete config irq ktest probe transfer info
            &[20, 8, 3, 3, 3, 0, 6, 12, 5, 8, 14, 3, 4, 2, 0, 4]
        } else {
            &[40, 15, 8, 5, 5, 10, 10, 0, 0, 0, 0, 0, 0, 0, 20, 4]
        };
        let (call, expect) = match self.rng.weighted(weights) {
            0 => self.ipc(),
            1 => self.unmap(),
            2 => self.debug_print(),
            3 => self.trivial(),
            4 => self.bad_number(),
            5 => self.denied(),
            6 => return Case::Exception(self.rng.below(crate::exceptions::KINDS.len() as u64) as usize),
            7 => self.create(),
            8 => self.start(),
            9 => self.delete(),
            10 => self.config(),
            11 => self.irq_attach(),
            12 => self.ktest(),
            13 => return Case::FpuProbe,
            14 => return Case::Transfer(self.transfer()),
            _ => self.thread_info(),
        };
        let mut call = call;
        for &f in &CALL_FLAGS {
            if self.rng.chance(1, 8) {
                call.flags |= f;
            }
        }
        Case::Syscall { call, expect }
    }

    /// The result of the last `Syscall` case.
    pub fn record(&mut self, rax: u64) {
        match core::mem::replace(&mut self.pending, Effect::None) {
            Effect::Create { space, utcb } => {
                if let (Ok(id), Some(slot)) = (Error::decode(rax), self.children.iter_mut().find(|c| c.is_none())) {
                    *slot = Some(Child { id: ThreadId(id), space, utcb });
                    // Its exceptions go to the checker, which stops it.
                    let c = Call {
                        nr: sys::THREAD_CONFIG,
                        rdi: id,
                        rsi: attr::EXCEPTION_HANDLER,
                        rdx: self.handler.0,
                        ..Call::default()
                    };
                    self.follow = Some((c, Expect::is(0)));
                }
            }
            Effect::Delete(t) => {
                if Error::decode(rax).is_ok() {
                    self.forget(t);
                }
            }
            Effect::None => {}
        }
    }

    /// `t` is gone (deleted by the runner, or by a call).
    pub fn forget(&mut self, t: ThreadId) {
        for c in self.children.iter_mut() {
            if c.is_some_and(|c| c.id == t) {
                *c = None;
            }
        }
        self.stale[self.stale_next] = t;
        self.stale_next = (self.stale_next + 1) % STALE;
    }

    fn stale_id(&mut self) -> ThreadId {
        self.rng.pick(&self.stale)
    }

    fn child(&mut self) -> Option<Child> {
        let n = self.children.iter().flatten().count() as u64;
        if n == 0 {
            return None;
        }
        self.children.iter().flatten().nth(self.rng.below(n) as usize).copied()
    }

    /// An id that names no thread: stale or forged.
    fn dead_id(&mut self) -> ThreadId {
        if self.rng.chance(1, 2) {
            self.stale_id()
        } else {
            values::forged_id(&mut self.rng)
        }
    }

    /// A target for a control call: a child, or a dead id.
    fn target(&mut self) -> (ThreadId, Option<Child>) {
        match self.child().filter(|_| self.rng.chance(3, 4)) {
            Some(c) => (c.id, Some(c)),
            None => (self.dead_id(), None),
        }
    }

    fn ipc(&mut self) -> (Call, Expect) {
        let r = &mut self.rng;
        let mut call = Call { nr: sys::IPC, rdx: values::tag(r), ..Call::default() };
        for w in call.mr.iter_mut() {
            *w = values::word(r);
        }
        let line = if r.chance(3, 4) { r.below(16) } else { values::word(r) } as u32;
        let mut st = values::timeout(r);
        let mut rt = values::timeout(r);
        let child = self.child().map(|c| c.id);
        let r = &mut self.rng;
        let (to, send) = match r.below(8) {
            0 | 1 => (ThreadId::NIL, None),
            2 => (self.me, Some(Expect::err(Error::InvalidArgument))),
            3 => (ThreadId::ANY, Some(Expect::err(Error::InvalidThread))),
            // Nobody fuzzing attaches interrupts to itself.
            4 => (ThreadId::irq(line), Some(Expect::err(Error::NoPermission))),
            5 if child.is_some() => {
                // Children never receive: the send waits out its timeout.
                st = values::short_timeout(r);
                (child.unwrap_or(ThreadId::NIL), Some(Expect::err(Error::Timeout)))
            }
            _ => (self.dead_id(), Some(Expect::err(Error::InvalidThread))),
        };
        let r = &mut self.rng;
        let (from, recv) = match r.below(8) {
            0 | 1 => (ThreadId::NIL, Expect::is(0)),
            2 => (ThreadId::ANY, Expect::err(Error::Timeout)),
            3 => (self.me, Expect::err(Error::Timeout)),
            4 => (ThreadId::irq(line), Expect::err(Error::Timeout)),
            5 if child.is_some() => (child.unwrap_or(ThreadId::NIL), Expect::err(Error::Timeout)),
            _ => (self.dead_id(), Expect::err(Error::InvalidThread)),
        };
        if recv == Expect::err(Error::Timeout) && send.is_none() {
            // Nobody sends to a fuzzing thread: a receive that waits must
            // end by itself, soon.
            rt = values::short_timeout(&mut self.rng);
        }
        call.rdi = to.0;
        call.rsi = from.0;
        call.r10 = Timeout::pack(st, rt);
        (call, send.unwrap_or(recv))
    }

    fn transfer(&mut self) -> Transfer {
        let l = self.layout;
        let r = &mut self.rng;
        // The partner's buffers: windows inside its window region or
        // malformed; a string buffer inside its buffer or wholly outside the
        // user half (a buffer only partly there would be written up to its end).
        let s = r.range(12, 24) as u32;
        let br0 = match r.below(5) {
            0 => 0,
            // Inside one 16 MiB region, which the partner flushes now and
            // then: the mapping database is one pool for everyone.
            1 | 2 => Fpage::new(l.peer_window + (r.below(1 << (24 - s)) << s), s, rights::ALL).0,
            3 => Fpage::new(l.peer_window | 0x1000, r.range(13, 24) as u32, rights::ALL).0,
            _ => Fpage::io(0, 16).0,
        };
        let (br1, br2) = if r.chance(1, 6) {
            (values::bad_address(r).max(USER_END), r.range(1, 1 << 17))
        } else {
            let off = r.below(l.peer_buf_len / 2);
            (l.peer_buf + off, r.below(l.peer_buf_len - off + 1))
        };
        let flush_receiver = r.chance(1, 8);
        let flush_sender = r.chance(1, 8);
        // The message: untyped words, then items in the registers; now and
        // then an impossible tag or one that reaches into the UTCB.
        let untyped = r.below(7) as usize;
        let items = r.below(((6 - untyped) / 2) as u64 + 1) as usize;
        let label = values::tag(r) >> 16;
        let tag = match r.below(10) {
            0 => Tag::new(label, r.range(7, 63) as usize, 0).0,
            1 => Tag::new(label, untyped, 2 * items + 1).0,
            2 => Tag::new(label, 40, 30).0,
            _ => Tag::new(label, untyped, 2 * items).0,
        };
        let mut mr = [0u64; 6];
        for w in mr.iter_mut() {
            *w = values::word(r);
        }
        let (mut strings, mut nstrings) = ([(0, 0); 3], 0);
        // After a grant, no string from the caller's buffer: the grant may
        // have taken the buffer's pages, the copy would fault, and the
        // restarted IPC would grant them away again, for ever.
        let mut granted = false;
        for k in 0..items {
            let at = untyped + 2 * k;
            let (w0, w1) = match r.below(6) {
                0 | 1 => {
                    let fp = if r.chance(1, 4) { values::io_fpage(r) } else { values::fpage(r, l.buf) };
                    let kind = if r.chance(1, 4) { item::GRANT } else { item::MAP };
                    granted |= kind == item::GRANT;
                    ((values::word(r) & !0xfff & !item::KIND_MASK) | kind, fp.0)
                }
                2..=4 => {
                    let (addr, len) = match if granted { r.below(2) } else { r.below(6) } {
                        // Wholly outside the user half (a range that began
                        // inside would fault at the last user page first).
                        0 => (values::bad_address(r).max(USER_END), r.range(1, 4096)),
                        1 => {
                            let off = r.below(4096);
                            (KIP_VADDR + off, r.below(4096 - off + 1))
                        }
                        2 => (l.buf + r.below(l.readable), r.pick(&[item::MAX_STRING + 1, u32::MAX as u64])),
                        _ => {
                            let off = r.below(l.readable);
                            (l.buf + off, r.below((l.readable - off).min(item::MAX_STRING) + 1))
                        }
                    };
                    ((len << 32) | item::STRING | (r.below(2) << 31), addr)
                }
                _ => (r.pick(&[0, 8, 10, 12, 14]) | (values::word(r) & !item::KIND_MASK), values::word(r)),
            };
            mr[at] = w0;
            mr[at + 1] = w1;
            if w0 & item::KIND_MASK == item::STRING {
                strings[nstrings] = (w1, w0 >> 32);
                nstrings += 1;
            }
        }
        if Tag(tag).untyped() != untyped || Tag(tag).typed() != 2 * items {
            // Not items after all (the tag says otherwise).
            nstrings = 0;
        }
        let timeout = match r.below(3) {
            0 => Timeout::NEVER,
            1 => Timeout::ticks(r.range(1 << 24, 1 << 32)),
            _ => Timeout((63 << 26) | r.range(1, (1 << 26) - 1) as u32),
        };
        let (expect, words) = transfer_result(tag, &mr, [br0, br1, br2]);
        Transfer {
            br: [br0, br1, br2],
            flush_receiver,
            flush_sender,
            tag,
            mr,
            timeout,
            expect,
            words,
            strings,
            nstrings,
        }
    }

    fn unmap(&mut self) -> (Call, Expect) {
        let l = self.layout;
        let near = match self.rng.below(4) {
            0 => l.buf,
            1 => l.refused,
            2 => KIP_VADDR,
            _ => self.rng.next_u64() & (USER_END - 1),
        };
        let fp = values::fpage(&mut self.rng, near);
        let flags = values::word(&mut self.rng);
        let expect = if fp.is_io() {
            // No fuzzing thread holds ports.
            if fp.io_range().is_none() {
                Expect::err(Error::InvalidArgument)
            } else {
                Expect::is(0)
            }
        } else if !fp.is_valid() || fp.size_log2() > 24 {
            Expect::err(Error::InvalidArgument)
        } else if fp.rights() == 0 || (flags & sys::UNMAP_SELF == 0 && self.privileged()) {
            // Nothing derives from the privileged thread's pages (the
            // unprivileged one maps its pages to the partner).
            Expect::is(0)
        } else {
            Expect::any_ok()
        };
        (Call { nr: sys::UNMAP, rdi: fp.0, rsi: flags, ..Call::default() }, expect)
    }

    fn debug_print(&mut self) -> (Call, Expect) {
        let r = &mut self.rng;
        let (ptr, len, expect) = match r.below(4) {
            // Nothing printed: an empty string anywhere in the user half.
            0 => {
                let p = r.pick(&[self.layout.buf, self.layout.refused, KIP_VADDR, USER_END, 0]);
                (p, 0, Expect::is(0))
            }
            1 => (self.layout.buf, r.range(sys::DEBUG_PRINT_MAX + 1, u64::MAX), Expect::err(Error::InvalidArgument)),
            2 => (values::bad_address(r), r.range(8, sys::DEBUG_PRINT_MAX), Expect::err(Error::BadAddress)),
            _ => (
                self.layout.refused + r.below(0x1000),
                r.range(1, sys::DEBUG_PRINT_MAX),
                Expect::err(Error::BadAddress),
            ),
        };
        (Call { nr: sys::DEBUG_PRINT, rdi: ptr, rsi: len, ..Call::default() }, expect)
    }

    fn trivial(&mut self) -> (Call, Expect) {
        let junk = values::word(&mut self.rng);
        if self.rng.chance(1, 2) {
            (Call { nr: sys::YIELD, rdi: junk, ..Call::default() }, Expect::is(0))
        } else {
            (Call { nr: sys::MYSELF, rdi: junk, ..Call::default() }, Expect::is(self.me.0))
        }
    }

    fn bad_number(&mut self) -> (Call, Expect) {
        let nr = match self.rng.below(3) {
            0 => sys::COUNT + self.rng.below(8),
            1 => self.rng.pick(&[0x100, 1 << 32, 1 << 63, u64::MAX, sys::KTEST + 1, sys::KTEST ^ (1 << 32)]),
            _ => self.rng.next_u64() | (1 << 40),
        };
        (Call { nr, rdi: values::word(&mut self.rng), ..Call::default() }, Expect::err(Error::NoSuchCall))
    }

    /// A call that needs a right, from a thread without rights.
    fn denied(&mut self) -> (Call, Expect) {
        let r = &mut self.rng;
        let nr = r.pick(&CONTROL_CALLS);
        let call = Call {
            nr,
            rdi: values::word(r),
            rsi: values::word(r),
            rdx: values::word(r),
            r10: values::word(r),
            ..Call::default()
        };
        (call, Expect::err(Error::NoPermission))
    }

    fn create(&mut self) -> (Call, Expect) {
        let l = self.layout;
        let full = self.children.iter().all(|c| c.is_some());
        let r = &mut self.rng;
        let utcb = match r.below(8) {
            0 => 0,
            1 => l.child_utcbs + 0x123,
            2 => KIP_VADDR,
            3 => values::bad_address(r) & !0xfff,
            4 => USER_END - 0x1000,
            _ => l.child_utcbs + (r.below(64) << 30) + (r.below(4) << 12),
        };
        let bad_utcb = utcb == 0 || utcb & 0xfff != 0 || utcb >= USER_END || utcb == KIP_VADDR;
        let pager = match r.below(3) {
            0 => ThreadId::NIL,
            _ => self.dead_id(),
        };
        let (space_of, space, expect) = match self.rng.below(4) {
            0 => {
                let t = self.dead_id();
                (t, 0, Expect::err(Error::InvalidThread))
            }
            1 if !full => match self.child() {
                Some(c) => {
                    let taken = self.children.iter().flatten().any(|o| o.space == c.space && o.utcb == utcb);
                    let e = if bad_utcb {
                        Expect::err(Error::InvalidArgument)
                    } else if taken {
                        // The table may be full before the UTCB is looked at.
                        Expect::err(Error::InvalidArgument).or(Error::NoResources)
                    } else {
                        fresh()
                    };
                    (c.id, c.space, e)
                }
                None => (
                    ThreadId::NIL,
                    self.new_space(),
                    if bad_utcb { Expect::err(Error::InvalidArgument) } else { fresh() },
                ),
            },
            _ if full => {
                // Only bad requests while the table of children is full.
                let t = self.dead_id();
                (t, 0, Expect::err(Error::InvalidThread))
            }
            _ => {
                (ThreadId::NIL, self.new_space(), if bad_utcb { Expect::err(Error::InvalidArgument) } else { fresh() })
            }
        };
        if expect == fresh() {
            self.pending = Effect::Create { space, utcb };
        }
        (Call { nr: sys::THREAD_CREATE, rdi: space_of.0, rsi: utcb, rdx: pager.0, ..Call::default() }, expect)
    }

    fn new_space(&mut self) -> u32 {
        self.next_space += 1;
        self.next_space
    }

    fn start(&mut self) -> (Call, Expect) {
        let (t, child) = self.target();
        let r = &mut self.rng;
        let ip = if r.chance(1, 4) { values::bad_address(r) } else { r.next_u64() & (USER_END - 1) };
        let sp = if r.chance(1, 4) { values::bad_address(r) } else { values::word(r) & (USER_END - 1) };
        let expect = match child {
            None => Expect::err(Error::InvalidThread),
            Some(_) if ip >= USER_END || sp >= USER_END => Expect::err(Error::InvalidArgument),
            Some(_) => Expect::is(0),
        };
        (Call { nr: sys::THREAD_START, rdi: t.0, rsi: ip, rdx: sp, ..Call::default() }, expect)
    }

    fn delete(&mut self) -> (Call, Expect) {
        let (t, child) = self.target();
        let expect = match child {
            Some(_) => {
                self.pending = Effect::Delete(t);
                Expect::is(0)
            }
            None => Expect::err(Error::InvalidThread),
        };
        (Call { nr: sys::THREAD_DELETE, rdi: t.0, ..Call::default() }, expect)
    }

    fn config(&mut self) -> (Call, Expect) {
        // Its own time slice is the one attribute the fuzzer changes on
        // itself (short slices: more preemption).
        if self.rng.chance(1, 10) {
            let v = self.rng.pick(&[sys::MIN_TIMESLICE - 1, sys::MIN_TIMESLICE, 50_000, 1_000_000]);
            let e = if v < sys::MIN_TIMESLICE { Expect::err(Error::InvalidArgument) } else { Expect::is(0) };
            return (
                Call { nr: sys::THREAD_CONFIG, rdi: self.me.0, rsi: attr::TIMESLICE, rdx: v, ..Call::default() },
                e,
            );
        }
        let (t, child) = self.target();
        let handler = self.handler;
        let dead = self.dead_id();
        let r = &mut self.rng;
        let what = if r.chance(1, 10) { values::word(r) } else { r.below(8) };
        // A send allow list is not fuzzed here: a change would cut the
        // fuzzers off from their partner and checker mid-stream (the
        // isolation images test ALLOW); an attribute only THREAD_INFO
        // reads takes its place.
        let what = if what == attr::ALLOW { attr::REFUSED } else { what };
        let mcp = self.mcp;
        let (v, v2) = match what {
            attr::PAGER => (r.pick(&[ThreadId::NIL, dead]).0, 0),
            attr::EXCEPTION_HANDLER => (r.pick(&[ThreadId::NIL, dead, handler, handler]).0, 0),
            attr::PRIORITY | attr::MCP => (r.pick(&[0, 1, mcp - 1, mcp, mcp + 1, 63, 64, u64::MAX]), 0),
            attr::TIMESLICE | attr::BUDGET => {
                let v = r.pick(&[0, 1, sys::MIN_TIMESLICE - 1, sys::MIN_TIMESLICE, 1 << 20, u64::MAX]);
                let w = values::word(r);
                (v, r.pick(&[0, v, v.saturating_add(1), u64::MAX, w]))
            }
            attr::RIGHTS => (r.pick(&[0, sys::rights::CONTROL, sys::rights::IRQ, sys::rights::ALL, 4, u64::MAX]), 0),
            _ => (values::word(r), values::word(r)),
        };
        // The kernel's checks of a request against the caller's own limits.
        let invalid = Expect::err(Error::InvalidArgument);
        let checked = match what {
            attr::PAGER | attr::EXCEPTION_HANDLER => Expect::is(0),
            attr::PRIORITY | attr::MCP if v > sys::MAX_PRIORITY => invalid,
            attr::PRIORITY | attr::MCP if v > mcp => Expect::err(Error::NoPermission),
            attr::PRIORITY | attr::MCP => Expect::is(0),
            attr::TIMESLICE if v >= sys::MIN_TIMESLICE => Expect::is(0),
            attr::BUDGET if v == 0 || (v >= sys::MIN_TIMESLICE && v2 >= v) => Expect::is(0),
            attr::RIGHTS if v & !sys::rights::ALL != 0 => invalid,
            attr::RIGHTS if v & !self.held != 0 => Expect::err(Error::NoPermission),
            attr::RIGHTS => Expect::is(0),
            attr::FASTPATH if v <= 1 => Expect::is(0),
            _ => invalid,
        };
        let expect = match child {
            None => Expect::err(Error::InvalidThread),
            Some(_) => checked,
        };
        (Call { nr: sys::THREAD_CONFIG, rdi: t.0, rsi: what, rdx: v, r10: v2, ..Call::default() }, expect)
    }

    /// `THREAD_INFO` of itself, a child or a dead id.
    fn thread_info(&mut self) -> (Call, Expect) {
        let (t, known) = match self.rng.below(3) {
            0 => (self.me, true),
            1 => {
                let (t, c) = self.target();
                (t, c.is_some())
            }
            _ => (self.dead_id(), false),
        };
        let what = if self.rng.chance(1, 5) { values::word(&mut self.rng) } else { self.rng.below(attr::FASTPATH + 2) };
        let expect = if !known {
            Expect::err(Error::InvalidThread)
        } else if matches!(what, attr::PAGER | attr::EXCEPTION_HANDLER | attr::TIMESLICE | attr::BUDGET) {
            // Whatever was set (forged ids, slices and budgets up to
            // u64::MAX): returned in rax, a value of 2^63 or more reads as an
            // error code.
            Expect::anything()
        } else if what <= attr::REFUSED || what == attr::FASTPATH {
            // SPACE, PREEMPTIONS, the allow list, the refusal counts and
            // the fast-path count too.
            Expect::any_ok()
        } else {
            Expect::err(Error::InvalidArgument)
        };
        (Call { nr: sys::THREAD_INFO, rdi: t.0, rsi: what, ..Call::default() }, expect)
    }

    fn irq_attach(&mut self) -> (Call, Expect) {
        let line = if self.rng.chance(3, 4) { self.rng.below(18) } else { values::word(&mut self.rng) };
        let (t, child) = if self.rng.chance(1, 4) { (ThreadId::NIL, None) } else { self.target() };
        let expect = if line >= 16 || line == 2 {
            Expect::err(Error::InvalidArgument)
        } else if t.is_nil() || child.is_some() {
            Expect::is(0)
        } else {
            Expect::err(Error::InvalidThread)
        };
        (Call { nr: sys::IRQ_ATTACH, rdi: line, rsi: t.0, ..Call::default() }, expect)
    }

    fn ktest(&mut self) -> (Call, Expect) {
        let r = &mut self.rng;
        let op = if r.chance(1, 8) { values::word(r) } else { r.below(4) };
        let (a, expect) = match op {
            // The invariants hold between any two calls.
            ktest::CHECK => (0, Expect::is(0)),
            ktest::POOL_FREE | ktest::OBJECTS => (0, Expect::any_ok()),
            ktest::TRANSLATE => match r.below(3) {
                0 => (self.me.0, Expect::any_ok()),
                1 => (self.child().map_or(self.me, |c| c.id).0, Expect::any_ok()),
                _ => (self.dead_id().0, Expect::err(Error::InvalidThread)),
            },
            _ => (0, Expect::err(Error::InvalidArgument)),
        };
        let b = values::word(&mut self.rng);
        (Call { nr: sys::KTEST, rdi: op, rsi: a, rdx: b, ..Call::default() }, expect)
    }
}

/// What a message from a fuzzing thread (no ports, pages only from its
/// pager) to the partner must give, by the kernel's checks in their order
/// (`abi::ipc`): the result, and MR1..MR6 as received.
fn transfer_result(tag: u64, mr: &[u64; 6], br: [u64; 3]) -> (Expect, [u64; 6]) {
    let tag = Tag(tag);
    let n = tag.words();
    let mut words = *mr;
    let (mut maps, mut grants) = (false, false);
    let also = |e: Expect, maps: bool, grants: bool| {
        let e = if maps { e.or(Error::OutOfMemory) } else { e };
        if grants {
            e.or(Error::InvalidArgument)
        } else {
            e
        }
    };
    if n >= abi::ipc::MAX_MRS || !tag.typed().is_multiple_of(2) {
        return (Expect::err(Error::MessageOverflow), words);
    }
    for it in (tag.untyped() + 1..=n).step_by(2) {
        let (w0, w1) = (mr[it - 1], mr[it]);
        let e = match w0 & item::KIND_MASK {
            item::MAP | item::GRANT => {
                let (fp, window) = (Fpage(w1), Fpage(br[0]));
                if fp.is_io() {
                    if fp.io_range().is_none() {
                        Some(Error::InvalidArgument)
                    } else if window.0 == 0 {
                        Some(Error::MessageOverflow)
                    } else {
                        // Fuzzing threads hold no ports.
                        Some(Error::NoPermission)
                    }
                } else if !fp.is_valid() || fp.size_log2() > 24 {
                    Some(Error::InvalidArgument)
                } else if !window.is_valid() {
                    Some(Error::MessageOverflow)
                } else {
                    None
                }
            }
            item::STRING => {
                let (addr, len) = (w1, w0 >> 32);
                if len > item::MAX_STRING || len > br[2] {
                    Some(Error::MessageOverflow)
                } else if len > 0 && (addr.checked_add(len).is_none_or(|e| e > USER_END) || br[1] >= USER_END) {
                    Some(Error::BadAddress)
                } else {
                    words[it - 1] = (len << 32) | item::STRING;
                    words[it] = br[1];
                    None
                }
            }
            _ => Some(Error::InvalidArgument),
        };
        if let Some(e) = e {
            return (also(Expect::err(e), maps, grants), words);
        }
        // A map item that gets through may fill the mapping database (its
        // capacity is the kernel's business): OutOfMemory, from there on. A
        // grant may meet a window page derived from the page it grants
        // (mapped there by an earlier item or message): a cycle.
        let kind = w0 & item::KIND_MASK;
        maps |= matches!(kind, item::MAP | item::GRANT);
        grants |= kind == item::GRANT;
    }
    (also(Expect::is(0), maps, grants), words)
}

/// A valid create: the new id, or no room left (threads, spaces, pool).
fn fresh() -> Expect {
    Expect::any_ok().or(Error::NoResources).or(Error::OutOfMemory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            buf: 0x40_0000,
            utcb: 0x5000_0000_0000,
            refused: 0x2000_0000_0000,
            child_utcbs: 0x3000_0000_0000,
            readable: 0x2_0000,
            peer_buf: 0x60_0000,
            peer_buf_len: 0x1_2000,
            peer_window: 0x6800_0000_0000,
        }
    }

    fn fuzzer(seed: u64, privileged: bool) -> Fuzzer {
        let me = ThreadId::new(9, 1);
        let held = if privileged { sys::rights::ALL } else { 0 };
        Fuzzer::new(seed, privileged as u64, me, held, 50, layout(), ThreadId::new(3, 1), ThreadId::new(20, 1))
    }

    #[test]
    fn expectations_print_as_results() {
        assert_eq!(Expect::is(5).or(Error::Timeout).to_string(), "Ok(0x5)|Err(Timeout)");
        assert_eq!(
            Expect::err(Error::InvalidThread).or(Error::NoResources).to_string(),
            "Err(InvalidThread|NoResources)"
        );
        assert_eq!(Expect::any_ok().to_string(), "Ok");
        assert_eq!(name(sys::UNMAP), "UNMAP");
    }

    #[test]
    fn expect_admits_exactly_what_it_says() {
        let e = Expect::is(5).or(Error::Timeout);
        assert!(e.admits(5) && !e.admits(6) && e.admits(Error::Timeout.encode()));
        assert!(!e.admits(Error::InvalidThread.encode()));
        assert!(Expect::any_ok().admits(0) && !Expect::any_ok().admits(Error::NoSuchCall.encode()));
        assert!(!Expect::err(Error::Aborted).admits(0));
    }

    #[test]
    fn same_seed_same_cases() {
        for privileged in [false, true] {
            let (mut a, mut b) = (fuzzer(11, privileged), fuzzer(11, privileged));
            for i in 0..5_000u64 {
                let (ca, cb) = (a.next_case(), b.next_case());
                assert_eq!(ca, cb);
                // Pretend every create succeeded, with a fresh id.
                a.record(i + (1 << 32));
                b.record(i + (1 << 32));
            }
        }
    }

    #[test]
    fn unprivileged_cases_never_need_privilege_and_never_exit() {
        let mut f = fuzzer(12, false);
        for _ in 0..20_000 {
            if let Case::Syscall { call, expect } = f.next_case() {
                assert_ne!(call.nr, sys::THREAD_EXIT);
                let control = CONTROL_CALLS;
                if control.contains(&call.nr) {
                    assert_eq!(expect, Expect::err(Error::NoPermission));
                }
            } else {
                assert!(!matches!(f.next_case(), Case::FpuProbe));
            }
        }
    }

    #[test]
    fn the_fuzzer_never_touches_itself_or_blocks_for_long() {
        let mut f = fuzzer(13, true);
        let me = f.me.0;
        for i in 0..50_000u64 {
            let Case::Syscall { call, expect } = f.next_case() else { continue };
            match call.nr {
                sys::THREAD_DELETE | sys::THREAD_START | sys::IRQ_ATTACH => assert_ne!(call.rdi, me),
                sys::THREAD_CONFIG if call.rdi == me => assert_eq!(call.rsi, attr::TIMESLICE),
                sys::THREAD_CREATE => assert_ne!(call.rdi, me),
                sys::IPC if expect == Expect::err(Error::Timeout) => {
                    // A call that is expected to time out waits briefly.
                    let (st, rt) = Timeout::unpack(call.r10);
                    let t = if call.rdi == 0 { rt } else { st };
                    assert!(t.as_ticks().is_some_and(|t| t <= 2000), "{call:x?}");
                }
                _ => {}
            }
            if call.nr == sys::THREAD_CONFIG && call.rsi == attr::PAGER {
                // Children never get a pager that could run them.
                assert!(call.rdx != me && call.rdx != f.handler.0 && !f.children().any(|c| c.0 == call.rdx));
            }
            f.record(i + (1 << 32));
        }
    }

    #[test]
    fn transfers_write_only_the_partner_buffer_and_read_only_what_is_readable() {
        let mut f = fuzzer(15, false);
        let l = layout();
        let mut n = 0;
        for _ in 0..50_000 {
            let Case::Transfer(t) = f.next_case() else { continue };
            n += 1;
            let [w, b, len] = t.br;
            assert!(b >= USER_END || (b >= l.peer_buf && b + len <= l.peer_buf + l.peer_buf_len), "{t:x?}");
            let wf = Fpage(w);
            assert!(
                w == 0
                    || !wf.is_valid()
                    || wf == Fpage::io(0, 16)
                    || (wf.base() >= l.peer_window && wf.base() + (1 << wf.size_log2()) <= l.peer_window + (1 << 24))
            );
            for &(src, slen) in &t.strings[..t.nstrings] {
                let inside = |a: u64, size: u64| src >= a && src + slen <= a + size;
                assert!(
                    src >= USER_END || slen > item::MAX_STRING || inside(l.buf, l.readable) || inside(KIP_VADDR, 4096),
                    "{t:x?}"
                );
            }
        }
        assert!(n > 5000);
    }

    #[test]
    fn transfer_oracle_by_hand() {
        let br = [Fpage::new(0x6800_0000_0000, 12, rights::ALL).0, 0x60_0000, 0x1000];
        let s = |len: u64, addr: u64| [(len << 32) | item::STRING, addr];
        let msg = |w: [u64; 2]| [w[0], w[1], 0, 0, 0, 0];
        let t = Tag::new(1, 0, 2).0;
        assert_eq!(transfer_result(t, &msg(s(16, 0x40_0000)), br).0, Expect::is(0));
        assert_eq!(transfer_result(t, &msg(s(16, 0x40_0000)), br).1[1], 0x60_0000);
        assert_eq!(transfer_result(t, &msg(s(0x1001, 0x40_0000)), br).0, Expect::err(Error::MessageOverflow));
        assert_eq!(transfer_result(t, &msg(s(8, USER_END)), br).0, Expect::err(Error::BadAddress));
        assert_eq!(transfer_result(t, &msg(s(0, USER_END)), br).0, Expect::is(0));
        let io = Fpage((0xffff_0000u64 << 12) | (16 << 4) | 8).0;
        assert_eq!(transfer_result(t, &msg([item::MAP, io]), br).0, Expect::err(Error::InvalidArgument));
        assert_eq!(transfer_result(t, &msg([item::MAP, Fpage::io(0x80, 0).0]), br).0, Expect::err(Error::NoPermission));
        assert_eq!(
            transfer_result(t, &msg([item::MAP, Fpage::io(0x80, 0).0]), [0, 0, 0]).0,
            Expect::err(Error::MessageOverflow)
        );
        assert_eq!(transfer_result(t, &msg([8, 0]), br).0, Expect::err(Error::InvalidArgument));
        assert_eq!(transfer_result(Tag::new(0, 1, 1).0, &[0; 6], br).0, Expect::err(Error::MessageOverflow));
        assert_eq!(transfer_result(Tag::new(0, 60, 4).0, &[0; 6], br).0, Expect::err(Error::MessageOverflow));
        let map = msg([item::MAP, Fpage::new(0x40_0000, 12, rights::ALL).0]);
        assert_eq!(transfer_result(t, &map, br).0, Expect::is(0).or(Error::OutOfMemory));
    }

    #[test]
    fn children_are_learnt_from_results_and_forgotten_on_delete() {
        let mut f = fuzzer(14, true);
        let mut created = 0;
        for i in 0..20_000u64 {
            if let Case::Syscall { call, expect } = f.next_case() {
                let rax = if call.nr == sys::THREAD_CREATE && expect.admits(1) { (i + 1) << 32 | 5 } else { 0 };
                if rax != 0 {
                    created += 1;
                }
                f.record(rax);
                assert!(f.children().count() <= MAX_CHILDREN);
            }
        }
        assert!(created > 100, "only {created} creates");
    }
}
