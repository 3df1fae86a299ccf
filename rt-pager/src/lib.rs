//! The real-time pager (a boot module, started by sigma0).
//!
//! It will back RT tasks with frames of the RT partition's colors only, map
//! every page of a task before its first job so that no page fault happens
//! while a job is measured, and never take frames back during a run.
#![no_std]
