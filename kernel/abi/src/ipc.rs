//! IPC message layout: tag, timeouts, typed items, flexpages and the UTCB.
//!
//! Registers of the `IPC` system call (in and out):
//!
//! | register | in | out |
//! | --- | --- | --- |
//! | `rax` | `sys::IPC` | 0 or `-(error)` |
//! | `rdi` | destination (`NIL`: no send phase) | - |
//! | `rsi` | receive spec (`NIL`: none, `ANY`: open, else closed) | actual sender |
//! | `rdx` | message tag (MR0) | received tag |
//! | `r10` | timeouts: send (low 32 bits), receive (high 32 bits) | - |
//! | `r8, r9, r12, r13, r14, r15` | MR1..MR6 | MR1..MR6 |
//!
//! Words MR7 and up travel through the sender's and receiver's UTCBs and
//! are copied once, by the kernel, from one to the other.
//!
//! A send the sender's allow list does not permit fails at once with
//! `NoPermission` (nothing is delivered, the receive phase does not run);
//! see [`crate::sys::allow`].

/// Number of message registers passed in CPU registers (MR1..MR6).
pub const REG_MRS: usize = 6;
/// Total message registers, MR0..MR63 (MR0 is the tag).
pub const MAX_MRS: usize = 64;

/// Message tag (MR0): label, untyped and typed word counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Tag(pub u64);

impl Tag {
    /// `untyped` words MR1..MRu, then `typed` words of items.
    pub const fn new(label: u64, untyped: usize, typed: usize) -> Tag {
        Tag(((label & 0xffff_ffff_ffff) << 16) | ((typed as u64 & 0x3f) << 6) | (untyped as u64 & 0x3f))
    }

    pub const fn label(self) -> u64 {
        self.0 >> 16
    }

    pub const fn untyped(self) -> usize {
        (self.0 & 0x3f) as usize
    }

    pub const fn typed(self) -> usize {
        ((self.0 >> 6) & 0x3f) as usize
    }

    /// Total words after the tag.
    pub const fn words(self) -> usize {
        self.untyped() + self.typed()
    }
}

/// Labels of messages the kernel sends on a thread's behalf.
pub mod label {
    /// Page fault, to the pager: MR1 = fault address, MR2 = IP, MR3 =
    /// access bits (1 read, 2 write, 4 execute). Reply with map items.
    pub const PAGE_FAULT: u64 = 0xffff_ffff_fffe;
    /// CPU exception, to the exception handler: MR1 = vector, MR2 = error
    /// code, MR3 = IP, MR4 = SP, MR5 = RFLAGS, MR6 = CR2, MR7.. = the 15
    /// general registers (see [`super::ExcRegs`]). Reply with label 0 and
    /// MR1 = IP, MR2 = SP, MR3 = RFLAGS to resume.
    pub const EXCEPTION: u64 = 0xffff_ffff_fffd;
    /// Budget exhausted, to the exception handler: MR1 = budget, MR2 =
    /// period (TSC ticks), MR3 = time of the next replenishment.
    pub const BUDGET: u64 = 0xffff_ffff_fffc;
    /// Interrupt, from the pseudo-thread of the line: MR1 = line. Replying
    /// to the pseudo-thread unmasks the line.
    pub const IRQ: u64 = 0xffff_ffff_fffb;
}

/// Order of the general registers in an exception message (MR7..MR21).
pub const EXC_REGS: usize = 15;

/// Names for the exception message's register words.
#[derive(Clone, Copy, Debug)]
pub enum ExcRegs {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

/// One IPC timeout (32 bits): 0 = do not wait, `u32::MAX` = wait forever,
/// otherwise a relative time of `m << e` TSC ticks (m: bits 0..26, e: bits
/// 26..32), so it reaches from one tick to years. A time of 2^64 ticks or
/// more (which only a hand-made encoding reaches) is `u64::MAX` ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Timeout(pub u32);

impl Timeout {
    pub const ZERO: Timeout = Timeout(0);
    pub const NEVER: Timeout = Timeout(u32::MAX);
    const MBITS: u32 = 26;

