//! Host side of Prism: boots the kernel under QEMU (interactive runs, the
//! in-guest test suite, WCET scenarios), chooses the accelerator, and will
//! turn captured job records into WCET histograms, tables, CSV/JSON and an
//! HTML report with pWCET. The `prism` binary is the entry point the
//! justfile calls.

pub mod bench;
pub mod capture;
pub mod description;
pub mod evt;
pub mod fuzz;
pub mod guest;
pub mod histogram;
pub mod image;
pub mod linux;
pub mod plot;
pub mod profile;
pub mod qemu;
pub mod report;
pub mod source;
pub mod stats;
pub mod wcet;
