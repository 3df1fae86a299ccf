//! The `matmul` RT workload task (see `rt_workloads::matmul`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::main!(rt_workloads::matmul::Matmul);
