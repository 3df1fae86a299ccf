//! The `sort` RT workload task (see `rt_workloads::sort`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::main!(rt_workloads::sort::Sort);
