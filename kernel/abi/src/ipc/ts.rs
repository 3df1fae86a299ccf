//! The time-sharing pager's services to its tasks (label, MR1..).
//!
//! A TS task is demand paged by its pager (the `ts-pager` boot module):
//! its image is copied from its boot module into frames of the TS
//! partition's colours, its stack and heap pages are zero-filled frames of
//! those colours on first touch. On top of paging, the pager offers what a
//! Unix-like process needs from its environment, and nothing more:
//!
//! - **memory**: a heap with a movable break ([`BRK`]) and anonymous
//!   mappings ([`MAP`], [`UNMAP`]); pages given back are flushed (the
//!   kernel's `UNMAP`) and their frames return to the pager's free list;
//! - **tasks**: [`SPAWN`] a task from a boot module by name, [`WAIT`] for
//!   a child's end; a spawned child ends by sending `root::EXIT` to its
//!   pager (`user_rt::exit` does that) and reads its own description with
//!   `root::GET_INFO` there, both in the root task's form;
//! - **pipes**: bounded byte streams between tasks, named by small
//!   per-task file descriptors ([`PIPE`], [`READ`], [`WRITE`], [`CLOSE`]);
//!   reads block while a pipe is empty and has a writer, writes block while
//!   it is full and has a reader; a read of an empty pipe without writers
//!   is end of file, a write to a pipe without readers fails.
//!
//! When the partition has no frame left for a fault, the faulting task is
//! killed with an out-of-memory report; its parent's [`WAIT`] says so.
//!
//! Every request is a call; the reply has label 0 and the results, or an
//! error label ([`Error`]). A request that must wait (a read of an empty
//! pipe, a wait for a living child) is answered when it can be: the caller
//! stays blocked in its call meanwhile, and the pager serves everyone else.
//!
//! # A Linux personality on top (not built)
//!
//! In the L4Linux manner a Linux server would be every Linux task's
//! exception handler: a task's `syscall` instruction traps (the kernel
//! reports it as an exception IPC), the server decodes the Linux system
//! call from the registers, answers it with these requests on the task's
//! behalf or its own state, and resumes the task with the result in `rax`.
//! The calls map like this:
//!
//! | Linux | here |
//! | --- | --- |
//! | `brk(addr)` | [`BRK`] with `addr` (0 asks); Linux's "return the old break on failure" is the error path |
//! | `mmap(NULL, len, PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS, -1, 0)` | [`MAP`] `len` |
//! | `munmap(addr, len)` | [`UNMAP`] |
//! | `fork()` + `execve(path, argv, envp)`, `posix_spawn`, `vfork` + `exec` | [`SPAWN`] of the module named by `path`, `argv` as the argument string, the descriptors without `O_CLOEXEC` as the fd mask (a `fork` without `exec` needs copy-on-write sharing, which this interface does not offer) |
//! | `exit(status)`, `exit_group` | `root::EXIT` to the pager |
//! | `wait4(pid, &status, options, NULL)` | [`WAIT`] `pid` (`-1`: 0), `WNOHANG` as [`NOHANG`]; `status` from [`Ended`] (`WIFEXITED`/`WEXITSTATUS`, or `WIFSIGNALED` with `SIGKILL` for out of memory, `SIGSEGV` for a crash) |
//! | `pipe(fds)`, `pipe2(fds, 0)` | [`PIPE`] |
//! | `read(fd, buf, n)`, `write(fd, buf, n)` on a pipe | [`READ`], [`WRITE`] (short counts as POSIX allows; loop for more) |
//! | `close(fd)`, and every descriptor at `exit` | [`CLOSE`] (the pager closes a dead task's descriptors itself) |
//!
//! Descriptors 0, 1 and 2 (the console) and files would be the Linux
//! server's own business; the pager's descriptors are numbered from 0 in
//! each task, so the server keeps its own table from Linux numbers to
//! these.

