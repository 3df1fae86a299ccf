//! The kernel executable. All code lives in the library; this file only
//! makes the bare-metal link pull it in (`kstart` is entered from the boot
//! code in `arch::x86_64::boot`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate kernel;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel is a bare-metal program: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
