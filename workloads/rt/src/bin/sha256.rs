//! The `sha256` RT workload task (see `rt_workloads::sha256`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::main!(rt_workloads::sha256::Sha);