/// Set the caller's heap break to MR1 (0: only ask). Reply MR1 = the
/// break. The heap starts at `layout::HEAP_BASE` with the size the
/// description declares and may reach `HEAP_BASE + HEAP_MAX`; pages
/// between the base and the break are demand-zero, pages above a lowered
/// break are given back.
pub const BRK: u64 = 0x5400;
/// Map MR1 bytes (rounded up to pages) of fresh demand-zero memory,
/// readable and writable. Reply MR1 = the address (in
/// `[MAP_BASE, MAP_END)`).
pub const MAP: u64 = 0x5401;
/// Give back the pages of `[MR1, MR1 + MR2)` inside the caller's
/// anonymous mappings; touching them afterwards is a crash.
pub const UNMAP: u64 = 0x5402;
/// Start a task from the boot module named by MR1..MR4 (`root::name_words`)
/// as a child of the caller: MR5 = fd mask (bit `i`: the child gets the
/// caller's descriptor `i` as its own `i`), MR6 = its priority (at most
/// the pager's MCP; the user-side wrapper passes the caller's own),
/// MR7..MR38 = its argument string ([`args_words`]). It gets the caller's
/// heap and stack sizes. Reply MR1 = the child's thread id.
pub const SPAWN: u64 = 0x5403;
/// Wait for the end of child MR1 (0: any child); MR2 = flags
/// ([`NOHANG`]). Reply MR1 = the child (0: none ended yet, with
/// [`NOHANG`]), MR2 = how it ended ([`Ended`]), MR3 = its exit status (the
/// vector for a crash).
pub const WAIT: u64 = 0x5404;
/// Make a pipe. Reply MR1 = its read descriptor, MR2 = its write one.
pub const PIPE: u64 = 0x5405;
/// Read at most MR2 bytes (at most [`IO_MAX`]) from descriptor MR1.
/// Reply MR1 = the count (0: end of file), MR2.. = the bytes
/// ([`bytes_to_words`]).
pub const READ: u64 = 0x5406;
/// Write MR2 bytes (1 to [`IO_MAX`]), in MR3.., to descriptor MR1. Reply
/// MR1 = how many the pipe took (at least one; send the rest again).
pub const WRITE: u64 = 0x5407;
/// Close descriptor MR1.
pub const CLOSE: u64 = 0x5408;

/// [`WAIT`] flag: do not block when no child has ended yet.
pub const NOHANG: u64 = 1;

/// Most bytes one [`READ`] or [`WRITE`] carries (in message registers).
pub const IO_MAX: usize = 8 * IO_WORDS;
/// Words of [`IO_MAX`] bytes.
pub const IO_WORDS: usize = 60;
/// Descriptors per task.
pub const MAX_FDS: usize = 16;
/// Words of a [`SPAWN`] argument string.
pub const ARGS_WORDS: usize = super::root::ARGS_MAX / 8;
/// The heap break may reach `layout::HEAP_BASE + HEAP_MAX`.
pub const HEAP_MAX: u64 = 1 << 36;
/// Anonymous mappings ([`MAP`]) are placed in `[MAP_BASE, MAP_END)`.
pub const MAP_BASE: u64 = 0x0000_4000_0000_0000;
pub const MAP_END: u64 = 0x0000_7000_0000_0000;

const _: () = assert!(3 + IO_WORDS < super::MAX_MRS && 7 + ARGS_WORDS < super::MAX_MRS);
const _: () = assert!(crate::layout::HEAP_BASE + HEAP_MAX <= crate::layout::PHYS_WINDOW);
const _: () = assert!(crate::layout::PHYS_WINDOW + (1 << crate::layout::PHYS_WINDOW_LOG2) <= MAP_BASE);
const _: () = assert!(MAP_END <= crate::layout::STACK_TOP - (1 << 32));

/// How a child ended ([`WAIT`] MR2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Ended {
    /// It sent `root::EXIT` with the status in MR3.
    Exited = 0,
    /// The partition had no frame for one of its faults.
    OutOfMemory = 1,
    /// An exception nobody fixed (a fault outside its memory, `ud2`, ...);
    /// MR3 is the vector.
    Crashed = 2,
}

