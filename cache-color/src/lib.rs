//! Cache geometry, page-color arithmetic, colored frame pools and partition
//! specs.
//!
//! This crate is `no_std` and host-tested. It will read the cache geometry
//! from CPUID (Intel leaf 4, AMD 0x8000001D with the legacy leaves as
//! fallback), compute the page color of a physical frame for a chosen cache
//! level, keep per-color free lists so that a pager can allocate "any frame
//! of color set S" in O(1), and parse and validate partition specs written
//! like Xen's `llc-colors` (`"0-7,12,14-15"`). sigma0 uses it to hand each
//! pager only frames of its own partition's colors.
#![cfg_attr(not(test), no_std)]
