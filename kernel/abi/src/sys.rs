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
/// Privileged. Create a thread: `rdi` = a thread whose address space the
/// new thread shares, or `NIL` for a new address space; `rsi` = UTCB
/// address (page aligned, unmapped, in the user half); `rdx` = pager.
/// Returns the new id. The thread waits until `THREAD_START`.
pub const THREAD_CREATE: u64 = 3;
/// Privileged. Delete thread `rdi`; its id becomes stale.
pub const THREAD_DELETE: u64 = 4;
/// Privileged. Start (or restart) thread `rdi` at IP `rsi`, SP `rdx`.
pub const THREAD_START: u64 = 5;
/// Privileged. Set attribute `rsi` (see [`attr`]) of thread `rdi` to `rdx`
/// (and `r10` where the attribute has two values).
pub const THREAD_CONFIG: u64 = 6;
/// Give up the rest of the time slice (round robin within the priority).
pub const YIELD: u64 = 7;
/// The caller's own thread id and the current TSC.
pub const MYSELF: u64 = 8;
/// Privileged. Route interrupt line `rdi` to thread `rsi` (`NIL` detaches).
pub const IRQ_ATTACH: u64 = 9;

/// Flush: revoke the rights given in fpage `rdi` (its rights bits) from
/// every mapping derived from the caller's pages in it, recursively; with
/// `rsi` bit 0 set, also from the caller's own pages. Revoking read removes
/// the mappings. Returns the number of mappings changed.
pub const UNMAP: u64 = 10;

/// Number of defined system calls; anything at or above is `NoSuchCall`.
pub const COUNT: u64 = 11;

/// Test kernel only (built with `--features ktest`), privileged: the debug
/// interface through which the fuzzer's checker sees the kernel's
/// invariants; `rdi` is one of [`ktest`]. The production kernel has no
/// such call: it answers `NoSuchCall` (outside `0..COUNT` like any other).
pub const KTEST: u64 = 0x6b74;

/// Operations of [`KTEST`].
pub mod ktest {
    /// Checks every kernel invariant the kernel can check by itself (pool
    /// accounting, mapping database, page tables against it, sender and
    /// ready queues, thread and space bookkeeping). Returns 0, or the
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
    /// Privileged (may use the privileged calls): 0 or 1.
    pub const PRIVILEGED: u64 = 5;
}

/// Highest priority.
pub const MAX_PRIORITY: u64 = 63;
/// Shortest time slice or budget the kernel accepts (TSC ticks).
pub const MIN_TIMESLICE: u64 = 10_000;
