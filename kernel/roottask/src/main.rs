//! The root task: the loader and supervisor, and the only thread the kernel
//! starts with every right (MCP 63, thread control, interrupts).
//!
//! It reads the system description (the `system` boot module, written by
//! the host from `workloads/configs/*.toml`), loads every task it names
//! from its boot module into a new address space, gives each the pager,
//! exception handler, priority, limits and budget the description says,
//! binds the pagers to their partitions through sigma0, starts everything,
//! and then serves: the tasks it pages, the pagers' requests for their
//! clients, every task's requests for its own description, and, as the
//! exception handler of last resort, the report of any task that crashes.
//! Nothing runs that the description does not name.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

#[cfg(target_os = "none")]
mod load;
mod pages;
#[cfg(target_os = "none")]
mod sigma0;
#[cfg(target_os = "none")]
mod supervisor;

#[cfg(target_os = "none")]
mod root {
    use crate::load::{LoadError, Loader};
    use crate::pages::Pages;
    use crate::supervisor::Supervisor;
    use abi::{syscall, Fpage, Timeout};
    use user_rt::{kip, println};

    user_rt::entry!(main);

    static mut PAGES: Pages = Pages::new();

    /// Stops here for good: the run cannot go on. Under QEMU the run ends
    /// with the failure verdict; elsewhere the root task waits forever.
    fn give_up(exit_port: bool) -> ! {
        if exit_port {
            // SAFETY: the root task holds the isa-debug-exit port; writing it
            // ends the QEMU run.
            unsafe { core::arch::asm!("out dx, al", in("dx") abi::debug_exit::PORT, in("al") abi::debug_exit::FAIL) };
        }
        loop {
            let _ = syscall::receive(syscall::myself().0, Timeout::NEVER);
        }
    }

    fn main() {
        let k = kip();
        println!("roottask: up; {} boot module(s)", k.modules().len());
        let exit_port = crate::sigma0::ports(Fpage::io(abi::debug_exit::PORT, 0)).is_ok();
        let Some((_, m)) = k.module("system") else {
            println!("roottask: no `system` module (the system description): nothing to start");
            give_up(exit_port)
        };
        let text = match crate::sigma0::module_bytes(m).map(core::str::from_utf8) {
            Ok(Ok(t)) => t,
            _ => {
                println!("roottask: the `system` module is not readable UTF-8 text");
                give_up(exit_port)
            }
        };
        let sys = match sysdesc::parse(text) {
            Ok(s) => s,
            Err(e) => {
                println!("roottask: system description: {e}");
                give_up(exit_port)
            }
        };
        println!(
            "roottask: system \"{}\" (scenario {}): {} task(s), {} partition(s)",
            sys.name(),
            sys.scenario(),
            sys.tasks().len(),
            sys.partitions().len()
        );
        let fail = |(i, e): (usize, LoadError)| -> ! {
            println!("roottask: task {}: {e}", sys.tasks()[i].name);
            give_up(exit_port)
        };
        if let Err(e) = Loader::check(&sys) {
            fail(e)
        }
        let pages = &raw mut PAGES;
        // SAFETY: the root task has one thread, and this is the only
        // reference to the table ever made.
        let pages = unsafe { &mut *pages };
        let mut loader = Loader { sys: &sys, tasks: heapless::Vec::new(), pages };
        if let Err(e) = loader.create_all().and_then(|_| loader.bind_pagers()) {
            fail(e)
        }
        for (i, t) in sys.tasks().iter().enumerate() {
            let how = match t.pager {
                sysdesc::Ref::Root => {
                    let entry = loader.load_own(i).unwrap_or_else(|e| fail((i, e)));
                    let sp = loader.tasks[i].info.stack_top;
                    loader.start(i, entry, sp).unwrap_or_else(|e| fail((i, e.into())));
                    "started"
                }
                sysdesc::Ref::Task(p) => {
                    let _ = p;
                    "waits for its pager"
                }
            };
            let l = &loader.tasks[i];
            println!(
                "roottask: task {} ({}, prio {}, thread {:#x}, pager {}) {how}",
                t.name,
                t.role,
                t.prio,
                l.thread.0,
                sys.ref_name(t.pager)
            );
        }
        println!("roottask: {} page(s) backed for the tasks it pages", loader.pages.used());
        let mut ports_held = [0u64; 1024];
        if exit_port {
            let p = abi::debug_exit::PORT as usize;
            ports_held[p / 64] |= 1 << (p % 64);
        }
        Supervisor { loader, exit_port, ports_held }.run()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("roottask is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
