//! RT benchmark kernels, TS load generators and the in-guest measurement
//! harness (a boot module).
//!
//! RT jobs (for example a 64x64 matrix multiply) are timed per job with a
//! serialized TSC read and PMC deltas where the CPU offers them; records stay
//! in memory during the run and are dumped afterwards. `configs/*.toml` hold
//! one workload description each: partitions, colors, periods, job counts.
#![no_std]