    /// At least `ticks` TSC ticks (rounded up to what the format holds).
    pub const fn ticks(ticks: u64) -> Timeout {
        if ticks == 0 {
            return Timeout::ZERO;
        }
        let mut e = 0;
        let mut m = ticks;
        while m >= (1 << Self::MBITS) {
            m = (m + 1) >> 1;
            e += 1;
        }
        if e >= 63 {
            return Timeout::NEVER;
        }
        let t = (e << Self::MBITS) | m as u32;
        if t == u32::MAX {
            Timeout::NEVER
        } else {
            Timeout(t)
        }
    }

    /// `None` for never, else the relative time in ticks.
    pub const fn as_ticks(self) -> Option<u64> {
        if self.0 == u32::MAX {
            return None;
        }
        let m = (self.0 & ((1 << Self::MBITS) - 1)) as u64;
        let e = self.0 >> Self::MBITS;
        // `m << e` fits in 64 bits exactly when `e` does not exceed the
        // leading zeros of `m`; beyond that it saturates, never wraps.
        if m != 0 && e > m.leading_zeros() {
            return Some(u64::MAX);
        }
        Some(m << e)
    }

    /// Send and receive timeouts packed into the `r10` word.
    pub const fn pack(send: Timeout, recv: Timeout) -> u64 {
        (send.0 as u64) | ((recv.0 as u64) << 32)
    }

    pub const fn unpack(w: u64) -> (Timeout, Timeout) {
        (Timeout(w as u32), Timeout((w >> 32) as u32))
    }
}

/// Access rights of a flexpage.
pub mod rights {
    pub const READ: u64 = 4;
    pub const WRITE: u64 = 2;
    pub const EXEC: u64 = 1;
    pub const ALL: u64 = 7;
}

/// A flexpage: a naturally aligned region of `2^size_log2` bytes
/// (`size_log2 >= 12`) with rights. Encoding: base in bits 12..64, size in
/// bits 4..10, rights in bits 0..3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Fpage(pub u64);

impl Fpage {
    /// The whole address space (`size_log2` 63 is the marker).
    pub const COMPLETE: Fpage = Fpage((63 << 4) | rights::ALL);

    pub const fn new(base: u64, size_log2: u32, rights: u64) -> Fpage {
        Fpage((base & !0xfff) | ((size_log2 as u64 & 0x3f) << 4) | (rights & 7))
    }

    /// An I/O-port flexpage: `2^size_log2` ports from `port` (aligned).
    pub const fn io(port: u16, size_log2: u32) -> Fpage {
        Fpage(((port as u64) << 12) | ((size_log2 as u64 & 0x3f) << 4) | Self::IO_BIT)
    }

    const IO_BIT: u64 = 8;

    pub const fn is_io(self) -> bool {
        self.0 & Self::IO_BIT != 0
    }

    /// First port and count of an I/O flexpage, if well formed: aligned
    /// and inside the 2^16 ports. (The port field has 52 bits; the sum is
    /// taken in 64 bits so that it cannot wrap.)
    pub const fn io_range(self) -> Option<(u32, u32)> {
        let s = self.size_log2();
        let port = self.0 >> 12;
        if !self.is_io() || s > 16 || port & ((1 << s) - 1) != 0 || port + (1 << s) > 0x10000 {
            return None;
        }
        Some((port as u32, 1 << s))
    }

    pub const fn base(self) -> u64 {
        self.0 & !0xfff
    }

    pub const fn size_log2(self) -> u32 {
        ((self.0 >> 4) & 0x3f) as u32
    }

    pub const fn rights(self) -> u64 {
        self.0 & 7
    }

