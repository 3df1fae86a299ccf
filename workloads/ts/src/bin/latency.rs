//! The latency thrasher (see `ts_loads`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use harness::Args;
    use rt_workloads::chase::{link, walk, Node};
    use ts_loads::Params;
    use user_rt::{info, println};

    user_rt::entry!(main);

    fn main() {
        let Some(i) = info() else { user_rt::exit(1) };
        let p = match Params::from_args(&Args::new(i.args()), i.heap_size) {
            Ok(p) => p,
            Err(e) => {
                println!("latency {}: {e}", i.name());
                user_rt::exit(1)
            }
        };
        // SAFETY: the task's declared heap, as in `bandwidth`; 64-byte
        // aligned (HEAP_BASE is page aligned).
        let nodes = unsafe { core::slice::from_raw_parts_mut(i.heap_base as *mut Node, p.ws / 64) };
        link(rt_workloads::reference::SEED_B, nodes);
        let t0 = abi::syscall::myself().1;
        let mut n = 0u64;
        let mut sum = 0u64;
        while p.iterations == 0 || n < p.iterations {
            sum = sum.wrapping_add(walk(nodes, nodes.len()).0);
            n += 1;
        }
        let t = abi::syscall::myself().1 - t0;
        let per = t / (n * nodes.len() as u64).max(1);
        println!("latency {}: {n} walk(s) of {} lines, {per} TSC ticks per load (sum {sum:#x})", i.name(), nodes.len());
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("latency is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
