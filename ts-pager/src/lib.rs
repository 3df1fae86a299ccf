//! The time-sharing pager (a boot module, started by sigma0).
//!
//! It will serve Linux-like tasks with demand paging from the TS partition's
//! colors: resolve their page faults, grow and shrink their memory, and flush
//! mappings it takes back.
#![no_std]
