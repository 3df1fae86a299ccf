//! The bandwidth thrasher (see `ts_loads`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    user_rt::entry!(main);

    fn main() {
        ts_loads::thrasher(
            "bandwidth",
            "sweep",
            |p, mem| (p.access, mem),
            |(access, mem)| ts_loads::sweep(mem, *access),
        )
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bandwidth is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
