//! The `fir` RT workload task (see `rt_workloads::fir`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::main!(rt_workloads::fir::Fir);
