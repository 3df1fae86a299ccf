//! System call numbers and register convention.
//!
//! `syscall` with the number in `rax` and arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9` (the System V syscall order; `rcx` and `r11` are taken
//! by the instruction itself). The kernel returns a word in `rax`: zero or a
//! positive value on success, `-(Error as i64)` on failure, see
//! [`crate::Error::decode`]. `IPC` uses more registers, see [`crate::ipc`].
//!
//! A `syscall` in the last two bytes of the user half (its return address
//! would be the first non-canonical one) is not carried out: it raises #GP
//! (error code 0) at the instruction, delivered to the exception handler.

/// Print a UTF-8 string on the kernel debug console. `rdi` = pointer,
/// `rsi` = length (at most [`DEBUG_PRINT_MAX`] bytes).
pub const DEBUG_PRINT: u64 = 0;
/// Delete the calling thread; `rdi` = status, printed on the console.
pub const THREAD_EXIT: u64 = 1;
/// Send and/or receive a message (see [`crate::ipc`]).
pub const IPC: u64 = 2;
/// Control call. Create a thread: `rdi` = a thread whose address space the
/// new thread shares (the caller itself or a thread it controls), or `NIL`
/// for a new address space; `rsi` = UTCB address (page aligned, unmapped, in
/// the user half); `rdx` = pager. Returns the new id. The new thread waits
/// until `THREAD_START`; the caller is its chief (see [`attr`]), it has
/// priority `min(16, caller's MCP)`, MCP 0 and no rights.
pub const THREAD_CREATE: u64 = 3;
/// Control call. Delete thread `rdi` (one the caller controls); its id
/// becomes stale.
pub const THREAD_DELETE: u64 = 4;
/// Control call. Start (or restart) thread `rdi` at IP `rsi`, SP `rdx`.
pub const THREAD_START: u64 = 5;
/// Control call. Set attribute `rsi` (see [`attr`]) of thread `rdi` (the
/// caller itself or one it controls) to `rdx` (and `r10` where the
/// attribute has two values).
pub const THREAD_CONFIG: u64 = 6;
/// Give up the rest of the time slice (round robin within the priority).
pub const YIELD: u64 = 7;
/// The caller's own thread id and the current TSC.
pub const MYSELF: u64 = 8;
/// Needs [`rights::IRQ`]. Route interrupt line `rdi` to thread `rsi` (`NIL`
/// detaches).
pub const IRQ_ATTACH: u64 = 9;

/// Flush: revoke the rights given in fpage `rdi` (its rights bits) from
/// every mapping derived from the caller's pages in it, recursively; with
/// `rsi` bit 0 set, also from the caller's own pages. Revoking read removes
/// the mappings. Returns the number of mappings changed.
pub const UNMAP: u64 = 10;

/// Read attribute `rsi` (see [`attr`]; plus [`attr::SPACE`],
/// [`attr::PREEMPTIONS`] and [`attr::REFUSED`]) of thread
/// `rdi`: the caller itself, or a thread it controls. Returns the value;
/// for [`attr::BUDGET`] the budget, with the period in `rdx`; for
/// [`attr::ALLOW`] the allow list as a mask of spaces (bit = the
/// [`attr::SPACE`] number), with `rdx` = 1 when the space has no list.
pub const THREAD_INFO: u64 = 11;

/// Performance counters (see [`crate::pmc`]). `rdi` = [`crate::pmc::INFO`]:
/// what the counters count now (anyone may ask); `rdi` =
/// [`crate::pmc::PROGRAM`] with `rsi` = a [`crate::pmc`] event mask: program
/// those events (0 stops every counter), needs [`rights::PMC`]. Both return
/// the [`crate::pmc::PmcInfo`] in `rax`, `rsi`, `rdx`.
pub const PMC: u64 = 12;

/// Number of defined system calls; anything at or above is `NoSuchCall`.
pub const COUNT: u64 = 13;

/// Test kernel only (`--features ktest`; the production kernel answers
/// `NoSuchCall`): the physical address behind virtual address `rsi` of
/// thread `rdi`'s space (any thread), from its page tables. Returns the
/// address, with `rdx` = bit 0 writable, bit 1 executable; `BadAddress`
/// when nothing is mapped there for user mode. The in-guest tests check
/// with it that every frame a pager mapped has its partition's colour.
/// Numbers 0x110.. are the pagers' test calls (0x100..0x10f are others').
pub const DEBUG_TRANSLATE: u64 = 0x110;

/// Test kernel only (built with `--features ktest`), needs [`rights::CONTROL`]: the debug
/// interface through which the fuzzer's checker sees the kernel's
/// invariants; `rdi` is one of [`ktest`]. The production kernel has no
/// such call: it answers `NoSuchCall` (outside `0..COUNT` like any other).
pub const KTEST: u64 = 0x6b74;

/// Operations of [`KTEST`].
pub mod ktest {
    /// Checks every kernel invariant the kernel can check by itself (pool
    /// accounting, mapping database, page tables against it, sender and
    /// ready queues, thread, chief and space bookkeeping). Returns 0, or the
    /// number of the first broken check (its name goes to the console).
    pub const CHECK: u64 = 0;
    /// Free frames in the kernel pool.
    pub const POOL_FREE: u64 = 1;
    /// The page at `rdx` in the address space of thread `rsi`: 0 if
    /// unmapped, else frame | rights (`ipc::rights` bits, READ always) |
    /// [`IN_MAPDB`] when the mapping database holds the same frame and rights.
    pub const TRANSLATE: u64 = 2;
    /// Live threads (bits 0..32) and address spaces (bits 32..64).
    pub const OBJECTS: u64 = 3;
    /// [`TRANSLATE`] flag: the page is in the mapping database as mapped.
    pub const IN_MAPDB: u64 = 8;
}

