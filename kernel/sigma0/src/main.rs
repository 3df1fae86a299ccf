//! sigma0: the root task, first boot module, started by the kernel in ring 3.
//!
//! It will own all usable physical memory (1:1) and the I/O ports, hand
//! frames to the pagers under the partition rules of `cache-color`, and
//! start the other modules. For now it proves user mode end to end: it
//! greets through the kernel debug call and reads the KIP. Started with the
//! argument `test`, it also checks the syscall error paths and then runs a
//! privileged instruction, which the test kernel expects to fault in ring 3.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod frames;
#[cfg(target_os = "none")]
mod fuzz;
#[cfg(target_os = "none")]
mod memtests;
#[cfg(target_os = "none")]
mod partitions;
#[cfg(target_os = "none")]
mod regress;
#[cfg(target_os = "none")]
mod rt;
#[cfg(target_os = "none")]
mod tests;

#[cfg(target_os = "none")]
mod root {
    use abi::{sys, syscall, Error};
    use user_rt::{kip, println};

    user_rt::entry!(main);

    fn check(name: &str, ok: bool) {
        println!("sigma0: check {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            syscall::thread_exit(1);
        }
    }

    fn main() {
        let k = kip();
        let usable: u64 =
            k.mem_regions().iter().filter(|r| r.kind == abi::kip::MemKind::Usable as u32).map(|r| r.size).sum();
        println!("sigma0: hello from ring 3; KIP v{} reports {} MiB usable RAM", k.abi_version, usable >> 20);
        let colors = crate::partitions::init(k);
        crate::frames::init(k, colors);
        crate::rt::set_root(syscall::myself().0);
        let me = k.modules().first();
        if me.is_some_and(|m| m.args().any(|a| a == "bench")) {
            crate::bench::run();
            return;
        }
        if me.is_some_and(|m| m.args().any(|a| a == "fuzz")) {
            let arg = |key: &str| me.and_then(|m| m.args().find_map(|a| a.strip_prefix(key)?.parse::<u64>().ok()));
            // Seed, number of calls (0: no end), first call to trace, keep going.
            let (seed, calls, trace) = (arg("s=").unwrap_or(1), arg("c=").unwrap_or(0), arg("t=").unwrap_or(u64::MAX));
            if !crate::fuzz::run(seed, calls, trace, arg("k=") == Some(1)) {
                syscall::thread_exit(1);
            }
            end_in_ring3();
        }
        if !me.is_some_and(|m| m.args().any(|a| a == "test")) {
            return;
        }
        check("kip_magic", k.magic == abi::kip::KIP_MAGIC);
        check("own_module_name", me.map(|m| m.name()) == Some("sigma0"));
        check("unknown_syscall_rejected", Error::decode(syscall::syscall2(0xdead, 1, 2)) == Err(Error::NoSuchCall));
        check(
            "kernel_pointer_rejected",
            Error::decode(syscall::syscall2(sys::DEBUG_PRINT, 0xffff_ffff_8010_0000, 16)) == Err(Error::BadAddress),
        );
        check(
            "overlong_print_rejected",
            Error::decode(syscall::syscall2(sys::DEBUG_PRINT, 0x40_0000, 1 << 40)) == Err(Error::InvalidArgument),
        );
        let failed = crate::tests::run();
        if failed > 0 {
            syscall::thread_exit(failed as u64);
        }
        end_in_ring3();
    }

    /// Ends a test boot: the test kernel waits for this #GP from ring 3.
    fn end_in_ring3() {
        println!("sigma0: executing hlt in ring 3 (must fault)");
        // SAFETY: `hlt` is privileged: in ring 3 it raises #GP, which is
        // exactly what the test kernel waits for.
        unsafe { core::arch::asm!("hlt") };
        check("hlt_faulted", false);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("sigma0 is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
