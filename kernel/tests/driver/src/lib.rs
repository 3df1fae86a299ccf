//! What the test driver and the benchmark task share: starting threads of
//! their own binary in spaces that start out empty, and paging those with
//! the task's own pages.
#![no_std]

#[cfg(target_os = "none")]
pub mod rt;
