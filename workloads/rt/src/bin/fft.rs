//! The `fft` RT workload task (see `rt_workloads::fft`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::main!(rt_workloads::fft::Fft);