    /// Well formed: at least a page, naturally aligned, inside 2^47.
    pub const fn is_valid(self) -> bool {
        let s = self.size_log2();
        if s == 63 {
            return self.base() == 0;
        }
        s >= 12 && s <= 47 && self.base() & ((1u64 << s) - 1) == 0 && self.base() <= (1u64 << 47) - (1u64 << s)
    }
}

/// The sigma0 protocol: requests to the root pager (label, MR1..).
///
/// Every frame sigma0 hands out, by a request or in a page-fault reply,
/// goes through its ownership table and its colour rules: a frame goes to
/// one owner only; a pager bound to a partition gets only frames of that
/// partition's colours. Frames land in the requester's receive window
/// (`br[0]`) at `window + frame` (see [`crate::layout::PHYS_WINDOW`]).
pub mod sigma0 {
    /// Map frame MR1 (a physical address) into the caller's receive window.
    pub const GET_FRAME: u64 = 0x5130;
    /// Map any free frame into the caller's receive window: of the caller's
    /// partition's colours if it is a bound pager; MR1 = partition number +
    /// 1 asks for that partition's colours (the root task only, to load a
    /// pager's image), 0 for any colour. Reply MR1 = the frame.
    pub const GET_ANY: u64 = 0x5131;
    /// Map the I/O ports of the I/O flexpage MR1 (the root task only).
    pub const GET_PORTS: u64 = 0x5132;
    /// Bind pager MR1 (a thread id) to partition number MR2 of the system
    /// description: from then on it gets only frames of that partition's
    /// colours. The root task only.
    pub const BIND: u64 = 0x5133;
    /// Frames handed out per partition: MR1.. in description order.
    pub const USAGE: u64 = 0x5134;
    /// Map module page MR1 (a physical address inside a boot module)
    /// read-only into the caller's receive window. The root task only.
    pub const GET_MODULE: u64 = 0x5135;
    /// sigma0's counters ([`Stats`]), in MR1.. .
    pub const STATS: u64 = 0x5136;
    /// Reply labels: 0 = done; these say why a request was refused.
    pub const REFUSED_TAKEN: u64 = 1;
    pub const REFUSED_UNKNOWN: u64 = 2;
    pub const REFUSED_COLOR: u64 = 3;
    pub const REFUSED_NOT_ALLOWED: u64 = 4;
    /// A page fault on a frame that belongs to someone else.
    pub const REFUSED_NOT_OWNER: u64 = 5;

    /// What [`STATS`] returns, one word each.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Stats {
        /// Page faults answered with a mapping.
        pub faults_mapped: u64,
        /// Page faults refused: the frame is another client's.
        pub refused_owner: u64,
        /// Requests or faults refused: the frame has a foreign colour.
        pub refused_color: u64,
        /// Requests or faults refused for any other reason.
        pub refused_other: u64,
        /// Frames handed out in all.
        pub frames_given: u64,
    }

    impl Stats {
        pub const WORDS: usize = 5;

        pub fn to_words(&self) -> [u64; Self::WORDS] {
            [self.faults_mapped, self.refused_owner, self.refused_color, self.refused_other, self.frames_given]
        }

        pub fn from_words(w: &[u64]) -> Stats {
            let g = |i: usize| w.get(i).copied().unwrap_or(0);
            Stats {
                faults_mapped: g(0),
                refused_owner: g(1),
                refused_color: g(2),
                refused_other: g(3),
                frames_given: g(4),
            }
        }
    }
}

