//! The latency thrasher (see `ts_loads`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use rt_workloads::chase::{link, walk, Node};

    user_rt::entry!(main);

    fn main() {
        ts_loads::thrasher(
            "latency",
            "walk",
            |_, mem| {
                // SAFETY: the working set reinterpreted as 64-byte lines:
                // the heap is page aligned and `ws` a multiple of 64, and
                // `mem` is not used otherwise.
                let nodes = unsafe { core::slice::from_raw_parts_mut(mem.as_mut_ptr() as *mut Node, mem.len() / 8) };
                link(rt_workloads::reference::SEED_B, nodes);
                nodes
            },
            |nodes| walk(nodes, nodes.len()).0,
        )
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("latency is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
