//! The kernel fuzzer's hardware-free half (issue 16): a seeded generator
//! of system calls with boundary values and the results each may have
//! ([`calls`]), the ring-3 exceptions to raise ([`exceptions`]), and a
//! model of map, grant and flush across address spaces ([`model`]) that
//! predicts every mapping. The guest runner executes what these generate
//! and compares; everything here is tested on the host, the mapping model
//! also against the kernel's own mapping database.
#![cfg_attr(not(test), no_std)]

pub mod calls;
pub mod exceptions;
pub mod model;
pub mod rng;
pub mod values;

pub use calls::{Call, Case, Expect, Fuzzer, Layout};
pub use rng::Rng;