/// The root task's services to every task it started (label, MR1..).
///
/// A task that a pager spawned itself (not from the description) is
/// unknown to the root task, which refuses it; such a task asks its pager,
/// which answers `GET_INFO` and `EXIT` for its own children in the same
/// form (`user_rt::info` and `user_rt::exit` do that). So does a task that
/// may not send to the root task (a TS task under a TS pager): its pager
/// answers `GET_INFO` and `LOOKUP` and passes `EXIT` on
/// (`pager::CLIENT_INFO`, `pager::CLIENT_EXIT`).
pub mod root {
    /// The caller's own entry of the system description, as a [`TaskInfo`]
    /// in MR1.. (through the UTCB).
    pub const GET_INFO: u64 = 0x5200;
    /// The thread id of the task named by MR1..MR4 (UTF-8, NUL padded).
    pub const LOOKUP: u64 = 0x5201;
    /// The caller ends with status MR1 (0 = success); the root task counts
    /// it and replies, then the caller exits.
    pub const EXIT: u64 = 0x5202;
    /// The I/O ports the description grants the caller, as a map item of
    /// the I/O flexpage MR1 (refused unless granted).
    pub const GET_PORTS: u64 = 0x5203;
    /// A pager's request for the boot module named by MR1..MR4 (to load a
    /// task it spawns itself): reply MR1 = physical base, MR2 = size, and
    /// map items of its pages (read-only, into the caller's phys window).
    /// Pagers only.
    pub const GET_MODULE: u64 = 0x5204;
    /// The exception handler of task MR1 (a thread id; the handler the
    /// description gives it) stops it for good, e.g. for the budget
    /// overrun the kernel told it of: the root task reports it and removes
    /// it (an RT task so stopped fails the run). Refused to anyone else.
    pub const STOP: u64 = 0x5205;
    /// The system as a whole: reply MR1..MR4 = the system's name, MR5..MR8
    /// = the scenario it runs (each as [`name_words`]), MR9 = the number of
    /// tasks of the description (pagers included).
    pub const SYSTEM: u64 = 0x5210;
    /// The description entry of task number MR1 (description order, from
    /// 0), as a [`TaskInfo`] in the form of [`GET_INFO`]; refused past the
    /// last task. (The measurement harness finds its peers with it.)
    pub const TASK_INFO: u64 = 0x5211;
    /// Reply label for a refused request.
    pub const REFUSED: u64 = 1;

    /// What a task is for (the description's `role`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u64)]
    pub enum Role {
        Pager = 1,
        Rt = 2,
        Ts = 3,
        Test = 4,
    }

    impl Role {
        pub fn from_word(w: u64) -> Option<Role> {
            [Role::Pager, Role::Rt, Role::Ts, Role::Test].into_iter().find(|r| *r as u64 == w)
        }
    }

    /// Longest task name.
    pub const NAME_MAX: usize = 32;
    /// Longest argument string.
    pub const ARGS_MAX: usize = 256;

    /// A task's own description, as the root task tells it. Times are TSC
    /// ticks (converted from the description's nanoseconds by the root
    /// task), sizes bytes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TaskInfo {
        pub index: u64,
        pub role: Role,
        pub priority: u64,
        pub mcp: u64,
        pub rights: u64,
        pub pager: crate::ThreadId,
        pub handler: crate::ThreadId,
        pub timeslice: u64,
        pub budget: u64,
        pub period: u64,
        /// RT tasks: job period, relative deadline, number of jobs.
        pub rt_period: u64,
        pub deadline: u64,
        pub jobs: u64,
        pub heap_base: u64,
        pub heap_size: u64,
        pub stack_top: u64,
        pub stack_size: u64,
        pub name: [u8; NAME_MAX],
        pub args: [u8; ARGS_MAX],
    }

    const FIXED: usize = 17;
    /// Words of an encoded [`TaskInfo`] (fits the 63 message registers).
    pub const INFO_WORDS: usize = FIXED + (NAME_MAX + ARGS_MAX) / 8;
    const _: () = assert!(INFO_WORDS < super::MAX_MRS);

    fn text(b: &[u8]) -> &str {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        core::str::from_utf8(&b[..end]).unwrap_or("?")
    }

    /// Copies `s` into a NUL-padded field, cut at a character boundary.
    pub fn set_text(dst: &mut [u8], s: &str) {
        dst.fill(0);
        let mut n = s.len().min(dst.len());
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        dst[..n].copy_from_slice(&s.as_bytes()[..n]);
    }

    impl TaskInfo {
        pub const fn empty() -> TaskInfo {
            TaskInfo {
                index: 0,
                role: Role::Test,
                priority: 0,
                mcp: 0,
                rights: 0,
                pager: crate::ThreadId::NIL,
                handler: crate::ThreadId::NIL,
                timeslice: 0,
                budget: 0,
                period: 0,
                rt_period: 0,
                deadline: 0,
                jobs: 0,
                heap_base: 0,
                heap_size: 0,
                stack_top: 0,
                stack_size: 0,
                name: [0; NAME_MAX],
                args: [0; ARGS_MAX],
            }
        }

        pub fn name(&self) -> &str {
            text(&self.name)
        }

        pub fn args(&self) -> &str {
            text(&self.args)
        }

        /// The value of argument `key=value`, if given.
        pub fn arg(&self, key: &str) -> Option<&str> {
            self.args().split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        }

        pub fn to_words(&self) -> [u64; INFO_WORDS] {
            let mut w = [0u64; INFO_WORDS];
            w[..FIXED].copy_from_slice(&[
                self.index,
                self.role as u64,
                self.priority,
                self.mcp,
                self.rights,
                self.pager.0,
                self.handler.0,
                self.timeslice,
                self.budget,
                self.period,
                self.rt_period,
                self.deadline,
                self.jobs,
                self.heap_base,
                self.heap_size,
                self.stack_top,
                self.stack_size,
            ]);
            for (i, c) in self.name.iter().chain(self.args.iter()).enumerate() {
                w[FIXED + i / 8] |= (*c as u64) << (8 * (i % 8));
            }
            w
        }

        pub fn from_words(w: &[u64; INFO_WORDS]) -> Option<TaskInfo> {
            let mut t = TaskInfo::empty();
            let f = &w[..FIXED];
            t.index = f[0];
            t.role = Role::from_word(f[1])?;
            (t.priority, t.mcp, t.rights) = (f[2], f[3], f[4]);
            (t.pager, t.handler) = (crate::ThreadId(f[5]), crate::ThreadId(f[6]));
            (t.timeslice, t.budget, t.period) = (f[7], f[8], f[9]);
            (t.rt_period, t.deadline, t.jobs) = (f[10], f[11], f[12]);
            (t.heap_base, t.heap_size, t.stack_top, t.stack_size) = (f[13], f[14], f[15], f[16]);
            for i in 0..NAME_MAX + ARGS_MAX {
                let c = (w[FIXED + i / 8] >> (8 * (i % 8))) as u8;
                if i < NAME_MAX {
                    t.name[i] = c;
                } else {
                    t.args[i - NAME_MAX] = c;
                }
            }
            Some(t)
        }
    }

    /// A name packed into four words for [`LOOKUP`].
    pub fn name_words(name: &str) -> [u64; 4] {
        let mut b = [0u8; 32];
        set_text(&mut b, name);
        core::array::from_fn(|i| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])))
    }

    /// The name [`name_words`] packed, as bytes (NUL padded).
    pub fn words_name(w: &[u64]) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, x) in w.iter().take(4).enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
        }
        b
    }
}

