//! The bandwidth thrasher (see `ts_loads`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use harness::Args;
    use ts_loads::{sweep, Params};
    use user_rt::{info, println};

    user_rt::entry!(main);

    fn main() {
        let Some(i) = info() else { user_rt::exit(1) };
        let p = match Params::from_args(&Args::new(i.args()), i.heap_size) {
            Ok(p) => p,
            Err(e) => {
                println!("bandwidth {}: {e}", i.name());
                user_rt::exit(1)
            }
        };
        // SAFETY: the task's declared heap: mapped by its pager on first
        // touch, used by nothing else, at least `ws` bytes (checked).
        let mem = unsafe { core::slice::from_raw_parts_mut(i.heap_base as *mut u64, p.ws / 8) };
        let t0 = abi::syscall::myself().1;
        let mut n = 0u64;
        let mut sum = 0u64;
        while p.iterations == 0 || n < p.iterations {
            sum = sum.wrapping_add(sweep(mem, p.access));
            n += 1;
        }
        let t = abi::syscall::myself().1 - t0;
        println!("bandwidth {}: {n} sweep(s) of {} bytes in {t} TSC ticks (sum {sum:#x})", i.name(), p.ws);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bandwidth is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
