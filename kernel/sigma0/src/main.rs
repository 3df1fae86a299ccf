//! sigma0: the root pager, started by the kernel in ring 3 beside the root
//! task.
//!
//! Its address space is idempotent over usable RAM (virtual = physical,
//! mapped by the kernel on first touch) and read-only over the boot
//! modules; it holds every I/O port. It hands frames to its clients (the
//! root task and the pagers it starts) under the ownership and colour rules
//! of [`server`], binds pagers to the partitions of the system description,
//! and serves forever. It needs no privilege and holds no test code: the
//! in-guest suite tests it from outside, through its protocol.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod frames;
#[cfg(target_os = "none")]
mod partitions;
#[cfg(target_os = "none")]
mod server;

#[cfg(target_os = "none")]
mod root {
    use user_rt::{kip, println};

    user_rt::entry!(main);

    fn main() {
        let k = kip();
        let usable: u64 =
            k.mem_regions().iter().filter(|r| r.kind == abi::kip::MemKind::Usable as u32).map(|r| r.size).sum();
        println!("sigma0: root pager up; KIP v{} reports {} MiB usable RAM", k.abi_version, usable >> 20);
        let parts = crate::partitions::init(k);
        let Some(frames) = crate::frames::init(k, parts.as_ref().map(|p| p.map)) else {
            println!("sigma0: no frames to give; stopping");
            return;
        };
        crate::server::Server::new(k, frames, parts).run()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("sigma0 is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
