//! System call numbers and register convention.
//!
//! `syscall` with the number in `rax` and arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9` (the System V syscall order; `rcx` and `r11` are taken
//! by the instruction itself). The kernel returns a word in `rax`: zero or a
//! positive value on success, `-(Error as i64)` on failure, see
//! [`crate::Error::decode`].

/// Print a UTF-8 string on the kernel debug console. `rdi` = pointer,
/// `rsi` = length (at most [`DEBUG_PRINT_MAX`] bytes).
pub const DEBUG_PRINT: u64 = 0;
/// Stop the calling thread for good and report `rdi` as its exit status on
/// the console. Stands in for thread deletion until thread control lands.
pub const THREAD_EXIT: u64 = 1;

/// Number of defined system calls; anything at or above is `NoSuchCall`.
pub const COUNT: u64 = 2;

/// Longest string one `DEBUG_PRINT` accepts.
pub const DEBUG_PRINT_MAX: u64 = 1024;
