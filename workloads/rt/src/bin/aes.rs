//! The `aes` RT workload task (see `rt_workloads::aes128`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::main!(rt_workloads::aes128::Aes);