/// The root task and a user-level pager (label, MR1..): the pager asks for
/// the clients the description gives it and says when each is loaded.
pub mod pager {
    /// Pager to root task: the next client to load. Reply label 0 with MR1
    /// = client thread id, MR2 = module physical base, MR3 = module size,
    /// MR4 = heap size, MR5 = stack size, MR6 = role, and map items of the
    /// module's pages (read-only, into the pager's phys window); or label
    /// [`NO_MORE`] when every client is handed out. MR7..MR10 (untyped,
    /// through the UTCB) hold the client's name (`root::name_words`), so
    /// the pager can name it in its reports.
    pub const NEXT_CLIENT: u64 = 0x5300;
    /// Pager to root task: client MR1 is loaded; start it at IP MR2 with SP
    /// MR3. Reply label 0 once it runs.
    pub const CLIENT_READY: u64 = 0x5301;
    /// Client to its pager: "my run starts". From now on every page fault
    /// of the caller is an error: an RT pager reports it (task, address,
    /// IP) and refuses it, never maps silently. Reply label 0 with MR1 =
    /// the faults the pager resolved for the caller before (its prefault).
    /// A pager that demand-pages its clients (the TS pager) refuses it.
    pub const RUN_START: u64 = 0x5302;
    /// Anyone to a pager: its counters ([`Stats`]) in MR1..MR6, for the
    /// client thread MR1 (0: all clients together).
    pub const STATS: u64 = 0x5303;
    /// Pager to root task: the description entry of its client MR1, as a
    /// [`super::root::TaskInfo`] in the form of `root::GET_INFO`. A pager
    /// whose clients may not send to the root task (TS tasks: see
    /// `abi::sys::allow`) answers their `GET_INFO` with it.
    pub const CLIENT_INFO: u64 = 0x5304;
    /// Pager to root task: its client MR1 ends with status MR2 (the
    /// client's `root::EXIT`, passed on); reply label 0.
    pub const CLIENT_EXIT: u64 = 0x5305;
    /// Reply label: no more clients.
    pub const NO_MORE: u64 = 1;
    /// Reply label: refused (not this pager's client, or a bad IP/SP).
    pub const REFUSED: u64 = 2;

