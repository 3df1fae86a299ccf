//! The test driver: the user-level in-guest suite, a task of its own that
//! the root task starts from a test description (`kernel/tests/*.toml`).
//!
//! It runs as an ordinary task with the rights its description gives it
//! (thread control with an MCP, the interrupt right, the PIT, COM1 and
//! POST ports): it starts helper threads of its own binary in spaces of
//! their own and pages them with its own pages ([`suite::rt`]), and reaches
//! sigma0 and the root task only through their protocols. Each test prints
//! `test NAME ... ok` or `test NAME ... FAILED: why`; the driver ends with
//! the number of failures as its status.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod control;
#[cfg(target_os = "none")]
mod fastpath;
#[cfg(target_os = "none")]
mod memtests;
#[cfg(target_os = "none")]
mod regress;
#[cfg(target_os = "none")]
mod tests;

#[cfg(target_os = "none")]
mod driver {
    use abi::{sys, syscall, Error};
    use user_rt::{kip, println};

    user_rt::entry!(main);

    fn main() {
        let k = kip();
        let me = user_rt::info().map(|i| i.name()).unwrap_or("?");
        println!("test-driver: {me} runs the user-level suite");
        let early = [
            ("kip_magic_and_version", k.magic == abi::kip::KIP_MAGIC && k.abi_version == abi::kip::ABI_VERSION),
            ("kip_names_sigma0_and_root_task", k.sigma0_id != 0 && k.root_id != 0 && k.sigma0_id != k.root_id),
            ("unknown_syscall_rejected", Error::decode(syscall::syscall2(0xdead, 1, 2)) == Err(Error::NoSuchCall)),
            (
                "kernel_pointer_rejected",
                Error::decode(syscall::syscall2(sys::DEBUG_PRINT, 0xffff_ffff_8010_0000, 16)) == Err(Error::BadAddress),
            ),
            (
                "overlong_print_rejected",
                Error::decode(syscall::syscall2(sys::DEBUG_PRINT, 0x40_0000, 1 << 40)) == Err(Error::InvalidArgument),
            ),
        ];
        let mut failed = 0u64;
        for (name, ok) in early {
            println!("test {name} ... {}", if ok { "ok" } else { "FAILED: wrong answer" });
            failed += !ok as u64;
        }
        failed += crate::tests::run() as u64;
        user_rt::exit(failed)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("test-driver is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
