//! x86_64 mechanisms, one small module each.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod paging;
pub mod serial;
pub mod trap;