impl Ended {
    pub fn from_word(w: u64) -> Option<Ended> {
        [Ended::Exited, Ended::OutOfMemory, Ended::Crashed].into_iter().find(|e| *e as u64 == w)
    }
}

/// Why a request failed (the reply label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Error {
    /// The partition has no frame left, or the request would pass a limit
    /// ([`HEAP_MAX`], the mapping area).
    NoMemory = 1,
    /// An argument is out of range (a break below the heap's base, an
    /// unmap outside the caller's mappings, a count of 0 or above
    /// [`IO_MAX`]).
    Invalid = 2,
    /// Not an open descriptor of the caller, or the wrong end of a pipe.
    BadFd = 3,
    /// No such child (or no child at all) to wait for.
    NoChild = 4,
    /// A write to a pipe nobody can read any more.
    BrokenPipe = 5,
    /// No boot module of that name, or not a loadable image.
    NoModule = 6,
    /// A table of the pager is full (tasks, pipes, descriptors, mappings).
    NoResources = 7,
    /// The caller is not a task of this pager, or the request is unknown.
    Refused = 8,
}

impl Error {
    pub const ALL: [Error; 8] = [
        Error::NoMemory,
        Error::Invalid,
        Error::BadFd,
        Error::NoChild,
        Error::BrokenPipe,
        Error::NoModule,
        Error::NoResources,
        Error::Refused,
    ];

    pub fn from_label(l: u64) -> Option<Error> {
        Error::ALL.into_iter().find(|e| *e as u64 == l)
    }
}

/// Packs bytes into little-endian words (the last one zero padded).
pub fn bytes_to_words(b: &[u8], w: &mut [u64]) -> usize {
    let n = b.len().div_ceil(8).min(w.len());
    for (i, word) in w.iter_mut().enumerate().take(n) {
        let mut x = [0u8; 8];
        let chunk = &b[i * 8..b.len().min(i * 8 + 8)];
        x[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_le_bytes(x);
    }
    n
}

/// Unpacks `b.len()` bytes from little-endian words.
pub fn words_to_bytes(w: &[u64], b: &mut [u8]) {
    for (i, c) in b.iter_mut().enumerate() {
        *c = w.get(i / 8).map_or(0, |x| (x >> (8 * (i % 8))) as u8);
    }
}

/// An argument string packed for [`SPAWN`] (cut at `root::ARGS_MAX`
/// bytes, on a character boundary).
pub fn args_words(args: &str) -> [u64; ARGS_WORDS] {
    let mut b = [0u8; super::root::ARGS_MAX];
    super::root::set_text(&mut b, args);
    let mut w = [0u64; ARGS_WORDS];
    bytes_to_words(&b, &mut w);
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels_are_distinct_and_decode() {
        let l = [BRK, MAP, UNMAP, SPAWN, WAIT, PIPE, READ, WRITE, CLOSE];
        for (i, a) in l.iter().enumerate() {
            assert!(l[..i].iter().all(|b| b != a));
        }
        for e in Error::ALL {
            assert_eq!(Error::from_label(e as u64), Some(e));
        }
        assert_eq!(Error::from_label(0), None);
        assert_eq!(Ended::from_word(1), Some(Ended::OutOfMemory));
        assert_eq!(Ended::from_word(9), None);
    }

    #[test]
    fn args_round_trip_through_words() {
        let w = args_words("mode=produce fd=1 bytes=65536");
        let mut b = [0u8; super::super::root::ARGS_MAX];
        words_to_bytes(&w, &mut b);
        assert!(b.starts_with(b"mode=produce fd=1 bytes=65536\0"));
    }

    proptest! {
        #[test]
        fn bytes_round_trip_through_words(b in proptest::collection::vec(any::<u8>(), 0..IO_MAX)) {
            let mut w = [0u64; IO_WORDS];
            let n = bytes_to_words(&b, &mut w);
            prop_assert_eq!(n, b.len().div_ceil(8));
            let mut back = vec![0u8; b.len()];
            words_to_bytes(&w[..n], &mut back);
            prop_assert_eq!(back, b);
        }
    }
}
