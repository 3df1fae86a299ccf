//! The fuzz task (issue 16): started by the root task from the test image
//! `kernel/tests/images/fuzz/system` on the test kernel (`test=system`), with
//! its arguments `seed=S calls=N trace=K keep=1` (all optional; `calls=0`
//! runs until the host stops it). `prism fuzz` writes the image and
//! watches the run; see `run.rs` for what the task does.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod run;

#[cfg(target_os = "none")]
mod task {
    user_rt::entry!(main);

    fn main() {
        let arg = |key: &str| user_rt::info().and_then(|i| i.arg(key)).and_then(|v| v.parse::<u64>().ok());
        let (seed, calls, trace) =
            (arg("seed").unwrap_or(1), arg("calls").unwrap_or(0), arg("trace").unwrap_or(u64::MAX));
        let clean = crate::run::run(seed, calls, trace, arg("keep") == Some(1));
        user_rt::exit(!clean as u64)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("fuzzer is a boot module: build it with `just build` (target x86_64-unknown-none)");
    std::process::exit(2);
}