    /// What [`STATS`] returns, one word each.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Stats {
        /// Page faults answered with a mapping.
        pub faults_mapped: u64,
        /// Page faults refused (outside the client's memory, a protection
        /// violation, out of memory, or during a run).
        pub faults_refused: u64,
        /// Page faults after the client's [`RUN_START`] (each refused).
        pub run_faults: u64,
        /// Frames the pager backs its clients with now.
        pub frames: u64,
        /// Frames on the pager's own free list (taken back, not returned
        /// to sigma0).
        pub frames_free: u64,
        /// Tasks killed because the partition ran out of frames.
        pub oom_kills: u64,
    }

    impl Stats {
        /// Words of the reply; they fit the message registers.
        pub const WORDS: usize = 6;

        pub fn to_words(&self) -> [u64; Self::WORDS] {
            [self.faults_mapped, self.faults_refused, self.run_faults, self.frames, self.frames_free, self.oom_kills]
        }

        pub fn from_words(w: &[u64]) -> Stats {
            let g = |i: usize| w.get(i).copied().unwrap_or(0);
            Stats {
                faults_mapped: g(0),
                faults_refused: g(1),
                run_faults: g(2),
                frames: g(3),
                frames_free: g(4),
                oom_kills: g(5),
            }
        }
    }
}

pub mod ts;

/// Typed item kinds (bits 1..4 of an item's first word).
pub mod item {
    pub const MAP: u64 = 1 << 1;
    pub const GRANT: u64 = 2 << 1;
    pub const STRING: u64 = 3 << 1;
    pub const KIND_MASK: u64 = 7 << 1;
    /// Longest string item the kernel copies.
    pub const MAX_STRING: u64 = 64 * 1024;
}

/// A map (or grant) item: two words, `send_base | kind` then the fpage.
/// The receiver's window comes from its UTCB (`br[0]`) or, for a page-fault
/// reply, is the whole space; `send_base` picks where a small fpage lands in
/// a larger window.
pub const fn map_item(send_base: u64, fpage: Fpage, grant: bool) -> [u64; 2] {
    [(send_base & !0xfff) | if grant { item::GRANT } else { item::MAP }, fpage.0]
}

/// A string item: two words, `len << 32 | kind` then the address.
pub const fn string_item(addr: u64, len: u32) -> [u64; 2] {
    [((len as u64) << 32) | item::STRING, addr]
}

/// The per-thread User Thread Control Block, one page mapped at the address
/// given at thread creation. Its address is also the thread's FS base.
#[repr(C, align(4096))]
pub struct Utcb {
    /// Points at this UTCB (so `fs:0` finds it).
    pub self_ptr: u64,
    /// The thread's own id.
    pub my_id: u64,
    pub _reserved: [u64; 6],
    /// Message registers; MR0..MR6 also travel in CPU registers, the kernel
    /// copies MR7.. from here.
    pub mr: [u64; MAX_MRS],
    /// Buffer registers: `br[0]` receive window fpage for map items,
    /// `br[1]`/`br[2]` address and length of the receive string buffer.
    pub br: [u64; 8],
}

/// Byte offset of `mr[0]` in the UTCB.
pub const UTCB_MR_OFFSET: usize = 64;
/// Byte offset of `br[0]` in the UTCB.
pub const UTCB_BR_OFFSET: usize = UTCB_MR_OFFSET + 8 * MAX_MRS;

