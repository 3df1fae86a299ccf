//! Hardware-specific code. Only the bare-metal build has it; host builds
//! (unit tests of the kernel's logic) compile without it.

pub mod x86_64;
pub use self::x86_64::*;
