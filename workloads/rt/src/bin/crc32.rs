//! The example C workload task (`c/crc32/crc32.c`).
#![cfg_attr(target_os = "none", no_std, no_main)]

harness::c_workload!("crc32");