/// `UNMAP` flag: flush the caller's own mappings too.
pub const UNMAP_SELF: u64 = 1;

/// Longest string one `DEBUG_PRINT` accepts.
pub const DEBUG_PRINT_MAX: u64 = 1024;

/// Thread attributes for `THREAD_CONFIG`.
///
/// The privilege model (after L4's clans and chiefs and seL4's maximum
/// controlled priority): control calls (create, delete, start, configure)
/// need [`rights::CONTROL`], and act only on the caller itself (configure)
/// or on threads it controls: those it created, and theirs, transitively.
/// A priority or MCP set by a caller is at most the caller's own MCP, and
/// the rights it gives are a subset of its own, so no thread can raise its
/// own or another thread's limits above its own. The kernel gives the root
/// task MCP 63 and every right; everything else has what the root task (or
/// a chief it delegated to) gave it.
pub mod attr {
    /// Pager (thread id).
    pub const PAGER: u64 = 0;
    /// Exception handler (thread id).
    pub const EXCEPTION_HANDLER: u64 = 1;
    /// Priority, 0 (lowest) to [`super::MAX_PRIORITY`].
    pub const PRIORITY: u64 = 2;
    /// Time slice in TSC ticks (at least [`super::MIN_TIMESLICE`]).
    pub const TIMESLICE: u64 = 3;
    /// Budget per period in TSC ticks: `rdx` = budget, `r10` = period
    /// (budget 0 removes the limit).
    pub const BUDGET: u64 = 4;
    /// Maximum controlled priority: the highest priority (and MCP) this
    /// thread may give any thread it controls, itself included.
    pub const MCP: u64 = 5;
    /// Rights (a [`super::rights`] mask), a subset of the caller's.
    pub const RIGHTS: u64 = 6;
    /// `THREAD_INFO` only: a number naming the thread's address space
    /// (threads in one space have the same, threads in two different).
    pub const SPACE: u64 = 7;
    /// `THREAD_INFO` only: how often the thread was taken off the CPU while
    /// it could still run: a higher-priority thread became ready, its time
    /// slice or budget ran out, or it yielded. Blocking in IPC is not a
    /// preemption, nor is an interrupt the kernel handles without switching.
    pub const PREEMPTIONS: u64 = 8;
    /// The send allow list of the thread's address space (see [`allow`]):
    /// `rdx` = a thread id, `r10` = [`allow::ADD`] (the thread's space may
    /// send to that thread's space) or [`allow::REMOVE`]. `rdx` = `NIL`
    /// with `REMOVE` empties the list; `rdx` = `ANY` with `ADD` lifts it
    /// (every space). A caller adds only what it may reach itself, and
    /// lifts the list only if its own is lifted.
    pub const ALLOW: u64 = 9;
    /// `THREAD_INFO` only: the sends (IPC) refused to the thread's address
    /// space by its allow list, with the privileged calls refused to it
    /// (`NoPermission` from `THREAD_CREATE`, `THREAD_DELETE`,
    /// `THREAD_START`, `THREAD_CONFIG`, `IRQ_ATTACH` or `PMC`) in `rdx`.
    pub const REFUSED: u64 = 10;
    /// The IPC fast path (see the kernel's `fastpath` module): `THREAD_INFO`
    /// gives how many of the thread's IPCs it completed; `THREAD_CONFIG`
    /// with `rdx` = 0 turns it off for the thread's IPCs, 1 on again (the
    /// default), so a test can run one scenario through both paths.
    pub const FASTPATH: u64 = 11;
}

/// IPC access control: who may send to whom.
///
/// Every address space has a send allow list: the spaces its threads may
/// send to. A send that the list does not allow fails with `NoPermission`
/// and is counted for the sender's space ([`attr::REFUSED`]). Always
/// allowed, whatever the list: a send within the sender's own space, to
/// the sender's pager, to a thread that waits for a message from exactly
/// this sender (the reply to a call, or a closed receive), and every
/// message the kernel sends on a thread's behalf (page faults, exceptions,
/// budget and interrupt messages). The spaces the kernel starts (sigma0,
/// the root task) have no list (they reach every space); a space created
/// by a thread with a list starts with the list of its creator's space
/// alone, one created by a thread without a list has none. No caller can
/// widen a list beyond its own reach: it adds only spaces it may send to
/// itself, and the same holds for the pager and exception handler it gives
/// a thread ([`attr::PAGER`], [`attr::EXCEPTION_HANDLER`], `THREAD_CREATE`)
/// and the handler it routes an interrupt to (`IRQ_ATTACH`).
pub mod allow {
    /// [`super::attr::ALLOW`]: remove a space (or, with `NIL`, all).
    pub const REMOVE: u64 = 0;
    /// [`super::attr::ALLOW`]: add a space (or, with `ANY`, lift the list).
    pub const ADD: u64 = 1;
}

/// Rights a thread may hold ([`attr::RIGHTS`]).
pub mod rights {
    /// May make control calls (on itself and the threads it controls).
    pub const CONTROL: u64 = 1;
    /// May route interrupt lines (`IRQ_ATTACH`).
    pub const IRQ: u64 = 2;
    /// May program the performance counters (`PMC` with `pmc::PROGRAM`).
    pub const PMC: u64 = 4;
    /// Every right.
    pub const ALL: u64 = CONTROL | IRQ | PMC;
}

/// Highest priority.
pub const MAX_PRIORITY: u64 = 63;
/// Shortest time slice or budget the kernel accepts (TSC ticks).
pub const MIN_TIMESLICE: u64 = 10_000;
