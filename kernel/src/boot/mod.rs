//! What the boot loader hands over.

pub mod multiboot;
