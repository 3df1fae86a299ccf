//! The time-sharing pager: a user-level pager stacked on sigma0 and bound
//! to the TS partition, serving Linux-like tasks (the interface is
//! `abi::ipc::ts`; user-side wrappers are `user_rt::ts`).
//!
//! - **Paging**: a task's image is copied from its boot module into frames
//!   of the TS colours when it is loaded (module pages are wherever the
//!   boot loader put them, of any colour, possibly the RT partition's, so
//!   they are never mapped into a task); its stack, its heap below the
//!   break and its anonymous mappings are zero-filled frames of the TS
//!   colours on first touch. Frames given back (a lowered break, an unmap,
//!   a task's end) are flushed from the task and kept on the pager's own
//!   free list for the next fault.
//! - **Tasks**: it loads the tasks the description gives it (the root task
//!   hands them over and starts them), spawns tasks from boot modules by
//!   name (it needs `control=1` and an MCP in the description: it creates
//!   their threads, is their exception handler, answers their `GET_INFO`
//!   and `EXIT`), and keeps a spawned task's exit record until its parent
//!   waits for it.
//! - **Pipes**: bounded byte streams named by per-task descriptors, with
//!   blocking reads and writes and end of file.
//! - **Out of memory**: when the partition has no frame left for a fault,
//!   the faulting task is killed with a report (task, address); a spawned
//!   one the pager deletes itself, one of the description's it refuses, so
//!   that the root task (its exception handler) reports and removes it.
//!   Nothing on the RT side takes part in any of this.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

mod pipe;
#[cfg(target_os = "none")]
mod server;
mod space;
mod tasks;

#[cfg(target_os = "none")]
mod run {
    use crate::pipe::Pipes;
    use crate::server::{Ts, TABLE};
    use crate::tasks::Tasks;
    use pager::free::FreeList;
    use pager::table::Pages;
    use user_rt::println;

    user_rt::entry!(main);

    static mut PAGES: Pages<TABLE> = Pages::new();
    static mut FREE: FreeList<TABLE> = FreeList::new();
    static mut TASKS: Tasks = Tasks::new();
    static mut PIPES: Pipes = Pipes::new();

    fn main() {
        let me = abi::syscall::myself().0;
        let (mcp, timeslice) = user_rt::info().map_or((0, 0), |i| (i.mcp, i.timeslice));
        let (pages, free, tasks, pipes) = (&raw mut PAGES, &raw mut FREE, &raw mut TASKS, &raw mut PIPES);
        // SAFETY: the pager has one thread, and these are the only
        // references to its tables ever made.
        let (pages, free, tasks, pipes) = unsafe { (&mut *pages, &mut *free, &mut *tasks, &mut *pipes) };
        let mut ts = Ts::new(me, mcp, timeslice, tasks, pipes, pages, free);
        let n = pager::root::load_clients("ts-pager", |c| ts.add_client(c));
        println!("ts-pager: {n} client(s) loaded; serving (spawns up to priority {mcp})");
        pager::msg::serve(|from, m| ts.handle(from, m))
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ts-pager is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