const _: () = assert!(core::mem::size_of::<Utcb>() == 4096);
const _: () = assert!(core::mem::offset_of!(Utcb, mr) == UTCB_MR_OFFSET);
const _: () = assert!(core::mem::offset_of!(Utcb, br) == UTCB_BR_OFFSET);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tag_fields() {
        let t = Tag::new(0x1234, 5, 4);
        assert_eq!((t.label(), t.untyped(), t.typed(), t.words()), (0x1234, 5, 4, 9));
        assert_eq!(Tag::new(label::PAGE_FAULT, 3, 0).label(), label::PAGE_FAULT);
    }

    #[test]
    fn fpage_validity() {
        assert!(Fpage::new(0x20_0000, 21, rights::ALL).is_valid());
        assert!(!Fpage::new(0x20_1000, 21, rights::ALL).is_valid());
        assert!(!Fpage::new(0x1000, 11, rights::ALL).is_valid());
        assert!(!Fpage::new(0x7fff_ffff_f000, 13, rights::ALL).is_valid());
        assert!(Fpage::COMPLETE.is_valid());
        assert_eq!(Fpage::new(0x5000, 12, rights::READ).rights(), rights::READ);
        assert_eq!(Fpage::io(0x3f8, 3).io_range(), Some((0x3f8, 8)));
        assert_eq!(Fpage::io(0x3f9, 3).io_range(), None);
        assert!(!Fpage::new(0x5000, 12, rights::READ).is_io());
    }

    #[test]
    fn io_range_at_the_top_of_the_port_space() {
        let raw = |port: u64, s: u64| Fpage((port << 12) | (s << 4) | Fpage::IO_BIT);
        assert_eq!(Fpage::io(0, 16).io_range(), Some((0, 0x10000)));
        assert_eq!(Fpage::io(0xfff0, 4).io_range(), Some((0xfff0, 16)));
        assert_eq!(Fpage::io(0xffff, 0).io_range(), Some((0xffff, 1)));
        assert_eq!(raw(0x1_0000, 0).io_range(), None);
        assert_eq!(raw(0x1_0000, 16).io_range(), None);
        // Found by a fuzzer: the end of this range overflowed 32 bits.
        assert_eq!(raw(0xffff_0000, 16).io_range(), None);
        assert_eq!(raw((1 << 52) - (1 << 16), 16).io_range(), None);
        assert_eq!(raw(0, 17).io_range(), None);
    }

    #[test]
    fn timeout_specials() {
        assert_eq!(Timeout::ZERO.as_ticks(), Some(0));
        assert_eq!(Timeout::NEVER.as_ticks(), None);
        assert_eq!(Timeout::unpack(Timeout::pack(Timeout::ZERO, Timeout::NEVER)), (Timeout::ZERO, Timeout::NEVER));
    }

    #[test]
    fn timeout_beyond_2_pow_64_saturates() {
        let t = |e: u32, m: u32| Timeout((e << 26) | m).as_ticks();
        // Found by a fuzzer: 2 << 63 wrapped to zero.
        assert_eq!(t(63, 2), Some(u64::MAX));
        assert_eq!(t(63, 1), Some(1 << 63));
        assert_eq!(t(38, (1 << 26) - 1), Some(((1 << 26) - 1) << 38));
        assert_eq!(t(39, (1 << 26) - 1), Some(u64::MAX));
        assert_eq!(t(62, (1 << 26) - 2), Some(u64::MAX));
        assert_eq!(t(40, 0), Some(0));
    }

    proptest! {
        #[test]
        fn io_range_stays_inside_the_port_space(w in any::<u64>()) {
            if let Some((first, n)) = Fpage(w).io_range() {
                prop_assert!(n.is_power_of_two() && first % n == 0);
                prop_assert!(first as u64 + n as u64 <= 0x10000);
            }
        }

        #[test]
        fn timeout_ticks_never_wrap(w in any::<u32>()) {
            if let Some(got) = Timeout(w).as_ticks() {
                let (m, e) = ((w & ((1 << 26) - 1)) as u128, w >> 26);
                prop_assert_eq!(got as u128, (m << e).min(u64::MAX as u128));
            }
        }

        #[test]
        fn timeout_rounds_up_by_less_than_one_part_in_2_pow_25(t in 1u64..1 << 60) {
            let got = Timeout::ticks(t).as_ticks().unwrap();
            prop_assert!(got >= t);
            prop_assert!(got - t <= t >> 25);
        }
    }
}
