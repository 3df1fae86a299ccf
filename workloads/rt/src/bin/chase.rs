//! The `chase` RT workload task (see `rt_workloads::chase`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::main!(rt_workloads::chase::Chase);
